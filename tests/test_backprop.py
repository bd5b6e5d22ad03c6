"""Tests for ffnn_jax._backprop: hand-written backprop equals jax.grad(loss), leaf by leaf, in float64 and float32."""

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_same_structure_shapes_dtypes, x64
from hypothesis import given, settings
from hypothesis import strategies as st

from ffnn_jax._backprop import _DERIVATIVES_BY_NAME, activation_and_derivative, backprop
from ffnn_jax._losses import loss
from ffnn_jax._model import ACTIVATIONS
from ffnn_jax._params import count_params, init_params, ravel
from ffnn_jax._types import LayerParams


# The problems: loss kind id -> (loss name, what y is); ``classification`` is left to be inferred from y's dtype.
LOSS_KINDS = {
    "cross_entropy": ("cross_entropy", "labels"),
    "squared_error_classification": ("squared_error", "labels"),
    "squared_error_regression": ("squared_error", "targets"),
    "binary_cross_entropy": ("binary_cross_entropy", "binary"),
}
SMOOTH_ACTIVATIONS = ("identity", "sigmoid", "tanh", "gelu", "softplus")
TOLERANCES = {"float64": 1e-10, "float32": 1e-5}  # |backprop − jax.grad| ≤ tol · max(1, |jax.grad|)

STATIC = ("activation", "loss", "classification")
jit_backprop = jax.jit(backprop, static_argnames=STATIC)
VARIANTS = {"nojit": backprop, "jit": jit_backprop}


def reference_grad(params, batch, **kwargs):
    return jax.grad(loss)(params, batch, **kwargs)


@functools.partial(jax.jit, static_argnames=STATIC)
def _jit_backprop_and_reference(params, batch, **kwargs):
    return backprop(params, batch, **kwargs), jax.grad(loss)(params, batch, **kwargs)


def make_problem(seed, sizes, batch_size, kind, *, dtype, one_hot=False, masked=False):
    """Random params (biases too), inputs and targets for ``LOSS_KINDS[kind]``: (params, batch, loss kwargs)."""
    loss_name, targets = LOSS_KINDS[kind]
    classification = None
    rng = np.random.default_rng(seed)
    params = tuple(
        LayerParams(
            jnp.asarray(rng.normal(size=(n_in, n_out)) / np.sqrt(n_in), dtype),
            jnp.asarray(0.5 * rng.normal(size=n_out), dtype),
        )
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    )
    n_out = sizes[-1]
    x = jnp.asarray(rng.normal(size=(batch_size, sizes[0])), dtype)
    if targets == "labels":
        labels = rng.integers(0, n_out, batch_size)
        y = jnp.asarray(np.eye(n_out)[labels], dtype) if one_hot else jnp.asarray(labels, jnp.int32)
        classification = True if one_hot and loss_name == "squared_error" else None  # float one-hot reads as regression
    elif targets == "targets":
        y = jnp.asarray(rng.normal(size=(batch_size, n_out)), dtype)
    else:
        y = jnp.asarray(rng.integers(0, 2, (batch_size, n_out)), dtype)
    mask = jnp.asarray(rng.integers(0, 2, batch_size), dtype) if masked else None
    kwargs = {"loss": loss_name, "classification": classification, "mask": mask}
    return params, (x, y), kwargs


WIDTHS = st.integers(1, 16)
BATCH_SIZES = st.one_of(st.just(1), st.integers(1, 16))
# Eager (nojit) backprop compiles each op anew for every new shape, so that variant draws from a few shapes.
FEW_WIDTHS = st.sampled_from([3, 16])
FEW_BATCH_SIZES = st.sampled_from([1, 5])


@st.composite
def problem_settings(draw, widths=WIDTHS, batch_sizes=BATCH_SIZES, activations=tuple(sorted(ACTIVATIONS))):
    """Depth 1-4 weight layers, any activation x loss, weight decay on/off, mask on/off, int or one-hot labels."""
    depth = draw(st.integers(1, 4))
    return {
        "sizes": draw(st.lists(widths, min_size=depth + 1, max_size=depth + 1)),
        "batch_size": draw(batch_sizes),
        "kind": draw(st.sampled_from(tuple(LOSS_KINDS))),
        "activation": draw(st.sampled_from(activations)),
        "weight_decay": draw(st.sampled_from([0.0, 0.3])),
        "one_hot": draw(st.booleans()),
        "masked": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def largest_scaled_difference(a, b) -> float:
    """max over all leaves of |a − b| / max(1, |b|)."""
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y)) / np.maximum(1, np.abs(np.asarray(y)))))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    )


