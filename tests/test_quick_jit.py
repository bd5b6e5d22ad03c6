"""quick_jit: the one-off set-up programs compile with fewer optimisations on a CPU, and fall back to a plain jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ffnn_jax
from ffnn_jax import _cache
from ffnn_jax._params import _draw_weights, first_draws


def _affine(x, *, scale):
    return x * scale + 1.0


def test_a_quick_program_computes_what_a_plain_jit_computes_also_when_nested():
    quick = _cache.quick_jit(_affine, static_argnames="scale")
    x = jnp.arange(5.0)
    np.testing.assert_array_equal(quick(x, scale=3.0), jax.jit(_affine, static_argnames="scale")(x, scale=3.0))
    # inside another jit the options may not be given (a nested jit): it traces as a plain one
    np.testing.assert_array_equal(jax.jit(lambda v: quick(v, scale=2.0) * 2)(x), (x * 2 + 1) * 2)


def test_an_option_this_xla_does_not_know_falls_back_to_a_plain_jit(monkeypatch):
    monkeypatch.setattr(_cache, "_QUICK_CPU_OPTIONS", {"xla_cpu_no_such_option_anywhere": False})
    quick = _cache.quick_jit(_affine, static_argnames="scale")
    np.testing.assert_array_equal(quick(jnp.ones(3), scale=2.0), np.full(3, 3.0))
    np.testing.assert_array_equal(quick(jnp.ones(4), scale=2.0), np.full(4, 3.0))  # a new shape: straight to plain


def test_an_error_that_is_not_about_options_still_raises():
    def bad(x):
        return jnp.dot(x, jnp.ones((4, 2)))  # [3] · [4, 2]: a shape error while tracing

    with pytest.raises(TypeError, match="dot"):
        _cache.quick_jit(bad)(jnp.ones(3))


def test_train_s_first_draws_equal_init_params_for_every_scheme():
    # both go through quick_jit, so a weight drawn by train(seed=s) is init_params(key(s)) exactly
    for scheme in ("random", "xavier", "he", "lecun"):
        weights, _ = first_draws(np.int32(3), sizes=(6, 5, 2), scheme=scheme, dtype=jnp.dtype("float32"))
        init_key, _ = jax.random.split(jax.random.key(3))
        params = ffnn_jax.init_params(init_key, (6, 5, 2), init=scheme)
        for W, layer in zip(weights, params):
            np.testing.assert_array_equal(W, layer.W)
        direct = _draw_weights(init_key, sizes=(6, 5, 2), scheme=scheme, dtype=jnp.dtype("float32"))
        np.testing.assert_array_equal(direct[0], params[0].W)
