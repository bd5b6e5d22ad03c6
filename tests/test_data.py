"""Input validation (before anything compiles), loaders, splits and scaling."""

import gzip
import os

import numpy as np
import pytest
from test_train import _CompileCounter

import ffnn_jax
from ffnn_jax._data import fit_standardizer, load_csv, load_idx, load_mnist, load_npz, split_indices, train_test_split


X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
Y = np.arange(20) % 3


def _with(array, index, value):
    array = np.array(array, dtype=np.float64)
    array[index] = value
    return array


BAD_INPUTS = [
    (dict(x=_with(X, (0, 0), np.nan)), ValueError, "`x` must be finite"),
    (dict(x=_with(X, (3, 1), np.inf)), ValueError, "`x` must be finite"),
    (dict(y=_with(Y, 2, np.nan)), ValueError, "`y` must be finite"),
    (dict(x=X[:, 0]), ValueError, r"`x` must be 2-D"),
    (dict(x=X[None]), ValueError, r"`x` must be 2-D"),
    (dict(y=Y[:-1]), ValueError, "same number of samples"),
    (dict(x=X[:0], y=Y[:0]), ValueError, "`x` must be non-empty"),
    (dict(y=_with(Y, 0, -1).astype(int)), ValueError, "labels must be >= 0"),
    (dict(n_classes=2), ValueError, "labels must be < n_classes=2"),
    (dict(x=X.astype(str)), TypeError, "`x` must hold real numbers"),
    (dict(x=X.astype(object)), TypeError, "`x` must hold real numbers"),
    (dict(y=Y.astype(complex)), TypeError, "`y` must hold real numbers"),
    (dict(y=np.array(["a"] * 20)), TypeError, "`y` must hold real numbers"),
    (dict(hidden_sizes=(0,)), ValueError, r"`hidden_sizes\[0\]` must be a positive integer"),
    (dict(hidden_sizes=(-4,)), ValueError, r"`hidden_sizes\[0\]`"),
    (dict(batch_size=0), ValueError, "`batch_size` must be a positive integer or None"),
    (dict(epochs=0), ValueError, "`epochs` must be a positive integer"),
    (dict(learning_rate=0.0), ValueError, "`learning_rate` must be in"),
    (dict(learning_rate=-0.1), ValueError, "`learning_rate` must be in"),
    (dict(activation="swish2"), ValueError, "`activation` must be one of"),
    (dict(loss="hinge"), ValueError, "`loss` must be one of"),
    (dict(optimizer="adamax"), ValueError, "`optimizer` must be one of"),
    (dict(optimizer=3), TypeError, "`optimizer` must be one of"),
    (dict(weight_init="orthogonal"), ValueError, "`weight_init` must be one of"),
    (dict(y=X[:, 0], loss="cross_entropy"), ValueError, "class labels must be integers"),
    (dict(y=X[:, 0], task="regression", loss="cross_entropy"), ValueError, "needs class labels"),
    (dict(validation_fraction=1.0), ValueError, "`validation_fraction` must be in"),
    (dict(validation_data=(X[:, :2], Y)), ValueError, r"`validation_data\[0\]` must have 3 features"),
    (dict(sample_weight=np.ones(3)), ValueError, "`sample_weight` must have shape"),
    (dict(sample_weight=-np.ones(20)), ValueError, "`sample_weight` must be >= 0"),
    (dict(unknown_setting=1), TypeError, "unknown_setting"),
    (dict(monitor="val_accuracy"), ValueError, "needs validation_data"),
    (dict(monitor="val_r2", validation_fraction=0.2), ValueError, "needs a regression task"),
    (dict(monitor="loss"), ValueError, "`monitor` must be one of"),
]


@pytest.mark.parametrize("changes, error, message", BAD_INPUTS, ids=[m[2][:40] for m in BAD_INPUTS])
def test_bad_input_is_rejected_with_the_argument_named_before_anything_compiles(changes, error, message):
    changes = dict(changes)
    x, y = changes.pop("x", X), changes.pop("y", Y)
    with _CompileCounter() as compiles, pytest.raises(error, match=message):
        ffnn_jax.train(x, y, epochs=changes.pop("epochs", 1), **changes)
    assert compiles.count == 0


