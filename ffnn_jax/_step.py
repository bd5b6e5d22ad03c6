"""The pure training step and the fused epoch: ``(state, batch) -> state`` compiled once.

``run_epoch`` draws a permutation from the state's key on the device, pads the last batch with
masked rows (every sample counts, shapes never change) and ``lax.scan``s the step over the
batches: one dispatch per epoch. A step whose loss is not finite is not applied; the epoch then
stops updating and reports the global step where that happened. Inside the epoch the test is on
the loss alone (a scalar known before the update, so the keep-or-discard select fuses into the
parameter update); parameters that overflow without a non-finite loss are caught once at the
end of the epoch, which then returns the parameters it started from. Either way the state holds
finite parameters. On small networks with a stateful optimizer (Adam, momentum, ...) the epoch
takes its steps on the flat θ and flat optimizer state, one fused update instead of one per W
and b, and hands back pytrees. ``run_epochs`` (what :func:`ffnn_jax.train` calls) loops that
epoch on the device together with the validation metrics and the stopping rule, several epochs
per dispatch on small data.
"""

import functools
from typing import Any, NamedTuple, Optional, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp
import optax

from ._data import CLASSIFICATION_LOSSES
from ._losses import canonical_loss, objective_and_scores
from ._optim import OptimizerSpec, build_optimizer
from ._params import count_params, ravel
from ._shuffle import permutation
from ._stopping import Plateau, StopNumbers, StopRule, init_plateau, update, watched_value
from ._types import Activation, Array, Params, PRNGKey


class ModelSpec(NamedTuple):
    """Static, hashable description of what is trained (closed over by compiled functions)."""

    activation: Activation  # hidden activation name or callable
    loss: str  # canonical loss name
    classification: bool  # squared error on softmax outputs vs raw scores; accuracy is reported
    compute_dtype: Optional[str] = None  # e.g. "bfloat16": forward/backward matmuls in it, master weights kept


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
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        key=key,
        weight_decay=jnp.asarray(weight_decay, jnp.float32),
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


