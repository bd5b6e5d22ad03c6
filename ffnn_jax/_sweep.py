"""``sweep()``: many networks in one compiled program (hyperparameter grids, k-fold cross-validation).

Each member of a sweep is an ordinary ``train()`` run: the same data preparation, the same initial
run state and the same compiled loop, :func:`ffnn_jax._loop.run_members`, which ``jax.vmap``s the
loop of ``train()`` over a leading member axis. Members whose runs compile alike (the same
:class:`ffnn_jax._loop.RunSpec` and shapes) share one program; numeric settings (learning rate, weight
decay, momentum, betas, ε, clipping norm, seed, patience, ...) differ between members inside it
because they live in the run state as arrays. Settings that change code or shapes (hidden sizes,
activation, optimizer, batch size, loss, ...) make one program per distinct structure. A member
that stops early stops updating; one that diverges is masked and reported, and never affects the
others. Members that share a seed share the data order as well: the loop then carries one key
for all of them and their first layer is one wide product (``_loop._run_members_in_one_order``).
A structure with more members than fit in memory (or than ``max_members``) runs in chunks
of one width, so it still compiles once. :func:`train_members` is the engine (members given one by
one, each with its own data key): :class:`ffnn_jax.SweepSearchCV` runs scikit-learn fits through it.
With a ``checkpoint_dir`` each chunk is saved as it goes and a resumed sweep continues it
(:mod:`ffnn_jax._sweep_checkpoint`).
"""

