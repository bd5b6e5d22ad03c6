"""The course's anchor: Fashion-MNIST, 784-256-128-10 relu, adam 1e-3, batch 128, 20 epochs, two seeds.

    python benchmarks/bench_fashion_anchor.py [--epochs 20] [--seeds 0,1] [--out bench_out/fashion_anchor.json]

Data as ``ffnn-jax train -d fashion_mnist`` takes it: the official training split (a stratified 10%
held out for validation, as the assignment does) and the official test set, pixels in [0, 1] and no
other preprocessing. For each seed, ffnn_jax's whole ``train()`` call and PyTorch eager's whole run
(model, tensors, 20 epochs of randperm batches; Xavier-uniform init like ffnn_jax's) are timed in
turn (A B per seed), and both test accuracies are reported. The first ffnn_jax call includes its
compilation; the figure without it is the call's epochs. Target: mean test accuracy ≥ 0.88.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._configs import BenchConfig, Data, initial_params  # noqa: E402


SIZES = (784, 256, 128, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default="bench_out/fashion_anchor.json")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    import ffnn_jax
    from ffnn_jax._data import split_indices

    x, y = (np.asarray(a) for a in ffnn_jax.load_dataset("fashion_mnist", "train"))
    x_test, y_test = (np.asarray(a) for a in ffnn_jax.load_dataset("fashion_mnist", "test"))
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        start = time.perf_counter()
        result = ffnn_jax.train(x, y, hidden_sizes=SIZES[1:-1], activation="relu", optimizer="adam", learning_rate=1e-3,
                                batch_size=128, epochs=args.epochs, seed=seed, validation_fraction=0.1,
                                standardize=False)  # fmt: skip
        ours = time.perf_counter() - start
        row = {"seed": seed, "ffnn_jax_whole_s": ours, "ffnn_jax_epochs_s": float(sum(result.history["time_s"])),
               "ffnn_jax_test_accuracy": float(result.evaluate(x_test, y_test)["accuracy"]),
               "ffnn_jax_val_accuracy": float(result.history["val_accuracy"][-1])}  # fmt: skip
        if not args.no_torch:
            from benchmarks._peers_torch import TorchRunner

            keep, _ = split_indices(len(x), 0.1, seed=seed, stratify=y)  # the same 90% as train()'s
            config = BenchConfig("fashion", SIZES, 128, len(keep), "adam", 1e-3)
            start = time.perf_counter()
            runner = TorchRunner(config, Data(x[keep], y[keep].astype(np.int32)), initial_params(config, seed),
                                 device="cpu", dtype="float32")  # fmt: skip
            runner.reset(seed)
            for _ in range(args.epochs):
                runner.epoch()
            row["torch_whole_s"] = time.perf_counter() - start
            row["torch_test_accuracy"] = runner.accuracy(x_test, y_test)
            row["torch_over_ffnn_jax"] = row["torch_whole_s"] / ours
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = float(np.mean([r["ffnn_jax_test_accuracy"] for r in rows]))
    report = {"config": "784-256-128-10 relu, adam 1e-3, batch 128, 10% validation, no standardization",
              "epochs": args.epochs, "rows": rows, "ffnn_jax_mean_test_accuracy": mean, "target": 0.88}  # fmt: skip
    if not args.no_torch:
        report["torch_mean_test_accuracy"] = float(np.mean([r["torch_test_accuracy"] for r in rows]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"ffnn_jax mean test accuracy over seeds {args.seeds}: {mean:.4f} (target >= 0.88: "
          f"{'met' if mean >= 0.88 else 'NOT met'})")  # fmt: skip
    if not args.no_torch:
        print(f"PyTorch eager mean test accuracy {report['torch_mean_test_accuracy']:.4f}; whole run, PyTorch over "
              f"ffnn_jax: " + ", ".join(f"{r['torch_over_ffnn_jax']:.2f}x" for r in rows))  # fmt: skip


if __name__ == "__main__":
    main()
