"""The pure training step and the fused epoch: ``(state, batch) -> state`` compiled once.

``make_step`` is the one training step: :func:`make_train_step` jits it, and ``run_epoch``
scans it. The epoch draws a permutation from the state's key on the device, pads the last batch
with masked rows (every sample counts, shapes never change) and ``lax.scan``s the step over the
batches: one dispatch per epoch. A step whose loss is not finite is not applied; the epoch then
stops updating and reports the global step where that happened. Inside the epoch the test is on
the loss alone (a scalar known before the update, so the keep-or-discard select fuses into the
parameter update); parameters that overflow without a non-finite loss are caught once at the
end of the epoch, which then returns the parameters it started from. Either way the state holds
finite parameters. On small networks with a stateful optimizer (Adam, momentum, ...) the epoch
takes its steps on the flat θ and flat optimizer state, one fused update instead of one per W
and b, and hands back pytrees. The loop over epochs lives in :mod:`ffnn_jax._loop`.
"""

import functools
from typing import Any, NamedTuple, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from ._data import CLASSIFICATION_LOSSES
from ._losses import canonical_loss, objective_and_scores
from ._optim import OptimizerSpec, build_optimizer
from ._params import count_params, ravel
from ._shuffle import permutation, real_rows_first
from ._stopping import Plateau, init_plateau
from ._types import Activation, Array, Params, PRNGKey


class ModelSpec(NamedTuple):
    """Static, hashable description of what is trained (closed over by compiled functions)."""

    activation: Activation  # hidden activation name or callable
    loss: str  # canonical loss name
    classification: bool  # squared error on softmax outputs vs raw scores; accuracy is reported
    compute_dtype: Optional[str] = None  # e.g. "bfloat16": forward/backward matmuls in it, master weights kept
    dropout: Tuple[float, ...] = ()  # drop rate per hidden layer while training (inverted dropout); () none


class TrainState(NamedTuple):
    """Everything that changes during training; every leaf is an array."""

    step: Array  # int32 [], optimizer steps taken
    params: Params
    opt_state: Any  # optax state; built-in optimizers keep their hyperparameters here
    key: PRNGKey  # typed key, split once per epoch for the data order
    weight_decay: Array  # float32 [], λ of the L2 term (an array so changing it never recompiles)
    plateau: Plateau  # early-stopping / learning-rate plateau counters, kept when a run is continued


class StepMetrics(NamedTuple):
    """Per-step sums over the real (unmasked) rows of a batch."""

    loss_sum: Array  # float [], objective × rows
    correct: Array  # float [], correctly classified rows (0 for regression)
    count: Array  # float [], real rows
    finite: Array  # bool [], loss and new parameters finite


def init_train_state(
    params: Params, optimizer: optax.GradientTransformation, key: PRNGKey, *, weight_decay: float = 0.0
) -> TrainState:
    """A fresh state at step 0."""
    return TrainState(
        step=jax.device_put(np.int32(0)),
        params=params,
        opt_state=optimizer.init(params),
        key=key,
        weight_decay=jax.device_put(np.float32(weight_decay)),
        plateau=init_plateau(),
    )


def transformation(optimizer) -> optax.GradientTransformation:
    """An ``OptimizerSpec`` (hyperparameters read from the state) or a user's transformation."""
    return build_optimizer(optimizer) if isinstance(optimizer, OptimizerSpec) else optimizer


def correct_count(scores: Array, y: Array, mask: Array, model: ModelSpec) -> Array:
    """Correctly classified rows (element-wise for sigmoid outputs), weighted by ``mask``."""
    if not model.classification:
        return jnp.zeros((), scores.dtype)
    if model.loss == "binary_cross_entropy":
        hits = ((scores > 0) == (y.reshape(scores.shape) > 0.5)).mean(axis=-1)
    elif y.ndim == scores.ndim:
        hits = jnp.argmax(scores, -1) == jnp.argmax(y, -1)
    else:
        hits = jnp.argmax(scores, -1) == y
    return jnp.sum(hits * mask)


