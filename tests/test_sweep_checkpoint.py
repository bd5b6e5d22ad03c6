"""A sweep with a checkpoint_dir survives signals and resumes to exactly the uninterrupted sweep."""

import os
import signal

import numpy as np
import pytest
from helpers import assert_trees_all_equal

import ffnn_jax
from ffnn_jax import _sweep


SETTINGS = dict(hidden_sizes=(7,), epochs=3, batch_size=32, optimizer="adam", validation_fraction=0.2, max_members=2)
GRID = {"learning_rate": [1e-3, 1e-2], "seed": [0, 1]}  # 4 members in chunks of 2: 3 dispatches each


@pytest.fixture(scope="module")
def digits():
    x, y = ffnn_jax.load_digits()
    return np.asarray(x)[:400], np.asarray(y)[:400]


@pytest.fixture(scope="module")
def uninterrupted(digits):
    return ffnn_jax.sweep(*digits, grid=GRID, **SETTINGS)


def _assert_same_sweep(a, b):
    assert a.table == b.table and a.best_index == b.best_index
    for first, second in zip(a.results, b.results):
        assert_trees_all_equal(first.params, second.params)
        assert_trees_all_equal(first.state.opt_state, second.state.opt_state)
        assert first.history == {**second.history, "time_s": first.history["time_s"]}  # wall times aside


def _signal_at_dispatch(monkeypatch, call: int, sig: int) -> None:
    """The sweep's ``call``-th dispatch sends ``sig`` to this process (as Ctrl-C or kill would mid-dispatch)."""
    real, calls = _sweep.run_members, []

    def run_members(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), sig)
        return real(*args, **kwargs)

    monkeypatch.setattr(_sweep, "run_members", run_members)


@pytest.mark.parametrize("call, sig", [(2, signal.SIGINT), (5, signal.SIGTERM)], ids=["first-chunk", "second-chunk"])
def test_a_signal_saves_the_sweep_and_resuming_equals_the_uninterrupted_sweep(
    tmp_path, monkeypatch, digits, uninterrupted, call, sig
):
    folder = str(tmp_path / "ckpt")
    _signal_at_dispatch(monkeypatch, call, sig)
    with pytest.raises(ffnn_jax.SweepInterrupted) as stopped:
        ffnn_jax.sweep(*digits, grid=GRID, checkpoint_dir=folder, **SETTINGS)
    assert stopped.value.signal == signal.Signals(sig).name and "resume=True" in str(stopped.value)
    chunks = sorted(name for name in os.listdir(folder) if name.startswith("chunk-"))
    assert chunks == ["chunk-000-000000", "chunk-000-000002"][: 1 + (call > 3)]
    monkeypatch.undo()
    resumed = ffnn_jax.sweep(*digits, grid=GRID, checkpoint_dir=folder, resume=True, **SETTINGS)
    _assert_same_sweep(resumed, uninterrupted)
    again = ffnn_jax.sweep(*digits, grid=GRID, checkpoint_dir=folder, resume=True, **SETTINGS)  # nothing left to run
    _assert_same_sweep(again, uninterrupted)


def test_a_resumed_sweep_may_take_more_epochs(tmp_path, digits, uninterrupted):
    folder = str(tmp_path / "ckpt")
    ffnn_jax.sweep(*digits, grid=GRID, checkpoint_dir=folder, **{**SETTINGS, "epochs": 2})
    resumed = ffnn_jax.sweep(*digits, grid=GRID, checkpoint_dir=folder, resume=True, **SETTINGS)
    _assert_same_sweep(resumed, uninterrupted)


