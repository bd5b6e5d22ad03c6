"""Data: validation of user arrays, built-in offline datasets, file loaders, splits and scaling.

Everything here is NumPy on the host and runs before any tracing, so a bad input is reported
with the argument's name before anything is compiled.
"""

import concurrent.futures
import csv
import gzip
import os
import re
import struct
import warnings
import zipfile
import zlib
from importlib import resources
from numbers import Integral
from typing import NamedTuple, Optional, Tuple

import numpy as np

from ._download import load_official
from ._errors import check_real, user_stacklevel
from ._labels import _labels_array, is_label_column
from ._sparse import SparseRows, from_scipy, is_scipy_sparse


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


def fit_standardizer(x: np.ndarray, rows_per_pass: int = 1 << 16) -> Standardizer:
    """Mean and standard deviation per column, accumulated in float64 (``rows_per_pass`` rows at a
    time, so no float64 copy of ``x``); a constant column gets scale 1 (left centred).

    A column is constant when its variance is within float64 rounding of zero (scikit-learn's
    StandardScaler test): a float32 standard deviation of a constant 0.1 column is ~1e-8, not 0,
    and dividing by it would make any other value at predict time an input in the thousands.
    """
    n = len(x)
    mean = x.mean(axis=0, dtype=np.float64)
    squares = np.zeros(x.shape[1], np.float64)
    for start in range(0, n, rows_per_pass):
        deviation = x[start : start + rows_per_pass].astype(np.float64) - mean
        squares += np.einsum("ij,ij->j", deviation, deviation)
    var = squares / max(n, 1)
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.where(constant, 1.0, np.sqrt(var))
    return Standardizer(mean.astype(x.dtype), scale.astype(x.dtype))


def feature_names_of(x) -> Optional[Tuple[str, ...]]:
    """The column names of a DataFrame-like ``x`` whose columns are all strings (as scikit-learn's
    ``feature_names_in_``), else None."""
    columns = getattr(x, "columns", None)
    if columns is None or isinstance(x, np.ndarray):
        return None
    names = tuple(columns)
    return names if names and all(isinstance(name, str) for name in names) else None


def check_feature_names(x, expected: Optional[Tuple[str, ...]], name: str = "x") -> None:
    """Raises a ``ValueError`` naming ``name`` when ``x`` is a DataFrame whose columns differ from
    the ``expected`` training columns (other names, or the same in another order, which would
    otherwise feed each column to the weights of another). Arrays and unnamed columns pass."""
    check_names_match(feature_names_of(x), expected, name)


def check_names_match(given: Optional[Tuple[str, ...]], expected: Optional[Tuple[str, ...]], name: str) -> None:
    """:func:`check_feature_names` on the names themselves (None on either side: nothing to check)."""
    if expected is None or given is None or tuple(given) == tuple(expected):
        return
    if sorted(given) == sorted(expected):
        raise ValueError(
            f"`{name}` has the training columns in another order; give them in the trained order: {list(expected)!r}"
        )
    unseen = [c for c in given if c not in expected]
    missing = [c for c in expected if c not in given]
    raise ValueError(
        f"`{name}`'s columns are not the ones trained on: unseen {unseen}, missing {missing} "
        f"(trained on {list(expected)})"
    )


def _as_numeric_array(name: str, value, *, objects: bool = False) -> np.ndarray:
    """``value`` as a NumPy array of bool, int or float; ``objects``: one of Python objects that are
    all numbers (an object column, pandas' nullable Int64/Float64/boolean) becomes float64."""
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists and the like
        raise TypeError(f"`{name}` must be a numeric array, could not convert it: {error}") from None
    if objects and array.dtype.kind == "O":
        array = _numbers_as_floats(value, array)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold real numbers (bool, int or float), got dtype {array.dtype}"
                        + _non_numeric_columns(value))  # fmt: skip
    return array


def _numbers_as_floats(value, array: np.ndarray) -> np.ndarray:
    """The object ``array`` as float64 where every element is a number or missing (pandas' NA and
    None become NaN, which the finite check then refuses); else ``array`` as it is. Text is never
    parsed: '1.5' in a column is a string, as scikit-learn's check_array would not have it either."""
    elements = array.reshape(-1)
    if any(isinstance(element, (str, bytes)) for element in elements):
        return array
    try:
        if hasattr(value, "to_numpy"):  # pandas: NA and None to NaN, nullable dtypes unwrapped
            return np.asarray(value.to_numpy(dtype=np.float64, na_value=np.nan))
        return np.array([np.nan if element is None else element for element in elements], np.float64).reshape(
            array.shape
        )
    except (TypeError, ValueError):  # dates, lists, decimals of another kind...
        return array


