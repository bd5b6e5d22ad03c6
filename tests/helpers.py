"""Tree assertions shared by the tests."""

import jax
import numpy as np

from ffnn_jax._gradcheck import x64_scope


def assert_same_structure_shapes_dtypes(a, b):
    """Same pytree structure, and leaf by leaf the same shape and dtype."""
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for leaf_a, leaf_b in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert leaf_a.shape == leaf_b.shape and leaf_a.dtype == leaf_b.dtype


def assert_trees_all_close(a, b, **tolerances):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for leaf_a, leaf_b in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(leaf_a), np.asarray(leaf_b), **tolerances)


def assert_trees_all_equal(a, b):
    """Bitwise equality, leaf by leaf."""
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for leaf_a, leaf_b in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(leaf_a), np.asarray(leaf_b))


def assert_all_finite(tree):
    for leaf in jax.tree_util.tree_leaves(tree):
        assert np.all(np.isfinite(np.asarray(leaf)))


def x64():
    """A context in which float64 is available (scoped: other tests keep float32 defaults)."""
    return x64_scope()
