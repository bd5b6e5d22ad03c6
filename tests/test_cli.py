"""The command line: flags, files written, progress, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ffnn_jax import cli
from ffnn_jax._checkpoint import read_params


def test_train_on_digits_writes_params_metrics_summary_and_loss_curve(tmp_path, capsys):
    out = tmp_path / "run"
    status = cli.main(
        [
            "train",
            "-e",
            "3",
            "-b",
            "64",
            "-sz",
            "32",
            "-nhl",
            "2",
            "-a",
            "ReLU",
            "-w_i",
            "Xavier",
            "-o",
            "nadam",
            "-lr",
            "0.002",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    captured = capsys.readouterr()
    assert "test accuracy" in captured.out and "epoch" in captured.err  # summary and progress bar
    files = ["checkpoints", "command.json", "confusion_matrix.png", "loss_curve.png", "metrics.jsonl", "params.npz"]
    files.append("summary.json")
    assert sorted(p.name for p in out.iterdir()) == files
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and "val_accuracy" in rows[0]
    params, meta = read_params(str(out / "params.npz"))
    assert meta["layer_sizes"] == [64, 32, 32, 10] and meta["config"]["optimizer"] == "nadam"
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["epochs_run"] == 3


def test_assignment_style_flags_map_onto_the_trainer(tmp_path):
    out = tmp_path / "run"
    argv = [
        "train",
        "-d",
        "digits",
        "-e",
        "1",
        "-b",
        "16",
        "-l",
        "mean_squared_error",
        "-o",
        "momentum",
        "-lr",
        "0.1",
        "-m",
        "0.5",
        "-beta",
        "0.5",
        "-beta1",
        "0.5",
        "-beta2",
        "0.5",
        "-eps",
        "1e-6",
        "-w_d",
        "0.0005",
        "-w_i",
        "random",
        "-nhl",
        "1",
        "-sz",
        "8",
        "-a",
        "sigmoid",
        "--monitor",
        "train_accuracy",
        "--stopping_threshold",
        "0.99",
        "--metrics_format",
        "csv",
        "--no_plot",
        "--no_progress",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    config = json.loads((out / "summary.json").read_text())["config"]
    assert config["loss"] == "squared_error" and config["momentum"] == 0.5 and config["weight_init"] == "random"
    assert config["weight_decay"] == 0.0005 and config["epsilon"] == 1e-6 and config["activation"] == "sigmoid"
    assert config["monitor"] == "train_accuracy" and config["stopping_threshold"] == 0.99
    assert (out / "metrics.csv").read_text().startswith("epoch,train_loss")


def test_regression_on_the_built_in_diabetes_set(tmp_path, capsys):
    assert (
        cli.main(["train", "-d", "diabetes", "-e", "2", "--no_progress", "--no_plot", "--out", str(tmp_path / "r")])
        == 0
    )
    assert "test r2" in capsys.readouterr().out


def test_a_non_empty_output_folder_is_refused_and_left_untouched(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "-e", "1", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "not empty (it holds keep.txt)" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["-lr", "-1"], "`learning_rate`"),
        (["-a", "swish2"], "`activation`"),
        (["-o", "adamax"], "`optimizer`"),
        (["-sz", "0"], "`hidden_sizes[0]`"),
        (["-d", "imagenet"], "`dataset`"),
    ],
    ids=["lr", "activation", "optimizer", "size", "dataset"],
)
def test_bad_flags_exit_with_status_2_and_name_the_setting(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "-e", "1", "--out", str(tmp_path / "x"), *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_divergence_exits_1_and_saves_the_last_finite_params(tmp_path, capsys):
    csv_path = tmp_path / "d.csv"
    x = np.random.default_rng(0).normal(size=(64, 2))
    np.savetxt(csv_path, np.column_stack([x, 1e3 * x.sum(1) + 0.5]), delimiter=",")
    status = cli.main(
        [
            "train",
            "-d",
            str(csv_path),
            "-o",
            "sgd",
            "-lr",
            "5",
            "-a",
            "identity",
            "-e",
            "30",
            "--no_standardize",
            "--no_progress",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert status == 1
    assert "diverged at epoch" in capsys.readouterr().err
    params, meta = read_params(str(tmp_path / "o" / "params_last_finite.npz"))
    assert all(np.all(np.isfinite(p.W)) for p in params) and meta["diverged_epoch"] >= 1


def test_help_lists_every_assignment_flag():
    text = subprocess.run(
        [sys.executable, "-m", "ffnn_jax", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in [
        "-d",
        "-e",
        "-b",
        "-l",
        "-o",
        "-lr",
        "-m",
        "-beta",
        "-beta1",
        "-beta2",
        "-eps",
        "-w_d",
        "-w_i",
        "-nhl",
        "-sz",
        "-a",
    ]:
        assert f" {flag} " in text or f" {flag}," in text, flag


def test_gradcheck_passes_on_the_network_the_flags_describe(capsys):
    flags = "gradcheck -nhl 1 -sz 8 -a sigmoid -l mean_squared_error -w_d 0.01 --check_samples 16"
    status = cli.main(flags.split())
    out = capsys.readouterr().out
    assert status == 0, out
    assert "64-8-10" in out and "PASSED" in out


@pytest.mark.parametrize("target", ["label", "0", "-4"], ids=["name", "index", "negative-index"])
def test_the_target_flag_picks_the_label_first_column_of_an_mnist_style_csv(tmp_path, capsys, target):
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    pixels = rng.random((60, 3)) + labels[:, None]  # non-integer floats: the last column is no label
    csv_path = tmp_path / "mnist_train.csv"
    with open(csv_path, "w") as f:
        f.write("label,1x1,1x2,1x3\n")
        np.savetxt(f, np.column_stack([labels, pixels]), delimiter=",", fmt=["%d", "%.6f", "%.6f", "%.6f"])
    out = tmp_path / "run"
    argv = ["train", "-d", str(csv_path), "--target", target, "-e", "1", "-sz", "4", "--no_progress", "--no_plot"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layer_sizes"] == [3, 4, 3] and summary["train_samples"] + summary["test_samples"] == 60
    assert json.loads((out / "command.json").read_text())["target"] == (target if target == "label" else int(target))


def test_a_csv_with_text_labels_trains_and_predicts_with_class_named_columns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    names = np.array(["setosa", "versicolor", "virginica"])[np.arange(60) % 3]
    features = rng.normal(size=(60, 2)) + 3 * (np.arange(60) % 3)[:, None]
    csv_path = tmp_path / "iris.csv"
    csv_path.write_text("sl,pl,species\n" + "".join(f"{a:.4f},{b:.4f},{n}\n" for (a, b), n in zip(features, names)))
    out = tmp_path / "run"
    argv = ["train", "-d", str(csv_path), "-e", "40", "-sz", "8", "-lr", "0.05", "--no_progress", "--no_plot"]
    assert cli.main([*argv, "--class_weight", "setosa:2", "--out", str(out)]) == 0
    assert "(target column 2 'species')" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["test_per_class_accuracy"]) == ["setosa", "versicolor", "virginica"]
    predictions = tmp_path / "p.csv"
    assert cli.main(["predict", "--model", str(out), "-d", str(csv_path), "--out", str(predictions)]) == 0
    lines = predictions.read_text().splitlines()
    assert lines[0] == "row,prediction,probability_setosa,probability_versicolor,probability_virginica"
    predicted = np.array([line.split(",")[1] for line in lines[1:]])
    accuracy = np.mean(predicted == names)
    assert accuracy > 0.9 and f"accuracy {accuracy:.4f}" in capsys.readouterr().out
    unseen = tmp_path / "unseen.csv"
    unseen.write_text(csv_path.read_text().replace("setosa", "iris-setosa", 1))
    with pytest.raises(SystemExit):
        cli.main(["predict", "--model", str(out), "-d", str(unseen), "--out", str(tmp_path / "q.csv")])
    assert "its target: `y` holds labels that are not among the training classes" in capsys.readouterr().err
    assert not (tmp_path / "q.csv").exists()  # nothing written for a target it cannot score


def test_a_keras_layout_npz_trains_on_its_train_split_and_tests_on_its_test_split(tmp_path, capsys):
    from ffnn_jax import load_digits

    digits = load_digits()
    images = (digits.x.reshape(-1, 8, 8) * 16).astype(np.uint8)  # as keras.datasets ships them: [n, h, w] uint8
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=images[:1500], y_train=digits.y[:1500], x_test=images[1500:], y_test=digits.y[1500:])
    out = tmp_path / "run"
    argv = ["train", "-d", str(path), "-e", "5", "-sz", "32", "--no_progress", "--no_plot", "--out", str(out)]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layer_sizes"] == [64, 32, 10] and summary["test_samples"] == len(images) - 1500
    assert summary["test_accuracy"] > 0.8
    capsys.readouterr()
    assert cli.main(["predict", "--model", str(out), "-d", str(path), "--out", str(tmp_path / "p.csv")]) == 0
    assert f"wrote {len(images) - 1500} predictions" in capsys.readouterr().out  # the test split's rows


def test_an_npz_of_float_labels_is_classification_as_a_csv_of_them_is(tmp_path, capsys):
    from ffnn_jax import load_diabetes, load_digits

    digits, diabetes = load_digits(), load_diabetes()
    labels, targets = tmp_path / "labels.npz", tmp_path / "targets.npz"
    np.savez(labels, x=digits.x, y=digits.y.astype(np.float64))  # as np.loadtxt or pandas give labels
    np.savez(targets, x=diabetes.x, y=diabetes.y)  # float whole numbers, 214 of them: a numeric target
    out = tmp_path / "run"
    argv = ["train", "-e", "10", "-sz", "16", "--no_progress", "--no_plot"]
    assert cli.main([*argv, "-d", str(labels), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layer_sizes"][-1] == 10 and summary["test_accuracy"] > 0.8  # was a 1-output regression
    with pytest.raises(SystemExit):
        cli.main([*argv, "-d", str(targets), "--out", str(tmp_path / "auto")])
    assert "214 distinct integers" in capsys.readouterr().err
    assert cli.main([*argv, "-d", str(targets), "--task", "regression", "--out", str(tmp_path / "reg")]) == 0


def test_predict_reads_csv_columns_by_name_and_takes_a_csv_without_its_target(tmp_path, capsys):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(60, 3)) * [1.0, 5.0, 0.2]
    labels = (features[:, 0] > 0).astype(int)
    rows = [f"{a:.4f},{b:.4f},{c:.4f},{y}" for (a, b, c), y in zip(features, labels)]
    train_csv = tmp_path / "train.csv"
    train_csv.write_text("a,b,c,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    argv = ["train", "-d", str(train_csv), "-e", "3", "-sz", "8", "--no_progress", "--no_plot", "--out", str(out)]
    assert cli.main(argv) == 0
    capsys.readouterr()
    swapped = tmp_path / "swapped.csv"
    swapped.write_text(
        "b,a,c,label\n" + "\n".join(",".join(r.split(",")[i] for i in (1, 0, 2, 3)) for r in rows) + "\n"
    )
    with pytest.raises(SystemExit):
        cli.main(["predict", "--model", str(out), "-d", str(swapped), "--out", str(tmp_path / "s.csv")])
    assert "another order; give them in the trained order: ['a', 'b', 'c']" in capsys.readouterr().err
    no_target = tmp_path / "features.csv"
    no_target.write_text("a,b,c\n" + "\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    for name, data in (("with.csv", train_csv), ("without.csv", no_target)):
        assert cli.main(["predict", "--model", str(out), "-d", str(data), "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "with.csv").read_text() == (tmp_path / "without.csv").read_text()


def test_a_csv_of_whole_number_regression_targets_asks_for_the_task_flag(tmp_path, capsys):
    from ffnn_jax import load_diabetes

    data = load_diabetes()  # targets 25-346, whole numbers: written to a CSV they read as integers
    path = tmp_path / "diabetes.csv"
    header = ",".join([f"f{i}" for i in range(data.x.shape[1])] + ["progression"])
    np.savetxt(path, np.column_stack([data.x, data.y]), delimiter=",", header=header, comments="", fmt="%g")
    argv = ["train", "-d", str(path), "-e", "40", "--no_progress", "--no_plot"]
    with pytest.raises(SystemExit):
        cli.main([*argv, "--out", str(tmp_path / "auto")])
    assert "214 distinct integers" in capsys.readouterr().err
    assert not list((tmp_path / "auto").glob("*"))  # nothing written
    assert cli.main([*argv, "--task", "regression", "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["layer_sizes"][-1] == 1 and summary["test_r2"] > 0.4


def test_a_classification_run_writes_its_confusion_matrix_and_per_class_accuracy(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "-e", "2", "-sz", "16", "--no_progress", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    matrix = np.array(summary["test_confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == summary["test_samples"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(summary["test_accuracy"], abs=1e-6)
    assert sorted(summary["test_per_class_accuracy"]) == [str(i) for i in range(10)]
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    regression = tmp_path / "regression"
    assert cli.main(["train", "-d", "diabetes", "-e", "1", "--no_progress", "--out", str(regression)]) == 0
    assert not (regression / "confusion_matrix.png").exists()


def test_show_draws_one_sample_per_class_and_refuses_non_image_data(tmp_path, capsys):
    out = tmp_path / "samples.png"
    assert cli.main(["show", "-d", "digits", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and "10 classes" in capsys.readouterr().out
    with pytest.raises(SystemExit) as caught:
        cli.main(["show", "-d", "diabetes", "--out", str(tmp_path / "x.png")])
    assert caught.value.code == 2 and "not a square image" in capsys.readouterr().err


def test_class_weight_labels_written_as_floats_name_the_csvs_whole_number_labels(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.array([3.0, 5.0])[np.arange(40) % 2]
    rows = "".join(f"{a:.3f},{label:.1f}\n" for a, label in zip(rng.normal(size=40) + labels, labels))
    (tmp_path / "d.csv").write_text("a,y\n" + rows)  # y written 3.0, 5.0: read as the labels 3, 5
    argv = ["train", "-d", str(tmp_path / "d.csv"), "-e", "1", "-sz", "4", "--no_progress", "--no_plot"]
    for weights, out in [("3.0:20,5:1", "floats"), ("3:20", "ints")]:
        assert cli.main([*argv, "--class_weight", weights, "--out", str(tmp_path / out)]) == 0
    trained = [np.load(tmp_path / out / "params.npz")["layer0/W"] for out in ("floats", "ints")]
    np.testing.assert_array_equal(*trained)


def test_an_npz_of_multi_hot_integer_rows_trains_a_multi_label_network_and_predicts_its_columns(tmp_path, capsys):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0, x[:, 0] + x[:, 2] > 0], 1).astype(np.int64)  # several 1s or none
    data, out = tmp_path / "tags.npz", tmp_path / "run"
    np.savez(data, x=x, y=y)
    argv = ["train", "-d", str(data), "-e", "20", "-o", "adam", "-lr", "0.01", "--no_progress", "--no_plot"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert "the share of labels right, column by column" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layer_sizes"][-1] == 3 and summary["test_accuracy"] > 0.85  # was a 3-class softmax
    assert cli.main(["predict", "--model", str(out), "-d", str(data), "--out", str(tmp_path / "p.csv")]) == 0
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header.count(",") >= 3, header  # one column per label, not one predicted class