def backprop_and_reference(setting, dtype, variant):
    """(params, backprop, jax.grad) on the problem ``setting`` describes.

    The jit variant compiles both in one program; the nojit one runs both eagerly, which compiles each op once per
    new shape, so it gets few shapes.
    """
    params, batch, kwargs = make_problem(
        setting["seed"],
        setting["sizes"],
        setting["batch_size"],
        setting["kind"],
        dtype=dtype,
        one_hot=setting["one_hot"],
        masked=setting["masked"],
    )
    kwargs.update(activation=setting["activation"], weight_decay=setting["weight_decay"])
    if variant == "jit":
        return (params, *_jit_backprop_and_reference(params, batch, **kwargs))
    return params, backprop(params, batch, **kwargs), reference_grad(params, batch, **kwargs)


def check_backprop_equals_jax_grad(setting, dtype, variant):
    with x64() if dtype == "float64" else contextlib.nullcontext():
        params, by_hand, reference = backprop_and_reference(setting, jnp.dtype(dtype), variant)
        assert_same_structure_shapes_dtypes(by_hand, params)
        assert largest_scaled_difference(by_hand, reference) <= TOLERANCES[dtype]


# Each example compiles one program (about a second on a busy 2-core machine), hence the modest example count.
@settings(max_examples=25, deadline=None)
@given(setting=problem_settings(), dtype=st.sampled_from(list(TOLERANCES)))
def test_jitted_backprop_equals_jax_grad_on_random_networks(setting, dtype):
    check_backprop_equals_jax_grad(setting, dtype, "jit")


# Eager autodiff and eager backprop compile each op once per new shape and dtype, so few examples, in float64 and
# from a few shapes (shared with the exhaustive test below, which runs eagerly too).
@settings(max_examples=6, deadline=None)
@given(setting=problem_settings(widths=FEW_WIDTHS, batch_sizes=FEW_BATCH_SIZES))
def test_eager_backprop_equals_jax_grad_on_random_networks(setting):
    check_backprop_equals_jax_grad(setting, "float64", "nojit")


@pytest.mark.parametrize("kind", list(LOSS_KINDS), ids=list(LOSS_KINDS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS), ids=sorted(ACTIVATIONS))
def test_every_activation_and_loss_pair_equals_jax_grad_in_float64(activation, kind):
    setting = {"sizes": [3, 16, 3], "batch_size": 5, "kind": kind, "activation": activation}
    setting.update(weight_decay=0.1, one_hot=False, masked=False, seed=1)
    with x64():
        _, by_hand, reference = backprop_and_reference(setting, jnp.float64, "nojit")
        assert largest_scaled_difference(by_hand, reference) <= TOLERANCES["float64"]


