"""What checkpointing every epoch costs: train() with and without ``checkpoint_dir`` on the tiny config.

    python benchmarks/bench_checkpoint.py [--epochs 4] [--rounds 5]
    python benchmarks/bench_checkpoint.py --sweep [--epochs 30] [--rounds 5]

A B A B rounds after a warm-up call of each (which compiles): A is ``train(epochs=E)``, B the same
call with ``checkpoint_dir`` (a fresh folder each round, one checkpoint per epoch). Reports the
median wall time of each, the overhead (B / A − 1, target ≤ 2%), one checkpoint's size and
synchronous write time, and the model FLOP utilisation of A against this machine's GEMM rate.
``--sweep``: the same for ``sweep()`` on the digits sweep of ``bench_sweep.py`` (64 members in
one program; a checkpoint per epoch also ends each dispatch after one epoch).
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np


sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import ffnn_jax  # noqa: E402
from benchmarks._configs import CONFIGS, synthetic_data  # noqa: E402
from benchmarks._gemm import measure_gemm, mfu  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="time sweep() on bench_sweep.py's digits sweep")
    args = parser.parse_args()
    if args.sweep:
        return _sweep_overhead(args)
    config = CONFIGS["tiny"]
    data = synthetic_data(config)
    settings = dict(
        hidden_sizes=config.hidden_sizes,
        optimizer=config.optimizer,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        epochs=args.epochs,
        shuffle=True,
    )
    root = tempfile.mkdtemp(prefix="bench-checkpoint-")

    def plain():
        return ffnn_jax.train(data.x, data.y, **settings)

    def checkpointed(folder=None):
        folder = folder or tempfile.mkdtemp(dir=root)
        return ffnn_jax.train(data.x, data.y, checkpoint_dir=folder, **settings)

    a, b, pair_ratios = _a_b(plain, checkpointed, args.rounds)

    folder = tempfile.mkdtemp(dir=root)
    result = checkpointed(folder)
    from ffnn_jax._run_checkpoint import CheckpointStore, checkpoint_files

    size = os.path.getsize(checkpoint_files(folder)[0][1])
    store = CheckpointStore(tempfile.mkdtemp(dir=root), keep=2)
    write_times = []
    for epoch in range(1, 6):
        start = time.perf_counter()
        store.save(result.run, epoch=epoch, history=result.history, about={}, wait=True)
        write_times.append(time.perf_counter() - start)
    store.close()

    gemm = measure_gemm(1024, "float32", device="cpu")
    samples_per_s = config.n_samples * args.epochs / a
    print(f"tiny {config.layer_sizes} batch {config.batch_size}, {config.n_samples} rows, {args.epochs} epochs,")
    print(f"median of {args.rounds} A B rounds after a warm-up (compile excluded):")
    print(f"  train()                      {a:.3f} s  ({samples_per_s:,.0f} samples/s)")
    print(f"  train(checkpoint_dir=...)    {b:.3f} s  (one checkpoint per epoch)")
    _print_overhead(a, b, pair_ratios)
    print(
        f"  one checkpoint               {size / 1e6:.2f} MB, synchronous write {1e3 * np.median(write_times):.1f} ms"
    )
    print(
        f"  GEMM ceiling {gemm['best']:.0f} GFLOP/s; train() at {100 * mfu(config.n_weights, samples_per_s, gemm['best']):.1f}% of it"
    )
    return 0


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _a_b(plain, checkpointed, rounds: int):
    """Medians of A (``plain``) and B (``checkpointed``) over A B rounds after a warm-up of each,
    and each B's ratio to the A just before it."""
    _timed(plain), _timed(checkpointed)  # warm-up: compiles both
    times = {"plain": [], "checkpointed": []}
    for _ in range(rounds):
        times["plain"].append(_timed(plain))
        times["checkpointed"].append(_timed(checkpointed))
    a, b = (float(np.median(times[name])) for name in ("plain", "checkpointed"))
    return a, b, np.array(times["checkpointed"]) / np.array(times["plain"])


def _print_overhead(a: float, b: float, pair_ratios: np.ndarray) -> None:
    print(
        f"  checkpoint overhead          {100 * (b / a - 1):+.2f}% of the medians, {100 * (np.median(pair_ratios) - 1):+.2f}% median of the A B pairs"
        f" (pairs from {100 * (pair_ratios.min() - 1):+.1f}% to {100 * (pair_ratios.max() - 1):+.1f}%; target <= 2%)"
    )


def _sweep_overhead(args) -> int:
    from benchmarks.bench_sweep import _setup

    epochs = args.epochs if args.epochs != 4 else 30  # the sweep bench's default length
    x, y, grid, settings = _setup("digits", epochs)
    root = tempfile.mkdtemp(prefix="bench-checkpoint-sweep-")
    folders = []

    def plain():
        return ffnn_jax.sweep(x, y, grid=grid, **settings)

    def checkpointed():
        folders.append(tempfile.mkdtemp(dir=root))
        return ffnn_jax.sweep(x, y, grid=grid, checkpoint_dir=folders[-1], **settings)

    a, b, pair_ratios = _a_b(plain, checkpointed, args.rounds)
    chunk = [os.path.join(parent, name) for parent, _, names in os.walk(folders[-1]) for name in names]
    size = max(os.path.getsize(path) for path in chunk if os.path.basename(path).startswith("ckpt-"))
    members = len(ffnn_jax._sweep.expand_grid(grid))
    print(f"digits sweep: {members} members, {epochs} epochs, one program; median of {args.rounds} A B rounds:")
    print(f"  sweep()                      {a:.3f} s")
    print(f"  sweep(checkpoint_dir=...)    {b:.3f} s  (one checkpoint of the stacked members per epoch)")
    _print_overhead(a, b, pair_ratios)
    print(f"  one checkpoint               {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
