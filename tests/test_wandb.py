"""Weights & Biases logging, offline: what train(), `ffnn-jax train -wp` and `ffnn-jax sweep -wp` record.

Each test logs with ``WANDB_MODE=offline`` into its own ``WANDB_DIR`` and reads back the
``.wandb`` file of every run folder ``WANDB_DIR/wandb/offline-run-*/``: wandb's record log (a
LevelDB-style log of ``wandb_internal_pb2.Record`` protobufs; wandb >= 0.19 has no Python reader
of its own), so the tests see what ``wandb sync`` would upload.
"""

import glob
import json
import os
import struct
import sys

import numpy as np
import pytest

import ffnn_jax
from ffnn_jax import cli
from ffnn_jax._wandb import WANDB_MISSING, WandbMissingError


wandb = pytest.importorskip("wandb")

_BLOCK, _HEADER = 32768, 7  # the log's block size; the file header and each record header are 7 bytes
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Offline wandb writing under tmp_path (wandb caches its settings per process: torn down around the test)."""
    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                        "WANDB_CONSOLE": "off"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    wandb.teardown()
    yield tmp_path
    wandb.teardown()


def _records(path: str) -> list:
    from wandb.proto import wandb_internal_pb2

    with open(path, "rb") as f:
        data = f.read()
    ident, magic, version = struct.unpack("<4sHB", data[:_HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"not a wandb record log: {path}"
    records, pos, pieces = [], _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if left < _HEADER or (kind == 0 and length == 0):  # the rest of the block is padding
            pos += left
            continue
        chunk, pos = data[pos + _HEADER : pos + _HEADER + length], pos + _HEADER + length
        pieces = chunk if kind in (_FULL, _FIRST) else pieces + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
    return records


def _items(updates) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in updates}


def _read_run(folder: str) -> dict:
    """One offline run: its run record's fields, config, history rows, final summary and exit code."""
    (path,) = glob.glob(os.path.join(folder, "*.wandb"))
    run = {"config": {}, "history": [], "summary": {}, "exit_code": None, "folder": folder}
    for record in _records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(id=record.run.run_id, project=record.run.project, entity=record.run.entity, group=record.run.run_group,
                       name=record.run.display_name, job_type=record.run.job_type)  # fmt: skip
            run["config"].update(_items(record.run.config.update))
        elif kind == "config":
            run["config"].update(_items(record.config.update))
        elif kind == "history":
            run["history"].append({k: v for k, v in _items(record.history.item).items() if not k.startswith("_")})
        elif kind == "summary":
            run["summary"].update(_items(record.summary.update))
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run


def _runs(root) -> list:
    wandb.teardown()  # everything written and closed before it is read
    return [_read_run(folder) for folder in sorted(glob.glob(os.path.join(str(root), "wandb", "offline-run-*")))]


def _epoch_rows(run: dict) -> list:
    return [row for row in run["history"] if "train_loss" in row]


def test_train_logs_its_settings_every_epoch_and_the_final_metrics(offline, digits):
    x, y = digits
    result = ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=3, batch_size=128, validation_fraction=0.2,
                            optimizer="adam", wandb_project="proj")  # fmt: skip
    (run,) = _runs(offline)
    assert run["project"] == "proj" and run["exit_code"] == 0
    config = run["config"]
    assert config["hidden_sizes"] == [8] and config["epochs"] == 3 and config["optimizer"] == "adam"
    assert config["data"] == {"x": [1797, 64], "y": [1797]} and config["ffnn_jax_version"] == ffnn_jax.__version__
    rows = _epoch_rows(run)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    np.testing.assert_allclose([row["train_loss"] for row in rows], result.history["train_loss"])
    assert all("val_accuracy" in row for row in rows)
    summary = run["summary"]
    assert summary["final_train_loss"] == pytest.approx(result.history["train_loss"][-1])
    assert summary["final_val_accuracy"] == pytest.approx(result.history["val_accuracy"][-1])
    assert summary["epochs_run"] == 3 and summary["best_epoch"] == result.best_epoch


def test_resuming_a_checkpointed_run_continues_its_wandb_run(offline, digits, tmp_path):
    x, y = digits
    settings = dict(hidden_sizes=(8,), batch_size=256, checkpoint_dir=str(tmp_path / "ckpt"), wandb_project="proj")
    ffnn_jax.train(x, y, epochs=2, **settings)
    ffnn_jax.train(x, y, epochs=4, resume=True, **settings)
    ffnn_jax.train(x, y, epochs=5, resume=True, **{**settings, "wandb_project": "other"})  # another project
    by_epochs = {tuple(row["epoch"] for row in _epoch_rows(run)): run for run in _runs(offline)}
    assert sorted(by_epochs) == [(1, 2), (3, 4), (5,)]  # each call logs the epochs it ran
    first, resumed, elsewhere = by_epochs[(1, 2)], by_epochs[(3, 4)], by_epochs[(5,)]
    assert resumed["id"] == first["id"] and elsewhere["id"] != first["id"]
    assert resumed["project"] == "proj" and elsewhere["project"] == "other"