def _all_finite(tree) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]))


def _gradient(state: TrainState, x, y, mask, model: ModelSpec, *, unravel=None, key=None):
    """(objective, scores, ∇) at ``state.params``; ``unravel`` (set when ``state.params`` is the
    flat θ) rebuilds the pytree; ``key`` draws the dropout masks (``model.dropout``)."""

    def objective(params):
        return objective_and_scores(
            params if unravel is None else unravel(params),
            (x, y),
            activation=model.activation,
            loss=model.loss,
            weight_decay=state.weight_decay,
            classification=model.classification,
            mask=mask,
            compute_dtype=model.compute_dtype,
            dropout=model.dropout,
            key=key,
        )

    (value, scores), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    return value, scores, grads


def _updated(tx: optax.GradientTransformation, params, opt_state, grads):
    """(params, optimizer state) after one update by ``grads``."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _metrics(value, scores, y, mask, model: ModelSpec, finite) -> StepMetrics:
    count = jnp.sum(mask)
    return StepMetrics(value * count, correct_count(scores, y, mask, model), count, finite)


def _candidate_step(
    state: TrainState, x, y, mask, model: ModelSpec, optimizer, *, check_params: bool = True, unravel=None, key=None
):
    """One step from ``state`` (applied whatever its outcome) and its metrics."""
    value, scores, grads = _gradient(state, x, y, mask, model, unravel=unravel, key=key)
    params, opt_state = _updated(transformation(optimizer), state.params, state.opt_state, grads)
    # Testing every new parameter costs a reduction over θ and an unfused select pass per step
    # (a large share of a small network's epoch on CPU), so run_epoch tests the loss only.
    finite = jnp.isfinite(value) & _all_finite(params) if check_params else jnp.isfinite(value)
    metrics = _metrics(value, scores, y, mask, model, finite)
    return state._replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def _select(keep_new: Array, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(keep_new, a, b), new, old)


def _keeps_state(optimizer) -> bool:
    """Whether the optimizer keeps per-parameter state (all but plain SGD; a user's transformation may)."""
    return not (isinstance(optimizer, OptimizerSpec) and optimizer.name == "sgd")


def make_step(model: ModelSpec, optimizer, *, check_params: bool = True, unravel=None):
    """The pure training step ``step(state, (x, y, mask), active=True) -> (state, StepMetrics)``.

    A step whose loss (or, with ``check_params``, new parameters) is not finite, or one taken
    while ``active`` is False, is not applied. ``key`` draws the step's dropout masks. :func:`make_train_step` jits this function; the
    epoch scans it (testing the loss only, and on the flat θ when ``unravel`` is given).

    On a CPU, testing the loss only, an optimizer with state updates under ``lax.cond``: a
    select between the new and the old optimizer state made XLA compute the update once for each
    of its consumers (epochs 10–27% shorter with the conditional for Adam, momentum and RMSProp;
    BENCHMARKS.md). Plain SGD keeps the select, which fuses into its one update, and so do
    accelerators (XLA:GPU reads a conditional's predicate on the host, a wait at every step).
    Under ``jax.vmap`` (a sweep's members) the conditional becomes that select again.
    """
    conditional = not check_params and _keeps_state(optimizer) and jax.default_backend() == "cpu"

    def step(state: TrainState, batch, active=True, key=None):
        x, y, mask = batch
        if not conditional:
            candidate, metrics = _candidate_step(
                state, x, y, mask, model, optimizer, check_params=check_params, unravel=unravel, key=key
            )
            return _select(metrics.finite & active, candidate, state), metrics
        value, scores, grads = _gradient(state, x, y, mask, model, unravel=unravel, key=key)
        finite = jnp.isfinite(value)
        apply = finite & active
        update = functools.partial(_updated, transformation(optimizer))
        params, opt_state = jax.lax.cond(
            apply, update, lambda params, opt_state, grads: (params, opt_state), state.params, state.opt_state, grads
        )
        new = state._replace(step=jnp.where(apply, state.step + 1, state.step), params=params, opt_state=opt_state)
        return new, _metrics(value, scores, y, mask, model, finite)

    return step


def make_train_step(
    optimizer,
    *,
    activation: Activation = "relu",
    loss: str = "cross_entropy",
    classification: Optional[bool] = None,
):
    """Returns the jitted ``train_step(state, batch) -> (state, StepMetrics)``; state is donated.

    ``batch`` is ``(x, y)`` or ``(x, y, mask)``. ``optimizer`` is an ``optax``
    transformation (e.g. from :func:`make_optimizer`). A non-finite step is not applied and
    reports ``finite=False``. It is :func:`make_step`'s function, the one ``train()`` scans.
    """
    loss = canonical_loss(loss)
    if classification is None:
        classification = loss in CLASSIFICATION_LOSSES
    step = make_step(ModelSpec(activation, loss, classification), optimizer)

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state: TrainState, batch):
        x, y, mask = batch if len(batch) == 3 else (*batch, jnp.ones((batch[0].shape[0],), batch[0].dtype))
        return step(state, (x, y, mask))

    return train_step


