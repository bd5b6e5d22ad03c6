"""Tracking runs with Weights & Biases (the optional ``wandb`` extra: ``pip install 'ffnn_jax[wandb]'``).

A :class:`WandbCallback` is a ``train()`` callback on one wandb run: the run starts with the
:class:`TrainConfig` and the data shapes as its config, gets each epoch's history row as a step,
the final metrics in its summary, and is finished when training ends (marked failed when it
raises). :func:`log_result` adds a finished result's test metrics, confusion matrix and loss
curve to a run still open; :func:`log_sweep` logs a sweep's members as runs of one group, plus a
summary run with the sweep's table. ``wandb`` is imported only when one of them is used;
``WANDB_MODE=offline`` keeps everything on disk (``wandb sync`` uploads it later).

A run that checkpoints into a folder remembers its wandb run there (``wandb_run.json``), so that
resuming the training continues the same wandb run instead of starting another.
"""

import datetime
import json
import os
from typing import Any, Optional, Sequence

import numpy as np

from ._checkpoint import atomic_write_bytes
from ._config import TrainConfig
from ._version import __version__


WANDB_MISSING = "Weights & Biases logging needs the wandb package: pip install 'ffnn_jax[wandb]'"


class WandbMissingError(ImportError, ValueError):
    """``wandb`` is not installed (a ValueError too, so the CLI reports it as a one-line user error)."""


def import_wandb():
    """The ``wandb`` module; :class:`WandbMissingError` naming the extra to install when it is missing."""
    try:
        import wandb
    except ImportError as error:
        raise WandbMissingError(WANDB_MISSING) from error
    return wandb


def check_wandb_names(project: Any, entity: Any, *, prefix: str = "") -> None:
    """Checks ``wandb_project``/``wandb_entity`` (None or a non-empty string; an entity needs a project).

    ``prefix`` names the arguments as the caller spells them ("--" for the CLI's flags).
    """
    for name, value in (("wandb_project", project), ("wandb_entity", entity)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"`{prefix}{name}` must be a string or None, got {value!r}")
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"`{prefix}{name}` must be a non-empty string, got {value!r}")
    if entity is not None and project is None:
        raise ValueError(f"`{prefix}wandb_entity` needs `{prefix}wandb_project` (the project to log to)")


def _start(wandb, *, project: str, entity: Optional[str], config: dict, group=None, name=None, job_type=None,
           run_id: Optional[str] = None):  # fmt: skip
    # "create_new" (wandb >= 0.19.10) keeps a run the caller has open; older versions only know True.
    version = tuple(int(part) for part in wandb.__version__.split(".")[:3] if part.isdigit())
    reinit = "create_new" if version >= (0, 19, 10) else True
    resume = {} if run_id is None else {"id": run_id, "resume": "allow"}  # "allow": a run never synced starts anew
    run = wandb.init(project=project, entity=entity, config=config, group=group, name=name, job_type=job_type,
                     reinit=reinit, **resume)  # fmt: skip
    run.define_metric("epoch")
    run.define_metric("*", step_metric="epoch")  # charts over epochs, not wandb's log calls
    return run


RUN_FILE = "wandb_run.json"  # in a checkpointing run's folder: which wandb run a resume continues


def _saved_run_id(folder: str, project: str, entity: Optional[str]) -> Optional[str]:
    """The id of the wandb run that ``folder`` was logged to, if it went to this project and entity."""
    try:
        with open(os.path.join(folder, RUN_FILE), encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):  # never logged, or a damaged file: a new run
        return None
    if not isinstance(saved, dict) or (saved.get("project"), saved.get("entity")) != (project, entity):
        return None
    return saved.get("id") if isinstance(saved.get("id"), str) else None


def _remember_run(folder: str, run, project: str, entity: Optional[str]) -> None:
    os.makedirs(folder, exist_ok=True)
    record = {"id": run.id, "project": project, "entity": entity}
    atomic_write_bytes(os.path.join(folder, RUN_FILE), json.dumps(record).encode(), overwrite=True)


