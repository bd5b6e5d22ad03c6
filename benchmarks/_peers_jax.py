"""JAX implementations: ffnn_jax's fused ``train()`` and the standard Flax (linen) + optax loop.

``ffnn_jax.train()`` runs each epoch as one ``lax.scan`` (several epochs per dispatch on small
data, where ``history["time_s"]`` is the dispatch's time shared out); its epoch times are
``history["time_s"]`` (argument checks before the first epoch are not counted, just as the
peers' data conversion is not; the asynchronous host-to-device copy of the data lands in the
first epoch, which the suite does not time). bf16 is ``train(compute_dtype="bfloat16")``.

The Flax peer is the usual per-step loop: a ``jax.jit`` step (grad, optax update, apply; params
and optimizer state donated) called from Python once per batch. The data live on the device and
each step gathers its batch from a per-epoch ``jax.random.permutation``, so the loop pays one
dispatch per step and no host transfer. bf16 uses linen's own mixed precision:
``nn.Dense(dtype=bfloat16, param_dtype=float32)``.
"""

from typing import Optional

import numpy as np

from benchmarks._runner import EpochRunner, Runner, Skipped, Trained


class FfnnJaxRunner(Runner):
    """``ffnn_jax.train()``, started from the shared initial parameters each run."""

    name = "ffnn_jax"
    label = "ffnn_jax train()"
    note = (
        "ffnn_jax.train(): fused lax.scan epochs, several per dispatch on small data; times from "
        "history['time_s']; to an accuracy: stopping_threshold on val_accuracy (checked on the device)"
    )

    def setup(self):
        import dataclasses

        import jax.numpy as jnp

        import ffnn_jax

        mixed = {}
        if self.dtype != "float32":
            if "compute_dtype" not in {field.name for field in dataclasses.fields(ffnn_jax.TrainConfig)}:
                raise Skipped(f"this ffnn_jax's train() has no compute_dtype option (for {self.dtype})")
            mixed = {"compute_dtype": self.dtype}
        self.ffnn_jax = ffnn_jax
        config = self.config
        self.params = tuple(ffnn_jax.LayerParams(W=jnp.asarray(w), b=jnp.asarray(b)) for w, b in self.init)
        self.settings = dict(
            hidden_sizes=config.hidden_sizes,
            activation="relu",
            optimizer=config.optimizer,
            learning_rate=config.learning_rate,
            batch_size=config.batch_size,
            shuffle=True,
            dtype="float32",
            **mixed,
        )

    def _train(self, epochs: int, seed: int, **extra) -> Trained:
        result = self.ffnn_jax.train(
            self.data.x, self.data.y, initial_params=self.params, epochs=epochs, seed=seed, **self.settings, **extra
        )
        history = result.history
        layers = [(np.asarray(layer.W), np.asarray(layer.b)) for layer in result.params]
        accuracy = history["val_accuracy"][-1] if "val_accuracy" in history else None
        return Trained(history["time_s"], history["train_loss"], layers, accuracy)

    def train(self, epochs: int, seed: int) -> Trained:
        return self._train(epochs, seed)

    def train_to_accuracy(self, max_epochs: Optional[int] = None, seed: int = 0) -> Trained:
        # The test accuracy is checked after every epoch on the device (stopping_threshold), so
        # the epochs run in grouped dispatches; the peers check it on the host after each epoch.
        return self._train(
            max_epochs or self.config.max_epochs,
            seed,
            validation_data=(self.data.x_test, self.data.y_test),
            monitor="val_accuracy",
            stopping_threshold=self.config.target_accuracy,
        )


class FlaxRunner(EpochRunner):
    """Flax linen MLP + optax, one jitted step per batch called from a Python loop."""

    name = "flax"
    label = "Flax linen + optax loop"
    note = "flax.linen nn.Dense MLP + optax, jax.jit step per batch (donated), data on device"

    def setup(self):
        try:
            import flax.linen as nn
        except ImportError as error:
            raise Skipped(f"Flax is not installed ({error}); `pip install flax`") from error
        import jax
        import jax.numpy as jnp
        import optax

        self.jax, self.jnp = jax, jnp
        config, data = self.config, self.data
        compute_dtype = jnp.bfloat16 if self.dtype == "bfloat16" else jnp.float32
        widths = tuple(config.layer_sizes[1:])

        class MLP(nn.Module):
            @nn.compact
            def __call__(self, x):
                for i, width in enumerate(widths):
                    x = nn.Dense(width, dtype=compute_dtype, param_dtype=jnp.float32)(x)
                    x = nn.relu(x) if i < len(widths) - 1 else x
                return x.astype(jnp.float32)

        model = MLP()
        if config.optimizer == "sgd":
            self.tx = optax.sgd(config.learning_rate)
        else:
            self.tx = optax.adam(config.learning_rate, b1=0.9, b2=0.999, eps=1e-8)
        self.initial = {
            "params": {
                f"Dense_{i}": {"kernel": jnp.asarray(w), "bias": jnp.asarray(b)} for i, (w, b) in enumerate(self.init)
            }
        }
        batch = config.batch_size

        def step(params, opt_state, total, x, y, order, i):
            rows = jax.lax.dynamic_slice_in_dim(order, i * batch, batch)

            def loss_fn(p):
                return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x[rows]), y[rows]).mean()

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, total + loss

        self.step = jax.jit(step, donate_argnums=(0, 1, 2))
        self.permutation = jax.jit(lambda key: jax.random.permutation(key, len(data.x)))
        self.predict = jax.jit(lambda p, x: jnp.argmax(model.apply(p, x), axis=-1))
        self.x, self.y = jax.device_put(data.x), jax.device_put(data.y)
        self.key = self.params = self.opt_state = None

    def reset(self, seed):
        self.key = self.jax.random.key(seed)
        self.params = self.jax.tree_util.tree_map(self.jnp.array, self.initial)
        self.opt_state = self.tx.init(self.params)

    def epoch(self):
        self.key, key = self.jax.random.split(self.key)
        order = self.permutation(key)
        total = self.jnp.zeros((), self.jnp.float32)
        n_batches = len(self.data.x) // self.config.batch_size
        for i in range(n_batches):
            self.params, self.opt_state, total = self.step(self.params, self.opt_state, total, self.x, self.y, order, i)
        return float(total) / n_batches

    def accuracy(self, x, y):
        return float((np.asarray(self.predict(self.params, x)) == y).mean())

    def layers(self):
        dense = self.params["params"]
        return [
            (np.asarray(dense[f"Dense_{i}"]["kernel"]), np.asarray(dense[f"Dense_{i}"]["bias"]))
            for i in range(len(dense))
        ]
