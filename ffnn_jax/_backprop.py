"""Backpropagation written out from the lecture's equations, in plain ``jax.numpy`` and without autodiff.

The forward pass stores every pre-activation ``a_i = h_{i-1} W_i + b_i`` and activation ``h_i = g(a_i)`` (``h_0 = x``,
the last layer is linear: the scores are ``s = a_L``). The backward pass starts from ∇a_L = ∂L/∂s, given in closed form
for each loss, and walks down the layers::

    ∇W_i = h_{i-1}^T ∇a_i + λ W_i        ∇b_i = Σ_n ∇a_i[n]
    ∇h_{i-1} = ∇a_i W_i^T                ∇a_{i-1} = ∇h_{i-1} ⊙ g′(a_{i-1})

It exists to be checked against ``jax.grad(loss)`` (see :mod:`ffnn_jax._gradcheck`), so it computes exactly the
objective of :func:`ffnn_jax._losses.loss`, mask and weight decay included. Every built-in activation has a
hand-written derivative g′; at the points where g is not differentiable the values follow ``jax.grad``:

- ``relu′(0) = 0``: the custom JVP of ``jax.nn.relu`` selects ``x > 0``.
- ``leaky_relu′(0) = 1``: ``jax.nn.leaky_relu`` takes its ``x >= 0`` branch at 0.
- ``elu′(0) = 1``: both one-sided derivatives are 1 for ``alpha = 1``, so there is no choice to make.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._losses import _as_one_hot, canonical_loss
from ._model import ACTIVATIONS, resolve_activation
from ._params import check_params
from ._types import Activation, Array, Batch, Params


_GELU_C = 0.044715  # the cubic coefficient of jax.nn.gelu's tanh approximation


def _gelu_derivative(a: Array, h: Array) -> Array:
    """d/da of a · ½(1 + tanh(u)), u = √(2/π)(a + c a³): the tanh form of ``jax.nn.gelu(approximate=True)``."""
    del h
    k = np.sqrt(2 / np.pi).astype(a.dtype)
    t = jnp.tanh(k * (a + _GELU_C * a**3))
    return 0.5 * (1 + t) + 0.5 * a * (1 - t**2) * k * (1 + 3 * _GELU_C * a**2)


def _identity_derivative(a: Array, h: Array) -> Array:
    del h
    return jnp.ones_like(a)


# g′(a, h) with h = g(a) already computed by the forward pass; keyed by the names in ``ACTIVATIONS``.
_DERIVATIVES_BY_NAME: dict = {
    "identity": _identity_derivative,
    "linear": _identity_derivative,
    "sigmoid": lambda a, h: h * (1 - h),
    "logistic": lambda a, h: h * (1 - h),
    "tanh": lambda a, h: 1 - h**2,
    "relu": lambda a, h: (a > 0).astype(a.dtype),
    "leaky_relu": lambda a, h: jnp.where(a >= 0, 1, 0.01).astype(a.dtype),
    "gelu": _gelu_derivative,
    "softplus": lambda a, h: jax.nn.sigmoid(a),
    "elu": lambda a, h: jnp.where(a > 0, 1, jnp.exp(jnp.minimum(a, 0))).astype(a.dtype),
}
# The same table keyed by the activation function itself, so that ``activation=jax.nn.relu`` works too.
_DERIVATIVES = {ACTIVATIONS[name]: derivative for name, derivative in _DERIVATIVES_BY_NAME.items()}


def activation_and_derivative(activation: Activation) -> tuple[Callable, Callable]:
    """Returns ``(g, g′)`` with ``g′(a, h)`` the hand-written derivative at pre-activation a, where h = g(a).

    Raises:
      ValueError: ``activation`` names no built-in activation, or is a callable without a hand-written
        derivative (backprop uses no autodiff, so it cannot differentiate an arbitrary function).
    """
    g = resolve_activation(activation)
    derivative = _DERIVATIVES.get(g)
    if derivative is None:
        names = sorted(_DERIVATIVES_BY_NAME)
        raise ValueError(
            f"`activation` must be one of {names} or one of their functions in ffnn_jax._model.ACTIVATIONS "
            f"(backprop has no hand-written derivative for other callables), got {activation!r}"
        )
    return g, derivative


def output_gradient(
    scores: Array,
    y: Array,
    *,
    loss: str = "cross_entropy",
    classification: bool | None = None,
    mask: Array | None = None,
) -> Array:
    """∂L/∂s for the data term of :func:`ffnn_jax._losses.loss`, in closed form.

    With weights w_n = 1/N (or mask_n / max(Σ mask, 1)), ŷ = softmax(s) and t the (one-hot) target, row n is w_n times:

    - cross-entropy: ``ŷ Σ_j t_j − t``, i.e. ``−(e_y − ŷ)`` for a one-hot or integer label;
    - squared error on softmax outputs: ``ŷ ⊙ (u − ŷ·u)`` with ``u = 2(ŷ − t)`` (u through the softmax Jacobian);
    - squared error on raw scores (regression): ``2(s − y)``;
    - binary cross-entropy from logits: ``σ(s) − y``;
    - Poisson deviance with a log link: ``exp(s) − y``.

    Args:
      scores: the network's scores ``[N, k]``.
      y: int labels ``[N]``, one-hot or float targets ``[N, k]`` (``[N]`` when k = 1 for regression and BCE).
      loss: a name or alias from ``ffnn_jax._losses.LOSS_ALIASES``.
      classification: as for :func:`ffnn_jax._losses.loss`; inferred from y's integer dtype when None.
      mask: optional per-example weights ``[N]``.

    Returns:
      ``[N, k]``, the dtype of ``scores``.
    """
    loss = canonical_loss(loss)
    if loss == "cross_entropy":
        target = _as_one_hot(y, scores).astype(scores.dtype)
        delta = jax.nn.softmax(scores) * jnp.sum(target, axis=-1, keepdims=True) - target
    elif loss == "binary_cross_entropy":
        delta = jax.nn.sigmoid(scores) - y.reshape(scores.shape).astype(scores.dtype)
    elif loss == "poisson":
        delta = jnp.exp(scores) - y.reshape(scores.shape).astype(scores.dtype)
    else:
        if classification is None:
            classification = jnp.issubdtype(y.dtype, jnp.integer)
        if classification:
            probs = jax.nn.softmax(scores)
            upstream = 2 * (probs - _as_one_hot(y, scores).astype(scores.dtype))
            delta = probs * (upstream - jnp.sum(probs * upstream, axis=-1, keepdims=True))
        else:
            delta = 2 * (scores - y.reshape(scores.shape).astype(scores.dtype))
    if mask is None:
        return delta / scores.shape[0]
    weights = mask / jnp.maximum(jnp.sum(mask), 1)
    return delta * weights[:, None].astype(scores.dtype)


def backprop(
    params: Params,
    batch: Batch,
    *,
    activation: Activation = "relu",
    loss: str = "cross_entropy",
    weight_decay: float | Array = 0.0,
    classification: bool | None = None,
    mask: Array | None = None,
) -> Params:
    """∇θ of :func:`ffnn_jax._losses.loss` by backpropagation from the lecture's equations (no autodiff).

    Takes the same arguments as ``loss`` and returns what ``jax.grad(loss)`` returns, up to rounding. It can be
    jitted (close over or mark static ``activation``, ``loss`` and ``classification``).

    Args:
      params: a tuple of ``LayerParams(W=[n_in, n_out], b=[n_out])``.
      batch: ``(x [N, n_in], y)``, y as for ``loss``.
      activation: hidden activation: a name from ``ACTIVATIONS`` or one of its functions (e.g. ``jax.nn.relu``).
      loss: ``"cross_entropy"``, ``"squared_error"`` or ``"binary_cross_entropy"`` (or an alias).
      weight_decay: λ ≥ 0 of the penalty (λ/2) Σ_i ‖W_i‖² (biases are not decayed).
      classification: squared error on softmax outputs (True) or raw scores (False); from y's dtype when None.
      mask: optional ``[N]`` weights; the data term is then Σ mask_n ℓ_n / max(Σ mask, 1), as in ``loss``.

    Returns:
      The gradient pytree: the structure, shapes and dtypes of ``params``.

    Raises:
      ValueError: an unknown ``loss`` or ``activation`` name, or a callable activation without a hand-written
        derivative.

    Examples:
      >>> params = init_params(jax.random.key(0), [2, 3, 2])
      >>> x, y = jnp.ones((4, 2)), jnp.array([0, 1, 1, 0])
      >>> [g.W.shape for g in backprop(params, (x, y), activation="tanh")]
      [(2, 3), (3, 2)]
    """
    check_params(params)
    g, g_prime = activation_and_derivative(activation)
    x, y = batch
    # Forward, keeping a_i and h_i; hs[i] is the input of layer i (hs[0] = x).
    hs: list[Array] = [x]
    pre_activations: list[Array] = []
    for layer in params[:-1]:
        pre_activations.append(hs[-1] @ layer.W + layer.b[None, :])
        hs.append(g(pre_activations[-1]))
    scores = hs[-1] @ params[-1].W + params[-1].b[None, :]
    # Backward: grad_a is ∇a_i for the layer being visited, from the top down.
    grad_a = output_gradient(scores, y, loss=loss, classification=classification, mask=mask)
    grads = []
    for i in reversed(range(len(params))):
        layer = params[i]
        grad_w = hs[i].T @ grad_a + weight_decay * layer.W
        grads.append((grad_w.astype(layer.W.dtype), jnp.sum(grad_a, axis=0).astype(layer.b.dtype)))
        if i > 0:
            grad_a = (grad_a @ layer.W.T) * g_prime(pre_activations[i - 1], hs[i])
    leaves = [leaf for layer_grads in reversed(grads) for leaf in layer_grads]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), leaves)
