"""ffnn-jax sweep: a wandb-style YAML, the table, each member's metrics, the plot and the best model."""

import json

import numpy as np
import pytest

import ffnn_jax
from ffnn_jax import cli
from ffnn_jax._sweep_config import parse_sweep_config


GRID = """
method: grid
metric: {name: val_accuracy, goal: maximize}
parameters:
  learning_rate: {values: [0.0003, 0.003]}
  num_layers: {values: [1, 2]}
  hidden_size: {value: 16}
"""


def test_a_grid_yaml_becomes_points_with_hidden_sizes():
    config = parse_sweep_config(GRID)
    assert config.monitor == "val_accuracy" and config.method == "grid"
    assert config.points == [
        {"learning_rate": 0.0003, "hidden_sizes": (16,)},
        {"learning_rate": 0.0003, "hidden_sizes": (16, 16)},
        {"learning_rate": 0.003, "hidden_sizes": (16,)},
        {"learning_rate": 0.003, "hidden_sizes": (16, 16)},
    ]


def test_random_search_draws_run_cap_points_from_the_distributions():
    text = """
method: random
run_cap: 50
parameters:
  learning_rate: {min: 0.0001, max: 0.1, distribution: log_uniform_values}
  batch_size: {min: 16, max: 64}
  optimizer: {values: [sgd, adam]}
"""
    points = parse_sweep_config(text, seed=1).points
    assert len(points) == 50
    rates = np.array([p["learning_rate"] for p in points])
    assert rates.min() >= 1e-4 and rates.max() <= 0.1 and np.median(rates) < 0.01  # log-uniform, not uniform
    assert all(isinstance(p["batch_size"], int) and 16 <= p["batch_size"] <= 64 for p in points)
    assert {p["optimizer"] for p in points} == {"sgd", "adam"}
    assert parse_sweep_config(text, seed=1).points == points  # seeded


@pytest.mark.parametrize(
    "text, named",
    [
        ("method: grid\nparameters: [1, 2", "not valid YAML"),
        ("method: bayes\nparameters: {learning_rate: {values: [1]}}", "`method`"),
        ("parameters: {learnig_rate: {values: [1]}}", "`parameters.learnig_rate`: unknown parameter"),
        ("parameters: {learning_rate: [1, 2]}", "`parameters.learning_rate`: must be"),
        ("parameters: {learning_rate: {min: 0.1, max: 1}}", "grid search needs a non-empty values list"),
        ("method: random\nparameters: {learning_rate: {values: [1]}}", "`run_cap`"),
        ("metric: {name: val_accuracy, goal: minimize}\nparameters: {seed: {values: [1]}}", "`metric.goal`"),
        ("metrics: {}\nparameters: {seed: {values: [1]}}", "`metrics`: unknown key"),
    ],
    ids=["yaml", "method", "unknown-parameter", "not-a-rule", "grid-min-max", "run_cap", "goal", "unknown-key"],
)
def test_malformed_configs_are_errors_naming_the_key(text, named):
    with pytest.raises(ValueError, match=named.replace("[", r"\[")):
        parse_sweep_config(text)


def test_the_cli_sweep_writes_the_table_members_plot_and_the_best_model(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(GRID)
    out = tmp_path / "run"
    assert cli.main(["sweep", "--config", str(config), "-e", "3", "--out", str(out), "--no_progress"]) == 0
    printed = capsys.readouterr().out
    assert "swept 4 members in 2 program(s)" in printed  # one program per depth
    lines = (out / "sweep.csv").read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("learning_rate,hidden_sizes,status")
    assert len(list((out / "members").iterdir())) == 4 and (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "val_accuracy" and 0 <= summary["test_accuracy"] <= 1
    model = ffnn_jax.load_model(str(out))  # the best point, with its standardizer
    x, y = ffnn_jax.load_digits()
    assert model.evaluate(x, y)["accuracy"] > 0.5


@pytest.mark.parametrize("flags, devices", [([], 2), (["--cpu_devices", "1"], 1)], ids=["cores", "one-device"])
def test_the_cli_sweep_splits_the_members_over_the_cpu_devices_unless_told_one(tmp_path, flags, devices):
    # the suite's process has 2 CPU devices (conftest); a fresh process makes one per core (test_parallel.py)
    config = tmp_path / "sweep.yaml"
    config.write_text(GRID)
    out = tmp_path / "run"
    assert cli.main(["sweep", "--config", str(config), "-e", "2", "--out", str(out), "--no_progress", "--no_plot",
                     *flags]) == 0  # fmt: skip
    assert json.loads((out / "summary.json").read_text())["devices"] == devices


def test_the_cli_sweep_refuses_a_bad_config_before_reading_data(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text("parameters: {learning_rate: {values: [-1.0]}}")
    with pytest.raises(SystemExit) as caught:
        cli.main(["sweep", "--config", str(config), "--out", str(tmp_path / "run")])
    assert caught.value.code == 2 and "`learning_rate` must be" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_ctrl_c_before_a_cli_sweep_trains_ends_it_with_status_130_and_writes_no_results(tmp_path, capsys, monkeypatch):
    config = tmp_path / "sweep.yaml"
    config.write_text(GRID)
    out = tmp_path / "run"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ffnn_jax._sweep, "sweep", interrupted)
    assert cli.main(["sweep", "--config", str(config), "-e", "2", "--out", str(out), "--no_progress"]) == 130
    assert "sweep stopped by SIGINT before training; run it again" in capsys.readouterr().err
    assert [path.name for path in out.iterdir()] == ["command.json"]  # the flags, for --resume
