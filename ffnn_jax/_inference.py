"""Using trained parameters: class predictions, probabilities and evaluation."""

import contextlib
import dataclasses
import functools
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ._buckets import is_bucketed, padded, placed_rows
from ._data import Standardizer, check_feature_names, default_loss, infer_task, validate_x, validate_y
from ._gradcheck import x64_scope
from ._labels import encode_with
from ._losses import canonical_loss
from ._model import forward
from ._params import check_params, layer_sizes_of
from ._step import ModelSpec, evaluate_arrays
from ._types import Activation, Array, Params


def predict_proba(params: Params, x: Array, *, activation: Activation = "relu", multi_label: bool = False) -> Array:
    """Class probabilities: softmax over scores ``[n, k]``, or sigmoids for multi-label/binary
    sigmoid outputs (``multi_label=True``, as trained with ``binary_cross_entropy``)."""
    x = validate_x(x, "x", n_features=layer_sizes_of(params)[0], dtype=params[0].W.dtype)
    return _outputs(params, x, activation=activation, kind="sigmoid" if multi_label else "softmax")


def predict(
    params: Params,
    x: Array,
    *,
    activation: Activation = "relu",
    task: str = "classification",
    multi_label: bool = False,
    loss: Optional[str] = None,
) -> Array:
    """Predictions for ``x`` [n, d]: int labels [n] (argmax of scores) for classification,
    0/1 [n, k] (squeezed to [n] for one output) for multi-label, raw outputs for regression
    (squeezed to [n] for one output)."""
    x = validate_x(x, "x", n_features=layer_sizes_of(params)[0], dtype=params[0].W.dtype)
    if task == "regression":
        poisson = loss is not None and canonical_loss(loss) == "poisson"
        return _outputs(params, x, activation=activation, kind="mean_exp" if poisson else "mean")
    return _outputs(params, x, activation=activation, kind="multi_label" if multi_label else "label")


@functools.partial(jax.jit, static_argnames=("activation", "kind"))
def _outputs(params: Params, x: Array, *, activation: Activation, kind: str) -> Array:
    """What :func:`predict` / :func:`predict_proba` return, as one compiled program (not an op at a time)."""
    scores = forward(params, x, activation=activation)
    if kind == "softmax":
        return jax.nn.softmax(scores)
    if kind == "sigmoid":
        return jax.nn.sigmoid(scores)
    if kind in ("mean", "mean_exp"):
        mean = jnp.exp(scores) if kind == "mean_exp" else scores  # the log link's mean
        return mean[:, 0] if mean.shape[1] == 1 else mean
    if kind == "multi_label":
        labels = (scores > 0).astype(jnp.int32)
        return labels[:, 0] if labels.shape[1] == 1 else labels
    return jnp.argmax(scores, axis=-1).astype(jnp.int32)


