"""Data: validation of user arrays, built-in offline datasets, file loaders, splits and scaling.

Everything here is NumPy on the host and runs before any tracing, so a bad input is reported
with the argument's name before anything is compiled.
"""

import csv
import gzip
import os
import struct
from importlib import resources
from typing import NamedTuple, Optional, Tuple

import numpy as np

from ._errors import check_real


class Dataset(NamedTuple):
    """Arrays of one dataset: ``x`` [n, d_in] float32, ``y`` [n] int labels or [n, d_out] floats."""

    x: np.ndarray
    y: np.ndarray


class Standardizer(NamedTuple):
    """Per-feature affine scaling ``(x - mean) / scale``; ``mean``, ``scale``: [d_in]."""

    mean: np.ndarray
    scale: np.ndarray

    def apply(self, x):
        return (x - self.mean) / self.scale


def fit_standardizer(x: np.ndarray) -> Standardizer:
    """Mean and standard deviation per column; constant columns get scale 1 (left centred)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return Standardizer(mean.astype(x.dtype), np.where(std > 0, std, 1.0).astype(x.dtype))


def _as_numeric_array(name: str, value) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists and the like
        raise TypeError(f"`{name}` must be a numeric array, could not convert it: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold real numbers (bool, int or float), got dtype {array.dtype}")
    return array


def validate_x(x, name: str = "x", *, n_features: Optional[int] = None, dtype=np.float32) -> np.ndarray:
    """Checks a feature matrix and returns it as ``dtype`` [n, d]."""
    x = _as_numeric_array(name, x)
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D [n_samples, n_features], got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"`{name}` must be non-empty, got shape {x.shape}")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"`{name}` must have {n_features} features (columns), got {x.shape[1]}")
    x = x.astype(dtype, copy=False)
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x)))
        raise ValueError(f"`{name}` must be finite, got {bad} NaN/inf values")
    return x


CLASSIFICATION_LOSSES = ("cross_entropy", "binary_cross_entropy")


def infer_task(y, loss: Optional[str] = None) -> str:
    """The task implied by a canonical ``loss`` name, else by y's dtype.

    Cross-entropies mean classes even for float targets (one-hot or 0/1 rows); Poisson targets
    are integer counts but a regression; otherwise integer, bool or string labels mean classification.
    """
    if loss in CLASSIFICATION_LOSSES:
        return "classification"
    if loss == "poisson":
        return "regression"
    return "classification" if np.asarray(y).dtype.kind in "biuUSO" else "regression"


def validate_y(
    y,
    name: str = "y",
    *,
    n_samples: int,
    task: str,
    n_classes: Optional[int] = None,
    multi_label: bool = False,
    dtype=np.float32,
) -> np.ndarray:
    """Checks targets: int labels in [0, n_classes) for classification, finite floats otherwise.

    Returns int32 labels [n], float one-hot/multi-label [n, k], or float targets [n] / [n, d].
    """
    y = _as_numeric_array(name, y)
    if y.ndim not in (1, 2) or y.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D [n] or 2-D [n, k] array, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"`x` and `{name}` must have the same number of samples, got {n_samples} and {y.shape[0]}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"`{name}` must be finite, got {int(np.sum(~np.isfinite(y)))} NaN/inf values")
    if task == "regression":
        return y.astype(dtype)
    if multi_label or y.ndim == 2:
        if not np.all((y == 0) | (y == 1)):
            raise ValueError(f"`{name}` as a 2-D classification target must hold only 0 and 1 (one-hot or multi-label)")
        return y.astype(dtype)
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise ValueError(f"`{name}` class labels must be integers, got non-integer floats (use task='regression'?)")
    if y.min() < 0:
        raise ValueError(f"`{name}` class labels must be >= 0, got {y.min()}")
    if n_classes is not None and y.max() >= n_classes:
        raise ValueError(f"`{name}` class labels must be < n_classes={n_classes}, got {int(y.max())}")
    return y.astype(np.int32)


def one_hot(labels: np.ndarray, n_classes: int, dtype=np.float32) -> np.ndarray:
    """[n] int labels -> [n, n_classes] one-hot rows."""
    return np.eye(n_classes, dtype=dtype)[np.asarray(labels)]


def split_indices(n: int, fraction: float, *, seed: int, stratify: Optional[np.ndarray] = None):
    """Returns (keep, held_out) index arrays; ``held_out`` has ⌈fraction·n⌉ rows (≥ 1).

    With ``stratify`` (labels [n]) each class contributes in proportion to its size (every class
    with at least 2 samples keeps at least one in ``keep``). Deterministic for a given seed.
    """
    fraction = check_real("validation_fraction", fraction, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    rng = np.random.default_rng(seed)
    n_held = max(1, int(np.ceil(fraction * n)))
    if n_held >= n:
        raise ValueError(f"`validation_fraction`={fraction} leaves no training samples out of {n}")
    if stratify is None or stratify.ndim != 1:
        order = rng.permutation(n)
        return np.sort(order[n_held:]), np.sort(order[:n_held])
    held = []
    for label in np.unique(stratify):
        members = rng.permutation(np.flatnonzero(stratify == label))
        take = int(round(fraction * len(members)))
        held.append(members[: min(take, len(members) - 1)])
    held = np.concatenate(held)
    mask = np.zeros(n, bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _embedded(name: str) -> Dataset:
    with resources.files("ffnn_jax.datasets").joinpath(f"{name}.npz").open("rb") as f:
        arrays = np.load(f, allow_pickle=False)
        return Dataset(arrays["x"], arrays["y"])


def load_digits() -> Dataset:
    """scikit-learn's 8×8 digits (1797 samples, 10 classes), pixels scaled to [0, 1]; offline."""
    x, y = _embedded("digits")
    return Dataset(x.astype(np.float32) / 16.0, y.astype(np.int32))


