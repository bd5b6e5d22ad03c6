"""Opening a saved run for prediction: :func:`load_model` on a run folder, params file or checkpoint.

What predicting needs besides the params (activation, loss, task, the standardizer fitted on the
training data) is written beside them as ``model`` metadata by :func:`model_metadata`, in the CLI's
``params.npz`` and in every run checkpoint, so a reloaded model predicts exactly as the trained one.
"""

import os
import re
from typing import Optional

import numpy as np

from ._checkpoint import read_params
from ._data import Standardizer
from ._inference import TrainedModel
from ._labels import classes_from_json, classes_to_json
from ._model import ACTIVATIONS
from ._run_checkpoint import _NAME, Checkpoint, decode, newest_valid
from ._step import ModelSpec
from ._types import LayerParams


def model_metadata(
    config_dict: dict, task: str, loss: str, standardizer: Optional[Standardizer], classes: Optional[np.ndarray]
) -> dict:
    """JSON description of a trained network (what :func:`load_model` needs besides the params)."""
    return {
        "classes": classes_to_json(classes),
        "activation": config_dict["activation"],
        "loss": loss,
        "task": task,
        "compute_dtype": config_dict["compute_dtype"],
        "l2": 0.0 if config_dict["optimizer"] == "adamw" else float(config_dict["weight_decay"]),
        "standardizer": None
        if standardizer is None
        else {"mean": np.asarray(standardizer.mean).tolist(), "scale": np.asarray(standardizer.scale).tolist()},
    }


def _from_metadata(params, meta: dict, where: str) -> TrainedModel:
    if not isinstance(meta, dict) or "task" not in meta or "loss" not in meta:
        raise ValueError(
            f"{where!r} does not say how to predict (no task/loss/standardizer metadata); it was not written "
            "by ffnn-jax train or train(checkpoint_dir=...). Use ffnn_jax.predict(params, x, ...) and apply "
            "the training data's scaling yourself"
        )
    activation = meta["activation"]
    if activation not in ACTIVATIONS:
        raise ValueError(f"{where!r} was trained with a custom activation {activation!r}; it cannot be reopened")
    scaler = meta.get("standardizer")
    dtype = np.asarray(params[0].W).dtype
    standardizer = (
        None if scaler is None else Standardizer(np.asarray(scaler["mean"], dtype), np.asarray(scaler["scale"], dtype))
    )
    model = ModelSpec(activation, meta["loss"], meta["task"] == "classification", meta.get("compute_dtype"))
    classes = classes_from_json(meta.get("classes"))
    return TrainedModel(tuple(params), model, meta["task"], standardizer, float(meta.get("l2", 0.0)), classes)


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


def load_model(path: str) -> TrainedModel:
    """Opens a trained network for ``predict``, ``predict_proba`` and ``evaluate`` on raw inputs.

    ``path`` is a run folder of ``ffnn-jax train`` (its ``params.npz``, or while unfinished its
    newest checkpoint), a ``checkpoint_dir`` of :func:`ffnn_jax.train`, one checkpoint file, or
    a ``params.npz`` written with model metadata. The saved standardizer is applied to inputs.

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
    return _from_metadata(params, meta.get("model"), path)
