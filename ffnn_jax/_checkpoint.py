"""Saving and loading parameters in a safe format: a NumPy ``.npz`` of arrays plus JSON metadata.

No pickle is written or read. Writes go to a temporary file in the same folder and are renamed
into place, so an interrupted save never leaves a half-written file, and an existing file is
only replaced when ``overwrite=True``.
"""

import io
import json
import os
import secrets
import stat
import warnings
import zipfile
import zlib
from typing import Optional, Sequence, Tuple

import jax
import numpy as np

from ._params import layer_sizes_of
from ._types import LayerParams, Params


_METADATA_KEY = "__metadata__"
_STANDARDIZED_MSG = (
    "{path!r} holds a network trained on standardized inputs: its params expect x scaled by the mean and scale "
    "saved in metadata['model']['standardizer'], so predicting from these params on raw x is wrong. Use "
    "ffnn_jax.load_model({path!r}) instead: its predict, predict_proba and evaluate take raw inputs and apply the "
    "saved scaling"
)


def atomic_write_bytes(path: str, data: bytes, *, overwrite: bool = False) -> None:
    """Writes ``data`` to ``path`` through a temporary file and an atomic rename."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"`path` {path!r} is a folder; give the path of the file to write")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"`path` {path!r} exists; pass overwrite=True to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = new_temp_file(folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        if os.path.exists(path):  # a replaced file keeps the permissions its owner gave it
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


def new_temp_file(folder: str, *, prefix: str, suffix: str) -> Tuple[int, str]:
    """``(fd, path)`` of a new empty file in ``folder``, open for writing, with the permissions
    ``open()`` would give it (0o666 less the umask; ``tempfile.mkstemp`` makes 0o600, so a shared
    run folder's files would be unreadable to the group while its pictures are not)."""
    for _ in range(100):
        path = os.path.join(folder, f"{prefix}{secrets.token_hex(4)}-{suffix}")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder!r}")


def _fsync_folder(folder: str) -> None:
    """Makes a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_params(path: str, params: Params, *, metadata: Optional[dict] = None, overwrite: bool = False) -> None:
    """Saves params as ``layer{i}/W``, ``layer{i}/b`` arrays plus JSON ``metadata`` in one ``.npz``.

    Args:
      path: destination file (``.npz``).
      params: a tuple of ``LayerParams``.
      metadata: JSON-serialisable extras (config, layer sizes are added automatically).
      overwrite: replace an existing file (atomically) instead of raising ``FileExistsError``.
    """
    _write_layers(path, jax.device_get(params), layer_sizes_of(params), dict(metadata or {}), overwrite)


def save_stacked_params(path: str, members: Sequence[Params], *, metadata: dict, overwrite: bool = False) -> None:
    """Saves k networks of one structure as :func:`save_params` does, each array stacked along a
    leading member axis (``layer{i}/W`` [k, n_in, n_out]); ``metadata["members"]`` is k."""
    sizes = layer_sizes_of(members[0])
    for j, params in enumerate(members):
        if layer_sizes_of(params) != sizes:
            raise ValueError(
                f"member {j} has layer sizes {layer_sizes_of(params)}, member 0 {sizes}: not one structure"
            )
    members = jax.device_get(list(members))
    stacked = tuple(
        LayerParams(W=np.stack([m[i].W for m in members]), b=np.stack([m[i].b for m in members]))
        for i in range(len(sizes) - 1)
    )
    _write_layers(path, stacked, sizes, {**metadata, "members": len(members)}, overwrite)


def _write_layers(path: str, params: Params, sizes: Sequence[int], meta: dict, overwrite: bool) -> None:
    meta["layer_sizes"] = list(sizes)
    arrays = {}
    for i, layer in enumerate(params):
        arrays[f"layer{i}/W"] = np.asarray(layer.W)
        arrays[f"layer{i}/b"] = np.asarray(layer.b)
    arrays[_METADATA_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue(), overwrite=overwrite)


def _not_params(path: str, what: str) -> ValueError:
    return ValueError(f"{path!r} is not an ffnn_jax params file ({what})")


def _npy_header(f) -> Tuple[Tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of the ``.npy`` data at ``f``'s position; ``ValueError`` if there is none."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    return shape, dtype


def _check_file(path: str) -> None:
    """Raises unless ``path`` is a file that starts like a zip archive (what ``np.savez`` writes)."""
    if os.path.isdir(path):
        raise _not_params(path, "it is a folder; ffnn_jax.load_model opens run folders")
    if not os.path.exists(path):
        raise FileNotFoundError(f"`path` {path!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(16)
        if head.startswith(np.lib.format.MAGIC_PREFIX):
            f.seek(0)
            try:
                shape, dtype = _npy_header(f)
            except (ValueError, OSError, EOFError) as error:
                raise _not_params(path, f"a damaged .npy file: {error}") from error
            raise _not_params(path, f"a .npy file of one {dtype} array of shape {shape}, not an .npz archive")
    if not head:
        raise _not_params(path, "the file is empty")
    if head.startswith(b"\x80"):
        raise _not_params(path, "a Python pickle, which ffnn_jax never loads")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise _not_params(path, f"not an .npz archive: it starts with {head!r}")


def _holds_objects(arrays, name: str) -> bool:
    """Whether the header of ``name`` in an open ``.npz`` says it is an object (pickled) array."""
    try:
        with arrays.zip.open(name + ".npy") as member:
            return _npy_header(member)[1].hasobject
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile):
        return False


def _array(path: str, arrays, name: str) -> np.ndarray:
    """``arrays[name]``, with numpy's refusal of pickled objects and damaged members turned into clear errors."""
    try:
        array = arrays[name]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        if _holds_objects(arrays, name):
            raise _not_params(
                path, f"array {name!r} holds pickled Python objects, which ffnn_jax never loads"
            ) from None
        raise _not_params(path, f"a damaged .npz archive: reading {name!r} failed: {error}") from error
    if not isinstance(array, np.ndarray):  # a zip member that is not .npy data comes back as raw bytes
        raise _not_params(path, f"its entry {name!r} is not a NumPy array")
    return array


