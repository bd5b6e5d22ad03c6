"""From settings and data to what the compiled loop runs: validated data, the spec, the first run.

:func:`prepare` validates and splits the data (before anything compiles); :func:`setup` builds
the :class:`ffnn_jax._loop.RunSpec`, the stopping numbers and the initial
:class:`ffnn_jax._loop.RunState` (fresh, from given params, or continuing a previous state), and
places the data on the device once.
"""

import hashlib
import warnings
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ._buckets import is_bucketed, padded, placed_rows
from ._config import TrainConfig
from ._data import (
    LARGE_BYTES,
    Standardizer,
    check_feature_names,
    default_loss,
    feature_names_of,
    fit_standardizer,
    host_copy,
    infer_task,
    is_aligned,
    split_indices,
    validate_x,
    validate_y,
    whole_number_labels,
)
from ._errors import user_stacklevel
from ._flat_rows import FlatRows, flat_view
from ._labels import MAX_AUTO_CLASSES, encode_labels, encode_with, is_label_column
from ._loop import RunSpec, RunState, history_names, init_run_state
from ._optim import OptimizerSpec, make_optimizer
from ._parallel import make_mesh, replicate, shard_rows
from ._params import check_params, first_draws, init_params, layer_sizes_of, with_zero_biases
from ._sparse import SparseRows
from ._step import ModelSpec, TrainState, init_train_state
from ._stopping import StopNumbers, StopRule, stop_numbers, watched_value
from ._types import Params


class Prepared(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    sample_weight: Optional[np.ndarray]
    x_val: Optional[np.ndarray]
    y_val: Optional[np.ndarray]
    task: str
    loss: str
    n_out: int
    standardizer: Optional[Standardizer]
    classes: Optional[np.ndarray]  # [n_out] the labels as given, for single-label classification
    feature_names: Optional[Tuple[str, ...]] = None  # a DataFrame x's columns (what predict must be given)


def _validate_sample_weight(sample_weight, n: int, dtype) -> Optional[np.ndarray]:
    if sample_weight is None:
        return None  # every row weighs 1 (a separate compiled epoch without the weight gather)
    w = validate_x(
        np.asarray(sample_weight).reshape(-1, 1) if np.ndim(sample_weight) == 1 else sample_weight,
        "sample_weight",
        dtype=dtype,
    )
    if w.shape != (n, 1):
        raise ValueError(
            f"`sample_weight` must have shape [{n}] (one weight per sample), got {np.shape(sample_weight)}"
        )
    if np.any(w < 0) or not np.any(w > 0):
        raise ValueError("`sample_weight` must be >= 0 with at least one positive weight")
    return w[:, 0]


_FEW_CLASSES = 20  # more distinct integers than this, one of them seen once: a numeric target, most likely


def check_auto_classes(y, subject: str = "`y`") -> None:
    """Under ``task="auto"``, refuses integer labels ``y`` [n] that look like a numeric target
    (diabetes' 214 distinct whole numbers in 442 rows, prices, ages) rather than classes: over
    1000 distinct values, over 100 that are more than half the rows, or over 20 with one seen only
    once. The error asks for the task instead of guessing."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or not is_label_column(y):
        return
    values, counts = np.unique(y, return_counts=True)
    distinct, once = len(values), int(np.sum(counts == 1))
    if distinct > MAX_AUTO_CLASSES or (distinct > 100 and distinct > len(y) // 2):
        why = ""
    elif distinct > _FEW_CLASSES and once:
        why = f", {once} of them seen once (a class of one example)"
    else:
        return
    raise ValueError(
        f"{subject} holds {distinct} distinct integers{why}: with task='auto' that would be a {distinct}-class "
        "classification. Pass task='regression' (ffnn-jax: --task regression) for numeric targets, or "
        "task='classification'"
    )


_UNIT_SCALE_INTEGERS = 10  # integer inputs up to this are left alone (flags, small counts, digits' 0..16 is float)


def _described(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:5])
    return shown + (", ..." if len(values) > 5 else "")


def warn_if_float_labels(y) -> None:
    """Under ``task="auto"``, warns that float targets [n] / [n, k] that look like class labels
    (at most 20 distinct whole numbers, or 0/1 rows) are trained as a regression, and names the
    settings that decide it. One pass over ``y``; only for float targets."""
    y = np.asarray(y)
    labels = whole_number_labels(y) if y.size else None
    if labels is None:
        return
    if y.ndim == 2 and y.shape[1] > 1:
        if np.all((labels == 0) | (labels == 1)):
            warnings.warn(
                f"`y` is float rows of 0s and 1s [{y.shape[0]}, {y.shape[1]}] (not one-hot): trained as a "
                "multi-output regression (squared error). For multi-label classification pass "
                "loss='binary_cross_entropy'; pass task='regression' to silence this warning",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        return
    values = np.unique(labels)
    if len(values) <= _FEW_CLASSES:
        warnings.warn(
            f"`y` is float but holds only {len(values)} distinct whole numbers ({_described(values)}): trained as "
            "a regression (squared error), as float targets are. For class labels pass task='classification' "
            "or integer labels; pass task='regression' to silence this warning",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def warn_if_unscaled_integers(x) -> None:
    """Warns that a NumPy integer ``x`` far from unit scale (image bytes 0..255, counts, years) is
    trained as it is: with ``standardize=False`` a network on raw pixels learns slowly or its ReLUs
    die (digits as bytes: 36% accuracy after 10 epochs of SGD, 94% standardized). Float inputs are
    taken as the caller scaled them, without a word."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu" or x.size == 0:
        return
    top = max(int(x.max()), -int(x.min()))
    if top <= _UNIT_SCALE_INTEGERS:
        return
    pixels = " (pixels: x / 255)" if x.dtype == np.uint8 else ""
    warnings.warn(
        f"`x` holds integers up to {top} ({x.dtype}), trained as they are; networks learn best from inputs of "
        f"about unit scale: scale them{pixels} or pass standardize=True. Float inputs are taken as given "
        "(no warning)",
        UserWarning,
        stacklevel=user_stacklevel(),
    )


def _check_numeric_targets(y, loss: str, explicit_task: bool) -> None:
    """A regression on text labels ('cat', 'dog') is named as such, not as a dtype."""
    values = np.asarray(y).ravel()
    text = next((v for v in values[:1000] if isinstance(v, (str, bytes))), None) if values.dtype.kind in "USO" else None
    if text is not None:
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)  # np.str_ shown as 'cat'
        why = "task='regression'" if explicit_task else f"`loss`={loss!r} (a regression loss)"
        raise ValueError(
            f"{why} needs numeric targets, but `y` holds text labels such as {text!r}; for class labels use "
            "task='classification' with loss 'cross_entropy' (the default)"
        )


