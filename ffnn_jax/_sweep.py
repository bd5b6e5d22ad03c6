"""``sweep()``: many networks in one compiled program (hyperparameter grids, k-fold cross-validation).

Each member of a sweep is an ordinary ``train()`` run: the same data preparation, the same initial
run state and the same compiled loop, :func:`ffnn_jax._loop.run_members`, which ``jax.vmap``s the
loop of ``train()`` over a leading member axis. Members whose runs compile alike (the same
:class:`ffnn_jax._loop.RunSpec` and shapes) share one program; numeric settings (learning rate, weight
decay, momentum, betas, ε, clipping norm, seed, patience, ...) differ between members inside it
because they live in the run state as arrays. Settings that change code or shapes (hidden sizes,
activation, optimizer, batch size, loss, ...) make one program per distinct structure. A member
that stops early stops updating; one that diverges is masked and reported, and never affects the
others.
"""

import contextlib
import csv
import dataclasses
import io
import itertools
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from ._checkpoint import atomic_write_bytes
from ._config import TrainConfig
from ._errors import check_positive_int
from ._gradcheck import x64_scope
from ._labels import is_label_column
from ._loop import RunState, run_members
from ._setup import place, prepare, setup
from ._stopping import watched_value
from ._train import TrainResult, append_rows, make_result, train


_SETTINGS = frozenset(field.name for field in dataclasses.fields(TrainConfig))
# What prepare() reads from the config: members equal in these share one prepared data set.
_DATA_SETTINGS = ("dtype", "task", "loss", "n_classes", "validation_fraction", "standardize", "class_weight")