import contextlib
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import os
import signal
import time
from numbers import Integral
from typing import Any, Callable, Dict, Hashable, List, NamedTuple, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from ._checkpoint import atomic_write_bytes
from ._config import TrainConfig, config_from, setting_meant
from ._data import check_feature_names, feature_names_of
from ._distributed import any_process, check_same_everywhere, smallest_everywhere
from ._errors import check_positive_int
from ._gradcheck import x64_scope
from ._labels import is_label_column, plain_labels
from ._loop import RunState, run_members
from ._parallel import gather_to_host, make_mesh, replicate, shard_leading
from ._setup import Setup, epochs_per_dispatch, place, prepare, reads_class_labels, sampled_rows, setup
from ._sparse import is_scipy_sparse
from ._stopping import watched_value
from ._sweep_checkpoint import FORMAT as CHECKPOINT_FORMAT
from ._sweep_checkpoint import REFIT, SweepCheckpoints, SweepInterrupted, chunk_checkpoint
from ._sweep_checkpoint import VERSION as CHECKPOINT_VERSION
from ._train import (
    _DEFERRED,
    TrainingInterrupted,
    TrainResult,
    _check_checkpointing,
    _signals_deferred,
    append_rows,
    make_result,
    train,
)
from ._types import Params


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
            meant = setting_meant(unknown[0])
            hint = (
                f"did you mean {meant!r} for {unknown[0]!r}?" if meant else f"train() settings are {sorted(_SETTINGS)}"
            )
            raise ValueError(f"`grid` names unknown settings {unknown}; {hint}")
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


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What :func:`sweep` returns.

    ``table``: one dict per grid point: its settings, ``status``, ``epochs_run``, ``best_epoch``,
    the final value of every history column (``final_train_loss``, ...), the best value of the
    monitored one over the epochs (``best_val_loss``, ...) and its value for the params the member
    returns (``returned_val_loss``: the last epoch's, or the restored best epoch's with
    ``early_stopping`` and ``restore_best``), which ranks the points; with folds, the mean over
    folds and ``..._std``. ``results``: a :class:`TrainResult` per member (grid point × fold).
    ``best``: the best grid point's result (refit on all the data when folds were used and ``refit``).
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
        values = np.array([v for r in self.results for v in r.history.get(self.monitor, [])], dtype=float)
        values = values[np.isfinite(values) & (values > 0)]
        if "loss" in self.monitor and values.size and values.max() > 10 * values.min():  # losses spanning decades
            curves.set_yscale("log")
        curves.set(xlabel="epoch", ylabel=self.monitor, title=f"{len(self.results)} members")
        curves.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # whole epochs
        curves.grid(alpha=0.3)
        if heatmap:
            rows_name, cols_name = axes_names
            rows = list(dict.fromkeys(_label(row[rows_name]) for row in self.table))
            cols = list(dict.fromkeys(_label(row[cols_name]) for row in self.table))
            grid = np.full((len(rows), len(cols)), np.nan)
            key = f"returned_{self.monitor}"
            for row in self.table:
                grid[rows.index(_label(row[rows_name])), cols.index(_label(row[cols_name]))] = row.get(key, np.nan)
            ax = axes[0, 1]
            image = ax.imshow(grid, cmap="viridis", aspect="auto")
            ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
            ax.set_yticks(range(len(rows)), rows)
            ax.set(xlabel=cols_name, ylabel=rows_name, title=key)
            for i in range(len(rows)):
                for j in range(len(cols)):
                    if np.isfinite(grid[i, j]):  # dark text on the bright end of viridis, white on the dark end
                        bright = image.norm(grid[i, j]) > 0.6
                        ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center", fontsize=7,
                                color="black" if bright else "white")  # fmt: skip
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
    folds=None,
    refit: bool = True,
    validation_data=None,
    sample_weight=None,
    max_members: Optional[int] = None,
    progress: Optional[Callable[[int, int, Optional[dict]], Any]] = None,
    devices=None,
    checkpoint_dir: Optional[str] = None,
    checkpoint_every: int = 1,
    keep_checkpoints: int = 2,
    resume: bool = False,
    **settings,
) -> SweepResult:
    """Trains every point of ``grid`` (× ``folds``) as members of one compiled program per structure.

    Args:
      x, y: training data, as for :func:`ffnn_jax.train`.
      grid: a dict of lists (their cartesian product) or a list of dicts (explicit points) of
        ``train()`` settings, e.g. ``{"learning_rate": [1e-3, 1e-2], "weight_decay": [0, 1e-4]}``.
      folds: cross-validation, each point training one member per fold on the fold's training
        rows, validated on its held-out rows; the table reports mean and std over folds. An int
        k >= 2: k folds (stratified for labels, shuffled with ``seed``); a sequence of
        ``(train_indices, test_indices)`` pairs; or a splitter with ``.split(x, y)`` (e.g.
        scikit-learn's ``KFold(5)``, or what ``check_cv`` returns), whose pairs are used as given.
      refit: with ``folds``, retrain the best point on all the data for ``best``.
      validation_data, sample_weight, **settings: as for ``train()`` (the settings every member shares).
      max_members: most members in one program run; a structure with more runs in chunks of this
        size (the last one padded with copies of a member, dropped after, so each structure
        compiles once). A member's result depends on its settings and the program's width (the
        members per run) only, never on its chunk or neighbours; a program of another width may
        round in the last bit otherwise where XLA vectorizes a reduction by the member count
        (seen on CPU for validation losses and stacked fold data). None: as many as fit half the
        accelerator's free memory (a quarter of the host RAM on CPU), estimated from a member's
        run state and one batch's activations (:func:`member_bytes`).
      progress: called as ``progress(done_members, total_members, best_row)`` after each chunk;
        ``best_row`` is the best finished member's row (as in ``table``, plus ``fold`` with
        folds) or None while no member has a finite monitored value.
      devices: None (one device; across several processes of ``jax.distributed``, all of them),
        "all", a count or a list of devices: the member axis is split over them, each device
        training its own members (a chunk is padded to a multiple of the device count; on one
        process a sweep with fewer members than devices uses that many devices). Every
        process of a multi-process run calls ``sweep`` alike and gets every member's result. On a
        CPU, :func:`ffnn_jax.use_cpu_cores` first makes one device per core (members side by side).
      checkpoint_dir: save every chunk of members there (their whole run states, stacked) every
        ``checkpoint_every`` epochs, when it ends and on SIGINT/SIGTERM, keeping the newest
        ``keep_checkpoints`` files of each; SIGINT/SIGTERM then end the sweep with
        :class:`SweepInterrupted` once it is saved (a refit after ``folds`` is saved in its
        ``refit`` folder as a ``train()`` run). A folder that holds a sweep is refused unless
        ``resume``.
      resume: continue the sweep saved in ``checkpoint_dir``: finished chunks are read back,
        the others go on from their newest valid checkpoint, and the results equal an
        uninterrupted sweep's. Every argument but ``epochs`` must be the same.

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
    base = config_from(settings, "sweep()")
    configs = [TrainConfig(**{**settings, **point}) for point in points]  # every value checked before compiling
    check_positive_int("max_members", max_members, allow_none=True)
    if progress is not None and not callable(progress):
        raise TypeError(f"`progress` must be callable as progress(done, total, best_row), got {progress!r}")
    feature_names = feature_names_of(x)  # a DataFrame's columns, checked and kept as train() keeps them
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        check_feature_names(validation_data[0], feature_names, "validation_data[0]")
    x_all, y_all = x.tocsr() if is_scipy_sparse(x) else np.asarray(x), plain_labels(y)  # sparse rows stay sparse
    w_all = None if sample_weight is None else np.asarray(sample_weight)
    pairs = None if folds is None else fold_pairs(folds, x_all, y_all, seed=base.seed)
    if pairs is None:
        arrays = {None: (x_all, y_all, validation_data, w_all)}
        where = [(point, None) for point in range(len(points))]
    else:
        if validation_data is not None or any(config.validation_fraction > 0 for config in configs):
            raise ValueError("`folds` holds out each fold in turn: pass no validation_data or validation_fraction")
        if any(reads_class_labels(config, y_all) for config in configs):
            _check_fold_labels(pairs, y_all)
        arrays = {
            fold: (x_all[train], y_all[train], (x_all[held], y_all[held]), None if w_all is None else w_all[train])
            for fold, (train, held) in enumerate(pairs)
        }
        where = [(point, fold) for point in range(len(points)) for fold in range(len(pairs))]
    reporter = None if progress is None else _best_so_far(progress, points, where)
    digests = {"x": _sampled_digest(x_all), "y": _sampled_digest(y_all)}
    checkpoints = None
    if checkpoint_dir is not None:  # the folder checked against this sweep before anything compiles
        _check_checkpointing(checkpoint_dir, checkpoint_every, keep_checkpoints, resume)
        about = _sweep_about(points, base, digests, (validation_data, w_all), pairs, max_members)
        checkpoints = SweepCheckpoints(checkpoint_dir, about=about, every=checkpoint_every, keep=keep_checkpoints,
                                       resume=resume)  # fmt: skip
    check_same_everywhere({"settings": {"grid": points, **{name: repr(v) for name, v in settings.items()}},
                           "data": {**digests, "folds": repr(folds)}})  # fmt: skip
    trained = train_members(
        [Member(configs[point], fold) for point, fold in where], arrays, max_members=max_members, progress=reporter,
        devices=devices, checkpoints=checkpoints,
    )  # fmt: skip
    results, monitor = trained.results, trained.monitor  # monitor as train() resolves it: val_loss with validation
    if feature_names is not None:
        results = [dataclasses.replace(result, feature_names=feature_names) for result in results]
    table = _table(points, where, results, monitor, None if pairs is None else len(pairs))
    best_index = _best_point(table, monitor)
    best = None
    if best_index is not None:
        if pairs is not None and refit:
            best = _refit(x, y, sample_weight, {**settings, **points[best_index]}, checkpoints)
        else:
            best = next(r for (point, _), r in zip(where, results) if point == best_index)
    names = tuple(dict.fromkeys(name for point in points for name in point))
    return SweepResult(table, results, best, best_index, monitor, trained.programs, names)


def _refit(x, y, sample_weight, settings: dict, checkpoints: Optional[SweepCheckpoints]) -> TrainResult:
    """The best point retrained on all the data; with checkpoints, saved in their ``refit``
    folder like a run of ``train()``, so a resumed sweep continues its refit too."""
    if checkpoints is None:
        return train(x, y, sample_weight=sample_weight, **settings)
    try:
        return train(x, y, sample_weight=sample_weight, checkpoint_dir=os.path.join(checkpoints.folder, REFIT),
                     checkpoint_every=checkpoints.every, keep_checkpoints=checkpoints.keep, resume=checkpoints.resume,
                     **settings)  # fmt: skip
    except TrainingInterrupted as interrupt:
        raise SweepInterrupted(interrupt.signal, checkpoints.folder) from interrupt


def _sweep_about(points, base: TrainConfig, digests: dict, extra: tuple, pairs, max_members) -> dict:
    """What a sweep's checkpoints must agree with to be resumed (JSON types): the grid, the
    shared settings less ``epochs``, ``digests`` of x and y, and digests of the ``extra``
    (validation data, sample weights) and of the folds' rows."""
    validation_data, sample_weight = extra
    digests = dict(digests)
    if validation_data is not None:
        digests.update(x_val=_sampled_digest(validation_data[0]), y_val=_sampled_digest(validation_data[1]))
    if sample_weight is not None:
        digests["sample_weight"] = _sampled_digest(sample_weight)
    if pairs is not None:
        rows = hashlib.sha256()
        for train_rows, held_rows in pairs:
            rows.update(np.asarray(train_rows, np.int64).tobytes() + b"|" + np.asarray(held_rows, np.int64).tobytes())
        digests["folds"] = f"{len(pairs)} folds, rows {rows.hexdigest()}"
    settings = {name: value for name, value in base.to_dict().items() if name != "epochs"}
    about = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "grid": points,
             "settings": {**settings, "max_members": max_members}, "data": digests}  # fmt: skip
    return json.loads(json.dumps(about, default=repr))