def evaluate(
    params: Params,
    x: Array,
    y: Array,
    *,
    activation: Activation = "relu",
    loss: Optional[str] = None,
    weight_decay: float = 0.0,
    task: str = "auto",
) -> dict:
    """Loss (with the L2 term when ``weight_decay`` > 0) and accuracy, or R² for regression.

    Returns:
      ``{"loss": float, "accuracy": float}`` or ``{"loss": float, "r2": float}``.
    """
    check_params(params)
    dtype = params[0].W.dtype
    x = validate_x(x, "x", n_features=layer_sizes_of(params)[0], dtype=dtype)
    loss = None if loss is None else canonical_loss(loss)
    task = infer_task(y, loss) if task == "auto" else task
    loss = loss or default_loss(task, y)
    n_out = layer_sizes_of(params)[-1]
    y = validate_y(
        y,
        "y",
        n_samples=len(x),
        task=task,
        n_classes=n_out if loss != "binary_cross_entropy" else None,
        multi_label=loss == "binary_cross_entropy",
        dtype=dtype,
    )
    if y.ndim == 2 and y.shape[1] != n_out:
        raise ValueError(f"`y` has {y.shape[1]} columns, but the network has {n_out} outputs")
    if task == "regression" and y.ndim == 1 and n_out != 1:
        raise ValueError(
            f"`y` holds one regression target per row, but the network has {n_out} outputs: pass targets "
            f"[n, {n_out}], or class labels as integers (or task='classification') for a classifier"
        )
    model = ModelSpec(activation, loss, task == "classification")
    rows = None
    if is_bucketed(x) and isinstance(y, np.ndarray):  # sets of nearby sizes share one program
        rows, size = np.int32(len(x)), placed_rows(x)
        x, y = padded(x, size), padded(y, size)
    metrics = evaluate_arrays(params, x, y, jax.device_put(np.float32(weight_decay)), rows, model=model)
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A trained network with what predicting needs: params, the model spec, task and scaling.

    What :func:`ffnn_jax.load_model` returns, and the base of :class:`ffnn_jax.TrainResult`. Its
    methods take raw inputs: the saved standardizer is applied before the network.
    """

    params: Params
    model: ModelSpec
    task: str  # "classification" or "regression"
    standardizer: Optional[Standardizer]  # applied to x before the network (standardize=True)
    l2: float  # λ of the L2 term that `evaluate` adds to the loss (0 for adamw's decoupled decay)
    classes: Optional[np.ndarray]  # [k] labels as given in training (output j is classes[j]); None: indices
    # a DataFrame's column names in training (inputs with other columns are refused); None: unnamed
    feature_names: Optional[Tuple[str, ...]] = dataclasses.field(default=None, kw_only=True)

    def _single_label(self) -> bool:
        return self.classes is not None and self.task == "classification" and self.model.loss != "binary_cross_entropy"

    def _dtype_scope(self):
        return x64_scope() if self.params[0].W.dtype == np.float64 else contextlib.nullcontext()

    @property
    def layer_sizes(self):
        return layer_sizes_of(self.params)

    def _inputs(self, x):
        check_feature_names(x, self.feature_names)
        x = validate_x(x, "x", n_features=self.layer_sizes[0], dtype=self.params[0].W.dtype)
        return x if self.standardizer is None else self.standardizer.apply(x)

    def _padded_inputs(self, x) -> Tuple[Array, int]:
        """:meth:`_inputs` padded to their bucket (:mod:`ffnn_jax._buckets`) and their real rows:
        inputs of nearby sizes (a cross-validation's held-out folds) share one compiled program."""
        x = self._inputs(x)
        return padded(x, placed_rows(x)) if is_bucketed(x) else x, x.shape[0]

    def predict(self, x) -> np.ndarray:
        """Labels [n] as given in training (classification), 0/1 [n, k] (multi-label) or outputs (regression)."""
        multi_label = self.model.loss == "binary_cross_entropy"
        with self._dtype_scope():
            x, n = self._padded_inputs(x)
            labels = predict(
                self.params, x, activation=self.model.activation, task=self.task, multi_label=multi_label,
                loss=self.model.loss,
            )  # fmt: skip
            labels = np.asarray(labels)[:n]
        return self.classes[labels] if self._single_label() else labels

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities [n, k], columns in the order of ``classes`` (softmax, or sigmoids for
        binary_cross_entropy)."""
        if self.task != "classification":
            raise ValueError("`predict_proba` needs a classification model; this one is a regression")
        multi_label = self.model.loss == "binary_cross_entropy"
        with self._dtype_scope():
            x, n = self._padded_inputs(x)
            proba = predict_proba(self.params, x, activation=self.model.activation, multi_label=multi_label)
            return np.asarray(proba)[:n]

    def save(self, path: str, *, overwrite: bool = False) -> None:
        """Writes the model to one ``.npz`` that :func:`ffnn_jax.load_model` reopens to predict
        exactly as this one (params, scaling, classes, activation, loss); see
        :func:`ffnn_jax._saved_model.save_model`. An existing file is kept unless ``overwrite``."""
        from ._saved_model import save_model  # it imports this module

        save_model(path, self, overwrite=overwrite)

    def evaluate(self, x, y) -> dict:
        """``{"loss", "accuracy"}`` (classification) or ``{"loss", "r2"}`` on raw inputs and labels as
        given (or one-hot rows [n, k], columns in the order of ``classes``)."""
        x = self._inputs(x)  # wrong features are named before the labels are read
        if self._single_label():
            rows = np.asarray(y)
            if rows.ndim == 2 and rows.shape[1] == len(self.classes) > 1:  # one-hot rows, checked as such
                y = np.argmax(validate_y(rows, "y", n_samples=len(rows), task="classification"), axis=1)
            else:
                y = encode_with(self.classes, y, "y")
        with self._dtype_scope():
            return evaluate(
                self.params,
                x,
                y,
                activation=self.model.activation,
                loss=self.model.loss,
                weight_decay=self.l2,
                task=self.task,
            )
