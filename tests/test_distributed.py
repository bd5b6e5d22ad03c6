"""Several processes as one run (jax.distributed over loopback, CPU collectives): equal results, faults, resume."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import ffnn_jax
from ffnn_jax._distributed import initialize_distributed
from ffnn_jax._launch import _ephemeral_ports, free_port, launch


_SETTINGS = dict(hidden_sizes=(32,), optimizer="adam", learning_rate=1e-2, epochs=3, batch_size=30,
                 validation_fraction=0.2, weight_decay=1e-4)  # fmt: skip

_PROCESS = """
import sys, numpy as np, jax, ffnn_jax
rank, port, out, lr, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5] == "stop"
x, y = ffnn_jax.load_digits()
x, y = np.asarray(x)[:1001], np.asarray(y)[:1001]  # 1001 rows: 1001 does not divide by 2, nor by the batch
settings = dict({settings})
settings["learning_rate"] = lr
callbacks = [lambda epoch, row: epoch == 2] if stop and rank == 0 else []  # only process 0 has one
result = ffnn_jax.train(x, y, coordinator_address="127.0.0.1:" + port, num_processes=2, process_id=rank,
                        callbacks=callbacks, **settings)
assert jax.process_count() == 2 and len(jax.devices()) == 2
leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(result.params)]
np.savez(out, *leaves, train_loss=np.asarray(result.history["train_loss"]),
         val_accuracy=np.asarray(result.history["val_accuracy"]))