def test_a_train_call_that_raises_finishes_its_run_marked_failed(offline, digits):
    x, y = digits
    with pytest.raises(ValueError, match="the same number of samples"):
        ffnn_jax.train(x, y[:-1], hidden_sizes=(8,), epochs=1, wandb_project="proj")
    (run,) = _runs(offline)
    assert run["exit_code"] == 1 and run["summary"]["error"].startswith("ValueError")


@pytest.mark.parametrize(
    "keywords, error, message",
    [
        ({"wandb_project": 3}, TypeError, "`wandb_project` must be a string or None, got 3"),
        ({"wandb_project": " "}, ValueError, "`wandb_project` must be a non-empty string"),
        ({"wandb_project": "p", "wandb_entity": ["me"]}, TypeError, "`wandb_entity` must be a string or None"),
        ({"wandb_entity": "me"}, ValueError, "`wandb_entity` needs `wandb_project`"),
        ({"wandb_project": "p", "ensemble": 2}, ValueError, "wandb_project are not supported"),
    ],
    ids=["project-type", "project-empty", "entity-type", "entity-alone", "ensemble"],
)
def test_bad_wandb_keywords_are_named_before_any_run_starts(offline, digits, keywords, error, message):
    x, y = digits
    with pytest.raises(error, match=message):
        ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=1, **keywords)
    assert _runs(offline) == []


def test_without_wandb_installed_the_error_names_the_extra_to_install(offline, digits, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    x, y = digits
    with pytest.raises(WandbMissingError, match=r"pip install 'ffnn_jax\[wandb\]'") as caught:
        ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=1, wandb_project="proj")
    assert isinstance(caught.value, ImportError) and str(caught.value) == WANDB_MISSING
    with pytest.raises(SystemExit) as exit_:  # the CLI: a one-line error before any data are read
        cli.main(["train", "-e", "1", "-wp", "proj", "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2 and "pip install 'ffnn_jax[wandb]'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _table(run: dict, key: str) -> dict:
    with open(os.path.join(run["folder"], "files", run["summary"][f"{key}/path"])) as f:
        return json.load(f)


def test_cli_train_logs_one_run_with_history_test_metrics_confusion_matrix_and_loss_curve(offline):
    out = offline / "digits-run"
    argv = ["train", "-d", "digits", "-e", "2", "-sz", "8", "-b", "128", "-wp", "proj", "-we", "team", "--out",
            str(out), "--no_progress", "--no_plot"]  # fmt: skip
    assert cli.main(argv) == 0
    (run,) = _runs(offline)
    assert (run["project"], run["entity"], run["name"], run["exit_code"]) == ("proj", "team", "digits-run", 0)
    assert run["config"]["dataset"] == "digits" and run["config"]["hidden_sizes"] == [8]
    assert [row["epoch"] for row in _epoch_rows(run)] == [1, 2]
    written = json.loads((out / "summary.json").read_text())
    summary = run["summary"]
    assert summary["test_accuracy"] == pytest.approx(written["test_accuracy"])
    assert summary["final_train_loss"] == pytest.approx(written["final_train_loss"])
    confusion = _table(run, "confusion_matrix_table")
    assert confusion["columns"] == ["Actual", "Predicted", "nPredictions"]
    assert sum(row[2] for row in confusion["data"]) == written["test_samples"]
    assert np.trace(written["test_confusion_matrix"]) == sum(row[2] for row in confusion["data"] if row[0] == row[1])
    curve = _table(run, "loss_curve_table")
    assert {row[1] for row in curve["data"]} == {"train_loss", "val_loss"} and len(curve["data"]) == 4


SWEEP = """
method: grid
metric: {name: val_loss, goal: minimize}
parameters:
  learning_rate: {values: [0.001, 0.01]}
"""


def test_cli_sweep_logs_each_member_as_a_run_of_the_sweeps_group_and_the_table(offline):
    config = offline / "sweep.yaml"
    config.write_text(SWEEP)
    out = offline / "my-sweep"
    argv = ["sweep", "--config", str(config), "-e", "2", "-sz", "8", "-b", "128", "-wp", "proj", "--out", str(out),
            "--no_progress", "--no_plot"]  # fmt: skip
    assert cli.main(argv) == 0
    runs = _runs(offline)
    members = [run for run in runs if run["job_type"] == "sweep-member"]
    (summary_run,) = [run for run in runs if run["job_type"] == "sweep-summary"]
    assert {run["group"] for run in runs} == {"my-sweep"} and all(run["exit_code"] == 0 for run in runs)
    assert sorted(run["config"]["learning_rate"] for run in members) == [0.001, 0.01]
    assert sorted(run["name"] for run in members) == ["my-sweep-0000", "my-sweep-0001"]
    for run in members:
        assert [row["epoch"] for row in _epoch_rows(run)] == [1, 2]
        assert run["summary"]["sweep_row"]["learning_rate"] == run["config"]["learning_rate"]
        assert run["summary"]["final_val_loss"] == pytest.approx(run["summary"]["sweep_row"]["final_val_loss"])
    table = _table(summary_run, "sweep_table")
    assert len(table["data"]) == 2 and "best_val_loss" in table["columns"]
    assert "test_accuracy" in summary_run["summary"] and summary_run["summary"]["members"] == 2
