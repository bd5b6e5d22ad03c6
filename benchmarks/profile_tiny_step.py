"""Where a tiny training step's time goes on this CPU: per-op device time, its GEMMs against PyTorch's, one core against two.

    python benchmarks/profile_tiny_step.py [--epochs 2] [--reps 300]

Three measurements of the tiny configuration (784-128-10, SGD, batch 64, 60k rows), printed as
tables:

1. **Per op.** The core's jitted epoch (what ``train()`` scans) runs ``--epochs`` epochs under
   ``jax.profiler``; the trace's per-op events that run once or more per step are summed and
   divided by the step count, and each op is named with its HLO (shape, op, and for a fusion the
   library that runs it). The profiler inflates each op a
   little; the shares are what to read.
2. **The step's GEMMs alone**, each timed in a loop that XLA cannot hoist (a carried scalar), in
   JAX and in PyTorch (``torch.set_num_threads`` = the cores), with the same shapes: forward
   ``x [64, 784] @ W₁ [784, 128]``, weight gradient ``xᵀ δ₁``, and the 128 × 10 layer's.
3. **One core against two**: the steady epoch of ``train()`` in a child process pinned to one core
   (``os.sched_setaffinity``) and in one with both, median of the epochs after the first.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.profile_ffnn import hlo_census  # noqa: E402


_TINY = dict(hidden_sizes=(128,), optimizer="sgd", learning_rate=0.01, batch_size=64, validation_fraction=0.0)
_STEPS_PER_EPOCH = -(-60_000 // 64)

_EPOCH_CHILD = """
import os, sys, json
sys.path.insert(0, {root!r})
cores = {cores}
if cores:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
import numpy as np, ffnn_jax
from benchmarks._configs import CONFIGS, synthetic_data
data = synthetic_data(CONFIGS["tiny"])
result = ffnn_jax.train(data.x, data.y, epochs={epochs}, **{settings!r})
print(json.dumps(result.history["time_s"][1:]))
"""


def _tiny_data():
    from benchmarks._configs import CONFIGS, synthetic_data

    return synthetic_data(CONFIGS["tiny"])


def _op_names(compiled_text: str) -> dict:
    """HLO instruction name -> a short description (result shape, op, and a fusion's library)."""
    described = {}
    for line in compiled_text.splitlines():
        match = re.match(r"\s+(?:ROOT )?%([\w.\-]+) = (\S+) ([\w\-]+)\(", line)
        if match:
            name, shape, op = match.groups()
            library = re.search(r"\"kind\":\"__(\w+?)_fusion\"", line)
            what = re.search(r'op_name="[^"]*/([\w\-]+)"', line)
            described[name] = f"{op} {shape}" + (f" [{library.group(1)}]" if library else "") + (
                f" ({what.group(1)})" if what else ""
            )
    return described


def per_op_profile(epochs: int) -> tuple:
    """(µs per step, op name, description) of the epoch program's ops, largest first, and its GEMMs.

    The traced program is the core's jitted epoch (``ffnn_jax._step.run_epoch``, what ``train()``
    scans), called on device-resident data, so that the trace's op names are those of its HLO.
    """
    import jax
    import jax.numpy as jnp

    import ffnn_jax
    from ffnn_jax._optim import OptimizerSpec
    from ffnn_jax._step import ModelSpec, init_train_state, run_epoch

    data = _tiny_data()
    tx = ffnn_jax.make_optimizer("sgd", learning_rate=0.01)
    state = init_train_state(ffnn_jax.init_params(jax.random.key(0), (784, 128, 10)), tx, jax.random.key(1))
    x, y = jnp.asarray(data.x), jnp.asarray(data.y)
    static = dict(model=ModelSpec("relu", "cross_entropy", True), optimizer=OptimizerSpec("sgd"), batch_size=64,
                  shuffle=True)  # fmt: skip
    compiled = run_epoch.lower(state, x, y, None, **static).compile().as_text()
    described = _op_names(compiled)
    state, sums = run_epoch(state, x, y, None, **static)  # compiled before the trace
    jax.block_until_ready(sums)
    with tempfile.TemporaryDirectory() as folder:
        jax.profiler.start_trace(folder)
        for _ in range(epochs):
            state, sums = run_epoch(state, x, y, None, **static)
        jax.block_until_ready(sums)
        jax.profiler.stop_trace()
        (trace,) = glob.glob(os.path.join(folder, "plugins", "profile", "*", "*.trace.json.gz"))
        events = [e for e in json.load(gzip.open(trace))["traceEvents"] if e.get("ph") == "X"]
    steps = epochs * _STEPS_PER_EPOCH
    totals = collections.Counter()
    counts = collections.Counter()
    for event in events:
        if event["name"] in described:
            totals[event["name"]] += event["dur"]
            counts[event["name"]] += 1
    # once per step (the scan may take its first step outside the loop, under other names)
    rows = [(total / steps, name, described[name]) for name, total in totals.items() if counts[name] >= 0.9 * steps]
    return sorted(rows, reverse=True), hlo_census(compiled)["dots"]


def _loop_us(fn, args, reps: int) -> float:
    """µs per call of ``fn(scalar, *args)`` inside a jitted loop that carries a scalar (nothing hoists)."""
    import jax
    import jax.numpy as jnp

    def loop(*args):
        return jax.lax.fori_loop(0, reps, lambda i, acc: acc + fn(acc, *args).reshape(-1)[0] * 1e-30, jnp.float32(0))

    compiled = jax.jit(loop)
    compiled(*args).block_until_ready()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        compiled(*args).block_until_ready()
        times.append((time.perf_counter() - start) / reps)
    return float(np.median(times)) * 1e6


def _torch_us(fn, reps: int) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - start) / reps)
    return float(np.median(times)) * 1e6


