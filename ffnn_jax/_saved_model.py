"""Opening a saved run for prediction: :func:`load_model` on a run folder, params file or checkpoint.

What predicting needs besides the params (activation, loss, task, the standardizer fitted on the
training data) is written beside them as ``model`` metadata by :func:`model_metadata`, in the CLI's
``params.npz`` and in every run checkpoint, so a reloaded model predicts exactly as the trained one.
"""

import os
import re
from typing import Optional, Tuple, Union

import numpy as np

from ._checkpoint import read_params, save_params, save_stacked_params
from ._data import Standardizer
from ._ensemble import EnsembleResult
from ._inference import TrainedModel
from ._labels import classes_from_json, classes_to_json
from ._model import ACTIVATIONS
from ._run_checkpoint import _NAME, Checkpoint, decode, newest_valid
from ._step import ModelSpec
from ._types import LayerParams


def model_metadata(
    spec: ModelSpec,
    task: str,
    l2: float,
    standardizer: Optional[Standardizer],
    classes: Optional[np.ndarray],
    feature_names: Optional[Tuple[str, ...]] = None,
) -> dict:
    """JSON description of a trained network (what :func:`load_model` needs besides the params).
    A custom (callable) activation is recorded as ``{"custom": its name}``, which load_model refuses
    rather than guess a built-in of the same name."""
    activation = spec.activation
    return {
        "classes": classes_to_json(classes),
        # the name as load_model looks it up (names are given case-insensitively)
        "activation": activation.lower() if isinstance(activation, str) else {"custom": _name_of(activation)},
        "loss": spec.loss,
        "task": task,
        "compute_dtype": spec.compute_dtype,
        "l2": float(l2),
        "standardizer": None
        if standardizer is None
        else {"mean": np.asarray(standardizer.mean).tolist(), "scale": np.asarray(standardizer.scale).tolist()},
        "feature_names": None if feature_names is None else list(feature_names),
    }


def _name_of(function) -> str:
    return getattr(function, "__name__", type(function).__name__)


