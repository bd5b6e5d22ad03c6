"""Optimizer names -> optax transformations whose numeric hyperparameters live in the state.

Every built-in optimizer is wrapped in ``optax.inject_hyperparams``: the learning rate, momentum,
betas, epsilon, schedule constants and clipping norm are float32 arrays inside the optimizer
state, not constants baked into the compiled step. Changing them never recompiles, and a sweep
can ``vmap`` over them. Only structural choices (the optimizer's name, the schedule's kind and
whether clipping is on) are static.

Update rules (g = ∇θ, η = learning rate at step t):

- ``"sgd"``: θ ← θ − η g (the lecture's plain gradient descent).
- ``"momentum"``: m ← β m + g, θ ← θ − η m. With a constant η this is the lecture's
  u ← β u + η g, θ ← θ − u (u = η m).
- ``"nag"``: Nesterov. The lecture evaluates g at the look-ahead point θ − β u. optax (and we)
  use the equivalent form that stores the look-ahead point itself, φ = θ − β u:
  m ← β m + g(φ), φ ← φ − η (g(φ) + β m). The gradients seen are the lecture's; the parameters
  held are the look-ahead points (a test pins this against the lecture's recursion).
- ``"rmsprop"``: v ← β v + (1 − β) g², θ ← θ − η g / (√v + ε), the lecture's (and PyTorch's)
  ε outside the root. optax's default puts it inside, √(v + ε); pass
  ``optax.rmsprop(lr)`` directly for that form.
- ``"adagrad"``: v ← v + g², θ ← θ − η g / √(v + ε) (v starts at 0).
- ``"adam"``, ``"nadam"``, ``"adamw"``: as in optax (bias-corrected moments,
  η m̂ / (√v̂ + ε)). For ``"adamw"`` the ``weight_decay`` of :func:`ffnn_jax.train` is the
  decoupled decay applied to weights (not biases) by the optimizer instead of an L2 loss term.

Schedules multiply η by a factor of the step t (after ``warmup_steps`` of linear warm-up from 0):
``"constant"`` 1; ``"exponential"`` r^(t/s); ``"step"`` r^⌊t/s⌋; ``"cosine"``
r + (1 − r)(1 + cos(π min(t, s)/s))/2; ``"invscaling"`` (1 + t/s)^(−r) (scikit-learn's inverse
scaling with power r, counted in steps of s), with r = ``decay_rate`` and s = ``decay_steps``.
"""

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._cache import quick_jit
from ._errors import check_choice, check_non_negative_int, check_positive_int, check_real


OPTIMIZERS = ("sgd", "momentum", "nag", "rmsprop", "adagrad", "adam", "nadam", "adamw")
SCHEDULES = ("constant", "exponential", "step", "cosine", "invscaling")


class OptimizerSpec(NamedTuple):
    """Static, hashable description of an optimizer (numeric values start the hyperparams)."""

    name: str  # one of OPTIMIZERS
    schedule: str = "constant"  # one of SCHEDULES
    clip: bool = False  # global-norm gradient clipping on or off


DEFAULT_HYPERPARAMS = dict(
    learning_rate=0.01,
    momentum=0.9,
    beta=0.9,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
    decoupled_weight_decay=0.0,
    decay_rate=0.1,
    decay_steps=1.0,
    warmup_steps=0.0,
    max_grad_norm=1.0,
)


def lr_factor(step: jax.Array, schedule: str, decay_rate, decay_steps, warmup_steps) -> jax.Array:
    """The schedule's multiplier of η at integer step ``step`` (0-based); see the module docs."""
    t = jnp.asarray(step, jnp.float32)
    warmup = jnp.maximum(jnp.asarray(warmup_steps, jnp.float32), 0.0)
    warm = jnp.where(warmup > 0, jnp.minimum((t + 1.0) / jnp.maximum(warmup, 1.0), 1.0), 1.0)
    t = jnp.maximum(t - warmup, 0.0)
    s = jnp.maximum(jnp.asarray(decay_steps, jnp.float32), 1.0)
    if schedule == "constant":
        decay = jnp.ones_like(t)
    elif schedule == "exponential":
        decay = decay_rate ** (t / s)
    elif schedule == "step":
        decay = decay_rate ** jnp.floor(t / s)
    elif schedule == "cosine":
        decay = decay_rate + (1.0 - decay_rate) * 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(t, s) / s))
    elif schedule == "invscaling":
        decay = (1.0 + t / s) ** (-decay_rate)
    else:
        raise ValueError(f"`lr_schedule` must be one of {list(SCHEDULES)}, got {schedule!r}")
    return warm * decay


