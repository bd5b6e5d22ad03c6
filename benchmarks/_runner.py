"""The interface every implementation under test offers, and the epoch loop the per-step peers share.

A runner is built once per config (model and data in its framework's format, from the shared
initial parameters) and then trains several times; every training run starts again from the
same initial parameters, so repeated runs do the same work. ``seed`` picks the run's shuffle
order (the suite uses the round number, so that a time-to-accuracy median is not one order's luck).
Times cover the epochs only: data conversion and model construction happen before the clock starts.
"""

import time
from typing import List, NamedTuple, Optional

import numpy as np

from benchmarks._configs import BenchConfig, Data, Layers


class Skipped(Exception):
    """An implementation that cannot run here (missing package, unsupported option); the message says why."""


class Trained(NamedTuple):
    """One training run."""

    epoch_seconds: List[float]  # wall time of each epoch (with its test-accuracy check on runs to a target)
    epoch_losses: List[float]  # mean training loss of each epoch, as the implementation reports it
    layers: Layers  # final parameters as NumPy (W [n_in, n_out], b) pairs
    test_accuracy: Optional[float] = None  # runs to an accuracy target: the accuracy reached

    @property
    def epochs(self) -> int:
        return len(self.epoch_losses)


class Runner:
    """Base class: ``warm_up`` once, then ``train`` / ``train_to_accuracy`` as often as wanted."""

    name = "runner"  # short key used in JSON and on the command line
    label = "runner"  # what the table shows
    note = ""  # how the implementation is set up (shown under the table)

    def __init__(self, config: BenchConfig, data: Data, init: Layers, *, device: str, dtype: str):
        self.config, self.data, self.init, self.device, self.dtype = config, data, init, device, dtype
        self.setup()

    def setup(self) -> None:
        """Builds the model and moves the data into the framework; raises :class:`Skipped` if it cannot run."""

    def warm_up(self) -> float:
        """Runs one epoch from a cold start (compilation included) and returns its wall time in seconds."""
        start = time.perf_counter()
        if self.config.target_accuracy is None:
            self.train(1, seed=0)
        else:
            self.train_to_accuracy(max_epochs=1, seed=0)
        return time.perf_counter() - start

    def train(self, epochs: int, seed: int) -> Trained:
        raise NotImplementedError

    def train_to_accuracy(self, max_epochs: Optional[int] = None, seed: int = 0) -> Trained:
        raise NotImplementedError


class EpochRunner(Runner):
    """A runner driven epoch by epoch from Python (every peer except ffnn_jax's fused ``train()``)."""

    def reset(self, seed: int) -> None:
        """Back to the initial parameters and a fresh optimizer state; ``seed`` the shuffle order."""
        raise NotImplementedError

    def epoch(self) -> float:
        """One shuffled pass over the training data; returns its mean loss (a host sync)."""
        raise NotImplementedError

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def layers(self) -> Layers:
        raise NotImplementedError

    def _run(self, seed: int, max_epochs: int, target: Optional[float]) -> Trained:
        self.reset(seed)
        seconds, losses, accuracy = [], [], None
        while len(losses) < max_epochs and (target is None or accuracy is None or accuracy < target):
            start = time.perf_counter()
            losses.append(self.epoch())
            if target is not None:
                accuracy = self.accuracy(self.data.x_test, self.data.y_test)
            seconds.append(time.perf_counter() - start)
        return Trained(seconds, losses, self.layers(), accuracy)

    def train(self, epochs: int, seed: int) -> Trained:
        return self._run(seed, epochs, None)

    def train_to_accuracy(self, max_epochs: Optional[int] = None, seed: int = 0) -> Trained:
        return self._run(seed, max_epochs or self.config.max_epochs, self.config.target_accuracy)
