"""Saving params: safe format, atomic, never overwriting silently."""

import numpy as np
import pytest
from helpers import assert_trees_all_equal

import ffnn_jax
from ffnn_jax._checkpoint import load_params, save_params


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
