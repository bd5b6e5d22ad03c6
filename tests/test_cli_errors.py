"""User errors on the command line: one ``ffnn-jax: error: ...`` line on stderr, exit status 2, no traceback."""

import os
import subprocess
import sys

import numpy as np
import pytest

from ffnn_jax import cli


def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.startswith("ffnn-jax: error: ") and err.count("\n") == 1, err
    return err


def _train(*flags):
    return ["train", "-e", "1", "--no_progress", "--no_plot", *flags]


def test_an_output_folder_under_a_regular_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    err = _fails(_train("--out", str(tmp_path / "file" / "run")), capsys)
    assert "`--out`" in err and "cannot be created" in err


def test_an_output_path_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    err = _fails(_train("--out", str(tmp_path / "file")), capsys)
    assert "`--out`" in err and "is a file" in err
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_an_output_folder_in_proc_is_a_one_line_error(capsys):
    assert "`--out`" in _fails(_train("--out", "/proc/ffnn_jax_run"), capsys)


def test_an_overflowing_seed_is_a_one_line_error_naming_the_setting(tmp_path, capsys):
    err = _fails(_train("--seed", str(2**70), "--out", str(tmp_path / "o")), capsys)
    assert "`seed` must be < 2**63" in err and str(2**70) in err


def test_a_zero_test_fraction_names_the_flag(tmp_path, capsys):
    err = _fails(_train("--test_fraction", "0", "--out", str(tmp_path / "o")), capsys)
    assert "`--test_fraction` must be in (0.0, 1.0), got 0.0" in err


def test_a_missing_dataset_file_is_a_one_line_error(tmp_path, capsys):
    err = _fails(_train("-d", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")), capsys)
    assert "`dataset` file" in err and "does not exist" in err


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("d.npz", b"PK\x03\x04 not really a zip", "is not a readable .npz file"),
        ("d.npz", b"plain text", "is not an .npz file"),
        ("d.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xd8", "is not UTF-8 text"),
        ("d.csv", b'a,b\n1,"2\n', "malformed"),
        ("d.csv", b"a,b,c\n1,x,2\n", "line 2, column index 1 ('b')"),  # a text target would be class names
    ],
    ids=["bad-zip", "not-zip", "binary-csv", "unclosed-quote", "text-cell"],
)
def test_a_corrupt_dataset_file_is_a_one_line_error(tmp_path, capsys, name, content, message):
    (tmp_path / name).write_bytes(content)
    err = _fails(_train("-d", str(tmp_path / name), "--out", str(tmp_path / "o")), capsys)
    assert message in err


def test_the_installed_entry_point_prints_no_traceback(tmp_path):
    (tmp_path / "file").write_text("")
    run = subprocess.run(
        [sys.executable, "-m", "ffnn_jax", *_train("--out", str(tmp_path / "file" / "x"))],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("ffnn-jax: error: `--out`") and run.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "target, message",
    [
        ("lable", "`--target`='lable' is not in the header"),
        ("5", "`--target`=5 is out of range"),
    ],
    ids=["unknown-name", "index-out-of-range"],
)
def test_a_bad_target_is_a_one_line_error_naming_the_flag(tmp_path, capsys, target, message):
    path = tmp_path / "d.csv"
    np.savetxt(path, np.eye(4), delimiter=",", header="label,a,b,c", comments="")
    err = _fails(_train("-d", str(path), "--target", target, "--out", str(tmp_path / "o")), capsys)
    assert message in err and ("'label', 'a', 'b', 'c'" in err or "4 columns" in err)


def test_a_target_for_a_dataset_without_columns_is_refused(tmp_path, capsys):
    err = _fails(_train("-d", "digits", "--target", "0", "--out", str(tmp_path / "o")), capsys)
    assert "`--target` picks a column of a .csv" in err


def test_task_classification_on_a_continuous_target_says_the_labels_are_not_whole_numbers(tmp_path, capsys):
    data = tmp_path / "prices.csv"
    data.write_text("".join(f"{i},{i * 0.37 + 100.25:.2f}\n" for i in range(40)))
    err = _fails(_train("-d", str(data), "--task", "classification", "--out", str(tmp_path / "run")), capsys)
    assert "class labels must be integers, got non-integer floats" in err  # not a list of 1-row "classes"


def test_a_dataset_path_that_is_a_folder_is_named_as_a_folder(tmp_path, capsys):
    (tmp_path / "data.csv").mkdir()
    err = _fails(_train("-d", str(tmp_path / "data.csv"), "--out", str(tmp_path / "o")), capsys)
    assert "is a folder; give the path of a .csv or .npz file" in err


def test_predict_checks_out_then_the_features_before_the_model_runs_naming_each(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli.main(_train("-sz", "4", "--out", run)) == 0
    err = _fails(["predict", "--model", run, "-d", "digits", "--out", run, "--overwrite"], capsys)
    assert f"`--out` {run!r} is a folder" in err
    (tmp_path / "mine.csv").write_text("mine")
    err = _fails(["predict", "--model", run, "-d", "digits", "--out", str(tmp_path / "mine.csv")], capsys)
    assert "exists; pass --overwrite to replace it" in err
    assert (tmp_path / "mine.csv").read_text() == "mine"
    other = tmp_path / "other.npz"  # 10 features where the model takes 64, and labels it never saw
    np.savez(other, x=np.ones((5, 10), np.float32), y=np.array([0, 1, 2, 3, 44]))
    err = _fails(["predict", "--model", run, "-d", str(other), "--out", str(tmp_path / "p.csv")], capsys)
    assert f"`--dataset` {str(other)!r}: `x` must have 64 features (columns), got 10" in err
    assert not (tmp_path / "p.csv").exists()


def test_an_empty_size_in_hidden_sizes_is_an_error_not_dropped(tmp_path, capsys):
    err = _fails(_train("--hidden_sizes", "8,,4", "--out", str(tmp_path / "o")), capsys)
    assert "`--hidden_sizes` must be comma-separated integers, got '8,,4'" in err


def test_a_regression_loss_on_text_labels_names_the_labels_not_a_dtype(tmp_path, capsys):
    rows = "\n".join(f"{i % 7 / 7},{i % 3},{'cat' if i % 2 else 'dog'}" for i in range(40))
    (tmp_path / "pets.csv").write_text("a,b,animal\n" + rows + "\n")
    err = _fails(_train("-d", str(tmp_path / "pets.csv"), "-l", "poisson", "--out", str(tmp_path / "o")), capsys)
    assert "`loss`='poisson' (a regression loss) needs numeric targets" in err and "such as 'dog'" in err