def _non_numeric_columns(frame) -> str:
    """For a DataFrame, the columns that are not numbers (text, categories) and what to do; else ""."""
    dtypes = getattr(frame, "dtypes", None)
    if dtypes is None or not hasattr(dtypes, "items"):
        return ""

    def numbers(j: int) -> bool:
        values = frame.iloc[:, j]  # by position: names may repeat
        kind = getattr(values.dtype, "kind", "O")
        return kind in "biuf" or _numbers_as_floats(values, np.asarray(values)).dtype.kind == "f"

    names = [str(column) for j, column in enumerate(dtypes.index) if not numbers(j)]
    if not names:
        return ""
    return f"; its columns {names} are not numbers (text or categories): {_ENCODE_TEXT}"


# what to do with a feature of text categories (a colour, a town): said by the CSV and DataFrame errors alike
_ENCODE_TEXT = "encode them as numbers (one 0/1 column per category, e.g. pandas.get_dummies) or drop them"


def validate_x(
    x, name: str = "x", *, n_features: Optional[int] = None, dtype=np.float32, aligned: bool = False
) -> np.ndarray:
    """Checks a feature matrix and returns it as ``dtype`` [n, d] (a scipy sparse matrix as
    :class:`ffnn_jax._sparse.SparseRows`, never densified).

    ``aligned``: a large result is also C-contiguous and 64-byte aligned (what JAX's CPU backend
    takes without a copy of its own). A large matrix that must be converted or aligned is copied
    once, by all cores, and checked block by block during that copy.
    """
    if is_scipy_sparse(x) or isinstance(x, SparseRows):
        x = from_scipy(x, name, dtype) if is_scipy_sparse(x) else x.astype(dtype)
        if n_features is not None and x.shape[1] != n_features:
            raise ValueError(f"`{name}` must have {n_features} features (columns), got {x.shape[1]}")
        return x
    x = _as_numeric_array(name, x, objects=True)
    if x.ndim != 2:
        hint = f"; flatten each sample into a row: {name}.reshape(len({name}), -1)" if x.ndim > 2 else ""
        raise ValueError(f"`{name}` must be 2-D [n_samples, n_features], got shape {x.shape}{hint}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"`{name}` must be non-empty, got shape {x.shape}")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"`{name}` must have {n_features} features (columns), got {x.shape[1]}")
    dtype = np.dtype(dtype)
    if x.size * dtype.itemsize >= LARGE_BYTES and (x.dtype != dtype or (aligned and not is_aligned(x))):
        x, finite = host_copy(x, dtype)
    else:
        x = x.astype(dtype, copy=False)
        finite = _all_finite(x)
    if not finite:
        bad = int(np.sum(~np.isfinite(x)))
        raise ValueError(
            f"`{name}` must be finite, got {bad} NaN/inf values (a missing value is one: fill in or drop it)"
        )
    return x


def _all_finite(x: np.ndarray) -> bool:
    """Whether every value of the float matrix ``x`` [n, d] is finite, in one pass.

    Row sums carry any NaN or inf; only when a sum is not finite (a non-finite value, or finite
    values that overflowed) does the element-wise test decide.
    """
    if x.ndim == 2 and x.size >= 1 << 16 and x.dtype in (np.float32, np.float64) and _row_sums_finite(x):
        return True
    return bool(np.all(np.isfinite(x)))


def _row_sums_finite(x: np.ndarray) -> bool:
    """Whether every row sum of the float matrix ``x`` [n, d] is finite.

    NumPy's own reduction, not ``x @ 1``: as fast here (9 ms for 60k × 784 float32, against 8 ms
    for BLAS on two cores), but BLAS's worker threads then spin for about 0.1 s of CPU, which the
    first epoch, started right after, lost to them (it ran 0.03 s slower than the others).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(x, axis=1)).all())


LARGE_BYTES = 1 << 22  # below this a copy is too quick to be worth threads, an aligned buffer or a view
_ALIGNMENT = 64  # bytes: JAX's CPU backend uses a NumPy buffer aligned like this without copying it


def is_aligned(array: np.ndarray) -> bool:
    """Whether ``array`` is C-contiguous and starts on a 64-byte boundary."""
    return array.flags.c_contiguous and array.ctypes.data % _ALIGNMENT == 0


def empty_aligned(shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array starting on a 64-byte boundary."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + _ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % _ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def host_copy(array: np.ndarray, dtype=None) -> Tuple[np.ndarray, bool]:
    """``array`` [n, ...] as a 64-byte-aligned C-contiguous copy of ``dtype`` (default: its own), and
    whether every value of the copy is finite.

    All cores copy (and convert) about 1 MB of rows each in turn and sum each block while it is
    in cache, so the finite check costs no pass of its own.
    """
    dtype = array.dtype if dtype is None else np.dtype(dtype)
    out = empty_aligned(array.shape, dtype)
    rows = max(1, (1 << 20) // max(1, out[:1].nbytes))
    row_size = int(np.prod(array.shape[1:]))
    floats = dtype in (np.float32, np.float64)

    def copy_block(start: int) -> bool:
        block = out[start : start + rows]
        with np.errstate(over="ignore", invalid="ignore"):  # a float64 beyond float32's range becomes inf
            np.copyto(block, array[start : start + rows], casting="unsafe")
        if floats and _row_sums_finite(block.reshape(len(block), row_size)):
            return True
        return dtype.kind in "biu" or bool(np.isfinite(block).all())

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        finite = all(list(pool.map(copy_block, range(0, len(array), rows))))
    return out, finite


CLASSIFICATION_LOSSES = ("cross_entropy", "binary_cross_entropy")


def infer_task(y, loss: Optional[str] = None) -> str:
    """The task implied by a canonical ``loss`` name, else by y's dtype and shape.

    Cross-entropies mean classes even for float targets (one-hot or 0/1 rows); Poisson targets
    are integer counts but a regression; integer, bool or string labels mean classification, and
    so do a pandas categorical (even of floats) and float one-hot rows [n, k ≥ 2] (``to_categorical``'s
    and :func:`one_hot`'s output); other float targets mean regression.
    """
    if loss in CLASSIFICATION_LOSSES:
        return "classification"
    if loss == "poisson":
        return "regression"
    if str(getattr(y, "dtype", "")) == "category":  # pandas' categorical: labels, whatever its categories hold
        return "classification"
    y = np.asarray(y)
    return "classification" if y.dtype.kind in "biuUSO" or is_one_hot(y) else "regression"


def default_loss(task: str, y) -> str:
    """The loss when none is given: squared error for a regression; for classes a softmax's cross
    entropy, except for 0/1 rows [n, k ≥ 2] that are not all one-hot (several classes per row, or
    none), which are multi-label targets (``binary_cross_entropy``), as scikit-learn reads them."""
    if task != "classification":
        return "squared_error"
    y = np.asarray(y)
    multi_hot = y.ndim == 2 and y.shape[1] >= 2 and y.dtype.kind in "biuf" and np.all((y == 0) | (y == 1))
    return "binary_cross_entropy" if multi_hot and not is_one_hot(y) else "cross_entropy"


def whole_number_labels(y: np.ndarray) -> Optional[np.ndarray]:
    """``y`` as int32 labels when it is a float column of whole numbers within int32 (how files,
    which have no dtype, mark class labels: a CSV's target, a CLI's .npz), else None."""
    y = np.asarray(y)
    if y.dtype.kind != "f" or not np.all(np.isfinite(y)):
        return None
    return y.astype(np.int32) if np.all(y == np.round(y)) and np.all(np.abs(y) < 2**31) else None


def is_one_hot(y: np.ndarray) -> bool:
    """Whether ``y`` is [n, k ≥ 2] rows of zeros with exactly one 1 each."""
    if y.ndim != 2 or y.shape[1] < 2 or y.shape[0] == 0 or y.dtype.kind not in "biuf":
        return False
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))


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
        rows_of = "validation_data[0]" if name == "validation_data[1]" else "x"  # the inputs y goes with
        raise ValueError(
            f"`{rows_of}` and `{name}` must have the same number of samples, got {n_samples} and {y.shape[0]}"
        )
    if not np.all(np.isfinite(y)):
        raise ValueError(f"`{name}` must be finite, got {int(np.sum(~np.isfinite(y)))} NaN/inf values")
    if task == "regression":
        return y.astype(dtype)
    if multi_label or y.ndim == 2:
        if not np.all((y == 0) | (y == 1)):
            what = "a 2-D classification target" if y.ndim == 2 else "a binary_cross_entropy target"
            raise ValueError(f"`{name}` as {what} must hold only 0 and 1 (one-hot or multi-label rows [n, k])")
        if not multi_label and y.shape[1] > 1:  # a softmax: one class per row
            _check_one_hot_rows(y, name)
        return y.astype(dtype)
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise ValueError(f"`{name}` class labels must be integers, got non-integer floats (use task='regression'?)")
    if y.min() < 0:
        raise ValueError(f"`{name}` class labels must be >= 0, got {y.min()}")
    if n_classes is not None and y.max() >= n_classes:
        raise ValueError(f"`{name}` class labels must be < n_classes={n_classes}, got {int(y.max())}")
    return y.astype(np.int32)


def _check_one_hot_rows(y: np.ndarray, name: str) -> None:
    """0/1 rows for a softmax's cross entropy must each hold exactly one 1 (a multi-hot row would
    be trained as a share of several classes, an empty one not at all)."""
    ones = y.sum(axis=1)
    bad = np.flatnonzero(ones != 1)
    if len(bad):
        row = bad[0]
        raise ValueError(
            f"`{name}` as one-hot rows for loss 'cross_entropy' (a softmax: one class per row) must hold exactly "
            f"one 1 per row, but {len(bad)} of {len(y)} rows hold {'none' if ones[row] == 0 else 'several'} "
            f"(row {row}: {y[row].astype(int).tolist()[:10]}); for multi-label targets pass "
            "loss='binary_cross_entropy'"
        )


def one_hot(labels: np.ndarray, n_classes: int, dtype=np.float32) -> np.ndarray:
    """[n] int labels -> [n, n_classes] one-hot rows."""
    return np.eye(n_classes, dtype=dtype)[np.asarray(labels)]


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def split_indices(
    n: int,
    fraction: float,
    *,
    seed: int,
    stratify: Optional[np.ndarray] = None,
    name: str = "validation_fraction",
    classes: Optional[np.ndarray] = None,
):
    """Returns sorted (keep, held_out) index arrays, neither empty; deterministic for a given seed.

    ``held_out`` has ⌈fraction·n⌉ rows (at least 1). With ``stratify`` (labels [n]) each class
    instead gives round(fraction·size) rows clipped to [1, size − 1], so that every class is on
    both sides (a small class may give more than ``fraction`` of its rows).

    Args:
      n: number of rows.
      fraction: share of the rows held out, in (0, 1).
      seed: seed of the permutation.
      stratify: optional labels [n] to split class by class.
      name: the argument named in error messages, e.g. ``"test_fraction"``.
      classes: the class each ``stratify`` code 0..k−1 stands for, named in errors (None: the codes are the labels).

    Raises:
      ValueError: ``fraction`` is not in (0, 1), leaves no rows to keep, or (stratified) a class
        has a single row, which cannot be on both sides.
    """
    fraction = check_real(name, fraction, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
    if n < 2:
        raise ValueError(f"`{name}`={fraction} cannot split {_rows(n)}: each side needs at least one")
    rng = np.random.default_rng(seed)
    n_held = max(1, int(np.ceil(fraction * n)))
    if n_held >= n:
        raise ValueError(
            f"`{name}`={fraction} holds out {n_held} of {_rows(n)} and leaves none to train on; "
            "use a smaller fraction or more rows"
        )
    stratify = None if stratify is None else np.asarray(stratify)
    if stratify is None or stratify.ndim != 1:
        order = rng.permutation(n)
        return np.sort(order[n_held:]), np.sort(order[:n_held])
    labels, counts = np.unique(stratify, return_counts=True)
    single = [repr((label if classes is None else classes[label]).item()) for label in labels[counts == 1]]
    if single:
        shown = ", ".join(single[:10]) + (", ..." if len(single) > 10 else "")
        which = f"class {shown} has" if len(single) == 1 else f"classes {shown} have"
        raise ValueError(
            f"`{name}`={fraction}: a stratified split needs at least 2 rows of every class (one on each "
            f"side), but {which} 1 row; remove or merge such classes, or add rows"
        )
    held = []
    for label in labels:
        members = rng.permutation(np.flatnonzero(stratify == label))
        take = int(round(fraction * len(members)))
        held.append(members[: min(max(take, 1), len(members) - 1)])
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


KERAS_NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}  # keras.datasets' mnist.npz


def npz_keys(path: str, split: str = "train") -> Tuple[str, str]:
    """The ``(x, y)`` array names of ``split`` in an ``.npz`` file: ``x``/``y`` (one split), or
    Keras' ``x_train``/``y_train`` and ``x_test``/``y_test`` (as in ``mnist.npz``)."""
    if split not in KERAS_NPZ_KEYS:
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}")
    with np.load(path, allow_pickle=False) as arrays:
        files = arrays.files
    if split == "train" and {"x", "y"} <= set(files):
        return "x", "y"
    if set(KERAS_NPZ_KEYS[split]) <= set(files):
        return KERAS_NPZ_KEYS[split]
    wanted = "'x' and 'y' (or Keras' 'x_train', 'y_train')" if split == "train" else "'x_test' and 'y_test'"
    raise ValueError(f"{path!r} has no arrays {wanted}; it holds {files}")