print("RANK", rank, "DONE", flush=True)
""".format(settings=repr(_SETTINGS))


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORDINATOR", "JAX_NUM_PROC", "JAX_PROCESS"))}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONUNBUFFERED="1")
    return env


def _failure(output: str) -> str:
    """A launch's output for an assertion: the launcher's and rank 0's lines first (a rank's long
    traceback would push them out of the tail), then the tail."""
    lines = output.splitlines()
    first = [line for line in lines if line.startswith(("[launch]", "[rank 0]"))]
    return "\n".join(first[-40:]) + "\n...\n" + output[-2000:]


def test_free_port_draws_below_the_ephemeral_range_where_no_outgoing_connection_takes_it():
    low, _ = _ephemeral_ports()
    ports = {free_port() for _ in range(20)}
    assert all(port < low for port in ports) and len(ports) > 1
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", port))


def _start_pair(tmp_path, learning_rates=(1e-2, 1e-2), stop=False):
    port = str(free_port())
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PROCESS,
                str(rank),
                port,
                str(tmp_path / f"rank{rank}.npz"),
                str(lr),
                "stop" if stop else "-",
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank, lr in enumerate(learning_rates)
    ]


def _finish(processes, timeout=120):
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=timeout)
        outputs.append(out)
    return [p.returncode for p in processes], outputs


@pytest.mark.slow
def test_two_processes_over_loopback_train_like_one_process(digits, tmp_path):
    codes, outputs = _finish(_start_pair(tmp_path))
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    x, y = digits
    alone = ffnn_jax.train(np.asarray(x)[:1001], np.asarray(y)[:1001], **_SETTINGS)
    expected = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(alone.params)]
    for rank in (0, 1):
        with np.load(tmp_path / f"rank{rank}.npz") as saved:
            for i, leaf in enumerate(expected):
                worst = np.max(np.abs(saved[f"arr_{i}"] - leaf)) / np.max(np.abs(leaf))
                assert worst < 1e-5, (rank, i, worst)
            np.testing.assert_allclose(saved["train_loss"], alone.history["train_loss"], rtol=1e-5)
            np.testing.assert_allclose(saved["val_accuracy"], alone.history["val_accuracy"], rtol=1e-5)


@pytest.mark.slow
def test_a_callback_that_stops_process_0_stops_every_process_at_the_same_epoch(tmp_path):
    codes, outputs = _finish(_start_pair(tmp_path, stop=True))
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    for rank in (0, 1):
        with np.load(tmp_path / f"rank{rank}.npz") as saved:
            assert len(saved["train_loss"]) == 2, rank


@pytest.mark.slow
def test_processes_started_with_different_settings_both_stop_naming_the_setting(tmp_path):
    codes, outputs = _finish(_start_pair(tmp_path, learning_rates=(1e-2, 2e-2)))
    assert codes[0] != 0 and codes[1] != 0
    for out in outputs:
        assert "different `learning_rate`" in out, out[-2000:]


def test_a_rank_out_of_range_is_named_before_anything_starts():
    with pytest.raises(ValueError, match=r"`process_id` must be an int in 0..1"):
        initialize_distributed("127.0.0.1:1234", 2, 2)
    with pytest.raises(ValueError, match=r"`coordinator_address` must be 'host:port'"):
        initialize_distributed("127.0.0.1", 2, 0)
    with pytest.raises(ValueError, match=r"missing \['process_id'\]"):
        initialize_distributed("127.0.0.1:1234", 2)
    with pytest.raises(ValueError, match="`num_processes` must be a positive int"):
        initialize_distributed("127.0.0.1:1234", 0, 0)


def test_a_coordinator_port_in_use_is_named_before_jax_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"port {port} is already in use"):
            initialize_distributed(f"127.0.0.1:{port}", 2, 0)
    assert not jax.distributed.is_initialized()


def test_an_unreachable_coordinator_is_a_timeout_error_naming_the_address():
    port = free_port()
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=f"no coordinator answered at `coordinator_address` 127.0.0.1:{port}"):
        initialize_distributed(f"127.0.0.1:{port}", 2, 1, timeout_s=1)
    assert time.monotonic() - start < 5
    assert not jax.distributed.is_initialized()


def test_the_environment_variables_jax_reads_are_checked_too(monkeypatch):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES must be an integer"):
        initialize_distributed()
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "5")
    with pytest.raises(ValueError, match="`process_id` must be an int in 0..1"):
        initialize_distributed()


def test_no_arguments_and_no_environment_is_one_process(monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    assert initialize_distributed() is False


def test_launch_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="`-n` must be a positive"):
        launch(0, ["train"])
    with pytest.raises(ValueError, match="runs `train` or `sweep`"):
        launch(2, ["predict", "--model", "x"])


def _child_pids(pid: int) -> list:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _rank_of(pid: int) -> int:
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    return int(env[b"JAX_PROCESS_ID"])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the ranks through /proc")
def test_launch_kill9_of_one_rank_stops_the_run_and_resume_finishes_it_like_one_process(tmp_path):
    out = tmp_path / "run"
    flags = ["-d", "digits", "--hidden_sizes", "32", "-b", "64", "--no_progress", "--no_plot", "--out", str(out)]
    cli = [sys.executable, "-m", "ffnn_jax"]
    launcher = subprocess.Popen([*cli, "launch", "-n", "2", "--grace", "3", "--", "train", "-e", "100000", *flags],
                                env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    checkpoints = out / "checkpoints"
    deadline = time.monotonic() + 90
    while not (checkpoints.is_dir() and any(checkpoints.glob("ckpt-*.npz"))):
        assert launcher.poll() is None and time.monotonic() < deadline, _failure(launcher.communicate()[0])
        time.sleep(0.1)
    rank1 = next(pid for pid in _child_pids(launcher.pid) if _rank_of(pid) == 1)
    os.kill(rank1, signal.SIGKILL)
    killed = time.monotonic()
    output, _ = launcher.communicate(timeout=60)
    assert launcher.returncode != 0
    assert time.monotonic() - killed < 20  # SIGTERM to rank 0, SIGKILL after the 3 s grace
    assert "[launch] process 1 exited with status 137; stopping the others" in output, output[-3000:]
    saved = max(int(p.name[5:13]) for p in checkpoints.glob("ckpt-*.npz"))
    epochs = saved + 3
    resumed = subprocess.run([*cli, "launch", "-n", "2", "--", "train", "--out", str(out), "--resume", "-e", str(epochs)],
                             env=_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, _failure(resumed.stdout)
    assert "[rank 0] trained 64-32-10 on digits" in resumed.stdout
    assert "[rank 1] trained" not in resumed.stdout  # only process 0 reports and writes
    alone = subprocess.run([*cli, "train", "-e", str(epochs), *flags[:-1], str(tmp_path / "alone")], env=_env(),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert alone.returncode == 0, alone.stderr[-3000:]
    both = [np.load(folder / "params.npz") for folder in (out, tmp_path / "alone")]
    arrays = [name for name in both[1].files if not name.startswith("__")]
    assert arrays
    for name in arrays:
        a, b = both[0][name], both[1][name]
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == epochs


@pytest.mark.slow
def test_a_process_killed_mid_run_makes_the_other_exit_within_the_timeout(tmp_path):
    port = free_port()
    base = [sys.executable, "-m", "ffnn_jax", "train", "-d", "digits", "-e", "100000", "--hidden_sizes", "32",
            "--no_progress", "--no_plot", "--out", str(tmp_path / "run"), "--coordinator_address", f"127.0.0.1:{port}",
            "--num_processes", "2", "--distributed_timeout", "5"]  # fmt: skip
    ranks = [subprocess.Popen(base + ["--process_id", str(rank)], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]  # fmt: skip
    checkpoints = tmp_path / "run" / "checkpoints"
    deadline = time.monotonic() + 90
    while not (checkpoints.is_dir() and any(checkpoints.glob("ckpt-*.npz"))):
        if any(r.poll() is not None for r in ranks) or time.monotonic() > deadline:
            for r in ranks:
                r.kill()
            outputs = [f"rank {rank} (exit {r.wait()}):\n{r.communicate()[0][-1500:]}" for rank, r in enumerate(ranks)]
            pytest.fail("a rank ended before the first checkpoint:\n" + "\n".join(outputs))
        time.sleep(0.1)
    ranks[1].kill()
    killed = time.monotonic()
    ranks[0].communicate(timeout=60)
    waited = time.monotonic() - killed
    assert ranks[0].returncode != 0
    assert waited < 5 + 10, waited  # the heartbeat timeout, plus JAX's polling
    ranks[1].communicate()


_SWEEP_FOUR_DEVICES = """
import numpy as np, jax, ffnn_jax
assert len(jax.devices()) == 4
x, y = ffnn_jax.load_digits()
x, y = np.asarray(x)[:600], np.asarray(y)[:600]
kw = dict(grid={"learning_rate": [1e-3, 3e-3, 1e-2], "weight_decay": [0.0, 1e-4]}, hidden_sizes=(16,), epochs=3,
          optimizer="adam", batch_size=32, validation_fraction=0.2)
