"""``TrainConfig``: every setting of a training run, validated once when it is built."""

import dataclasses
import difflib
from typing import Any, Callable, Iterable, Optional, Tuple

import numpy as np
import optax

from ._errors import check_choice, check_non_negative_int, check_positive_int, check_real
from ._losses import canonical_loss
from ._model import resolve_activation
from ._optim import OPTIMIZERS, SCHEDULES
from ._params import WEIGHT_INITS
from ._stopping import RULES


TASKS = ("auto", "classification", "regression")
OUTPUT_BIASES = ("auto", "zeros")
MONITORS = ("auto", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_r2")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`ffnn_jax.train`; invalid values raise in ``__post_init__``."""

    hidden_sizes: Tuple[int, ...] = (100,)
    activation: str | Callable = "relu"
    loss: Optional[str] = None  # None: cross_entropy for classification, squared_error for regression
    task: str = "auto"  # "auto" infers from y: int labels -> classification, floats -> regression
    n_classes: Optional[int] = None  # None: the classes are the sorted distinct labels of y; k: labels 0..k-1
    weight_init: str | Callable = "xavier"
    # "auto": a regression's last bias starts at the targets' (weighted) mean (its log for poisson),
    # the best constant prediction; classification's stays 0. "zeros": every bias starts at 0.
    output_bias: str = "auto"
    optimizer: Any = "sgd"  # a name from OPTIMIZERS or an optax.GradientTransformation
    learning_rate: float = 0.01
    momentum: float = 0.9
    beta: float = 0.9  # RMSProp decay
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    weight_decay: float = 0.0  # λ of the L2 term (λ/2)Σ‖W‖²; decoupled decay for "adamw"
    dropout: float | Tuple[float, ...] = 0.0  # drop rate of hidden units while training: one for all, or per layer
    class_weight: Optional[Any] = None  # classification: "balanced" or {label: weight}, multiplies sample_weight
    lr_schedule: str = "constant"
    lr_decay_rate: float = 0.1  # decay factor r (the power for "invscaling")
    lr_decay_steps: Optional[int] = None  # None: the whole run (step schedule: a third of it)
    warmup_steps: int = 0
    max_grad_norm: Optional[float] = None  # global-norm clipping; None: off
    reduce_lr_factor: Optional[float] = None  # multiply η by this on a plateau of reduce_lr_patience epochs
    reduce_lr_patience: int = 2
    min_learning_rate: float = 0.0  # a plateau never takes η below this ("sklearn" rule: at it, training stops)
    plateau_rule: str = "keras"  # "keras" or "sklearn": how improvements are counted (see ffnn_jax._stopping)
    epochs: int = 100
    batch_size: Optional[int] = 32  # None: full-batch gradient descent
    shuffle: bool = True  # a fresh permutation of the training set every epoch
    seed: int = 0
    validation_fraction: float = 0.0  # held out (stratified) when validation_data is None
    early_stopping: bool = False
    patience: int = 10  # epochs without improvement > min_delta before stopping
    min_delta: float = 1e-4
    monitor: str = "auto"  # what early stopping and plateaus watch; "auto": val_loss, else train_loss
    stopping_threshold: Optional[float] = None  # stop once `monitor` reaches it (>= for accuracy/R², <= for losses)
    restore_best: bool = True  # with early stopping: return the best epoch's params
    standardize: bool = False  # scale x to zero mean, unit variance (kept for predict)
    dtype: str = "float32"  # params, optimizer state and the loss
    compute_dtype: Optional[str] = None  # "bfloat16"/"float16": mixed-precision matmuls, float32 master weights

    def __post_init__(self):
        if isinstance(self.hidden_sizes, (str, bytes)) or not hasattr(self.hidden_sizes, "__iter__"):
            raise TypeError(f"`hidden_sizes` must be a sequence of positive integers, got {self.hidden_sizes!r}")
        sizes = tuple(self.hidden_sizes)
        for i, size in enumerate(sizes):
            check_positive_int(f"hidden_sizes[{i}]", size)
        object.__setattr__(self, "hidden_sizes", tuple(int(s) for s in sizes))
        resolve_activation(self.activation)
        if self.loss is not None:
            object.__setattr__(self, "loss", canonical_loss(self.loss))
        object.__setattr__(self, "task", check_choice("task", self.task, TASKS))
        check_positive_int("n_classes", self.n_classes, allow_none=True)
        if not callable(self.weight_init):
            object.__setattr__(self, "weight_init", check_choice("weight_init", self.weight_init, WEIGHT_INITS))
        object.__setattr__(self, "output_bias", check_choice("output_bias", self.output_bias, OUTPUT_BIASES))
        if not isinstance(self.optimizer, optax.GradientTransformation):
            if not isinstance(self.optimizer, str):
                raise TypeError(
                    f"`optimizer` must be one of {list(OPTIMIZERS)} or an optax.GradientTransformation, "
                    f"got {self.optimizer!r}"
                )
            object.__setattr__(self, "optimizer", check_choice("optimizer", self.optimizer, OPTIMIZERS))
        check_real("learning_rate", self.learning_rate, low=0.0, low_inclusive=False)
        for name in ("momentum", "beta", "beta1", "beta2"):
            check_real(name, getattr(self, name), low=0.0, high=1.0, high_inclusive=False)
        check_real("epsilon", self.epsilon, low=0.0, low_inclusive=False)
        check_real("weight_decay", self.weight_decay, low=0.0)
        rates = self.dropout if isinstance(self.dropout, (tuple, list)) else (self.dropout,) * len(sizes)
        if len(rates) != len(sizes):
            raise ValueError(
                f"`dropout` must be one rate or one per hidden layer ({len(sizes)}), got {len(rates)}: {self.dropout!r}"
            )
        for i, rate in enumerate(rates):
            check_real(
                f"dropout[{i}]" if isinstance(self.dropout, (tuple, list)) else "dropout",
                rate,
                low=0.0,
                high=1.0,
                high_inclusive=False,
            )
        object.__setattr__(self, "dropout", tuple(float(rate) for rate in rates))
        if self.class_weight is not None and not (
            self.class_weight == "balanced" or isinstance(self.class_weight, dict)
        ):
            raise ValueError(
                f"`class_weight` must be None, 'balanced' or a dict {{label: weight}}, got {self.class_weight!r}"
            )
        if isinstance(self.class_weight, dict):
            for label, weight in self.class_weight.items():
                check_real(f"class_weight[{label!r}]", weight, low=0.0)
        object.__setattr__(self, "lr_schedule", check_choice("lr_schedule", self.lr_schedule, SCHEDULES))
        check_real("lr_decay_rate", self.lr_decay_rate, low=0.0)
        check_positive_int("lr_decay_steps", self.lr_decay_steps, allow_none=True)
        check_non_negative_int("warmup_steps", self.warmup_steps)
        if self.max_grad_norm is not None:
            check_real("max_grad_norm", self.max_grad_norm, low=0.0, low_inclusive=False)
        if self.reduce_lr_factor is not None:
            check_real(
                "reduce_lr_factor", self.reduce_lr_factor, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
            )
            if not isinstance(self.optimizer, str):
                raise ValueError("`reduce_lr_factor` needs a named optimizer (its learning rate lives in the state)")
        check_non_negative_int("reduce_lr_patience", self.reduce_lr_patience)
        check_real("min_learning_rate", self.min_learning_rate, low=0.0)
        object.__setattr__(self, "plateau_rule", check_choice("plateau_rule", self.plateau_rule, RULES))
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size, allow_none=True)
        check_non_negative_int("seed", self.seed)
        if self.seed >= 2**63:
            raise ValueError(f"`seed` must be < 2**63 (a 64-bit PRNG seed), got {self.seed}")
        check_real("validation_fraction", self.validation_fraction, low=0.0, high=1.0, high_inclusive=False)
        check_non_negative_int("patience", self.patience)
        check_real("min_delta", self.min_delta, low=0.0)
        object.__setattr__(self, "monitor", check_choice("monitor", self.monitor, MONITORS))
        if self.stopping_threshold is not None:
            check_real("stopping_threshold", self.stopping_threshold)
        object.__setattr__(self, "dtype", check_choice("dtype", self.dtype, ("float32", "float64")))
        if self.compute_dtype is not None:
            choice = check_choice("compute_dtype", self.compute_dtype, ("bfloat16", "float16", "float32", "float64"))
            object.__setattr__(self, "compute_dtype", None if choice == self.dtype else choice)
        for name in ("shuffle", "early_stopping", "restore_best", "standardize"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be a bool, got {getattr(self, name)!r}")

    @property
    def loss_l2(self) -> float:
        """λ of the (λ/2)Σ‖W‖² term in the loss: ``weight_decay``, or 0 for adamw, whose decay is
        decoupled from the gradient."""
        return 0.0 if self.optimizer == "adamw" else self.weight_decay

    def to_dict(self) -> dict:
        """JSON-friendly view (callables and transformations by name)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if callable(value) or isinstance(value, optax.GradientTransformation):
                out[key] = getattr(value, "__name__", type(value).__name__)
        out["hidden_sizes"] = list(self.hidden_sizes)
        out["dropout"] = list(self.dropout)
        if isinstance(self.class_weight, dict):  # JSON keys are strings; labels may be ints or bools
            out["class_weight"] = {str(np.asarray(k).item()): float(v) for k, v in self.class_weight.items()}
        return out


# What users of Keras, scikit-learn and PyTorch loops call these settings.
_OTHER_NAMES = {
    "lr": "learning_rate",
    "learning_rate_init": "learning_rate",
    "validation_split": "validation_fraction",
    "hidden_layer_sizes": "hidden_sizes",
    "max_iter": "epochs",
    "n_epochs": "epochs",
    "num_epochs": "epochs",
    "random_state": "seed",
    "alpha": "weight_decay",
    "l2": "weight_decay",
    "solver": "optimizer",
    "beta_1": "beta1",
    "beta_2": "beta2",
    "eps": "epsilon",
    "n_iter_no_change": "patience",
    "tol": "min_delta",
    "clipnorm": "max_grad_norm",
    "activation_function": "activation",
}


def setting_meant(name: str, also: Iterable[str] = ()) -> Optional[str]:
    """The :class:`TrainConfig` field (or one of ``also``) that ``name`` most likely means: a Keras or
    scikit-learn name for it, or a near spelling; None when nothing is close."""
    names = [field.name for field in dataclasses.fields(TrainConfig)]
    return _OTHER_NAMES.get(name) or next(iter(difflib.get_close_matches(name, [*names, *also], n=1)), None)


def config_from(settings: dict, caller: str = "train()", also: Iterable[str] = ()) -> TrainConfig:
    """``TrainConfig(**settings)``; a name that is no setting is a TypeError that names ``caller``
    and the setting meant (``also``: the caller's own keyword arguments, offered too)."""
    names = [field.name for field in dataclasses.fields(TrainConfig)]
    unknown = [name for name in settings if name not in names]
    if unknown:
        meant = setting_meant(unknown[0], also)
        hint = f"; did you mean {meant!r}?" if meant else f"; the settings are {', '.join(names)}"
        raise TypeError(f"{caller} got an unexpected keyword argument {unknown[0]!r}{hint}")
    return TrainConfig(**settings)