def test_a_corrupt_newest_checkpoint_is_skipped_for_the_one_before(tmp_path, monkeypatch, digits, uninterrupted):
    folder = tmp_path / "ckpt"
    _signal_at_dispatch(monkeypatch, 3, signal.SIGINT)
    with pytest.raises(ffnn_jax.SweepInterrupted):
        ffnn_jax.sweep(*digits, grid=GRID, checkpoint_dir=str(folder), **SETTINGS)
    monkeypatch.undo()
    newest = max((folder / "chunk-000-000000").iterdir())
    newest.write_bytes(newest.read_bytes()[:100])  # a disk that lost the file's end
    with pytest.warns(RuntimeWarning, match="skipping checkpoint"):
        resumed = ffnn_jax.sweep(*digits, grid=GRID, checkpoint_dir=str(folder), resume=True, **SETTINGS)
    _assert_same_sweep(resumed, uninterrupted)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(resume=False), "holds the checkpoints of a sweep: pass resume=True"),
        (dict(grid={"learning_rate": [1e-3, 3e-2], "seed": [0, 1]}), "made with the grid"),
        (dict(batch_size=16), "made with `batch_size` = 32, this call has 16"),
        (dict(x_rows=slice(None, None, -1)), "the digest of `x`"),
        (dict(max_members=4), "made with `max_members` = 2, this call has 4"),
        (dict(checkpoint_every=0), "`checkpoint_every` must be a positive integer"),
        (dict(saved_epochs=2, epochs=1), "`epochs`=1: it has already run 2 epochs; `epochs` is the total"),
    ],
    ids=["no-resume", "grid", "setting", "data", "chunks", "every", "fewer-epochs"],
)
def test_a_folder_holding_a_sweep_is_only_resumed_by_the_same_sweep(tmp_path, monkeypatch, digits, change, message):
    x, y = digits
    folder, change = str(tmp_path / "ckpt"), dict(change)
    ffnn_jax.sweep(x, y, grid=GRID, checkpoint_dir=folder, **{**SETTINGS, "epochs": change.pop("saved_epochs", 1)})
    saved = {path: os.path.getmtime(os.path.join(r, path)) for r, _, files in os.walk(folder) for path in files}

    def must_not_train(*args, **kwargs):
        raise AssertionError("the refusal came after training started")

    monkeypatch.setattr(_sweep, "run_members", must_not_train)
    arguments = {"grid": GRID, **SETTINGS, "resume": True, **change}
    rows = arguments.pop("x_rows", slice(None))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        ffnn_jax.sweep(x[rows], y, checkpoint_dir=folder, **arguments)
    assert saved == {path: os.path.getmtime(os.path.join(r, path)) for r, _, files in os.walk(folder) for path in files}


def test_a_signal_during_the_refit_is_saved_and_the_resumed_sweep_continues_the_refit(tmp_path, monkeypatch, digits):
    settings = {**SETTINGS, "validation_fraction": 0.0, "epochs": 4}
    grid = {"learning_rate": [1e-3, 1e-2]}
    uninterrupted = ffnn_jax.sweep(*digits, grid=grid, folds=2, **settings)
    real, refits, epochs_run = _sweep.train, [], []

    def interrupted_refit(*args, **kwargs):
        refits.append(kwargs.get("resume"))

        def ctrl_c_after_epoch_2(epoch, row):
            epochs_run.append(epoch)
            if epoch == 2 and len(refits) == 1:
                os.kill(os.getpid(), signal.SIGINT)

        return real(*args, callbacks=[ctrl_c_after_epoch_2], **kwargs)

    monkeypatch.setattr(_sweep, "train", interrupted_refit)
    folder = tmp_path / "ckpt"
    with pytest.raises(ffnn_jax.SweepInterrupted, match="resume=True"):
        ffnn_jax.sweep(*digits, grid=grid, folds=2, checkpoint_dir=str(folder), **settings)
    assert sorted(os.listdir(folder / "refit"))  # the refit's epochs so far are on disk
    resumed = ffnn_jax.sweep(*digits, grid=grid, folds=2, checkpoint_dir=str(folder), resume=True, **settings)
    assert refits == [False, True] and epochs_run == [1, 2, 3, 4]  # the resumed refit ran epochs 3 and 4 only
    assert resumed.best.history["epoch"] == [1, 2, 3, 4]
    assert_trees_all_equal(resumed.best.params, uninterrupted.best.params)
    assert resumed.table == uninterrupted.table


def test_an_interrupted_ensemble_is_saved_and_resuming_gives_the_uninterrupted_ensemble(tmp_path, monkeypatch, digits):
    settings = dict(hidden_sizes=(7,), epochs=3, batch_size=32, optimizer="adam", validation_fraction=0.2)
    uninterrupted = ffnn_jax.train(*digits, ensemble=2, **settings)
    folder = str(tmp_path / "ckpt")
    _signal_at_dispatch(monkeypatch, 2, signal.SIGINT)
    with pytest.raises(ffnn_jax.SweepInterrupted, match=r"the ensemble was stopped by SIGINT.*call train\(\.\.\., "):
        ffnn_jax.train(*digits, ensemble=2, checkpoint_dir=folder, **settings)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="resume"):  # a new ensemble does not overwrite the saved one
        ffnn_jax.train(*digits, ensemble=2, checkpoint_dir=folder, **settings)
    resumed = ffnn_jax.train(*digits, ensemble=2, checkpoint_dir=folder, resume=True, **settings)
    for a, b in zip(resumed.members, uninterrupted.members):
        assert_trees_all_equal(a.params, b.params)
    assert resumed.scores == uninterrupted.scores