def npz_has_test_split(path: str) -> bool:
    """Whether ``path`` is a readable ``.npz`` with Keras' ``x_test`` and ``y_test`` arrays."""
    if not (path.lower().endswith(".npz") and os.path.isfile(path)):
        return False
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return set(KERAS_NPZ_KEYS["test"]) <= set(arrays.files)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return False  # load_dataset says what is wrong with the file


def load_npz(path: str, x_key: str = "x", y_key: str = "y") -> Dataset:
    """Loads arrays ``x_key`` and ``y_key`` from an ``.npz`` file (pickled objects are refused).
    Images ``x`` [n, h, w(, c)] are flattened to [n, h·w·c] rows, as a Keras ``Flatten`` would."""
    with np.load(path, allow_pickle=False) as arrays:
        missing = [k for k in (x_key, y_key) if k not in arrays.files]
        if missing:
            raise ValueError(f"{path!r} has no array(s) {missing}; it holds {arrays.files}")
        return Dataset(flat_rows_of(arrays[x_key]), arrays[y_key])


def flat_rows_of(x: np.ndarray) -> np.ndarray:
    """``x`` [n, ...] as [n, features]: images and other n-d samples flattened row-major."""
    return x.reshape(len(x), -1) if x.ndim > 2 else x


_MISSING_CELLS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})  # compared lower-cased


