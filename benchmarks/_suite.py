"""Runs one config across implementations: warm-up each, then timed rounds interleaved A B C A B C.

Every implementation is built from the same data and initial parameters, warmed up once (a cold
epoch, whose time is the first-call figure), then trained ``rounds`` times in turn, so machine
drift hits all of them alike. A fixed-epoch run is timed from its second epoch on (steady-state
throughput; the first epoch's time is kept as ``first_epoch_s``); a run to an accuracy target is
timed whole. Figures are medians over rounds. The final parameters of each are
scored by one NumPy evaluator on the same rows (``eval_loss``): the check that they trained the
same thing.
"""

import dataclasses
import os
import time
from typing import Callable, Dict, Sequence

import numpy as np

from benchmarks._configs import BenchConfig, cross_entropy, initial_params, make_data, with_samples
from benchmarks._gemm import mfu
from benchmarks._runner import Runner, Skipped


def _cpu_idle_fraction(seconds: float) -> float:
    """Fraction of all CPUs idle over the next ``seconds`` (Linux /proc/stat; 1.0 where unreadable)."""

    def sample():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        return sum(fields), fields[3] + fields[4]

    try:
        total_0, idle_0 = sample()
        time.sleep(seconds)
        total_1, idle_1 = sample()
    except OSError:
        return 1.0
    return (idle_1 - idle_0) / max(1, total_1 - total_0)


def wait_until_quiet(max_wait_s: float, *, idle: float = 0.9, windows: int = 2, window_s: float = 1.0) -> float:
    """Waits (at most ``max_wait_s``) until the CPUs were ``idle`` for ``windows`` windows in a row; returns the wait.

    On a shared machine a run timed while others compute is mostly noise; with ``wait_quiet_s``
    the suite calls this before every timed run, and records the wait and the load average.
    """
    start, quiet = time.perf_counter(), 0
    while quiet < windows and time.perf_counter() - start < max_wait_s:
        quiet = quiet + 1 if _cpu_idle_fraction(window_s) >= idle else 0
    return time.perf_counter() - start