def reads_class_labels(config: TrainConfig, y) -> bool:
    """Whether ``train(x, y, **config)`` reads ``y`` as class labels, one softmax output per distinct
    label (as :func:`prepare` decides, without its warnings)."""
    task = config.task if config.task != "auto" else infer_task(y, config.loss)
    return task == "classification" and config.loss != "binary_cross_entropy" and is_label_column(y)


def _task_and_loss(config: TrainConfig, y) -> Tuple[str, str]:
    if config.task != "auto":
        task = config.task
    else:
        task = infer_task(y, config.loss)
        if task == "classification" and config.loss is None:
            check_auto_classes(y)
        elif config.loss is None:
            warn_if_float_labels(y)
    loss = config.loss or default_loss(task, y)
    if task == "classification" and loss == "poisson":
        raise ValueError("`loss`='poisson' is a regression loss; use task='regression' or 'auto'")
    if task == "regression":
        _check_numeric_targets(y, loss, explicit_task=config.task == "regression")
    if task == "regression" and loss not in ("squared_error", "poisson"):
        raise ValueError(
            f"`loss`={loss!r} needs class labels in `y`, got float targets (regression); use 'squared_error' or integer labels"
        )
    if loss == "cross_entropy" and config.n_classes == 1:
        raise ValueError("`n_classes`=1: a one-output softmax always predicts its only class; use at least 2 classes")
    return task, loss


def _with_class_weight(class_weight, codes, classes, w, n: int) -> np.ndarray:
    """Row weights ``w × class_weight[label]``; "balanced" is n / (k · count(label)), as scikit-learn's."""
    if codes is None:
        raise ValueError("`class_weight` needs class labels in `y` (single-label classification)")
    if class_weight == "balanced":
        per_class = len(codes) / (len(classes) * np.maximum(np.bincount(codes, minlength=len(classes)), 1))
    else:
        unknown = [label for label in class_weight if label not in set(classes.tolist())]
        if unknown:
            raise ValueError(
                f"`class_weight` names labels that are not in `y`: {unknown}; the classes are {classes.tolist()}"
            )
        per_class = np.array([float(class_weight.get(label, 1.0)) for label in classes.tolist()])
    weights = per_class[codes].astype(np.float32 if w is None else w.dtype)
    return weights if w is None else w * weights


