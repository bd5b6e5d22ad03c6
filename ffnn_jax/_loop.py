"""The whole run as one pytree, and the loop over its epochs on the device.

:class:`RunState` is everything a run needs to go on: the train state (params, optimizer state,
step, key, plateau counters), the epoch count, the best epoch's params and number, and the
stopped and diverged flags. Every leaf is an array, so a checkpoint of it continues a run bit for
bit, and a sweep can stack it along a member axis. :class:`RunSpec` is what shapes compilation
(hashable, static). :func:`run_epochs` runs a chunk of epochs in one dispatch: each epoch is
:func:`ffnn_jax._step.run_epoch`'s pass, the validation metrics and the stopping rule.
"""

import functools
from typing import Any, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ._step import ModelSpec, TrainState, _epoch, _evaluate, _select, epoch_keys
from ._stopping import StopNumbers, StopRule, update, watched_value
from ._types import Array, Params


class RunSpec(NamedTuple):
    """What shapes the compiled loop (static, hashable); numbers travel as arrays instead."""

    model: ModelSpec
    optimizer: Any  # an OptimizerSpec (hyperparameters live in the state) or a user's transformation
    batch_size: int
    shuffle: bool
    rule: StopRule
    track_best: bool  # keep the best epoch's params (early stopping with restore_best)
    chunk: int  # most epochs per dispatch (sizes the per-epoch history buffers)
    mesh: Any = None  # jax.sharding.Mesh (axis "batch") to split each batch over; None: one device
    rows: Optional[int] = None  # training rows when the placed arrays carry padding rows (several processes)


class RunState(NamedTuple):
    """The whole run; every leaf an array. What a checkpoint saves."""

    train: TrainState
    epoch: Array  # int32 [], epochs completed
    best_params: Optional[Params]  # params of the best epoch so far (None unless spec.track_best)
    best_epoch: Array  # int32 [], 1-based epoch of the best monitored value, 0 before the first
    stopped: Array  # bool [], the stopping rule (or a callback) ended the run
    diverged: Array  # bool [], an epoch's loss or parameters were not finite (train holds the last finite ones)
    diverged_step: Array  # int32 [], the optimizer step where it happened, -1 if none


def init_run_state(train: TrainState, *, track_best: bool) -> RunState:
    """A run at epoch 0 from ``train``; ``best_params`` starts as a copy of its params."""
    # Host scalars, distinct buffers (the run is donated): a transfer each, no program to compile.
    scalar = lambda value, dtype: jax.device_put(np.asarray(value, dtype))  # noqa: E731
    best = jax.tree_util.tree_map(jnp.copy, train.params) if track_best else None
    return RunState(train, scalar(0, np.int32), best, scalar(0, np.int32), scalar(False, bool), scalar(False, bool),
                    scalar(-1, np.int32))  # fmt: skip


def returned_params(run: RunState) -> Params:
    """The params a finished run hands out: the best epoch's when tracked, else the last."""
    if run.best_params is not None and int(run.best_epoch) > 0:
        return run.best_params
    return run.train.params


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


def _one_epoch(run: RunState, train_data: tuple, val_data: Optional[tuple], numbers: StopNumbers, spec: RunSpec,
               key=None, flat_theta: bool = True):  # fmt: skip
    """One epoch of ``run`` and its history row (float32 scalars by name); ``key`` and
    ``flat_theta`` as for :func:`ffnn_jax._step._epoch`."""
    x, y, sample_weight, rows = train_data
    model = spec.model
    state, sums = _epoch(
        run.train, x, y, sample_weight,
        model=model, optimizer=spec.optimizer, batch_size=spec.batch_size, shuffle=spec.shuffle, mesh=spec.mesh,
        n_rows=spec.rows if rows is None else rows, key=key, flat_theta=flat_theta,
    )  # fmt: skip
    row = {"train_loss": sums.loss_sum / sums.count}
    if model.classification:
        row["train_accuracy"] = sums.correct / sums.count
    if val_data is not None:
        x_val, y_val, val_rows = val_data
        metrics = _evaluate(state.params, x_val, y_val, state.weight_decay, val_rows, model=model)
        row.update({f"val_{name}": value for name, value in metrics.items()})
    learning_rate = _learning_rate(state.opt_state)
    if learning_rate is not None:
        row["learning_rate"] = learning_rate
    row = {name: value.astype(jnp.float32) for name, value in row.items()}
    finite = (sums.diverged_at < 0) & jnp.all(jnp.isfinite(jnp.stack(list(row.values()))))

    no_lr = jnp.zeros((), jnp.float32)
    watched = watched_value(spec.rule.monitor, row)
    decision = update(state.plateau, watched, no_lr if learning_rate is None else learning_rate, numbers, spec.rule)
    decided = state._replace(plateau=decision.plateau)
    if spec.rule.reduce_lr:
        decided = decided._replace(opt_state=_with_learning_rate(state.opt_state, decision.learning_rate))
    # A non-finite epoch keeps its (finite) parameters but counts nothing: no epoch, no decision.
    state = _select(finite, decided, state)
    improved = decision.improved & finite
    epoch = run.epoch + finite.astype(jnp.int32)
    run = RunState(
        train=state,
        epoch=epoch,
        best_params=None if run.best_params is None else _select(improved, state.params, run.best_params),
        best_epoch=jnp.where(improved, epoch, run.best_epoch),
        stopped=decision.stop & finite,
        diverged=~finite,
        diverged_step=jnp.where(finite, -1, jnp.where(sums.diverged_at >= 0, sums.diverged_at, state.step)),
    )
    return run, row


