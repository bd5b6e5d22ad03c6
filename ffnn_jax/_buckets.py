"""Small training sets padded to a few sizes, so that sets of nearby sizes share one program.

Every distinct number of rows used to be a program of its own (about a second of XLA compile
on digits): the folds of a cross-validation (1437 and 1438 rows), their validation splits, a
refit. A small dense set is now placed with zero rows added up to the next size of the form
m · 2^k (m = 8..16: at most 12.5% more rows), and the number of real rows travels beside it as an
int32 [] array. The epoch takes ceil(rows / batch) steps over a data order whose first ``rows``
entries are the real rows (:func:`ffnn_jax._shuffle.real_rows_first`), so no step reads a
padding row and training costs what it did; validation masks them. Sets of 4 MiB and more are
placed as they are, read where they lie without a copy.
"""

from typing import Optional

import numpy as np

from ._data import LARGE_BYTES, empty_aligned


# From this size on x is read where it is (no copy at all, ffnn_jax._flat_rows); below it a copy
# costs about a millisecond, against about a second for a compile.
_MOST_BYTES = LARGE_BYTES - 1


def bucket_rows(n: int) -> int:
    """The padded size for ``n`` rows: ``n`` rounded up to a multiple of 2^(bit_length(n) − 4)."""
    shift = max(0, n.bit_length() - 4)
    return -(-n >> shift) << shift


def is_bucketed(x) -> bool:
    """Whether ``x`` [n, d] is placed padded to its bucket: a dense array under 4 MiB."""
    return isinstance(x, np.ndarray) and x.nbytes <= _MOST_BYTES


def placed_rows(x) -> int:
    """How many rows ``x`` [n, d] is placed with: its bucket (:func:`is_bucketed`), else n."""
    return bucket_rows(x.shape[0]) if is_bucketed(x) else x.shape[0]


def padded(array: Optional[np.ndarray], rows: int) -> Optional[np.ndarray]:
    """``array`` [n, ...] followed by zero rows up to ``rows`` (itself when it has them, or None)."""
    if array is None or array.shape[0] == rows:
        return array
    out = empty_aligned((rows, *array.shape[1:]), array.dtype)
    out[: array.shape[0]] = array
    out[array.shape[0] :] = 0
    return out