def prepare(config: TrainConfig, x, y, validation_data, sample_weight) -> Prepared:
    """Validated, split and scaled data; class labels encoded as 0..k−1 (``classes`` decodes them)."""
    dtype = np.dtype(config.dtype)
    feature_names = feature_names_of(x)
    if validation_data is not None and isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        check_feature_names(validation_data[0], feature_names, "validation_data[0]")
    # On a CPU the device arrays are these host arrays: place() reads a C-contiguous x where it is
    # and aligns what else needs it, so nothing is aligned here (that would be a copy too many).
    aligned = jax.default_backend() == "cpu" and not config.standardize
    if not config.standardize:
        warn_if_unscaled_integers(x)
    x = validate_x(x, "x", dtype=dtype)
    w = _validate_sample_weight(sample_weight, len(x), dtype)
    task, loss = _task_and_loss(config, y)
    multi_label = loss == "binary_cross_entropy"
    labels = task == "classification" and not multi_label and is_label_column(y)
    classes = None
    if labels:  # labels as given (ints, strings, bools) -> 0..k-1
        if np.shape(y)[0] != len(x):
            raise ValueError(f"`x` and `y` must have the same number of samples, got {len(x)} and {np.shape(y)[0]}")
        y, classes = encode_labels(y, "y", n_classes=config.n_classes)
    if config.class_weight is not None:
        w = _with_class_weight(config.class_weight, y if labels else None, classes, w, len(x))
    checks = dict(task=task, n_classes=config.n_classes, multi_label=multi_label, dtype=dtype)
    y = validate_y(y, "y", n_samples=len(x), **checks)
    if loss == "poisson" and np.any(y < 0):
        raise ValueError("`y` must be >= 0 for loss='poisson' (counts or rates)")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("`validation_data` must be a pair (x_val, y_val)")
        x_val = validate_x(
            validation_data[0], "validation_data[0]", n_features=x.shape[1], dtype=dtype, aligned=aligned
        )
        y_val = validation_data[1]
        if labels:
            y_val = encode_with(classes, y_val, "validation_data[1]")
        y_val = validate_y(y_val, "validation_data[1]", n_samples=len(x_val), **checks)
        if y_val.ndim != y.ndim or y_val.shape[1:] != y.shape[1:]:
            raise ValueError(f"`validation_data[1]` must have shape [n]{list(y.shape[1:])}, got {y_val.shape}")
    elif config.validation_fraction > 0:
        stratify = y if labels else None
        keep, held = split_indices(len(x), config.validation_fraction, seed=config.seed, stratify=stratify,
                                   classes=classes)  # fmt: skip
        x, y, x_val, y_val = x[keep], y[keep], x[held], y[held]
        w = None if w is None else w[keep]
    else:
        x_val = y_val = None
    if labels:
        n_out = len(classes)
    else:
        n_out = 1 if y.ndim == 1 else y.shape[1]
    standardizer = None
    if config.standardize and isinstance(x, SparseRows):
        raise ValueError("`standardize`=True would densify sparse `x` (centring fills every zero); scale it yourself")
    if config.standardize:
        standardizer = fit_standardizer(x)
        x = standardizer.apply(x)
        x_val = None if x_val is None else standardizer.apply(x_val)
    return Prepared(x, y, w, x_val, y_val, task, loss, n_out, standardizer, classes, feature_names)


def with_output_bias(params: Params, config: TrainConfig, data: Prepared) -> Params:
    """Fresh ``params`` with the last bias ``config.output_bias`` asks for (see :class:`TrainConfig`)."""
    if config.output_bias != "auto" or data.task != "regression":
        return params
    bias = jax.device_put(best_constant_output(data.y, data.sample_weight, data.loss, config.dtype))
    return (*params[:-1], params[-1]._replace(b=bias))


def best_constant_output(y: np.ndarray, sample_weight: Optional[np.ndarray], loss: str, dtype) -> np.ndarray:
    """The last layer's bias [n_out] that predicts the best constant for regression targets ``y``
    [n] or [n, n_out]: their (``sample_weight``-weighted) mean, or its log for ``loss="poisson"``
    (whose prediction is exp(score); 0 where the mean is 0)."""
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    weights = None if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1)
    mean = np.average(y, axis=0, weights=weights)
    if loss == "poisson":
        mean = np.where(mean > 0, np.log(np.where(mean > 0, mean, 1.0)), 0.0)
    return mean.astype(dtype)


