"""Training rows read in place from an unaligned NumPy array: no host copy on a CPU.

JAX's CPU backend takes a NumPy buffer without copying it only when the buffer starts on a 64-byte
boundary; NumPy's own large arrays start 16 bytes past one (the allocator's header), so
``jax.device_put(x)`` copies them on one thread (about 90 ms for 60k × 784 float32 here). The
64-byte line that holds ``x``'s first element is mapped memory, so a flat view that starts at that
line's boundary, ``offset`` elements before ``x[0, 0]``, *is* aligned, and becomes the device
array as it is. The epoch's gather ``x[rows]`` then reads each row as one contiguous slice of the
flat buffer at ``offset + row · d``; the ``offset`` elements before the data are never read into a
batch. The view keeps ``x`` alive (its buffer object references it), so the device array can
outlive every other reference to ``x``.
"""

import ctypes
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np


_ALIGNMENT = 64  # bytes: what JAX's CPU backend needs to use a host buffer without copying it


@jax.tree_util.register_pytree_node_class
class FlatRows:
    """x [n, d] as ``flat`` [offset + n·d] with row i at ``flat[offset + i·d : offset + (i+1)·d]``."""

    def __init__(self, flat, offset: int, n: int, d: int):
        self.flat, self.offset, self.n, self.d = flat, int(offset), int(n), int(d)

    def tree_flatten(self):
        return (self.flat,), (self.offset, self.n, self.d)

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        return cls(leaves[0], *aux)

    @property
    def shape(self):
        return (self.n, self.d)

    @property
    def dtype(self):
        return self.flat.dtype

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows) -> jax.Array:
        """The rows ``rows`` (int [k]) as a dense [k, d] array: one contiguous slice each."""
        starts = self.offset + jnp.asarray(rows, jnp.int32) * self.d
        return jax.vmap(lambda start: jax.lax.dynamic_slice(self.flat, (start,), (self.d,)))(starts)

    def __repr__(self) -> str:
        return f"FlatRows(shape={self.shape}, offset={self.offset}, dtype={self.dtype})"


def flat_view(x: np.ndarray) -> Optional[tuple]:
    """``(flat, offset)``: a 64-byte-aligned 1-D NumPy view that begins ``offset`` elements before
    ``x``'s data and ends with it, or None when ``x`` is not a C-contiguous float array whose start
    is a whole number of elements past a boundary, or the flat length overflows int32 indices."""
    if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.flags.c_contiguous and x.dtype.kind == "f"):
        return None
    start = x.ctypes.data
    before = start % _ALIGNMENT
    if before % x.itemsize or before // x.itemsize + x.size >= 2**31:
        return None
    offset = before // x.itemsize
    buffer = (ctypes.c_char * (before + x.nbytes)).from_address(start - before)
    buffer.owner = x  # the view -> its buffer -> x: x's memory lives as long as the view does
    return np.frombuffer(buffer, x.dtype), offset
