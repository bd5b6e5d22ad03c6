"""The forward pass: hidden layers ``h = g(h @ W + b)``, a linear last layer giving scores."""

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from ._errors import check_choice
from ._params import check_params
from ._sparse import SparseRows, first_layer
from ._types import Activation, Array, Params


ACTIVATIONS: dict = {
    "identity": lambda a: a,
    "linear": lambda a: a,
    "sigmoid": jax.nn.sigmoid,
    "logistic": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "gelu": jax.nn.gelu,
    "softplus": jax.nn.softplus,
    "elu": jax.nn.elu,
}


def resolve_activation(activation: Activation) -> Callable[[Array], Array]:
    """Maps an activation name (case-insensitive) or callable to the element-wise function."""
    if callable(activation):
        return activation
    return ACTIVATIONS[check_choice("activation", activation, ACTIVATIONS)]


def forward(
    params: Params,
    x: Array,
    *,
    activation: Activation = "relu",
    dropout: Sequence[float] = (),
    key: Optional[Array] = None,
) -> Array:
    """Computes the network's scores (logits for classification, outputs for regression).

    Args:
      params: a tuple of ``LayerParams`` as made by :func:`init_params`.
      x: inputs ``[batch, n_in]`` (an array, or :class:`ffnn_jax._sparse.SparseRows`).
      activation: the hidden activation g, a name from ``ACTIVATIONS`` or a callable.
      dropout: training only, with ``key``: the drop rate of each hidden layer's output
        (inverted dropout: kept units are scaled by 1 / (1 − rate), so nothing changes at predict).
      key: PRNG key for the dropout masks; None means no dropout (prediction).

    Returns:
      Scores ``[batch, n_out]``; the last layer is linear (no softmax).
    """
    check_params(params)
    g = resolve_activation(activation)
    h = x
    keys = jax.random.split(key, max(1, len(params) - 1)) if key is not None and any(dropout) else None
    for i, layer in enumerate(params[:-1]):
        h = g(first_layer(h, layer.W, layer.b) if isinstance(h, SparseRows) else h @ layer.W + layer.b)
        rate = dropout[i] if keys is not None else 0.0
        if rate > 0:
            keep = jax.random.bernoulli(keys[i], 1.0 - rate, h.shape)
            h = jnp.where(keep, h / (1.0 - rate), jnp.zeros((), h.dtype))
    last = params[-1]
    return first_layer(h, last.W, last.b) if isinstance(h, SparseRows) else h @ last.W + last.b