def _final_metrics(history: dict) -> dict:
    skip = ("epoch", "time_s")
    return {f"final_{name}": values[-1] for name, values in history.items() if name not in skip and values}


def _log_history(run, history: dict) -> None:
    for values in zip(*history.values()):
        run.log(dict(zip(history, values)))


class WandbCallback:
    """A ``train()`` callback ``f(epoch, row)`` that logs each row to ``run``; a context manager
    that finishes the run on exit (exit code 1 when an exception passes)."""

    def __init__(self, run):
        self.run = run

    def __call__(self, epoch: int, row: dict) -> None:
        del epoch  # the row has it
        self.run.log(dict(row))

    def summarize(self, result):
        """Puts ``result``'s final metrics, best epoch and stopping flag in the summary; returns ``result``."""
        self.run.summary.update(
            {"epochs_run": len(result.history.get("epoch", [])), "best_epoch": result.best_epoch,
             "stopped_early": result.stopped_early, **_final_metrics(result.history)}
        )  # fmt: skip
        return result

    def close(self, exit_code: int = 0, error: Optional[BaseException] = None) -> None:
        """Finishes the run (once): with ``error``, exit code 1 and the error in the summary."""
        if self.run is None:
            return
        run, self.run = self.run, None
        if error is not None:
            run.summary["error"] = f"{type(error).__name__}: {error}"
            exit_code = exit_code or 1
        run.finish(exit_code=exit_code)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close(error=error)


def make_wandb_callback(
    config: TrainConfig,
    x,
    y,
    validation_data=None,
    *,
    project: str,
    entity: Optional[str] = None,
    group: Optional[str] = None,
    name: Optional[str] = None,
    extra_config: Optional[dict] = None,
    folder: Optional[str] = None,
    resume: bool = False,
) -> WandbCallback:
    """Starts a wandb run for training on ``x``, ``y`` with ``config`` and returns its callback.

    Args:
      config: the run's settings; ``config.to_dict()`` plus the data shapes (``data.x`` [n, d_in],
        ``data.y``, ``data.x_val``, ``data.y_val``) and ``ffnn_jax_version`` become the run's config.
      x, y, validation_data: the data as given to ``train()`` (only their shapes are read).
      project, entity, group, name: passed to ``wandb.init``.
      extra_config: more config entries (e.g. the data set's name).
      folder: the run's checkpoint folder: the wandb run's id is kept there, and with ``resume``
        the run logged from that folder before (same project and entity) is continued.

    Returns:
      A :class:`WandbCallback`; use it as a context manager (or call ``close``) to finish the run.

    Raises:
      WandbMissingError: ``wandb`` is not installed.
    """
    wandb = import_wandb()
    check_wandb_names(project, entity)
    shapes = {"x": list(np.shape(x)), "y": list(np.shape(y))}
    if validation_data is not None:
        shapes.update(x_val=list(np.shape(validation_data[0])), y_val=list(np.shape(validation_data[1])))
    settings = {**config.to_dict(), "data": shapes, "ffnn_jax_version": __version__, **(extra_config or {})}
    run_id = _saved_run_id(folder, project, entity) if resume and folder is not None else None
    run = _start(wandb, project=project, entity=entity, config=settings, group=group, name=name, run_id=run_id)
    if folder is not None:
        _remember_run(folder, run, project, entity)
    return WandbCallback(run)


