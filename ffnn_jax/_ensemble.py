"""``train(..., ensemble=k)``: k networks from k seeds trained in one program, predicting together.

The members are a :func:`ffnn_jax.sweep` over ``seed`` (seed, seed+1, ..., seed+k−1: each its own
initialisation and data order; the validation split stays the one of ``seed``, shared by all).
The ensemble averages the members' class probabilities (classification) or outputs (regression).
"""

import dataclasses
from typing import List

import numpy as np

from ._config import TrainConfig
from ._data import split_indices
from ._errors import check_positive_int
from ._inference import TrainedModel
from ._labels import encode_labels, encode_with
from ._losses import l2_penalty, per_example_loss
from ._setup import reads_class_labels
from ._sparse import is_scipy_sparse
from ._step import r2_score
from ._sweep_checkpoint import SweepInterrupted


@dataclasses.dataclass(frozen=True)
class EnsembleResult:
    """What ``train(..., ensemble=k)`` returns: the members and their averaged predictions.

    ``scores``: ``{"members": [metrics per member], "ensemble": metrics}`` on the validation data
    when there is any, else on the training data (``scored_on`` says which); metrics are
    ``{"loss", "accuracy"}`` or ``{"loss", "r2"}``, the ensemble's computed from its averaged output.
    """

    members: List[TrainedModel]  # TrainResult objects from train(); TrainedModel ones from load_model
    scores: dict
    scored_on: str

    def save(self, path: str, *, overwrite: bool = False) -> None:
        """Writes the ensemble to one ``.npz`` that :func:`ffnn_jax.load_model` reopens as an
        ensemble predicting exactly as this one; an existing file is kept unless ``overwrite``."""
        from ._saved_model import save_ensemble

        save_ensemble(path, self, overwrite=overwrite)

    @property
    def task(self) -> str:
        return self.members[0].task

    @property
    def classes(self):
        return self.members[0].classes

    @property
    def layer_sizes(self):
        return self.members[0].layer_sizes

    @property
    def feature_names(self):
        return self.members[0].feature_names

    @property
    def l2(self) -> float:
        """The members' mean λ of the L2 term in ``evaluate``'s loss."""
        return float(np.mean([member.l2 for member in self.members]))

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
        """The ensemble's ``{"loss", "accuracy"}`` or ``{"loss", "r2"}``, as a member's ``evaluate``
        computes them (the same loss, with the members' mean L2 term), on the averaged prediction:
        the mean probabilities (classification) or mean outputs (regression; rates for poisson).
        One member scores exactly as that member does."""
        loss = self.members[0].model.loss
        if self.task == "classification":
            p = np.clip(self.predict_proba(x).astype(np.float64), 1e-12, 1 - 1e-12)
            if loss == "binary_cross_entropy":
                target = np.asarray(y).reshape(p.shape)
                scores, accuracy = np.log(p) - np.log1p(-p), np.mean((p > 0.5) == (target > 0.5))
            else:
                one_hot = np.ndim(y) == 2 and np.shape(y)[1] == p.shape[1]
                target = (
                    np.asarray(y)
                    if one_hot
                    else encode_with(self.classes, y, "y")
                    if self.classes is not None
                    else np.asarray(y).reshape(-1)
                )
                codes = np.argmax(target, axis=1) if one_hot else target
                scores, accuracy = np.log(p), np.mean(np.argmax(p, axis=1) == codes)  # softmax(log p) = p
            data_loss = per_example_loss(scores.astype(np.float32), _floats(target), loss, classification=True)
            metric = {"accuracy": float(accuracy)}
        else:
            output = self._mean_output(x).astype(np.float64).reshape(len(x), -1)  # [n, outputs]
            target = np.asarray(y, np.float64).reshape(output.shape)
            scores = np.log(np.maximum(output, 1e-300)) if loss == "poisson" else output  # the members' log link
            data_loss = per_example_loss(
                scores.astype(np.float32), target.astype(np.float32), loss, classification=False
            )
            metric = {"r2": float(r2_score(target, output))}
        penalty = np.mean([member.l2 * float(l2_penalty(member.params)) for member in self.members])
        return {"loss": float(np.mean(data_loss)) + float(penalty), **metric}


def _rows(values, rows: np.ndarray):
    """``values[rows]``, keeping a DataFrame or Series (its names, a categorical's labels) and a sparse matrix."""
    if hasattr(values, "iloc"):
        return values.iloc[rows]
    return values[rows] if is_scipy_sparse(values) else np.asarray(values)[rows]


def _floats(target: np.ndarray) -> np.ndarray:
    """Float targets as float32 (the losses' dtype); integer labels as they are."""
    return target.astype(np.float32) if target.dtype.kind == "f" else target


def train_ensemble(x, y, k: int, *, validation_data=None, sample_weight=None, checkpoint_dir=None,
                   checkpoint_every: int = 1, keep_checkpoints: int = 2, resume: bool = False,
                   **settings) -> EnsembleResult:  # fmt: skip
    """k members from seeds ``seed .. seed+k−1`` in one program (see the module docstring); with
    ``checkpoint_dir`` (and ``checkpoint_every``, ``keep_checkpoints``, ``resume``) saved as a sweep."""
    from ._sweep import sweep  # _sweep imports _train, which calls this module lazily

    check_positive_int("ensemble", k)
    seed = settings.pop("seed", 0)
    fraction = settings.pop("validation_fraction", 0.0)
    if fraction and validation_data is None:  # one held-out set for all members, split as train(seed=seed) would
        stratify = encode_labels(y, "y")[0] if reads_class_labels(TrainConfig(**settings), y) else None
        keep, held = split_indices(np.shape(y)[0], fraction, seed=seed, stratify=stratify)
        validation_data = (_rows(x, held), _rows(y, held))
        x, y = _rows(x, keep), _rows(y, keep)
        sample_weight = None if sample_weight is None else _rows(sample_weight, keep)
    grid = {"seed": [seed + i for i in range(k)]}
    try:
        result = sweep(x, y, grid=grid, validation_data=validation_data, sample_weight=sample_weight,
                       checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                       keep_checkpoints=keep_checkpoints, resume=resume, **settings)  # fmt: skip
    except SweepInterrupted as interrupt:
        raise SweepInterrupted(interrupt.signal, interrupt.checkpoint_dir, command="train(..., ensemble=k)") from None
    members = result.results
    scored_on = "validation" if validation_data is not None else "train"
    x_score, y_score = validation_data if validation_data is not None else (x, y)
    ensemble = EnsembleResult(members, {}, scored_on)
    scores = {"members": [member.evaluate(x_score, y_score) for member in members]}
    scores["ensemble"] = ensemble.evaluate(x_score, y_score)
    return dataclasses.replace(ensemble, scores=scores)