def _error(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"[:300]


def _start(runner_cls, config, data, init, *, device, dtype, log) -> tuple:
    """Builds and warms up one implementation; returns (runner or None, its result entry)."""
    entry = {"label": runner_cls.label, "note": runner_cls.note}
    try:
        runner = runner_cls(config, data, init, device=device, dtype=dtype)
        entry["first_call_s"] = runner.warm_up()
    except Skipped as error:
        log(f"  {runner_cls.name}: skipped ({error})")
        return None, {**entry, "skipped": str(error)}
    except Exception as error:  # noqa: BLE001 - a peer failing (e.g. torch.compile) is reported, not fatal
        log(f"  {runner_cls.name}: failed in warm-up ({_error(error)})")
        return None, {**entry, "failed": _error(error)}
    log(f"  {runner_cls.name}: first call {entry['first_call_s']:.2f} s")
    return runner, {**entry, "runs": []}


def _timed_run(runner: Runner, config: BenchConfig, seed: int) -> tuple:
    """One run; a fixed-epoch run is timed from its second epoch on (steady state), a run to a target whole."""
    start = time.perf_counter()
    if config.target_accuracy is None:
        trained = runner.train(config.epochs, seed=seed)
        timed = trained.epoch_seconds[1:] or trained.epoch_seconds
    else:
        trained = runner.train_to_accuracy(seed=seed)
        timed = trained.epoch_seconds
    run = {
        "seconds": float(sum(timed)),
        "timed_epochs": len(timed),
        "epoch_seconds": [float(s) for s in trained.epoch_seconds],
        "call_s": time.perf_counter() - start,
        "epochs": trained.epochs,
        "final_loss": trained.epoch_losses[-1],
        "test_accuracy": trained.test_accuracy,
    }
    return run, trained.layers


def bench_config(
    config: BenchConfig,
    runner_classes: Sequence[type],
    *,
    rounds: int,
    device: str,
    dtype: str,
    eval_rows: int = 4096,
    wait_quiet_s: float = 0.0,
    log: Callable[[str], None] = print,
) -> dict:
    """Benchmarks ``config`` on every runner class; returns its JSON-ready result (figures unsummarised)."""
    data = make_data(config)
    config = with_samples(config, data)
    init = initial_params(config)
    log(
        f"[{config.name}] {config.layer_sizes} batch {config.batch_size}, "
        f"{config.n_samples} samples, {config.optimizer}"
    )
    result = {"config": dataclasses.asdict(config), "load_before": list(os.getloadavg()), "implementations": {}}
    runners = {}
    for runner_cls in runner_classes:
        runner, entry = _start(runner_cls, config, data, init, device=device, dtype=dtype, log=log)
        result["implementations"][runner_cls.name] = entry
        if runner is not None:
            runners[runner_cls.name] = runner
    final_layers = {}
    rounds = max(rounds, config.min_rounds)
    for round_index in range(rounds):
        for name, runner in list(runners.items()):
            entry = result["implementations"][name]
            waited = wait_until_quiet(wait_quiet_s) if wait_quiet_s > 0 else 0.0
            try:
                run, final_layers[name] = _timed_run(runner, config, seed=round_index)
            except Exception as error:  # noqa: BLE001
                log(f"  {name}: failed in round {round_index + 1} ({_error(error)})")
                entry["failed"] = _error(error)
                del runners[name]
                continue
            entry["runs"].append({**run, "waited_s": waited, "load": os.getloadavg()[0]})
            log(
                f"  round {round_index + 1} {name}: {run['seconds']:.3f} s, {run['epochs']} epochs, "
                f"loss {run['final_loss']:.4f}"
            )
    rows = slice(0, min(eval_rows, len(data.x)))
    for name, layers in final_layers.items():
        loss, accuracy = cross_entropy(layers, data.x[rows], data.y[rows])
        result["implementations"][name].update(eval_loss=loss, eval_accuracy=accuracy)
    result["eval_rows"] = rows.stop
    result["load_after"] = list(os.getloadavg())
    return result


def summarise(result: dict, ceiling_gflops: float) -> dict:
    """Adds medians, samples/s, compile time, MFU and the ratios to PyTorch eager and scikit-learn."""
    config = BenchConfig(**{**result["config"], "layer_sizes": tuple(result["config"]["layer_sizes"])})
    entries: Dict[str, dict] = result["implementations"]
    for entry in entries.values():
        runs = entry.get("runs")
        if not runs:
            continue
        seconds = float(np.median([run["seconds"] for run in runs]))
        timed_epochs = float(np.median([run["timed_epochs"] for run in runs]))
        entry["seconds"] = seconds
        entry["epochs"] = float(np.median([run["epochs"] for run in runs]))
        entry["samples_per_s"] = config.n_samples * timed_epochs / seconds
        entry["first_epoch_s"] = float(np.median([run["epoch_seconds"][0] for run in runs]))
        entry["compile_s"] = entry["first_call_s"] - seconds / timed_epochs
        entry["final_loss"] = runs[-1]["final_loss"]
        entry["mfu"] = mfu(config.n_weights, entry["samples_per_s"], ceiling_gflops)
        if config.target_accuracy is not None:
            entry["test_accuracy"] = float(np.median([run["test_accuracy"] for run in runs]))
            entry["reached_target"] = all(run["test_accuracy"] >= config.target_accuracy for run in runs)
    for reference, key in (("torch", "vs_torch"), ("sklearn", "vs_sklearn")):
        base = entries.get(reference, {}).get("seconds")
        for entry in entries.values():
            if base and "seconds" in entry:
                # Speed ratio: >1 means faster than the reference (same work, or same accuracy target).
                entry[key] = base / entry["seconds"]
    return result