# Optimizers whose update is element-wise with per-parameter state: on the flat θ they run as one
# fused update instead of one per W and b (what PyTorch's "foreach"/fused optimizers do for GPUs).
_ELEMENT_WISE_STATEFUL = ("momentum", "nag", "rmsprop", "adagrad", "adam", "nadam")
_FLAT_THETA_MAX_PARAMS = 1 << 14


def _steps_on_flat_theta(params: Params, optimizer) -> bool:
    """Whether the epoch runs its steps on the flat θ (and flat optimizer state).

    On a small network a step is mostly per-op overhead, and Adam's update is several ops per W
    and b; on θ it is a few in all. The price is copying W out of θ and ∇θ into it every step,
    which outweighs the gain above about 16k parameters, hence the limit; plain SGD has no state
    to fuse. The measurements behind both are in BENCHMARKS.md, "Design measurements".
    """
    return (
        isinstance(optimizer, OptimizerSpec)
        and optimizer.name in _ELEMENT_WISE_STATEFUL
        and count_params(params) <= _FLAT_THETA_MAX_PARAMS
    )


def _map_param_trees(fn, template, tree, params_def):
    """``tree`` with ``fn`` applied where ``template`` has a subtree shaped like the params (Adam's
    μ, ν, ...); ``tree`` has ``template``'s structure down to those points (it may be ``template``)."""

    def is_params(node):
        return jax.tree_util.tree_structure(node) == params_def

    return jax.tree_util.tree_map(
        lambda node, part: fn(part) if is_params(node) else part, template, tree, is_leaf=is_params
    )


class EpochMetrics(NamedTuple):
    """Sums over one epoch (device arrays; convert at log points only)."""

    loss_sum: Array
    correct: Array
    count: Array
    diverged_at: Array  # int32 [], global step of the first non-finite step, -1 if none


def epoch_keys(key: PRNGKey, model: ModelSpec) -> Tuple[PRNGKey, PRNGKey, Optional[PRNGKey]]:
    """An epoch's keys from the run's: (the next epoch's, the data order's, the dropout masks' or None)."""
    if any(model.dropout):  # a third stream for the masks (runs without dropout keep their data order)
        return tuple(jax.random.split(key, 3))
    next_key, order_key = jax.random.split(key)
    return next_key, order_key, None


