"""Sparse x (scipy CSR/CSC/COO) trains and predicts without being densified, with the dense input's results."""

import tracemalloc

import jax
import numpy as np
import pytest
import scipy.sparse as sp
from helpers import assert_trees_all_close

import ffnn_jax
from ffnn_jax import _sparse


def _data(n=400, d=3000, density=0.003):
    x = sp.random(n, d, density=density, random_state=0, format="csr", dtype=np.float64)
    totals = np.asarray(x.sum(axis=1)).ravel()
    return x, (totals > np.median(totals)).astype(np.int32)


SETTINGS = dict(hidden_sizes=(16,), optimizer="adam", learning_rate=1e-2, epochs=4, validation_fraction=0.2)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_input_trains_like_the_dense_input(fmt):
    x, y = _data()
    sparse = ffnn_jax.train(x.asformat(fmt), y, **SETTINGS)
    dense = ffnn_jax.train(x.toarray(), y, **SETTINGS)
    assert_trees_all_close(sparse.params, dense.params, rtol=1e-5, atol=1e-6)  # float32 sums in another order
    np.testing.assert_allclose(sparse.history["train_loss"], dense.history["train_loss"], rtol=1e-5)
    np.testing.assert_array_equal(sparse.predict(x.asformat(fmt)), dense.predict(x.toarray()))
    np.testing.assert_allclose(sparse.predict_proba(x), dense.predict_proba(x.toarray()), rtol=1e-5, atol=1e-6)


def test_a_wide_sparse_matrix_is_never_densified():
    n, d = 2000, 200_000  # dense float32: 1.6 GB
    x = sp.random(n, d, density=5e-5, random_state=1, format="csr", dtype=np.float32)
    y = (np.arange(n) % 2).astype(np.int32)
    tracemalloc.start()
    result = ffnn_jax.train(x, y, hidden_sizes=(4,), epochs=1, batch_size=200)
    result.predict(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 60e6  # host memory NumPy allocated: W (3.2 MB) and the padded rows, not n × d


def test_predicting_many_rows_goes_one_stored_value_at_a_time_with_the_same_result(monkeypatch):
    x, y = _data(n=3000, d=500, density=0.02)
    result = ffnn_jax.train(x, y, **SETTINGS)
    expected = result.predict_proba(x.toarray())
    monkeypatch.setattr(_sparse, "_GATHER_LIMIT", 10)  # force the scan over stored values
    jax.clear_caches()
    np.testing.assert_allclose(result.predict_proba(x), expected, rtol=1e-5, atol=1e-6)


def test_sparse_input_refuses_standardize_and_non_finite_values():
    x, y = _data()
    with pytest.raises(ValueError, match="`standardize`=True would densify sparse `x`"):
        ffnn_jax.train(x, y, standardize=True, epochs=1)
    bad = x.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="`x` must be finite, got 1 NaN/inf"):
        ffnn_jax.train(bad, y, epochs=1)


def test_a_reloaded_model_predicts_sparse_input(tmp_path):
    x, y = _data()
    result = ffnn_jax.train(x, y, checkpoint_dir=str(tmp_path), **SETTINGS)
    np.testing.assert_array_equal(ffnn_jax.load_model(str(tmp_path)).predict(x), result.predict(x))
