"""Parameter initialisation and the lecture's flat view of θ.

Params are a tuple with one :class:`LayerParams` per layer, ``W`` of shape ``[n_in, n_out]`` and
``b`` of shape ``[n_out]`` (batch-first: a layer computes ``x @ W + b``; equinox stores the
transpose). :func:`ravel` gives θ as one vector in the lecture's order: W_1, b_1, W_2, b_2, ...
"""

import functools
from typing import Callable, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._cache import quick_jit
from ._errors import check_choice, check_positive_int
from ._types import Array, LayerParams, Params, PRNGKey


class _Scheme(NamedTuple):
    """A built-in weight init: a standard draw scaled per layer by ``scale(n_in, n_out)``."""

    distribution: str  # "normal" N(0, 1), "uniform" U(-1, 1), or "zeros"
    scale: Callable[[int, int], float]


_GLOROT_UNIFORM = _Scheme("uniform", lambda n_in, n_out: np.sqrt(6.0 / (n_in + n_out)))
WEIGHT_INITS: dict = {
    "random": _Scheme("normal", lambda n_in, n_out: 0.01),
    "xavier": _GLOROT_UNIFORM,
    "glorot": _GLOROT_UNIFORM,
    "he": _Scheme("normal", lambda n_in, n_out: np.sqrt(2.0 / n_in)),
    "lecun": _Scheme("normal", lambda n_in, n_out: np.sqrt(1.0 / n_in)),
    "zeros": _Scheme("zeros", lambda n_in, n_out: 0.0),
}


@functools.partial(quick_jit, static_argnames=("sizes", "scheme", "dtype"))
def _draw_weights(key: PRNGKey, *, sizes: Tuple[int, ...], scheme: str, dtype) -> Tuple[Array, ...]:
    """Every layer's W from one draw of Σ n_in·n_out numbers, sliced and scaled per layer.

    One draw, not one per layer: each distinct shape of a threefry draw is its own XLA program,
    about 0.25 s to compile on CPU, which dominated the first ``train()`` call.
    """
    distribution, scale = WEIGHT_INITS[scheme]
    shapes = list(zip(sizes[:-1], sizes[1:]))
    total = sum(n_in * n_out for n_in, n_out in shapes)
    if distribution == "zeros":
        flat = jnp.zeros((total,), dtype)
    elif distribution == "uniform":
        flat = jax.random.uniform(key, (total,), dtype, minval=-1.0, maxval=1.0)
    else:
        flat = jax.random.normal(key, (total,), dtype)
    offsets = np.cumsum([0] + [n_in * n_out for n_in, n_out in shapes])
    return tuple(
        (scale(n_in, n_out) * flat[start : start + n_in * n_out]).reshape(n_in, n_out).astype(dtype)
        for (n_in, n_out), start in zip(shapes, offsets)
    )


def check_layer_sizes(layer_sizes: Sequence[int], name: str = "layer_sizes") -> Tuple[int, ...]:
    """Returns ``layer_sizes`` as a tuple of ints, or raises naming what was expected."""
    if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
        raise TypeError(f"`{name}` must be a sequence of positive integers, got {layer_sizes!r}")
    sizes = list(layer_sizes)
    if len(sizes) < 2:
        raise ValueError(f"`{name}` must have at least 2 entries (inputs, outputs), got {sizes}")
    for i, size in enumerate(sizes):
        check_positive_int(f"{name}[{i}]", size)
    return tuple(int(s) for s in sizes)


