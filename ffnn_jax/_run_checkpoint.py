"""Checkpoints of a whole run: one ``.npz`` file per saved epoch, no pickle, checksummed, atomic.

A checkpoint file ``ckpt-<epoch>.npz`` holds:

- ``leaf/<i>``: the i-th array leaf of the :class:`ffnn_jax._loop.RunState` (PRNG keys as their
  uint32 key data), in ``jax.tree_util`` flatten order;
- ``__metadata__``: UTF-8 JSON with ``format`` ("ffnn_jax.run"), ``version`` (1), ``epoch``,
  ``leaves`` (``[key path, dtype, shape]`` per leaf), ``history`` (per-epoch lists, as
  ``TrainResult.history``), ``about`` (config, data description, standardizer, task, loss, and
  the ffnn_jax and jax versions);
- ``__sha256__``: the hex SHA-256 of the metadata bytes followed by every leaf's bytes.

A file is written to a temporary name, fsynced, renamed into place and the folder fsynced, so a
kill at any moment leaves either the previous checkpoints or the new one complete. The newest
``keep`` files are kept. Restoring goes into a template run built by ``train()`` from the same
settings (the template gives the tree structure; the file's names, shapes and dtypes must match).
Writes run on one background thread; a failed write is raised at the next save or at ``close``.
"""

import concurrent.futures
import glob
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
import zipfile
import zlib
from typing import Any, List, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ._checkpoint import atomic_write_bytes


FORMAT, VERSION = "ffnn_jax.run", 1
_NAME = re.compile(r"^ckpt-(\d+)\.npz$")


class CheckpointError(OSError):
    """A checkpoint could not be written. The run is not lost: ``.run`` (the run state, host
    arrays), ``.params`` and ``.history`` hold it as it was when the error was raised."""

    def __init__(self, message: str, *, path: str, run: Any = None, params: Any = None, history: Any = None):
        super().__init__(message)
        self.path, self.run, self.params, self.history = path, run, params, history


class Checkpoint(NamedTuple):
    path: str
    epoch: int
    meta: dict
    arrays: List[np.ndarray]


def _is_key(leaf) -> bool:
    return jnp.issubdtype(getattr(leaf, "dtype", np.float32), jax.dtypes.prng_key)


def host_leaves(tree) -> Tuple[List[str], List[np.ndarray]]:
    """Key paths and host copies of ``tree``'s leaves (copies: the device buffers are donated next)."""
    named = jax.tree_util.tree_flatten_with_path(tree)[0]
    names = [jax.tree_util.keystr(path) for path, _ in named]
    leaves = [jax.random.key_data(leaf) if _is_key(leaf) else leaf for _, leaf in named]
    return names, [np.array(leaf, copy=True) for leaf in jax.device_get(leaves)]


