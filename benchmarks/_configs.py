"""Benchmark configurations, their seeded data and the initial parameters every implementation shares.

Every implementation trains the same network from the same initial weights (ffnn_jax's Xavier
uniform init, converted to each framework's layout) on the same data with the same optimizer,
learning rate, batch size and epochs; only the per-epoch shuffle order differs. The final
parameters are then scored by one NumPy evaluator so that the losses can be compared.
"""

import dataclasses
from typing import List, NamedTuple, Optional, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """One benchmark: a network, its data and its optimizer."""

    name: str
    layer_sizes: Tuple[int, ...]  # [n_in, hidden..., n_out]
    batch_size: int
    n_samples: int  # training rows (a multiple of batch_size: every implementation sees full batches only)
    optimizer: str  # "sgd" (plain, no momentum) or "adam"
    learning_rate: float
    epochs: int = 2  # epochs per run; the first is not timed (it carries per-call costs such as ffnn_jax's data copy)
    target_accuracy: Optional[float] = None  # set: time to reach this test accuracy instead of a fixed run
    max_epochs: int = 200  # give up on target_accuracy after this many epochs
    min_rounds: int = 1  # at least this many timed rounds (time to accuracy: a median over shuffle orders)

    @property
    def n_weights(self) -> int:
        """Entries of the weight matrices (the 6 × weights FLOPs model ignores biases)."""
        return sum(a * b for a, b in zip(self.layer_sizes[:-1], self.layer_sizes[1:]))

    @property
    def hidden_sizes(self) -> Tuple[int, ...]:
        return tuple(self.layer_sizes[1:-1])

    def scaled(self, factor: float) -> "BenchConfig":
        """The same config with ``factor`` × the samples (at least two batches), for smoke runs."""
        if self.target_accuracy is not None or factor == 1.0:
            return self
        batches = max(2, int(self.n_samples * factor) // self.batch_size)
        return dataclasses.replace(self, n_samples=batches * self.batch_size)


CONFIGS = {
    # Dispatch bound: a narrow network on small batches (937 steps per epoch).
    "tiny": BenchConfig("tiny", (784, 128, 10), batch_size=64, n_samples=937 * 64, optimizer="sgd", learning_rate=0.05),
    "medium": BenchConfig(
        "medium", (784, 512, 512, 10), batch_size=256, n_samples=117 * 256, optimizer="sgd", learning_rate=0.05
    ),
    # Matrix-multiply bound: 10.5 M weights, 63 MFLOP per sample.
    "large": BenchConfig(
        "large", (1024, 2048, 2048, 2048, 10), batch_size=1024, n_samples=6 * 1024, optimizer="sgd", learning_rate=0.05
    ),
    # scikit-learn's digits (8×8 images scaled to [0, 1]): time to a fixed test accuracy with adam.
    "digits": BenchConfig(
        "digits",
        (64, 100, 10),
        batch_size=32,
        n_samples=0,
        optimizer="adam",
        learning_rate=1e-3,
        target_accuracy=0.97,
        min_rounds=7,
    ),
}


class Data(NamedTuple):
    """Training data and, for accuracy targets, a held-out test set."""

    x: np.ndarray  # float32 [n, n_in]
    y: np.ndarray  # int32 [n]
    x_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None


def synthetic_data(config: BenchConfig, seed: int = 0) -> Data:
    """MNIST-shaped data: pixels in [0, 1], each class a noisy copy of its own random template."""
    rng = np.random.default_rng(seed)
    n_in, n_out = config.layer_sizes[0], config.layer_sizes[-1]
    templates = rng.uniform(0.0, 1.0, (n_out, n_in)).astype(np.float32)
    y = rng.integers(0, n_out, config.n_samples).astype(np.int32)
    x = rng.uniform(0.0, 1.0, (config.n_samples, n_in)).astype(np.float32)
    x *= 0.8
    x += 0.2 * templates[y]
    return Data(x, y)


def digits_data(seed: int = 0, test_size: int = 453) -> Data:
    """scikit-learn's digits scaled to [0, 1], split stratified: 1344 training rows (42 batches of 32), 453 test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        (x / 16.0).astype(np.float32), y.astype(np.int32), test_size=test_size, random_state=seed, stratify=y
    )
    return Data(x_train, y_train, x_test, y_test)


def make_data(config: BenchConfig, seed: int = 0) -> Data:
    """The data of ``config``; digits when it has an accuracy target, synthetic otherwise."""
    return digits_data(seed) if config.target_accuracy is not None else synthetic_data(config, seed)


def with_samples(config: BenchConfig, data: Data) -> BenchConfig:
    """``config`` with ``n_samples`` set from the data (digits: the training split's size)."""
    return dataclasses.replace(config, n_samples=len(data.x))


Layers = List[Tuple[np.ndarray, np.ndarray]]  # [(W [n_in, n_out], b [n_out]), ...] float32


def initial_params(config: BenchConfig, seed: int = 0) -> Layers:
    """ffnn_jax's Xavier-uniform init as NumPy ``(W, b)`` pairs, the start of every implementation."""
    import jax

    import ffnn_jax

    params = ffnn_jax.init_params(jax.random.key(seed), config.layer_sizes, init="xavier")
    return [(np.array(layer.W), np.array(layer.b)) for layer in params]


def cross_entropy(layers: Layers, x: np.ndarray, y: np.ndarray) -> Tuple[float, float]:
    """Mean softmax cross-entropy and accuracy of a ReLU network, in float64 NumPy (the common judge)."""
    h = x.astype(np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ w.astype(np.float64) + b.astype(np.float64)
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    h -= h.max(axis=1, keepdims=True)
    log_probs = h - np.log(np.exp(h).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(y)), y].mean()
    return float(loss), float((h.argmax(axis=1) == y).mean())
