"""The per-epoch data order: a permutation, uniformly distributed, whatever the size."""

import itertools

import jax
import numpy as np
import pytest

from ffnn_jax import _shuffle
from ffnn_jax._shuffle import permutation


@pytest.mark.parametrize("n", [1, 2, 3, 64, 65, 257, 1347, 60_000])
def test_permutation_orders_every_index_exactly_once(n):
    order = np.asarray(permutation(jax.random.key(n), n))
    assert order.dtype == np.int32 and np.array_equal(np.sort(order), np.arange(n))


def test_every_ordering_of_four_items_is_equally_likely():
    draws = 24_000
    orders = np.asarray(jax.vmap(lambda key: permutation(key, 4))(jax.random.split(jax.random.key(0), draws)))
    counts = np.array([np.all(orders == p, axis=1).sum() for p in itertools.permutations(range(4))])
    expected = draws / 24
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 49.7, counts  # the 0.999 quantile of chi-square with 23 degrees of freedom


def test_several_rounds_still_give_every_position_equal_chance():
    # 300 rows need 9 index bits: two rounds of 23 random bits (the tie-breaking path).
    n, draws = 300, 6000
    orders = np.asarray(jax.vmap(lambda key: permutation(key, n))(jax.random.split(jax.random.key(1), draws)))
    first_half = (np.argsort(orders, axis=1) < n // 2).mean(axis=0)  # P(item i lands in the first half)
    assert np.all(np.abs(first_half - 0.5) < 5 * 0.5 / np.sqrt(draws))
    assert len({tuple(o) for o in orders[:100]}) == 100


def test_huge_sets_fall_back_to_jax_random_permutation(monkeypatch):
    monkeypatch.setattr(_shuffle, "_MAX_INDEX_BITS", 3)
    key = jax.random.key(3)
    np.testing.assert_array_equal(permutation(key, 20), jax.random.permutation(key, 20))
