"""Data parallel train(devices=...): each batch split over a mesh, the same result as one device."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import ffnn_jax


_FOUR_DEVICES = """
import numpy as np, jax, ffnn_jax
assert len(jax.devices()) == 4, jax.devices()
x, y = ffnn_jax.load_digits()
x, y = np.asarray(x)[:1001], np.asarray(y)[:1001]  # 1001 rows: the last batch is partial
settings = dict(hidden_sizes=(32,), optimizer="adam", learning_rate=1e-2, epochs=3, batch_size=30,
                validation_fraction=0.2, weight_decay=1e-4)
one = ffnn_jax.train(x, y, **settings)
four = ffnn_jax.train(x, y, devices=4, **settings)
assert four.params[0].W.sharding.mesh.size == 4
worst = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(a))))
            for a, b in zip(jax.tree_util.tree_leaves(one.params), jax.tree_util.tree_leaves(four.params)))
assert worst < 1e-5, worst
np.testing.assert_allclose(one.history["train_loss"], four.history["train_loss"], rtol=1e-5)
np.testing.assert_allclose(one.history["val_accuracy"], four.history["val_accuracy"], rtol=1e-5)
print("WORST", worst)
"""


@pytest.mark.slow
def test_four_forced_cpu_devices_train_like_one_device_with_a_batch_that_does_not_divide():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", _FOUR_DEVICES], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WORST" in done.stdout


def test_the_suites_devices_split_each_batch_and_agree_with_one_device():
    x, y = ffnn_jax.load_digits()
    settings = dict(hidden_sizes=(16,), optimizer="sgd", learning_rate=0.1, epochs=2, batch_size=25)
    one = ffnn_jax.train(x, y, **settings)
    every = ffnn_jax.train(x, y, devices="all", **settings)
    assert every.params[0].W.sharding.mesh.size == len(jax.devices())
    for a, b in zip(jax.tree_util.tree_leaves(one.params), jax.tree_util.tree_leaves(every.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert ffnn_jax.load_model  # the result predicts as usual
    np.testing.assert_array_equal(every.predict(x), one.predict(x))


@pytest.mark.parametrize("devices", [0, 10_000, "some", [1, 2]], ids=["zero", "too-many", "word", "not-devices"])
def test_a_bad_devices_argument_names_it(devices):
    with pytest.raises(ValueError, match="`devices`"):
        ffnn_jax.train(np.ones((4, 2)), np.array([0, 1, 0, 1]), devices=devices, epochs=1)


_SPLIT_THE_CPU = """
import json, os, sys, ffnn_jax, jax
from ffnn_jax import cli
if sys.argv[1] == "api":
    ffnn_jax.use_cpu_cores(3)
    assert len(jax.devices()) == 3, jax.devices()
    try:
        ffnn_jax.use_cpu_cores()
    except RuntimeError as error:
        print("REFUSED", error)
else:  # the CLI sweep of a fresh process: one device per core
    assert cli.main(["sweep", "--config", sys.argv[2], "-e", "1", "--out", sys.argv[3], "--no_progress", "--no_plot"]) == 0
    print("DEVICES", json.load(open(os.path.join(sys.argv[3], "summary.json")))["devices"])
"""


def _fresh_cpu_process(*args):
    env = {name: value for name, value in os.environ.items() if name not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    done = subprocess.run([sys.executable, "-c", _SPLIT_THE_CPU, *args], env={**env, "JAX_PLATFORMS": "cpu"},
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_use_cpu_cores_splits_the_cpu_before_jax_starts_and_says_why_it_cannot_after():
    printed = _fresh_cpu_process("api")
    assert "REFUSED use_cpu_cores() must run before JAX computes anything" in printed


def test_the_cli_sweep_of_a_fresh_process_makes_one_cpu_device_per_core(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text("method: grid\nparameters:\n  learning_rate: {values: [0.01, 0.1]}\n")
    printed = _fresh_cpu_process("cli", str(config), str(tmp_path / "run"))
    assert f"DEVICES {len(os.sched_getaffinity(0))}" in printed


@pytest.mark.parametrize("count", [0, -1, 1.5, "two"])
def test_use_cpu_cores_refuses_a_count_that_is_not_a_positive_int(count):
    with pytest.raises(ValueError, match="`count`"):
        ffnn_jax.use_cpu_cores(count)
