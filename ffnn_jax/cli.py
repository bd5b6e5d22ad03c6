"""Command-line entry point: ``ffnn-jax train`` (and ``python -m ffnn_jax``).

Thin by design: it maps flags onto :func:`ffnn_jax.train` keywords, draws a progress bar and
writes the run's files. The short flags follow the well-known course assignment of this lecture
series (``-d -e -b -l -o -lr -m -beta -beta1 -beta2 -eps -w_d -w_i -nhl -sz -a``).
"""

import argparse
import csv
import dataclasses
import datetime
import json
import os
import signal
import sys
import time
import warnings
from typing import Callable, List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ._cache import enable_compilation_cache
from ._checkpoint import atomic_write_bytes, save_params
from ._config import TrainConfig
from ._data import (
    KERAS_NPZ_KEYS,
    Dataset,
    _split_dataset,
    check_names_match,
    csv_header,
    csv_layout,
    flat_rows_of,
    infer_task,
    is_csv_path,
    load_dataset,
    npz_has_test_split,
    resolve_target,
    whole_number_labels,
)
from ._distributed import DEFAULT_TIMEOUT_S, initialize_distributed, is_primary
from ._errors import check_positive_int
from ._gradcheck import check_gradients
from ._labels import is_label_column
from ._losses import LOSS_ALIASES
from ._model import ACTIVATIONS
from ._optim import OPTIMIZERS, SCHEDULES
from ._parallel import use_cpu_cores
from ._params import WEIGHT_INITS, init_params, layer_sizes_of
from ._run_checkpoint import _NAME as _CHECKPOINT_NAME
from ._run_checkpoint import CheckpointError
from ._saved_model import load_model
from ._setup import check_auto_classes, prepare, with_output_bias
from ._sweep_checkpoint import remove_checkpoints
from ._train import TrainingDivergedError, TrainingInterrupted, train


def _target_flag(text: str) -> int | str:
    """``--target``: an integer is a column index (negative from the end), anything else a header name."""
    try:
        return int(text)
    except ValueError:
        return text


def _add_train_flags(parser: argparse.ArgumentParser, *, outputs: bool = True, what: str = "run") -> None:
    data = parser.add_argument_group("data")
    data.add_argument(
        "-d",
        "--dataset",
        default="digits",
        help="digits (default, built in), diabetes (built-in regression), mnist or fashion_mnist (IDX files in --data_dir), or a .npz (arrays x, y) / .csv or .tsv (target: the last column, or --target) path",
    )
    data.add_argument(
        "--target",
        type=_target_flag,
        default=None,
        metavar="NAME|INDEX",
        help="the target column of a .csv dataset: a header name (e.g. label) or an index, negative from the end "
        "(default: the last column). The first row is a header when its names outnumber its numbers",
    )
    data.add_argument(
        "--data_dir",
        default=None,
        help="folder with the MNIST-format IDX files (plain or .gz), downloading what is missing; default: the "
        "per-user cache, then Debian's dataset-fashion-mnist package, then a download into the cache",
    )
    data.add_argument(
        "--test_fraction",
        type=float,
        default=0.2,
        help="held-out test share for datasets without a test split (default 0.2, stratified)",
    )
    data.add_argument(
        "--validation_fraction",
        type=float,
        default=0.1,
        help="validation share of the training data (default 0.1; 0 = none)",
    )
    data.add_argument(
        "--no_standardize",
        dest="standardize",
        action="store_false",
        help="do not scale features to zero mean and unit variance",
    )

    net = parser.add_argument_group("network")
    net.add_argument("-nhl", "--num_layers", type=int, default=1, help="number of hidden layers (default 1)")
    net.add_argument("-sz", "--hidden_size", type=int, default=256, help="units per hidden layer (default 256)")
    net.add_argument(
        "--hidden_sizes", default=None, help="comma-separated hidden widths, e.g. 256,128 (overrides -nhl/-sz)"
    )
    net.add_argument(
        "-a",
        "--activation",
        default="relu",
        help=f"hidden activation: {', '.join(ACTIVATIONS)} (case-insensitive; default relu)",
    )
    net.add_argument(
        "-w_i",
        "--weight_init",
        default="xavier",
        help=f"weight init: {', '.join(WEIGHT_INITS)} (case-insensitive; default xavier)",
    )
    data.add_argument(
        "--task",
        default="auto",
        type=str.lower,
        choices=("auto", "classification", "regression"),
        help="auto (default: whole-number or text targets are classes, other numbers a regression target), "
        "classification or regression (e.g. a CSV of whole-number prices or ages)",
    )
    net.add_argument(
        "--output_bias",
        default="auto",
        help="the last layer's starting bias: auto (regression: the training targets' mean, the log of it "
        "for poisson; classification: 0) or zeros (default auto)",
    )
    net.add_argument(
        "-l",
        "--loss",
        default=None,
        help=f"loss: {', '.join(LOSS_ALIASES)} (default cross_entropy for labels, squared_error for float targets)",
    )

    opt = parser.add_argument_group("optimization")
    opt.add_argument("-o", "--optimizer", default="adam", help=f"{', '.join(OPTIMIZERS)} (default adam)")
    opt.add_argument("-lr", "--learning_rate", type=float, default=1e-3, help="learning rate η (default 1e-3)")
    opt.add_argument("-m", "--momentum", type=float, default=0.9, help="momentum β for momentum and nag (default 0.9)")
    opt.add_argument("-beta", "--beta", type=float, default=0.9, help="RMSProp decay β (default 0.9)")
    opt.add_argument("-beta1", "--beta1", type=float, default=0.9, help="Adam/Nadam β1 (default 0.9)")
    opt.add_argument("-beta2", "--beta2", type=float, default=0.999, help="Adam/Nadam β2 (default 0.999)")
    opt.add_argument(
        "-eps", "--epsilon", type=float, default=1e-8, help="ε of RMSProp, Adagrad and Adam-family (default 1e-8)"
    )
    opt.add_argument(
        "-w_d",
        "--weight_decay",
        type=float,
        default=1e-4,
        help="L2 weight decay λ, loss += (λ/2)Σ‖W‖² (decoupled for adamw; default 1e-4)",
    )
    opt.add_argument(
        "--dropout",
        default="0",
        help="drop rate of hidden units while training: one rate, or comma-separated per hidden layer (default 0)",
    )
    opt.add_argument(
        "--class_weight",
        default=None,
        help="classification: 'balanced' or label:weight pairs, e.g. 0:2,3:0.5 (default: all 1)",
    )
    opt.add_argument("--lr_schedule", default="constant", help=f"{', '.join(SCHEDULES)} (default constant)")
    opt.add_argument("--lr_decay_rate", type=float, default=0.1, help="schedule decay factor (default 0.1)")
    opt.add_argument(
        "--lr_decay_steps", type=int, default=None, help="schedule length in steps (default: the whole run)"
    )
    opt.add_argument("--warmup_steps", type=int, default=0, help="linear learning-rate warm-up steps (default 0)")
    opt.add_argument("--max_grad_norm", type=float, default=None, help="clip the gradient's global norm (default off)")

    loop = parser.add_argument_group("training loop")
    loop.add_argument("-e", "--epochs", type=int, default=60, help="epochs (default 60)")
    loop.add_argument(
        "-b", "--batch_size", type=int, default=32, help="mini-batch size (default 32; 0 = full-batch gradient descent)"
    )
    loop.add_argument("--early_stopping", action="store_true", help="stop when the validation loss stops improving")
    loop.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (default 10)")
    loop.add_argument(
        "--monitor", default="auto", help="what early stopping watches, e.g. val_accuracy (default: val_loss)"
    )
    loop.add_argument(
        "--stopping_threshold",
        type=float,
        default=None,
        help="stop once the monitored value reaches this, e.g. 0.97 with --monitor val_accuracy (default off)",
    )
    loop.add_argument("--seed", type=int, default=0, help="seed for init, splits and data order (default 0)")
    loop.add_argument("--dtype", default="float32", help="float32 (default) or float64")
    loop.add_argument(
        "--compute_dtype",
        default=None,
        help="bfloat16 or float16: mixed-precision matmuls with float32 master weights (default: --dtype)",
    )

    if not outputs:
        return
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        default=None,
        help="output folder (default runs/<dataset>-<timestamp>); must be new or empty unless --overwrite",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="allow writing into a non-empty output folder (files are replaced atomically)",
    )
    out.add_argument(
        "--metrics_format",
        default="jsonl",
        choices=("jsonl", "csv"),
        help="per-epoch metrics file format (default jsonl)",
    )
    out.add_argument(
        "--checkpoint_dir",
        default=None,
        help=f"where the whole {what} is saved after every --checkpoint_every epochs, at the end and on "
        "SIGINT/SIGTERM (default <out>/checkpoints)",
    )
    out.add_argument("--checkpoint_every", type=int, default=1, help="epochs between checkpoints (default 1)")
    out.add_argument("--keep_checkpoints", type=int, default=2,
                     help="newest checkpoints kept" + (" of each chunk of members" if what == "sweep" else "")
                     + " (default 2)")  # fmt: skip
    out.add_argument(
        "--resume",
        action="store_true",
        help=f"continue the {what} in --out from its newest checkpoint (the flags it was started with are reused; "
        "only -e may change); with no checkpoint yet, start it",
    )
    out.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")
    out.add_argument(
        "--no_plot",
        dest="plot",
        action="store_false",
        help="write no pictures (loss_curve.png, confusion_matrix.png, sweep.png)",
    )
    tracking = parser.add_argument_group("Weights & Biases (pip install 'ffnn_jax[wandb]'; WANDB_MODE=offline)")
    tracking.add_argument("-wp", "--wandb_project", default=None,
                          help="log the run (sweep: each member, in one group) to this wandb project")  # fmt: skip
    tracking.add_argument("-we", "--wandb_entity", default=None, help="the wandb team or user (default: wandb's)")
    _add_process_flags(parser)


