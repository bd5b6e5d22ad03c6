"""Losses: element-wise terms (one value per example) and the scalar objective ``loss``.

The objective is the lecture's batch mean plus an L2 penalty (λ/2) Σ_i ‖W_i‖² on weights only.
Every per-example function takes the network's raw scores, never probabilities, so softmax and
sigmoid are folded into the loss in a numerically stable way.
"""

from typing import Optional, Sequence, Tuple

import jax
import jax.numpy as jnp

from ._errors import check_choice
from ._model import forward
from ._params import check_params
from ._types import Activation, Array, Batch, Params


def softmax_cross_entropy(scores: Array, y: Array) -> Array:
    """``-log softmax(scores)[y]`` per example; y is int labels ``[batch]`` or one-hot ``[batch, k]``."""
    # Labels go through a one-hot product, not take_along_axis: on CPU the gather and the scatter
    # of its gradient cost more than the element-wise product for the few classes of an MLP.
    return -jnp.sum(_as_one_hot(y, scores) * jax.nn.log_softmax(scores), axis=-1)


def _as_one_hot(y: Array, scores: Array) -> Array:
    return y if y.ndim == scores.ndim else jax.nn.one_hot(y, scores.shape[-1], dtype=scores.dtype)


def squared_error(scores: Array, y: Array, *, classification: bool) -> Array:
    """``Σ_j (ŷ_j − y_j)²`` per example; for classification ŷ = softmax(scores) and y one-hot."""
    if classification:
        prediction, target = jax.nn.softmax(scores), _as_one_hot(y, scores)
    else:
        prediction, target = scores, y.reshape(scores.shape)
    return jnp.sum((prediction - target) ** 2, axis=-1)


def binary_cross_entropy(scores: Array, y: Array) -> Array:
    """``Σ_j −[y_j log σ(s_j) + (1 − y_j) log(1 − σ(s_j))]`` per example, from logits."""
    y = y.reshape(scores.shape).astype(scores.dtype)
    return jnp.sum(jax.nn.softplus(scores) - y * scores, axis=-1)


def poisson_deviance(scores: Array, y: Array) -> Array:
    """Half Poisson deviance with a log link, less terms constant in θ: ``Σ_j exp(s_j) − y_j s_j``.

    The predicted mean is ``exp(scores)``; y holds non-negative counts or rates.
    """
    y = y.reshape(scores.shape).astype(scores.dtype)
    return jnp.sum(jnp.exp(scores) - y * scores, axis=-1)


LOSSES = ("cross_entropy", "squared_error", "binary_cross_entropy", "poisson")
LOSS_ALIASES = {
    "cross_entropy": "cross_entropy",
    "categorical_cross_entropy": "cross_entropy",
    "log_loss": "cross_entropy",
    "squared_error": "squared_error",
    "mean_squared_error": "squared_error",
    "mse": "squared_error",
    "binary_cross_entropy": "binary_cross_entropy",
    "poisson": "poisson",
}


def canonical_loss(name: str) -> str:
    """Maps a loss name or alias (case-insensitive) to one of ``LOSSES``."""
    return LOSS_ALIASES[check_choice("loss", name, LOSS_ALIASES)]


def per_example_loss(scores: Array, y: Array, loss: str, *, classification: Optional[bool] = None) -> Array:
    """One loss value per example ``[batch]`` for the named loss.

    ``classification`` only matters for squared error: it is inferred from y (integer labels or
    a one-hot matrix of the scores' shape) when not given.
    """
    loss = canonical_loss(loss)
    if loss == "cross_entropy":
        return softmax_cross_entropy(scores, y)
    if loss == "binary_cross_entropy":
        return binary_cross_entropy(scores, y)
    if loss == "poisson":
        return poisson_deviance(scores, y)
    if classification is None:
        classification = jnp.issubdtype(y.dtype, jnp.integer)
    return squared_error(scores, y, classification=classification)


def l2_penalty(params: Params) -> Array:
    """``(1/2) Σ_i ‖W_i‖²`` over weight matrices only (biases are not decayed)."""
    return _half_sum_of_squares(tuple(layer.W for layer in params))


def _half_sum_of_squares(weights: Tuple[Array, ...]) -> Array:
    return 0.5 * sum(jnp.sum(W**2) for W in weights)


