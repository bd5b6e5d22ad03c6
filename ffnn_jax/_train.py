"""``train()``: validate, build the spec and the first run, loop over compiled chunks, return.

The epochs run in compiled chunks (:func:`ffnn_jax._loop.run_epochs`: training, validation and
the stopping rule on the device, over the whole run as one pytree); between chunks the host
appends history rows, calls callbacks and writes checkpoints. A chunk is one epoch when callbacks
are given or an epoch is large, up to 100 epochs on tiny data, and never crosses a checkpoint.
Everything numeric that a user may vary between calls (learning rate and other optimizer
constants, λ, seed, epochs) reaches the compiled code as an array, so repeated calls with the
same shapes compile nothing.
"""

import contextlib
import dataclasses
import inspect
import json
import os
import signal
import threading
import time
import warnings
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import threadpoolctl

from ._config import TrainConfig, config_from
from ._distributed import any_process, check_same_everywhere, initialize_distributed, is_primary, refuse_together
from ._errors import check_positive_int, user_stacklevel
from ._gradcheck import x64_scope
from ._inference import TrainedModel
from ._loop import RunState, returned_params, run_epochs
from ._parallel import gather_to_host, replicate
from ._run_checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    check_epochs_cover,
    checkpoint_files,
    newest_valid,
    restore_into,
)
from ._saved_model import model_metadata
from ._setup import Prepared, Setup, describe_data, prepare, resumed, setup
from ._step import ModelSpec, TrainState
from ._types import Params
from ._version import __version__


class TrainingDivergedError(FloatingPointError):
    """Raised when a step's loss or parameters stop being finite.

    Attributes: ``epoch`` (1-based), ``step`` (global optimizer step), ``params`` (the last
    finite parameters) and ``history`` (the epochs completed before).
    """

    def __init__(self, epoch: int, step: int, params: Params, history: dict):
        super().__init__(
            f"training diverged at epoch {epoch} (optimizer step {step}): the loss or parameters became "
            "NaN/inf; lower the learning rate or clip gradients (max_grad_norm). The last finite "
            "parameters are in this error's `.params`."
        )
        self.epoch, self.step, self.params, self.history = epoch, step, params, history


