"""forward and loss: the lecture's definitions, and jax.grad's gradient pytree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_same_structure_shapes_dtypes

import ffnn_jax


JIT_VARIANTS = pytest.mark.parametrize("variant", [lambda f: f, jax.jit], ids=["nojit", "jit"])


@pytest.fixture
def net(key):
    params = ffnn_jax.init_params(key, [4, 6, 5, 3], init="he")
    x = jax.random.normal(jax.random.key(1), (8, 4))
    y = jnp.array([0, 1, 2, 0, 1, 2, 2, 1])
    return params, x, y


@JIT_VARIANTS
def test_forward_is_g_of_affine_in_hidden_layers_and_linear_at_the_end(net, variant):
    params, x, _ = net
    scores = variant(lambda p, x: ffnn_jax.forward(p, x, activation="tanh"))(params, x)
    h = np.tanh(np.tanh(x @ params[0].W + params[0].b) @ params[1].W + params[1].b)
    np.testing.assert_allclose(scores, h @ params[2].W + params[2].b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "gelu", "softplus", "elu"])
def test_every_named_activation_and_a_callable_run(net, activation):
    params, x, _ = net
    assert ffnn_jax.forward(params, x, activation=activation).shape == (8, 3)
    assert ffnn_jax.forward(params, x, activation=jnp.sin).shape == (8, 3)


def test_cross_entropy_is_mean_negative_log_softmax_of_the_true_class(net):
    params, x, y = net
    scores = np.asarray(ffnn_jax.forward(params, x), np.float64)
    log_softmax = scores - np.log(np.exp(scores).sum(1, keepdims=True))
    expected = -log_softmax[np.arange(8), y].mean()
    np.testing.assert_allclose(ffnn_jax.loss(params, (x, y)), expected, rtol=1e-5)
    one_hot = jax.nn.one_hot(y, 3)
    np.testing.assert_allclose(ffnn_jax.loss(params, (x, one_hot)), expected, rtol=1e-5)


def test_squared_error_uses_softmax_and_one_hot_for_labels_and_raw_scores_for_targets(net):
    params, x, y = net
    scores = np.asarray(ffnn_jax.forward(params, x), np.float64)
    probs = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    expected = ((probs - np.eye(3)[y]) ** 2).sum(1).mean()
    np.testing.assert_allclose(ffnn_jax.loss(params, (x, y), loss="mean_squared_error"), expected, rtol=1e-5)
    targets = jnp.ones((8, 3))
    expected_regression = ((scores - 1.0) ** 2).sum(1).mean()
    np.testing.assert_allclose(
        ffnn_jax.loss(params, (x, targets), loss="squared_error"), expected_regression, rtol=1e-5
    )


def test_binary_cross_entropy_from_logits_matches_the_log_formula(key):
    params = ffnn_jax.init_params(key, [3, 1])
    x = jax.random.normal(key, (6, 3))
    y = jnp.array([0, 1, 1, 0, 1, 0])
    s = np.asarray(ffnn_jax.forward(params, x))[:, 0].astype(np.float64)
    p = 1 / (1 + np.exp(-s))
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    np.testing.assert_allclose(ffnn_jax.loss(params, (x, y), loss="binary_cross_entropy"), expected, rtol=1e-5)


def test_cross_entropy_stays_finite_for_huge_logits(key):
    params = ffnn_jax.init_params(key, [2, 3])
    params = (params[0]._replace(W=params[0].W * 1e4),)
    x = jnp.ones((2, 2)) * 100.0
    assert np.isfinite(float(ffnn_jax.loss(params, (x, jnp.array([0, 1])))))


def test_weight_decay_adds_half_lambda_squared_norm_of_weights_only(net):
    params, x, y = net
    params = tuple(p._replace(b=p.b + 1.0) for p in params)
    base = ffnn_jax.loss(params, (x, y))
    penalty = 0.5 * sum(float(jnp.sum(p.W**2)) for p in params)
    np.testing.assert_allclose(ffnn_jax.loss(params, (x, y), weight_decay=0.3) - base, 0.3 * penalty, rtol=1e-5)


@JIT_VARIANTS
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error", "binary_cross_entropy"])
def test_grad_of_loss_has_exactly_the_structure_shapes_and_dtypes_of_params(net, variant, loss):
    params, x, y = net
    if loss == "binary_cross_entropy":
        y = jax.nn.one_hot(y, 3)
    grads = variant(jax.grad(lambda p, b: ffnn_jax.loss(p, b, loss=loss, weight_decay=0.1)))(params, (x, y))
    assert_same_structure_shapes_dtypes(grads, params)
    assert all(isinstance(g, ffnn_jax.LayerParams) for g in grads)


def test_grad_matches_finite_differences(net):
    params, x, y = net
    from jax.test_util import check_grads

    check_grads(
        lambda p: ffnn_jax.loss(p, (x, y), activation="tanh", weight_decay=0.01),
        (params,),
        order=1,
        modes=["rev"],
        atol=5e-2,
        rtol=5e-2,
    )


def test_masked_rows_do_not_count(net):
    params, x, y = net
    mask = jnp.array([1.0] * 5 + [0.0] * 3)
    np.testing.assert_allclose(
        ffnn_jax.loss(params, (x, y), mask=mask), ffnn_jax.loss(params, (x[:5], y[:5])), rtol=1e-6
    )


def test_unknown_activation_or_loss_names_are_rejected(net):
    params, x, y = net
    with pytest.raises(ValueError, match="`activation` must be one of"):
        ffnn_jax.forward(params, x, activation="swishy")
    with pytest.raises(ValueError, match="`loss` must be one of"):
        ffnn_jax.loss(params, (x, y), loss="hinge")


def test_poisson_loss_is_the_log_link_deviance_up_to_a_constant(key):
    params = ffnn_jax.init_params(key, [3, 1])
    x = jax.random.normal(key, (6, 3))
    y = jnp.array([0.0, 1.0, 3.0, 0.0, 2.0, 5.0])
    s = np.asarray(ffnn_jax.forward(params, x))[:, 0].astype(np.float64)
    expected = (np.exp(s) - np.asarray(y) * s).mean()
    np.testing.assert_allclose(ffnn_jax.loss(params, (x, y), loss="poisson"), expected, rtol=1e-5)