@pytest.mark.parametrize("name", sorted(ACTIVATIONS), ids=sorted(ACTIVATIONS))
def test_every_hand_written_derivative_equals_jax_grad_of_the_activation(name):
    with x64():
        a = jnp.concatenate([jnp.linspace(-6.0, 6.0, 241), jnp.array([0.0, -0.0, 1e-300, -1e-300, -40.0, 40.0])])
        g, g_prime = activation_and_derivative(name)
        expected = jax.vmap(jax.grad(g))(a)
        np.testing.assert_allclose(g_prime(a, g(a)), expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(
    "activation, derivative_at_zero",
    [("relu", 0.0), ("leaky_relu", 1.0), ("elu", 1.0)],
    ids=["relu_takes_0", "leaky_relu_takes_1", "elu_takes_1"],
)
@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_at_a_pre_activation_of_exactly_zero_both_sides_take_the_same_derivative(
    activation, derivative_at_zero, variant
):
    # W_1 = 0 and b_1 = 0 put every hidden pre-activation at exactly 0; the gradient of W_1 and b_1 is then
    # g′(0) · (the gradient of h_1), so relu′(0) = 0 zeroes them, leaky_relu′(0) = elu′(0) = 1 keeps them.
    g, g_prime = activation_and_derivative(activation)
    assert float(jax.grad(g)(0.0)) == derivative_at_zero
    assert float(g_prime(jnp.zeros(()), g(jnp.zeros(())))) == derivative_at_zero
    params = init_params(jax.random.key(0), [3, 4, 2])
    params = (LayerParams(jnp.zeros((3, 4)), jnp.zeros(4)), params[1])
    batch = (jax.random.normal(jax.random.key(1), (5, 3)), jnp.array([0, 1, 1, 0, 1]))
    by_hand = VARIANTS[variant](params, batch, activation=activation)
    reference = reference_grad(params, batch, activation=activation)
    assert largest_scaled_difference(by_hand, reference) <= 1e-6
    assert bool(jnp.all(by_hand[0].b == 0)) == (derivative_at_zero == 0.0)
    assert bool(jnp.all(by_hand[0].W == 0)) == (derivative_at_zero == 0.0)


def test_ravel_of_the_gradient_lists_dW1_db1_through_dWL_dbL_row_major():
    params = init_params(jax.random.key(0), [3, 4, 2])
    batch = (jax.random.normal(jax.random.key(1), (5, 3)), jnp.array([0, 1, 1, 0, 1]))
    grads = backprop(params, batch, activation="tanh")
    flat, unravel = ravel(grads)
    expected = jnp.concatenate([grads[0].W.reshape(-1), grads[0].b, grads[1].W.reshape(-1), grads[1].b])
    np.testing.assert_array_equal(flat, expected)
    np.testing.assert_array_equal(flat[:4], grads[0].W[0])  # row-major: the first row of ∂L/∂W_1 comes first
    assert_same_structure_shapes_dtypes(unravel(flat), params)


@pytest.mark.parametrize(
    "n, hidden_layers, k", [(1, 0, 1), (4, 1, 3), (5, 3, 2), (16, 2, 10)], ids=["n1_L1_k1", "n4_L2", "n5_L4", "n16_L3"]
)
def test_length_of_the_flat_gradient_is_the_lectures_count(n, hidden_layers, k):
    # Traced, not compiled or run: the length is a static fact of the trace.
    params = jax.eval_shape(lambda: init_params(jax.random.key(0), [n] * (hidden_layers + 1) + [k]))
    batch = (jax.ShapeDtypeStruct((2, n), jnp.float32), jax.ShapeDtypeStruct((2,), jnp.int32))
    flat = jax.eval_shape(lambda p, b: ravel(backprop(p, b, activation="sigmoid"))[0], params, batch)
    assert flat.shape == (hidden_layers * (n**2 + n) + (n * k + k),)
    assert flat.shape == (count_params(params),)


@pytest.mark.parametrize("activation", [jax.nn.relu, jnp.tanh, jax.nn.gelu], ids=["relu", "tanh", "gelu"])
def test_backprop_accepts_the_activation_functions_of_the_table(activation):
    params = init_params(jax.random.key(0), [3, 4, 2])
    batch = (jax.random.normal(jax.random.key(1), (5, 3)), jnp.array([0, 1, 1, 0, 1]))
    by_hand = backprop(params, batch, activation=activation)
    assert largest_scaled_difference(by_hand, reference_grad(params, batch, activation=activation)) <= 1e-5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"activation": lambda a: a**3}, "`activation`"),
        ({"activation": jax.nn.swish}, "`activation`"),
        ({"activation": "swish"}, "`activation`"),
        ({"loss": "hinge"}, "`loss`"),
    ],
    ids=["lambda", "swish_function", "swish_name", "hinge_loss"],
)
def test_backprop_rejects_what_it_has_no_hand_written_derivative_for(kwargs, match):
    params = init_params(jax.random.key(0), [3, 2])
    with pytest.raises(ValueError, match=match):
        backprop(params, (jnp.ones((2, 3)), jnp.array([0, 1])), **kwargs)


def test_every_activation_in_the_model_table_has_a_hand_written_derivative():
    assert set(_DERIVATIVES_BY_NAME) == set(ACTIVATIONS)


def test_backprop_calls_no_autodiff(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("backprop must not use autodiff")

    for name in ("grad", "value_and_grad", "vjp", "jvp", "linearize"):
        monkeypatch.setattr(jax, name, forbidden)
    params = init_params(jax.random.key(0), [3, 4, 2])
    backprop(params, (jnp.ones((2, 3)), jnp.array([0, 1])), activation="gelu", loss="squared_error")


def test_backprop_needs_no_implicit_rank_promotion():
    params = init_params(jax.random.key(0), [3, 4, 2])
    batch = (jnp.ones((2, 3)), jnp.array([0, 1]))
    with jax.numpy_rank_promotion("raise"):
        backprop(params, batch, activation="tanh", mask=jnp.array([1.0, 0.0]), weight_decay=0.1)


def test_backprop_matches_jax_grad_for_the_poisson_loss():
    with x64():
        params = init_params(jax.random.key(3), [4, 5, 2], init="he", dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(4), (7, 4), jnp.float64)
        y = jnp.abs(jax.random.normal(jax.random.key(5), (7, 2), jnp.float64)).round()
        kwargs = dict(activation="tanh", loss="poisson", weight_decay=0.1)
        expected = jax.grad(loss)(params, (x, y), **kwargs)
        got = backprop(params, (x, y), **kwargs)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