def log_result(run, result, x_test=None, y_test=None, *, class_names: Optional[Sequence[str]] = None) -> dict:
    """Logs a finished :class:`TrainResult`'s extras to the open wandb ``run``.

    The loss curve (``train_loss`` and ``val_loss`` per epoch, a line plot) always; with test data,
    the test metrics (summary ``test_loss``, ``test_accuracy`` or ``test_r2``) and, for a
    single-label classifier, the test set's confusion matrix (``class_names`` label its classes;
    default: the classes as strings).

    Returns:
      The test metrics (empty without test data).
    """
    wandb = import_wandb()
    history, charts = result.history, {}
    keys = [key for key in ("train_loss", "val_loss") if key in history]
    if keys:
        charts["loss_curve"] = wandb.plot.line_series(
            xs=history["epoch"], ys=[history[key] for key in keys], keys=keys, title="loss", xname="epoch"
        )
    test = {}
    if x_test is not None and y_test is not None:
        test = {f"test_{name}": value for name, value in result.evaluate(x_test, y_test).items()}
        run.summary.update(test)
        if result.task == "classification" and result.classes is not None and result.model.loss == "cross_entropy":
            from ._labels import encode_with

            names = [str(c) for c in result.classes.tolist()] if class_names is None else list(class_names)
            charts["confusion_matrix"] = wandb.plot.confusion_matrix(
                y_true=encode_with(result.classes, y_test, "y_test").tolist(),
                preds=encode_with(result.classes, result.predict(x_test), "predictions").tolist(),
                class_names=names,
                title="test set confusion matrix",
            )
    if charts:
        run.log(charts)
    return test


def _cell(value):
    """A wandb.Table cell: numbers and strings as they are, anything else (lists, dicts, None) as text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def log_sweep(
    result,
    *,
    project: str,
    entity: Optional[str] = None,
    group: Optional[str] = None,
    summary: Optional[dict] = None,
) -> str:
    """Logs a finished :class:`SweepResult` to wandb: one run per member, all in ``group``.

    Each member's run (named ``<group>-<index>``, job type ``sweep-member``) has its settings as
    config (plus ``sweep_point`` and, with folds, ``fold``), its per-epoch history (logged after
    the fact), and its final metrics and its point's row of the sweep's table (``sweep_row``) in
    its summary. One more run (``<group>-summary``, job type ``sweep-summary``) holds the whole
    table as a ``wandb.Table`` (``sweep_table``) and, in its summary, the best point's index and
    row, and ``summary``.

    Args:
      result: what :func:`ffnn_jax.sweep` returned.
      project, entity: passed to ``wandb.init``.
      group: the runs' group, the sweep's name (default: ``sweep-<date>-<time>``).
      summary: more entries for the summary run (e.g. the best point's test metrics).

    Returns:
      The group.
    """
    wandb = import_wandb()
    check_wandb_names(project, entity)
    group = group or f"sweep-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    per_point = max(1, len(result.results) // max(1, len(result.table)))  # members of a point: its folds
    for index, member in enumerate(result.results):
        point, fold = divmod(index, per_point)
        config = {**member.config.to_dict(), "sweep_point": point, **({"fold": fold} if per_point > 1 else {})}
        run = _start(wandb, project=project, entity=entity, config=config, group=group, name=f"{group}-{index:04d}",
                     job_type="sweep-member")  # fmt: skip
        with WandbCallback(run) as callback:
            _log_history(run, member.history)
            run.summary["sweep_row"] = result.table[point]  # the point's row (with folds: over its folds)
            callback.summarize(member)
    columns = list(dict.fromkeys(name for row in result.table for name in row))
    table = wandb.Table(columns=columns, data=[[_cell(row.get(name)) for name in columns] for row in result.table])
    config = {"monitor": result.monitor, "grid": list(result.grid_names)}
    run = _start(wandb, project=project, entity=entity, config=config, group=group, name=f"{group}-summary",
                 job_type="sweep-summary")  # fmt: skip
    with WandbCallback(run):
        run.log({"sweep_table": table})
        best = {} if result.best_index is None else {"best_index": result.best_index,
                                                      "best_row": result.table[result.best_index]}  # fmt: skip
        run.summary.update({"members": len(result.results), "programs": result.programs, **best, **(summary or {})})
    return group
