"""The first ``train()`` call's overhead, measured in fresh processes (nothing compiled or cached yet).

Run as a child: ``python -m benchmarks._first_call CONFIG MODE [SCALE]`` prints one JSON line with the
cold call's and a second (warm) call's wall times; their difference is the first-call overhead
(compilation and first-use costs). MODE ``plain`` calls ``train()`` as a user does;
``given_init`` passes NumPy ``initial_params``, which leaves out the compilation of
``init_params``'s random draws, to show their share.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


MODES = ("plain", "given_init")


def _child(config_name: str, mode: str, scale: float = 1.0) -> dict:
    import jax.numpy as jnp

    import ffnn_jax
    from benchmarks._configs import CONFIGS, make_data

    config = CONFIGS[config_name].scaled(scale)
    data = make_data(config)
    jnp.zeros(()).block_until_ready()  # backend start-up is not the trainer's overhead
    settings = dict(
        hidden_sizes=config.hidden_sizes,
        optimizer=config.optimizer,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        epochs=1,
        seed=0,
    )
    if mode == "given_init":
        rng = np.random.default_rng(0)
        settings["initial_params"] = tuple(
            ffnn_jax.LayerParams(W=rng.uniform(-0.05, 0.05, (a, b)).astype(np.float32), b=np.zeros(b, np.float32))
            for a, b in zip(config.layer_sizes[:-1], config.layer_sizes[1:])
        )
    times = []
    for _ in range(2):
        start = time.perf_counter()
        ffnn_jax.train(data.x, data.y, **settings)
        times.append(time.perf_counter() - start)
    return {"mode": mode, "cold_s": times[0], "warm_s": times[1], "overhead_s": times[0] - times[1]}


def first_call_overhead(config_name: str, modes=MODES, scale: float = 1.0) -> dict:
    """Runs one fresh child process per mode; returns ``{mode: {"cold_s", "warm_s", "overhead_s"}}`` or errors."""
    root = Path(__file__).resolve().parents[1]
    figures = {}
    for mode in modes:
        command = [sys.executable, "-m", "benchmarks._first_call", config_name, mode, str(scale)]
        done = subprocess.run(command, cwd=root, env=dict(os.environ), capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        figures[mode] = json.loads(lines[-1]) if done.returncode == 0 and lines else {"failed": done.stderr[-300:]}
    return figures


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 1.0)))
