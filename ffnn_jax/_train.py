"""``train()``: the Python loop over fused epochs with validation, early stopping and history.

The epochs run in compiled chunks (:func:`run_epochs`: training, validation and the stopping
rule on the device); after each chunk the host copies a few scalars per epoch into the history.
A chunk is one epoch when callbacks are given or an epoch is large, up to 100 epochs on tiny
data. Everything numeric that a user may vary between calls (learning rate and other optimizer
constants, λ, seed, epochs) reaches the compiled code as an array, so repeated calls with the
same shapes compile nothing.
"""

import dataclasses
import inspect
import time
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._config import TrainConfig
from ._data import Standardizer, fit_standardizer, infer_task, split_indices, validate_x, validate_y
from ._inference import evaluate, predict, predict_proba
from ._optim import OptimizerSpec, make_optimizer
from ._params import init_params, layer_sizes_of
from ._step import Chunk, ModelSpec, TrainState, history_names, init_train_state, run_epochs
from ._stopping import StopRule, stop_numbers, watched_value
from ._types import Params


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
class TrainResult:
    """What :func:`train` returns: parameters, per-epoch history, and what is needed to predict."""

    params: Params
    # name -> list over epochs: epoch, train_loss, [train_accuracy], [val_*], [learning_rate], time_s
    # (wall seconds; epochs that ran in one dispatch share its time equally)
    history: dict
    config: TrainConfig
    model: ModelSpec
    task: str  # "classification" or "regression"
    standardizer: Optional[Standardizer]  # applied to x before the network when standardize=True
    state: TrainState  # final state (optimizer state, step, key) for continuing
    best_epoch: int  # 1-based epoch whose params were returned
    stopped_early: bool

    @property
    def layer_sizes(self):
        return layer_sizes_of(self.params)

    def _inputs(self, x):
        x = validate_x(x, "x", n_features=self.layer_sizes[0], dtype=self.params[0].W.dtype)
        return x if self.standardizer is None else self.standardizer.apply(x)

    def predict(self, x) -> np.ndarray:
        """Labels [n] (classification), 0/1 [n, k] (multi-label) or outputs (regression)."""
        multi_label = self.model.loss == "binary_cross_entropy"
        labels = predict(
            self.params,
            self._inputs(x),
            activation=self.model.activation,
            task=self.task,
            multi_label=multi_label,
            loss=self.model.loss,
        )
        return np.asarray(labels)

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities [n, k] (softmax, or sigmoids for binary_cross_entropy)."""
        if self.task != "classification":
            raise ValueError("`predict_proba` needs a classification model; this one is a regression")
        multi_label = self.model.loss == "binary_cross_entropy"
        return np.asarray(
            predict_proba(self.params, self._inputs(x), activation=self.model.activation, multi_label=multi_label)
        )

    def evaluate(self, x, y) -> dict:
        """``{"loss", "accuracy"}`` (classification) or ``{"loss", "r2"}`` on raw inputs."""
        return evaluate(
            self.params,
            self._inputs(x),
            y,
            activation=self.model.activation,
            loss=self.model.loss,
            weight_decay=0.0 if self.config.optimizer == "adamw" else self.config.weight_decay,
            task=self.task,
        )


class _Prepared(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    sample_weight: Optional[np.ndarray]
    x_val: Optional[np.ndarray]
    y_val: Optional[np.ndarray]
    task: str
    loss: str
    n_out: int
    standardizer: Optional[Standardizer]


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


def _prepare(config: TrainConfig, x, y, validation_data, sample_weight) -> _Prepared:
    dtype = np.dtype(config.dtype)
    x = validate_x(x, "x", dtype=dtype)
    w = _validate_sample_weight(sample_weight, len(x), dtype)
    task = infer_task(y, config.loss) if config.task == "auto" else config.task
    loss = config.loss or ("cross_entropy" if task == "classification" else "squared_error")
    if task == "classification" and loss == "poisson":
        raise ValueError("`loss`='poisson' is a regression loss; use task='regression' or 'auto'")
    if task == "regression" and loss not in ("squared_error", "poisson"):
        raise ValueError(
            f"`loss`={loss!r} needs class labels in `y`, got float targets (regression); use 'squared_error' or integer labels"
        )
    multi_label = loss == "binary_cross_entropy"
    checks = dict(task=task, n_classes=config.n_classes, multi_label=multi_label, dtype=dtype)
    y = validate_y(y, "y", n_samples=len(x), **checks)
    if loss == "poisson" and np.any(y < 0):
        raise ValueError("`y` must be >= 0 for loss='poisson' (counts or rates)")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("`validation_data` must be a pair (x_val, y_val)")
        x_val = validate_x(validation_data[0], "validation_data[0]", n_features=x.shape[1], dtype=dtype)
        y_val = validate_y(validation_data[1], "validation_data[1]", n_samples=len(x_val), **checks)
        if y_val.ndim != y.ndim or y_val.shape[1:] != y.shape[1:]:
            raise ValueError(f"`validation_data[1]` must have shape [n]{list(y.shape[1:])}, got {y_val.shape}")
    elif config.validation_fraction > 0:
        stratify = y if task == "classification" and y.ndim == 1 else None
        keep, held = split_indices(len(x), config.validation_fraction, seed=config.seed, stratify=stratify)
        x, y, x_val, y_val = x[keep], y[keep], x[held], y[held]
        w = None if w is None else w[keep]
    else:
        x_val = y_val = None
    if task == "classification" and not multi_label and y.ndim == 1:
        seen = max(int(y.max()), -1 if y_val is None else int(y_val.max())) + 1
        n_out = config.n_classes or seen
    else:
        n_out = 1 if y.ndim == 1 else y.shape[1]
    standardizer = None
    if config.standardize:
        standardizer = fit_standardizer(x)
        x = standardizer.apply(x)
        x_val = None if x_val is None else standardizer.apply(x_val)
    return _Prepared(x, y, w, x_val, y_val, task, loss, n_out, standardizer)


def _monitor(config: TrainConfig, data: _Prepared):
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


def train(
    x,
    y,
    *,
    validation_data=None,
    callbacks: Sequence[Callable[[int, dict], Any]] = (),
    sample_weight=None,
    initial_params: Optional[Params] = None,
    initial_state: Optional[TrainState] = None,
    **settings,
) -> TrainResult:
    """Trains a feedforward network on ``x`` [n, d_in] and ``y`` and returns a :class:`TrainResult`.

    ``y`` of integer labels [n] (0..k−1) or one-hot [n, k] means classification (softmax over k
    outputs); float targets [n] or [n, d_out] mean regression; ``loss="binary_cross_entropy"``
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
      **settings: fields of :class:`TrainConfig`.

    Returns:
      A :class:`TrainResult`.

    Raises:
      ValueError, TypeError: bad data or settings, before anything is compiled.
      TrainingDivergedError: the loss became NaN/inf; carries the last finite params.

    Examples:
      >>> x, y = load_digits()
      >>> result = train(x, y, hidden_sizes=(32,), optimizer="adam", learning_rate=1e-3, epochs=2)
      >>> result.predict(x[:3]).shape
      (3,)
    """
    config = TrainConfig(**settings)
    data = _prepare(config, x, y, validation_data, sample_weight)
    monitor = _monitor(config, data)
    sizes = (data.x.shape[1], *config.hidden_sizes, data.n_out)
    init_key, order_key = jax.random.split(jax.random.key(config.seed))
    if initial_state is not None:
        initial_params = initial_state.params
    if initial_params is None:
        params = init_params(init_key, sizes, init=config.weight_init, dtype=jnp.dtype(config.dtype))
    else:
        if layer_sizes_of(initial_params) != sizes:
            name = "initial_state" if initial_state is not None else "initial_params"
            raise ValueError(
                f"`{name}` must have layer sizes {list(sizes)}, got {list(layer_sizes_of(initial_params))}"
            )
        params = initial_params
    n = len(data.x)
    batch_size = n if config.batch_size is None else min(config.batch_size, n)
    steps_per_epoch = -(-n // batch_size)
    tx, optimizer_spec = _optimizer_and_spec(config, steps_per_epoch)
    l2 = 0.0 if config.optimizer == "adamw" else config.weight_decay
    state = init_train_state(params, tx, order_key, weight_decay=l2)
    # run_epochs donates its state, so what may share buffers with the caller's arrays is copied:
    # everything of a continued state or of a user's optimizer (its init may hold the params), else
    # only given params (a built-in optimizer's state comes fresh from its compiled init).
    if initial_state is not None or not isinstance(optimizer_spec, OptimizerSpec):
        state = state if initial_state is None else _continue_from(initial_state, state)
        state = jax.tree_util.tree_map(jnp.array, state)
    elif initial_params is not None:
        state = state._replace(params=jax.tree_util.tree_map(jnp.array, state.params))
    model = ModelSpec(config.activation, data.loss, data.task == "classification", config.compute_dtype)
    # Wait for the copy here, or it lands in the first epoch's history["time_s"].
    train_data = jax.block_until_ready(jax.device_put((data.x, data.y, data.sample_weight)))
    val_data = None if data.x_val is None else jax.device_put((data.x_val, data.y_val))
    target = config.stopping_threshold
    rule = StopRule(monitor, config.plateau_rule, config.early_stopping, config.reduce_lr_factor is not None)
    numbers = stop_numbers(
        min_delta=config.min_delta,
        patience=config.patience,
        lr_factor=config.reduce_lr_factor or 1.0,
        lr_patience=config.reduce_lr_patience,
        min_learning_rate=config.min_learning_rate,
        threshold=-np.inf if target is None else watched_value(monitor, {monitor: target}),
    )
    restore = config.early_stopping and config.restore_best
    best_params = jax.tree_util.tree_map(jnp.copy, state.params) if restore else None
    static = dict(
        model=model,
        optimizer=optimizer_spec,
        batch_size=batch_size,
        shuffle=config.shuffle and steps_per_epoch > 1,
        chunk=1 if callbacks else epochs_per_dispatch(state.params, n),
        rule=rule,
    )

    names = history_names(model, val_data is not None, state.opt_state)
    history: dict = {}
    epoch, best_epoch, stopped_early = 0, 0, False
    while epoch < config.epochs and not stopped_early:
        start = time.perf_counter()
        n_epochs = np.int32(config.epochs - epoch)
        state, best_params, packed = run_epochs(state, best_params, train_data, val_data, n_epochs, numbers, **static)
        chunk = Chunk.unpack(packed, names)
        valid = chunk.diverged_epoch if chunk.diverged_epoch >= 0 else chunk.done
        seconds = (time.perf_counter() - start) / max(1, chunk.done)
        for i in range(valid):
            epoch += 1
            row = {"epoch": epoch, **{name: float(values[i]) for name, values in chunk.rows.items()}, "time_s": seconds}
            for key, value in row.items():
                history.setdefault(key, []).append(value)
            best_epoch = epoch if chunk.improved[i] else best_epoch
            if any(callback(epoch, dict(row)) is True for callback in callbacks):
                stopped_early = True
        if chunk.diverged_epoch >= 0:
            raise TrainingDivergedError(epoch + 1, chunk.diverged_step, state.params, history)
        stopped_early = stopped_early or chunk.stopped

    params = best_params if restore and best_epoch > 0 else state.params
    returned_epoch = best_epoch if restore and best_epoch > 0 else epoch
    return TrainResult(
        params, history, config, model, data.task, data.standardizer, state, returned_epoch, stopped_early
    )


def epochs_per_dispatch(params: Params, n_samples: int, *, flops_per_dispatch: float = 2e10, most: int = 100) -> int:
    """How many epochs one compiled loop runs when no callback needs the host after each epoch.

    About ``flops_per_dispatch`` of training work (6 × weights × samples per epoch) per dispatch:
    a large epoch runs alone (per-epoch history and progress as before), a tiny one (iris: 120
    rows) shares its dispatch with up to ``most`` epochs, where the host round trip (about 0.4 ms
    on CPU) would otherwise cost more than the epoch itself.
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


def _train_signature() -> inspect.Signature:
    base = inspect.signature(train)
    settings = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for f in dataclasses.fields(TrainConfig)
    ]
    params = [p for p in base.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    return base.replace(parameters=params + settings)


train.__signature__ = _train_signature()  # help(train) lists every TrainConfig keyword
