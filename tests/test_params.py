"""init_params, count_params and the flat θ view."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import x64

import ffnn_jax
from ffnn_jax import LayerParams


def test_init_params_gives_one_W_b_record_per_layer_with_batch_first_shapes(key):
    params = ffnn_jax.init_params(key, [5, 7, 3])
    assert isinstance(params, tuple) and all(isinstance(p, LayerParams) for p in params)
    assert [(p.W.shape, p.b.shape) for p in params] == [((5, 7), (7,)), ((7, 3), (3,))]
    assert all(p.W.dtype == jnp.float32 for p in params)
    np.testing.assert_array_equal(params[0].b, 0.0)


@pytest.mark.parametrize(
    "init, expected_std",
    [
        ("random", 0.01),
        ("xavier", np.sqrt(2.0 / (400 + 300))),
        ("he", np.sqrt(2.0 / 400)),
        ("lecun", np.sqrt(1.0 / 400)),
    ],
    ids=["random", "xavier", "he", "lecun"],
)
def test_each_init_scheme_has_its_documented_spread(key, init, expected_std):
    (layer,) = ffnn_jax.init_params(key, [400, 300], init=init)
    assert abs(float(jnp.std(layer.W)) / expected_std - 1.0) < 0.03
    assert abs(float(jnp.mean(layer.W))) < 0.1 * expected_std


def test_xavier_is_uniform_within_the_glorot_limit(key):
    (layer,) = ffnn_jax.init_params(key, [30, 20], init="Xavier")
    assert float(jnp.max(jnp.abs(layer.W))) <= np.sqrt(6.0 / 50)


def test_zeros_init_and_float64_dtype(key):
    with x64():
        params = ffnn_jax.init_params(key, [3, 2], init="zeros", dtype=jnp.float64)
        assert params[0].W.dtype == jnp.float64 and not np.any(np.asarray(params[0].W))


def test_same_key_gives_identical_params_and_different_keys_differ():
    a = ffnn_jax.init_params(jax.random.key(1), [4, 4, 2])
    b = ffnn_jax.init_params(jax.random.key(1), [4, 4, 2])
    c = ffnn_jax.init_params(jax.random.key(2), [4, 4, 2])
    np.testing.assert_array_equal(a[0].W, b[0].W)
    assert not np.array_equal(a[0].W, c[0].W)


def test_count_params_matches_the_lecture_count():
    params = ffnn_jax.init_params(jax.random.key(0), [64, 128, 10])
    assert ffnn_jax.count_params(params) == 9610  # 64·128 + 128 + 128·10 + 10


def test_ravel_lists_W1_b1_W2_b2_in_order_and_unravels_back(key):
    params = ffnn_jax.init_params(key, [3, 4, 2], init="he")
    theta, unravel = ffnn_jax.ravel(params)
    expected = np.concatenate([np.ravel(params[0].W), params[0].b, np.ravel(params[1].W), params[1].b])
    np.testing.assert_array_equal(theta, expected)
    assert theta.shape == (ffnn_jax.count_params(params),)
    back = unravel(theta)
    np.testing.assert_array_equal(back[1].W, params[1].W)


@pytest.mark.parametrize(
    "sizes, error, message",
    [
        ([784], ValueError, "at least 2 entries"),
        ([4, 0, 2], ValueError, r"layer_sizes\[1\]"),
        ([4, -3], ValueError, "positive integer"),
        ([4, 2.5], ValueError, "positive integer"),
        ("42", TypeError, "sequence"),
    ],
    ids=["too-short", "zero-width", "negative", "float", "string"],
)
def test_bad_layer_sizes_are_rejected_with_the_argument_named(key, sizes, error, message):
    with pytest.raises(error, match=message):
        ffnn_jax.init_params(key, sizes)


def test_unknown_init_and_integer_dtype_are_rejected(key):
    with pytest.raises(ValueError, match="`init` must be one of"):
        ffnn_jax.init_params(key, [2, 2], init="orthogonal")
    with pytest.raises(TypeError, match="floating dtype"):
        ffnn_jax.init_params(key, [2, 2], dtype=jnp.int32)
