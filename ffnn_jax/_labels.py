"""Class labels as the user gives them (ints, strings, bools), encoded as 0..k−1 for the network.

The classes are the distinct labels, sorted (as scikit-learn's ``LabelEncoder`` orders them);
the network's output j is ``classes[j]``. A column of labels [n, 1] is labels, not a one-output
softmax.
"""

import numbers
from typing import Optional, Tuple

import numpy as np


# Under task="auto", integer targets with more distinct values than this (or more than 100 that
# are over half the rows, too few rows per class to learn) look like a regression.
MAX_AUTO_CLASSES = 1000


def _labels_array(y, name: str, *, fractions: bool = False) -> np.ndarray:
    """``y`` as a 1-D array of labels; floats must be whole numbers unless ``fractions`` (a known
    class such as 1.5) or ``y`` is a pandas categorical (whose values are the labels, whatever they are)."""
    fractions = fractions or str(getattr(y, "dtype", "")) == "category"
    try:
        y = np.asarray(y)
    except Exception as error:  # ragged lists and the like
        raise TypeError(f"`{name}` must be an array of class labels, could not convert it: {error}") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # a column of labels
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"`{name}` class labels must be a non-empty [n] or [n, 1] array, got shape {y.shape}")
    if y.dtype.kind == "O":
        if all(isinstance(v, str) for v in y):
            y = y.astype(str)
        elif all(isinstance(v, (bool, np.bool_)) for v in y):
            y = y.astype(bool)
        elif all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in y):
            y = y.astype(np.int64)  # ints held as objects (a pandas object column, list(...) into dtype=object)
        elif all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in y):
            y = y.astype(np.float64)  # then checked to be whole numbers below
        else:
            raise TypeError(f"`{name}` class labels must all be strings, all numbers or all bools, got a mix")
    if y.dtype.kind not in "biufUS":
        raise TypeError(f"`{name}` class labels must be ints, strings or bools, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError(f"`{name}` must be finite, got {int(np.sum(~np.isfinite(y)))} NaN/inf values")
        if not fractions and not np.all(y == np.round(y)):
            raise ValueError(f"`{name}` class labels must be integers, got non-integer floats (use task='regression'?)")
    return y


def plain_labels(y, name: str = "y") -> np.ndarray:
    """``np.asarray(y)``, where a pandas categorical of floats (whose dtype no longer says "labels"
    once it is an array) becomes int64 when its values are whole numbers; a categorical of other
    floats is an error naming what to pass instead."""
    array = np.asarray(y)
    if str(getattr(y, "dtype", "")) != "category" or array.dtype.kind != "f":
        return array
    if np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array.astype(np.int64)
    raise ValueError(
        f"`{name}` is a pandas categorical of non-integer floats; sweep() and train(ensemble=k) take class labels as "
        f"integers or strings: pass {name}.astype(str), or integer codes"
    )


def is_label_column(y) -> bool:
    """Whether ``y`` is [n] or [n, 1] (labels for a softmax), not one-hot or multi-output [n, k > 1]."""
    shape = np.shape(y)
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


def encode_labels(y, name: str = "y", *, n_classes: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """``(codes int32 [n], classes [k])`` with ``classes[codes] == y``.

    With ``n_classes`` the labels must already be the integers 0..n_classes−1 and the classes are
    exactly those (some may be absent from ``y``); otherwise the classes are y's distinct values.
    """
    y = _labels_array(y, name)
    if n_classes is not None:
        if y.dtype.kind not in "biuf" or y.min() < 0 or y.max() >= n_classes:
            raise ValueError(
                f"`{name}` must hold the integers 0..{n_classes - 1} when `n_classes`={n_classes} is given"
            )
        return y.astype(np.int32), np.arange(n_classes)
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"`{name}` has a single class ({classes[0].item()!r}): classification needs at least 2 classes "
            "(a one-output softmax would always predict it)"
        )
    if classes.dtype.kind == "f" and np.all(classes == np.round(classes)):  # 1.5 only from a categorical
        classes = classes.astype(np.int64)
    return codes.astype(np.int32).reshape(-1), classes


def encode_with(classes: np.ndarray, y, name: str) -> np.ndarray:
    """Codes of ``y`` among known ``classes``; labels never seen in training are an error naming them."""
    y = _labels_array(y, name, fractions=classes.dtype.kind == "f")
    if (classes.dtype.kind in "US") != (y.dtype.kind in "US"):
        raise ValueError(f"`{name}` holds labels that are not among the training classes {classes.tolist()}")
    if classes.dtype.kind in "iub" and y.dtype.kind == "f" and np.all(y == np.round(y)):  # 2.0 is class 2; 2.5 none
        y = y.astype(np.int64)
    index = np.searchsorted(classes, y)
    index = np.clip(index, 0, len(classes) - 1)
    unknown = classes[index] != y
    if np.any(unknown):
        raise ValueError(
            f"`{name}` holds labels that are not among the training classes {classes.tolist()}: "
            f"{np.unique(y[unknown]).tolist()[:10]}"
        )
    return index.astype(np.int32)


def classes_to_json(classes: Optional[np.ndarray]) -> Optional[dict]:
    return None if classes is None else {"values": classes.tolist(), "dtype": classes.dtype.str}


def classes_from_json(saved: Optional[dict]) -> Optional[np.ndarray]:
    return None if saved is None else np.asarray(saved["values"], dtype=np.dtype(saved["dtype"]))