def fold_pairs(folds, x, y, *, seed: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    """``folds`` as (training rows, held-out rows) index arrays, checked against the ``len(y)`` rows."""
    n = len(y)
    if isinstance(folds, Integral) and not isinstance(folds, bool):
        if folds < 2:
            raise ValueError(f"`folds` must be at least 2, got {folds}")
        fold_of_row = _fold_of_each_row(y, int(folds), seed)
        return [(np.flatnonzero(fold_of_row != k), np.flatnonzero(fold_of_row == k)) for k in range(folds)]
    if isinstance(folds, (str, bytes, dict, bool)) or not (hasattr(folds, "split") or hasattr(folds, "__iter__")):
        raise TypeError(f"{_FOLDS_EXPECTED}, got {folds!r}")
    if hasattr(folds, "split"):
        folds = folds.split(x, y)
    pairs = []
    for k, pair in enumerate(folds):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{_FOLDS_EXPECTED}; `folds[{k}]` is {pair!r}")
        pairs.append(tuple(_rows(f"folds[{k}][{j}]", part, n) for j, part in enumerate(pair)))
    if not pairs:
        raise ValueError(f"{_FOLDS_EXPECTED}, got no pairs")
    return pairs


def _check_fold_labels(pairs: Sequence[Tuple[np.ndarray, np.ndarray]], y: np.ndarray) -> None:
    """Each fold's training rows must hold two labels or more, and every label of its held-out rows
    (train() would refuse them as ``y`` and ``validation_data[1]``, names that mean nothing here)."""
    y = y.reshape(len(y))
    for k, (training, held) in enumerate(pairs):
        seen = set(y[training].tolist())
        unseen = sorted(set(y[held].tolist()) - seen, key=repr)
        if len(seen) < 2:
            problem = f"only label {sorted(seen, key=repr)[0]!r}: a classifier needs two or more"
        elif unseen:
            problem = f"no row of labels {unseen[:5]} that its held-out rows hold: a network trained there never predicts them"
        else:
            continue
        raise ValueError(
            f"`folds`: the training rows of fold {k} hold {problem}; use folds=<int> or a StratifiedKFold (each "
            "fold then holds every label that has a row per fold)"
        )


_FOLDS_EXPECTED = (
    "`folds` must be an int >= 2, a sequence of (train_indices, test_indices) pairs or a splitter with .split(x, y)"
)


def _rows(name: str, indices, n: int) -> np.ndarray:
    rows = np.asarray(indices)
    if rows.dtype == bool and rows.shape == (n,):
        rows = np.flatnonzero(rows)
    if rows.ndim != 1 or rows.size == 0 or rows.dtype.kind not in "iu":
        raise ValueError(f"`{name}` must be a non-empty 1-D array of row indices, got {indices!r}")
    if rows.min() < 0 or rows.max() >= n:
        raise ValueError(f"`{name}` holds row indices outside [0, {n}): {rows.min()}..{rows.max()}")
    return rows


def _best_so_far(progress, points, where):
    """The ``progress`` of :func:`sweep` as :func:`train_members` calls it: the best member row so far."""
    rows: List[dict] = []

    def on_chunk(done: int, total: int, finished: Dict[int, TrainResult], monitor: str) -> None:
        for index, result in finished.items():
            point, fold = where[index]
            rows.append({**_point_row(points[point]), **({} if fold is None else {"fold": fold}),
                         **_summary(result, monitor)})  # fmt: skip
        best = _best_point(rows, monitor)
        progress(done, total, None if best is None else rows[best])

    return on_chunk


class Member(NamedTuple):
    """One network of :func:`train_members`: ``train(*arrays[data], initial_params=..., **config)``."""

    config: TrainConfig
    data: Hashable  # key of its (x, y, validation_data, sample_weight) in the ``arrays`` of train_members
    initial_params: Optional[Params] = None  # None: drawn from config.seed, as train() does


class Trained(NamedTuple):
    """What :func:`train_members` returns."""

    results: List[TrainResult]  # one per member, in order
    programs: int  # distinct structures, one compiled program each
    monitor: str  # what the first member's stopping rule watches (as train() resolves "auto")


def train_members(
    members: Sequence[Member],
    arrays: Dict[Hashable, tuple],
    *,
    max_members: Optional[int] = None,
    progress: Optional[Callable[[int, int, Dict[int, TrainResult], str], Any]] = None,
    devices=None,
    checkpoints: Optional[SweepCheckpoints] = None,
) -> Trained:
    """Every member as its standalone ``train()`` call, in one compiled program per structure.

    Members with the same data key and data-shaping settings share one prepared data set;
    those that compile alike (run spec, state and data shapes) run together, ``max_members``
    at a time (see :func:`sweep`). ``progress(done, total, finished, monitor)`` follows each
    chunk, ``finished`` mapping the chunk's member indices to their results. ``devices``: the
    member axis split over a mesh of them (see :func:`sweep`). ``checkpoints``: each chunk
    saved (and, resuming, restored) there.
    """
    mesh = make_mesh(devices, axis="members")
    if mesh is not None and jax.process_count() == 1 and mesh.size > len(members):  # no device left idle
        mesh = make_mesh(list(mesh.devices.flat[: len(members)]), axis="members")  # (or padded with copies)
    width = 1 if mesh is None else mesh.size
    budget = None if max_members is not None else smallest_everywhere(memory_budget())  # the same chunks everywhere
    float64 = any(member.config.dtype == "float64" for member in members)
    with x64_scope() if float64 else contextlib.nullcontext():  # as train() scopes it (the global one is left alone)
        datasets: Dict[tuple, tuple] = {}
        keys = []
        for member in members:
            x, y, validation_data, sample_weight = arrays[member.data]
            config = member.config
            split_seed = config.seed if config.validation_fraction > 0 and validation_data is None else None
            key = (member.data, split_seed) + tuple(repr(getattr(config, name)) for name in _DATA_SETTINGS)
            if key not in datasets:
                data = prepare(config, x, y, validation_data, sample_weight)
                datasets[key] = (data, place(data))
            keys.append(key)
        groups = _groups(members, keys, datasets)
        monitor = groups[0][0][1].spec.rule.monitor
        results: List[Optional[TrainResult]] = [None] * len(members)
        done = 0
        for program, group in enumerate(groups):
            stacked = len({keys[index] for index, _ in group}) > 1  # members' own data sets, stacked
            limit = max_members if max_members is not None else budget // member_bytes(group[0][1], stacked)
            size = int(np.clip(limit, 1, len(group)))
            size = -(-size // width) * width  # every device gets as many members
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                padded = chunk + [chunk[-1]] * (size - len(chunk))  # one program per structure, whatever is left
                store = None if checkpoints is None else checkpoints.store(program, chunk[0][0])
                chunk_results = _run_chunk(padded, members, keys, datasets, stacked, mesh, checkpoints, store)
                finished = dict(zip([index for index, _ in chunk], chunk_results))  # the copies dropped
                for index, result in finished.items():
                    results[index] = result
                done += len(chunk)
                if progress is not None:
                    progress(done, len(members), finished, monitor)
    return Trained(results, len(groups), monitor)


def memory_budget() -> int:
    """Bytes the programs of a sweep may take: half of what the first device has free (its
    ``memory_stats()``), or a quarter of the host RAM where it reports none (CPU)."""
    stats = jax.local_devices()[0].memory_stats()
    if stats and stats.get("bytes_limit"):
        return int(0.5 * (stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    return int(0.25 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


_ACTIVATION_COPIES = 4  # per unit and row: pre- and post-activation forward, and their gradients


def member_bytes(member: Setup, stacked_data: bool) -> int:
    """Estimated device bytes one member adds to a program: its run state (params, optimizer
    state, best params) in and out, a batch's activations (batch size × the layer widths ×
    ``_ACTIVATION_COPIES``) and, when members have data sets of their own, its data."""
    run = sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(member.run))
    params = member.run.train.params
    widths = params[0].W.shape[0] + sum(layer.W.shape[1] for layer in params)
    activations = member.spec.batch_size * widths * params[0].W.dtype.itemsize * _ACTIVATION_COPIES
    data = sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves((member.train_data, member.val_data)))
    return max(1, 2 * run + activations + (data if stacked_data else 0))


def _groups(members, keys, datasets):
    """(member index, Setup) lists of what compiles alike: run spec, state shapes, data shapes."""
    groups: Dict[Any, list] = {}
    for index, (member, key) in enumerate(zip(members, keys)):
        data, placed = datasets[key]
        ready = setup(member.config, data, placed=placed, initial_params=member.initial_params, split_batches=False)
        leaves, structure = jax.tree_util.tree_flatten((ready.run, placed))  # placed x may be SparseRows
        signature = (ready.spec, structure, str([(leaf.shape, leaf.dtype) for leaf in leaves]))
        groups.setdefault(signature, []).append((index, ready))
    return list(groups.values())


def _sampled_digest(array) -> str:
    """A SHA-256 of up to 256 evenly spaced rows and the shape (what processes compare); ``array``
    dense or scipy sparse."""
    array = array if is_scipy_sparse(array) else np.asarray(array)
    picked = array[sampled_rows(array.shape[0])]
    picked = picked.toarray() if is_scipy_sparse(picked) else picked
    return hashlib.sha256(repr(array.shape).encode() + np.ascontiguousarray(picked).tobytes()).hexdigest()


def _stack(trees):
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def _run_chunk(chunk, members_of_sweep, keys, datasets, stacked: bool, mesh=None, checkpoints=None,
               store=None) -> List[TrainResult]:  # fmt: skip
    """One compiled program over the chunk's members (data shared, or ``stacked`` per member; the
    member axis split over ``mesh``); the host loop over its chunks of epochs. With ``store``
    (of ``checkpoints``) the chunk starts from its newest checkpoint when resuming, is saved
    every ``checkpoints.every`` epochs and at its end, and SIGINT/SIGTERM end it once saved."""
    indices = [index for index, _ in chunk]
    members = [member for _, member in chunk]
    names = members[0].names
    # epochs per dispatch for the members a device trains together, as train() sizes them for one
    # member (a dispatch of about the same work: the host sees SIGINT and progress as often)
    per_device = len(members) // (1 if mesh is None else mesh.size)
    n_rows = members[0].spec.rows or len(members[0].train_data[1])  # y's rows (x may be sparse)
    spec = members[0].spec._replace(chunk=epochs_per_dispatch(members[0].run.train.params, n_rows * per_device))
    every = None if store is None else checkpoints.every
    if every is not None:
        spec = spec._replace(chunk=min(spec.chunk, every))  # a dispatch never crosses a checkpoint
    if not stacked:
        train_data, val_data, data_axis = members[0].train_data, members[0].val_data, None
    else:
        train_data, val_data, data_axis = _stack([m.train_data for m in members]), None, 0
        if members[0].val_data is not None:
            val_data = _stack([m.val_data for m in members])
    runs: RunState = _stack([m.run for m in members])
    histories: List[dict] = [{} for _ in indices]
    epoch = np.zeros(len(indices), np.int64)
    configs = [members_of_sweep[index].config for index in indices]
    epochs = np.array([config.epochs for config in configs])
    restored = None if store is None else checkpoints.restore(store, runs, indices, epochs.tolist())
    if restored is not None:
        runs, epoch, histories = restored
    runs = shard_leading(runs, mesh)
    numbers = shard_leading(_stack([jax.tree_util.tree_map(jnp.asarray, m.numbers) for m in members]), mesh)
    if mesh is not None:
        put = shard_leading if stacked else replicate
        train_data, val_data = put(train_data, mesh), put(val_data, mesh)
    with _signals_deferred(_DEFERRED if store is not None else ()) as caught:
        try:
            while True:
                flags = np.stack(gather_to_host([runs.epoch, runs.stopped, runs.diverged]), axis=1)
                todo = np.where(flags[:, 1] | flags[:, 2], 0, epochs - flags[:, 0])
                if todo.max() <= 0:
                    break
                if every is not None:  # each member's dispatch ends at its next multiple of `every`
                    todo = np.minimum(todo, every - flags[:, 0] % every)
                start = time.perf_counter()
                order_key = None if stacked else _one_order_key(runs.train.key, todo > 0, mesh)
                todo = shard_leading(jnp.asarray(todo, jnp.int32), mesh)
                runs, (rows, out) = run_members(runs, train_data, val_data, todo, numbers, order_key, spec=spec,
                                                data_axis=data_axis)  # fmt: skip
                rows, out = gather_to_host((rows, out))
                after = out[:, 0].astype(np.int64)
                seconds = (time.perf_counter() - start) / max(1, int((after - epoch).max()))
                for m in range(len(indices)):
                    append_rows(histories[m], names, rows[m], int(epoch[m]), int(after[m]), seconds)
                if store is not None:
                    _save_chunk(store, every, runs, indices, epoch, after, epochs, out, histories, caught)
                epoch = after
                if caught:
                    raise SweepInterrupted(signal.Signals(caught[0]).name, checkpoints.folder)
        finally:
            if store is not None:
                store.close()
    # Every member's run on the host, whichever device (or process) trained it: one transfer, then
    # NumPy slices (a jitted slice per leaf and member cost 0.25 s of a 2 s 64-member sweep).
    runs = gather_to_host(runs)
    results = []
    for m, index in enumerate(indices):
        run = jax.tree_util.tree_map(lambda leaf: leaf[m], runs)
        results.append(make_result(configs[m], datasets[keys[index]][0], spec, run, histories[m]))
    return results


def _save_chunk(store, every: int, runs, indices, before, after, epochs, flags, histories, caught: list) -> None:
    """Saves the chunk when a member reached a multiple of ``every`` epochs, every member ended,
    or a signal came (on any process: every process then stops at this dispatch). ``flags``:
    the dispatch's [members, 5] epoch, stopped, diverged, ...; ``before``/``after``: epochs [members]."""
    (signalled,) = any_process(bool(caught))
    if signalled and not caught:
        caught.append(signal.SIGTERM)
    ended = (after >= epochs) | (flags[:, 1] != 0) | (flags[:, 2] != 0)
    if not (caught or ended.all() or (after // every > before // every).any()):
        return
    # the file's number grows with every epoch any member takes, so the newest file is the latest save
    tree, saved = chunk_checkpoint(gather_to_host(runs), indices, after, histories)
    store.save(tree, history={}, wait=bool(caught), **saved)


def _one_order_key(keys, running: np.ndarray, mesh):
    """The key every running member holds, replicated (their data order is then one), or None.

    Members of a grid that leaves ``seed`` alone start from one key and split it alike every
    epoch, so they stay equal while they run; a stopped member's key stays behind, but it takes
    no further epochs."""
    data = gather_to_host(jax.random.key_data(keys))[running]
    if len(data) == 0 or not (data == data[:1]).all():
        return None
    return replicate(jax.random.wrap_key_data(jnp.asarray(data[0]), impl=jax.random.key_impl(keys)), mesh)


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
        # the value of the params the member hands out (its last epoch's, or the restored best epoch's):
        # what members are ranked by, so that the best point's model has the value it was chosen for
        returned = result.best_epoch if 0 < result.best_epoch <= len(values) else len(values)
        row[f"returned_{monitor}"] = values[returned - 1]
    return row


def _point_row(point: dict) -> dict:
    return {name: (list(v) if isinstance(v, tuple) else v) for name, v in point.items()}


def _table(points, where, results, monitor, folds: Optional[int]) -> List[dict]:
    table = []
    for point_index, point in enumerate(points):
        member_rows = [_summary(r, monitor) for (p, _), r in zip(where, results) if p == point_index]
        row = _point_row(point)
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
    key = f"returned_{monitor}"
    scored = [
        (float(watched_value(monitor, {monitor: row[key]})), i)
        for i, row in enumerate(table)
        if not row["status"].startswith("diverged") and key in row and np.isfinite(row[key])
    ]
    return min(scored)[1] if scored else None