def _epoch(
    state: TrainState,
    x: Array,
    y: Array,
    sample_weight: Optional[Array],
    *,
    model: ModelSpec,
    optimizer,
    batch_size: int,
    shuffle: bool,
    mesh=None,
    n_rows: Optional[int] = None,
    key: Optional[PRNGKey] = None,
    flat_theta: bool = True,
):
    """One pass over ``(x [n, d], y)`` in batches of ``batch_size``; returns (state, EpochMetrics).

    ``sample_weight`` [n] weights each row's loss (a batch's loss is Σ w ℓ / Σ w); None: all 1.
    With ``mesh`` (a ``jax.sharding.Mesh`` with axis "batch") each batch is split over its
    devices, padded with masked rows to a multiple of their count (the same rows per batch as on
    one device); params and optimizer state stay replicated, XLA adds the gradient all-reduce.
    ``n_rows``: the first ``n_rows`` rows are the data, the rest padding: an int (arrays split
    over processes) or an int32 [] array (a set padded to its bucket, :mod:`ffnn_jax._buckets`:
    the epoch then takes ceil(n_rows / batch_size) steps, a count known only on the device).
    ``key``: split instead of ``state.key`` (members of a sweep that share one data order pass it
    unbatched, so that their batches are the same rows and the first layer one wide product).
    ``flat_theta``: False keeps the steps on the pytree even where :func:`_steps_on_flat_theta`
    would flatten (those members: slicing each W out of a [members, θ] block costs them more than
    one fused update saves).
    """
    chex.assert_equal_shape_prefix(jax.tree_util.tree_leaves((y, sample_weight)), 1)
    chex.assert_equal(x.shape[0], y.shape[0])  # x: an array, SparseRows or FlatRows (whose one leaf is flat)
    n = x.shape[0] if n_rows is None else n_rows
    dynamic = not isinstance(n, int)  # the real rows' count is an array: order all rows, real ones first
    ordered = x.shape[0] if dynamic else n
    n_batches = -(-ordered // batch_size)
    padded = n_batches * batch_size
    key, order_key, dropout_key = epoch_keys(state.key if key is None else key, model)
    order = permutation(order_key, ordered) if shuffle else jnp.arange(ordered)
    if dynamic and shuffle:
        order = real_rows_first(order, n)
    index = jnp.concatenate([order, jnp.zeros((padded - ordered,), order.dtype)]).reshape(n_batches, batch_size)
    mask = (jnp.arange(padded) < n).astype(x.dtype).reshape(n_batches, batch_size)
    mesh = mesh if mesh is not None and mesh.size > 1 else None  # one device: nothing to split
    if mesh is not None and batch_size % mesh.size:  # masked slots so that every device gets as many rows
        extra = mesh.size - batch_size % mesh.size
        index = jnp.pad(index, ((0, 0), (0, extra)))
        mask = jnp.pad(mask, ((0, 0), (0, extra)))
    zero = jnp.zeros((), jnp.float32)
    start_params, start_opt_state = state.params, state.opt_state
    unravel = None
    if flat_theta and _steps_on_flat_theta(state.params, optimizer):
        params_def = jax.tree_util.tree_structure(state.params)
        theta, unravel = ravel(state.params)
        opt_state = _map_param_trees(lambda tree: ravel(tree)[0], state.opt_state, state.opt_state, params_def)
        state = state._replace(params=theta, opt_state=opt_state)

    step = make_step(model, optimizer, check_params=False, unravel=unravel)

    def body(carry, batch):
        state, sums, diverged_at = carry
        rows, row_mask, *batch_index = batch
        weights = row_mask if sample_weight is None else row_mask * sample_weight[rows]
        active = diverged_at < 0  # after a non-finite step the epoch stops updating
        diverged_at_before, step_before = diverged_at, state.step
        key = None if dropout_key is None else jax.random.fold_in(dropout_key, batch_index[0])
        batch = (x[rows], y[rows], weights)
        if mesh is not None:
            batch = jax.lax.with_sharding_constraint(batch, NamedSharding(mesh, PartitionSpec("batch")))
        state, m = step(state, batch, active, key)
        ok = m.finite & active
        diverged_at = jnp.where(~m.finite & active, step_before, diverged_at_before)
        sums = tuple(s + jnp.where(ok, v, 0.0).astype(jnp.float32) for s, v in zip(sums, m[:3]))
        return (state, sums, diverged_at), None

    init = (state._replace(key=key), (zero, zero, zero), jnp.asarray(-1, jnp.int32))
    if dynamic:  # the steps over real rows only (a padding row is never read)
        batch_at = lambda i: (index[i], mask[i]) + (() if dropout_key is None else (i,))  # noqa: E731
        steps = (n + batch_size - 1) // batch_size
        state, sums, diverged_at = jax.lax.fori_loop(0, steps, lambda i, carry: body(carry, batch_at(i))[0], init)
    else:
        batches = (index, mask) if dropout_key is None else (index, mask, jnp.arange(n_batches))
        (state, sums, diverged_at), _ = jax.lax.scan(body, init, batches)
    if unravel is not None:
        opt_state = _map_param_trees(unravel, start_opt_state, state.opt_state, params_def)
        state = state._replace(params=unravel(state.params), opt_state=opt_state)
    # The backstop of the loss-only test: an update that overflowed the parameters. One pass per epoch.
    params_finite = _all_finite(state.params)
    state = state._replace(params=_select(params_finite, state.params, start_params))
    diverged_at = jnp.where(params_finite | (diverged_at >= 0), diverged_at, state.step)
    return state, EpochMetrics(*sums, diverged_at)


run_epoch = functools.partial(
    jax.jit, static_argnames=("model", "optimizer", "batch_size", "shuffle", "mesh", "n_rows"), donate_argnums=0
)(_epoch)


def _evaluate(params: Params, x: Array, y: Array, weight_decay: Array, rows: Optional[Array] = None, *,
              model: ModelSpec) -> dict:  # fmt: skip
    """Objective, accuracy (classification) and R² (regression) on a whole set, in one dispatch;
    ``rows`` (int32 []): only the first ``rows`` rows are the set (the rest padding), None: all."""
    mask = (jnp.ones((x.shape[0],), bool) if rows is None else jnp.arange(x.shape[0]) < rows).astype(x.dtype)
    value, scores = objective_and_scores(
        params,
        (x, y),
        activation=model.activation,
        loss=model.loss,
        weight_decay=weight_decay,
        classification=model.classification,
        mask=mask,
        compute_dtype=model.compute_dtype,
    )
    if model.classification:
        return {"loss": value, "accuracy": correct_count(scores, y, mask, model) / jnp.sum(mask)}
    mean = jnp.exp(scores) if model.loss == "poisson" else scores
    return {"loss": value, "r2": r2_score(y.reshape(scores.shape), mean, mask)}


def r2_score(target: Array, prediction: Array, mask: Optional[Array] = None) -> Array:
    """R² [] of ``prediction`` for ``target`` ([n] or [n, k]): the mean over outputs of each one's
    1 − Σ residual² / Σ (y − ȳ)², as scikit-learn's ``r2_score`` (multioutput="uniform_average");
    an output constant in ``target`` scores 1 when predicted exactly, else 0 (its ``force_finite``).
    ``mask`` [n] (0/1): only the rows it marks count; None: all."""
    target = target.reshape(target.shape[0], -1)
    prediction = prediction.reshape(target.shape)
    if mask is None:
        mask = jnp.ones((target.shape[0],), target.dtype)
    mask = mask.astype(target.dtype)[:, None]
    residual = jnp.sum(mask * (target - prediction) ** 2, axis=0)
    total = jnp.sum(mask * (target - jnp.sum(mask * target, axis=0) / jnp.sum(mask)) ** 2, axis=0)
    per_output = jnp.where(
        total > 0, 1.0 - residual / jnp.where(total > 0, total, 1.0), jnp.where(residual > 0, 0.0, 1.0)
    )
    return jnp.mean(per_output)


evaluate_arrays = functools.partial(jax.jit, static_argnames=("model",))(_evaluate)
