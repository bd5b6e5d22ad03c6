"""Checkpoints of a sweep: each chunk of members saved as one run checkpoint of their stacked state.

A sweep's ``checkpoint_dir`` holds ``sweep.json`` (what the sweep is: its grid, the settings its
members share less ``epochs``, digests of its data and its folds) and one folder per chunk of
members, ``chunk-<program>-<first member>``, of :mod:`ffnn_jax._run_checkpoint` files: the
chunk's run states stacked on the member axis and their histories as one float64 array
[members, columns, epochs] (NaN past a member's last epoch; JSON of every value would make each
save cost more as the sweep goes), and in their ``about`` the members' indices, epochs and the
history's column names. A resumed sweep builds every chunk as a fresh one would, then restores it
from its newest valid file: a finished chunk runs nothing, the others go on from their last save
exactly as if they had not been stopped. With folds, the best point's refit on all the data is a
run of ``train()`` checkpointed in ``refit/``.
"""

import glob
import json
import os
import re
from typing import List, Optional, Tuple

import numpy as np

from ._checkpoint import atomic_write_bytes
from ._distributed import is_primary, refuse_together
from ._run_checkpoint import (
    CheckpointError,
    CheckpointStore,
    check_epochs_cover,
    checkpoint_files,
    newest_valid,
    restore_into,
)
from ._setup import resumed


MANIFEST, FORMAT, VERSION = "sweep.json", "ffnn_jax.sweep", 1
REFIT = "refit"  # the folder of the refit run
_CHUNK = re.compile(r"chunk-\d{3,}-\d{6,}")


def remove_checkpoints(folder: str) -> None:
    """Removes the checkpoints ffnn_jax wrote in ``folder`` (a run's ckpt files, or a sweep's
    manifest, chunk folders and refit run), nothing else: ``ffnn-jax train|sweep --overwrite``
    starts anew, and a later resume must not continue the run it replaced."""
    if not os.path.isdir(folder):
        return
    inner = [folder, os.path.join(folder, REFIT)]
    inner += [
        path
        for path in glob.glob(os.path.join(glob.escape(folder), "chunk-*"))
        if _CHUNK.fullmatch(os.path.basename(path))
    ]
    for part in inner:
        for _, path in checkpoint_files(part):
            os.remove(path)
        if part != folder and os.path.isdir(part) and not os.listdir(part):
            os.rmdir(part)
    manifest = os.path.join(folder, MANIFEST)
    if os.path.exists(manifest):
        os.remove(manifest)


class SweepInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM arrived during a sweep with a ``checkpoint_dir``: the running
    dispatch finished and its chunk was saved. ``signal``: its name; ``checkpoint_dir``: where
    ``sweep(..., checkpoint_dir=..., resume=True)`` continues it."""

    def __init__(self, signal_name: str, checkpoint_dir: str, *, command: str = "sweep()"):
        cli = " (ffnn-jax sweep: the same flags plus --resume)" if command == "sweep()" else ""
        super().__init__(
            f"the {'sweep' if command == 'sweep()' else 'ensemble'} was stopped by {signal_name}; its members are "
            f"saved in {checkpoint_dir!r}. To finish it, call {command} again with the same arguments and "
            f"resume=True{cli}"
        )
        self.signal, self.checkpoint_dir = signal_name, checkpoint_dir


class SweepCheckpoints:
    """A sweep's checkpoint folder: its manifest checked (or written) on creation, before
    anything compiles; :meth:`store` gives each chunk its own run-checkpoint folder.

    ``about`` describes the sweep (JSON types, without ``epochs``); ``resume`` False refuses a
    folder that already holds a sweep, so no saved sweep is overwritten.
    """

    def __init__(self, folder: str, *, about: dict, every: int, keep: int, resume: bool):
        self.folder, self.every, self.keep, self.resume = os.path.abspath(folder), every, keep, resume
        path = os.path.join(self.folder, MANIFEST)
        refusal = None
        try:
            if os.path.exists(path):
                saved = _read_manifest(path)
                if not resume:
                    raise ValueError(
                        f"`checkpoint_dir` {folder!r} holds the checkpoints of a sweep: pass resume=True (ffnn-jax "
                        "sweep: --resume) to continue it, or choose another folder (or remove this one) to start anew"
                    )
                _check_same_sweep(saved, about, path)
        except ValueError as error:
            refusal = error
        # every process looks before process 0 writes the manifest (else the others would find it, as a sweep's)
        refuse_together(refusal, f"`checkpoint_dir` {folder!r}")
        if is_primary() and not os.path.exists(path):
            try:
                atomic_write_bytes(path, json.dumps(about, indent=1).encode(), overwrite=True)
            except OSError as error:
                raise CheckpointError(
                    f"`checkpoint_dir` {folder!r} is not a writable folder ({error.strerror or error})", path=folder
                ) from error

    def store(self, program: int, first: int) -> CheckpointStore:
        """The run-checkpoint store of the chunk of ``program`` whose first member is ``first``."""
        folder = os.path.join(self.folder, f"chunk-{program:03d}-{first:06d}")
        return CheckpointStore(folder, keep=self.keep, write=is_primary())

    def restore(self, store: CheckpointStore, template, members: List[int], totals: List[int]) -> Optional[Tuple]:
        """``(runs, epochs [members], histories)`` of the chunk's newest valid checkpoint, its
        arrays in ``template``'s tree; None when not resuming or nothing is saved yet. ``totals``:
        the members' ``epochs``, none fewer than it has run."""
        saved = newest_valid(store.folder) if self.resume else None
        if saved is None:
            return None
        about = saved.meta["about"]
        if about.get("members") != members:
            raise ValueError(
                f"cannot resume from {saved.path!r}: that chunk held members {about.get('members')}, this sweep's "
                f"chunk holds {members}; the sweep was split into chunks otherwise (pass the max_members and devices "
                "it ran with)"
            )
        table = saved.arrays[-1]  # the histories, the tree's last leaf (see chunk_checkpoint), float64 as saved
        runs, _ = restore_into((template, np.zeros_like(table)), saved)
        runs = resumed(runs, template)  # a schedule's length follows this call's epochs
        epochs = np.asarray(about["epochs"], np.int64)
        for done, total in zip(epochs.tolist(), totals):
            check_epochs_cover(total, done, saved.path)
        columns = about["history_columns"]
        histories = [
            {name: _column(name, table[m, j, : epochs[m]]) for j, name in enumerate(columns)} if epochs[m] else {}
            for m in range(len(members))
        ]
        return runs, epochs, histories


def chunk_checkpoint(runs, members: List[int], epochs: np.ndarray, histories: List[dict]) -> Tuple:
    """``(tree, epoch=, about=)`` for :meth:`CheckpointStore.save` of a chunk: its stacked
    ``runs`` and the members' histories as one array, the members' indices and ``epochs``."""
    columns = list(next((history for history in histories if history), {}))
    table = np.full((len(members), len(columns), max(1, int(epochs.max()))), np.nan)
    for m, history in enumerate(histories):
        for j, name in enumerate(columns):
            values = history.get(name, [])
            table[m, j, : len(values)] = values
    about = {"members": list(members), "epochs": epochs.tolist(), "history_columns": columns}
    return (runs, table), {"epoch": int(epochs.sum()), "about": about}


def _column(name: str, values: np.ndarray) -> list:
    return [int(v) for v in values] if name == "epoch" else values.tolist()


def _read_manifest(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            saved = json.loads(f.read())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path!r} is not a readable sweep manifest ({type(error).__name__}: {error})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not an ffnn_jax sweep manifest")
    if saved.get("version") != VERSION:
        raise ValueError(f"{path!r} has sweep format version {saved.get('version')}; this ffnn_jax reads {VERSION}")
    return saved


def _check_same_sweep(saved: dict, about: dict, path: str) -> None:
    for part in ("grid", "settings", "data"):
        ours, theirs = about[part], saved.get(part)
        if part == "grid":
            if ours != theirs:
                raise ValueError(
                    f"cannot resume the sweep of {path!r}: it was made with the grid {theirs}, this call has {ours} "
                    "(or use a new checkpoint_dir)"
                )
            continue
        theirs = theirs or {}
        for name in sorted(set(ours) | set(theirs)):
            if ours.get(name) == theirs.get(name):
                continue
            if part == "settings":
                made = f"`{name}` = {theirs.get(name)!r}, this call has {ours.get(name)!r}"
            else:  # digests of sampled rows: which argument differs is what the user can act on
                made = f"other data: the digest of `{name}` (its shape and sampled rows) differs"
            raise ValueError(
                f"cannot resume the sweep of {path!r}: it was made with {made}; only `epochs` may change "
                "(or use a new checkpoint_dir)"
            )
