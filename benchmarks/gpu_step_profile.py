"""Where the large network's training step goes on an accelerator: MFU against batch size, and its kernels.

    PYTHONPATH=. python benchmarks/gpu_step_profile.py --device gpu [--dtype bfloat16] [--batches 1024,4096]

For each batch size the ``large`` network (1024-2048-2048-2048-10, SGD) is trained by
``ffnn_jax.train()`` on the same number of samples; the median epoch time after a compiling run
gives samples/s and MFU (6 × weights × samples/s over the square-GEMM rate measured in the same
process). Then one epoch at the first batch size runs under ``jax.profiler`` and the kernels that
took the most device time are listed per step: what a step spends besides its matrix products.
"""

import argparse
import dataclasses
import gzip
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="gpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    parser.add_argument("--batches", default="1024,2048,4096,8192", help="comma-separated batch sizes")
    parser.add_argument("--samples", type=int, default=98304, help="training rows per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run; the first is not timed")
    parser.add_argument("--gemm-size", type=int, default=8192)
    parser.add_argument("--top", type=int, default=12, help="kernels listed")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    return parser.parse_args(argv)


def device_kernel_times(trace_dir: str) -> dict:
    """``{kernel name: (total µs, count)}`` over the device tracks of the Perfetto trace under ``trace_dir``."""
    paths = sorted(Path(trace_dir).rglob("*.trace.json.gz")) + sorted(Path(trace_dir).rglob("perfetto_trace.json.gz"))
    if not paths:
        return {}
    with gzip.open(paths[-1], "rt") as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    processes = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    device_pids = {pid for pid, name in processes.items() if "/device:" in name}
    totals = defaultdict(lambda: [0.0, 0])
    for event in events:
        if event.get("ph") == "X" and event.get("pid") in device_pids:
            totals[event["name"]][0] += float(event.get("dur", 0.0))
            totals[event["name"]][1] += 1
    return {name: tuple(value) for name, value in totals.items()}


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu" if args.device == "cpu" else "cuda")
    import jax

    import ffnn_jax
    from benchmarks._configs import CONFIGS, initial_params, synthetic_data
    from benchmarks._gemm import measure_gemm, mfu

    base = CONFIGS["large"]
    ceiling = measure_gemm(args.gemm_size, args.dtype, device=args.device)["best"]
    print(f"{jax.devices()[0].device_kind}: GEMM {args.gemm_size}² {args.dtype} ceiling {ceiling:,.0f} GFLOP/s")
    init = [ffnn_jax.LayerParams(W=w, b=b) for w, b in initial_params(base)]
    mixed = {} if args.dtype == "float32" else {"compute_dtype": args.dtype}

    def setup(batch: int):
        """The large config at ``batch``, its data and the train() settings."""
        config = dataclasses.replace(base, batch_size=batch, n_samples=args.samples // batch * batch)
        settings = dict(
            hidden_sizes=config.hidden_sizes,
            optimizer="sgd",
            learning_rate=config.learning_rate,
            batch_size=batch,
            initial_params=init,
            **mixed,
        )
        return config, synthetic_data(config), settings

    rows = []
    batches = [int(b) for b in args.batches.split(",")]
    for batch in batches:
        config, data, settings = setup(batch)
        ffnn_jax.train(data.x, data.y, epochs=1, **settings)  # compiles
        history = ffnn_jax.train(data.x, data.y, epochs=args.epochs, **settings).history
        epoch_s = float(np.median(history["time_s"][1:]))
        samples_per_s = config.n_samples / epoch_s
        utilisation = mfu(config.n_weights, samples_per_s, ceiling)
        step_us = 1e6 * epoch_s / (config.n_samples // batch)
        rows.append(dict(batch=batch, epoch_s=epoch_s, step_us=step_us, samples_per_s=samples_per_s, mfu=utilisation))
        print(f"batch {batch}: {step_us:.0f} µs/step, {samples_per_s:,.0f} samples/s, MFU {utilisation:.1%}")

    batch = batches[0]
    config, data, settings = setup(batch)  # compiled in the loop above
    steps = config.n_samples // batch
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            ffnn_jax.train(data.x, data.y, epochs=1, **settings)
        kernels = device_kernel_times(trace_dir)
    busy = sum(total for total, _ in kernels.values())
    print(f"\nbatch {batch}, one traced epoch of {steps} steps: device busy {busy / steps:.0f} µs per step")
    print("| kernel | µs per step | launches per step | share |")
    print("| --- | ---: | ---: | ---: |")
    for name, (total, count) in sorted(kernels.items(), key=lambda item: -item[1][0])[: args.top]:
        print(f"| {name[:70]} | {total / steps:.1f} | {count / steps:.1f} | {total / max(busy, 1e-9):.1%} |")
    print("\n| batch | µs per step | samples/s | MFU |")
    print("| ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['batch']} | {row['step_us']:.0f} | {row['samples_per_s']:,.0f} | {row['mfu']:.1%} |")
    if args.json:
        figures = dict(
            device=jax.devices()[0].device_kind, dtype=args.dtype, ceiling_gflops=ceiling, rows=rows, kernels=kernels
        )
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