def _candidate_step(
    state: TrainState, x, y, mask, model: ModelSpec, optimizer, *, check_params: bool = True, unravel=None
):
    """One step from ``state``; ``unravel`` (set when ``state.params`` is the flat θ) rebuilds the pytree."""
    tx = transformation(optimizer)

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
        )

    (value, scores), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # Testing every new parameter costs a reduction over θ and an unfused select pass per step
    # (about 20% of a small network's epoch on CPU), so run_epoch tests the loss only.
    finite = jnp.isfinite(value) & _all_finite(params) if check_params else jnp.isfinite(value)
    count = jnp.sum(mask)
    metrics = StepMetrics(value * count, correct_count(scores, y, mask, model), count, finite)
    return state._replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def _select(keep_new: Array, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(keep_new, a, b), new, old)


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
    reports ``finite=False``.
    """
    loss = canonical_loss(loss)
    if classification is None:
        classification = loss in CLASSIFICATION_LOSSES
    model = ModelSpec(activation, loss, classification)

    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state: TrainState, batch):
        x, y, mask = batch if len(batch) == 3 else (*batch, jnp.ones((batch[0].shape[0],), batch[0].dtype))
        candidate, metrics = _candidate_step(state, x, y, mask, model, optimizer)
        return _select(metrics.finite, candidate, state), metrics

    return train_step


# Optimizers whose update is element-wise with per-parameter state: on the flat θ they run as one
# fused update instead of one per W and b (what PyTorch's "foreach"/fused optimizers do for GPUs).
_ELEMENT_WISE_STATEFUL = ("momentum", "nag", "rmsprop", "adagrad", "adam", "nadam")
_FLAT_THETA_MAX_PARAMS = 1 << 14


def _steps_on_flat_theta(params: Params, optimizer) -> bool:
    """Whether the epoch runs its steps on the flat θ (and flat optimizer state).

    On a small network a step is mostly per-op overhead (about 1 µs per op on XLA:CPU), and
    Adam's update is several ops per W and b; on θ it is a few in all. Measured with Adam on this
    project's CPU: digits 64-100-10 epochs 29% faster (batch 32) and 31% (batch 200), 784-16-10
    13%. The price is copying W out of θ and ∇θ into it every step: at 784-32-10 (25k
    parameters) that already made the epoch 10% slower, hence the 16k limit. Momentum and
    RMSProp gain 2–4%; plain SGD has no state to fuse.
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
):
    """One pass over ``(x [n, d], y)`` in batches of ``batch_size``; returns (state, EpochMetrics).

    ``sample_weight`` [n] weights each row's loss (a batch's loss is Σ w ℓ / Σ w); None: all 1.
    """
    chex.assert_equal_shape_prefix((x, y) if sample_weight is None else (x, y, sample_weight), 1)
    n = x.shape[0]
    n_batches = -(-n // batch_size)
    padded = n_batches * batch_size
    key, order_key = jax.random.split(state.key)
    order = permutation(order_key, n) if shuffle else jnp.arange(n)
    index = jnp.concatenate([order, jnp.zeros((padded - n,), order.dtype)]).reshape(n_batches, batch_size)
    mask = (jnp.arange(padded) < n).astype(x.dtype).reshape(n_batches, batch_size)
    zero = jnp.zeros((), jnp.float32)
    start_params, start_opt_state = state.params, state.opt_state
    unravel = None
    if _steps_on_flat_theta(state.params, optimizer):
        params_def = jax.tree_util.tree_structure(state.params)
        theta, unravel = ravel(state.params)
        opt_state = _map_param_trees(lambda tree: ravel(tree)[0], state.opt_state, state.opt_state, params_def)
        state = state._replace(params=theta, opt_state=opt_state)

    def body(carry, batch):
        state, sums, diverged_at = carry
        rows, row_mask = batch
        weights = row_mask if sample_weight is None else row_mask * sample_weight[rows]
        candidate, m = _candidate_step(
            state, x[rows], y[rows], weights, model, optimizer, check_params=False, unravel=unravel
        )
        ok = m.finite & (diverged_at < 0)
        diverged_at = jnp.where(~m.finite & (diverged_at < 0), state.step, diverged_at)
        state = _select(ok, candidate, state)
        sums = tuple(s + jnp.where(ok, v, 0.0).astype(jnp.float32) for s, v in zip(sums, m[:3]))
        return (state, sums, diverged_at), None

    init = (state._replace(key=key), (zero, zero, zero), jnp.asarray(-1, jnp.int32))
    (state, sums, diverged_at), _ = jax.lax.scan(body, init, (index, mask))
    if unravel is not None:
        opt_state = _map_param_trees(unravel, start_opt_state, state.opt_state, params_def)
        state = state._replace(params=unravel(state.params), opt_state=opt_state)
    # The backstop of the loss-only test: an update that overflowed the parameters. One pass per epoch.
    params_finite = _all_finite(state.params)
    state = state._replace(params=_select(params_finite, state.params, start_params))
    diverged_at = jnp.where(params_finite | (diverged_at >= 0), diverged_at, state.step)
    return state, EpochMetrics(*sums, diverged_at)


run_epoch = functools.partial(
    jax.jit, static_argnames=("model", "optimizer", "batch_size", "shuffle"), donate_argnums=0
)(_epoch)


def _evaluate(params: Params, x: Array, y: Array, weight_decay: Array, *, model: ModelSpec) -> dict:
    """Objective, accuracy (classification) and R² (regression) on a whole set, in one dispatch."""
    mask = jnp.ones((x.shape[0],), x.dtype)
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
        return {"loss": value, "accuracy": correct_count(scores, y, mask, model) / x.shape[0]}
    target = y.reshape(scores.shape)
    mean = jnp.exp(scores) if model.loss == "poisson" else scores
    residual = jnp.sum((target - mean) ** 2)
    total = jnp.sum((target - target.mean(axis=0)) ** 2)
    return {"loss": value, "r2": 1.0 - residual / jnp.maximum(total, jnp.finfo(scores.dtype).tiny)}


evaluate_arrays = functools.partial(jax.jit, static_argnames=("model",))(_evaluate)


class Chunk(NamedTuple):
    """What a :func:`run_epochs` dispatch did (built on device, read on the host by :meth:`unpack`)."""

    rows: dict  # history name -> float32 [chunk]; the first ``done`` entries are set
    improved: Array  # bool [chunk], the epoch became the best (its params are in best_params)
    done: Array  # int32 [], epochs run
    stopped: Array  # bool [], the stopping rule ended training
    diverged_epoch: Array  # int32 [], index in the chunk of the first non-finite epoch, -1 if none
    diverged_step: Array  # int32 [], the optimizer step where it happened

    def pack(self, names: Sequence[str]) -> Tuple[Array, Array]:
        """Two arrays (float32 [names, chunk] and int32 [4 + chunk]): two host transfers, not ten."""
        flags = jnp.stack([self.done, self.stopped.astype(jnp.int32), self.diverged_epoch, self.diverged_step])
        values = jnp.stack([self.rows[name] for name in names])  # a pytree dict comes back key-sorted
        return values, jnp.concatenate([flags, self.improved.astype(jnp.int32)])

    @classmethod
    def unpack(cls, packed: Tuple[Array, Array], names: Sequence[str]) -> "Chunk":
        """The host-side (NumPy) view of :meth:`pack`'s arrays; ``names`` as :func:`history_names`."""
        values, flags = jax.device_get(packed)
        done, stopped, diverged_epoch, diverged_step = (int(v) for v in flags[:4])
        return cls(dict(zip(names, values)), flags[4:].astype(bool), done, bool(stopped), diverged_epoch, diverged_step)


def history_names(model: ModelSpec, has_validation: bool, opt_state) -> Tuple[str, ...]:
    """The per-epoch values :func:`run_epochs` records, in history order (η when the state holds it)."""
    names = ["train_loss"] + (["train_accuracy"] if model.classification else [])
    if has_validation:
        names += ["val_loss", "val_accuracy" if model.classification else "val_r2"]
    return tuple(names + (["learning_rate"] if _learning_rate(opt_state) is not None else []))


def _learning_rate(opt_state) -> Optional[Array]:
    hyperparams = getattr(opt_state, "hyperparams", None)
    return None if hyperparams is None else hyperparams.get("learning_rate")


def _with_learning_rate(opt_state, learning_rate: Array):
    hyperparams = dict(opt_state.hyperparams)
    hyperparams["learning_rate"] = learning_rate.astype(hyperparams["learning_rate"].dtype)
    return opt_state._replace(hyperparams=hyperparams)


@functools.partial(
    jax.jit,
    static_argnames=("model", "optimizer", "batch_size", "shuffle", "chunk", "rule"),
    donate_argnums=(0, 1),
)
def run_epochs(
    state: TrainState,
    best_params: Optional[Params],
    train_data: tuple,
    val_data: Optional[tuple],
    n_epochs: Array,
    numbers: StopNumbers,
    *,
    model: ModelSpec,
    optimizer,
    batch_size: int,
    shuffle: bool,
    chunk: int,
    rule: StopRule,
):
    """Up to ``min(n_epochs, chunk)`` epochs in one dispatch, with validation and the stopping rule.

    ``train_data`` is ``(x [n, d], y, sample_weight [n])`` and ``val_data`` ``(x_val, y_val)`` or
    None. Each epoch is :func:`run_epoch`'s pass, then the validation metrics, then
    :func:`ffnn_jax._stopping.update` on ``rule.monitor``; the loop ends early when the rule says
    stop or an epoch is not finite (the state then holds the last finite parameters).
    ``best_params`` (None: not tracked) becomes the params of the best epoch. ``state`` and
    ``best_params`` are donated. Returns ``(state, best_params, Chunk.pack(names))``; ``chunk``
    (static) sizes the per-epoch history buffers.
    """
    x, y, sample_weight = train_data

    def body(carry):
        i, state, best_params, out = carry
        state, sums = _epoch(
            state, x, y, sample_weight, model=model, optimizer=optimizer, batch_size=batch_size, shuffle=shuffle
        )
        row = {"train_loss": sums.loss_sum / sums.count}
        if model.classification:
            row["train_accuracy"] = sums.correct / sums.count
        if val_data is not None:
            metrics = _evaluate(state.params, *val_data, state.weight_decay, model=model)
            row.update({f"val_{name}": value for name, value in metrics.items()})
        learning_rate = _learning_rate(state.opt_state)
        if learning_rate is not None:
            row["learning_rate"] = learning_rate
        row = {name: value.astype(jnp.float32) for name, value in row.items()}
        finite = (sums.diverged_at < 0) & jnp.all(jnp.isfinite(jnp.stack(list(row.values()))))
        no_lr = jnp.zeros((), jnp.float32)
        decision = update(
            state.plateau, watched_value(rule.monitor, row), no_lr if learning_rate is None else learning_rate,
            numbers, rule,
        )  # fmt: skip
        state = state._replace(plateau=decision.plateau)
        if rule.reduce_lr:
            state = state._replace(opt_state=_with_learning_rate(state.opt_state, decision.learning_rate))
        improved = decision.improved & finite
        if best_params is not None:
            best_params = _select(improved, state.params, best_params)
        out = out._replace(
            rows={name: buffer.at[i].set(row[name]) for name, buffer in out.rows.items()},
            improved=out.improved.at[i].set(improved),
            done=i + 1,
            stopped=decision.stop & finite,
            diverged_epoch=jnp.where(finite, -1, i),
            diverged_step=jnp.where(sums.diverged_at >= 0, sums.diverged_at, state.step),
        )
        return i + 1, state, best_params, out

    def keep_going(carry):
        i, _, _, out = carry
        return (i < jnp.minimum(n_epochs, chunk)) & ~out.stopped & (out.diverged_epoch < 0)

    names = history_names(model, val_data is not None, state.opt_state)
    zero_i = jnp.zeros((), jnp.int32)
    out = Chunk(
        rows={name: jnp.zeros((chunk,), jnp.float32) for name in names},
        improved=jnp.zeros((chunk,), bool),
        done=zero_i,
        stopped=jnp.zeros((), bool),
        diverged_epoch=zero_i - 1,
        diverged_step=zero_i,
    )
    _, state, best_params, out = jax.lax.while_loop(keep_going, body, (zero_i, state, best_params, out))
    return state, best_params, out.pack(names)
