"""scikit-learn's MLPClassifier (NumPy, host CPU only), started from the shared initial weights.

One ``partial_fit`` call is one shuffled epoch. To start from the shared weights, a throwaway
``partial_fit`` on one batch builds the estimator's structure; its weights are then replaced and
its optimizer dropped, so the next call starts a fresh one on the shared weights. Plain SGD is
``solver="sgd"`` with ``momentum=0`` and a constant rate; ``alpha=0`` (no L2 term).
"""

import warnings

import numpy as np

from benchmarks._runner import EpochRunner, Skipped


class SklearnRunner(EpochRunner):
    """MLPClassifier, sgd or adam as the config says."""

    name = "sklearn"
    label = "scikit-learn MLPClassifier"
    note = "MLPClassifier.partial_fit per epoch (NumPy on the host CPU, float32 data)"

    def setup(self):
        if self.dtype != "float32":
            raise Skipped("scikit-learn computes in float32/float64 only (no bf16)")
        try:
            from sklearn.neural_network import MLPClassifier
        except ImportError as error:
            raise Skipped(f"scikit-learn is not installed ({error})") from error
        self.make = MLPClassifier
        self.model = None

    def reset(self, seed):
        config, batch = self.config, self.config.batch_size
        model = self.make(
            hidden_layer_sizes=config.hidden_sizes,
            activation="relu",
            solver=config.optimizer,
            alpha=0.0,
            batch_size=batch,
            learning_rate="constant",
            learning_rate_init=config.learning_rate,
            momentum=0.0,
            nesterovs_momentum=False,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-8,
            shuffle=True,
            random_state=seed,
        )
        model.partial_fit(self.data.x[:batch], self.data.y[:batch], classes=np.arange(config.layer_sizes[-1]))
        model.coefs_ = [w.copy() for w, _ in self.init]
        model.intercepts_ = [b.copy() for _, b in self.init]
        del model._optimizer  # the next partial_fit builds a fresh one on the shared weights
        self.model = model

    def epoch(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(self.data.x, self.data.y)
        return float(self.model.loss_curve_[-1])

    def accuracy(self, x, y):
        return float(self.model.score(x, y))

    def layers(self):
        return [(w.copy(), b.copy()) for w, b in zip(self.model.coefs_, self.model.intercepts_)]
