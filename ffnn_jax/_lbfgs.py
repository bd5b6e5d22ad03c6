"""Full-batch L-BFGS on the flat θ vector: the whole solve is one compiled ``lax.while_loop``.

scikit-learn's ``solver="lbfgs"`` hands its whole-data objective to scipy's L-BFGS-B. Here the
objective is :func:`ffnn_jax.loss` on the flat θ of :func:`ffnn_jax.ravel` (its L2 term with one
λ per layer), times a constant ``scale`` (so the minimised value can be made to equal
scikit-learn's), minimised by ``optax.lbfgs`` (memory 10) with its zoom line search (at most 20
evaluations per iteration), the settings of scipy's L-BFGS-B. The stopping rules are scipy's:
the largest gradient entry at most ``tol`` (``gtol``), a relative decrease of the objective at
most ``ftol``, ``max_iter`` iterations, or more than ``max_fun`` objective evaluations (checked
after each iteration, as scipy does). A step whose objective is not finite or not lower is
rejected; as in scipy, the memory is then dropped and the iteration retried from the gradient
direction, and a second failure in a row ends the solve (scipy's ``ABNORMAL``). The solve runs in
the dtype of ``x`` (float64 inside :func:`ffnn_jax._gradcheck.x64_scope`); in float32 the
relative-decrease rule fires once the objective stops changing at float32 precision. Only the
activation, the loss, the number of layers and the length of the recorded loss curve
(``max_iter`` rounded up to a power of two) are static: new data of the same shapes, new λ,
tolerances or limits reuse the compiled solver.
"""

import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._losses import loss as objective
from ._params import ravel
from ._types import Activation, Array, Params


# Status codes, as in scipy: 0 converged; 1 an iteration or evaluation limit; 2 no progress.
CONVERGED, LIMIT_REACHED, NO_PROGRESS, RUNNING = 0, 1, 2, -1
SCIPY_FTOL = 2.220446049250313e-09  # scipy's default relative-decrease tolerance
# scipy's L-BFGS-B messages (``OptimizeResult.message``), which scikit-learn's warning quotes.
ITERATION_LIMIT_MSG = "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"
EVALUATION_LIMIT_MSG = "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT"
ABNORMAL_MSG = "ABNORMAL: "


class LBFGSResult(NamedTuple):
    """Outcome of :func:`minimize_lbfgs` (device arrays)."""

    params: Params  # the last accepted parameters
    value: Array  # float [], objective at ``params``
    n_iter: Array  # int32 [], iterations taken
    n_fev: Array  # int32 [], objective (and gradient) evaluations
    losses: Array  # float [max_iter], objective after each iteration; NaN past n_iter
    status: Array  # int32 [], one of CONVERGED, LIMIT_REACHED, NO_PROGRESS


def status_message(status: int, n_iter: int, max_iter: int) -> str:
    """scipy's message for a finished solve's ``status`` (the iteration limit is tested first, as there)."""
    if status == LIMIT_REACHED:
        return ITERATION_LIMIT_MSG if n_iter >= max_iter else EVALUATION_LIMIT_MSG
    return ABNORMAL_MSG if status == NO_PROGRESS else "CONVERGENCE"


def minimize_lbfgs(
    params: Params,
    x: Array,
    y: Array,
    sample_weight: Array,
    *,
    activation: Activation,
    loss: str,
    classification: bool,
    weight_decay: float | Sequence[float],
    scale: float = 1.0,
    units: float = 1.0,
    grad_factors: Optional[Sequence[float]] = None,
    max_iter: int = 200,
    max_fun: int = 15000,
    tol: float = 1e-4,
    ftol: float = SCIPY_FTOL,
) -> LBFGSResult:
    """Minimises ``f = scale · loss(params, (x, y), mask=sample_weight)`` from ``params``.

    The stopping rules read the objective in other units when the caller minimises a rescaled
    problem (e.g. standardized targets): ``units · f`` is the objective they test and
    ``units · grad_factors[l] · ∂f/∂θ`` its gradient for the entries of layer l.

    Args:
      params: starting parameters (a ``LayerParams`` tuple); the solve runs in ``x``'s dtype.
      x: inputs [n, d_in]; y: targets as :func:`ffnn_jax.loss` takes them.
      sample_weight: [n] row weights (the data term is Σ w ℓ / Σ w).
      activation, loss, classification: as for :func:`ffnn_jax.loss`.
      weight_decay: λ of the L2 term (λ/2)Σ‖W‖², or one λ_l per layer: Σ_l (λ_l/2)‖W_l‖².
      scale: constant factor on the objective.
      units: the objective the stopping rules test is ``units · f``.
      grad_factors: one factor per layer for the gradient test (None: all 1).
      max_iter: iteration limit (also the length of ``losses``, which records at most 2^14).
      max_fun: the solve stops once more than this many objective evaluations were made
        (checked after each iteration, as scipy does).
      tol: stop when max_i |∂(units·f)/∂θ_i| · grad_factors <= tol.
      ftol: stop when (f_old − f_new) <= ftol · max(|f_old|, |f_new|, 1), in ``units · f``.

    Returns:
      An :class:`LBFGSResult` (value and losses are ``f``, not ``units · f``).
    """
    dtype = jnp.result_type(x)
    n_layers = len(params)
    decay = np.broadcast_to(np.asarray(weight_decay, np.float64), (n_layers,))
    factors = np.ones(n_layers) if grad_factors is None else np.asarray(grad_factors, np.float64)
    numbers = jax.device_put(np.asarray([scale, units, tol, ftol], dtype))  # transfers: no program
    per_layer = jax.device_put(np.stack([decay, factors]).astype(dtype))
    limits = jax.device_put(np.minimum([max_iter, max_fun], np.iinfo(np.int32).max).astype(np.int32))
    # A few compiled sizes serve every max_iter; iterations past the buffer are not recorded.
    length = 1 << min(max(4, (max_iter - 1).bit_length()), 14)
    result = _solve(
        params,
        x,
        y,
        sample_weight,
        numbers,
        per_layer,
        limits,
        activation=activation,
        loss=loss,
        classification=classification,
        length=length,
    )
    return result._replace(losses=result.losses[:max_iter])