def _optimizer_from_hyperparams(
    *,
    name: str,
    schedule: str,
    clip: bool,
    learning_rate,
    momentum,
    beta,
    beta1,
    beta2,
    epsilon,
    decoupled_weight_decay,
    decay_rate,
    decay_steps,
    warmup_steps,
    max_grad_norm,
) -> optax.GradientTransformation:
    """Builds the optax chain from (traced) hyperparameter arrays; called inside each update."""

    def lr(count):
        return learning_rate * lr_factor(count, schedule, decay_rate, decay_steps, warmup_steps)

    if name == "sgd":
        base = optax.sgd(lr)
    elif name == "momentum":
        base = optax.sgd(lr, momentum=momentum)
    elif name == "nag":
        base = optax.sgd(lr, momentum=momentum, nesterov=True)
    elif name == "rmsprop":
        base = optax.rmsprop(lr, decay=beta, eps=epsilon, eps_in_sqrt=False)
    elif name == "adagrad":
        base = optax.adagrad(lr, initial_accumulator_value=0.0, eps=epsilon)
    elif name == "adam":
        base = optax.adam(lr, b1=beta1, b2=beta2, eps=epsilon)
    elif name == "nadam":
        base = optax.nadam(lr, b1=beta1, b2=beta2, eps=epsilon)
    elif name == "adamw":
        base = optax.adamw(
            lr, b1=beta1, b2=beta2, eps=epsilon, weight_decay=decoupled_weight_decay, mask=weights_only_mask
        )
    else:
        raise ValueError(f"`optimizer` must be one of {list(OPTIMIZERS)}, got {name!r}")
    if clip:
        return optax.chain(optax.clip_by_global_norm(max_grad_norm), base)
    return base


def weights_only_mask(params):
    """A pytree of bools: True on every ``W`` leaf, False on biases."""
    return type(params)(layer._replace(W=True, b=False) for layer in params)


def make_optimizer(
    name: str = "sgd",
    *,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    beta: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    decoupled_weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    decay_rate: float = 0.1,
    decay_steps: int = 1,
    warmup_steps: int = 0,
    max_grad_norm: Optional[float] = None,
) -> optax.GradientTransformation:
    """Returns a named optimizer with its numeric hyperparameters held as arrays in its state.

    Args:
      name: one of ``OPTIMIZERS`` (case-insensitive).
      learning_rate: η > 0.
      momentum: β for ``"momentum"`` and ``"nag"``, in [0, 1).
      beta: the RMSProp decay β, in [0, 1).
      beta1, beta2: Adam-family moment decays, in [0, 1).
      epsilon: ε > 0 in the denominators of RMSProp, Adagrad and the Adam family.
      decoupled_weight_decay: AdamW's decay (ignored by the others).
      lr_schedule: one of ``SCHEDULES``.
      decay_rate, decay_steps, warmup_steps: schedule constants (see the module docs).
      max_grad_norm: clip the gradient's global norm to this value; None for no clipping.

    Returns:
      An ``optax.GradientTransformation``; ``state.hyperparams`` holds the numeric values.

    Examples:
      >>> opt = make_optimizer("adam", learning_rate=1e-3)
      >>> state = opt.init(init_params(jax.random.key(0), [2, 3]))
      >>> float(state.hyperparams["learning_rate"])
      0.001
    """
    spec = OptimizerSpec(
        name=check_choice("optimizer", name, OPTIMIZERS),
        schedule=check_choice("lr_schedule", lr_schedule, SCHEDULES),
        clip=max_grad_norm is not None,
    )
    hyperparams = dict(
        learning_rate=check_real("learning_rate", learning_rate, low=0.0, low_inclusive=False),
        momentum=check_real("momentum", momentum, low=0.0, high=1.0, high_inclusive=False),
        beta=check_real("beta", beta, low=0.0, high=1.0, high_inclusive=False),
        beta1=check_real("beta1", beta1, low=0.0, high=1.0, high_inclusive=False),
        beta2=check_real("beta2", beta2, low=0.0, high=1.0, high_inclusive=False),
        epsilon=check_real("epsilon", epsilon, low=0.0, low_inclusive=False),
        decoupled_weight_decay=check_real("weight_decay", decoupled_weight_decay, low=0.0),
        decay_rate=check_real("lr_decay_rate", decay_rate, low=0.0),
        decay_steps=float(check_positive_int("lr_decay_steps", decay_steps)),
        warmup_steps=float(check_non_negative_int("warmup_steps", warmup_steps)),
        max_grad_norm=1.0
        if max_grad_norm is None
        else check_real("max_grad_norm", max_grad_norm, low=0.0, low_inclusive=False),
    )
    return build_optimizer(spec, hyperparams)


def build_optimizer(spec: OptimizerSpec, hyperparams: Optional[dict] = None) -> optax.GradientTransformation:
    """The transformation for a static ``spec``.

    ``hyperparams`` only seed the arrays that ``init`` puts in the state; ``update`` reads the
    state's arrays, so inside a compiled step the defaults serve. ``init`` is one compiled call
    (cached per spec and parameter shapes): run eagerly it would be a few dozen small dispatches,
    a large share of a ``train()`` call on a small data set (BENCHMARKS.md, "Design measurements").
    """
    hyperparams = hyperparams or DEFAULT_HYPERPARAMS
    values = {name: np.float32(value) for name, value in hyperparams.items()}
    return optax.GradientTransformation(
        functools.partial(_init_state, hyperparams=values, spec=spec), _injected(spec, hyperparams).update
    )


def _injected(spec: OptimizerSpec, hyperparams: dict) -> optax.GradientTransformation:
    factory = functools.partial(_optimizer_from_hyperparams, name=spec.name, schedule=spec.schedule, clip=spec.clip)
    return optax.inject_hyperparams(factory, hyperparam_dtype=jnp.float32)(**hyperparams)


@functools.partial(quick_jit, static_argnames="spec")
def _init_state(params, hyperparams: dict, spec: OptimizerSpec):
    return _injected(spec, hyperparams).init(params)
