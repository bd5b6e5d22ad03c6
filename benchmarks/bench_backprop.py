"""Times jitted hand-written ``backprop`` against jitted ``jax.grad(loss)`` on the same network and batch.

Both are compiled ahead of time (compile time reported separately), warmed up, then timed interleaved A B A B: each
repetition runs ``--calls`` calls of one, then of the other, and the table shows the median over repetitions of the
milliseconds per call, and the ratio backprop / jax.grad (below 1: backprop is faster). Prints a Markdown table.

    python benchmarks/bench_backprop.py --layer-sizes 784,512,512,10 --batch-size 256
"""

import argparse
import functools
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from ffnn_jax._backprop import backprop
from ffnn_jax._gradcheck import x64_scope
from ffnn_jax._losses import loss
from ffnn_jax._params import init_params


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layer-sizes", default="784,512,512,10", help="comma-separated, inputs first")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--loss", default="cross_entropy", choices=["cross_entropy", "squared_error"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--reps", type=int, default=7, help="interleaved repetitions (the median is reported)")
    parser.add_argument("--calls", type=int, default=20, help="calls per repetition")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.reps < 5 or args.calls < 1:
        parser.error("--reps must be >= 5 and --calls >= 1")
    return args


def _problem(args):
    sizes = [int(size) for size in args.layer_sizes.split(",")]
    key_params, key_x, key_y = jax.random.split(jax.random.key(args.seed), 3)
    params = init_params(key_params, sizes, init="he", dtype=args.dtype)
    x = jax.random.normal(key_x, (args.batch_size, sizes[0]), args.dtype)
    y = jax.random.randint(key_y, (args.batch_size,), 0, sizes[-1])
    return params, (x, y)


def _compile(fn, *args):
    """(compiled fn, seconds to trace, lower and compile it)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def _ms_per_call(compiled, args, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        out = compiled(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls * 1e3


def run(args) -> str:
    """Measures and returns the Markdown report."""
    params, batch = _problem(args)
    options = {"activation": args.activation, "loss": args.loss}
    candidates = {
        "jax.grad(loss)": functools.partial(jax.grad(loss), **options),
        "backprop (hand-written)": functools.partial(backprop, **options),
    }
    compiled, compile_s = {}, {}
    for name, fn in candidates.items():
        compiled[name], compile_s[name] = _compile(fn, params, batch)
        _ms_per_call(compiled[name], (params, batch), 3)  # warm-up
    grads = [compiled[name](params, batch) for name in candidates]
    largest_difference = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree_util.tree_leaves(grads[0]), jax.tree_util.tree_leaves(grads[1]))
    )
    ms = {name: [] for name in candidates}
    for _ in range(args.reps):
        for name in candidates:  # interleaved: A B A B ...
            ms[name].append(_ms_per_call(compiled[name], (params, batch), args.calls))
    median = {name: float(np.median(values)) for name, values in ms.items()}
    reference, hand = candidates
    device = jax.devices()[0]
    machine = f"{device.platform} ({device.device_kind}, {platform.machine()}, {os.cpu_count()} cores)"
    lines = [
        f"Network {args.layer_sizes}, batch {args.batch_size}, {args.dtype}, {args.activation}, {args.loss}; "
        f"jax {jax.__version__} on {machine}; "
        f"median of {args.reps} interleaved repetitions of {args.calls} calls after a warm-up; "
        f"max |backprop − jax.grad| = {largest_difference:.2e}.",
        "",
        "| gradient | compile (s) | ms / call (median) | ms / call (min–max) | vs jax.grad |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in candidates:
        lines.append(
            f"| {name} | {compile_s[name]:.2f} | {median[name]:.3f} | {min(ms[name]):.3f}–{max(ms[name]):.3f} | "
            f"{median[name] / median[reference]:.2f}× |"
        )
    lines.append(
        f"\nRatio backprop / jax.grad: **{median[hand] / median[reference]:.2f}** (below 1: backprop is faster)."
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.dtype == "float64":
        with x64_scope():
            print(run(args))
    else:
        print(run(args))


if __name__ == "__main__":
    main()