def _add_process_flags(parser: argparse.ArgumentParser) -> None:
    """The multi-process flags (``jax.distributed``); ``ffnn-jax launch`` sets them through JAX_* variables."""
    group = parser.add_argument_group("several processes (jax.distributed; default: the JAX_* variables or Slurm)")
    group.add_argument("--coordinator_address", default=None, metavar="HOST:PORT",
                       help="process 0's address, which hosts the coordinator")  # fmt: skip
    group.add_argument("--num_processes", type=int, default=None, help="processes in the run")
    group.add_argument("--process_id", type=int, default=None, help="this process's rank, 0 .. num_processes-1")
    group.add_argument("--distributed_timeout", type=int, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                       help="seconds to wait for the others to join, and after which a silent process counts as "
                       f"dead and the others exit (default {DEFAULT_TIMEOUT_S})")  # fmt: skip


def _join_processes(args, *, cpu_devices: Optional[int] = 1) -> bool:
    """Joins a multi-process run when the flags or environment ask for one; True on process 0 (or
    alone). Alone, the CPU is first split into ``cpu_devices`` (None: one per core; see
    :func:`ffnn_jax.use_cpu_cores`), before anything starts JAX's devices."""
    joined = initialize_distributed(args.coordinator_address, args.num_processes, args.process_id,
                                    timeout_s=args.distributed_timeout)  # fmt: skip
    if not joined and cpu_devices != 1:
        try:
            use_cpu_cores(cpu_devices)
        except RuntimeError:  # JAX started already (cli.main called in a process that computed): keep its devices
            pass
    return is_primary()


def _hidden_sizes(args) -> tuple:
    if args.hidden_sizes:
        cells = args.hidden_sizes.split(",")
        if cells[-1].strip() == "" and len(cells) > 1:  # "8,4," as "8,4"
            cells = cells[:-1]
        try:
            return tuple(int(cell) for cell in cells)  # "8,,4" is an error, not (8, 4)
        except ValueError:
            raise ValueError(f"`--hidden_sizes` must be comma-separated integers, got {args.hidden_sizes!r}") from None
    if args.num_layers < 0:
        raise ValueError(f"`--num_layers` must be >= 0, got {args.num_layers}")
    return (args.hidden_size,) * args.num_layers


def _auto_targets(args, part: Dataset) -> Dataset:
    """``part`` under ``--task auto``: an .npz's float target column of whole numbers becomes int
    labels, as a CSV's is (the built-in sets keep theirs: their task is known)."""
    labels = whole_number_labels(part.y) if args.dataset.lower().endswith(".npz") and is_label_column(part.y) else None
    return part if args.task != "auto" or labels is None else Dataset(part.x, labels)


