"""Saving and loading parameters in a safe format: a NumPy ``.npz`` of arrays plus JSON metadata.

No pickle is written or read. Writes go to a temporary file in the same folder and are renamed
into place, so an interrupted save never leaves a half-written file, and an existing file is
only replaced when ``overwrite=True``.
"""

import io
import json
import os
import tempfile
from typing import Optional, Tuple

import jax
import numpy as np

from ._params import layer_sizes_of
from ._types import LayerParams, Params


_METADATA_KEY = "__metadata__"


def atomic_write_bytes(path: str, data: bytes, *, overwrite: bool = False) -> None:
    """Writes ``data`` to ``path`` through a temporary file and an atomic rename."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"`path` {path!r} exists; pass overwrite=True to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
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
    meta = dict(metadata or {})
    meta["layer_sizes"] = list(layer_sizes_of(params))
    arrays = {}
    for i, layer in enumerate(jax.device_get(params)):
        arrays[f"layer{i}/W"] = np.asarray(layer.W)
        arrays[f"layer{i}/b"] = np.asarray(layer.b)
    arrays[_METADATA_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue(), overwrite=overwrite)


def load_params(path: str) -> Tuple[Params, dict]:
    """Loads what :func:`save_params` wrote; returns ``(params, metadata)`` (NumPy leaves)."""
    with np.load(path, allow_pickle=False) as arrays:
        if _METADATA_KEY not in arrays.files:
            raise ValueError(f"{path!r} is not an ffnn_jax params file (no metadata)")
        meta = json.loads(arrays[_METADATA_KEY].tobytes().decode())
        n_layers = len(meta["layer_sizes"]) - 1
        params = tuple(LayerParams(W=arrays[f"layer{i}/W"], b=arrays[f"layer{i}/b"]) for i in range(n_layers))
    if list(layer_sizes_of(params)) != meta["layer_sizes"]:
        raise ValueError(f"{path!r} is corrupt: weight shapes disagree with its metadata")
    return params, meta
