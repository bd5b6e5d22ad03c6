"""The per-epoch data order: a uniformly random permutation that XLA:CPU sorts quickly.

``jax.random.permutation`` sorts (random key, index) pairs, a two-operand sort that XLA:CPU runs
through a generic comparator, a visible part of a small network's epoch. :func:`permutation`
packs the index into the low bits of each random key, so that every round is a sort of plain
uint32 values (XLA:CPU's native fast path) followed by a gather, a few times faster
(BENCHMARKS.md, "Design measurements"). The keys are distinct, so no sort needs to be
stable.

Uniformity: round r sorts by fresh random bits with ties broken by the order of round r − 1, which
is a sort by the concatenation of every round's bits. As in ``jax.random.permutation``, the rounds
supply at least 3 log₂ n random bits per element, so ties among all of them, the only source of
bias, have probability below 1/n.
"""

import math

import jax
import jax.numpy as jnp

from ._types import Array, PRNGKey


_MAX_INDEX_BITS = 20  # above 2^20 rows the packed keys leave few random bits: use jax's shuffle


def permutation(key: PRNGKey, n: int) -> Array:
    """A uniformly random ordering of ``range(n)``: int32 [n]."""
    index_bits = max(1, (n - 1).bit_length())
    if index_bits > _MAX_INDEX_BITS:
        return jax.random.permutation(key, n).astype(jnp.int32)
    rounds = max(1, math.ceil(3 * index_bits / (32 - index_bits)))
    low = jnp.uint32((1 << index_bits) - 1)

    def shuffle_round(i, order):
        draws = jax.random.bits(jax.random.fold_in(key, i), (n,), jnp.uint32)
        packed = (draws << index_bits) | jnp.arange(n, dtype=jnp.uint32)  # position in the current order
        return order[(jnp.sort(packed) & low).astype(jnp.int32)]

    # A loop, not unrolled rounds: one sort to compile (first-call time matters on small data).
    return jax.lax.fori_loop(0, rounds, shuffle_round, jnp.arange(n, dtype=jnp.int32))


def real_rows_first(order: Array, rows: Array) -> Array:
    """``order`` (a permutation of ``range(n)``, int32 [n]) with its entries below ``rows`` moved
    to the front, each group kept in its order: a padded set's data order (:mod:`ffnn_jax._buckets`).

    The entries below ``rows`` of a uniformly random permutation come in a uniformly random order,
    so the front is a uniformly random ordering of the real rows.
    """
    real = order < rows
    destination = jnp.where(real, jnp.cumsum(real) - 1, rows + jnp.cumsum(~real) - 1)
    return jnp.zeros_like(order).at[destination].set(order, unique_indices=True)