class TargetColumn(NamedTuple):
    """The CSV column taken as ``y``: its 0-based ``index`` and header ``name`` (None without a header)."""

    index: int
    name: Optional[str]


def is_csv_path(path: str) -> bool:
    """A path read as delimited text: .csv, or .tsv (the separator is found from the first line either way)."""
    return path.lower().endswith((".csv", ".tsv"))


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"`dataset` file {path!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"`dataset` {path!r} is a folder; give the path of a .csv or .npz file")


def _delimiter(first_line: str) -> str:
    """The field separator of a CSV file from its first line: ``;`` (Excel's in locales with
    decimal commas) or tab where splitting on it leaves commas only as decimal commas
    (``5,1;3,5`` and ``5,1<tab>3,5`` are two fields), else the most frequent of ``,``, ``;`` and tab."""
    unquoted = re.sub(r'"[^"]*"', "", first_line).rstrip("\r\n")
    for candidate in ";\t":
        cells = unquoted.split(candidate)
        if len(cells) > 1 and all("," not in cell or _DECIMAL_COMMA.fullmatch(cell.strip()) for cell in cells):
            return candidate
    best = max(";\t", key=unquoted.count)
    return best if unquoted.count(best) > unquoted.count(",") else ","


_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")


def _decimal_points(cells):
    return [cell.replace(",", ".") if _DECIMAL_COMMA.fullmatch(cell.strip()) else cell for cell in cells]