def gemms(reps: int) -> list:
    """(name, FLOPs, JAX µs, PyTorch µs or None) for the tiny step's GEMMs."""
    import jax

    keys = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(keys[0], (64, 784))
    w1 = jax.random.normal(keys[1], (784, 128))
    d1 = jax.random.normal(keys[2], (64, 128))
    w2 = jax.random.normal(keys[3], (128, 10))
    d2 = d1[:, :10]
    cases = [
        ("forward x @ W1 [64,784]x[784,128]", 2 * 64 * 784 * 128, lambda s, x, w: (x + s) @ w, (x, w1)),
        ("weight gradient x^T d1 [784,64]x[64,128]", 2 * 64 * 784 * 128, lambda s, x, d: (x + s).T @ d, (x, d1)),
        ("forward h @ W2 [64,128]x[128,10]", 2 * 64 * 128 * 10, lambda s, h, w: (h + s) @ w, (d1, w2)),
        ("weight gradient h^T d2 [128,64]x[64,10]", 2 * 64 * 128 * 10, lambda s, h, d: (h + s).T @ d, (d1, d2)),
    ]
    try:
        import torch

        torch.set_num_threads(len(os.sched_getaffinity(0)))
    except ImportError:
        torch = None
    rows = []
    for name, flops, fn, args in cases:
        ours = _loop_us(fn, args, reps)
        theirs = None
        if torch is not None:
            tensors = [torch.from_numpy(np.asarray(a).copy()) for a in args]
            theirs = _torch_us(lambda: fn(0.0, *tensors), reps)
        rows.append((name, flops, ours, theirs))
    return rows


def epoch_on_cores(cores: int, epochs: int) -> float:
    """Median steady epoch (s) of ``train()`` in a child process on ``cores`` cores (0: all)."""
    code = _EPOCH_CHILD.format(root=str(Path(__file__).resolve().parents[1]), cores=cores, epochs=epochs,
                               settings=_TINY)  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(np.median(json.loads(done.stdout.strip().splitlines()[-1])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs traced (default 2)")
    parser.add_argument("--reps", type=int, default=300, help="GEMM calls per timing (default 300)")
    args = parser.parse_args()
    ops, dots = per_op_profile(args.epochs)
    step_us = sum(us for us, _, _ in ops)
    print(f"1. tiny step under jax.profiler: {step_us:.0f} µs of ops per step ({len(ops)} ops); the largest:")
    print("| µs / step | share | op |")
    print("|---|---|---|")
    for us, name, what in ops[:12]:
        print(f"| {us:.1f} | {us / step_us:.0%} | {name}: {what} |")
    print("GEMMs of the epoch and who runs them: " + "; ".join(dots))
    print("\n2. the step's GEMMs alone (µs per call; GFLOP/s)")
    print("| GEMM | JAX µs | JAX GFLOP/s | PyTorch µs | PyTorch GFLOP/s | JAX time / PyTorch time |")
    print("|---|---|---|---|---|---|")
    for name, flops, ours, theirs in gemms(args.reps):
        torch_cells = "– | – | –" if theirs is None else f"{theirs:.1f} | {flops / theirs / 1e3:.0f} | {ours / theirs:.2f}×"
        print(f"| {name} | {ours:.1f} | {flops / ours / 1e3:.0f} | {torch_cells} |")
    cores = len(os.sched_getaffinity(0))
    print(f"\n3. steady tiny epoch of train(), one core against all {cores} (child processes, A B A B)")
    one, every = [], []
    for _ in range(2):
        one.append(epoch_on_cores(1, 4))
        every.append(epoch_on_cores(0, 4))
    a, b = float(np.median(one)), float(np.median(every))
    print("| cores | epoch (s) | µs / step |")
    print("|---|---|---|")
    print(f"| 1 | {a:.3f} | {a / _STEPS_PER_EPOCH * 1e6:.0f} |")
    print(f"| {cores} | {b:.3f} | {b / _STEPS_PER_EPOCH * 1e6:.0f} |")
    print(f"all cores / one core: {b / a:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
