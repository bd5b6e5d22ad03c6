"""The shortcuts of the whole call keep their answers: the one-pass finite check, the aligned copy, rows read in
place, the plot worker."""

import os

import numpy as np
import pytest

import ffnn_jax
from ffnn_jax._data import validate_x
from ffnn_jax._plots import PlotWorker
from ffnn_jax._setup import _cpu_ready


def _unaligned(rng, n: int, d: int) -> np.ndarray:
    """Random float32 [n, d] starting 4 bytes past a 64-byte boundary, whatever NumPy's allocator does."""
    raw = rng.random(n * d + 32, dtype=np.float32)
    start = (-raw.ctypes.data % 64) // 4 + 1
    return raw[start : start + n * d].reshape(n, d)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_single_non_finite_value_in_a_large_matrix_is_found(bad):
    x = np.random.default_rng(0).random((3000, 100), dtype=np.float32)
    x[2017, 63] = bad
    with pytest.raises(ValueError, match="`x` must be finite, got 1 NaN/inf values"):
        validate_x(x)


def test_finite_values_whose_row_sums_overflow_are_accepted():
    x = np.full((1000, 100), 3e38, np.float32)  # every row sums to inf in float32; every value is finite
    assert validate_x(x) is x


def test_the_aligned_copy_holds_the_same_values_and_leaves_the_input_alone():
    base = np.random.default_rng(1).random((20001, 77)).astype(np.float32)
    view = base[1:]  # 308 bytes past an allocation: not 64-byte aligned
    copy = _cpu_ready(view)
    assert copy.ctypes.data % 64 == 0 and copy.flags.c_contiguous
    np.testing.assert_array_equal(copy, view)
    assert not np.shares_memory(copy, base)
    strided = base[::2]  # non-contiguous
    np.testing.assert_array_equal(_cpu_ready(strided), strided)


@pytest.mark.parametrize("source", ["float64", "uint8", "unaligned float32", "strided float32"])
def test_a_converted_or_aligned_large_matrix_equals_numpys_conversion(source):
    rng = np.random.default_rng(2)
    base = rng.random((18001, 130)) * 255  # every variant at least 4 MB as float32
    x = {"float64": base, "uint8": base.astype(np.uint8), "unaligned float32": base.astype(np.float32)[1:],
         "strided float32": base.astype(np.float32)[::2]}[source]  # fmt: skip
    ready = validate_x(x, aligned=True)
    assert ready.dtype == np.float32 and ready.flags.c_contiguous and ready.ctypes.data % 64 == 0
    np.testing.assert_array_equal(ready, x.astype(np.float32))
    assert not np.shares_memory(ready, x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e300], ids=["nan", "inf", "beyond float32"])
def test_a_non_finite_value_is_found_while_a_large_float64_matrix_is_converted(bad):
    x = np.random.default_rng(3).random((9001, 130))
    x[8999, 129] = bad
    with pytest.raises(ValueError, match="`x` must be finite, got 1 NaN/inf values"):
        validate_x(x, aligned=True)
    x[8999, 129] = 3e38  # finite in float32, though its row sum overflows
    assert np.isfinite(validate_x(x, aligned=True)).all()


def test_an_aligned_float32_matrix_is_used_as_it_is():
    x = validate_x(np.random.default_rng(4).random((9001, 130)), aligned=True)  # an aligned float32 copy
    assert validate_x(x, aligned=True) is x


def test_training_on_unaligned_and_strided_data_equals_training_on_a_plain_copy(digits):
    x, y = (np.asarray(a) for a in digits)
    wide = np.repeat(x, 40, axis=1)[:, ::2]  # a strided float32 view, large enough for the threaded copy
    settings = dict(hidden_sizes=(16,), epochs=2, batch_size=64)
    one = ffnn_jax.train(wide, y, **settings)
    two = ffnn_jax.train(np.array(wide), y, **settings)
    for a, b in zip(one.params, two.params):
        np.testing.assert_array_equal(np.asarray(a.W), np.asarray(b.W))