def _metadata(path: str, raw: np.ndarray) -> dict:
    """The JSON metadata, checked to be an object with valid ``layer_sizes``."""
    try:
        meta = json.loads(raw.tobytes().decode())
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise _not_params(path, f"its metadata is not valid JSON: {error}") from error
    if not isinstance(meta, dict):
        raise _not_params(path, f"its metadata is a JSON {type(meta).__name__}, not an object")
    if "layer_sizes" not in meta:
        raise _not_params(path, f"its metadata has no 'layer_sizes'; its keys are {sorted(meta)}")
    sizes = meta["layer_sizes"]
    if not (
        isinstance(sizes, list)
        and len(sizes) >= 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)
    ):
        raise _not_params(path, f"its metadata's 'layer_sizes' must be at least 2 positive integers, got {sizes!r}")
    return meta


def _check_layers(path: str, params: Params, sizes: list, members: Tuple[int, ...] = ()) -> None:
    """Raises unless every ``W`` is ``[*members, n_in, n_out]`` and every ``b`` ``[*members, n_out]`` of
    ``sizes``, in floating point."""
    for i, layer in enumerate(params):
        shapes = (("W", layer.W, (*members, sizes[i], sizes[i + 1])), ("b", layer.b, (*members, sizes[i + 1])))
        for name, got, want in shapes:
            if got.shape != want:
                raise _not_params(
                    path,
                    f"its metadata says layer_sizes {sizes}, so 'layer{i}/{name}' should have shape {want}, "
                    f"but it has {got.shape}",
                )
            if not np.issubdtype(got.dtype, np.floating):
                raise _not_params(path, f"'layer{i}/{name}' has dtype {got.dtype}, not a floating-point type")


def read_params(path: str) -> Tuple[Params, dict]:
    """:func:`load_params` without its warning about standardized inputs (for :func:`ffnn_jax.load_model`)."""
    _check_file(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise _not_params(path, f"a truncated or damaged .npz archive: {error}") from error
    with archive as arrays:
        if _METADATA_KEY not in arrays.files:
            raise _not_params(path, f"no metadata; it holds arrays {sorted(arrays.files)}")
        meta = _metadata(path, _array(path, arrays, _METADATA_KEY))
        sizes = meta["layer_sizes"]
        expected = {f"layer{i}/{name}" for i in range(len(sizes) - 1) for name in ("W", "b")}
        missing, extra = sorted(expected - set(arrays.files)), sorted(set(arrays.files) - expected - {_METADATA_KEY})
        if missing or extra:
            found = ", ".join(
                f"{label} {names}" for label, names in (("no arrays", missing), ("extra arrays", extra)) if names
            )
            raise _not_params(path, f"its metadata says layer_sizes {sizes}, but it has {found}")
        params = tuple(
            LayerParams(W=_array(path, arrays, f"layer{i}/W"), b=_array(path, arrays, f"layer{i}/b"))
            for i in range(len(sizes) - 1)
        )
    members = meta.get("members")
    if members is not None and not (isinstance(members, int) and not isinstance(members, bool) and members >= 1):
        raise _not_params(path, f"its metadata's 'members' must be a positive integer, got {members!r}")
    _check_layers(path, params, sizes, () if members is None else (members,))
    return params, meta


def load_params(path: str) -> Tuple[Params, dict]:
    """Loads what :func:`save_params` wrote; returns ``(params, metadata)`` (NumPy leaves).

    Args:
      path: a ``.npz`` written by :func:`save_params` (e.g. the ``params.npz`` of ``ffnn-jax train``).

    Returns:
      ``(params, metadata)``: a tuple of ``LayerParams`` and the JSON metadata (with ``layer_sizes``). A
      saved ensemble (``metadata["members"]`` = k) holds each array with a leading member axis [k, ...].

    Raises:
      FileNotFoundError: nothing is at ``path``.
      ValueError: ``path`` is not a params file (a ``.npy``, text, pickle, truncated or damaged archive, pickled
        object arrays, invalid metadata, shapes that disagree with ``layer_sizes``); the message says what it found.

    Warns:
      UserWarning: the metadata says the network was trained on standardized inputs, so ``forward``/``predict`` on
        these params need inputs scaled the same way; :func:`ffnn_jax.load_model` applies the saved scaling.
    """
    params, meta = read_params(path)
    model = meta.get("model")
    if isinstance(model, dict) and model.get("standardizer") is not None:
        warnings.warn(_STANDARDIZED_MSG.format(path=path), UserWarning, stacklevel=2)
    return params, meta
