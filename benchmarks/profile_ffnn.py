"""Profiles ffnn_jax's fused epoch: compute vs host time, the compiled HLO, and candidate fixes, against PyTorch eager.

Usage:

    python benchmarks/profile_ffnn.py --configs tiny,large --out bench_out/profile
    python benchmarks/profile_ffnn.py --configs large --flag-variants "--xla_cpu_multi_thread_eigen=false"

For each config it measures, interleaved A B A B (medians of ``--rounds``):

- ``train()`` per-epoch time (``history["time_s"]``) against the bare ``run_epoch`` dispatch
  (the core's private jitted epoch, called directly): the difference is host work per epoch;
- the prototype fused epoch (benchmarks/_proto.py) with the finite guard on/off and the weight
  gradient lowered by XLA or as plain GEMMs on a materialised ``hᵀ``;
- PyTorch eager's epoch (the reference).

It writes the lowered and compiled HLO of ``run_epoch`` and a census of the ops in the compiled
module (which dots go to YNNPACK fusions, which stay plain ``dot`` thunks). With
``--flag-variants`` each ``XLA_FLAGS`` setting runs in a child process (flags are read once per
process) and reports its figures relative to its own PyTorch eager.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path


if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _run_epoch_closure(config, data, init):
    """The core's jitted epoch on device-resident data; returns (call, lowered)."""
    import jax
    import jax.numpy as jnp

    import ffnn_jax
    from ffnn_jax._optim import OptimizerSpec
    from ffnn_jax._step import ModelSpec, run_epoch

    tx = ffnn_jax.make_optimizer(config.optimizer, learning_rate=config.learning_rate)
    params = tuple(ffnn_jax.LayerParams(W=jnp.array(w), b=jnp.array(b)) for w, b in init)
    state = [ffnn_jax.init_train_state(params, tx, jax.random.key(1))]
    x, y = jax.device_put(data.x), jax.device_put(data.y)
    weights = jnp.ones((len(data.x),), jnp.float32)
    static = dict(
        model=ModelSpec("relu", "cross_entropy", True),
        optimizer=OptimizerSpec(config.optimizer),
        batch_size=config.batch_size,
        shuffle=True,
    )

    def call():
        state[0], sums = run_epoch(state[0], x, y, weights, **static)
        jax.block_until_ready(sums)

    return call, run_epoch.lower(state[0], x, y, weights, **static)


def hlo_census(compiled_text: str) -> dict:
    """The GEMMs of a compiled module and the library that runs each, plus counts of transposes, copies and loops.

    A dot inside a computation called by a ``__ynn_fusion`` (or ``__onednn_fusion``/``__xnn_fusion``)
    runs in that library; any other dot is a plain ``dot`` thunk (XLA's own Eigen GEMM).
    """
    library = {}
    for line in compiled_text.splitlines():
        match = re.search(r"calls=%([\w.\-]+).*\"kind\":\"__(\w+?)_fusion\"", line)
        if match:
            library[match.group(1)] = match.group(2)
    dots, computation = [], None
    for line in compiled_text.splitlines():
        header = re.match(r"^(?:ENTRY )?%([\w.\-]+) ", line)
        if header:
            computation = header.group(1)
        match = re.search(r"= (\S+) dot\(.*?lhs_contracting_dims=\{(\d)\}, rhs_contracting_dims=\{(\d)\}", line)
        if match:
            shape, lhs, rhs = match.groups()
            dots.append(f"{shape} contract lhs {lhs} rhs {rhs}: {library.get(computation, 'plain dot (Eigen)')}")
    return {
        "step_ops": _scan_body_ops(compiled_text),
        "ops": {
            op: len(re.findall(rf" {op}\(", compiled_text))
            for op in ("dot", "transpose", "copy", "while", "fusion", "gather")
        },
        "library_fusions": {kind: list(library.values()).count(kind) for kind in sorted(set(library.values()))},
        "dots": dots,
    }


def _scan_body_ops(compiled_text: str):
    """Ops run per training step: the instructions of the while body that holds the GEMMs, less free ones."""
    blocks = {}
    for block in re.split(r"\n(?=\S)", compiled_text):
        header = re.match(r"(?:ENTRY )?%([\w.\-]+)", block)
        if header:
            blocks[header.group(1)] = block
    free = ("parameter", "constant", "get-tuple-element", "tuple", "bitcast")
    for body in re.findall(r" while\(.*?body=%([\w.\-]+)", compiled_text):
        ops = re.findall(r" = (?:\(.*?\)\S*|\S+) ([a-z\-]+)\(", blocks.get(body, ""))
        if "dot" in ops or any("ynn" in line for line in blocks.get(body, "").splitlines()):
            return sum(1 for op in ops if op not in free)
    return None  # the scan was unrolled (few batches)


def _train_epoch_seconds(config, data, init, epochs: int) -> list:
    import jax.numpy as jnp

    import ffnn_jax

    params = tuple(ffnn_jax.LayerParams(W=jnp.asarray(w), b=jnp.asarray(b)) for w, b in init)
    result = ffnn_jax.train(
        data.x,
        data.y,
        initial_params=params,
        hidden_sizes=config.hidden_sizes,
        optimizer=config.optimizer,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        epochs=epochs,
        seed=0,
    )
    return result.history["time_s"]


def _proto_closure(config, data, init, **knobs):
    """A prototype variant's epoch call and its compiled HLO."""
    from benchmarks._proto import FusedProtoRunner

    variant = type("Variant", (FusedProtoRunner,), knobs)(config, data, init, device="cpu", dtype="float32")
    variant.reset(seed=0)
    return variant.epoch, variant.compiled_text()