@jax.custom_jvp
def _gated_penalty(weight_decay: Array, weights: Tuple[Array, ...]) -> Array:
    """``λ · (1/2) Σ‖W‖²`` that skips the per-leaf reductions when λ = 0 (a measurable part of a
    small network's step; BENCHMARKS.md, "Design measurements"). Its derivative is the plain ``λ Σ ⟨W, dW⟩``, so the gradient ``λW`` stays
    element-wise (fused into the update) rather than a branch that builds zeros of every W."""
    zero = jnp.zeros((), jnp.result_type(weight_decay, *weights))
    return jax.lax.cond(weight_decay > 0, lambda w: weight_decay * _half_sum_of_squares(w), lambda w: zero, weights)


def _gated_penalty_jvp(primals, tangents):
    weight_decay, weights = primals
    d_weight_decay, d_weights = tangents
    tangent = 0.0
    if not isinstance(d_weight_decay, jax.custom_derivatives.SymbolicZero):
        tangent = d_weight_decay * _half_sum_of_squares(weights)
    for W, dW in zip(weights, d_weights):
        if not isinstance(dW, jax.custom_derivatives.SymbolicZero):
            tangent = tangent + weight_decay * jnp.vdot(W, dW)
    value = _gated_penalty(weight_decay, weights)
    return value, jnp.asarray(tangent, value.dtype)


_gated_penalty.defjvp(_gated_penalty_jvp, symbolic_zeros=True)


def objective_and_scores(
    params: Params,
    batch: Batch,
    *,
    activation: Activation = "relu",
    loss: str = "cross_entropy",
    weight_decay: float | Array = 0.0,
    classification: Optional[bool] = None,
    mask: Optional[Array] = None,
    compute_dtype=None,
    dropout: Sequence[float] = (),
    key: Optional[Array] = None,
) -> Tuple[Array, Array]:
    """:func:`loss` and the scores ``[N, n_out]`` it was computed from (for metrics).

    With ``compute_dtype`` (e.g. ``jnp.bfloat16``) the forward pass (and so the backward
    matmuls) runs on copies of params and x in that dtype, while the loss, the penalty and the
    gradient stay in the params' dtype: mixed precision with float32 master weights. ``dropout``
    and ``key`` go to :func:`forward` (training with dropout).
    """
    x, y = batch
    if compute_dtype is None:
        scores = forward(params, x, activation=activation, dropout=dropout, key=key)
    else:
        low = jax.tree_util.tree_map(  # floating leaves only (sparse rows hold int32 column indices)
            lambda leaf: leaf.astype(compute_dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf, (params, x)
        )
        scores = forward(*low, activation=activation, dropout=dropout, key=key).astype(params[-1].W.dtype)
    per_example = per_example_loss(scores, y, loss, classification=classification)
    if mask is None:
        data_term = jnp.mean(per_example)
    else:
        data_term = jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1)
    if isinstance(weight_decay, (int, float)):
        penalty = weight_decay * l2_penalty(params) if weight_decay else 0.0
    else:  # λ as an array, so that changing it never recompiles
        penalty = _gated_penalty(weight_decay, tuple(layer.W for layer in params))
    return data_term + penalty, scores


def loss(
    params: Params,
    batch: Batch,
    *,
    activation: Activation = "relu",
    loss: str = "cross_entropy",
    weight_decay: float | Array = 0.0,
    classification: Optional[bool] = None,
    mask: Optional[Array] = None,
) -> Array:
    """The scalar objective ``(1/N) Σ_i ℓ(scores_i, y_i) + (λ/2) Σ_i ‖W_i‖²``.

    Args:
      params: network parameters.
      batch: ``(x [N, n_in], y)`` with y int labels ``[N]``, one-hot ``[N, k]``, or float targets.
      activation: hidden activation.
      loss: ``"cross_entropy"``, ``"squared_error"`` (alias ``"mean_squared_error"``),
        ``"binary_cross_entropy"`` or ``"poisson"`` (log link: the mean is ``exp(scores)``).
      weight_decay: λ ≥ 0 (a float or a scalar array; arrays avoid recompiles).
      classification: squared error on softmax outputs (True) or raw scores (False); inferred
        from the dtype of y when None.
      mask: optional ``[N]`` weights (0/1 for padding); the mean is then over Σ mask.

    Returns:
      A scalar. ``jax.grad(loss)`` has the structure, shapes and dtypes of ``params``.

    Examples:
      >>> params = init_params(jax.random.key(0), [2, 3])
      >>> x, y = jnp.ones((4, 2)), jnp.array([0, 1, 2, 0])
      >>> jax.tree.structure(jax.grad(loss)(params, (x, y))) == jax.tree.structure(params)
      True
    """
    check_params(params)
    value, _ = objective_and_scores(
        params,
        batch,
        activation=activation,
        loss=loss,
        weight_decay=weight_decay,
        classification=classification,
        mask=mask,
    )
    return value