def save_model(path: str, model: TrainedModel, *, overwrite: bool = False) -> None:
    """Writes ``model`` (a :class:`TrainedModel` or :class:`ffnn_jax.TrainResult`) as one ``.npz``
    that :func:`load_model` reopens: the params with what predicting needs (activation, loss,
    task, standardizer, classes) and, for a train() result, its settings. The file is written
    atomically; an existing one is kept unless ``overwrite``.

    Raises:
      TypeError: ``model`` is not a TrainedModel.
      ValueError: the model has a custom (callable) activation, which a file cannot name.
      FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    save_params(path, model.params, metadata=_file_metadata(model, "model"), overwrite=overwrite)


def save_ensemble(path: str, ensemble, *, overwrite: bool = False) -> None:
    """Writes an :class:`ffnn_jax._ensemble.EnsembleResult` as one ``.npz`` (its members' params
    stacked [k, ...], the first member's model metadata, the members' seeds and the ensemble's
    scores) that :func:`load_model` reopens as an ensemble; raises as :func:`save_model` does."""
    first = ensemble.members[0]
    metadata = _file_metadata(first, "ensemble.members[0]")
    metadata["ensemble"] = {
        "scores": ensemble.scores,
        "scored_on": ensemble.scored_on,
        "seeds": [getattr(getattr(member, "config", None), "seed", None) for member in ensemble.members],
    }
    save_stacked_params(path, [member.params for member in ensemble.members], metadata=metadata, overwrite=overwrite)


def _file_metadata(model: TrainedModel, name: str) -> dict:
    """``{"model": ..., "config": ...}`` of a model to save, refused where a file cannot describe it."""
    if not isinstance(model, TrainedModel):
        raise TypeError(
            f"`{name}` must be a TrainedModel or TrainResult (what train() returns), got {type(model).__name__}"
        )
    activation = model.model.activation
    if callable(activation):
        raise ValueError(
            f"this model's activation {_name_of(activation)!r} is a custom function, which load_model could not "
            "rebuild; save its weights with ffnn_jax.save_params(path, model.params)"
        )
    config = getattr(model, "config", None)
    described = (model.model, model.task, model.l2, model.standardizer, model.classes, model.feature_names)
    metadata = {"model": model_metadata(*described)}
    if config is not None:
        metadata["config"] = config.to_dict()
    return metadata


def _from_metadata(params, meta: dict, where: str) -> TrainedModel:
    if not isinstance(meta, dict) or "task" not in meta or "loss" not in meta:
        raise ValueError(
            f"{where!r} does not say how to predict (no task/loss/standardizer metadata); it was not written "
            "by ffnn-jax train or train(checkpoint_dir=...). Use ffnn_jax.predict(params, x, ...) and apply "
            "the training data's scaling yourself"
        )
    activation = meta["activation"]
    if isinstance(activation, str):
        activation = activation.lower()  # files written before names were lower-cased hold e.g. 'ReLU'
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"{where!r} was trained with a custom activation {activation!r}; it cannot be reopened")
    scaler = meta.get("standardizer")
    dtype = np.asarray(params[0].W).dtype
    standardizer = (
        None if scaler is None else Standardizer(np.asarray(scaler["mean"], dtype), np.asarray(scaler["scale"], dtype))
    )
    model = ModelSpec(activation, meta["loss"], meta["task"] == "classification", meta.get("compute_dtype"))
    classes = classes_from_json(meta.get("classes"))
    names = meta.get("feature_names")
    return TrainedModel(
        tuple(params),
        model,
        meta["task"],
        standardizer,
        float(meta.get("l2", 0.0)),
        classes,
        feature_names=None if names is None else tuple(names),
    )


def _params_in_checkpoint(checkpoint: Checkpoint):
    """The params a finished run hands out (the best epoch's when tracked), from the named leaves."""
    arrays = {name: array for (name, _, _), array in zip(checkpoint.meta["leaves"], checkpoint.arrays)}

    def layers(prefix):
        found = {}
        for name, array in arrays.items():
            match = re.fullmatch(re.escape(prefix) + r"\[(\d+)\]\.(W|b)", name)
            if match:
                found.setdefault(int(match.group(1)), {})[match.group(2)] = array
        return tuple(LayerParams(W=found[i]["W"], b=found[i]["b"]) for i in sorted(found))

    best = layers(".best_params")
    return best if best and int(arrays[".best_epoch"]) > 0 else layers(".train.params")


def load_model(path: str) -> Union[TrainedModel, EnsembleResult]:
    """Opens a trained network for ``predict``, ``predict_proba`` and ``evaluate`` on raw inputs.

    ``path`` is a run folder of ``ffnn-jax train`` (its ``params.npz``, or while unfinished its
    newest checkpoint), a ``checkpoint_dir`` of :func:`ffnn_jax.train`, one checkpoint file, or
    a ``params.npz`` written with model metadata. The saved standardizer is applied to inputs. A file
    that ``EnsembleResult.save`` wrote (``train(..., ensemble=k)``) reopens as that ensemble, its
    members :class:`TrainedModel` objects.

    Raises:
      FileNotFoundError: nothing is at ``path``.
      ValueError: the file is not a model ffnn_jax can reopen (says why).
    """
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "params.npz")):
            return load_model(os.path.join(path, "params.npz"))
        for folder in (os.path.join(path, "checkpoints"), path):
            checkpoint = newest_valid(folder) if os.path.isdir(folder) else None
            if checkpoint is not None:
                return _from_metadata(_params_in_checkpoint(checkpoint), checkpoint.meta["about"]["model"], path)
        raise FileNotFoundError(f"`path` {path!r} holds no params.npz and no checkpoint")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`path` {path!r} does not exist")
    if _NAME.match(os.path.basename(path)):
        checkpoint = decode(path)
        return _from_metadata(_params_in_checkpoint(checkpoint), checkpoint.meta["about"]["model"], path)
    params, meta = read_params(path)
    if meta.get("members") is None:
        return _from_metadata(params, meta.get("model"), path)
    members = [
        _from_metadata(tuple(LayerParams(layer.W[j], layer.b[j]) for layer in params), meta.get("model"), path)
        for j in range(meta["members"])
    ]
    about = meta.get("ensemble") or {}
    return EnsembleResult(members, about.get("scores", {}), about.get("scored_on", "unknown"))
