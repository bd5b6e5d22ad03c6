"""Full-batch L-BFGS on the flat θ vector: the whole solve is one compiled ``lax.while_loop``.

scikit-learn's ``solver="lbfgs"`` hands its whole-data objective to scipy's L-BFGS-B. Here the
objective is :func:`ffnn_jax.loss` on the flat θ of :func:`ffnn_jax.ravel`, times a constant
``scale`` (so the minimised value can be made to equal scikit-learn's), minimised by
``optax.lbfgs`` (memory 10) with its zoom line search (at most 20 evaluations per iteration),
the settings of scipy's L-BFGS-B. The stopping rules are scipy's: the largest gradient entry
at most ``tol`` (``gtol``), a relative decrease of the objective at most ``ftol``, ``max_iter``
iterations or ``max_fun`` objective evaluations. A step whose objective is not finite or not
lower is rejected and ends the solve. In float32 the relative-decrease rule fires once the
objective stops changing at float32 precision, often before a float64 scipy run would stop.
Only the activation, the loss and the length of the recorded loss curve (``max_iter`` rounded
up to a power of two) are static: new data of the same shapes, new λ, tolerances or limits
reuse the compiled solver.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._losses import loss as objective
from ._params import ravel
from ._types import Activation, Array, Params


# Status codes, as in scipy: 0 converged; 1 an iteration or evaluation limit; 2 no progress.
CONVERGED, LIMIT_REACHED, NO_PROGRESS, RUNNING = 0, 1, 2, -1
STATUS_MESSAGES = {
    CONVERGED: "converged",
    LIMIT_REACHED: "iteration or function-evaluation limit reached",
    NO_PROGRESS: "the line search found no lower objective",
}
SCIPY_FTOL = 2.220446049250313e-09  # scipy's default relative-decrease tolerance


class LBFGSResult(NamedTuple):
    """Outcome of :func:`minimize_lbfgs` (device arrays)."""

    params: Params  # the last accepted parameters
    value: Array  # float [], objective at ``params``
    n_iter: Array  # int32 [], iterations taken
    n_fev: Array  # int32 [], objective (and gradient) evaluations
    losses: Array  # float [max_iter], objective after each iteration; NaN past n_iter
    status: Array  # int32 [], one of CONVERGED, LIMIT_REACHED, NO_PROGRESS


def minimize_lbfgs(
    params: Params,
    x: Array,
    y: Array,
    sample_weight: Array,
    *,
    activation: Activation,
    loss: str,
    classification: bool,
    weight_decay: float,
    scale: float = 1.0,
    max_iter: int = 200,
    max_fun: int = 15000,
    tol: float = 1e-4,
    ftol: float = SCIPY_FTOL,
) -> LBFGSResult:
    """Minimises ``scale · loss(params, (x, y), weight_decay=λ, mask=sample_weight)`` from ``params``.

    Args:
      params: starting parameters (a ``LayerParams`` tuple).
      x: inputs [n, d_in]; y: targets as :func:`ffnn_jax.loss` takes them.
      sample_weight: [n] row weights (the data term is Σ w ℓ / Σ w).
      activation, loss, classification: as for :func:`ffnn_jax.loss`.
      weight_decay: λ of the L2 term (λ/2)Σ‖W‖².
      scale: constant factor on the objective (it changes the value and ``tol``'s meaning only).
      max_iter: iteration limit (also the length of ``losses``, which records at most 2^14).
      max_fun: limit on objective evaluations (checked after each iteration, as scipy does).
      tol: stop when max_i |∂f/∂θ_i| <= tol.
      ftol: stop when (f_old − f_new) <= ftol · max(|f_old|, |f_new|, 1).

    Returns:
      An :class:`LBFGSResult`.
    """
    numbers = jnp.asarray([weight_decay, scale, tol, ftol], jnp.float32)
    limits = jnp.asarray(np.minimum([max_iter, max_fun], np.iinfo(np.int32).max), jnp.int32)
    # A few compiled sizes serve every max_iter; iterations past the buffer are not recorded.
    length = 1 << min(max(4, (max_iter - 1).bit_length()), 14)
    result = _solve(
        params,
        x,
        y,
        sample_weight,
        numbers,
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


@functools.partial(jax.jit, static_argnames=("activation", "loss", "classification", "length"))
def _solve(params, x, y, sample_weight, numbers, limits, *, activation, loss, classification, length):
    weight_decay, scale, tol, ftol = numbers[0], numbers[1], numbers[2], numbers[3]
    max_iter, max_fun = limits[0], limits[1]
    theta0, unravel = ravel(params)

    def f(theta):
        settings = dict(activation=activation, loss=loss, weight_decay=weight_decay, classification=classification)
        return scale * objective(unravel(theta), (x, y), mask=sample_weight, **settings)

    solver = optax.lbfgs(
        memory_size=10,
        linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one"),
    )
    value0, grad0 = jax.value_and_grad(f)(theta0)
    status0 = jnp.where(jnp.max(jnp.abs(grad0)) <= tol, CONVERGED, RUNNING)
    losses0 = jnp.full((length,), jnp.nan, value0.dtype)
    one = jnp.ones((), jnp.int32)
    init = _Carry(theta0, solver.init(theta0), value0, grad0, 0 * one, one, status0.astype(jnp.int32), losses0)

    def body(c: _Carry) -> _Carry:
        updates, opt_state = solver.update(c.grad, c.opt_state, c.theta, value=c.value, grad=c.grad, value_fn=f)
        theta = c.theta + updates
        value = optax.tree.get(opt_state, "value")
        grad = optax.tree.get(opt_state, "grad")
        n_fev = c.n_fev + optax.tree.get(opt_state, "num_linesearch_steps").astype(jnp.int32)
        n_iter = c.n_iter + 1
        accepted = jnp.isfinite(value) & jnp.all(jnp.isfinite(theta)) & (value <= c.value)
        small_decrease = c.value - value <= ftol * jnp.maximum(jnp.maximum(jnp.abs(c.value), jnp.abs(value)), 1.0)
        status = jnp.select(
            [~accepted, jnp.max(jnp.abs(grad)) <= tol, small_decrease, (n_iter >= max_iter) | (n_fev >= max_fun)],
            [NO_PROGRESS, CONVERGED, CONVERGED, LIMIT_REACHED],
            RUNNING,
        ).astype(jnp.int32)
        keep = lambda new, old: jnp.where(accepted, new, old)  # noqa: E731
        return _Carry(
            keep(theta, c.theta),
            opt_state,
            keep(value, c.value),
            keep(grad, c.grad),
            n_iter - (~accepted).astype(jnp.int32),
            n_fev,
            status,
            c.losses.at[c.n_iter].set(jnp.where(accepted, value, jnp.nan)),
        )

    final = jax.lax.while_loop(lambda c: c.status == RUNNING, body, init)
    return LBFGSResult(unravel(final.theta), final.value, final.n_iter, final.n_fev, final.losses, final.status)