def test_plain_lists_and_integer_features_are_accepted():
    result = ffnn_jax.train(X.tolist(), Y.tolist(), hidden_sizes=(4,), epochs=1)
    assert result.predict((X * 10).astype(int)).shape == (20,)


def test_stratified_split_is_seeded_and_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    keep, held = split_indices(100, 0.2, seed=1, stratify=labels)
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(100))
    assert np.bincount(labels[held]).tolist() == [10, 6, 4]
    again = split_indices(100, 0.2, seed=1, stratify=labels)
    np.testing.assert_array_equal(held, again[1])


def test_train_test_split_stratifies_labels_and_not_float_targets():
    (x_train, y_train), (x_test, y_test) = train_test_split(X, Y, 0.25, seed=0)
    assert len(x_test) + len(x_train) == 20 and set(np.unique(y_test)) <= {0, 1, 2}
    (_, _), (_, y_reg) = train_test_split(X, X[:, 0], 0.25, seed=0)
    assert y_reg.dtype == np.float32


def test_standardizer_centres_and_scales_and_leaves_constant_columns():
    x = np.column_stack([np.arange(10.0), np.full(10, 3.0)]).astype(np.float32)
    scaled = fit_standardizer(x).apply(x)
    np.testing.assert_allclose(scaled.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled[:, 0].std(), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(scaled[:, 1], 0.0)


def test_built_in_datasets_load_offline():
    x, y = ffnn_jax.load_digits()
    assert x.shape == (1797, 64) and y.shape == (1797,) and set(np.unique(y)) == set(range(10))
    assert 0.0 <= x.min() and x.max() <= 1.0
    xr, yr = ffnn_jax.load_diabetes()
    assert xr.shape == (442, 10) and yr.dtype == np.float32


def _write_idx(path, array, compress):
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_mnist_idx_files_load_plain_or_gzipped(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    x, y = load_mnist(str(tmp_path), "test")
    assert x.shape == (5, 784) and x.max() <= 1.0
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(load_idx(str(tmp_path / f"t10k-images-idx3-ubyte{suffix}")), images)


def test_missing_mnist_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="downloads nothing"):
        load_mnist(str(tmp_path))


def test_a_truncated_idx_file_is_reported(tmp_path):
    path = tmp_path / "bad"
    _write_idx(path, np.zeros((4, 2), np.uint8), False)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 3)
    with pytest.raises(ValueError, match="truncated"):
        load_idx(str(path))


def test_npz_and_csv_loaders(tmp_path):
    np.savez(tmp_path / "d.npz", x=X, y=Y)
    x, y = load_npz(str(tmp_path / "d.npz"))
    np.testing.assert_array_equal(x, X)
    with pytest.raises(ValueError, match="no array"):
        load_npz(str(tmp_path / "d.npz"), y_key="labels")
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,1\n")
    x, y = load_csv(str(tmp_path / "d.csv"), target_column="label")
    assert x.shape == (3, 2) and y.dtype == np.int32 and y.tolist() == [0, 1, 1]
    x, y = ffnn_jax.load_dataset(str(tmp_path / "d.csv"))
    assert y.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        ffnn_jax.load_dataset("imagenet")


def test_one_hot_targets_train_the_same_model_as_integer_labels():
    settings = dict(hidden_sizes=(4,), epochs=3, batch_size=8, seed=2)
    labels = ffnn_jax.train(X, Y, **settings)
    rows = ffnn_jax.train(X, ffnn_jax.one_hot(Y, 3), loss="cross_entropy", **settings)
    assert rows.task == "classification" and rows.predict(X).shape == (20,)
    np.testing.assert_array_equal(ffnn_jax.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_allclose(rows.params[0].W, labels.params[0].W, rtol=1e-5, atol=1e-6)