def _digest(body: bytes, arrays: List[np.ndarray]) -> str:
    h = hashlib.sha256(body)
    for array in arrays:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def encode(names: List[str], arrays: List[np.ndarray], *, epoch: int, history: dict, about: dict) -> bytes:
    """The bytes of one checkpoint file (see the module docstring)."""
    leaves = [[name, array.dtype.str, list(array.shape)] for name, array in zip(names, arrays)]
    body = json.dumps(
        {"format": FORMAT, "version": VERSION, "epoch": epoch, "leaves": leaves, "history": history, "about": about}
    ).encode()  # key order kept: the history's columns come back in their order
    members = {f"leaf/{i}": array for i, array in enumerate(arrays)}
    members["__metadata__"] = np.frombuffer(body, np.uint8)
    members["__sha256__"] = np.frombuffer(_digest(body, arrays).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


def decode(path: str) -> Checkpoint:
    """Reads and verifies one checkpoint file; ``ValueError`` says what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as members:
            body = members["__metadata__"].tobytes()
            digest = members["__sha256__"].tobytes().decode()
            meta = json.loads(body)
            arrays = [members[f"leaf/{i}"] for i in range(len(meta["leaves"]))]
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{path!r} is not a readable ffnn_jax checkpoint ({type(error).__name__}: {error})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not an ffnn_jax run checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path!r} has checkpoint format version {meta.get('version')}; this ffnn_jax reads {VERSION}")
    if _digest(body, arrays) != digest:
        raise ValueError(f"{path!r} is corrupt: its SHA-256 does not match its contents")
    return Checkpoint(path, int(meta["epoch"]), meta, arrays)


def restore_into(template, checkpoint: Checkpoint):
    """``template`` with its leaves replaced by the checkpoint's (names, shapes, dtypes must match)."""
    named, treedef = jax.tree_util.tree_flatten_with_path(template)
    saved = checkpoint.meta["leaves"]
    if len(saved) != len(named):
        raise ValueError(
            f"the checkpoint {checkpoint.path!r} holds {len(saved)} arrays; this run has {len(named)} "
            "(a different optimizer or network)"
        )
    leaves = []
    for (path, leaf), (name, _, _), array in zip(named, saved, checkpoint.arrays):
        expected = jax.random.key_data(leaf) if _is_key(leaf) else leaf
        here = jax.tree_util.keystr(path)
        if name != here or array.shape != expected.shape or array.dtype != expected.dtype:
            raise ValueError(
                f"the checkpoint {checkpoint.path!r} does not fit this run: it has {name} {array.dtype}"
                f"{list(array.shape)}, this run needs {here} {expected.dtype}{list(expected.shape)}"
            )
        value = jnp.array(array)
        leaves.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(leaf)) if _is_key(leaf) else value)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def checkpoint_files(folder: str) -> List[Tuple[int, str]]:
    """``(epoch, path)`` of the checkpoint files in ``folder``, newest first."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(folder), "ckpt-*.npz")):
        match = _NAME.match(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def newest_valid(folder: str) -> Optional[Checkpoint]:
    """The newest checkpoint in ``folder`` that reads and verifies; older ones are tried after a
    warning for each bad one. None if there are none; ``ValueError`` if all are bad."""
    files = checkpoint_files(folder)
    problems = []
    for _, path in files:
        try:
            return decode(path)
        except ValueError as error:
            problems.append(str(error))
            warnings.warn(f"skipping checkpoint: {error}; trying the previous one", RuntimeWarning, stacklevel=3)
    if files:
        raise ValueError(f"no valid checkpoint in {folder!r}: " + "; ".join(problems))
    return None


class CheckpointStore:
    """Writes a run's checkpoints into ``folder`` (on one background thread), keeping the newest ``keep``.

    With ``write=False`` (every process of a multi-process run but process 0) it keeps the same
    schedule and paths and writes nothing.
    """

    def __init__(self, folder: str, *, keep: int, write: bool = True):
        self.folder, self.keep, self.writes = os.path.abspath(folder), keep, write
        self._pending: Optional[concurrent.futures.Future] = None
        self.saved_epoch: Optional[int] = None
        self._pool = None
        if not write:
            return
        try:
            os.makedirs(self.folder, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.folder):
                pass
        except OSError as error:
            raise CheckpointError(
                f"`checkpoint_dir` {folder!r} is not a writable folder ({error.strerror or error})", path=folder
            ) from error
        for stale in glob.glob(os.path.join(glob.escape(self.folder), ".tmp-*ckpt-*.npz")):
            os.remove(stale)  # a write that a kill interrupted; the renamed files are all complete
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ffnn_jax-checkpoint")

    def path(self, epoch: int) -> str:
        return os.path.join(self.folder, f"ckpt-{epoch:08d}.npz")

    def save(self, run, *, epoch: int, history: dict, about: dict, wait: bool = False) -> str:
        """Queues a checkpoint of ``run`` at ``epoch``; with ``wait`` returns once it is on disk.
        Raises the error of an earlier write that failed."""
        self.wait()
        self.saved_epoch = epoch
        if not self.writes:
            return self.path(epoch)
        names, arrays = host_leaves(run)
        history = {name: list(values) for name, values in history.items()}
        self._pending = self._pool.submit(self._write, names, arrays, epoch, history, about)
        if wait:
            self.wait()
        return self.path(epoch)

    def _write(self, names, arrays, epoch, history, about) -> None:
        path = self.path(epoch)
        try:
            atomic_write_bytes(path, encode(names, arrays, epoch=epoch, history=history, about=about), overwrite=True)
            for _, old in checkpoint_files(self.folder)[self.keep :]:
                os.remove(old)
        except OSError as error:
            raise CheckpointError(f"could not write the checkpoint {path!r}: {error.strerror or error}", path=path)

    def wait(self) -> None:
        """Blocks until the queued write is on disk; raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


def check_epochs_cover(epochs: int, done: int, path: str) -> None:
    """A resumed run's ``epochs`` (the total) must not be fewer than the ``done`` epochs saved at ``path``."""
    if epochs < done:
        raise ValueError(
            f"cannot resume from {path!r} with `epochs`={epochs}: it has already run {done} epochs; `epochs` is "
            f"the total, so pass {done} or more (ffnn-jax: -e {done} or more)"
        )
