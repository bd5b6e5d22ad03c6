"""Benchmarks ffnn_jax's train() against PyTorch (eager, torch.compile), Flax + optax and scikit-learn.

Usage (the full CPU suite, ~10 minutes on 2 cores):

    python benchmarks/bench_peers.py --configs tiny,medium,large,digits --out bench_out/

Writes ``bench_out/bench.json`` (machine, versions, date, load, every run), ``bench_out/bench.md``
and ``bench_out/bench.png`` and prints the Markdown tables last. ``--device gpu`` runs every
framework on the CUDA device; ``--dtype bfloat16`` computes in bf16 with float32 master weights.
A missing peer is skipped with a note. See BENCHMARKS.md for the measured figures.
"""

import argparse
import os
import sys
from pathlib import Path


if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _report  # noqa: E402
from benchmarks._configs import CONFIGS  # noqa: E402
from benchmarks._first_call import first_call_overhead  # noqa: E402
from benchmarks._gemm import measure_gemm  # noqa: E402
from benchmarks._peers_jax import FfnnJaxRunner, FlaxRunner  # noqa: E402
from benchmarks._peers_sklearn import SklearnRunner  # noqa: E402
from benchmarks._peers_torch import TorchCompileRunner, TorchRunner  # noqa: E402
from benchmarks._proto import FusedProtoRunner  # noqa: E402
from benchmarks._suite import bench_config, summarise  # noqa: E402


RUNNERS = {
    cls.name: cls
    for cls in (FfnnJaxRunner, FusedProtoRunner, TorchRunner, TorchCompileRunner, FlaxRunner, SklearnRunner)
}


def _names(text: str, known, what: str) -> list:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; choose from {list(known)}")
    return names


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="tiny,medium,large,digits", help=f"comma-separated, from {list(CONFIGS)}")
    parser.add_argument("--impls", default=",".join(RUNNERS), help=f"comma-separated, from {list(RUNNERS)}")
    parser.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for bench.json/.md/.png")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="compute dtype")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per implementation (median reported)")
    parser.add_argument("--samples-scale", type=float, default=1.0, help="multiply the samples (smoke runs)")
    parser.add_argument("--gemm-size", type=int, default=None, help="n of the n×n GEMM (default 2048 CPU, 8192 GPU)")
    parser.add_argument("--eval-rows", type=int, default=4096, help="rows scored by the common NumPy evaluator")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="before each timed run wait up to this many s for idle CPUs (shared hosts)",
    )
    parser.add_argument(
        "--no-first-call", action="store_true", help="skip the fresh-process probe of train()'s first-call overhead"
    )
    parser.add_argument("--xla-flags", default="", help="appended to XLA_FLAGS before JAX starts")
    return parser.parse_args(argv)


def _configure_jax(args: argparse.Namespace) -> None:
    """Platform and XLA flags must be set before JAX initialises its backend."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu" if args.device == "cpu" else "cuda")
    if args.xla_flags:
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {args.xla_flags}".strip()


def _match_float32_matmuls(args: argparse.Namespace) -> str:
    """On a GPU JAX computes float32 dots in TF32 by default and PyTorch in full float32: give torch TF32 too."""
    if args.device != "gpu" or args.dtype != "float32":
        return "full float32" if args.dtype == "float32" else f"{args.dtype} operands, float32 accumulation"
    try:
        import torch
    except ImportError:
        return "TF32 (JAX's GPU default)"
    torch.set_float32_matmul_precision("high")
    return "TF32 in every framework (JAX's GPU default; torch.set_float32_matmul_precision('high'))"


def run(args: argparse.Namespace, log=print) -> dict:
    """Runs the suite and writes its outputs; returns the report."""
    configs = [CONFIGS[name].scaled(args.samples_scale) for name in _names(args.configs, CONFIGS, "configs")]
    runners = [RUNNERS[name] for name in _names(args.impls, RUNNERS, "implementations")]
    _configure_jax(args)
    matmuls = _match_float32_matmuls(args)
    gemm_size = args.gemm_size or (8192 if args.device == "gpu" else 2048)
    load_start = list(os.getloadavg())
    log(f"load average {load_start}")
    gemm = {"n": gemm_size, "dtype": args.dtype, "measurements": {}}
    gemm["measurements"]["start"] = measure_gemm(gemm_size, args.dtype, device=args.device)
    log(f"GEMM at start (GFLOP/s): {gemm['measurements']['start']}")
    results = [
        bench_config(
            c,
            runners,
            rounds=args.rounds,
            device=args.device,
            dtype=args.dtype,
            eval_rows=args.eval_rows,
            wait_quiet_s=args.wait_quiet,
            log=log,
        )
        for c in configs
    ]
    gemm["measurements"]["end"] = measure_gemm(gemm_size, args.dtype, device=args.device)
    gemm["ceiling"] = max(m["best"] for m in gemm["measurements"].values())
    results = [summarise(result, gemm["ceiling"]) for result in results]
    first_call = None
    if (
        not args.no_first_call
        and "tiny" in args.configs.split(",")
        and FfnnJaxRunner in runners
        and args.dtype == "float32"
    ):
        first_call = first_call_overhead("tiny", scale=args.samples_scale)
        log(f"first train() call on tiny in fresh processes: {first_call}")
    report = {
        "machine": _report.machine_info(),
        "device": args.device,
        "dtype": args.dtype,
        "matmuls": matmuls,
        "rounds": args.rounds,
        "samples_scale": args.samples_scale,
        "eval_rows": args.eval_rows,
        "load_start": load_start,
        "load_end": list(os.getloadavg()),
        "gemm": gemm,
        "results": results,
        "first_call": first_call,
    }
    scope = dict(device=args.device, dtype=args.dtype)
    report["targets"] = _report.evaluate_targets(results, first_call, **scope)
    if FusedProtoRunner in runners:
        report["proposed_targets"] = _report.evaluate_targets(
            results, first_call, subject=FusedProtoRunner.name, **scope
        )
    args.out.mkdir(parents=True, exist_ok=True)
    _report.write_json(report, args.out / "bench.json")
    report["chart"] = _report.write_chart(report, args.out / "bench.png") or str(args.out / "bench.png")
    text = _report.markdown(report)
    (args.out / "bench.md").write_text(text + "\n")
    log(text)
    return report


def main(argv=None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()
