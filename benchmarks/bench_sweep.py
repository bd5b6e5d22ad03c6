"""Many networks in one program: ``sweep()`` against the same members as sequential ``train()`` calls.

    python benchmarks/bench_sweep.py [--epochs 30] [--rounds 3] [--configs digits,tiny]

digits: 64 members of 64-32-10, adam, batch 32, an 8 × 8 grid of learning rate × weight decay on
scikit-learn's digits (1797 rows); its members share a seed, so they share one data order and the
first layer is one wide product. tiny: 16 members of 784-128-10 on 60k synthetic MNIST-shaped rows
(2 epochs, a 4 × 4 grid); tiny64: the same with 64 members (8 × 8; a round takes minutes here, run it
with ``--rounds 1``). Each round times the sweep and the
sequential calls (A B order), after a warm-up of both that compiles; medians are reported with
compile time apart (the first sweep against the first train() call). On a CPU the process first
splits the CPU into one device per core (``ffnn_jax.use_cpu_cores()``, as ``ffnn-jax sweep`` does), and
each round times the sweep twice: on one device (``devices=None``, what a plain ``sweep()`` call
does) and over the per-core devices (``devices="all"``); ``train()`` runs on the first device either
way (``--no-cores``: one device only, no second sweep column). With ``--torch`` each round
also times the same members as sequential PyTorch eager runs (nn.Sequential + torch.optim.Adam with
the point's learning rate and weight decay, randperm batches; benchmarks/_peers_torch.py).
"""

import argparse
import os
import sys
import time

import numpy as np


sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import ffnn_jax  # noqa: E402


if "--no-cores" not in sys.argv:
    ffnn_jax.use_cpu_cores()  # before JAX starts: one CPU device per core (a no-op for an accelerator)

import jax  # noqa: E402

from benchmarks._configs import CONFIGS, BenchConfig, Data, initial_params, synthetic_data  # noqa: E402


def _torch_sequential(x, y, points, settings):
    """The members as one PyTorch eager run after another; a callable that runs them all."""
    import torch

    from benchmarks._peers_torch import TorchRunner

    sizes = (x.shape[1], *settings["hidden_sizes"], int(y.max()) + 1)
    data = Data(x.astype(np.float32), y.astype(np.int32))

    def run_all():
        for i, point in enumerate(points):
            config = BenchConfig("sweep", sizes, settings["batch_size"], len(x), "adam", float(point["learning_rate"]))
            runner = TorchRunner(config, data, initial_params(config, i), device="cpu", dtype="float32")
            runner.reset(i)
            runner.optimizer = torch.optim.Adam(runner.model.parameters(), lr=float(point["learning_rate"]),
                                                weight_decay=float(point.get("weight_decay", 0.0)))  # fmt: skip
            for _ in range(settings["epochs"]):
                runner.epoch()

    return run_all


def _setup(name: str, epochs: int):
    if name == "digits":
        x, y = ffnn_jax.load_digits()
        grid = {
            "learning_rate": list(np.geomspace(1e-4, 3e-2, 8)),
            "weight_decay": [0.0] + list(np.geomspace(1e-5, 1e-2, 7)),
        }
        settings = dict(hidden_sizes=(32,), optimizer="adam", batch_size=32, epochs=epochs)
    elif name in ("tiny", "tiny64"):
        data = synthetic_data(CONFIGS["tiny"])
        x, y = data.x, data.y
        side = 4 if name == "tiny" else 8
        grid = {
            "learning_rate": list(np.geomspace(1e-3, 1e-1, side)),
            "weight_decay": list(np.geomspace(1e-5, 1e-2, side)),
        }
        settings = dict(hidden_sizes=(128,), optimizer="adam", batch_size=64, epochs=2)
    else:
        raise ValueError(f"unknown config {name!r}: digits, tiny or tiny64")
    return np.asarray(x), np.asarray(y), grid, settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="digits,tiny")
    parser.add_argument("--torch", action="store_true", help="also time sequential PyTorch eager runs")
    parser.add_argument("--no-cores", action="store_true", help="one CPU device: no sweep over per-core devices")
    args = parser.parse_args()
    cores = len(jax.devices()) if jax.default_backend() == "cpu" and len(jax.devices()) > 1 else 0
    rows = []
    for name in args.configs.split(","):
        x, y, grid, settings = _setup(name, args.epochs)
        points = ffnn_jax._sweep.expand_grid(grid)

        def one_sweep():
            return ffnn_jax.sweep(x, y, grid=grid, **settings)

        def cores_sweep():
            return ffnn_jax.sweep(x, y, grid=grid, devices="all", **settings)

        def sequential():
            return [ffnn_jax.train(x, y, **settings, **point) for point in points]

        def timed(call):
            start = time.perf_counter()
            call()
            return time.perf_counter() - start

        first_sweep = timed(one_sweep)  # compiles the vmapped program
        first_cores = timed(cores_sweep) if cores else float("nan")
        first_train = timed(lambda: ffnn_jax.train(x, y, **settings, **points[0]))  # compiles train()'s
        torch_run = _torch_sequential(x, y, points, settings) if args.torch else None
        if torch_run is not None:
            timed(torch_run)  # warm-up
        times: dict = {"sweep": [], "cores": [], "sequential": [], "torch": []}
        for _ in range(args.rounds):
            times["sweep"].append(timed(one_sweep))
            times["sequential"].append(timed(sequential))
            if cores:
                times["cores"].append(timed(cores_sweep))
            if torch_run is not None:
                times["torch"].append(timed(torch_run))
        med = {key: float(np.median(values)) if values else float("nan") for key, values in times.items()}
        rows.append((name, len(points), first_sweep - med["sweep"], first_cores - med["cores"], first_train, med))
    print(f"median of {args.rounds} rounds after a warm-up; compile = first call minus a warm call; "
          f"per-core devices: {cores or 'none'}")  # fmt: skip
    print("| config | members | sweep compile (s) | per-core compile (s) | first train() (s) | sweep, one device (s) | "
          "sweep, per-core devices (s) | sequential train() (s) | speed-up one device / per-core (target ≥ 3×) | "
          "sequential PyTorch eager (s) | × PyTorch one device / per-core (target ≥ 10×) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, members, compile_s, compile_cores, first, med in rows:
        seq, torch_s = med["sequential"], med["torch"]
        print(f"| {name} | {members} | {compile_s:.2f} | {compile_cores:.2f} | {first:.2f} | {med['sweep']:.2f} | "
              f"{med['cores']:.2f} | {seq:.2f} | {seq / med['sweep']:.2f}× / {seq / med['cores']:.2f}× | "
              f"{torch_s:.2f} | {torch_s / med['sweep']:.2f}× / {torch_s / med['cores']:.2f}× |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
