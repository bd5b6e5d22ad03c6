"""Speed as a user times it: the whole ``train()`` call, the first call, the second CLI run.

    python benchmarks/bench_whole_call.py --out bench_out/whole_call [--rounds 3] [--sizes 6000,60000,600000]

Every figure is printed next to its target (issue #17) and written as JSON:

- whole call: ``train()`` from NumPy arrays, 4 epochs, wall time, against 4 × the steady epoch of
  the same call (the median of its epochs 2–4 in ``history["time_s"]``), on tiny (784-128-10,
  batch 64, SGD) and on the Fashion-MNIST configuration (784-256-128-10, adam 1e-3, batch 128;
  the real training split when it is installed, else data of its shape);
- the same whole call of PyTorch eager (model, tensors from NumPy, 4 epochs), interleaved A B A B;
  the ratio is PyTorch's wall time over ffnn_jax's (median of the per-round ratios);
- model FLOP utilisation of the steady epoch against this machine's measured float32 GEMM rate;
- the set-up cost (whole − 4 × steady) at several data sizes (tiny network): it should grow by at
  most one pass over the data;
- the first ``train()`` call in a fresh process (nothing compiled or cached) against a compiled call;
- ``ffnn-jax train -d digits -e 5`` run twice with a fresh compilation cache: the second run's wall
  time, whether it compiled anything (cache entries added), and ``import jax`` alone for scale.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._configs import BenchConfig, Data, initial_params, synthetic_data  # noqa: E402
from benchmarks._first_call import first_call_overhead  # noqa: E402
from benchmarks._gemm import measure_gemm, mfu  # noqa: E402


EPOCHS = 4
TINY = BenchConfig("tiny", (784, 128, 10), batch_size=64, n_samples=937 * 64, optimizer="sgd", learning_rate=0.05)
FASHION = BenchConfig("fashion", (784, 256, 128, 10), batch_size=128, n_samples=60000, optimizer="adam",
                      learning_rate=1e-3)  # fmt: skip
TARGETS = {"whole_over_steady": 1.05, "vs_torch": 2.0, "mfu_tiny": 0.55, "first_call_extra_s": 1.0, "cli_second_s": 2.0}


def _fashion_data() -> tuple:
    import ffnn_jax

    try:
        x, y = ffnn_jax.load_dataset("fashion_mnist", "train", download=False)
        return Data(np.asarray(x, np.float32), np.asarray(y, np.int32)), "Fashion-MNIST training split"
    except (OSError, ValueError):
        return synthetic_data(FASHION), "synthetic data of Fashion-MNIST's shape (the IDX files are not installed)"


def _ffnn_whole(config: BenchConfig, data: Data) -> dict:
    import ffnn_jax

    start = time.perf_counter()
    result = ffnn_jax.train(data.x, data.y, hidden_sizes=config.hidden_sizes, optimizer=config.optimizer,
                            learning_rate=config.learning_rate, batch_size=config.batch_size, epochs=EPOCHS, seed=0)  # fmt: skip
    whole = time.perf_counter() - start
    steady = float(np.median(result.history["time_s"][1:]))
    return {"whole_s": whole, "steady_epoch_s": steady, "epochs_s": sum(result.history["time_s"])}


def _torch_runner(config: BenchConfig, data: Data):
    from benchmarks._peers_torch import TorchRunner

    init = initial_params(config)
    return lambda: TorchRunner(config, data, init, device="cpu", dtype="float32")


def _torch_whole(make_runner) -> float:
    start = time.perf_counter()
    runner = make_runner()  # the model, the tensors from NumPy
    runner.reset(0)
    for _ in range(EPOCHS):
        runner.epoch()
    return time.perf_counter() - start


def whole_call(config: BenchConfig, data: Data, rounds: int, ceiling: float) -> dict:
    """A B A B: ffnn_jax's whole call and PyTorch eager's, after a warm-up of each."""
    config = BenchConfig(config.name, config.layer_sizes, config.batch_size, len(data.x), config.optimizer,
                         config.learning_rate)  # fmt: skip
    _ffnn_whole(config, data)  # compiles
    try:
        make_runner = _torch_runner(config, data)
        _torch_whole(make_runner)
    except Exception as error:  # PyTorch missing or failing: the ffnn_jax figures still count
        make_runner, torch_error = None, f"{type(error).__name__}: {error}"
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(_ffnn_whole(config, data))
        if make_runner is not None:
            theirs.append(_torch_whole(make_runner))
    whole = float(np.median([r["whole_s"] for r in ours]))
    steady = float(np.median([r["steady_epoch_s"] for r in ours]))
    figures = {
        "rows": len(data.x),
        "whole_s": whole,
        "steady_epoch_s": steady,
        "whole_over_steady": float(np.median([r["whole_s"] / (EPOCHS * r["steady_epoch_s"]) for r in ours])),
        "setup_s": float(np.median([r["whole_s"] - EPOCHS * r["steady_epoch_s"] for r in ours])),
        "mfu": mfu(config.n_weights, len(data.x) / steady, ceiling),
        "rounds": [{"ffnn_jax": o, "torch_whole_s": t} for o, t in zip(ours, theirs + [None] * len(ours))],
    }
    import jax.numpy as jnp

    on_device = Data(jnp.asarray(data.x), jnp.asarray(data.y))  # what a user who reuses the data passes
    _ffnn_whole(config, on_device)
    device_runs = [_ffnn_whole(config, on_device) for _ in range(rounds)]
    figures["device_input_whole_over_steady"] = float(
        np.median([r["whole_s"] / (EPOCHS * r["steady_epoch_s"]) for r in device_runs])
    )
    if theirs:
        figures["torch_whole_s"] = float(np.median(theirs))
        figures["vs_torch"] = float(np.median([t / o["whole_s"] for o, t in zip(ours, theirs)]))
    else:
        figures["torch"] = torch_error
    return figures


def setup_curve(sizes, rounds: int) -> list:
    """The set-up cost (whole − 4 × steady) of the tiny network at each data size."""
    rows = []
    for n in sizes:
        config = BenchConfig("tiny", TINY.layer_sizes, TINY.batch_size, n, TINY.optimizer, TINY.learning_rate)
        data = synthetic_data(config)
        _ffnn_whole(config, data)
        runs = [_ffnn_whole(config, data) for _ in range(rounds)]
        setup = float(np.median([r["whole_s"] - EPOCHS * r["steady_epoch_s"] for r in runs]))
        rows.append({"rows": n, "data_mb": data.x.nbytes / 2**20, "setup_s": setup,
                     "steady_epoch_s": float(np.median([r["steady_epoch_s"] for r in runs])),
                     "whole_over_steady": float(np.median([r["whole_s"] / (EPOCHS * r["steady_epoch_s"]) for r in runs]))})  # fmt: skip
    return rows


def cli_second_run() -> dict:
    """``ffnn-jax train -d digits -e 5`` twice with a fresh cache folder; ``import jax`` for scale."""
    env = {k: v for k, v in os.environ.items() if k != "FFNN_JAX_COMPILATION_CACHE"}
    with tempfile.TemporaryDirectory() as folder:
        cache = os.path.join(folder, "cache")

        def run(out: str) -> float:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "ffnn_jax", "train", "-d", "digits", "-e", "5", "--out",
                                   os.path.join(folder, out), "--compilation_cache", cache, "--no_progress"],
                                  env=env, capture_output=True, text=True)  # fmt: skip
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
            return time.perf_counter() - start

        first = run("first")
        entries = len(os.listdir(cache))
        second = run("second")
        added = len(os.listdir(cache)) - entries
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import jax"], env=env, check=True)
        import_jax = time.perf_counter() - start
    # ml_dtypes' import is most of jax's in some releases (0.55 s of 1.1 s for 0.7.0): shown on its own
    probe = "import time, numpy; t = time.perf_counter(); import ml_dtypes; print(time.perf_counter() - t, ml_dtypes.__version__)"
    seconds, version = subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True,
                                      text=True).stdout.split()  # fmt: skip
    return {"first_s": first, "second_s": second, "cache_entries_added_by_second": added, "import_jax_s": import_jax,
            "import_ml_dtypes_s": float(seconds), "ml_dtypes": version}  # fmt: skip


def _line(name: str, value: float, target: float, *, at_most: bool, unit: str = "") -> str:
    met = value <= target if at_most else value >= target
    return f"| {name} | {value:.3g}{unit} | {'≤' if at_most else '≥'} {target:g}{unit} | {'met' if met else 'NOT met'} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="6000,60000,600000", help="rows for the set-up cost curve")
    parser.add_argument("--out", default="bench_out/whole_call")
    parser.add_argument("--skip", default="", help="comma list of: fashion, curve, first_call, cli")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    import jax

    gemm = measure_gemm(2048, "float32", device="cpu")
    report = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "jax": jax.__version__,
              "gemm_gflops": gemm, "targets": TARGETS}  # fmt: skip
    report["tiny"] = whole_call(TINY, synthetic_data(TINY), args.rounds, gemm["best"])
    if "fashion" not in skip:
        data, source = _fashion_data()
        report["fashion"] = {**whole_call(FASHION, data, args.rounds, gemm["best"]), "data": source}
    if "curve" not in skip:
        report["setup_curve"] = setup_curve([int(s) for s in args.sizes.split(",")], args.rounds)
    if "first_call" not in skip:
        report["first_call"] = first_call_overhead("tiny", modes=("plain",))["plain"]
    if "cli" not in skip:
        report["cli"] = cli_second_run()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "whole_call.json").write_text(json.dumps(report, indent=2))

    lines = [f"GEMM ceiling (float32, 2048³): {gemm['best']:.0f} GFLOP/s (jax {gemm['jax']:.0f}, torch {gemm['torch'] or 0:.0f})",
             "", "| figure | measured | target | |", "| --- | --- | --- | --- |"]  # fmt: skip
    for name in ("tiny", "fashion"):
        if name not in report:
            continue
        r = report[name]
        lines.append(_line(f"{name}: whole call / (4 × steady epoch) ({r['whole_s']:.3f} s / 4 × {r['steady_epoch_s']:.3f} s)",
                           r["whole_over_steady"], TARGETS["whole_over_steady"], at_most=True))  # fmt: skip
        lines.append(_line(f"{name}: the same with the data already on the device (jax.Array input)",
                           r["device_input_whole_over_steady"], TARGETS["whole_over_steady"], at_most=True))  # fmt: skip
        if "vs_torch" in r:
            lines.append(_line(f"{name}: PyTorch eager whole call / ours ({r['torch_whole_s']:.3f} s)", r["vs_torch"],
                               TARGETS["vs_torch"], at_most=False, unit="×"))  # fmt: skip
        lines.append(_line(f"{name}: steady-epoch MFU", r["mfu"], TARGETS["mfu_tiny"], at_most=False)
                     if name == "tiny" else f"| {name}: steady-epoch MFU | {r['mfu']:.3g} | (no target) | |")  # fmt: skip
    if "first_call" in report and "overhead_s" in report["first_call"]:
        f = report["first_call"]
        lines.append(_line(f"first train() in a fresh process, extra over a compiled call (cold {f['cold_s']:.2f} s)",
                           f["overhead_s"], TARGETS["first_call_extra_s"], at_most=True, unit=" s"))  # fmt: skip
    if "cli" in report:
        c = report["cli"]
        lines.append(_line(f"second `ffnn-jax train -d digits -e 5` (first {c['first_s']:.2f} s; import jax alone "
                           f"{c['import_jax_s']:.2f} s, of it ml_dtypes {c['ml_dtypes']} {c['import_ml_dtypes_s']:.2f} s; "
                           f"cache entries added {c['cache_entries_added_by_second']})",
                           c["second_s"], TARGETS["cli_second_s"], at_most=True, unit=" s"))  # fmt: skip
    if "setup_curve" in report:
        lines += ["", "| rows | data MB | set-up s (whole − 4 × steady) | steady epoch s | whole / (4 × steady) |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        lines += [f"| {r['rows']} | {r['data_mb']:.0f} | {r['setup_s']:.3f} | {r['steady_epoch_s']:.3f} | "
                  f"{r['whole_over_steady']:.3f} |" for r in report["setup_curve"]]  # fmt: skip
    text = "\n".join(lines)
    (out / "whole_call.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
