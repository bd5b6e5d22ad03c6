"""Sparse inputs without densifying: scipy matrices as padded rows (ELLPACK) on the device.

A row of a sparse matrix becomes ``k`` (column, value) pairs, ``k`` the most stored values of any
row; shorter rows are padded with value 0 at column 0. Memory is n × k × 8 bytes instead of the
dense n × d × 4, every row has the same shape (so the epoch's per-batch gather ``x[rows]`` and the
fixed batch shapes work unchanged), and the first layer is ``Σ_j vals[:, j] · W[cols[:, j]]``,
which ``jax.grad`` turns into a scatter-add into W. Results equal the dense input's to float32
rounding (the sums run in another order).
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@jax.tree_util.register_pytree_node_class
class SparseRows:
    """x [n, n_features] as ``cols`` int32 [n, k] and ``vals`` float [n, k] (ELLPACK)."""

    def __init__(self, cols, vals, n_features: int):
        self.cols, self.vals, self.n_features = cols, vals, int(n_features)

    def tree_flatten(self):
        return (self.cols, self.vals), self.n_features

    @classmethod
    def tree_unflatten(cls, n_features, leaves):
        return cls(*leaves, n_features)

    @property
    def shape(self):
        return (self.cols.shape[0], self.n_features)

    @property
    def dtype(self):
        return self.vals.dtype

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return self.cols.shape[0]

    def __getitem__(self, rows) -> "SparseRows":
        return SparseRows(self.cols[rows], self.vals[rows], self.n_features)

    def astype(self, dtype) -> "SparseRows":
        return SparseRows(self.cols, self.vals.astype(dtype), self.n_features)

    def __repr__(self) -> str:
        return f"SparseRows(shape={self.shape}, stored per row={self.cols.shape[1]}, dtype={self.dtype})"


def is_scipy_sparse(x: Any) -> bool:
    return hasattr(x, "tocsr") and hasattr(x, "nnz")


def from_scipy(x, name: str, dtype) -> SparseRows:
    """A scipy sparse matrix (any format) as :class:`SparseRows`; duplicate entries are summed."""
    csr = x.tocsr(copy=True)
    csr.sum_duplicates()
    n, d = csr.shape
    if n == 0 or d == 0:
        raise ValueError(f"`{name}` must be non-empty, got shape {csr.shape}")
    if csr.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold real numbers, got dtype {csr.dtype}")
    if not np.all(np.isfinite(csr.data)):
        raise ValueError(f"`{name}` must be finite, got {int(np.sum(~np.isfinite(csr.data)))} NaN/inf values")
    counts = np.diff(csr.indptr)
    k = max(1, int(counts.max()))
    rows = np.repeat(np.arange(n), counts)
    position = np.arange(csr.nnz) - np.repeat(csr.indptr[:-1], counts)
    cols = np.zeros((n, k), np.int32)
    vals = np.zeros((n, k), dtype)
    cols[rows, position] = csr.indices
    vals[rows, position] = csr.data
    return SparseRows(cols, vals, d)


_GATHER_LIMIT = 1 << 24  # elements of W[cols] ([n, k, n_out]) gathered at once; beyond it, one stored value at a time


def first_layer(x: SparseRows, W, b):
    """``x @ W + b`` for padded sparse rows: [n, k] pairs -> [n, n_out]."""
    n, k = x.cols.shape
    if n * k * W.shape[1] <= _GATHER_LIMIT:  # a training batch: one gather and one contraction
        return jnp.einsum("nk,nko->no", x.vals.astype(W.dtype), W[x.cols]) + b

    def add_column(total, column):  # a whole data set: memory n × n_out, not n × k × n_out
        cols, vals = column
        return total + vals[:, None].astype(W.dtype) * W[cols], None

    total, _ = jax.lax.scan(add_column, jnp.zeros((n, W.shape[1]), W.dtype), (x.cols.T, x.vals.T))
    return total + b
