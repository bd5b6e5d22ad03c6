"""The data-parallel path's overhead: train(devices=n) against train() on the tiny config.

    python benchmarks/bench_parallel.py [--rounds 5] [--epochs 2]

One process per forced CPU device count (1, 2, 4: XLA_FLAGS=--xla_force_host_platform_device_count);
in each, A B rounds of ``train()`` (no mesh) and ``train(devices=n)`` after a warm-up of both.
The forced devices share this machine's cores, so this measures the cost of the sharded program,
not a speed-up. Then two processes over loopback (``jax.distributed``, gloo all-reduce over TCP),
one CPU device each, time the same call (process 0's figure), against one process of the same
two-process environment size, run right after.
"""

import argparse
import json
import os
import subprocess
import sys


_ONE_COUNT = """
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
import ffnn_jax
from benchmarks._configs import CONFIGS, synthetic_data
config = CONFIGS["tiny"]
data = synthetic_data(config)
settings = dict(hidden_sizes=config.hidden_sizes, optimizer=config.optimizer, learning_rate=config.learning_rate,
                batch_size=config.batch_size, epochs={epochs})
def timed(**extra):
    start = time.perf_counter()
    ffnn_jax.train(data.x, data.y, **settings, **extra)
    return time.perf_counter() - start
timed(), timed(devices={count})
plain, sharded = [], []
for _ in range({rounds}):
    plain.append(timed())
    sharded.append(timed(devices={count}))
print(json.dumps(dict(count={count}, plain=float(np.median(plain)), sharded=float(np.median(sharded)),
                      pairs=float(np.median(np.array(sharded) / np.array(plain))))))
"""


_TWO_PROCESSES = """
import json, sys, time
import numpy as np
sys.path.insert(0, {root!r})
import ffnn_jax
from benchmarks._configs import CONFIGS, synthetic_data
rank, port = int(sys.argv[1]), sys.argv[2]
config = CONFIGS["tiny"]
data = synthetic_data(config)
settings = dict(hidden_sizes=config.hidden_sizes, optimizer=config.optimizer, learning_rate=config.learning_rate,
                batch_size=config.batch_size, epochs={epochs}, coordinator_address="127.0.0.1:" + port,
                num_processes=2, process_id=rank)
times = []
for _ in range({rounds} + 1):
    start = time.perf_counter()
    ffnn_jax.train(data.x, data.y, **settings)
    times.append(time.perf_counter() - start)
if rank == 0:
    print(json.dumps(dict(processes=2, call=float(np.median(times[1:])))))
"""


def _two_processes(root: str, epochs: int, rounds: int) -> dict:
    from ffnn_jax._launch import free_port

    port = str(free_port())
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    code = _TWO_PROCESSES.format(root=root, epochs=epochs, rounds=rounds)
    ranks = [subprocess.Popen([sys.executable, "-c", code, str(rank), port], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for rank in (0, 1)]  # fmt: skip
    outputs = [rank.communicate()[0] for rank in ranks]
    return json.loads(outputs[0].strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    rows = []
    for count in (1, 2, 4):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}", "JAX_PLATFORMS": "cpu"}
        code = _ONE_COUNT.format(root=root, epochs=args.epochs, count=count, rounds=args.rounds)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    two = _two_processes(root, args.epochs, args.rounds)
    print(f"tiny 784-128-10, batch 64, {args.epochs} epochs; medians of {args.rounds} A B rounds after a warm-up")
    print("| forced devices | train() (s) | train(devices=n) (s) | overhead (medians) | overhead (median of pairs) |")
    print("|---|---|---|---|---|")
    for row in rows:
        overhead = 100 * (row["sharded"] / row["plain"] - 1)
        print(
            f"| {row['count']} | {row['plain']:.3f} | {row['sharded']:.3f} | {overhead:+.1f}% | {100 * (row['pairs'] - 1):+.1f}% |"
        )
    one = rows[0]["plain"]
    print(f"\ntwo processes over loopback (one CPU device each, gloo): {two['call']:.3f} s a call against "
          f"{one:.3f} s in one process ({100 * (two['call'] / one - 1):+.1f}%; the two share the 2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