def _csv_rows(path: str):
    """Yields ``(line number, cells)`` for each non-blank CSV record; a file that is not CSV text
    is a ValueError naming it.

    The separator is ``,``, ``;`` or tab (:func:`_delimiter`); with ``;`` or tab, numbers written
    with a decimal comma (``5,1``) are read as ``5.1``. A header whose first name is empty (``,a,b``: the
    row index that pandas' ``to_csv`` writes) drops that column from every row when the first row
    holds a whole number or a name there: it numbers the rows, it is not a feature (a fraction
    there, ``5.1``, keeps it as a feature; a fraction in a later row of a dropped column is an error)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # utf-8-sig: drop an Excel byte-order mark
            delimiter = _delimiter(f.readline())
            f.seek(0)
            reader = csv.reader(f, delimiter=delimiter, strict=True)
            held, drop_index, first = None, False, True  # held: a header with an empty first name
            seen: set = set()  # the dropped column's numbers; an index's are distinct and not negative
            index_like = True
            for cells in reader:
                if not cells:
                    continue
                if delimiter != ",":
                    cells = _decimal_points(cells)
                if first:
                    first = False
                    if len(cells) > 1 and cells[0].strip() == "" and _is_header(cells):
                        held = reader.line_num, cells  # until the first row says if that column is an index
                        continue
                elif held is not None:  # pandas' index holds whole numbers or names; 5.1 is a feature's
                    drop_index = not _is_fraction(cells[0])
                    yield held[0], held[1][1:] if drop_index else held[1]
                    held = None
                elif drop_index and _is_fraction(cells[0]):
                    raise ValueError(
                        f"CSV file {path!r}: its first column has no name in the header and whole numbers (pandas' "
                        f"row index, dropped), but line {reader.line_num} holds {cells[0].strip()!r} there; name "
                        "that column in the header if it is a feature"
                    )
                if drop_index and index_like and _is_number(cells[0]):
                    value = float(cells[0])
                    index_like = value >= 0 and value not in seen
                    seen.add(value)
                yield reader.line_num, cells[1:] if drop_index else cells
            if held is not None:  # a header and no rows
                yield held[0], held[1][1:]
            if drop_index and not index_like:
                warnings.warn(
                    f"CSV file {path!r}: its first column has no name in the header and holds whole numbers, "
                    "repeated or negative ones, unlike a row index; it was read as one (as pandas' to_csv writes "
                    "it) and dropped: name that column in the header if it is a feature",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
    except UnicodeDecodeError as error:
        raise ValueError(f"CSV file {path!r} is not UTF-8 text ({error.reason}); is it a CSV file?") from None
    except csv.Error as error:
        raise ValueError(f"CSV file {path!r} is malformed near line {reader.line_num}: {error}") from None


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_fraction(cell: str) -> bool:
    """A number that is not written as a whole one (``5.1``, ``1e3``; not ``7``): no row index."""
    return _is_number(cell) and re.fullmatch(r"\s*[+-]?\d+\s*", cell) is None


def _is_header(cells) -> bool:
    """The header rule: a first row is a header when its names outnumber its numbers.

    A number is anything ``float()`` reads (nan and inf included); a name is any other cell that is
    not empty or a missing-value mark (NA, N/A, null, none, ?; any case). So ``label,pixel0,...``,
    ``label,1x1,...``, ``RI,Na,Mg,...`` and pandas' ``,a,b`` (an unnamed index column) are
    headers, while ``1,,3`` and ``NA,NA`` are data rows, whose missing cells are then reported.
    A header of mostly numeric names (``label,0,1,...``) is read as data and reported too, but
    ``0,1,...,k-1`` (after an optional empty name) is the header pandas writes for a frame of
    unnamed columns (``pd.DataFrame(array).to_csv(index=False)``), and is one.
    """
    cells = [cell.strip() for cell in cells]
    named = cells[1:] if cells and cells[0] == "" else cells
    if len(named) > 1 and named == [str(i) for i in range(len(named))]:
        return True
    numbers = sum(_is_number(cell) for cell in cells)
    names = sum(not _is_number(cell) and cell.lower() not in _MISSING_CELLS for cell in cells)
    return names > numbers


def _show_header(header) -> str:
    names = [repr(name) for name in header]
    if len(names) > 12:
        names = names[:6] + ["..."] + names[-3:]
    return f"[{', '.join(names)}] ({len(header)} columns)"


def _target_index(target, header, n_columns: int, *, name: str, path: str) -> int:
    """The 0-based column of ``target``: a header name, or an index (negative counts from the end)."""
    if isinstance(target, str):
        if header is None:
            raise ValueError(
                f"`{name}`={target!r} names a column, but CSV file {path!r} has no header row (a first row is a "
                f"header when its names outnumber its numbers); give an index in [-{n_columns}, {n_columns - 1}]"
            )
        matches = [j for j, column in enumerate(header) if column == target.strip()]
        if not matches:
            raise ValueError(f"`{name}`={target!r} is not in the header of CSV file {path!r}: {_show_header(header)}")
        if len(matches) > 1:
            raise ValueError(f"`{name}`={target!r} names columns {matches} of CSV file {path!r}; give an index")
        return matches[0]
    if isinstance(target, bool) or not isinstance(target, Integral):
        raise TypeError(f"`{name}` must be a header name (str) or a column index (int), got {target!r}")
    if not -n_columns <= target < n_columns:
        raise ValueError(
            f"`{name}`={target} is out of range for CSV file {path!r} with {n_columns} columns; "
            f"give an index in [-{n_columns}, {n_columns - 1}] or a header name"
        )
    return int(target) % n_columns


def _bad_cell_error(path: str, records, header, skip_column: Optional[int] = None) -> ValueError:
    """The error for the first cell of ``records`` (other than in ``skip_column``) that is not a
    finite number."""
    for line, cells in records:
        numbers = cells if skip_column is None else cells[:skip_column] + cells[skip_column + 1 :]
        try:
            if np.all(np.isfinite(np.array(numbers, dtype=np.float64))):
                continue
        except ValueError:
            pass
        for j, cell in enumerate(cells):
            if j == skip_column or (_is_number(cell) and np.isfinite(float(cell))):
                continue
            where = f"line {line}, column index {j}" + ("" if header is None else f" ({header[j]!r})")
            message = (
                f"CSV file {path!r}, {where}: {cell!r} is not a finite number; the trainer needs a number in "
                "every cell (fill in or drop missing values)"
            )
            is_text = cell.strip().lower() not in _MISSING_CELLS and not _is_number(cell)
            if is_text and header is not None:  # a categorical feature, such as a colour or a town
                message = f"CSV file {path!r}, {where}: {cell!r} is text, and features must be numbers; {_ENCODE_TEXT}"
            if header is None and line == records[0][0] and is_text:
                message += (
                    "; this first row was read as data, not as a header, as its names do not outnumber its numbers"
                )
            return ValueError(message)
    return ValueError(f"CSV file {path!r} must hold only numbers after its header")


def load_csv(path: str, target_column: int | str = -1) -> Dataset:
    """Loads a numeric CSV: the ``target_column`` (a header name, or an index, negative from the
    end; default the last column) is y, the other columns x.

    The first row is a header when its names outnumber its numbers: a name is a cell that is not a
    number, not empty and not a missing-value mark such as NA (so ``label,pixel0,...`` is a header,
    ``1,,3`` is data). Every feature cell after the header must be a finite number; the first one
    that is not (empty, NA, text, nan, inf) is reported with its line and column. A target of whole
    numbers (within int32) is returned as int32 labels, which mean classification; a target of text
    (``setosa``, ``yes``) as str class names; otherwise float32.
    The file is UTF-8 text, with or without a byte-order mark. :func:`resolve_target` reports the
    column chosen.

    Raises:
      ValueError: an empty, malformed or ragged file, a cell that is not a finite number, or a
        ``target_column`` not in the header or out of range.
      TypeError: ``target_column`` is neither a str nor an int.
    """
    records = list(_csv_rows(path))
    if not records:
        raise ValueError(f"CSV file {path!r} is empty")
    header = None
    if _is_header(records[0][1]):
        header = [cell.strip() for cell in records[0][1]]
        records = records[1:]
    n_columns = len(header if header is not None else records[0][1])  # 1 column: x is [n, 0], for predict
    column = _target_index(target_column, header, n_columns, name="target_column", path=path)
    if not records:
        raise ValueError(f"CSV file {path!r} has a header but no data rows")
    for line, cells in records:
        if len(cells) != n_columns:
            raise ValueError(f"CSV file {path!r}: line {line} has {len(cells)} fields, expected {n_columns}")
    try:
        table = np.array([cells for _, cells in records], dtype=np.float64)
    except ValueError:
        table = None
    if table is not None and np.all(np.isfinite(table)):
        y = table[:, column]
        x = np.delete(table, column, axis=1)
        labels = whole_number_labels(y)
        return Dataset(x.astype(np.float32), y.astype(np.float32) if labels is None else labels)
    names = _text_labels(path, records, header, column)
    if names is None:
        raise _bad_cell_error(path, records, header)
    try:
        x = np.array([cells[:column] + cells[column + 1 :] for _, cells in records], dtype=np.float64)
    except ValueError:
        x = None
    if x is None or not np.all(np.isfinite(x)):
        raise _bad_cell_error(path, records, header, skip_column=column)
    return Dataset(x.reshape(len(records), n_columns - 1).astype(np.float32), names)


def _text_labels(path: str, records, header, column: int) -> Optional[np.ndarray]:
    """The target column as class names [n] (str, stripped) when it holds text, such as iris'
    ``setosa``; None when no target cell is text (numbers, missing cells: the numeric path reports
    those). A missing target cell among names, or a column that
    mixes numbers with text (a typo in a numeric target, most likely), is a ValueError naming it."""
    cells = [row[column].strip() for _, row in records]
    missing = [j for j, cell in enumerate(cells) if cell.lower() in _MISSING_CELLS]
    text = [j for j, cell in enumerate(cells) if not _is_number(cell) and cell.lower() not in _MISSING_CELLS]
    if not text:
        return None
    where = f"column index {column}" + ("" if header is None else f" ({header[column]!r})")
    if missing:
        raise ValueError(
            f"CSV file {path!r}, line {records[missing[0]][0]}, {where}: the target {cells[missing[0]]!r} is "
            "missing; fill it in or drop the row"
        )
    if len(text) < len(cells):
        number = next(j for j, cell in enumerate(cells) if _is_number(cell))
        raise ValueError(
            f"CSV file {path!r}, {where}: the target mixes text (line {records[text[0]][0]}: {cells[text[0]]!r}) "
            f"with numbers (line {records[number][0]}: {cells[number]!r}); class names must be all text or all "
            "numbers"
        )
    return np.array(cells)


def resolve_target(
    name_or_path: str, target: int | str | None = None, *, name: str = "target"
) -> Optional[TargetColumn]:
    """The column :func:`load_dataset` takes as y for ``target`` (None: the last column), read
    from a CSV file's first row with :func:`load_csv`'s header rule; None for data sets without
    columns (built-in, MNIST, .npz), whose ``target`` must be None.

    Args:
      name_or_path: what :func:`load_dataset` takes.
      target: a header name or a column index (negative from the end), or None.
      name: the argument named in error messages, e.g. ``"--target"``.

    Raises:
      ValueError: ``target`` is not in the header or out of range, or given for data without columns.
      FileNotFoundError: the CSV file does not exist.

    Examples:
      >>> resolve_target("digits") is None
      True
    """
    if not is_csv_path(name_or_path):
        if target is not None:
            raise ValueError(
                f"`{name}` picks a column of a .csv dataset; {name_or_path!r} has none to pick, its target is fixed"
            )
        return None
    _check_file(name_or_path)
    records = _csv_rows(name_or_path)
    first = next(records, None)
    records.close()
    if first is None:
        raise ValueError(f"CSV file {name_or_path!r} is empty")
    cells = first[1]
    header = [cell.strip() for cell in cells] if _is_header(cells) else None
    index = _target_index(-1 if target is None else target, header, len(cells), name=name, path=name_or_path)
    return TargetColumn(index, None if header is None else header[index])


def csv_layout(path: str) -> Tuple[Optional[Tuple[str, ...]], int]:
    """``(header, columns)`` of a CSV file from its first record: the column names of its header
    row (:func:`load_csv`'s rule), or None without one, and how many columns it has."""
    rows = _csv_rows(path)
    first = next(rows, None)
    rows.close()
    if first is None:
        return None, 0
    cells = first[1]
    return (tuple(cell.strip() for cell in cells) if _is_header(cells) else None), len(cells)


def csv_header(path: str) -> Optional[Tuple[str, ...]]:
    """The column names of a CSV file's header row (:func:`load_csv`'s rule), or None without one."""
    return csv_layout(path)[0]


BUILTIN_DATASETS = {"digits": load_digits, "diabetes": load_diabetes}


def load_dataset(
    name_or_path: str,
    split: str = "train",
    *,
    data_dir: Optional[str] = None,
    download: bool = True,
    mirror: Optional[str] = None,
    target: int | str | None = None,
) -> Dataset:
    """Loads a built-in set (``"digits"``, ``"diabetes"``), the official ``"mnist"`` /
    ``"fashion_mnist"`` splits (x [n, 784] in [0, 1], y 0..9; found in ``data_dir``, the cache,
    Debian's package or downloaded and checksummed: see :mod:`ffnn_jax._download`), or a
    ``.npz``/``.csv`` file by path.

    Args:
      name_or_path: a data set name or a file path ending in .npz or .csv.
      split: ``"train"`` or ``"test"`` for mnist/fashion_mnist (the other sets have one split, "train").
      data_dir, download, mirror: where mnist/fashion_mnist files are looked for and fetched from.
      target: for a CSV file, the target column: a header name or an index, negative from the
        end (default None: the last column); see :func:`load_csv` and :func:`resolve_target`,
        which reports the column taken. It must be None for the other data sets.

    Raises:
      ValueError: an unknown name, a corrupt file, or a bad ``target``.
      FileNotFoundError: the file does not exist.
    """
    key = name_or_path.lower()
    resolve_target(name_or_path, target, name="target")  # checks `target` before any data is read
    if key in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[key]()
    if key in ("mnist", "fashion_mnist"):
        return Dataset(*load_official(key, split, data_dir=data_dir, download=download, mirror=mirror))
    if key.endswith(".npz"):
        _check_file(name_or_path)
        with open(name_or_path, "rb") as f:
            zipped = f.read(2) == b"PK"
        if not zipped:
            raise ValueError(f"{name_or_path!r} is not an .npz file (a zip archive of .npy arrays, as np.savez writes)")
        try:
            return load_npz(name_or_path, *npz_keys(name_or_path, split))
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise ValueError(f"{name_or_path!r} is not a readable .npz file: {error}") from None
    if split != "train":
        raise ValueError(f"`split`={split!r}: {name_or_path!r} has one split, 'train' (use train_test_split)")
    if is_csv_path(key):
        return load_csv(name_or_path, -1 if target is None else target)
    raise ValueError(
        f"`dataset` must be one of {sorted(BUILTIN_DATASETS) + ['mnist', 'fashion_mnist']} or a path "
        f"ending in .npz, .csv or .tsv, got {name_or_path!r}"
    )


def _split_dataset(x: np.ndarray, y: np.ndarray, fraction: float, *, seed: int, name: str, task: str = "auto"):
    """The train and test parts; stratified by class when ``task`` (or, for "auto", y) is classification."""
    classes = task == "classification" or (task == "auto" and infer_task(y) == "classification")
    stratify = _labels_array(y, "y") if classes and is_label_column(y) else None  # non-whole floats named here
    keep, held = split_indices(len(x), fraction, seed=seed, stratify=stratify, name=name)
    return Dataset(x[keep], y[keep]), Dataset(x[held], y[held])


def train_test_split(x: np.ndarray, y: np.ndarray, test_fraction: float, *, seed: int) -> Tuple[Dataset, Dataset]:
    """Seeded split, stratified on integer labels; returns (train, test), neither empty.

    The test side has ⌈test_fraction·n⌉ rows, or, stratified, round(test_fraction·size) rows of
    each class clipped so that every class is on both sides (see :func:`split_indices`).

    Raises:
      ValueError: ``test_fraction`` is not in (0, 1) or leaves no training rows, or a class has a
        single row (a stratified split needs 2 of every class).
    """
    return _split_dataset(x, y, test_fraction, seed=seed, name="test_fraction")