def profile_config(
    name: str, *, rounds: int, out: Path, scale: float = 1.0, wait_quiet_s: float = 0.0, log=print
) -> dict:
    """Times the variants of one config interleaved and dumps its HLO; returns the figures."""
    import numpy as np

    from benchmarks._configs import CONFIGS, initial_params, make_data, with_samples
    from benchmarks._peers_torch import TorchRunner
    from benchmarks._suite import wait_until_quiet

    config = CONFIGS[name].scaled(scale)
    data = make_data(config)
    config = with_samples(config, data)
    init = initial_params(config)
    core, lowered = _run_epoch_closure(config, data, init)
    compiled = lowered.compile()
    protos = {
        "proto guard=params": dict(guard="params", one_hot=False),
        "proto guard=grads": dict(guard="grads", one_hot=False),
        "proto guard=loss": dict(guard="loss", one_hot=False),
        "proto guard=off": dict(guard="off", one_hot=False),
        "proto guard=loss, one-hot": dict(guard="loss", one_hot=True),
        "proto guard=loss, one-hot, hT": dict(guard="loss", one_hot=True, grad_layout="transpose"),
    }
    protos = {key: _proto_closure(config, data, init, **knobs) for key, knobs in protos.items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"run_epoch_{name}.lowered.txt").write_text(lowered.as_text())
    (out / f"run_epoch_{name}.compiled.txt").write_text(compiled.as_text())
    torch_runner = TorchRunner(config, data, init, device="cpu", dtype="float32")
    torch_runner.reset(seed=0)
    variants = {
        "run_epoch (core)": core,
        **{key: call for key, (call, _) in protos.items()},
        "PyTorch eager": torch_runner.epoch,
    }
    seconds = {key: [] for key in variants}
    for call in variants.values():
        call()  # compile / warm up
    for _ in range(rounds):
        for key, call in variants.items():
            if wait_quiet_s > 0:
                wait_until_quiet(wait_quiet_s)
            start = time.perf_counter()
            call()
            seconds[key].append(time.perf_counter() - start)
    if wait_quiet_s > 0:
        wait_until_quiet(wait_quiet_s)
    train_epochs = _train_epoch_seconds(config, data, init, epochs=rounds + 1)[1:]
    median = {key: float(np.median(v)) for key, v in seconds.items()}
    median["train() epoch"] = float(np.median(train_epochs))
    flops = 6 * config.n_weights * config.n_samples
    result = {
        "config": name,
        "n_samples": config.n_samples,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load": list(os.getloadavg()),
        "seconds": median,
        "all_seconds": {**seconds, "train() epoch": train_epochs},
        "gflops": {key: flops / s / 1e9 for key, s in median.items()},
        "vs_torch": {key: median["PyTorch eager"] / s for key, s in median.items()},
        "host_s_per_epoch": median["train() epoch"] - median["run_epoch (core)"],
        "hlo": hlo_census(compiled.as_text()),
        "proto_step_ops": {key: _scan_body_ops(text) for key, (_, text) in protos.items()},
        "cost_analysis_flops": (compiled.cost_analysis() or {}).get("flops")
        if isinstance(compiled.cost_analysis(), dict)
        else None,
    }
    for key in median:
        log(
            f"  {name:6s} {key:26s} {median[key]:.3f} s  {result['gflops'][key]:6.1f} GFLOP/s  "
            f"{result['vs_torch'][key]:.2f}× torch"
        )
    log(f"  {name:6s} host work per train() epoch: {result['host_s_per_epoch'] * 1e3:.1f} ms")
    log(
        f"  {name:6s} run_epoch HLO: {result['hlo']['ops']}, {result['hlo']['step_ops']} ops per step, "
        f"{result['hlo']['library_fusions']}"
    )
    log(f"  {name:6s} proto ops per step: {result['proto_step_ops']}")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="tiny,large")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples-scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("bench_out/profile"))
    parser.add_argument(
        "--flag-variants", default="", help="';'-separated XLA_FLAGS settings, each run in a child process"
    )
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, help="before each round wait up to this many s for idle CPUs"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line (child mode)")
    args = parser.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if args.flag_variants:
        figures = []
        for flags in ["", *args.flag_variants.split(";")]:
            child = [
                sys.executable,
                __file__,
                "--configs",
                args.configs,
                "--rounds",
                str(args.rounds),
                "--samples-scale",
                str(args.samples_scale),
                "--wait-quiet",
                str(args.wait_quiet),
                "--out",
                str(args.out / (flags.strip("-").replace("=", "_") or "default")),
                "--json",
            ]
            env = {**os.environ, "XLA_FLAGS": flags}
            output = subprocess.run(child, env=env, check=True, capture_output=True, text=True).stdout
            figures += [json.loads(line) for line in output.splitlines() if line.startswith("{")]
            for figure in figures[-len(args.configs.split(",")) :]:
                print(
                    f"XLA_FLAGS={flags!r} {figure['config']}: "
                    + ", ".join(f"{k} {v:.2f}×" for k, v in figure["vs_torch"].items())
                )
        (args.out / "flag_variants.json").write_text(json.dumps(figures, indent=2))
        return
    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    results = [
        profile_config(
            name, rounds=args.rounds, out=args.out, scale=args.samples_scale, wait_quiet_s=args.wait_quiet, log=log
        )
        for name in args.configs.split(",")
    ]
    if args.json:
        for result in results:
            print(json.dumps(result))
    else:
        (args.out / "profile.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
