"""kill -9 an ``ffnn-jax train`` run at random moments, ``--resume`` it each time, and compare.

    python scripts/kill_resume.py --kills 20

Each kill lands a random time after the run's first checkpoint appears (so during epochs and
during checkpoint writes); the run is then resumed, and killed again, until it finishes. The
finished run must equal an uninterrupted one bit for bit (params and metrics, less wall times).
"""

import argparse
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


def start(out: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "ffnn_jax", "train", *FLAGS, "--out", out, *extra]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finished_run(out: str) -> tuple:
    with np.load(os.path.join(out, "params.npz"), allow_pickle=False) as arrays:
        params = {name: arrays[name] for name in arrays.files if name != "__metadata__"}
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [{k: v for k, v in json.loads(line).items() if k != "time_s"} for line in f]
    return params, rows


def newest_checkpoint(out: str) -> str:
    folder = os.path.join(out, "checkpoints")
    return max(os.listdir(folder), default="") if os.path.isdir(folder) else ""


def kill_and_resume(out: str, kills: int, rng: random.Random, mid_write: list, timeout: float = 120.0) -> int:
    """Runs in ``out`` with ``kills`` kill -9s (each after the process wrote a checkpoint, a
    random 0-0.1 s later); returns how many landed before the run ended, and appends to
    ``mid_write`` the attempts whose kill cut a checkpoint write short."""
    landed = 0
    for attempt in range(kills + 1):
        process = start(out, *(["--resume"] if attempt else []))
        if attempt < kills:
            before, deadline = newest_checkpoint(out), time.monotonic() + timeout
            while newest_checkpoint(out) == before and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)  # until this process has written a checkpoint of its own
            time.sleep(rng.uniform(0.0, 0.1))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                landed += 1
        _, stderr = process.communicate(timeout=timeout)
        folder = os.path.join(out, "checkpoints")
        if os.path.isdir(folder) and any(name.startswith(".tmp-") for name in os.listdir(folder)):
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        reference = os.path.join(folder, "reference")
        start(reference).communicate()
        killed = os.path.join(folder, "killed")
        mid_write = []
        landed = kill_and_resume(killed, args.kills, random.Random(args.seed), mid_write)
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
