"""Fast CPU checks of the benchmark suite's code paths (benchmarks/): every peer, bf16, skips, failures, reports."""

import dataclasses
import gzip
import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _report, bench_peers  # noqa: E402
from benchmarks._configs import CONFIGS  # noqa: E402
from benchmarks._runner import Runner, Skipped  # noqa: E402
from benchmarks._suite import bench_config, summarise  # noqa: E402


SMOKE = ["--configs", "tiny", "--samples-scale", "0.01", "--rounds", "2", "--gemm-size", "64", "--eval-rows", "256"]
PEERS = "ffnn_jax,proto,torch,flax,sklearn"


def _installed(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


MISSING = {name for name in ("torch", "flax") if not _installed(name)}  # optional peers: skipped, not failed


def _ran(entries):
    """The entries that produced figures; a missing optional peer must be a skip with a note."""
    for name in MISSING:
        assert "not installed" in entries[name]["skipped"]
    return {name: entry for name, entry in entries.items() if name not in MISSING}


def _quiet(message):
    del message


@pytest.fixture(scope="module")
def float32_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return bench_peers.run(bench_peers.parse_args(SMOKE + ["--impls", PEERS, "--out", str(out)]), log=_quiet), out


def test_every_peer_trains_the_same_network_to_the_same_loss(float32_report):
    report, _ = float32_report
    entries = report["results"][0]["implementations"]
    assert set(entries) == set(PEERS.split(","))
    entries = _ran(entries)
    losses = {name: entry["eval_loss"] for name, entry in entries.items()}
    assert all(np.isfinite(list(losses.values())))
    assert max(losses.values()) - min(losses.values()) < 0.15, losses
    for entry in entries.values():
        assert len(entry["runs"]) == 2 and entry["samples_per_s"] > 0 and entry["mfu"] > 0
    if "torch" not in MISSING:
        assert entries["torch"]["vs_torch"] == pytest.approx(1.0)


def test_the_suite_writes_json_markdown_and_a_chart(float32_report):
    report, out = float32_report
    record = json.loads((out / "bench.json").read_text())
    assert record["machine"]["versions"]["jax"] and record["gemm"]["ceiling"] > 0
    assert (out / "bench.png").stat().st_size > 0
    text = (out / "bench.md").read_text()
    assert "| tiny | ffnn_jax train() |" in text and "× PyTorch eager" in text
    statuses = {t["target"]: t["met"] for t in report["targets"]}
    assert statuses["medium: ≥ 1.0× PyTorch eager"] is None  # not run, so not measured
    assert report["first_call"]["plain"]["overhead_s"] > 0 and report["first_call"]["given_init"]["cold_s"] > 0
    assert statuses["tiny: first train() call overhead < 2.0 s"] is not None
    assert [t["target"] for t in report["proposed_targets"]] == list(statuses)


def test_bfloat16_runs_mixed_precision_everywhere_but_scikit_learn(tmp_path):
    args = bench_peers.parse_args(
        SMOKE + ["--dtype", "bfloat16", "--impls", PEERS, "--out", str(tmp_path), "--rounds", "1"]
    )
    entries = _ran(bench_peers.run(args, log=_quiet)["results"][0]["implementations"])
    assert "bf16" in entries.pop("sklearn")["skipped"]
    losses = {name: entry["eval_loss"] for name, entry in entries.items()}
    assert all(np.isfinite(list(losses.values()))) and max(losses.values()) - min(losses.values()) < 0.2, losses


class _Broken(Runner):
    name, label = "broken", "broken peer"

    def train(self, epochs, seed):
        raise RuntimeError("inductor exploded")


class _Missing(Runner):
    name, label = "missing", "missing peer"

    def setup(self):
        raise Skipped("not installed")


def test_a_failing_or_missing_peer_is_reported_not_fatal():
    config = dataclasses.replace(CONFIGS["tiny"], layer_sizes=(784, 8, 10), n_samples=128)
    result = bench_config(
        config, [_Broken, _Missing, bench_peers.RUNNERS["proto"]], rounds=1, device="cpu", dtype="float32", log=_quiet
    )
    entries = summarise(result, ceiling_gflops=100.0)["implementations"]
    assert entries["broken"]["failed"] == "RuntimeError: inductor exploded"
    assert entries["missing"]["skipped"] == "not installed"
    assert entries["proto"]["samples_per_s"] > 0
    table = _report.speed_table([result])
    assert "failed: RuntimeError" in table and "skipped: not installed" in table


def test_time_to_accuracy_stops_at_the_target():
    config = dataclasses.replace(
        CONFIGS["digits"],
        layer_sizes=(64, 16, 10),
        learning_rate=1e-2,
        target_accuracy=0.8,
        max_epochs=30,
        min_rounds=1,
    )
    runners = [bench_peers.RUNNERS[name] for name in ("ffnn_jax", "sklearn")]
    result = summarise(
        bench_config(config, runners, rounds=1, device="cpu", dtype="float32", log=_quiet), ceiling_gflops=100.0
    )
    for entry in result["implementations"].values():
        assert entry["reached_target"] and entry["epochs"] < 30
    assert result["implementations"]["sklearn"]["vs_sklearn"] == pytest.approx(1.0)
    assert "Time to test accuracy ≥ 0.8" in _report.accuracy_table([result])


def test_targets_compare_the_measured_figures():
    implementations = {"ffnn_jax": {"vs_torch": 2.5, "mfu": 0.5, "compile_s": 3.0}}
    targets = _report.evaluate_targets([{"config": {"name": "tiny"}, "implementations": implementations}])
    met = {t["target"]: t["met"] for t in targets}
    assert met["tiny: ≥ 2.0× PyTorch eager"] is True
    assert met["tiny: ≥ 55% of measured GEMM rate"] is False
    assert met["tiny: first train() call overhead < 2.0 s"] is False
    assert met["large: ≥ 0.95× PyTorch eager"] is None


def test_gpu_targets_are_the_gpu_ones_for_the_run_dtype():
    results = [
        {"config": {"name": "tiny"}, "implementations": {"ffnn_jax": {"vs_torch": 6.0, "mfu": 0.01}}},
        {"config": {"name": "large"}, "implementations": {"ffnn_jax": {"vs_torch": 1.0, "mfu": 0.4}}},
    ]
    float32 = {t["target"]: t["met"] for t in _report.evaluate_targets(results, device="gpu", dtype="float32")}
    bfloat16 = {t["target"]: t["met"] for t in _report.evaluate_targets(results, device="gpu", dtype="bfloat16")}
    assert float32 == {"GPU float32 tiny: ≥ 5.0× PyTorch eager": True}
    assert bfloat16 == {"GPU bfloat16 large: ≥ 50% of measured GEMM rate": False}


def test_the_step_profile_sums_device_kernels_only(tmp_path):
    from benchmarks.gpu_step_profile import device_kernel_times

    events = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
        {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/device:GPU:0"}},
        {"ph": "X", "pid": 1, "name": "gemm", "dur": 100.0},  # a host event of the same name: not counted
        {"ph": "X", "pid": 2, "name": "gemm", "dur": 30.0},
        {"ph": "X", "pid": 2, "name": "gemm", "dur": 10.0},
        {"ph": "X", "pid": 2, "name": "update", "dur": 5.0},
    ]
    folder = tmp_path / "plugins" / "profile" / "run"
    folder.mkdir(parents=True)
    with gzip.open(folder / "perfetto_trace.json.gz", "wt") as f:
        json.dump({"traceEvents": events}, f)
    assert device_kernel_times(str(tmp_path)) == {"gemm": (40.0, 2), "update": (5.0, 1)}
    assert device_kernel_times(str(tmp_path / "empty")) == {}


def test_the_tiny_step_profile_names_the_ops_that_run_each_step():
    from benchmarks.profile_tiny_step import per_op_profile

    ops, dots = per_op_profile(epochs=1)
    assert len(ops) > 10 and all(us > 0 for us, _, _ in ops)
    assert any(what.startswith(("dot f32[784,128]", "fusion f32[64,128]")) for _, _, what in ops[:5])  # W₁'s GEMMs
    assert len(dots) >= 4  # two GEMMs each way per layer pair, and who runs them


def test_the_blas_gemm_step_matches_xlas_and_prints_its_table(capsys):
    import re
    import shutil

    from benchmarks import bench_blas_gemm

    if not (shutil.which("cc") or shutil.which("gcc")) or bench_blas_gemm._openblas()[0] is None:
        pytest.skip("needs a C compiler and NumPy's bundled OpenBLAS")
    assert bench_blas_gemm.main(["--steps", "3", "--rounds", "1"]) == 0
    printed = capsys.readouterr().out
    differences = [float(d) for d in re.findall(r"difference from XLA's after 3 steps (\S+)", printed)]
    assert len(differences) == 3 and max(differences) < 1e-6
    thread_counts = len({1, len(os.sched_getaffinity(0))})
    assert printed.count("| OpenBLAS") == 2 * thread_counts and "| XLA dots |" in printed
