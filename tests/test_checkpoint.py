"""Saving params: safe format, atomic, never overwriting silently; loading anything else is a clear error."""

import json
import os
import pickle
import stat
import struct
import warnings
import zipfile

import jax
import numpy as np
import pytest
from helpers import assert_trees_all_close, assert_trees_all_equal

import ffnn_jax
from ffnn_jax._checkpoint import load_params, read_params, save_params


def test_params_round_trip_with_metadata(tmp_path, key):
    params = ffnn_jax.init_params(key, [3, 5, 2])
    path = str(tmp_path / "p.npz")
    save_params(path, params, metadata={"activation": "tanh"})
    loaded, meta = load_params(path)
    assert_trees_all_equal(loaded, params)
    assert meta == {"activation": "tanh", "layer_sizes": [3, 5, 2]}
    assert np.asarray(ffnn_jax.forward(loaded, np.ones((1, 3), np.float32))).shape == (1, 2)


def test_the_file_holds_no_pickled_objects(tmp_path, key):
    path = str(tmp_path / "p.npz")
    save_params(path, ffnn_jax.init_params(key, [2, 2]))
    with np.load(path, allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)


def test_an_existing_file_is_never_overwritten_without_asking(tmp_path, key):
    path = tmp_path / "p.npz"
    path.write_bytes(b"the user's precious bytes")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_params(str(path), ffnn_jax.init_params(key, [2, 2]))
    assert path.read_bytes() == b"the user's precious bytes"
    save_params(str(path), ffnn_jax.init_params(key, [2, 2]), overwrite=True)
    assert load_params(str(path))[1]["layer_sizes"] == [2, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]  # no temporary file left behind


def test_a_saved_file_gets_the_permissions_open_gives_and_a_replaced_one_keeps_its_own(tmp_path, key):
    params = ffnn_jax.init_params(key, [3, 5, 2])
    before = os.umask(0o022)
    try:
        save_params(str(tmp_path / "p.npz"), params)
        assert stat.S_IMODE(os.stat(tmp_path / "p.npz").st_mode) == 0o644  # as np.savez gives; mkstemp's was 0o600
        os.chmod(tmp_path / "p.npz", 0o640)
        save_params(str(tmp_path / "p.npz"), params, overwrite=True)
        assert stat.S_IMODE(os.stat(tmp_path / "p.npz").st_mode) == 0o640
    finally:
        os.umask(before)
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]  # no temporary file left


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, key):
    path = tmp_path / "p.npz"
    save_params(str(path), ffnn_jax.init_params(key, [2, 2]))
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_params(str(path), ffnn_jax.init_params(key, [2, 2]), metadata={"bad": object()}, overwrite=True)
    assert path.read_bytes() == before


def test_loading_a_foreign_npz_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not an ffnn_jax params file"):
        load_params(str(tmp_path / "other.npz"))


def real_params():
    return ffnn_jax.init_params(jax.random.key(0), [3, 5, 2])


def write_npz(path, meta=None, *, raw_meta=None, **arrays):
    """A 3-5-2 params file written by hand; ``arrays`` replace or add to the default layers."""
    layers = {
        "layer0/W": np.ones((3, 5), np.float32),
        "layer0/b": np.ones(5, np.float32),
        "layer1/W": np.ones((5, 2), np.float32),
        "layer1/b": np.ones(2, np.float32),
    }
    layers.update(arrays)
    if raw_meta is None:
        raw_meta = json.dumps({"layer_sizes": [3, 5, 2]} if meta is None else meta).encode()
    np.savez(path, __metadata__=np.frombuffer(raw_meta, np.uint8), **layers)


