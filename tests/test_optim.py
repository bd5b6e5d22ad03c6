"""Optimizers: the lecture's update rules, hyperparameters held as arrays, schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ffnn_jax
from ffnn_jax._optim import lr_factor


def _quadratic_grad(theta):
    # f(θ) = ½ θᵀ A θ with a fixed diagonal A: ∇f = A θ.
    return np.array([1.0, 10.0]) * theta


def _run(optimizer, steps=5):
    theta = jnp.array([1.0, -2.0])
    state = optimizer.init(theta)
    trajectory = []
    for _ in range(steps):
        updates, state = optimizer.update(jnp.asarray(_quadratic_grad(np.asarray(theta))), state, theta)
        theta = optax.apply_updates(theta, updates)
        trajectory.append(np.asarray(theta))
    return np.array(trajectory)


def test_sgd_is_theta_minus_eta_grad():
    got = _run(ffnn_jax.make_optimizer("sgd", learning_rate=0.05), steps=1)[0]
    np.testing.assert_allclose(got, np.array([1.0, -2.0]) - 0.05 * _quadratic_grad(np.array([1.0, -2.0])), rtol=1e-6)


def test_momentum_matches_the_lecture_velocity_form():
    eta, beta = 0.05, 0.9
    theta, u, expected = np.array([1.0, -2.0]), np.zeros(2), []
    for _ in range(5):
        u = beta * u + eta * _quadratic_grad(theta)
        theta = theta - u
        expected.append(theta)
    got = _run(ffnn_jax.make_optimizer("momentum", learning_rate=eta, momentum=beta))
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-5)


def test_nag_holds_the_lecture_look_ahead_points():
    eta, beta = 0.05, 0.9
    theta, u, look_ahead_points = np.array([1.0, -2.0]), np.zeros(2), []
    for _ in range(5):
        look_ahead = theta - beta * u
        u = beta * u + eta * _quadratic_grad(look_ahead)
        theta = theta - u
        look_ahead_points.append(theta - beta * u)
    got = _run(ffnn_jax.make_optimizer("nag", learning_rate=eta, momentum=beta))
    np.testing.assert_allclose(got, np.array(look_ahead_points), rtol=1e-5)


def test_rmsprop_puts_epsilon_outside_the_root_as_the_lecture_does():
    eta, beta, eps = 0.01, 0.9, 0.5  # a large ε makes the placement visible
    theta, v, expected = np.array([1.0, -2.0]), np.zeros(2), []
    for _ in range(3):
        g = _quadratic_grad(theta)
        v = beta * v + (1 - beta) * g**2
        theta = theta - eta * g / (np.sqrt(v) + eps)
        expected.append(theta)
    got = _run(ffnn_jax.make_optimizer("rmsprop", learning_rate=eta, beta=beta, epsilon=eps), steps=3)
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-5)


def test_adam_matches_bias_corrected_moments():
    eta, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    theta, m, v, expected = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2), []
    for t in range(1, 4):
        g = _quadratic_grad(theta)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        theta = theta - eta * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        expected.append(theta)
    np.testing.assert_allclose(
        _run(ffnn_jax.make_optimizer("adam", learning_rate=eta), steps=3), np.array(expected), rtol=1e-5
    )


@pytest.mark.parametrize("name", ["sgd", "momentum", "nag", "rmsprop", "adagrad", "adam", "nadam", "adamw"])
def test_every_named_optimizer_keeps_its_hyperparameters_as_float32_arrays(name, key):
    params = ffnn_jax.init_params(key, [3, 2])
    state = ffnn_jax.make_optimizer(name, learning_rate=0.02).init(params)
    assert isinstance(state.hyperparams["learning_rate"], jax.Array)
    assert state.hyperparams["learning_rate"].dtype == jnp.float32
    np.testing.assert_allclose(state.hyperparams["learning_rate"], 0.02)


def test_schedules_follow_their_formulas():
    kw = dict(decay_rate=0.5, decay_steps=10.0, warmup_steps=0.0)
    np.testing.assert_allclose(lr_factor(20, "exponential", **kw), 0.25, rtol=1e-6)
    np.testing.assert_allclose(lr_factor(19, "step", **kw), 0.5, rtol=1e-6)
    np.testing.assert_allclose(lr_factor(5, "cosine", **kw), 0.5 + 0.5 * 0.5 * (1 + np.cos(np.pi * 0.5)), rtol=1e-6)
    np.testing.assert_allclose(lr_factor(10, "cosine", **kw), 0.5, rtol=1e-6)
    np.testing.assert_allclose(lr_factor(30, "invscaling", **kw), 4.0**-0.5, rtol=1e-6)
    np.testing.assert_allclose(lr_factor(4, "constant", 0.5, 10.0, 10.0), 0.5, rtol=1e-6)  # warm-up: (4+1)/10


def test_gradient_clipping_bounds_the_first_step():
    optimizer = ffnn_jax.make_optimizer("sgd", learning_rate=1.0, max_grad_norm=0.5)
    step = _run(optimizer, steps=1)[0] - np.array([1.0, -2.0])
    np.testing.assert_allclose(np.linalg.norm(step), 0.5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="adamax"), "`optimizer` must be one of"),
        (dict(learning_rate=0.0), "`learning_rate` must be in"),
        (dict(learning_rate=-1.0), "`learning_rate` must be in"),
        (dict(momentum=1.0), "`momentum` must be in"),
        (dict(epsilon=float("nan")), "`epsilon` must be a finite"),
        (dict(lr_schedule="linear"), "`lr_schedule` must be one of"),
    ],
    ids=["name", "zero-lr", "negative-lr", "momentum-1", "nan-eps", "schedule"],
)
def test_bad_optimizer_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ffnn_jax.make_optimizer(**kwargs)