def _monitor(config: TrainConfig, data: Prepared):
    """The history key that early stopping and plateaus watch (accuracy and R² are maximised)."""
    has_val = data.x_val is not None
    monitor = config.monitor if config.monitor != "auto" else ("val_loss" if has_val else "train_loss")
    if monitor.startswith("val_") and not has_val:
        raise ValueError(f"`monitor`={monitor!r} needs validation_data or validation_fraction > 0")
    if monitor.endswith("accuracy") and data.task != "classification":
        raise ValueError(f"`monitor`={monitor!r} needs a classification task; use 'val_r2' or a loss")
    if monitor.endswith("r2") and data.task != "regression":
        raise ValueError(f"`monitor`={monitor!r} needs a regression task; use 'val_accuracy' or a loss")
    return monitor


def _optimizer_and_spec(config: TrainConfig, steps_per_epoch: int):
    if not isinstance(config.optimizer, str):
        return config.optimizer, config.optimizer
    total_steps = config.epochs * steps_per_epoch
    default_decay_steps = {"step": max(1, total_steps // 3), "invscaling": 1}.get(config.lr_schedule, total_steps)
    tx = make_optimizer(
        config.optimizer,
        learning_rate=config.learning_rate,
        momentum=config.momentum,
        beta=config.beta,
        beta1=config.beta1,
        beta2=config.beta2,
        epsilon=config.epsilon,
        decoupled_weight_decay=config.weight_decay if config.optimizer == "adamw" else 0.0,
        lr_schedule=config.lr_schedule,
        decay_rate=config.lr_decay_rate,
        decay_steps=config.lr_decay_steps or default_decay_steps,
        warmup_steps=config.warmup_steps,
        max_grad_norm=config.max_grad_norm,
    )
    spec = OptimizerSpec(config.optimizer, config.lr_schedule, config.max_grad_norm is not None)
    return tx, spec


def epochs_per_dispatch(params: Params, n_samples: int, *, flops_per_dispatch: float = 2e10, most: int = 100) -> int:
    """How many epochs one compiled loop runs when no callback needs the host after each epoch.

    About ``flops_per_dispatch`` of training work (6 × weights × samples per epoch) per dispatch:
    a large epoch runs alone (per-epoch history and progress as before), a tiny one (iris: 120
    rows) shares its dispatch with up to ``most`` epochs, where the host round trip per dispatch
    would otherwise cost more than the epoch itself.
    """
    weights = sum(int(np.prod(layer.W.shape)) for layer in params)
    return int(np.clip(flops_per_dispatch // (6 * weights * n_samples), 1, most))


def _continue_from(previous: TrainState, fresh: TrainState) -> TrainState:
    """``previous`` with the numeric hyperparameters (λ, optimizer constants) of ``fresh``."""
    if jax.tree_util.tree_structure(previous.opt_state) != jax.tree_util.tree_structure(fresh.opt_state):
        raise ValueError("`initial_state` was made with a different optimizer than the one requested")
    opt_state = previous.opt_state
    if hasattr(opt_state, "hyperparams"):
        opt_state = opt_state._replace(hyperparams=fresh.opt_state.hyperparams)
    return previous._replace(opt_state=opt_state, weight_decay=fresh.weight_decay)


class Setup(NamedTuple):
    """Everything :func:`ffnn_jax._loop.run_epochs` is called with, and the history's names."""

    spec: RunSpec
    run: RunState
    numbers: StopNumbers
    train_data: tuple  # device arrays (x, y, sample_weight or None)
    val_data: Optional[tuple]  # device arrays (x_val, y_val) or None
    names: tuple  # history names of the per-epoch values


def setup(
    config: TrainConfig,
    data: Prepared,
    *,
    initial_params: Optional[Params] = None,
    initial_state: Optional[TrainState] = None,
    has_callbacks: bool = False,
    placed: Optional[Tuple[tuple, Optional[tuple]]] = None,
    devices=None,
    split_batches: bool = True,
) -> Setup:
    """The spec, stopping numbers, initial run and device data of a :func:`ffnn_jax.train` call
    (``placed``: the data already on the device, as :func:`place` returns it for ``data``;
    ``devices``: see :func:`ffnn_jax._parallel.make_mesh`; ``split_batches=False``: no batch mesh, as
    for a sweep's members, which are split over the devices instead)."""
    mesh = make_mesh(devices) if split_batches else None
    monitor = _monitor(config, data)
    sizes = (data.x.shape[1], *config.hidden_sizes, data.n_out)
    if initial_state is not None:
        if not isinstance(initial_state, TrainState):
            hint = " (a trained result's is its `.state`)" if hasattr(initial_state, "state") else ""
            raise TypeError(f"`initial_state` must be a TrainState{hint}, got {type(initial_state).__name__}")
        initial_params = initial_state.params
    elif initial_params is not None:
        check_params(initial_params, "initial_params")
    if initial_params is None and isinstance(config.weight_init, str) and config.seed < 2**31:
        # one program for the keys and the weights: the numbers of the split and init_params below
        weights, order_key = first_draws(np.int32(config.seed), sizes=sizes, scheme=config.weight_init,
                                         dtype=jnp.dtype(config.dtype))  # fmt: skip
        params = with_zero_biases(weights, config.dtype)
    else:
        init_key, order_key = jax.random.split(jax.random.key(config.seed))
    if initial_params is not None:
        if layer_sizes_of(initial_params) != sizes:
            name = "initial_state" if initial_state is not None else "initial_params"
            raise ValueError(
                f"`{name}` must have layer sizes {list(sizes)}, got {list(layer_sizes_of(initial_params))}"
            )
        params = initial_params
    elif not isinstance(config.weight_init, str) or config.seed >= 2**31:
        params = init_params(init_key, sizes, init=config.weight_init, dtype=jnp.dtype(config.dtype))
    if initial_params is None:
        params = with_output_bias(params, config, data)
    n = len(data.x)
    # batch size, shuffling and epochs per dispatch follow the placed rows (one program per bucket)
    rows = placed_rows(data.x)
    batch_size = rows if config.batch_size is None else min(config.batch_size, rows)
    steps_per_epoch = -(-n // batch_size)
    tx, optimizer_spec = _optimizer_and_spec(config, steps_per_epoch)
    state = init_train_state(params, tx, order_key, weight_decay=config.loss_l2)
    # run_epochs donates its run, so what may share buffers with the caller's arrays is copied:
    # everything of a continued state or of a user's optimizer (its init may hold the params), else
    # only given params (a built-in optimizer's state comes fresh from its compiled init).
    if initial_state is not None or not isinstance(optimizer_spec, OptimizerSpec):
        state = state if initial_state is None else _continue_from(initial_state, state)
        state = jax.tree_util.tree_map(jnp.array, state)
    elif initial_params is not None:
        state = state._replace(params=jax.tree_util.tree_map(jnp.array, state.params))
    model = ModelSpec(config.activation, data.loss, data.task == "classification", config.compute_dtype, config.dropout)
    target = config.stopping_threshold
    numbers = stop_numbers(
        min_delta=config.min_delta,
        patience=config.patience,
        lr_factor=config.reduce_lr_factor or 1.0,
        lr_patience=config.reduce_lr_patience,
        min_learning_rate=config.min_learning_rate,
        threshold=-np.inf if target is None else watched_value(monitor, {monitor: target}),
    )
    track_best = config.early_stopping and config.restore_best
    spec = RunSpec(
        model=model,
        optimizer=optimizer_spec,
        batch_size=batch_size,
        shuffle=config.shuffle and rows > batch_size,
        rule=StopRule(monitor, config.plateau_rule, config.early_stopping, config.reduce_lr_factor is not None),
        track_best=track_best,
        chunk=1 if has_callbacks else epochs_per_dispatch(state.params, rows),
        mesh=mesh,
        rows=n if mesh is not None and jax.process_count() > 1 and not is_bucketed(data.x) else None,
    )
    train_data, val_data = place(data, mesh, in_place=True) if placed is None else placed
    names = history_names(model, val_data is not None, state.opt_state)
    run = replicate(init_run_state(state, track_best=track_best), mesh)
    return Setup(spec, run, numbers, train_data, val_data, names)


def place(data: Prepared, mesh=None, *, in_place: bool = False) -> Tuple[tuple, Optional[tuple]]:
    """The training and validation arrays on the device, or replicated on ``mesh`` (waited for: a
    copy left running would land in the first epoch's time). Across several processes the training
    rows are split over the mesh instead, each process putting only its own (padded to a multiple of
    the device count: ``RunSpec.rows`` says how many are data). Small dense sets are padded to
    their bucket first (:mod:`ffnn_jax._buckets`), and each tuple ends with its count of real rows
    (int32 [], None where nothing is padded that way): ``(x, y, sample_weight, rows)``, ``(x_val, y_val, rows)``.

    ``in_place``: on one CPU device, a large unaligned C-contiguous training ``x`` is read where it
    is, as :class:`ffnn_jax._flat_rows.FlatRows` (no copy); otherwise it is copied to an aligned
    buffer. (Sweeps stack members' data, so they keep plain arrays.)"""
    train, val = _bucketed((data.x, data.y, data.sample_weight)), None
    if data.x_val is not None:
        val = _bucketed((data.x_val, data.y_val))
    if mesh is not None and jax.process_count() > 1:
        train = (*shard_rows(train[:-1], mesh), replicate(train[-1], mesh))
        return jax.block_until_ready(train), replicate(val, mesh)
    if mesh is not None:
        x = _cpu_ready(train[0]) if jax.default_backend() == "cpu" else train[0]
        return jax.block_until_ready(replicate((x, *train[1:]), mesh)), replicate(val, mesh)
    x = train[0]
    flat = flat_view(x) if in_place and jax.default_backend() == "cpu" and _large(x) and not is_aligned(x) else None
    if flat is not None:  # the rows read where they are: no host copy (see ffnn_jax._flat_rows)
        train = (flat[0], *train[1:])
    if jax.default_backend() == "cpu":
        train, val = jax.tree_util.tree_map(_cpu_ready, (train, val))
    train, val = jax.block_until_ready(jax.device_put((train, val)))
    if flat is not None:
        train = (FlatRows(train[0], flat[1], *data.x.shape), *train[1:])
    return train, val


def _bucketed(arrays: tuple) -> tuple:
    """``arrays`` (x [n, d] first, then arrays [n, ...] or None) padded to x's bucket, and the
    count of real rows (an int32 [] host array) last, or None where x is placed as it is."""
    if not is_bucketed(arrays[0]):
        return (*arrays, None)
    rows = placed_rows(arrays[0])
    return (*(padded(array, rows) for array in arrays), np.int32(arrays[0].shape[0]))


def _large(array) -> bool:
    return isinstance(array, np.ndarray) and array.nbytes >= LARGE_BYTES


def _cpu_ready(array):
    """A large NumPy ``array`` as a 64-byte-aligned C-contiguous copy (else as it is).

    ``jax.device_put`` copies an unaligned host array on one thread (about 90 ms for 60k × 784
    float32 here); an aligned one becomes the device array as it is, so the threaded copy is the
    only one. Arrays that are already aligned (``validate_x(aligned=True)`` made them so) are used
    directly.
    """
    if not _large(array) or is_aligned(array):
        return array
    return host_copy(array)[0]


def sampled_rows(n: int, most: int = 256) -> np.ndarray:
    """Up to ``most`` evenly spaced row indices of ``n`` rows (what data digests hash)."""
    return np.unique(np.linspace(0, n - 1, num=min(n, most)).astype(np.int64))


def describe_data(data: Prepared) -> dict:
    """Shapes, dtypes and a SHA-256 of sampled rows of the prepared data (what a resume must match)."""
    h = hashlib.sha256()
    shapes = {}
    for name in ("x", "y", "sample_weight", "x_val", "y_val"):
        array = getattr(data, name)
        if array is None:
            continue
        shapes[name] = [list(array.shape), array.dtype.str]
        rows = sampled_rows(len(array))
        h.update(name.encode())
        for leaf in jax.tree_util.tree_leaves(array[rows]):  # an array, or sparse rows' columns and values
            h.update(np.ascontiguousarray(leaf).tobytes())
    return {"arrays": shapes, "sampled_rows_sha256": h.hexdigest()}


def resumed(restored: RunState, fresh: RunState) -> RunState:
    """A run restored from a checkpoint, with the one number that follows ``epochs`` (the total)
    taken from this call: a schedule's default length, ``decay_steps``. Everything else, η
    lowered on a plateau included, continues as saved."""
    saved, ours = restored.train.opt_state, fresh.train.opt_state
    if "decay_steps" not in getattr(saved, "hyperparams", {}):
        return restored
    hyperparams = {**saved.hyperparams, "decay_steps": ours.hyperparams["decay_steps"]}
    return restored._replace(train=restored.train._replace(opt_state=saved._replace(hyperparams=hyperparams)))