one = ffnn_jax.sweep(x, y, **kw)
four = ffnn_jax.sweep(x, y, devices=4, **kw)  # 6 members padded to 8: two per device
assert four.programs == 1
for a, b in zip(one.results, four.results):
    for p, q in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        p, q = np.asarray(p), np.asarray(q)
        assert np.max(np.abs(p - q)) <= 1e-5 * np.max(np.abs(p))
for r1, r4 in zip(one.table, four.table):
    assert r1["status"] == r4["status"] and r1["epochs_run"] == r4["epochs_run"]
    np.testing.assert_allclose(r1["best_val_loss"], r4["best_val_loss"], rtol=1e-5)
print("SWEPT")
"""


@pytest.mark.slow
def test_a_sweep_split_over_four_forced_devices_equals_the_one_device_sweep():
    env = {**_env(), "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run([sys.executable, "-c", _SWEEP_FOUR_DEVICES], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SWEPT" in done.stdout


@pytest.mark.slow
def test_a_sweep_launched_as_two_processes_writes_once_and_equals_one_process(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text("method: grid\nmetric: {name: val_accuracy, goal: maximize}\n"
                      "parameters:\n  learning_rate: {values: [0.001, 0.01]}\n  weight_decay: {values: [0.0, 0.0001]}\n")  # fmt: skip
    flags = ["sweep", "--config", str(config), "-d", "digits", "-e", "3", "--hidden_sizes", "16", "--no_progress"]
    cli = [sys.executable, "-m", "ffnn_jax"]
    two = subprocess.run([*cli, "launch", "-n", "2", "--", *flags, "--out", str(tmp_path / "two")], env=_env(),
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    assert two.returncode == 0, _failure(two.stdout)
    assert "[rank 0] swept 4 members" in two.stdout and "[rank 1] swept" not in two.stdout
    one = subprocess.run([*cli, *flags, "--out", str(tmp_path / "one")], env=_env(), capture_output=True, text=True,
                         timeout=180)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    tables = [np.genfromtxt(tmp_path / name / "sweep.csv", delimiter=",", names=True, dtype=None, encoding=None)
              for name in ("two", "one")]  # fmt: skip
    for column in tables[1].dtype.names:
        if tables[1][column].dtype.kind == "f":
            np.testing.assert_allclose(tables[0][column], tables[1][column], rtol=1e-5, err_msg=column)
        else:
            assert list(tables[0][column]) == list(tables[1][column]), column
