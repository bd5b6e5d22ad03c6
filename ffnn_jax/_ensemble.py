"""``train(..., ensemble=k)``: k networks from k seeds trained in one program, predicting together.

The members are a :func:`ffnn_jax.sweep` over ``seed`` (seed, seed+1, ..., seed+k−1: each its own
initialisation and data order; the validation split stays the one of ``seed``, shared by all).
The ensemble averages the members' class probabilities (classification) or outputs (regression).
"""

import dataclasses
from typing import List

import numpy as np

from ._data import split_indices
from ._errors import check_positive_int
from ._labels import encode_labels, encode_with, is_label_column
from ._train import TrainResult


@dataclasses.dataclass(frozen=True)
class EnsembleResult:
    """What ``train(..., ensemble=k)`` returns: the members and their averaged predictions.

    ``scores``: ``{"members": [metrics per member], "ensemble": metrics}`` on the validation data
    when there is any, else on the training data (``scored_on`` says which); metrics are
    ``{"loss", "accuracy"}`` or ``{"loss", "r2"}``, the ensemble's computed from its averaged output.
    """

    members: List[TrainResult]
    scores: dict
    scored_on: str

    @property
    def task(self) -> str:
        return self.members[0].task

    @property
    def classes(self):
        return self.members[0].classes

    def predict_proba(self, x) -> np.ndarray:
        """Mean of the members' class probabilities [n, k]."""
        return np.mean([member.predict_proba(x) for member in self.members], axis=0)

    def _mean_output(self, x) -> np.ndarray:
        return np.mean([member.predict(x) for member in self.members], axis=0)

    def predict(self, x) -> np.ndarray:
        """Labels of the mean probabilities (as given in training), or the mean output (regression)."""
        if self.task != "classification":
            return self._mean_output(x)
        if self.members[0].model.loss == "binary_cross_entropy":
            return (self.predict_proba(x) > 0.5).astype(np.int32)
        index = np.argmax(self.predict_proba(x), axis=-1)
        return index if self.classes is None else self.classes[index]

    def evaluate(self, x, y) -> dict:
        """The ensemble's ``{"loss", "accuracy"}`` (log-loss of the mean probabilities) or ``{"loss", "r2"}``."""
        if self.task == "classification" and self.members[0].model.loss == "cross_entropy":
            codes = encode_with(self.classes, y, "y") if self.classes is not None else np.asarray(y).reshape(-1)
            p = np.clip(self.predict_proba(x)[np.arange(len(codes)), codes], 1e-12, 1.0)
            return {
                "loss": float(-np.mean(np.log(p))),
                "accuracy": float(np.mean(np.argmax(self.predict_proba(x), -1) == codes)),
            }
        if self.task == "classification":
            target = np.asarray(y).reshape(len(x), -1)
            p = np.clip(self.predict_proba(x).reshape(target.shape), 1e-12, 1 - 1e-12)
            loss = -np.mean(target * np.log(p) + (1 - target) * np.log(1 - p))
            return {"loss": float(loss), "accuracy": float(np.mean((p > 0.5) == (target > 0.5)))}
        target = np.asarray(y, np.float64).reshape(len(x), -1)
        output = self._mean_output(x).reshape(target.shape)
        residual, total = np.sum((target - output) ** 2), np.sum((target - target.mean(axis=0)) ** 2)
        return {
            "loss": float(0.5 * np.mean(np.sum((target - output) ** 2, axis=1))),
            "r2": float(1 - residual / max(total, 1e-300)),
        }


def train_ensemble(x, y, k: int, *, validation_data=None, sample_weight=None, **settings) -> EnsembleResult:
    """k members from seeds ``seed .. seed+k−1`` in one program (see the module docstring)."""
    from ._sweep import sweep  # _sweep imports _train, which calls this module lazily

    check_positive_int("ensemble", k)
    seed = settings.pop("seed", 0)
    fraction = settings.pop("validation_fraction", 0.0)
    if fraction and validation_data is None:  # one held-out set for all members, split as train(seed=seed) would
        x, y = np.asarray(x), np.asarray(y)
        labels = is_label_column(y) and y.dtype.kind in "biuUSO" and settings.get("task", "auto") != "regression"
        stratify = encode_labels(y, "y")[0] if labels else None
        keep, held = split_indices(len(x), fraction, seed=seed, stratify=stratify)
        validation_data = (x[held], y[held])
        x, y = x[keep], y[keep]
        sample_weight = None if sample_weight is None else np.asarray(sample_weight)[keep]
    result = sweep(x, y, grid={"seed": [seed + i for i in range(k)]}, validation_data=validation_data,
                   sample_weight=sample_weight, **settings)  # fmt: skip
    members = result.results
    scored_on = "validation" if validation_data is not None else "train"
    x_score, y_score = validation_data if validation_data is not None else (x, y)
    ensemble = EnsembleResult(members, {}, scored_on)
    scores = {"members": [member.evaluate(x_score, y_score) for member in members]}
    scores["ensemble"] = ensemble.evaluate(x_score, y_score)
    return dataclasses.replace(ensemble, scores=scores)