def init_params(
    key: PRNGKey,
    layer_sizes: Sequence[int],
    *,
    init: str | Callable = "xavier",
    dtype=jnp.float32,
) -> Params:
    """Initialises a fully connected network.

    Weight schemes (``n_in``, ``n_out`` are the layer's fan-in and fan-out; biases are always 0):

    - ``"random"``: ``W ~ N(0, 0.01²)``, the lecture's small random init.
    - ``"xavier"`` (alias ``"glorot"``): Glorot uniform, ``W ~ U(-a, a)``,
      ``a = sqrt(6 / (n_in + n_out))``.
    - ``"he"``: He (Kaiming) normal, ``W ~ N(0, 2 / n_in)``, for ReLU networks.
    - ``"lecun"``: LeCun normal, ``W ~ N(0, 1 / n_in)``.
    - ``"zeros"``: ``W = 0`` (symmetric: hidden units never differ; for tests and convex models).
    - a callable ``init(key, (n_in, n_out), dtype) -> W``.

    Args:
      key: a PRNG key. Built-in schemes make one draw for all layers (layer i takes the next
        n_in·n_out numbers); a callable gets one split of the key per layer.
      layer_sizes: ``[n_input, n_hidden_1, ..., n_output]``, at least 2 entries.
      init: a scheme name (case-insensitive) or a callable.
      dtype: a floating dtype for every leaf.

    Returns:
      A tuple of ``LayerParams(W=[n_in, n_out], b=[n_out])``, one per layer.

    Examples:
      >>> params = init_params(jax.random.key(0), [4, 8, 3])
      >>> [p.W.shape for p in params]
      [(4, 8), (8, 3)]
    """
    sizes = check_layer_sizes(layer_sizes)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`dtype` must be a floating dtype, got {dtype!r}")
    if callable(init):
        keys = jax.random.split(key, len(sizes) - 1)
        weights = [
            jnp.asarray(init(k, (n_in, n_out), dtype), dtype) for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
        ]
    else:
        scheme = check_choice("init", init, WEIGHT_INITS)
        weights = _draw_weights(key, sizes=sizes, scheme=scheme, dtype=jnp.dtype(dtype))
    return with_zero_biases(weights, dtype)


def with_zero_biases(weights: Sequence[Array], dtype) -> Params:
    """The layers of ``weights`` with b = 0 (host zeros put on the device: a transfer, where ``jnp.zeros``
    or ``jnp.asarray`` would each compile a program)."""
    return tuple(LayerParams(W=W, b=jax.device_put(np.zeros((W.shape[1],), jnp.dtype(dtype)))) for W in weights)


@functools.partial(quick_jit, static_argnames=("sizes", "scheme", "dtype"))
def first_draws(seed: Array, *, sizes: Tuple[int, ...], scheme: str, dtype) -> Tuple[Tuple[Array, ...], PRNGKey]:
    """``train()``'s first random numbers in one program: ``key(seed)`` split into the init key (every
    W, as :func:`init_params` draws them) and the data-order key. ``seed`` is an int32 [] array."""
    init_key, order_key = jax.random.split(jax.random.key(seed))
    return _draw_weights(init_key, sizes=sizes, scheme=scheme, dtype=dtype), order_key


def check_params(params, name: str = "params") -> None:
    """Raises a ``TypeError`` naming ``name`` unless ``params`` is a non-empty sequence of layers
    with ``W`` and ``b`` (what :func:`init_params` returns); a trained model gets a pointer to its
    ``.params``. Structure only: it runs at trace time inside jitted code too."""
    if (
        isinstance(params, (tuple, list))
        and params
        and all(hasattr(layer, "W") and hasattr(layer, "b") for layer in params)
    ):
        return
    hint = ""
    if hasattr(params, "params") and hasattr(params, "predict"):
        hint = (
            f" This is a {type(params).__name__}: pass its `.params`, or use its own methods "
            "(`.predict(x)`, `.evaluate(x, y)`: labels as given in training)."
        )
    elif isinstance(params, (tuple, list)) and params and all(isinstance(layer, dict) for layer in params):
        hint = " Wrap each layer's dict as ffnn_jax.LayerParams(W=..., b=...)."
    raise TypeError(
        f"`{name}` must be the network's layers: a tuple of LayerParams(W [n_in, n_out], b [n_out]) as "
        f"init_params returns, got {type(params).__name__}.{hint}"
    )


def layer_sizes_of(params: Params) -> Tuple[int, ...]:
    """Returns ``(n_input, n_hidden_1, ..., n_output)`` read off the weight shapes."""
    check_params(params)
    return (params[0].W.shape[0],) + tuple(layer.W.shape[1] for layer in params)


def count_params(params: Params) -> int:
    """Returns the number of scalars in θ: Σ_i (n_in_i · n_out_i + n_out_i)."""
    check_params(params)
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))


def ravel(params: Params) -> Tuple[Array, Callable[[Array], Params]]:
    """Returns θ as one vector and the function mapping such a vector back to the pytree.

    The order is the lecture's: all of W_1 (row-major), b_1, W_2, b_2, ..., W_L, b_L. Applied to
    a gradient pytree it gives the flat ∇θ.
    """
    check_params(params)
    return ravel_pytree(params)
