"""The CLI survives kill -9, SIGTERM and SIGINT: a checkpoint is always there, --resume finishes the run
exactly as if it had never been interrupted; predict reopens the run folder."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import ffnn_jax
from ffnn_jax import cli


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import kill_resume  # noqa: E402


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reference") / "run")
    _, stderr = kill_resume.start(out).communicate(timeout=300)
    assert os.path.isfile(os.path.join(out, "params.npz")), stderr
    return kill_resume.finished_run(out)


def _assert_same_as(reference, out):
    (params_a, rows_a), (params_b, rows_b) = reference, kill_resume.finished_run(out)
    assert rows_a == rows_b
    assert params_a.keys() == params_b.keys()
    for name in params_a:
        np.testing.assert_array_equal(params_a[name], params_b[name], err_msg=name)


def test_kill_9_at_random_moments_then_resume_equals_the_uninterrupted_run(tmp_path, reference):
    out = str(tmp_path / "run")
    landed = kill_resume.kill_and_resume(out, kills=3, rng=random.Random(1), mid_write=[])
    assert landed >= 1  # at least one kill hit the run mid-training
    _assert_same_as(reference, out)
    assert len(json.loads(open(os.path.join(out, "summary.json")).read())["config"]) > 0


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_a_checkpoint_exits_non_zero_and_says_how_to_resume(tmp_path, reference, sig, status):
    out = str(tmp_path / "run")
    process = kill_resume.start(out)
    while kill_resume.newest_checkpoint(out) == "" and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert process.returncode == status
    assert f"stopped by {signal.Signals(sig).name} after epoch" in stderr and "--resume" in stderr
    saved = kill_resume.newest_checkpoint(out)
    assert saved and not os.path.exists(os.path.join(out, "params.npz"))
    finish = kill_resume.start(out, "--resume")
    _, stderr = finish.communicate(timeout=300)
    assert finish.returncode == 0, stderr
    _assert_same_as(reference, out)


def test_resume_reuses_the_flags_the_run_started_with_and_only_epochs_may_change(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "-e", "2", "-sz", "8", "-o", "sgd", "--no_plot", "--no_progress", "--out", out]) == 0
    assert cli.main(["train", "--out", out, "--resume", "-e", "4", "--no_progress"]) == 0
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert json.loads(open(os.path.join(out, "summary.json")).read())["config"]["optimizer"] == "sgd"
    flags = open(os.path.join(out, "command.json")).read()
    for refused, named in [(["-e", "5", "-b", "64"], "`batch_size` = 32"), (["-e", "3"], "already run 4 epochs")]:
        with pytest.raises(SystemExit) as caught:
            cli.main(["train", "--out", out, "--resume", *refused, "--no_progress"])
        assert caught.value.code == 2
        assert named in capsys.readouterr().err
        assert open(os.path.join(out, "command.json")).read() == flags  # a refused resume saves none of its flags
    assert cli.main(["train", "--out", out, "--resume", "-e", "5", "--no_progress"]) == 0
    assert json.loads(open(os.path.join(out, "command.json")).read())["epochs"] == 5


def test_overwrite_replaces_the_runs_checkpoints_so_a_later_resume_continues_the_new_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    flags = ["-sz", "8", "--no_plot", "--no_progress", "--out", out]
    assert cli.main(["train", "-e", "5", "--keep_checkpoints", "5", *flags]) == 0
    assert cli.main(["train", "-e", "2", "--overwrite", *flags]) == 0  # the old run's epochs 4, 5 outlived it
    saved = sorted(os.listdir(os.path.join(out, "checkpoints")))
    assert saved == ["ckpt-00000001.npz", "ckpt-00000002.npz"]
    capsys.readouterr()
    assert cli.main(["train", "--out", out, "--resume", "-e", "3", "--no_progress"]) == 0
    assert "1 in this call" in capsys.readouterr().out
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [row["epoch"] for row in rows] == [1, 2, 3]


def test_overwrite_starts_a_sweep_anew_where_a_refused_one_left_its_manifest(tmp_path, capsys):
    config, out = tmp_path / "sweep.yaml", str(tmp_path / "sweep")
    config.write_text("method: grid\nmetric: {name: val_r2, goal: maximize}\nparameters:\n  learning_rate:\n"
                      "    values: [0.01, 0.1]\n")  # fmt: skip
    flags = ["sweep", "--config", str(config), "-e", "1", "-sz", "4", "--out", out, "--no_progress", "--no_plot"]
    with pytest.raises(SystemExit):
        cli.main(flags)  # digits is a classification: val_r2 is refused, named as the YAML's metric
    assert "its metric: `monitor`='val_r2' needs a regression task" in capsys.readouterr().err
    config.write_text(config.read_text().replace("val_r2", "val_accuracy"))
    assert cli.main([*flags, "--overwrite"]) == 0
    assert os.path.isfile(os.path.join(out, "sweep.csv"))


def test_a_folder_resumes_only_with_the_command_that_made_it_and_is_left_as_it_was(tmp_path, capsys):
    config, sweep_out, train_out = tmp_path / "sweep.yaml", str(tmp_path / "sweep"), str(tmp_path / "train")
    config.write_text("method: grid\nparameters:\n  learning_rate:\n    values: [0.01, 0.1]\n")
    assert cli.main(["sweep", "--config", str(config), "-e", "1", "-sz", "4", "--out", sweep_out, "--no_progress"]) == 0
    assert cli.main(["train", "-e", "1", "-sz", "4", "--no_plot", "--no_progress", "--out", train_out]) == 0
    for command, out, made_by in [("train", sweep_out, "sweep"), ("sweep", train_out, "train")]:
        files = {name: open(os.path.join(r, name), "rb").read() for r, _, names in os.walk(out) for name in names}
        with pytest.raises(SystemExit) as caught:
            cli.main([command, "--out", out, "--resume", "--no_progress"])
        assert caught.value.code == 2
        assert (
            f"holds an ffnn-jax {made_by}, not a {command}: continue it with ffnn-jax {made_by}"
            in capsys.readouterr().err
        )
        assert files == {
            name: open(os.path.join(r, name), "rb").read() for r, _, names in os.walk(out) for name in names
        }


@pytest.fixture(scope="module")
def reference_sweep(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reference_sweep") / "run")
    _, stderr = kill_resume.start(out, command="sweep").communicate(timeout=300)
    assert os.path.isfile(os.path.join(out, "sweep.csv")), stderr
    return kill_resume.finished_run(out)


def test_kill_9_mid_sweep_then_resume_equals_the_uninterrupted_sweep(tmp_path, reference_sweep):
    out = str(tmp_path / "run")
    landed = kill_resume.kill_and_resume(out, kills=2, rng=random.Random(2), mid_write=[], command="sweep")
    assert landed >= 1
    _assert_same_as(reference_sweep, out)  # the table, every member's metrics and the best point's params


def test_sigterm_saves_a_cli_sweep_says_how_to_resume_and_resume_reuses_its_flags(tmp_path, reference_sweep):
    out = str(tmp_path / "run")
    process = kill_resume.start(out, command="sweep")
    while kill_resume.newest_checkpoint(out) == "" and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the sweep finished before the signal arrived")
    assert process.returncode == 143, stderr
    assert "sweep stopped by SIGTERM" in stderr and f"ffnn-jax sweep --out {out} --resume" in stderr
    assert not os.path.exists(os.path.join(out, "sweep.csv"))
    finish = subprocess.run([sys.executable, "-m", "ffnn_jax", "sweep", "--out", out, "--resume"],  # flags saved
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert finish.returncode == 0, finish.stderr
    _assert_same_as(reference_sweep, out)


def test_predict_reopens_a_standardized_run_and_writes_a_csv(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "-e", "10", "-sz", "32", "--no_plot", "--no_progress", "--out", out]) == 0
    trained = json.loads(open(os.path.join(out, "summary.json")).read())
    assert trained["config"]["standardize"] is True
    capsys.readouterr()
    csv_path = str(tmp_path / "predictions.csv")
    assert cli.main(["predict", "--model", out, "-d", "digits", "--out", csv_path]) == 0
    line = capsys.readouterr().out
    assert "wrote 1797 predictions" in line
    assert float(line.split("accuracy ")[1].split(",")[0]) > trained["test_accuracy"] - 0.05  # scaled as in training
    table = np.genfromtxt(csv_path, delimiter=",", names=True)
    assert table.shape == (1797,) and table.dtype.names[:2] == ("row", "prediction")
    x, _ = ffnn_jax.load_digits()
    np.testing.assert_array_equal(table["prediction"], ffnn_jax.load_model(out).predict(x))
    probabilities = np.stack([table[f"probability_{k}"] for k in range(10)], axis=1)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_predict_with_a_missing_model_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["predict", "--model", str(tmp_path / "nothing"), "-d", "digits"])
    assert caught.value.code == 2 and "`--model`" in capsys.readouterr().err.split("does not exist")[0]


@pytest.mark.parametrize("header", [False, True], ids=["no-header", "header"])
def test_predict_scores_the_target_column_the_model_was_trained_with(tmp_path, capsys, header):
    # the label first; the last feature also holds only 0, 1, 2, so taking it for the target would pass unnoticed
    x, y = ffnn_jax.load_dataset("digits")
    x, y = np.asarray(x)[:400, ::8], np.asarray(y)[:400] % 3
    x[:, -1] = np.arange(400) % 3
    lines = [",".join(str(int(v)) for v in (label, *row)) for label, row in zip(y, x)]
    names = ["label"] + [f"f{i}" for i in range(x.shape[1])]
    data, features = tmp_path / "data.csv", tmp_path / "features.csv"
    data.write_text("\n".join(([",".join(names)] if header else []) + lines) + "\n")
    features.write_text(
        "\n".join(([",".join(names[1:])] if header else []) + [line.split(",", 1)[1] for line in lines])
    )
    out, target = str(tmp_path / "run"), "label" if header else "0"
    flags = ["-e", "5", "-sz", "8", "--no_plot", "--no_progress"]
    assert cli.main(["train", "-d", str(data), "--target", target, *flags, "--out", out]) == 0
    model = ffnn_jax.load_model(out)
    accuracy = float(np.mean(model.predict(x.astype(np.float32)) == y))
    for source in (out, os.path.join(out, "checkpoints")):
        capsys.readouterr()
        assert cli.main(["predict", "--model", source, "-d", str(data), "--out", str(tmp_path / "p.csv"),
                         "--overwrite"]) == 0  # fmt: skip
        assert f"accuracy {accuracy:.4f}" in capsys.readouterr().out  # scored on the label column, not the last
    assert cli.main(["predict", "--model", out, "-d", str(features), "--out", str(tmp_path / "f.csv")]) == 0
    table = np.genfromtxt(tmp_path / "f.csv", delimiter=",", names=True)
    np.testing.assert_array_equal(table["prediction"], model.predict(x.astype(np.float32)))


@pytest.mark.parametrize("primary", [True, False], ids=["process-0", "another-process"])
def test_only_process_0_saves_the_flags_so_no_other_process_fills_the_out_folder_first(tmp_path, primary):
    # a file written by process 1 before process 0 looked made process 0 refuse its own folder as not empty
    args = cli.build_parser().parse_args(["train", "--out", str(tmp_path)])
    save = cli._flags_saver(args, str(tmp_path), primary)
    save()
    assert os.path.exists(tmp_path / "command.json") == primary