def expand_grid(grid: Union[Dict[str, Sequence], Sequence[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """The grid points: the cartesian product of a dict of lists (in its key order), or a list of dicts."""
    if isinstance(grid, dict):
        for name, values in grid.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or len(list(values)) == 0:
                raise ValueError(f"`grid[{name!r}]` must be a non-empty list of values, got {values!r}")
        names = list(grid)
        points = [dict(zip(names, combination)) for combination in itertools.product(*(list(grid[n]) for n in names))]
    elif isinstance(grid, (list, tuple)) and grid and all(isinstance(point, dict) for point in grid):
        points = [dict(point) for point in grid]
    else:
        raise TypeError(f"`grid` must be a dict of lists or a non-empty list of dicts, got {grid!r}")
    for point in points:
        unknown = sorted(set(point) - _SETTINGS)
        if unknown:
            raise ValueError(f"`grid` names unknown settings {unknown}; train() settings are {sorted(_SETTINGS)}")
    return points


def _label(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _fold_of_each_row(y, k: int, seed: int) -> np.ndarray:
    """Fold index [n] of each row: stratified by label for class labels (round robin within each
    class after a seeded shuffle), else a seeded shuffle; every fold gets n // k or n // k + 1 rows."""
    n = len(y)
    if k > n:
        raise ValueError(f"`folds`={k} is more than the {n} rows")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    labels = np.asarray(y)
    if is_label_column(labels) and labels.dtype.kind in "biuUSO":
        labels = labels.reshape(n)
        order = order[np.argsort(labels[order], kind="stable")]  # grouped by class, shuffled within
    folds = np.empty(n, np.int64)
    folds[order] = np.arange(n) % k
    return folds


@dataclasses.dataclass
class _Plan:
    point: int  # index into the grid points
    fold: Optional[int]
    config: TrainConfig
    data_key: tuple


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What :func:`sweep` returns.

    ``table``: one dict per grid point: its settings, ``status``, ``epochs_run``, ``best_epoch``,
    the final value of every history column (``final_train_loss``, ...) and the best value of the
    monitored one (``best_val_loss``, ...); with folds, the mean over folds and ``..._std``.
    ``results``: a :class:`TrainResult` per member (grid point × fold). ``best``: the best grid
    point's result (refit on all the data when folds were used and ``refit``).
    """

    table: List[dict]
    results: List[TrainResult]
    best: Optional[TrainResult]
    best_index: Optional[int]  # the best grid point's row in ``table``
    monitor: str  # the value members are ranked by (smaller is better after watched_value)
    programs: int  # compiled programs the members ran in (one per distinct structure)
    grid_names: tuple = ()  # the settings the grid sets, in its order

    def plot(self, path: str) -> str:
        """A PNG: the monitored value per epoch of every member and, for a grid of two varied
        settings, a heatmap of each point's best value. Needs matplotlib (``pip install 'ffnn_jax[cli]'``)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        axes_names = [name for name in self.grid_names if len({_label(row[name]) for row in self.table}) > 1]
        heatmap = len(axes_names) == 2
        fig, axes = plt.subplots(1, 2 if heatmap else 1, figsize=(11 if heatmap else 6, 4.2), squeeze=False)
        curves = axes[0, 0]
        for result in self.results:
            values = result.history.get(self.monitor, [])
            curves.plot(result.history.get("epoch", []), values, alpha=0.6, linewidth=1)
        if self.best is not None and self.monitor in self.best.history:
            curves.plot(self.best.history["epoch"], self.best.history[self.monitor], color="black", linewidth=2,
                        label="best")  # fmt: skip
            curves.legend()
        if "loss" in self.monitor:
            curves.set_yscale("log")
        curves.set(xlabel="epoch", ylabel=self.monitor, title=f"{len(self.results)} members")
        curves.grid(alpha=0.3)
        if heatmap:
            rows_name, cols_name = axes_names
            rows = list(dict.fromkeys(_label(row[rows_name]) for row in self.table))
            cols = list(dict.fromkeys(_label(row[cols_name]) for row in self.table))
            grid = np.full((len(rows), len(cols)), np.nan)
            key = f"best_{self.monitor}"
            for row in self.table:
                grid[rows.index(_label(row[rows_name])), cols.index(_label(row[cols_name]))] = row.get(key, np.nan)
            ax = axes[0, 1]
            image = ax.imshow(grid, cmap="viridis", aspect="auto")
            ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
            ax.set_yticks(range(len(rows)), rows)
            ax.set(xlabel=cols_name, ylabel=rows_name, title=key)
            for i in range(len(rows)):
                for j in range(len(cols)):
                    if np.isfinite(grid[i, j]):
                        ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center", color="white", fontsize=7)
            fig.colorbar(image, ax=ax)
        fig.tight_layout()
        tmp = os.path.join(os.path.dirname(os.path.abspath(path)), ".tmp-" + os.path.basename(path))
        fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        os.replace(tmp, path)
        return path

    def to_csv(self, path: str, *, overwrite: bool = False) -> str:
        """Writes ``table`` as CSV (atomically); returns the path."""
        columns = list(dict.fromkeys(name for row in self.table for name in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.table)
        atomic_write_bytes(path, buffer.getvalue().encode(), overwrite=overwrite)
        return path


def sweep(
    x,
    y,
    *,
    grid,
    folds: Optional[int] = None,
    refit: bool = True,
    validation_data=None,
    sample_weight=None,
    **settings,
) -> SweepResult:
    """Trains every point of ``grid`` (× ``folds``) as members of one compiled program per structure.

    Args:
      x, y: training data, as for :func:`ffnn_jax.train`.
      grid: a dict of lists (their cartesian product) or a list of dicts (explicit points) of
        ``train()`` settings, e.g. ``{"learning_rate": [1e-3, 1e-2], "weight_decay": [0, 1e-4]}``.
      folds: k-fold cross-validation: each point trains k members, each on k−1 folds, validated on
        the held-out fold (stratified for labels); the table reports mean and std over folds.
      refit: with ``folds``, retrain the best point on all the data for ``best``.
      validation_data, sample_weight, **settings: as for ``train()`` (the settings every member shares).

    Returns:
      A :class:`SweepResult`. A member that diverges is reported (status ``diverged at epoch e``),
      never raised.

    Examples:
      >>> x, y = load_digits()
      >>> result = sweep(x, y, grid={"learning_rate": [1e-3, 1e-2]}, hidden_sizes=(16,), epochs=2)
      >>> len(result.table), result.best.layer_sizes
      (2, (64, 16, 10))
    """
    points = expand_grid(grid)
    base = TrainConfig(**settings)
    configs = [TrainConfig(**{**settings, **point}) for point in points]  # every value checked before compiling
    if folds is not None:
        check_positive_int("folds", folds)
        if folds < 2:
            raise ValueError(f"`folds` must be at least 2, got {folds}")
        if validation_data is not None or any(config.validation_fraction > 0 for config in configs):
            raise ValueError("`folds` holds out each fold in turn: pass no validation_data or validation_fraction")
    results: List[Optional[TrainResult]] = []
    # float64 members need x64 for the call, as train() scopes it (the global setting is left alone)
    with x64_scope() if any(config.dtype == "float64" for config in configs) else contextlib.nullcontext():
        plans, datasets = _plan(x, y, configs, folds, validation_data, sample_weight, base.seed)
        results = [None] * len(plans)
        groups = _groups(plans, datasets)
        for group in groups:
            for index, result in _run_group(group, plans, datasets).items():
                results[index] = result
    monitor = groups[0][0][1].spec.rule.monitor  # as train() resolves it: val_loss with validation data
    table = _table(points, plans, results, monitor, folds)
    best_index = _best_point(table, monitor)
    best = None
    if best_index is not None:
        if folds is not None and refit:
            best = train(x, y, validation_data=validation_data, sample_weight=sample_weight,
                         **{**settings, **points[best_index]})  # fmt: skip
        else:
            best = next(r for plan, r in zip(plans, results) if plan.point == best_index)
    names = tuple(dict.fromkeys(name for point in points for name in point))
    return SweepResult(table, results, best, best_index, monitor, len(groups), names)


def _plan(x, y, configs, folds, validation_data, sample_weight, seed):
    """The members and their prepared data sets (one per distinct data-shaping setting and fold)."""
    fold_of_row = None if folds is None else _fold_of_each_row(y, folds, seed)
    x_all, y_all = np.asarray(x), np.asarray(y)
    w_all = None if sample_weight is None else np.asarray(sample_weight)
    plans, datasets = [], {}
    for point, config in enumerate(configs):
        for fold in range(folds) if folds is not None else [None]:
            split_seed = config.seed if config.validation_fraction > 0 and validation_data is None else None
            key = (fold, split_seed) + tuple(repr(getattr(config, name)) for name in _DATA_SETTINGS)
            if key not in datasets:
                if fold is None:
                    arrays = (x_all, y_all, validation_data, w_all)
                else:
                    held = fold_of_row == fold
                    w = None if w_all is None else w_all[~held]
                    arrays = (x_all[~held], y_all[~held], (x_all[held], y_all[held]), w)
                data = prepare(config, arrays[0], arrays[1], arrays[2], arrays[3])
                datasets[key] = (data, place(data))
            plans.append(_Plan(point, fold, config, key))
    return plans, datasets


def _groups(plans, datasets):
    """Member indices grouped by what compiles alike: run spec, state shapes, data shapes."""
    groups: Dict[Any, List[int]] = {}
    for index, plan in enumerate(plans):
        data, placed = datasets[plan.data_key]
        member = setup(plan.config, data, placed=placed)
        shapes = jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), (member.run, placed))
        signature = (member.spec, jax.tree_util.tree_structure(member.run), str(shapes))
        groups.setdefault(signature, []).append((index, member))
    return list(groups.values())


def _stack(trees):
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def _run_group(group, plans, datasets) -> Dict[int, TrainResult]:
    """One compiled program over the group's members; the host loop over its chunks of epochs."""
    indices = [index for index, _ in group]
    members = [member for _, member in group]
    spec, names = members[0].spec, members[0].names
    keys = {plans[index].data_key for index in indices}
    if len(keys) == 1:
        train_data, val_data, data_axis = members[0].train_data, members[0].val_data, None
    else:
        train_data, val_data, data_axis = _stack([m.train_data for m in members]), None, 0
        if members[0].val_data is not None:
            val_data = _stack([m.val_data for m in members])
    runs: RunState = _stack([m.run for m in members])
    numbers = _stack([jax.tree_util.tree_map(jnp.asarray, m.numbers) for m in members])
    epochs = np.array([plans[index].config.epochs for index in indices])
    histories: List[dict] = [{} for _ in indices]
    epoch = np.zeros(len(indices), np.int64)
    while True:
        flags = np.asarray(jax.device_get(jnp.stack([runs.epoch, runs.stopped, runs.diverged], axis=1)))
        todo = np.where(flags[:, 1] | flags[:, 2], 0, epochs - flags[:, 0])
        if todo.max() <= 0:
            break
        start = time.perf_counter()
        runs, (rows, out) = run_members(
            runs, train_data, val_data, jnp.asarray(todo, jnp.int32), numbers, spec=spec, data_axis=data_axis
        )
        rows, out = jax.device_get((rows, out))
        after = out[:, 0].astype(np.int64)
        seconds = (time.perf_counter() - start) / max(1, int((after - epoch).max()))
        for m in range(len(indices)):
            append_rows(histories[m], names, rows[m], int(epoch[m]), int(after[m]), seconds)
        epoch = after
    results = {}
    for m, index in enumerate(indices):
        run = jax.tree_util.tree_map(lambda leaf: leaf[m], runs)
        data, _ = datasets[plans[index].data_key]
        results[index] = make_result(plans[index].config, data, spec, run, histories[m])
    return results


def _status(result: TrainResult) -> str:
    run = result.run
    epoch = int(run.epoch)
    if bool(run.diverged):
        return f"diverged at epoch {epoch + 1}"
    if bool(run.stopped):
        return f"stopped early at epoch {epoch}"
    return "ok"


def _summary(result: TrainResult, monitor: str) -> dict:
    history = result.history
    row = {"status": _status(result), "epochs_run": len(history.get("epoch", [])), "best_epoch": result.best_epoch}
    for name, values in history.items():
        if name not in ("epoch", "time_s") and values:
            row[f"final_{name}"] = values[-1]
    values = history.get(monitor, [])
    if values:
        watched = [float(watched_value(monitor, {monitor: v})) for v in values]
        row[f"best_{monitor}"] = values[int(np.argmin(watched))]
    return row


def _table(points, plans, results, monitor, folds) -> List[dict]:
    table = []
    for point_index, point in enumerate(points):
        member_rows = [_summary(r, monitor) for plan, r in zip(plans, results) if plan.point == point_index]
        row = {name: (list(v) if isinstance(v, tuple) else v) for name, v in point.items()}
        if folds is None:
            row.update(member_rows[0])
        else:
            bad = [r["status"] for r in member_rows if r["status"].startswith("diverged")]
            row["status"] = bad[0] + f" ({len(bad)} of {folds} folds)" if bad else "ok"
            for name in member_rows[0]:
                if name == "status":
                    continue
                values = np.array([r.get(name, np.nan) for r in member_rows], dtype=float)
                row[name] = float(np.mean(values))
                row[f"{name}_std"] = float(np.std(values))
        table.append(row)
    return table


def _best_point(table, monitor) -> Optional[int]:
    key = f"best_{monitor}"
    scored = [
        (float(watched_value(monitor, {monitor: row[key]})), i)
        for i, row in enumerate(table)
        if not row["status"].startswith("diverged") and key in row and np.isfinite(row[key])
    ]
    return min(scored)[1] if scored else None