class _Carry(NamedTuple):
    theta: Array
    opt_state: optax.OptState
    value: Array
    grad: Array
    n_iter: Array
    n_fev: Array
    status: Array
    losses: Array
    restarted: Array  # bool [], the memory was just dropped after a rejected step


@functools.partial(jax.jit, static_argnames=("activation", "loss", "classification", "length"))
def _solve(params, x, y, sample_weight, numbers, per_layer, limits, *, activation, loss, classification, length):
    scale, units, tol, ftol = numbers[0], numbers[1], numbers[2], numbers[3]
    max_iter, max_fun = limits[0], limits[1]
    theta0, unravel = ravel(params)
    decay, factors = per_layer[0], per_layer[1]
    # Per-entry factor of the gradient test: layer l's W and b entries get factors[l].
    entry_factors, _ = ravel(
        tuple(
            jax.tree_util.tree_map(lambda leaf: jnp.full_like(leaf, factors[i]), layer)
            for i, layer in enumerate(params)
        )
    )

    def f(theta):
        network = unravel(theta)
        settings = dict(activation=activation, loss=loss, classification=classification)
        data = objective(network, (x, y), mask=sample_weight, **settings)
        penalty = sum(0.5 * decay[i] * jnp.sum(layer.W**2) for i, layer in enumerate(network))
        return scale * (data + penalty)

    def gradient_small(grad):
        return jnp.max(jnp.abs(grad * entry_factors)) * units <= tol

    solver = optax.lbfgs(
        memory_size=10,
        linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one"),
    )
    value0, grad0 = jax.value_and_grad(f)(theta0)
    status0 = jnp.where(gradient_small(grad0), CONVERGED, RUNNING)
    losses0 = jnp.full((length,), jnp.nan, value0.dtype)
    one = jnp.ones((), jnp.int32)
    fresh = solver.init(theta0)
    init = _Carry(theta0, fresh, value0, grad0, 0 * one, one, status0.astype(jnp.int32), losses0, jnp.zeros((), bool))

    def body(c: _Carry) -> _Carry:
        updates, opt_state = solver.update(c.grad, c.opt_state, c.theta, value=c.value, grad=c.grad, value_fn=f)
        theta = c.theta + updates
        value = optax.tree.get(opt_state, "value")
        grad = optax.tree.get(opt_state, "grad")
        n_fev = c.n_fev + optax.tree.get(opt_state, "num_linesearch_steps").astype(jnp.int32)
        accepted = jnp.isfinite(value) & jnp.all(jnp.isfinite(theta)) & (value <= c.value)
        n_iter = c.n_iter + accepted.astype(jnp.int32)
        floor = 1.0 / units  # scipy's max(|f_old|, |f_new|, 1), the 1 in the tested units
        small_decrease = c.value - value <= ftol * jnp.maximum(jnp.maximum(jnp.abs(c.value), jnp.abs(value)), floor)
        retry = ~accepted & ~c.restarted  # drop the memory and try again from the gradient direction
        status = jnp.select(
            [retry, ~accepted, gradient_small(grad), small_decrease, n_iter >= max_iter, n_fev > max_fun],
            [RUNNING, NO_PROGRESS, CONVERGED, CONVERGED, LIMIT_REACHED, LIMIT_REACHED],
            RUNNING,
        ).astype(jnp.int32)
        keep = lambda new, old: jnp.where(accepted, new, old)  # noqa: E731
        restart = solver.init(c.theta)
        return _Carry(
            keep(theta, c.theta),
            jax.tree_util.tree_map(lambda new, old: jnp.where(accepted, new, old), opt_state, restart),
            keep(value, c.value),
            keep(grad, c.grad),
            n_iter,
            n_fev,
            status,
            c.losses.at[c.n_iter].set(jnp.where(accepted, value, c.losses[c.n_iter])),
            retry,
        )

    final = jax.lax.while_loop(lambda c: c.status == RUNNING, body, init)
    return LBFGSResult(unravel(final.theta), final.value, final.n_iter, final.n_fev, final.losses, final.status)
