"""Quality-gated digits run: trains with the public API, checks an accuracy band, reports time.

Usage: python scripts/train_digits.py [--epochs 60] [--min-accuracy 0.97]
"""

import argparse
import time

import ffnn_jax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=0.97)
    args = parser.parse_args()

    x, y = ffnn_jax.load_digits()
    (x_train, y_train), (x_test, y_test) = ffnn_jax.train_test_split(x, y, 0.2, seed=args.seed)
    settings = dict(
        hidden_sizes=(256,), optimizer="adam", learning_rate=1e-3, weight_decay=1e-4,
        epochs=args.epochs, batch_size=32, standardize=True, seed=args.seed,
    )  # fmt: skip
    start = time.perf_counter()
    first = ffnn_jax.train(x_train, y_train, **settings)  # includes compilation
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    result = ffnn_jax.train(x_train, y_train, **settings)  # same shapes: compiles nothing
    steady_s = time.perf_counter() - start
    accuracy = result.evaluate(x_test, y_test)["accuracy"]
    assert first.evaluate(x_test, y_test)["accuracy"] == accuracy, "same seed must give the same model"
    print(
        f"digits 64-256-10, {args.epochs} epochs: test accuracy {accuracy:.4f}; "
        f"first call {first_s:.2f} s (with compilation), second call {steady_s:.2f} s"
    )
    if accuracy < args.min_accuracy:
        raise SystemExit(f"accuracy {accuracy:.4f} is below the gate {args.min_accuracy}")


if __name__ == "__main__":
    main()