def load_diabetes() -> Dataset:
    """The diabetes regression set (442 samples, 10 raw features, float target); offline."""
    x, y = _embedded("diabetes")
    return Dataset(x.astype(np.float32), y.astype(np.float32))


def _open_maybe_gzip(path: str):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_idx(path: str) -> np.ndarray:
    """Reads an IDX file (the MNIST format), plain or gzip-compressed, into an array."""
    with _open_maybe_gzip(path) as f:
        header = f.read(4)
        if len(header) != 4 or header[:2] != b"\x00\x00" or header[2] not in _IDX_DTYPES:
            raise ValueError(f"`path` {path!r} is not an IDX file (bad magic number {header!r})")
        ndim = header[3]
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=_IDX_DTYPES[header[2]])
    if data.size != int(np.prod(shape)):
        raise ValueError(f"IDX file {path!r} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_mnist(directory: str, split: str = "train") -> Dataset:
    """MNIST or Fashion-MNIST from the four standard IDX files in ``directory`` (plain or .gz).

    Nothing is downloaded: put the files there yourself. Pixels are scaled to [0, 1] and
    flattened to [n, 784].
    """
    if split not in _MNIST_FILES:
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}")
    found = []
    for stem in _MNIST_FILES[split]:
        candidates = [os.path.join(directory, stem + suffix) for suffix in ("", ".gz")]
        existing = [c for c in candidates if os.path.exists(c)]
        if not existing:
            raise FileNotFoundError(
                f"MNIST-format file {stem}[.gz] not found in {directory!r}; ffnn_jax downloads nothing, "
                "place the four IDX files there"
            )
        found.append(existing[0])
    images, labels = load_idx(found[0]), load_idx(found[1])
    return Dataset(images.reshape(len(images), -1).astype(np.float32) / 255.0, labels.astype(np.int32))


def load_npz(path: str, x_key: str = "x", y_key: str = "y") -> Dataset:
    """Loads arrays ``x_key`` and ``y_key`` from an ``.npz`` file (pickled objects are refused)."""
    with np.load(path, allow_pickle=False) as arrays:
        missing = [k for k in (x_key, y_key) if k not in arrays.files]
        if missing:
            raise ValueError(f"{path!r} has no array(s) {missing}; it holds {arrays.files}")
        return Dataset(arrays[x_key], arrays[y_key])


def load_csv(path: str, target_column: int | str = -1) -> Dataset:
    """Loads a numeric CSV: the ``target_column`` (index or header name) is y, the rest x.

    A first row that does not parse as numbers is taken as a header. A target of whole numbers
    is returned as int labels (classification), otherwise as floats.
    """
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows:
        raise ValueError(f"CSV file {path!r} is empty")
    header = None
    try:
        [float(v) for v in rows[0]]
    except ValueError:
        header, rows = rows[0], rows[1:]
    if isinstance(target_column, str):
        if header is None or target_column not in header:
            raise ValueError(f"`target_column` {target_column!r} is not in the CSV header {header}")
        target_column = header.index(target_column)
    try:
        table = np.array(rows, dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"CSV file {path!r} must be all numbers after the header: {error}") from None
    y = table[:, target_column]
    x = np.delete(table, target_column % table.shape[1], axis=1)
    y = y.astype(np.int32) if np.all(y == np.round(y)) else y.astype(np.float32)
    return Dataset(x.astype(np.float32), y)


BUILTIN_DATASETS = {"digits": load_digits, "diabetes": load_diabetes}


def load_dataset(name_or_path: str, *, data_dir: Optional[str] = None) -> Dataset:
    """Loads a built-in set (``"digits"``, ``"diabetes"``), ``"mnist"``/``"fashion_mnist"`` from
    IDX files in ``data_dir`` (training split), or a ``.npz``/``.csv`` file by path."""
    key = name_or_path.lower()
    if key in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[key]()
    if key in ("mnist", "fashion_mnist"):
        return load_mnist(data_dir or os.path.join("data", key), "train")
    if key.endswith(".npz"):
        return load_npz(name_or_path)
    if key.endswith(".csv"):
        return load_csv(name_or_path)
    raise ValueError(
        f"`dataset` must be one of {sorted(BUILTIN_DATASETS) + ['mnist', 'fashion_mnist']} or a path "
        f"ending in .npz or .csv, got {name_or_path!r}"
    )


def train_test_split(x: np.ndarray, y: np.ndarray, test_fraction: float, *, seed: int) -> Tuple[Dataset, Dataset]:
    """Seeded split, stratified on integer labels; returns (train, test)."""
    stratify = y if infer_task(y) == "classification" and y.ndim == 1 else None
    keep, held = split_indices(len(x), test_fraction, seed=seed, stratify=stratify)
    return Dataset(x[keep], y[keep]), Dataset(x[held], y[held])
