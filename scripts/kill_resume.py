"""kill -9 an ``ffnn-jax train`` run (or ``sweep``) at random moments, ``--resume`` it each time, and compare.

    python scripts/kill_resume.py --kills 20 [--command sweep]

Each kill lands a random time after the run's first checkpoint appears (so during epochs and
during checkpoint writes); the run is then resumed, and killed again, until it finishes. The
finished run must equal an uninterrupted one bit for bit (params and metrics, less wall times;
for a sweep: its table, every member's metrics and the best point's params).
"""

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np


FLAGS = ["-d", "digits", "-e", "400", "-sz", "64", "-b", "32", "--no_progress", "--no_plot"]
# six members (3 learning rates × 2 weight decays) of 64-32-10 for 150 epochs, split over the cores
SWEEP_FLAGS = ["-d", "digits", "-e", "150", "-sz", "32", "-b", "32", "--no_progress", "--no_plot"]
SWEEP_YAML = """method: grid
metric: {name: val_loss, goal: minimize}
parameters:
  learning_rate: {values: [0.001, 0.01, 0.1]}
  weight_decay: {values: [0.0, 0.0001]}
"""


def start(out: str, *extra: str, command: str = "train") -> subprocess.Popen:
    """``ffnn-jax <command> ... --out out``: a train run, or a sweep of ``SWEEP_YAML`` (written beside ``out``)."""
    if command == "sweep":
        config = os.path.join(os.path.dirname(os.path.abspath(out)), "sweep.yaml")
        with open(config, "w") as f:
            f.write(SWEEP_YAML)
        flags = ["sweep", "--config", config, *SWEEP_FLAGS]
    else:
        flags = ["train", *FLAGS]
    command_line = [sys.executable, "-m", "ffnn_jax", *flags, "--out", out, *extra]
    return subprocess.Popen(command_line, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _rows(path: str) -> list:
    with open(path) as f:
        return [{k: v for k, v in json.loads(line).items() if k != "time_s"} for line in f]


def finished_run(out: str) -> tuple:
    """(params of params.npz, metric rows less wall times): a sweep's rows are its table and then
    every member's metrics."""
    with np.load(os.path.join(out, "params.npz"), allow_pickle=False) as arrays:
        params = {name: arrays[name] for name in arrays.files if name != "__metadata__"}
    if os.path.isfile(os.path.join(out, "sweep.csv")):
        with open(os.path.join(out, "sweep.csv")) as f:
            rows = list(csv.DictReader(f))
        members = os.path.join(out, "members")
        for member in sorted(os.listdir(members)):
            rows += _rows(os.path.join(members, member, "metrics.jsonl"))
        return params, rows
    return params, _rows(os.path.join(out, "metrics.jsonl"))


def _checkpoint_files(out: str) -> list:
    """Paths under ``out``/checkpoints (a sweep's in one folder per chunk), relative to it."""
    folder = os.path.join(out, "checkpoints")
    found = []
    for parent, _, names in os.walk(folder):
        found += [os.path.relpath(os.path.join(parent, name), folder) for name in names]
    return found


def newest_checkpoint(out: str) -> str:
    """The newest checkpoint file (of the last chunk of a sweep); "" while there is none."""
    return max((path for path in _checkpoint_files(out) if os.path.basename(path).startswith("ckpt-")), default="")


def kill_and_resume(out: str, kills: int, rng: random.Random, mid_write: list, timeout: float = 120.0,
                    command: str = "train") -> int:  # fmt: skip
    """Runs in ``out`` with ``kills`` kill -9s (each after the process wrote a checkpoint, a
    random 0-0.1 s later); returns how many landed before the run ended, and appends to
    ``mid_write`` the attempts whose kill cut a checkpoint write short."""
    landed = 0
    for attempt in range(kills + 1):
        process = start(out, *(["--resume"] if attempt else []), command=command)
        if attempt < kills:
            before, deadline = newest_checkpoint(out), time.monotonic() + timeout
            while newest_checkpoint(out) == before and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)  # until this process has written a checkpoint of its own
            time.sleep(rng.uniform(0.0, 0.1))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                landed += 1
        _, stderr = process.communicate(timeout=timeout)
        if any(os.path.basename(path).startswith(".tmp-") for path in _checkpoint_files(out)):
            mid_write.append(attempt)  # the kill cut a checkpoint write short
        if process.returncode == 0:
            return landed
        if process.returncode != -signal.SIGKILL:
            raise RuntimeError(f"the run failed with exit {process.returncode}: {stderr}")
    raise RuntimeError("the run did not finish after the last resume")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--command", choices=("train", "sweep"), default="train")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        reference = os.path.join(folder, "reference", "run")
        os.makedirs(os.path.dirname(reference))
        start(reference, command=args.command).communicate()
        killed = os.path.join(folder, "killed", "run")
        os.makedirs(os.path.dirname(killed))
        mid_write = []
        landed = kill_and_resume(killed, args.kills, random.Random(args.seed), mid_write, command=args.command)
        (params_a, rows_a), (params_b, rows_b) = finished_run(reference), finished_run(killed)
        same = rows_a == rows_b and params_a.keys() == params_b.keys()
        same = same and all(np.array_equal(params_a[k], params_b[k]) for k in params_a)
    print(
        f"kill -9: {landed} of {args.kills} kills landed mid-run, {len(mid_write)} of them during a checkpoint write; "
        f"the resumed run equals the uninterrupted one bit for bit: {same}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