def _load_splits(args):
    resolve_target(args.dataset, args.target, name="--target")  # a bad --target is named before data is read
    if args.dataset.lower() in ("mnist", "fashion_mnist") or npz_has_test_split(args.dataset):  # own test split
        parts = [_auto_targets(args, load_dataset(args.dataset, s, data_dir=args.data_dir)) for s in ("train", "test")]
    else:
        parts = [_auto_targets(args, load_dataset(args.dataset, data_dir=args.data_dir, target=args.target))]
    if args.task == "auto" and infer_task(parts[0].y) == "classification":
        check_auto_classes(parts[0].y, f"the target of {args.dataset!r}")
    if len(parts) == 2:
        return tuple(parts)
    x, y = parts[0]
    return _split_dataset(
        np.asarray(x), np.asarray(y), args.test_fraction, seed=args.seed, name="--test_fraction", task=args.task
    )


def _prepare_out_dir(args) -> str:
    folder = args.out or os.path.join(
        "runs", f"{os.path.basename(args.dataset)}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    )
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"`--out` {folder!r} is a file, not a folder; choose another path")
    resume = args.resume
    held = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    if held and not (args.overwrite or resume):
        names = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        raise ValueError(
            f"`--out` folder {folder!r} is not empty (it holds {names}); choose another, pass --resume or --overwrite"
        )
    if resume and args.out is None:
        raise ValueError("`--resume` needs `--out`, the folder of the run to continue")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise ValueError(f"`--out` folder {folder!r} cannot be created: {error.strerror or error}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"`--out` folder {folder!r} is not writable")
    return folder


class _Progress:
    """Per-epoch progress: a tqdm bar on a terminal (when tqdm is installed), else one line per
    epoch on stderr (a log file or pipe would keep every redraw of a bar)."""

    def __init__(self, total: int, enabled: bool, unit: str = "epoch"):
        self.bar, self.enabled, self.unit = None, enabled, unit
        if enabled and sys.stderr.isatty():
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    done = 0  # a sweep's members finished

    def advance(self, done: int, shown: dict) -> None:
        """The bar at ``done`` (a sweep's members), ``shown`` beside it (the best so far)."""
        self.done = done
        shown = {k: f"{v:.4f}" for k, v in shown.items()}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(done - self.bar.n)
        elif self.enabled:
            print(f"{done} {self.unit}s done: " + " ".join(f"{k}={v}" for k, v in shown.items()), file=sys.stderr)

    calls = 0  # epochs run in this process (fewer than the history's when resumed)

    def __call__(self, epoch: int, row: dict) -> None:
        self.calls += 1
        shown = {k: f"{v:.4f}" for k, v in row.items() if k not in ("epoch", "time_s", "learning_rate")}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            if self.bar.n == 0 and epoch > 1:  # a resumed run: the bar starts where the checkpoint was
                self.bar.n = self.bar.initial = epoch - 1
            self.bar.update(1)
        elif self.enabled:
            print(f"epoch {epoch}: " + " ".join(f"{k}={v}" for k, v in shown.items()), file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _MetricsLog:
    """Appends each epoch's row to ``metrics.jsonl`` as training goes (for ``tail -f``); a resumed
    run first drops the rows of epochs after its checkpoint. The file is rewritten whole at the end."""

    def __init__(self, path: str):
        self.path, self.started = path, False

    def __call__(self, epoch: int, row: dict) -> None:
        if not self.started and os.path.exists(self.path):
            with open(self.path) as f:
                kept = [line for line in f if line.strip() and json.loads(line).get("epoch", 0) < epoch]
            atomic_write_bytes(self.path, "".join(kept).encode(), overwrite=True)
        self.started = True
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def _write_metrics(folder: str, history: dict, fmt: str) -> str:
    rows = [dict(zip(history, values)) for values in zip(*history.values())]
    path = os.path.join(folder, f"metrics.{fmt}")
    if fmt == "jsonl":
        text = "".join(json.dumps(row) + "\n" for row in rows)
    else:
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(history))
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    atomic_write_bytes(path, text.encode(), overwrite=True)
    return path


def _confusion(result, x, y):
    """``(classes, counts [k, k])`` of a single-label classifier on (x, y): rows true, columns predicted."""
    if result.task != "classification" or result.classes is None or result.model.loss != "cross_entropy":
        return None
    from ._labels import encode_with

    truth = encode_with(result.classes, y, "y_test")
    predicted = encode_with(result.classes, result.predict(x), "predictions")
    k = len(result.classes)
    return result.classes, np.bincount(truth * k + predicted, minlength=k * k).reshape(k, k)


def _class_labels(classes, dataset: str) -> list:
    """Display names of a classifier's classes: Fashion-MNIST/MNIST names for their integer labels, else the labels."""
    from ._download import CLASS_NAMES

    names = CLASS_NAMES.get(dataset.lower())
    return [names[c] if names is not None and 0 <= int(c) < len(names) else str(c) for c in classes.tolist()] if (
        classes.dtype.kind in "iu") else [str(c) for c in classes.tolist()]  # fmt: skip


def _dropout(text: str):
    try:
        rates = tuple(float(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise ValueError(f"`--dropout` must be a rate or comma-separated rates, got {text!r}") from None
    return rates[0] if len(rates) == 1 else rates


def _label_key(text: str):
    """A ``--class_weight`` label as the CLI reads labels: 3 and 3.0 as the int 3, else the string."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else text


def _class_weight(text: Optional[str]):
    """``balanced`` or ``label:weight,...`` (labels as ints where they are whole numbers, else strings)."""
    if text is None or text == "balanced":
        return text
    weights = {}
    for pair in text.split(","):
        label, sep, weight = pair.rpartition(":")
        try:
            weights[_label_key(label)] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not label:
            raise ValueError(f"`--class_weight` must be 'balanced' or label:weight pairs like 0:2,1:0.5, got {text!r}")
    return weights


def _settings(args) -> dict:
    """The ``train()`` keywords named by the flags."""
    return dict(
        dropout=_dropout(args.dropout),
        class_weight=_class_weight(args.class_weight),
        hidden_sizes=_hidden_sizes(args),
        activation=args.activation,
        loss=args.loss,
        weight_init=args.weight_init,
        output_bias=args.output_bias,
        task=args.task,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        momentum=args.momentum,
        beta=args.beta,
        beta1=args.beta1,
        beta2=args.beta2,
        epsilon=args.epsilon,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        lr_decay_rate=args.lr_decay_rate,
        lr_decay_steps=args.lr_decay_steps,
        warmup_steps=args.warmup_steps,
        max_grad_norm=args.max_grad_norm,
        epochs=args.epochs,
        batch_size=None if args.batch_size == 0 else args.batch_size,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        early_stopping=args.early_stopping,
        patience=args.patience,
        monitor=args.monitor,
        stopping_threshold=args.stopping_threshold,
        standardize=args.standardize,
        dtype=args.dtype,
        compute_dtype=args.compute_dtype,
    )


_COMMAND_FILE = "command.json"  # the train flags of a run folder, reused by --resume


# Flags a resumed run takes from its own command line, never from the saved one.
_NOT_SAVED = ("run", "resume", "overwrite", "coordinator_address", "num_processes", "process_id")


def _out_dir_of_primary(args) -> str:
    """The output folder as process 0 names it (other processes write nothing there)."""
    if args.out is None:
        raise ValueError("a multi-process run needs `--out` (the processes must agree on the folder)")
    return args.out


def _flags_saver(args, folder: str, primary: bool) -> Callable[..., None]:
    """Saves the flags of this run or sweep in ``folder`` for ``--resume``: at once for a new one
    (a kill at any moment leaves a folder that resumes); with ``--resume`` when the returned
    function is first called, after the checkpoint accepted the flags (a refused resume leaves
    the saved flags as they were)."""
    pending = [True] if primary else []  # the others write nothing (a list of False would still be truthy)

    def save(*_) -> None:
        if pending:
            pending.clear()
            flags = {name: value for name, value in vars(args).items() if name not in _NOT_SAVED}
            atomic_write_bytes(
                os.path.join(folder, _COMMAND_FILE), json.dumps(flags, indent=2).encode(), overwrite=True
            )

    if not args.resume:
        save()
    return save


def _command_of(folder: str, saved: dict) -> str:
    """``train`` or ``sweep``: what made the run folder ``folder`` (``saved``: its command.json;
    folders written before it named the command are told by the sweep's files)."""
    if "command" in saved:
        return saved["command"]
    checkpoints = saved.get("checkpoint_dir") or os.path.join(folder, "checkpoints")
    is_sweep = os.path.exists(os.path.join(folder, "sweep.csv")) or os.path.exists(
        os.path.join(checkpoints, "sweep.json")
    )
    return "sweep" if is_sweep else "train"


def _with_saved_flags(parser: argparse.ArgumentParser, argv: List[str]) -> argparse.Namespace:
    """``ffnn-jax train|sweep --out DIR --resume [...]``: the flags DIR was started with, overridden by those given."""
    args = parser.parse_args(argv)
    if args.command not in ("train", "sweep") or not args.resume or args.out is None:
        return args
    path = os.path.join(args.out, _COMMAND_FILE)
    if not os.path.isfile(path):
        return args
    with open(path) as f:
        saved = json.load(f)
    made_by = _command_of(args.out, saved)
    if made_by != args.command:
        raise ValueError(
            f"`--out` {args.out!r} holds an ffnn-jax {made_by}, not a {args.command}: continue it with ffnn-jax "
            f"{made_by} --out {args.out} --resume, or choose another --out"
        )

    def typed(action) -> bool:
        return any(arg == opt or arg.startswith(opt + "=") for arg in argv for opt in action.option_strings)

    command_parser = parser._subparsers._group_actions[0].choices[args.command]  # argparse has no public path to it
    for action in command_parser._actions:
        if action.dest in saved and not typed(action):
            setattr(args, action.dest, saved[action.dest])
    return args


def run_train(args) -> int:
    """Runs ``ffnn-jax train`` from parsed flags; returns the exit status."""
    tracked: list = []  # -wp: the run's wandb callback once started, finished here on every path
    plots: list = []  # the process drawing the pictures, once started; stopped here on every path
    try:
        status = _run_train(args, tracked, plots)
    except BaseException as error:
        for tracker in tracked:
            tracker.close(error=error)
        raise
    finally:
        for worker in plots:
            worker.close()
    for tracker in tracked:
        tracker.close(exit_code=status)
    return status


def _check_wandb_flags(args) -> None:
    """A bad -wp/-we, or wandb missing, is reported before data are read or anything compiles."""
    from ._wandb import check_wandb_names, import_wandb

    check_wandb_names(args.wandb_project, args.wandb_entity, prefix="--")
    if args.wandb_project is not None:
        import_wandb()


def _run_train(args, tracked: list, plots: list) -> int:
    settings = _settings(args)
    TrainConfig(**settings)  # every setting is checked before data is read or anything compiles
    _check_wandb_flags(args)
    primary = _join_processes(args)  # only process 0 of a multi-process run writes files and prints
    folder = _prepare_out_dir(args) if primary else _out_dir_of_primary(args)  # a bad --out before the data
    if args.plot and primary:
        from ._plots import PlotWorker, have_matplotlib

        if have_matplotlib():
            plots.append(PlotWorker())  # imports matplotlib beside the training
        else:
            print("matplotlib is not installed: no pictures (pip install 'ffnn_jax[cli]')", file=sys.stderr)
    (x, y), (x_test, y_test) = _load_splits(args)
    target = resolve_target(args.dataset, args.target)  # None unless a .csv (already checked by _load_splits)
    save_flags = _flags_saver(args, folder, primary)
    checkpoint_dir = args.checkpoint_dir or os.path.join(folder, "checkpoints")
    if args.overwrite and not args.resume and primary:  # else the replaced run's newest files would be resumed
        remove_checkpoints(checkpoint_dir)
    progress = _Progress(args.epochs, args.progress and primary)
    jsonl = args.metrics_format == "jsonl" and primary
    if args.wandb_project is not None and primary:  # one wandb run: history, then the test set's extras
        from ._wandb import make_wandb_callback

        tracked.append(make_wandb_callback(TrainConfig(**settings), x, y, project=args.wandb_project,
                       entity=args.wandb_entity, name=os.path.basename(os.path.abspath(folder)),
                       extra_config={"dataset": args.dataset}, folder=folder, resume=args.resume))  # fmt: skip
    start = time.perf_counter()
    try:
        result = train(
            x,
            y,
            callbacks=[save_flags, progress]
            + ([_MetricsLog(os.path.join(folder, "metrics.jsonl"))] if jsonl else [])
            + tracked,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=args.checkpoint_every,
            keep_checkpoints=args.keep_checkpoints,
            resume=args.resume,
            **settings,
        )
    except TrainingDivergedError as error:
        progress.close()
        if not primary:
            return 1
        save_params(
            os.path.join(folder, "params_last_finite.npz"),
            error.params,
            metadata={"diverged_epoch": error.epoch},
            overwrite=True,
        )
        print(f"ffnn-jax: {error}\nlast finite parameters saved to {folder}/params_last_finite.npz", file=sys.stderr)
        return 1
    except TrainingInterrupted as interrupt:
        progress.close()
        if not primary:
            return 128 + int(getattr(signal, interrupt.signal))
        print(
            f"ffnn-jax: training stopped by {interrupt.signal} after epoch {interrupt.epoch} of {args.epochs}; "
            f"saved in {interrupt.checkpoint}.\nTo finish it: ffnn-jax train --out {folder} --resume",
            file=sys.stderr,
        )
        return 128 + int(getattr(signal, interrupt.signal))
    except CheckpointError as error:
        progress.close()
        print(f"ffnn-jax: {error}", file=sys.stderr)
        return 1
    progress.close()
    save_flags()  # a resume of a finished run calls no callback
    seconds = time.perf_counter() - start
    if not primary:
        return 0
    if plots:  # drawn in the other process while this one evaluates and writes
        history = {key: result.history[key] for key in ("epoch", "train_loss", "val_loss") if key in result.history}
        plots[0].send({"kind": "losses", "path": os.path.join(folder, "loss_curve.png"), "history": history})
    test = result.evaluate(x_test, y_test)
    confusion = _confusion(result, x_test, y_test)
    pictures = ["loss_curve.png"] if plots else []
    if plots and confusion is not None:
        plots[0].send({"kind": "confusion", "path": os.path.join(folder, "confusion_matrix.png"),
                       "labels": _class_labels(confusion[0], args.dataset), "matrix": confusion[1].tolist()})  # fmt: skip
        pictures.append("confusion_matrix.png")
    summary = {
        "dataset": args.dataset,
        "train_samples": int(len(x)),
        "test_samples": int(len(x_test)),
        "target_column": target and target._asdict(),
        "layer_sizes": list(result.layer_sizes),
        "epochs_run": len(result.history["epoch"]),
        "best_epoch": result.best_epoch,
        "train_seconds": round(seconds, 3),
        "first_epoch_seconds": round(result.history["time_s"][0], 3),
        **{f"final_{k}": v[-1] for k, v in result.history.items() if k not in ("epoch", "time_s")},
        **{f"test_{k}": v for k, v in test.items()},
        "config": result.config.to_dict(),
    }
    _with_csv_names(result, args.dataset, target).save(os.path.join(folder, "params.npz"), overwrite=True)
    _write_metrics(folder, result.history, args.metrics_format)
    if confusion is not None:
        classes, matrix = confusion
        per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
        summary["test_per_class_accuracy"] = {str(c): float(a) for c, a in zip(classes.tolist(), per_class)}
        summary["test_confusion_matrix"] = matrix.tolist()  # rows: true class, columns: predicted, in `classes` order
    atomic_write_bytes(os.path.join(folder, "summary.json"), json.dumps(summary, indent=2).encode(), overwrite=True)
    if tracked:  # -wp: the test metrics, confusion matrix and loss curve join the run (run_train finishes it)
        from ._wandb import log_result

        tracked[0].summarize(result)
        names = None if result.classes is None else _class_labels(result.classes, args.dataset)
        log_result(tracked[0].run, result, x_test, y_test, class_names=names)
    if plots:
        plots[0].finish()
    metric = "accuracy" if "accuracy" in test else "r2"
    print(
        f"trained {'-'.join(map(str, result.layer_sizes))} on {args.dataset}"
        + (f" (target column {target.index}" + (f" {target.name!r}" if target.name else "") + ")" if target else "")
        + f" for {summary['epochs_run']} epochs"
        + (
            f" ({progress.calls} in this call, resumed from a checkpoint)"
            if progress.calls < summary["epochs_run"]
            else ""
        )
        + f" in {seconds:.2f} s (first epoch, with compilation: {summary['first_epoch_seconds']:.2f} s)\n"
        f"test loss {test['loss']:.4f}{_L2_NOTE if result.l2 > 0 else ''}, test {metric} {test[metric]:.4f}"
        + (" (the share of labels right, column by column)" if result.model.loss == "binary_cross_entropy" else "")
        + "\n"
        f"files in {folder}/: "
        + ", ".join(["params.npz", f"metrics.{args.metrics_format}", "summary.json", *pictures])
        + f"; checkpoints in {checkpoint_dir}/"
    )
    return 0


def _csv_feature_names(path: str, target_index: Optional[int]) -> Optional[tuple]:
    """The header names of a CSV's feature columns: all but ``target_index`` (None: the CSV holds no
    target); None for other data sets and for a CSV without a header."""
    header = csv_header(path) if is_csv_path(path) else None
    if header is None or target_index is None:
        return header
    return header[:target_index] + header[target_index + 1 :]


def _with_csv_names(result, path: str, target):
    """``result`` knowing the feature names of a CSV with a header, so that ``predict`` on a CSV with
    its columns in another order is refused (``target``: the CSV's target column, None otherwise)."""
    names = _csv_feature_names(path, target.index) if target is not None else None
    return result if names is None else dataclasses.replace(result, feature_names=names)


def _features(path: str, n_features: int, target=None):
    """``(x, y or None)`` of a data set to predict on: a built-in name or .npz/.csv path whose
    target may be missing (a CSV with exactly ``n_features`` columns, an .npz without ``y``)."""
    if path.lower().endswith(".npz"):
        with np.load(path, allow_pickle=False) as arrays:
            # Keras' layout: the test split is what one predicts
            x_key, y_key = ("x", "y") if "x" in arrays.files else KERAS_NPZ_KEYS["test"]
            if x_key not in arrays.files:
                raise ValueError(f"{path!r} has no array 'x' (or Keras' 'x_test'); it holds {arrays.files}")
            return flat_rows_of(arrays[x_key]), arrays[y_key] if y_key in arrays.files else None
    x, y = load_dataset(path, target=target)
    if not is_csv_path(path) or x.shape[1] == n_features:
        return x, y
    if x.shape[1] + 1 != n_features:
        raise ValueError(
            f"{path!r} has {x.shape[1] + 1} columns; the model needs {n_features} features (and the CSV may add "
            "a target column)"
        )
    if target is not None:
        raise ValueError(f"{path!r} has {n_features} columns, as many as the model's features: it holds no `--target`")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{path!r}: its last column holds text, so it is no feature; the model needs {n_features}")
    return np.column_stack([x, y]).astype(np.float32), None  # no target: the last column was a feature


def _trained_target(model_path: str):
    """The ``--target`` the model at ``model_path`` was trained with, from its run folder's
    command.json (the folder itself, or the one above its checkpoints); None when not known or
    the default (the last column)."""
    folder = model_path if os.path.isdir(model_path) else os.path.dirname(model_path) or "."
    candidates = [folder]
    if any(_CHECKPOINT_NAME.match(name) for name in os.listdir(folder)):
        candidates.append(os.path.dirname(os.path.abspath(folder)))  # <out>/checkpoints: the run folder above
    for candidate in candidates:
        try:
            with open(os.path.join(candidate, _COMMAND_FILE)) as f:
                return json.load(f).get("target")
        except (OSError, ValueError, AttributeError):
            continue
    return None


def _target_of_predict_csv(path: str, trained, n_features: int):
    """The target column of the CSV ``path`` to predict on, when no ``--target`` is given: the
    one the model was trained with (``trained``, a name or an index) where the file holds it (the
    name in its header, or one column more than the model's features), else None."""
    if trained is None or not is_csv_path(path):
        return None
    header, columns = csv_layout(path)
    if isinstance(trained, str):
        return trained if header is not None and trained in header else None
    return trained if columns == n_features + 1 else None


def _check_predictions_path(path: str, overwrite: bool) -> None:
    """``predict --out``: a CSV file to write; an existing one only with ``--overwrite``, never a folder."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"`--out` {path!r} is a folder; give the path of the CSV file to write")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"`--out` {path!r} exists; pass --overwrite to replace it, or choose another path")


_L2_NOTE = " (with the L2 term of --weight_decay, as in training)"


def run_predict(args) -> int:
    """Runs ``ffnn-jax predict``: a saved run's predictions (and probabilities) for a data set, as CSV."""
    if not os.path.exists(args.model):
        raise FileNotFoundError(
            f"`--model` {args.model!r} does not exist; give train's --out folder, a checkpoint "
            "folder or a checkpoint file"
        )
    _check_predictions_path(args.out, args.overwrite)  # a bad --out before the model is loaded or run
    model = load_model(args.model)
    target_flag = args.target
    if target_flag is None and os.path.isfile(args.dataset):  # the column the model was trained to predict
        target_flag = _target_of_predict_csv(args.dataset, _trained_target(args.model), model.layer_sizes[0])
    x, y = _features(args.dataset, model.layer_sizes[0], target_flag)
    if model.feature_names is not None:  # a CSV's columns by name, not only by count
        target = resolve_target(args.dataset, target_flag) if y is not None else None
        names = _csv_feature_names(args.dataset, None if target is None else target.index)
        check_names_match(names, model.feature_names, "--dataset")
    try:
        predictions = model.predict(x)
    except ValueError as error:
        raise ValueError(f"`--dataset` {args.dataset!r}: {error}") from None
    scores = None
    if y is not None:  # scored before any file is written: a target the model cannot score stops the command
        try:
            scores = model.evaluate(x, y)
        except ValueError as error:
            raise ValueError(f"`--dataset` {args.dataset!r}, its target: {error}") from None
    columns = {"prediction": predictions.reshape(len(x), -1)}
    if model.task == "classification":
        columns["probability"] = model.predict_proba(x)
    header, table = ["row"], [np.arange(len(x))[:, None]]
    for name, values in columns.items():
        k = values.shape[1]
        # probability_setosa rather than probability_0 where the classes have names (predict_proba's order)
        suffixes = model.classes.tolist() if name == "probability" and model.classes is not None else range(k)
        header += [name] if k == 1 else [f"{name}_{suffix}" for suffix in suffixes]
        table.append(values)
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(zip(*[column.tolist() for block in table for column in block.T]))
    atomic_write_bytes(args.out, buffer.getvalue().encode(), overwrite=args.overwrite)
    line = f"wrote {len(x)} predictions to {args.out}"
    if scores is not None:
        line += ", " + ", ".join(f"{name} {value:.4f}" for name, value in scores.items())
        line += _L2_NOTE if model.l2 > 0 else ""
    print(line)
    return 0


def run_sweep(args) -> int:
    """Runs ``ffnn-jax sweep``: the YAML's grid (or random points) as one program per structure."""
    from ._sweep import sweep
    from ._sweep_checkpoint import SweepInterrupted
    from ._sweep_config import parse_sweep_config

    if args.config is None:
        raise ValueError("`--config` is required: the sweep YAML (or --out DIR --resume, for a sweep started in DIR)")
    try:
        with open(args.config) as f:
            text = f.read()
    except OSError as error:
        raise FileNotFoundError(f"`--config` {args.config!r} cannot be read: {error.strerror or error}") from None
    args.config = os.path.abspath(args.config)  # as saved for --resume, from whichever folder it is run
    config = parse_sweep_config(text, seed=args.seed, num_layers=args.num_layers, hidden_size=args.hidden_size)
    settings = {**_settings(args), "monitor": config.monitor}
    for point in config.points:
        TrainConfig(**{**settings, **point})  # every point is checked before data is read or anything compiles
    _check_wandb_flags(args)
    check_positive_int("--cpu_devices", args.cpu_devices, allow_none=True)
    # several processes: each trains its share of the members, process 0 writes; one: members side by side on its cores
    primary = _join_processes(args, cpu_devices=args.cpu_devices)
    alone_on_cpu = not jax.distributed.is_initialized() and jax.default_backend() == "cpu"
    devices = "all" if alone_on_cpu and args.cpu_devices != 1 and len(jax.devices()) > 1 else None
    folder = _prepare_out_dir(args) if primary else _out_dir_of_primary(args)
    (x, y), (x_test, y_test) = _load_splits(args)
    save_flags = _flags_saver(args, folder, primary)
    checkpoint_dir = args.checkpoint_dir or os.path.join(folder, "checkpoints")
    if args.overwrite and not args.resume and primary:  # else the replaced run's newest files would be resumed
        remove_checkpoints(checkpoint_dir)
    start = time.perf_counter()
    bar = _Progress(len(config.points), args.progress and primary, unit="member")
    best_key = "best_" + config.monitor

    def progress(done: int, total: int, best_row: Optional[dict]) -> None:
        save_flags()
        shown = {} if best_row is None or best_key not in best_row else {best_key: best_row[best_key]}
        bar.advance(done, shown)

    try:
        result = sweep(x, y, grid=config.points, progress=progress, devices=devices, checkpoint_dir=checkpoint_dir,
                       checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                       resume=args.resume, **settings)  # fmt: skip
    except ValueError as error:
        if str(error).startswith("`monitor`="):  # the YAML's metric: name, as the user wrote it
            raise ValueError(f"--config {args.config!r}, its metric: {error}") from None
        raise
    except SweepInterrupted as interrupt:
        bar.close()
        if primary:
            print(f"ffnn-jax: sweep stopped by {interrupt.signal} after {bar.done} of {len(config.points)} members "
                  f"finished; every member is saved in {checkpoint_dir}.\nTo finish it: ffnn-jax sweep --out "
                  f"{folder} --resume", file=sys.stderr)  # fmt: skip
        return 128 + int(getattr(signal, interrupt.signal))
    except KeyboardInterrupt:  # before the members' loop (reading data, setting up): nothing to save yet
        bar.close()
        print(f"ffnn-jax: sweep stopped by SIGINT before training; run it again (with --resume to keep what "
              f"{checkpoint_dir} holds)", file=sys.stderr)  # fmt: skip
        return 128 + int(signal.SIGINT)
    except CheckpointError as error:
        bar.close()
        print(f"ffnn-jax: {error}", file=sys.stderr)
        return 1
    bar.close()
    save_flags()
    seconds = time.perf_counter() - start
    if not primary:
        return 0
    result.to_csv(os.path.join(folder, "sweep.csv"), overwrite=True)
    for i, member in enumerate(result.results):
        member_folder = os.path.join(folder, "members", f"{i:04d}")
        os.makedirs(member_folder, exist_ok=True)
        _write_metrics(member_folder, member.history, args.metrics_format)
    if args.plot:
        result.plot(os.path.join(folder, "sweep.png"))
    summary = {"members": len(result.results), "programs": result.programs, "sweep_seconds": round(seconds, 3),
               "devices": 1 if devices is None else len(jax.devices()), "metric": config.monitor,
               "method": config.method}  # fmt: skip
    line = f"swept {len(result.results)} members in {result.programs} program(s) in {seconds:.2f} s"
    if result.best is not None:
        best = result.best
        test = best.evaluate(x_test, y_test)
        target = resolve_target(args.dataset, args.target)
        _with_csv_names(best, args.dataset, target).save(os.path.join(folder, "params.npz"), overwrite=True)
        point = config.points[result.best_index]
        summary.update(
            best_point=point, best_row=result.table[result.best_index], **{f"test_{k}": v for k, v in test.items()}
        )
        value = result.table[result.best_index].get("returned_" + config.monitor)  # what it was ranked by
        line += f"\nbest: {point} -> {config.monitor} {value:.4f}"
        line += ", test " + ", ".join(f"{k} {v:.4f}" for k, v in test.items())
    atomic_write_bytes(os.path.join(folder, "summary.json"), json.dumps(summary, indent=2, default=str).encode(),
                       overwrite=True)  # fmt: skip
    if args.wandb_project is not None:  # each member as a run of the group named after the sweep's folder
        from ._wandb import log_sweep

        log_sweep(result, project=args.wandb_project, entity=args.wandb_entity,
                  group=os.path.basename(os.path.abspath(folder)), summary=summary)  # fmt: skip
    print(line + f"\nfiles in {folder}/: sweep.csv, summary.json, members/" + (", sweep.png" if args.plot else "")
          + (", params.npz (the best point)" if result.best is not None else ""))  # fmt: skip
    return 0


def run_launch(args) -> int:
    """Runs ``ffnn-jax launch -n N -- train ...``: N processes of one run, their output prefixed by rank."""
    from ._launch import launch

    return launch(args.num_processes, args.command, port=args.port, grace_s=args.grace)


def run_show(args) -> int:
    """Runs ``ffnn-jax show``: one sample image per class of an image data set, with the class names."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ._download import CLASS_NAMES

    name = args.dataset.lower()
    x, y = (
        load_dataset(args.dataset, "train", data_dir=args.data_dir)
        if name in CLASS_NAMES
        else load_dataset(args.dataset)
    )
    x, y = np.asarray(x), np.asarray(y)
    side = int(round(np.sqrt(x.shape[1])))
    if side * side != x.shape[1]:
        raise ValueError(f"`--dataset` {args.dataset!r} has {x.shape[1]} features, not a square image")
    classes = np.unique(y)
    names = CLASS_NAMES.get(name)
    columns = min(5, len(classes))
    rows = -(-len(classes) // columns)
    fig = Figure(figsize=(2.0 * columns, 2.3 * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    rng = np.random.default_rng(args.seed)
    for ax, label in zip(axes.flat, classes):
        image = x[rng.choice(np.flatnonzero(y == label))].reshape(side, side)
        ax.imshow(image, cmap="gray_r")
        title = names[int(label)] if names is not None and 0 <= int(label) < len(names) else str(label)
        ax.set_title(f"{int(label)}: {title}" if names is not None else title, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(args.out))
    tmp = os.path.join(folder, ".tmp-" + os.path.basename(args.out))
    fig.savefig(tmp, dpi=110, format="png")
    os.replace(tmp, args.out)
    print(f"one sample image per class of {args.dataset} ({len(classes)} classes) in {args.out}")
    return 0


def run_gradcheck(args) -> int:
    """Runs ``ffnn-jax gradcheck``: jax.grad vs backprop vs finite differences on the network the
    flags describe, at initialisation (``-e 0``) or after training; exit status 1 if it fails."""
    check_positive_int("--check_samples", args.check_samples)  # before any data is read or trained on
    settings = _settings(args)
    epochs, settings["epochs"] = settings["epochs"], max(settings["epochs"], 1)
    config = TrainConfig(**settings)
    (x, y), _ = _load_splits(args)
    data = prepare(dataclasses.replace(config, validation_fraction=0.0), x, y, None, None)
    if epochs > 0:
        params = train(x, y, **settings).params
    else:
        sizes = (data.x.shape[1], *config.hidden_sizes, data.n_out)
        init_key = jax.random.split(jax.random.key(config.seed))[0]  # the key train() initialises with
        params = init_params(init_key, sizes, init=config.weight_init, dtype=jnp.dtype(config.dtype))
        params = with_output_bias(params, config, data)
    rows = slice(0, args.check_samples)
    report = check_gradients(
        params,
        (data.x[rows], data.y[rows]),
        activation=config.activation,
        loss=data.loss,
        weight_decay=0.0 if config.optimizer == "adamw" else config.weight_decay,
        classification=data.task == "classification",
        rtol=args.rtol,
    )
    print(
        f"gradient check of {'-'.join(map(str, layer_sizes_of(params)))} on {len(data.x[rows])} rows of {args.dataset}"
    )
    print(report)
    return 0 if report.passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ffnn-jax", description="Train feedforward networks with JAX (gradient descent on θ)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser(
        "train",
        help="train a network and write params, metrics and a loss curve",
        description="Train a feedforward network; files go to --out.",
    )
    _add_train_flags(train_parser)
    train_parser.set_defaults(run=run_train)
    check_parser = commands.add_parser(
        "gradcheck",
        help="compare jax.grad, the lecture's backprop and finite differences, leaf by leaf",
        description="Check ∇θ three ways on the network the flags describe (at initialisation unless -e > 0).",
    )
    _add_train_flags(check_parser, outputs=False)
    check_parser.add_argument(
        "--check_samples", type=int, default=64, help="rows of the data in the batch (default 64)"
    )
    check_parser.add_argument("--rtol", type=float, default=None, help="relative tolerance (default 1e-6 in float64)")
    check_parser.set_defaults(run=run_gradcheck, epochs=0, num_layers=2, hidden_size=32, activation="tanh")
    sweep_parser = commands.add_parser(
        "sweep",
        help="train a grid (or random sample) of settings from a wandb-style YAML, as one program per structure",
        description="Sweep the parameters of a wandb-style YAML; the other flags set what all members share.",
    )
    sweep_parser.add_argument("--config", default=None,
                              help="the sweep YAML (method, metric, parameters, run_cap); required unless --resume "
                              "reuses the one --out was started with")  # fmt: skip
    sweep_parser.add_argument("--cpu_devices", type=int, default=None,
                              help="on a CPU, devices the members are split over, trained side by side (default: "
                              "one per core; 1: one device); ignored on an accelerator and with several processes")  # fmt: skip
    _add_train_flags(sweep_parser, what="sweep")
    sweep_parser.set_defaults(run=run_sweep)
    show_parser = commands.add_parser(
        "show", help="draw one sample image per class", description="One sample image per class, with its name."
    )
    show_parser.add_argument(
        "-d", "--dataset", default="fashion_mnist", help="fashion_mnist (default), mnist or digits"
    )
    show_parser.add_argument("--data_dir", default=None, help="folder with the IDX files (as for train)")
    show_parser.add_argument("--out", default="samples.png", help="PNG to write (default samples.png)")
    show_parser.add_argument("--seed", type=int, default=0, help="which sample of each class (default 0)")
    show_parser.set_defaults(run=run_show)
    predict_parser = commands.add_parser(
        "predict",
        help="predict with a saved run (its standardizer applied) and write a CSV",
        description="Predictions of a run folder, checkpoint folder or file for a data set, as CSV.",
    )
    predict_parser.add_argument(
        "--model",
        required=True,
        help="a run folder (--out of train), checkpoint folder or file; a checkpoint predicts with "
        "the params the run would return from there (the best epoch so far where early stopping "
        "keeps the best, else that epoch's)",
    )
    predict_parser.add_argument(
        "-d",
        "--dataset",
        required=True,
        help="digits, diabetes, or a .npz (x[, y]) / .csv / .tsv path (target optional)",
    )
    predict_parser.add_argument(
        "--target", type=_target_flag, default=None, help="the CSV's target column (name or index; default: the last)"
    )
    predict_parser.add_argument("--out", default="predictions.csv", help="CSV to write (default predictions.csv)")
    predict_parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    predict_parser.set_defaults(run=run_predict)
    launch_parser = commands.add_parser(
        "launch",
        help="run `train` or `sweep` as N local processes of one jax.distributed run",
        description="Start N processes of one run on this machine (a free loopback port; output prefixed by rank).",
    )
    launch_parser.add_argument("-n", "--num_processes", type=int, required=True, help="processes to start")
    launch_parser.add_argument("--port", type=int, default=None, help="the coordinator's port (default: a free one)")
    launch_parser.add_argument("--grace", type=float, default=5.0,
                               help="seconds the others get after one process fails, before SIGKILL (default 5)")  # fmt: skip
    launch_parser.add_argument("command", nargs=argparse.REMAINDER, help="-- train|sweep FLAGS...")
    launch_parser.set_defaults(run=run_launch)
    for sub in (train_parser, check_parser, predict_parser, sweep_parser, show_parser):
        _add_cache_flag(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"ffnn-jax: warning: {message}", file=sys.stderr)


class _CacheWarnings:
    """Warnings as one line each; jax's per-entry 'cannot read the cache' warnings as one line in all."""

    def __init__(self, cache: Optional[str]):
        self.cache, self.told = cache, False

    def __call__(self, message, category, filename, lineno, file=None, line=None):
        if str(message).startswith("Error reading persistent compilation cache entry"):
            if not self.told:
                self.told = True
                print(
                    f"ffnn-jax: warning: some entries of the compilation cache {self.cache!r} are unreadable and were "
                    "compiled again; delete that folder to clear them",
                    file=sys.stderr,
                )
            return
        _one_line_warning(message, category, filename, lineno)


def _add_cache_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compilation_cache",
        default=None,
        help="folder of JAX's persistent compilation cache, or 'off' (default $FFNN_JAX_COMPILATION_CACHE, "
        "else ~/.cache/ffnn_jax/jax): a second identical run compiles nothing",
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _with_saved_flags(parser, argv)
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            cache = enable_compilation_cache(getattr(args, "compilation_cache", "off"))  # launch: its children's
            warnings.showwarning = _CacheWarnings(cache)  # jax warns per unreadable entry: say it once
            return args.run(args)
    except (ValueError, TypeError, OverflowError, OSError) as error:  # user errors: bad flags, data or paths
        message = str(error).replace("\n", " ")  # one line, whatever the message
        parser.exit(2, f"ffnn-jax: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