@dataclasses.dataclass(frozen=True)
class TrainResult(TrainedModel):
    """What :func:`train` returns: a :class:`TrainedModel` (params, predict, ...) and the run."""

    # name -> list over epochs: epoch, train_loss, [train_accuracy], [val_*], [learning_rate], time_s
    # (wall seconds; epochs that ran in one dispatch share its time equally)
    history: dict
    config: TrainConfig
    run: RunState  # the whole final run (train state, epoch, best params and epoch, flags)
    best_epoch: int  # 1-based epoch whose params were returned
    stopped_early: bool

    @property
    def state(self) -> TrainState:
        """The final train state (params, optimizer state, step, key) for continuing."""
        return self.run.train


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C), or SIGTERM with a ``checkpoint_dir``, arrived during :func:`train`; the
    running chunk of epochs finished first, and with a ``checkpoint_dir`` the run was saved.

    Attributes: ``signal`` (its name), ``epoch`` (epochs completed), ``checkpoint`` (the file, or
    None without a checkpoint_dir), ``params`` (the last epoch's), ``history`` and ``result``: the
    :class:`TrainResult` of the epochs that ran (``.predict``, ``.save``, ...), as Keras' model
    keeps its weights when ``fit`` is interrupted.
    """

    def __init__(
        self, signal_name: str, epoch: int, epochs: int, checkpoint: Optional[str], params: Params, history: dict
    ):
        if checkpoint is None:
            where = (
                "what it learned is in this exception's `.result` (a TrainResult; `.params`, `.history`); "
                "with checkpoint_dir the run could also be resumed"
            )
        else:
            where = (
                f"the run is saved in {checkpoint}. To finish it, call train() again with the same settings and "
                "checkpoint_dir and resume=True (ffnn-jax train: the same flags plus --resume)."
            )
        super().__init__(f"training stopped by {signal_name} after epoch {epoch} of {epochs}; {where}")
        self.signal, self.epoch, self.checkpoint, self.params, self.history = (
            signal_name,
            epoch,
            checkpoint,
            params,
            history,
        )
        self.run: Optional[RunState] = None  # the run at the interruption (for `result`)
        self.result: Optional["TrainResult"] = None


def train(
    x,
    y,
    *,
    validation_data=None,
    callbacks: Sequence[Callable[[int, dict], Any]] = (),
    sample_weight=None,
    initial_params: Optional[Params] = None,
    initial_state: Optional[TrainState] = None,
    checkpoint_dir: Optional[str] = None,
    checkpoint_every: int = 1,
    keep_checkpoints: int = 2,
    resume: bool = False,
    ensemble: Optional[int] = None,
    devices=None,
    coordinator_address: Optional[str] = None,
    num_processes: Optional[int] = None,
    process_id: Optional[int] = None,
    wandb_project: Optional[str] = None,
    wandb_entity: Optional[str] = None,
    **settings,
) -> TrainResult:
    """Trains a feedforward network on ``x`` [n, d_in] and ``y`` and returns a :class:`TrainResult`.

    ``y`` of integer, bool or string labels [n] or one-hot rows [n, k] (int or float) means
    classification (softmax over k outputs); other float targets [n] or [n, d_out] mean regression
    (float labels such as 0., 1., 2. too, with a warning; ``task=`` decides); ``loss="binary_cross_entropy"``
    with 0/1 targets [n] or [n, k] means sigmoid outputs (binary or multi-label). Every keyword of
    :class:`TrainConfig` is accepted (``hidden_sizes``, ``activation``, ``loss``, ``optimizer``,
    ``learning_rate``, ``epochs``, ``batch_size`` (None: full batch), ``seed``, ``weight_decay``,
    ``validation_fraction``, ``early_stopping``, ``patience``, ...).

    Args:
      x, y: training data (NumPy or JAX arrays, or nested lists).
      validation_data: optional ``(x_val, y_val)``; otherwise ``validation_fraction`` of the
        training data is held out (stratified for labels).
      callbacks: functions ``f(epoch, metrics)`` called after each epoch with the epoch's
        history row; returning True stops training.
      sample_weight: optional [n] non-negative weights of the training rows.
      initial_params: start from these params instead of a fresh init (shapes must match).
      initial_state: continue a previous run's ``result.state`` (params, optimizer state, step
        and data-order key); the optimizer's numeric hyperparameters are taken from ``settings``.
      checkpoint_dir: save the whole run there every ``checkpoint_every`` epochs, at the end, and
        when SIGINT/SIGTERM arrives (the call then raises :class:`TrainingInterrupted`); the
        newest ``keep_checkpoints`` files are kept. A folder that holds a run's checkpoints
        is refused unless ``resume``.
      resume: continue from the newest valid checkpoint in ``checkpoint_dir`` (none: start
        fresh). ``epochs`` is the total; every other setting must equal the checkpoint's.
      devices: None (one default device), "all", a count or a list of jax devices: each batch is
        split over them (data parallel; params replicated; the same results to float rounding).
      coordinator_address, num_processes, process_id: run as process ``process_id`` of
        ``num_processes`` (see :func:`ffnn_jax.initialize_distributed`; also read from JAX_* variables
        and Slurm). Every process calls ``train()`` with the same data and settings; each puts only its
        own rows on its devices, the batches are split over every process's devices, and only process 0
        writes checkpoints. The result holds host (NumPy) arrays.
      ensemble: train this many networks (seeds ``seed`` ...) in one program and return an
        :class:`ffnn_jax.EnsembleResult` that averages their predictions. With ``checkpoint_dir``
        the members are saved as a sweep's are (SIGINT/SIGTERM raise :class:`ffnn_jax.SweepInterrupted`
        once saved; ``resume=True`` continues them).
      wandb_project: log the run to this Weights & Biases project (``pip install
        'ffnn_jax[wandb]'``; with many processes, process 0 logs): the settings and data shapes as
        config, each epoch's history row, the final metrics in the summary; the run is finished
        when training ends, and marked failed when it raises. ``WANDB_MODE=offline`` keeps it on disk.
        With ``checkpoint_dir`` the run's id is kept there, and ``resume`` continues that wandb run.
      wandb_entity: the wandb team or user of ``wandb_project`` (default: wandb's default entity).
      **settings: fields of :class:`TrainConfig`.

    Returns:
      A :class:`TrainResult`.

    Raises:
      ValueError, TypeError: bad data or settings, before anything is compiled (also when
        ``wandb_project`` is given and wandb is not installed).
      TrainingDivergedError: the loss became NaN/inf; carries the last finite params.
      TrainingInterrupted: a signal ended a checkpointed run after saving it.
      CheckpointError: a checkpoint could not be written; carries the run.

    Examples:
      >>> x, y = load_digits()
      >>> result = train(x, y, hidden_sizes=(32,), optimizer="adam", learning_rate=1e-3, epochs=2)
      >>> result.predict(x[:3]).shape
      (3,)
    """
    config = config_from(settings, "train()", also=_OWN_ARGUMENTS)
    _check_checkpointing(checkpoint_dir, checkpoint_every, keep_checkpoints, resume)
    from ._wandb import check_wandb_names, make_wandb_callback  # wandb itself is imported only when used

    check_wandb_names(wandb_project, wandb_entity)
    initialize_distributed(coordinator_address, num_processes, process_id)
    if ensemble is not None:
        if callbacks or initial_params is not None or initial_state is not None or wandb_project is not None:
            raise ValueError("`ensemble` trains its members in one program: callbacks, initial_params, "
                             "initial_state and wandb_project are not supported with it")  # fmt: skip
        from ._ensemble import train_ensemble

        checkpointing = dict(checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                             keep_checkpoints=keep_checkpoints, resume=resume)  # fmt: skip
        return train_ensemble(x, y, ensemble, validation_data=validation_data, sample_weight=sample_weight,
                              **checkpointing, **settings)  # fmt: skip
    tracker = None  # the wandb run: finished on leaving the block below (marked failed when training raises)
    if wandb_project is not None and is_primary():
        tracker = make_wandb_callback(config, x, y, validation_data, project=wandb_project, entity=wandb_entity,
                                      folder=checkpoint_dir, resume=resume)  # fmt: skip
        callbacks = [*callbacks, tracker]
    # float64 is enabled for this call only (the user's global jax_enable_x64 is left as it is).
    with tracker or contextlib.nullcontext(), x64_scope() if config.dtype == "float64" else contextlib.nullcontext():
        result = _train(config, x, y, validation_data, callbacks, sample_weight, initial_params, initial_state,
                        checkpoint_dir, checkpoint_every, keep_checkpoints, resume, devices)  # fmt: skip
        return result if tracker is None else tracker.summarize(result)


def _train(config, x, y, validation_data, callbacks, sample_weight, initial_params, initial_state,
           checkpoint_dir, checkpoint_every, keep_checkpoints, resume, devices) -> TrainResult:  # fmt: skip
    data = prepare(config, x, y, validation_data, sample_weight)
    about = _about(config, data)
    check_same_everywhere(about)
    store = None
    if checkpoint_dir is not None:  # every process keeps the schedule; process 0 writes the files
        _refuse_saved_run(checkpoint_dir, resume)
        store = CheckpointStore(checkpoint_dir, keep=keep_checkpoints, write=is_primary())
    saved = _checkpoint_to_resume(checkpoint_dir, about, config.epochs) if resume and store is not None else None
    (has_callbacks,) = any_process(bool(callbacks))  # the same chunks on every process (process 0's wandb)
    setup_ = setup(
        config, data, initial_params=initial_params, initial_state=initial_state, has_callbacks=has_callbacks,
        devices=devices,
    )  # fmt: skip
    run, history = setup_.run, {}
    if saved is not None:
        run = replicate(resumed(restore_into(run, saved), run), setup_.spec.mesh)
        history = {k: list(v) for k, v in saved.meta["history"].items()}
    try:
        run, history = _run_chunks(run, history, setup_, config.epochs, callbacks, store, about, checkpoint_every)
    except TrainingInterrupted as interrupt:
        if interrupt.run is not None:
            local = gather_to_host(interrupt.run) if jax.process_count() > 1 else interrupt.run
            interrupt.result = make_result(config, data, setup_.spec, local, interrupt.history)
        raise
    if jax.process_count() > 1:  # arrays that span processes: the result is usable on this one alone
        run = gather_to_host(run)
    result = make_result(config, data, setup_.spec, run, history)
    _warn_if_relus_died(result, data.x)
    return result


_BLAS_WORK = 1 << 23  # multiply-adds of the dead-ReLU check from which its BLAS is held to one thread
_DEAD_CHECK_ROWS = 256  # training rows the dead-ReLU check runs on (a few ms on the host for large networks)


def _warn_if_relus_died(result: TrainResult, x) -> None:
    """Warns when the network's outputs are (almost) the same on a strided sample of the training
    rows ``x`` [n, d] (as trained, standardized) while those rows differ: with ReLU that means its
    hidden units have (nearly) all died, so no gradient reaches the layers below and more epochs
    cannot help. The usual cause is a learning rate too large for the targets' scale. NumPy on the
    host, so no program is compiled; dense host inputs with ReLU only."""
    activation = result.model.activation
    if not (isinstance(activation, str) and activation.lower() == "relu" and isinstance(x, np.ndarray)):
        return
    rows = x[:: -(-len(x) // _DEAD_CHECK_ROWS)].astype(np.float32)
    if len(rows) < 8 or not np.any(rows.std(axis=0) > 0):
        return
    layers = jax.device_get(result.params)
    h, alive = rows, []
    # BLAS on one thread: its idle workers would spin for about 0.1 s of CPU after these products,
    # taking a core from whatever runs next (the next train()'s first epoch ran 0.03 s slower). The
    # limit costs 0.8 ms, so products too small to matter (digits' 1.6M multiply-adds) go without.
    work = len(rows) * sum(layer.W.size for layer in layers)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas") if work >= _BLAS_WORK else contextlib.nullcontext():
        for layer in layers[:-1]:
            h = np.maximum(h @ np.asarray(layer.W, np.float32) + np.asarray(layer.b, np.float32), 0.0)
            alive.append(int(np.count_nonzero(h.max(axis=0) > 0)))
        scores = h @ np.asarray(layers[-1].W, np.float32) + np.asarray(layers[-1].b, np.float32)
    spread, level = float(scores.std(axis=0).max()), float(np.abs(scores).mean())
    if spread > 1e-4 * (1.0 + level):
        return
    units = ", ".join(f"{n} of {layer.W.shape[1]}" for n, layer in zip(alive, layers[:-1]))
    warnings.warn(
        f"the trained network gives (almost) the same output for every one of the {len(rows)} training rows "
        f"checked (spread {spread:.2g} around {level:.3g}): its ReLU units have (nearly) all died (active units "
        f"per hidden layer: {units}), so it cannot learn further. The usual causes are a learning rate too large "
        f"for this data (here {result.config.learning_rate}) or too strong a weight decay (here "
        f"{result.config.weight_decay}): try a smaller learning rate, the adam optimizer, standardized inputs "
        "with targets of unit scale, or the leaky_relu activation",
        RuntimeWarning,
        stacklevel=user_stacklevel(),
    )


def make_result(config: TrainConfig, data: Prepared, spec, run: RunState, history: dict) -> TrainResult:
    """The :class:`TrainResult` of a finished run."""
    best_epoch, epoch = int(run.best_epoch), int(run.epoch)
    return TrainResult(
        params=returned_params(run),
        model=spec.model,
        task=data.task,
        standardizer=data.standardizer,
        l2=config.loss_l2,
        classes=data.classes,
        feature_names=data.feature_names,
        history=history,
        config=config,
        run=run,
        best_epoch=best_epoch if run.best_params is not None and best_epoch > 0 else epoch,
        stopped_early=bool(run.stopped),
    )


def append_rows(history: dict, names, rows: np.ndarray, before: int, after: int, seconds: float) -> list:
    """Adds the history rows of epochs ``before+1..after`` (``rows`` [names, chunk]); returns them."""
    added = []
    for i in range(after - before):
        row = {"epoch": before + i + 1, **dict(zip(names, rows[:, i].tolist())), "time_s": seconds}
        for name, value in row.items():
            history.setdefault(name, []).append(value)
        added.append(row)
    return added


def _check_checkpointing(checkpoint_dir, checkpoint_every, keep_checkpoints, resume) -> None:
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(f"`checkpoint_dir` must be a folder path or None, got {checkpoint_dir!r}")
    check_positive_int("checkpoint_every", checkpoint_every)
    check_positive_int("keep_checkpoints", keep_checkpoints)
    if not isinstance(resume, bool):
        raise TypeError(f"`resume` must be a bool, got {resume!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("`resume`=True needs `checkpoint_dir` (the folder to resume from)")


def _about(config: TrainConfig, data: Prepared) -> dict:
    """The checkpoint's description of the run: settings, data, model, versions (JSON types)."""
    settings = config.to_dict()
    about = {
        "settings": {name: value for name, value in settings.items() if name != "epochs"},
        "data": describe_data(data),
        "model": model_metadata(
            ModelSpec(config.activation, data.loss, data.task == "classification", config.compute_dtype),
            data.task,
            config.loss_l2,
            data.standardizer,
            data.classes,
            data.feature_names,
        ),
        "versions": {"ffnn_jax": __version__, "jax": jax.__version__},
    }
    return json.loads(json.dumps(about))


def _refuse_saved_run(folder: str, resume: bool) -> None:
    """A new run (``resume`` False) refuses a ``checkpoint_dir`` that holds a run's checkpoints:
    its newest ones would outlive this run's (pruning keeps the highest epochs), and a later resume
    would continue the old run. Process 0 looks (it alone writes there; on a shared file system the
    others could see its files before ``--overwrite`` removed them), and all refuse together."""
    saved = checkpoint_files(folder) if is_primary() and not resume else []
    refusal = None
    if saved:
        refusal = ValueError(
            f"`checkpoint_dir` {folder!r} holds the checkpoints of a run (the newest at epoch {saved[0][0]}): pass "
            "resume=True (ffnn-jax train: --resume) to continue it, or choose another folder (or remove this one, "
            "or ffnn-jax train: --overwrite) to start anew"
        )
    refuse_together(refusal, f"`checkpoint_dir` {folder!r}")


def _checkpoint_to_resume(folder: str, about: dict, epochs: int) -> Optional[Checkpoint]:
    """The newest valid checkpoint in ``folder`` (None: none yet), checked against this call's
    settings and its ``epochs`` (the total: no fewer than the checkpoint has run)."""
    saved = newest_valid(folder)
    if saved is None:
        return None
    # a setting added after the checkpoint was written counts as saved with its default
    saved_settings = saved.meta["about"]["settings"]
    defaults = json.loads(json.dumps(TrainConfig().to_dict()))
    defaults = {name: defaults[name] for name in about["settings"] if name not in saved_settings and name in defaults}
    for part in ("settings", "data"):
        ours, theirs = about[part], {**(defaults if part == "settings" else {}), **saved.meta["about"][part]}
        for name in sorted(set(ours) | set(theirs)):
            if ours.get(name) != theirs.get(name):
                what = f"`{name}`" if part == "settings" else f"the training data ({name})"
                raise ValueError(
                    f"cannot resume from {saved.path!r}: it was made with {what} = {theirs.get(name)!r}, this call has "
                    f"{ours.get(name)!r}; only `epochs` may change (or use a new checkpoint_dir)"
                )
    check_epochs_cover(epochs, saved.epoch, saved.path)
    return saved


@contextlib.contextmanager
def _signals_deferred(signals: Sequence[int]):
    """While inside, ``signals`` are recorded (in the yielded list) instead of raising."""
    caught: list = []
    if not signals or threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {sig: signal.signal(sig, lambda number, frame: caught.append(number)) for sig in signals}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# With a checkpoint_dir both end the run at a chunk's end, once it is saved; without one only Ctrl-C
# does (a chunk ends before Python could see the signal anyway), and SIGTERM ends the process as it would.
_DEFERRED = (signal.SIGINT, signal.SIGTERM)
_DEFERRED_WITHOUT_CHECKPOINTS = (signal.SIGINT,)


def _run_chunks(run: RunState, history: dict, setup_: Setup, epochs: int, callbacks, store, about, every: int):
    """The host loop: compiled chunks of epochs, history rows, callbacks, checkpoints, signals."""
    epoch, stopped, diverged, diverged_step = (
        int(run.epoch),
        bool(run.stopped),
        bool(run.diverged),
        int(run.diverged_step),
    )
    with _signals_deferred(_DEFERRED if store is not None else _DEFERRED_WITHOUT_CHECKPOINTS) as caught:
        try:
            while epoch < epochs and not stopped and not diverged:
                todo = epochs - epoch if store is None else min(epochs - epoch, every - epoch % every)
                start, before = time.perf_counter(), epoch
                run, packed = run_epochs(
                    run, setup_.train_data, setup_.val_data, np.int32(todo), setup_.numbers, spec=setup_.spec
                )
                rows, flags = jax.device_get(packed)
                epoch, stopped, diverged, diverged_step, _ = (int(flag) for flag in flags)
                seconds = (time.perf_counter() - start) / max(1, epoch - before)
                for row in append_rows(history, setup_.names, rows, before, epoch, seconds):
                    if any(callback(row["epoch"], dict(row)) is True for callback in callbacks):
                        stopped, run = True, run._replace(stopped=jnp.ones((), bool))
                # every process of a multi-process run stops at the same chunk (a signal or a callback on one)
                signalled, stopped_somewhere = any_process(bool(caught), stopped)
                if signalled and not caught:
                    caught.append(signal.SIGTERM if store is not None else signal.SIGINT)
                if stopped_somewhere and not stopped:
                    stopped, run = True, run._replace(stopped=jnp.ones((), bool))
                finished = epoch >= epochs or stopped or diverged
                if store is not None and (finished or epoch % every == 0 or caught):
                    store.save(run, epoch=epoch, history=history, about=about, wait=bool(caught))
                if caught:
                    name = signal.Signals(caught[0]).name
                    where = None if store is None else store.path(epoch)
                    interrupt = TrainingInterrupted(name, epoch, epochs, where, run.train.params, history)
                    interrupt.run = run
                    raise interrupt
        except KeyboardInterrupt as interrupt:  # a callback's: end only once the run is on disk
            if store is not None and not isinstance(interrupt, TrainingInterrupted) and store.saved_epoch != epoch:
                store.save(run, epoch=epoch, history=history, about=about, wait=True)
            raise
        except CheckpointError as error:
            raise _carrying(error, run, history) from None
        finally:
            if store is not None:
                try:
                    store.close()
                except CheckpointError as error:
                    raise _carrying(error, run, history) from None
    if diverged:
        raise TrainingDivergedError(epoch + 1, diverged_step, run.train.params, history)
    return run, history


def _carrying(error: CheckpointError, run: RunState, history: dict) -> CheckpointError:
    """``error`` with the in-memory run attached (host copies), so nothing is lost."""
    error.run = jax.device_get(run)
    error.params, error.history = jax.device_get(returned_params(run)), history
    return error


def _train_signature() -> inspect.Signature:
    base = inspect.signature(train)
    settings = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for f in dataclasses.fields(TrainConfig)
    ]
    params = [p for p in base.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    return base.replace(parameters=params + settings)


train.__signature__ = _train_signature()  # help(train) lists every TrainConfig keyword
_OWN_ARGUMENTS = [name for name in inspect.signature(train).parameters if name not in ("x", "y")]