def flip_last_byte_of(path, member):
    """Damages ``member``'s data inside the zip at ``path`` (its CRC no longer matches)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_length + extra_length + info.compress_size - 1] ^= 0xFF
    path.write_bytes(bytes(data))


def make_bad_file(tmp_path, case):
    """Writes the file for ``case``; returns its path."""
    path = tmp_path / "p.npz"
    if case == "npy":
        path = tmp_path / "x.npy"
        np.save(path, np.ones(3))
    elif case == "text":
        path = tmp_path / "p.txt"
        path.write_text("layer0/W 1 2 3\n")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "pickle":
        path.write_bytes(pickle.dumps({"layer0/W": [1.0]}))
    elif case == "folder":
        path.mkdir()
    elif case in ("truncated", "damaged_member"):
        save_params(str(path), real_params())
        if case == "truncated":
            path.write_bytes(path.read_bytes()[:-40])
        else:
            flip_last_byte_of(path, "layer0/W.npy")
    elif case == "invalid_json":
        write_npz(path, raw_meta=b'{"layer_sizes": [3, 5, 2]')
    elif case == "metadata_not_an_object":
        write_npz(path, [3, 5, 2])
    elif case == "no_layer_sizes":
        write_npz(path, {"config": {}})
    elif case == "bad_layer_sizes":
        write_npz(path, {"layer_sizes": [3]})
    elif case == "wrong_W_shape":
        write_npz(path, {"layer_sizes": [3, 4, 2]})
    elif case == "wrong_b_shape":
        write_npz(path, **{"layer0/b": np.ones(7, np.float32)})
    elif case == "missing_layer":
        write_npz(path, {"layer_sizes": [3, 5, 2, 4]})
    elif case == "extra_layer":
        write_npz(path, **{"layer2/W": np.ones((2, 2), np.float32)})
    elif case == "pickled_weights":
        write_npz(path, **{"layer0/W": np.array([None, 1.0], dtype=object)})
    elif case == "integer_weights":
        write_npz(path, **{"layer1/b": np.ones(2, np.int64)})
    return path


BAD_FILES = {
    "npy": r"a \.npy file of one float64 array of shape \(3,\), not an \.npz archive",
    "text": r"not an \.npz archive: it starts with b'layer0/W 1 2 3",
    "empty": r"the file is empty",
    "pickle": r"a Python pickle, which ffnn_jax never loads",
    "folder": r"it is a folder; ffnn_jax\.load_model opens run folders",
    "truncated": r"a truncated or damaged \.npz archive: File is not a zip file",
    "damaged_member": r"a damaged \.npz archive: reading 'layer0/W' failed: Bad CRC-32",
    "invalid_json": r"its metadata is not valid JSON",
    "metadata_not_an_object": r"its metadata is a JSON list, not an object",
    "no_layer_sizes": r"its metadata has no 'layer_sizes'; its keys are \['config'\]",
    "bad_layer_sizes": r"its metadata's 'layer_sizes' must be at least 2 positive integers, got \[3\]",
    "wrong_W_shape": r"layer_sizes \[3, 4, 2\], so 'layer0/W' should have shape \(3, 4\), but it has \(3, 5\)",
    "wrong_b_shape": r"layer_sizes \[3, 5, 2\], so 'layer0/b' should have shape \(5,\), but it has \(7,\)",
    "missing_layer": r"layer_sizes \[3, 5, 2, 4\], but it has no arrays \['layer2/W', 'layer2/b'\]",
    "extra_layer": r"layer_sizes \[3, 5, 2\], but it has extra arrays \['layer2/W'\]",
    "pickled_weights": r"array 'layer0/W' holds pickled Python objects, which ffnn_jax never loads",
    "integer_weights": r"'layer1/b' has dtype int64, not a floating-point type",
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_loading_a_file_that_is_not_a_params_file_names_the_file_and_what_was_found(tmp_path, case):
    path = str(make_bad_file(tmp_path, case))
    with pytest.raises(ValueError, match=BAD_FILES[case]) as error:
        load_params(path)
    assert str(error.value).startswith(f"{path!r} is not an ffnn_jax params file (")


def test_loading_a_missing_file_is_a_file_not_found_error_naming_it(tmp_path):
    path = str(tmp_path / "nowhere" / "p.npz")
    with pytest.raises(FileNotFoundError) as error:
        load_params(path)
    assert str(error.value) == f"`path` {path!r} does not exist"


STANDARDIZED = {
    "activation": "tanh",
    "loss": "squared_error",
    "task": "regression",
    "compute_dtype": None,
    "l2": 0.0,
    "standardizer": {"mean": [1.0, -2.0, 3.0], "scale": [2.0, 0.5, 4.0]},
}


def test_loading_params_trained_on_standardized_inputs_warns_and_points_to_load_model(tmp_path):
    path = str(tmp_path / "p.npz")
    save_params(path, real_params(), metadata={"config": {}, "model": STANDARDIZED})
    with pytest.warns(UserWarning, match="trained on standardized inputs") as record:
        params, meta = load_params(path)
    assert len(record) == 1 and record[0].filename == __file__  # attributed to the caller
    message = str(record[0].message)
    assert f"ffnn_jax.load_model({path!r})" in message and "take raw inputs and apply the saved scaling" in message
    assert meta["model"] == STANDARDIZED
    assert_trees_all_equal(params, real_params())


@pytest.mark.parametrize(
    "metadata",
    [None, {"model": {**STANDARDIZED, "standardizer": None}}, {"model": "not a dict"}],
    ids=["no_model_metadata", "standardizer_none", "model_not_a_dict"],
)
def test_loading_params_trained_on_raw_inputs_does_not_warn(tmp_path, metadata):
    path = str(tmp_path / "p.npz")
    save_params(path, real_params(), metadata=metadata)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_params(path)


def test_read_params_loads_a_standardized_file_without_warning(tmp_path):
    path = str(tmp_path / "p.npz")
    save_params(path, real_params(), metadata={"model": STANDARDIZED})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params, meta = read_params(path)
    assert_trees_all_equal(params, real_params()) and meta["model"] == STANDARDIZED


def test_load_model_applies_the_saved_scaling_the_warning_points_to(tmp_path):
    path = str(tmp_path / "p.npz")
    params = real_params()
    save_params(path, params, metadata={"model": STANDARDIZED})
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # until load_model reads the file without load_params' warning
        model = ffnn_jax.load_model(path)
    scaled = (x - np.array(STANDARDIZED["standardizer"]["mean"])) / np.array(STANDARDIZED["standardizer"]["scale"])
    expected = ffnn_jax.forward(params, scaled.astype(np.float32), activation="tanh")
    assert_trees_all_close(np.asarray(model.predict(x)).reshape(-1), np.asarray(expected).reshape(-1), rtol=1e-6)
