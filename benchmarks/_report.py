"""The suite's outputs: Markdown tables (with the targets met or missed), the JSON record and a PNG chart."""

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import List, Optional


# Targets on the CPU: (config, minimum × PyTorch eager, minimum fraction of the measured GEMM rate).
SPEED_TARGETS = (("tiny", 2.0, 0.55), ("medium", 1.0, 0.85), ("large", 0.95, 0.85))
# Targets on a GPU: (config, dtype it applies to, figure, minimum); "mfu" is a fraction of the GEMM rate.
GPU_TARGETS = (("tiny", "float32", "vs_torch", 5.0), ("large", "bfloat16", "mfu", 0.50))
DIGITS_TARGET = 5.0  # ffnn_jax (adam) at least this many times faster than scikit-learn to the test accuracy
COMPILE_TARGET_S = 2.0  # first train() call overhead for tiny
PACKAGES = ("ffnn_jax", "jax", "jaxlib", "optax", "flax", "torch", "scikit-learn", "numpy", "matplotlib")


def machine_info() -> dict:
    """CPU, cores, load, package versions and the environment knobs that change timings."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    import jax

    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "ffnn_jax"], cwd=root, capture_output=True, text=True
        ).stdout
        commit = commit.strip() + (" + uncommitted ffnn_jax changes" if dirty.strip() else "")
    except OSError:
        commit = None
    return {
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_device_kind": jax.devices()[0].device_kind,
        "versions": versions,
        "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "JAX_PLATFORMS", "OMP_NUM_THREADS")},
    }


def _fmt(value, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def _row_status(entry: dict) -> Optional[str]:
    if "skipped" in entry:
        return f"skipped: {entry['skipped']}"
    if "failed" in entry and "seconds" not in entry:
        return f"failed: {entry['failed']}"
    return None


def speed_table(results: List[dict]) -> str:
    """One row per (config, implementation) with a fixed number of epochs."""
    lines = [
        "| config | implementation | samples/s | × PyTorch eager | MFU | first call s | compile s | final loss "
        "| eval loss |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        if result["config"]["target_accuracy"] is not None:
            continue
        for entry in result["implementations"].values():
            status = _row_status(entry)
            head = f"| {result['config']['name']} | {entry['label']} |"
            if status:
                lines.append(f"{head} {status} | | | | | | |")
                continue
            lines.append(
                f"{head} {entry['samples_per_s']:,.0f} | {_fmt(entry.get('vs_torch'), '.2f', '×')} | "
                f"{100 * entry['mfu']:.1f}% | {entry['first_call_s']:.2f} | {entry['compile_s']:.2f} | "
                f"{entry['final_loss']:.4f} | {_fmt(entry.get('eval_loss'), '.4f')} |"
            )
    return "\n".join(lines)


def accuracy_table(results: List[dict]) -> str:
    """Time to the test-accuracy target (digits)."""
    lines = []
    for result in results:
        config = result["config"]
        if config["target_accuracy"] is None:
            continue
        lines += [
            f"Time to test accuracy ≥ {config['target_accuracy']} on {config['name']} ({config['optimizer']}, "
            f"lr {config['learning_rate']}, batch {config['batch_size']}, {config['n_samples']} training rows):",
            "",
            "| implementation | seconds | epochs | test accuracy | × scikit-learn | × PyTorch eager | first call s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for entry in result["implementations"].values():
            status = _row_status(entry)
            if status:
                lines.append(f"| {entry['label']} | {status} | | | | | |")
                continue
            lines.append(
                f"| {entry['label']} | {entry['seconds']:.3f} | {entry['epochs']:.0f} | {entry['test_accuracy']:.4f} | "
                f"{_fmt(entry.get('vs_sklearn'), '.2f', '×')} | {_fmt(entry.get('vs_torch'), '.2f', '×')} | "
                f"{entry['first_call_s']:.2f} |"
            )
    return "\n".join(lines)


def evaluate_targets(
    results: List[dict],
    first_call: Optional[dict] = None,
    subject: str = "ffnn_jax",
    *,
    device: str = "cpu",
    dtype: str = "float32",
) -> List[dict]:
    """Each target with the measured figure of ``subject`` and whether it is met (None: not measured).

    The CPU targets apply to ``device="cpu"``; on ``"gpu"`` the GPU targets for ``dtype`` apply.

    The first-call target uses the fresh-process probe (``first_call["plain"]``) when there is one,
    else the suite's warm-up figure (which starts from given initial parameters, so it leaves out
    ``init_params``'s compilation). For the prototype the ``given_init`` probe stands in (the
    proposed NumPy-side init).
    """
    probe = "plain" if subject == "ffnn_jax" else "given_init"
    by_name = {result["config"]["name"]: result["implementations"] for result in results}

    def figure(config, key):
        return by_name.get(config, {}).get(subject, {}).get(key)

    def check(text, value, minimum, spec, maximum=None):
        met = None if value is None else (value >= minimum if maximum is None else value < maximum)
        return {"target": text, "measured": _fmt(value, spec), "met": met}

    def versus_torch(config, minimum, prefix=""):
        return check(f"{prefix}{config}: ≥ {minimum}× PyTorch eager", figure(config, "vs_torch"), minimum, ".2f")

    def utilisation(config, fraction, prefix=""):
        value = figure(config, "mfu")
        text = f"{prefix}{config}: ≥ {fraction:.0%} of measured GEMM rate"
        return check(text, None if value is None else 100 * value, 100 * fraction, ".1f")

    if device == "gpu":
        rules = {"vs_torch": versus_torch, "mfu": utilisation}
        return [
            rules[key](config, minimum, prefix=f"GPU {dtype} ")
            for config, target_dtype, key, minimum in GPU_TARGETS
            if target_dtype == dtype
        ]
    targets = []
    for config, ratio, fraction in SPEED_TARGETS:
        targets += [versus_torch(config, ratio), utilisation(config, fraction)]
    speedup = figure("digits", "vs_sklearn")
    reached = figure("digits", "reached_target")
    targets.append(
        check(
            f"digits (adam): ≥ {DIGITS_TARGET}× faster than scikit-learn to the test accuracy",
            speedup if reached is not False else None,
            DIGITS_TARGET,
            ".2f",
        )
    )
    targets.append(
        check(
            f"tiny: first train() call overhead < {COMPILE_TARGET_S} s",
            (first_call or {}).get(probe, {}).get("overhead_s", figure("tiny", "compile_s")),
            0.0,
            ".2f",
            COMPILE_TARGET_S,
        )
    )
    return targets


def targets_table(targets: List[dict], proposed: Optional[List[dict]] = None) -> str:
    """Targets with ffnn_jax's figures, and beside them the prototype's (the proposed core changes) when given."""

    def status(met):
        return {True: "met", False: "missed", None: "not measured"}[met]

    header = "| target | measured | status |" + (" prototype | prototype status |" if proposed else "")
    lines = [header, "| --- | ---: | --- |" + (" ---: | --- |" if proposed else "")]
    for i, target in enumerate(targets):
        line = f"| {target['target']} | {target['measured']} | {status(target['met'])} |"
        if proposed:
            line += f" {proposed[i]['measured']} | {status(proposed[i]['met'])} |"
        lines.append(line)
    return "\n".join(lines)


def markdown(report: dict) -> str:
    """The whole report as Markdown: header, speed table, accuracy table, GEMM rates, targets, notes."""
    machine, gemm = report["machine"], report["gemm"]
    rates = ", ".join(
        f"{when}: jax {_fmt(r['jax'], '.0f')}, torch {_fmt(r['torch'], '.0f')}"
        for when, r in gemm["measurements"].items()
    )
    notes = {}
    for result in report["results"]:
        for entry in result["implementations"].values():
            notes.setdefault(entry["label"], entry["note"])
    parts = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, device {report['device']} "
        f"({machine.get('jax_device_kind')}), dtype {report['dtype']}; "
        f"{machine['date']}; commit {machine.get('commit')}; load average {report['load_start'][0]:.2f} at start, "
        f"{report['load_end'][0]:.2f} at end.",
        f"GEMM {gemm['n']}×{gemm['n']} {gemm['dtype']} GFLOP/s ({rates}); ceiling {gemm['ceiling']:.0f} GFLOP/s; "
        f"matmuls: {report.get('matmuls', 'not recorded')}.",
        f"Medians of {report['rounds']} interleaved rounds after a warm-up; eval loss: the final parameters scored "
        f"by one NumPy evaluator on the first {report['eval_rows']} training rows.",
        _first_call_line(report.get("first_call")),
        "",
        speed_table(report["results"]),
        "",
        accuracy_table(report["results"]),
        "",
        "Targets (ffnn_jax train(); prototype: benchmarks/_proto.py, see its note):",
        "",
        targets_table(report["targets"], report.get("proposed_targets")),
        "",
        "Implementations: " + "; ".join(f"{label}: {note}" for label, note in notes.items()),
    ]
    return "\n".join(parts)


def _first_call_line(first_call: Optional[dict]) -> str:
    if not first_call:
        return "First train() call: not probed."
    parts = [
        f"{mode}: cold {f['cold_s']:.2f} s, warm {f['warm_s']:.2f} s, overhead {f['overhead_s']:.2f} s"
        if "cold_s" in f
        else f"{mode}: failed"
        for mode, f in first_call.items()
    ]
    return "First train() call on tiny in fresh processes (" + "; ".join(parts) + ")."


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=float))


def write_chart(report: dict, path: Path) -> Optional[str]:
    """Bars of speed relative to PyTorch eager per config (digits: time to accuracy); None or why not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        return f"no chart: matplotlib is not installed ({error})"
    configs = [result["config"]["name"] for result in report["results"]]
    names = []
    for result in report["results"]:
        names += [name for name, entry in result["implementations"].items() if "seconds" in entry and name not in names]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(configs) * max(1, len(names)) / 3), 4))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [result["implementations"].get(name, {}).get("vs_torch", 0.0) for result in report["results"]]
        label = next(
            result["implementations"][name]["label"]
            for result in report["results"]
            if name in result["implementations"]
        )
        ax.bar([c + i * width for c in range(len(configs))], values, width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([c + width * (len(names) - 1) / 2 for c in range(len(configs))], configs)
    ax.set_ylabel("speed relative to PyTorch eager (higher is faster)")
    ax.set_title(f"{report['machine']['cpu']}, {report['device']}, {report['dtype']}, {report['machine']['date'][:10]}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