def _history_flags(run: RunState) -> Array:
    return jnp.stack([run.epoch, run.stopped, run.diverged, run.diverged_step, run.best_epoch]).astype(jnp.int32)


def _run_epochs(
    run: RunState,
    train_data: tuple,
    val_data: Optional[tuple],
    n_epochs: Array,
    numbers: StopNumbers,
    *,
    spec: RunSpec,
) -> Tuple[RunState, Tuple[Array, Array]]:
    """Up to ``min(n_epochs, spec.chunk)`` epochs of ``run`` in one dispatch (``run`` is donated).

    ``train_data`` is ``(x [n, d], y, sample_weight [n] or None, rows)`` and ``val_data``
    ``(x_val, y_val, rows)`` or None; ``rows`` (int32 [] or None) counts the real rows of arrays
    padded to their bucket (:mod:`ffnn_jax._buckets`). The loop ends early when the run stops or
    diverges. Returns the new run and ``(rows, flags)``: rows float32 [len(names), chunk] (the
    history of the epochs this dispatch completed, names as :func:`history_names`) and flags
    int32 [5]: epoch, stopped, diverged, diverged_step, best_epoch (one host transfer each).
    """
    names = history_names(spec.model, val_data is not None, run.train.opt_state)

    def body(carry):
        i, run, rows = carry
        run, row = _one_epoch(run, train_data, val_data, numbers, spec)
        return i + 1, run, rows.at[:, i].set(jnp.stack([row[name] for name in names]))

    def keep_going(carry):
        i, run, _ = carry
        return (i < jnp.minimum(n_epochs, spec.chunk)) & ~run.stopped & ~run.diverged

    rows = jnp.zeros((len(names), spec.chunk), jnp.float32)
    _, run, rows = jax.lax.while_loop(keep_going, body, (jnp.zeros((), jnp.int32), run, rows))
    return run, (rows, _history_flags(run))


run_epochs = functools.partial(jax.jit, static_argnames=("spec",), donate_argnums=0)(_run_epochs)


def _run_members_in_one_order(runs: RunState, train_data, val_data, n_epochs: Array, numbers: StopNumbers,
                              key, *, spec: RunSpec):  # fmt: skip
    """:func:`run_members` for members that share the data and the data order: ``key`` is the
    key every member still running holds, carried once (unbatched), so that each step gathers
    one batch of rows for all members and the first layer is one wide matrix product
    ``x [batch, d] @ [d, members × width]`` instead of one small product per member. Each member
    takes exactly the epochs :func:`_run_epochs` would; the loop runs while any member does.
    """
    names = history_names(spec.model, val_data is not None, runs.train.opt_state)
    limit = jnp.minimum(n_epochs, spec.chunk)

    def member_epoch(run, numbers, active, key):
        new, row = _one_epoch(run, train_data, val_data, numbers, spec, key=key, flat_theta=False)
        return _select(active, new, run), jnp.stack([row[name] for name in names])

    def active_members(i, runs):
        return (i < limit) & ~runs.stopped & ~runs.diverged

    def body(carry):
        i, key, runs, rows = carry
        active = active_members(i, runs)
        runs, row = jax.vmap(member_epoch, in_axes=(0, 0, 0, None))(runs, numbers, active, key)
        rows = rows.at[:, :, i].set(jnp.where(active[:, None], row, rows[:, :, i]))
        return i + 1, epoch_keys(key, spec.model)[0], runs, rows

    def keep_going(carry):
        i, _, runs, _ = carry
        return jnp.any(active_members(i, runs))

    rows = jnp.zeros((n_epochs.shape[0], len(names), spec.chunk), jnp.float32)
    _, _, runs, rows = jax.lax.while_loop(keep_going, body, (jnp.zeros((), jnp.int32), key, runs, rows))
    return runs, (rows, jax.vmap(_history_flags)(runs))


@functools.partial(jax.jit, static_argnames=("spec", "data_axis"), donate_argnums=0)
def run_members(runs: RunState, train_data, val_data, n_epochs: Array, numbers: StopNumbers, order_key=None, *,
                spec: RunSpec, data_axis: Optional[int]):  # fmt: skip
    """:func:`run_epochs` over a leading member axis: many networks in one program (a sweep).

    ``runs``, ``n_epochs`` [members] and ``numbers`` carry the member axis; the data are shared
    (``data_axis`` None) or stacked per member (0). A member whose ``n_epochs`` is 0, or that has
    stopped or diverged, runs no further epochs while the others go on. ``order_key``: the key
    of every member still running, when they share it and the data (one data order for all, see
    :func:`_run_members_in_one_order`); None: each member's own.
    """
    if order_key is not None:
        if data_axis is not None:
            raise ValueError("one data order is for members that share their data (data_axis None)")
        return _run_members_in_one_order(runs, train_data, val_data, n_epochs, numbers, order_key, spec=spec)
    one = functools.partial(_run_epochs, spec=spec)
    axes = (0, data_axis, data_axis, 0, 0)
    return jax.vmap(one, in_axes=axes)(runs, train_data, val_data, n_epochs, numbers)