def test_the_plot_worker_writes_every_picture_and_draws_here_when_its_child_is_gone(tmp_path):
    history = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.25]}
    worker = PlotWorker()
    worker.send({"kind": "losses", "path": str(tmp_path / "a.png"), "history": history})
    worker.send(
        {"kind": "confusion", "path": str(tmp_path / "b.png"), "labels": ["x", "y"], "matrix": [[3, 1], [0, 4]]}
    )
    worker.finish()
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "b.png").stat().st_size > 1000
    lost = PlotWorker()
    lost._process.kill()
    lost._process.wait()
    lost.send({"kind": "losses", "path": str(tmp_path / "c.png"), "history": history})
    lost.finish()
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


@pytest.mark.parametrize("settings", [{}, {"validation_fraction": 0.1}], ids=["all rows", "split"])
def test_unaligned_training_data_is_read_in_place_not_copied(monkeypatch, settings):
    from ffnn_jax import _data, _setup

    copies, real = [], _data.host_copy
    monkeypatch.setattr(_data, "host_copy", lambda *a, **k: copies.append(1) or real(*a, **k))
    monkeypatch.setattr(_setup, "host_copy", _data.host_copy)
    rng = np.random.default_rng(5)
    x = _unaligned(rng, 20000, 130)  # 10 MB
    views, real_view = [], _setup.flat_view
    monkeypatch.setattr(_setup, "flat_view", lambda a: views.append(a) or real_view(a))
    result = ffnn_jax.train(x, rng.integers(0, 3, 20000), hidden_sizes=(8,), epochs=1, **settings)
    # the split's rows are a new array, read in place too unless NumPy happened to align it; its 1 MB
    # of validation rows is below the copy size
    shapes = [v.shape for v in views]
    assert copies == []
    assert (len(shapes) <= 1 and all(17990 < n < 18010 for n, _ in shapes)) if settings else shapes == [(20000, 130)]
    assert np.isfinite(result.history["train_loss"][0])


def test_flat_rows_gather_the_rows_of_an_unaligned_array_and_keep_it_alive():
    import gc

    import jax

    from ffnn_jax._flat_rows import FlatRows, flat_view

    x = _unaligned(np.random.default_rng(6), 5000, 37)
    flat, offset = flat_view(x)
    assert flat.ctypes.data % 64 == 0 and offset == 1 and flat.size == offset + x.size
    device = jax.device_put(flat)
    expected = np.array(x[[0, 4999, 17, 17]])
    del x, flat
    gc.collect()  # the view holds the array: the device buffer still reads it
    rows = FlatRows(device, offset, 5000, 37)
    np.testing.assert_array_equal(jax.jit(lambda r, i: r[i])(rows, np.array([0, 4999, 17, 17])), expected)
    assert rows.shape == (5000, 37) and len(rows) == 5000


@pytest.mark.parametrize(
    "x",
    [np.ones((64, 8), np.float32)[:, ::2], np.ones((64, 8), np.int32), np.asfortranarray(np.ones((64, 8)))],
    ids=["strided", "integers", "fortran"],
)
def test_flat_view_declines_what_it_cannot_read_in_place(x):
    from ffnn_jax._flat_rows import flat_view

    assert flat_view(x) is None


def test_training_on_an_unaligned_array_equals_training_on_an_aligned_copy():
    rng = np.random.default_rng(7)
    x = _unaligned(rng, 12000, 100)  # 4.8 MB: read in place
    y = rng.integers(0, 4, 12000)
    aligned = _cpu_ready(x)
    assert x.ctypes.data % 64 and aligned.ctypes.data % 64 == 0
    settings = dict(hidden_sizes=(16,), epochs=2, batch_size=64, seed=2)
    one, two = ffnn_jax.train(x, y, **settings), ffnn_jax.train(aligned, y, **settings)
    for a, b in zip(one.params, two.params):
        np.testing.assert_array_equal(np.asarray(a.W), np.asarray(b.W))
