"""train(), the fused epoch and the jitted step: convergence, exactness, determinism, compiles."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_all_finite, assert_trees_all_close, assert_trees_all_equal

import ffnn_jax
from ffnn_jax import _step
from ffnn_jax._data import train_test_split
from ffnn_jax._optim import OptimizerSpec
from ffnn_jax._step import ModelSpec, init_train_state, run_epoch


def _blobs(n=120, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y.astype(np.int32)


def test_gradient_descent_decreases_the_loss_of_a_convex_problem():
    x, y = _blobs()
    result = ffnn_jax.train(x, y, hidden_sizes=(), optimizer="sgd", learning_rate=0.05, batch_size=None, epochs=100)
    losses = np.array(result.history["train_loss"])
    assert np.all(np.diff(losses) < 0), "full-batch GD on softmax regression must decrease the loss every epoch"
    assert losses[-1] < 0.5 * losses[0]


def test_the_lectures_sigmoid_neuron_converges_under_plain_gradient_descent():
    # f(x) = σ(w x + b) through (0.5, 0.2) and (2.5, 0.9); the loss is Σ (f(x) − y)² / 2.
    x = jnp.array([[0.5], [2.5]])
    y = jnp.array([0.2, 0.9])
    params = (ffnn_jax.LayerParams(W=jnp.array([[-2.0]]), b=jnp.array([-2.0])),)

    def loss_fn(params):
        prediction = jax.nn.sigmoid(ffnn_jax.forward(params, x))[:, 0]
        return 0.5 * jnp.sum((prediction - y) ** 2)

    optimizer = ffnn_jax.make_optimizer("sgd", learning_rate=1.0)

    @jax.jit
    def descend(params, opt_state):
        def step(carry, _):
            params, opt_state = carry
            updates, opt_state = optimizer.update(jax.grad(loss_fn)(params), opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, (params, opt_state), None, length=20000)[0]

    params, _ = descend(params, optimizer.init(params))
    w, b = float(params[0].W[0, 0]), float(params[0].b[0])
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    w_star = (logit(0.9) - logit(0.2)) / 2.0
    assert float(loss_fn(params)) < 1e-5
    np.testing.assert_allclose([w, b], [w_star, logit(0.2) - 0.5 * w_star], rtol=2e-2)


def test_digits_reaches_at_least_97_percent_test_accuracy():
    x, y = ffnn_jax.load_digits()
    (x_train, y_train), (x_test, y_test) = train_test_split(x, y, 0.2, seed=0)
    result = ffnn_jax.train(
        x_train,
        y_train,
        hidden_sizes=(256,),
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=1e-4,
        epochs=60,
        batch_size=32,
        standardize=True,
        seed=0,
    )
    accuracy = result.evaluate(x_test, y_test)["accuracy"]
    assert accuracy >= 0.97, accuracy
    np.testing.assert_allclose(np.mean(result.predict(x_test) == y_test), accuracy, rtol=1e-6)


def test_a_smooth_regression_target_is_fitted():
    x = np.linspace(-3, 3, 256, dtype=np.float32)[:, None]
    y = np.sin(x[:, 0]) + 0.5 * x[:, 0]
    result = ffnn_jax.train(
        x, y, hidden_sizes=(32, 32), activation="tanh", optimizer="adam", learning_rate=1e-2, epochs=300
    )
    assert result.task == "regression"
    assert result.evaluate(x, y)["r2"] > 0.995
    assert result.predict(x).shape == (256,)


def test_same_seed_gives_bitwise_identical_params_and_another_seed_does_not():
    x, y = _blobs()
    settings = dict(
        hidden_sizes=(8,), optimizer="adam", learning_rate=1e-2, epochs=3, batch_size=16, validation_fraction=0.2
    )
    a = ffnn_jax.train(x, y, seed=3, **settings)
    b = ffnn_jax.train(x, y, seed=3, **settings)
    c = ffnn_jax.train(x, y, seed=4, **settings)
    assert_trees_all_equal(a.params, b.params)
    assert not np.array_equal(a.params[0].W, c.params[0].W)


class _CompileCounter:
    """Counts XLA backend compilations while active."""

    def __enter__(self):
        self.count = 0
        self._listener = lambda name, *args, **kwargs: setattr(
            self, "count", self.count + (name == "/jax/core/compile/backend_compile_duration")
        )
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listener)


def test_repeated_train_calls_with_new_learning_rate_epochs_seed_and_decay_compile_nothing():
    x, y = _blobs(n=100)
    base = dict(hidden_sizes=(16,), optimizer="momentum", batch_size=32, validation_fraction=0.1, lr_schedule="cosine")
    with _CompileCounter() as first:
        ffnn_jax.train(x, y, learning_rate=0.1, epochs=2, seed=0, momentum=0.9, weight_decay=0.0, **base)
    with _CompileCounter() as second:
        ffnn_jax.train(x, y, learning_rate=0.01, epochs=5, seed=7, momentum=0.5, weight_decay=1e-3, **base)
    assert first.count >= 1  # the counter does see compilations
    assert second.count == 0


def test_the_padded_last_batch_counts_every_sample_exactly_once():
    # 10 samples in batches of 4: the fused epoch must equal three plain GD steps on 4, 4 and 2 rows.
    x, y = _blobs(n=10)
    params = ffnn_jax.init_params(jax.random.key(0), [4, 5, 3])
    optimizer = ffnn_jax.make_optimizer("sgd", learning_rate=0.1)
    model = ModelSpec("relu", "cross_entropy", True)
    state = init_train_state(jax.tree_util.tree_map(jnp.array, params), optimizer, jax.random.key(1))
    spec = ffnn_jax._optim.OptimizerSpec("sgd")
    state, sums = run_epoch(
        state, jnp.asarray(x), jnp.asarray(y), jnp.ones(10), model=model, optimizer=spec, batch_size=4, shuffle=False
    )
    expected = params
    for start in (0, 4, 8):
        grads = jax.grad(ffnn_jax.loss)(expected, (x[start : start + 4], y[start : start + 4]))
        expected = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, expected, grads)
    assert_trees_all_close(state.params, expected, rtol=1e-5, atol=1e-6)
    assert float(sums.count) == 10.0 and int(state.step) == 3


def test_a_sample_weight_of_two_equals_duplicating_the_row():
    x, y = _blobs(n=20)
    weights = np.ones(20)
    weights[:5] = 2.0
    settings = dict(hidden_sizes=(6,), optimizer="sgd", learning_rate=0.1, epochs=5, batch_size=None)
    weighted = ffnn_jax.train(x, y, sample_weight=weights, **settings)
    duplicated = ffnn_jax.train(np.concatenate([x, x[:5]]), np.concatenate([y, y[:5]]), **settings)
    assert_trees_all_close(weighted.params, duplicated.params, rtol=1e-4, atol=1e-6)


def test_divergence_raises_with_the_epoch_and_keeps_the_last_finite_params():
    x, _ = _blobs()
    y = x.sum(axis=1) * 100.0  # a regression where η = 0.05 is far past the stability limit
    with pytest.raises(ffnn_jax.TrainingDivergedError, match="epoch") as caught:
        ffnn_jax.train(x, y, hidden_sizes=(32,), activation="identity", optimizer="sgd", learning_rate=0.05, epochs=50)
    error = caught.value
    assert error.epoch >= 1 and error.step >= 0
    assert_all_finite(error.params)
    assert len(error.history.get("epoch", [])) == error.epoch - 1


def test_history_has_per_epoch_train_and_validation_metrics_and_wall_time():
    x, y = _blobs()
    result = ffnn_jax.train(
        x, y, hidden_sizes=(8,), epochs=4, validation_fraction=0.25, optimizer="adam", learning_rate=1e-2
    )
    assert set(result.history) >= {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "time_s",
        "learning_rate",
    }
    assert all(len(v) == 4 for v in result.history.values())
    x_val, y_val = _blobs(n=30, seed=1)
    explicit = ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=2, validation_data=(x_val, y_val))
    assert len(explicit.history["val_loss"]) == 2


def test_early_stopping_stops_and_returns_the_best_epochs_params():
    x, y = _blobs(n=60)
    x_val, y_val = _blobs(n=60, seed=5)
    y_val = (y_val + 1) % 3  # validation labels disagree with training: val loss soon rises
    result = ffnn_jax.train(
        x,
        y,
        validation_data=(x_val, y_val),
        hidden_sizes=(16,),
        optimizer="adam",
        learning_rate=0.05,
        epochs=200,
        early_stopping=True,
        patience=3,
    )
    assert result.stopped_early and len(result.history["epoch"]) < 200
    best = int(np.argmin(result.history["val_loss"])) + 1
    assert result.best_epoch == best
    np.testing.assert_allclose(result.evaluate(x_val, y_val)["loss"], result.history["val_loss"][best - 1], rtol=1e-5)


def test_a_callback_returning_true_stops_training():
    x, y = _blobs()
    seen = []
    result = ffnn_jax.train(
        x, y, hidden_sizes=(4,), epochs=50, callbacks=[lambda epoch, row: seen.append(row) or epoch == 3]
    )
    assert len(result.history["epoch"]) == 3 and len(seen) == 3


def test_continuing_from_a_state_keeps_the_step_count_and_optimizer_state():
    x, y = _blobs()
    first = ffnn_jax.train(x, y, hidden_sizes=(4,), epochs=2, batch_size=40, optimizer="adam")
    more = ffnn_jax.train(x, y, hidden_sizes=(4,), epochs=1, batch_size=40, optimizer="adam", initial_state=first.state)
    assert int(more.state.step) == int(first.state.step) + 3
    assert_all_finite(first.state.params)  # the caller's state was not donated away


def _sgd_whose_state_holds_the_params() -> optax.GradientTransformation:
    def update(updates, state, params=None):
        return jax.tree_util.tree_map(lambda g: -0.1 * g, updates), state

    return optax.GradientTransformation(lambda params: {"anchor": params}, update)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "own"])
def test_the_callers_initial_params_stay_usable(optimizer):
    # train() donates its state to the compiled epochs; only its own buffers may go.
    x, y = _blobs()
    params = ffnn_jax.init_params(jax.random.key(0), [4, 5, 3])
    before = jax.tree_util.tree_map(np.array, params)  # copies: a NumPy view would itself block donation
    tx = _sgd_whose_state_holds_the_params() if optimizer == "own" else optimizer
    result = ffnn_jax.train(x, y, hidden_sizes=(5,), epochs=2, batch_size=40, optimizer=tx, initial_params=params)
    assert not any(leaf.is_deleted() for leaf in jax.tree_util.tree_leaves(params))
    assert_trees_all_equal(params, before)
    assert not any(leaf.is_deleted() for leaf in jax.tree_util.tree_leaves(result.state))


def test_multi_label_binary_cross_entropy_and_multi_output_regression():
    x, y = _blobs()
    labels = np.stack([y == 0, y == 1], axis=1).astype(np.int32)
    multi = ffnn_jax.train(
        x, labels, loss="binary_cross_entropy", hidden_sizes=(8,), epochs=30, optimizer="adam", learning_rate=1e-2
    )
    assert multi.predict(x).shape == (len(x), 2) and multi.predict_proba(x).shape == (len(x), 2)
    assert multi.history["train_accuracy"][-1] > 0.9
    regression = ffnn_jax.train(x, np.stack([x[:, 0], x[:, 1]], 1), hidden_sizes=(8,), epochs=5)
    assert regression.predict(x).shape == (len(x), 2)


def test_make_train_step_applies_one_jitted_gradient_step_and_skips_non_finite_ones(key):
    params = ffnn_jax.init_params(key, [4, 3])
    optimizer = ffnn_jax.make_optimizer("sgd", learning_rate=0.5)
    step = ffnn_jax.make_train_step(optimizer)
    x, y = jnp.asarray(_blobs(n=8)[0]), jnp.asarray(_blobs(n=8)[1])
    state = init_train_state(jax.tree_util.tree_map(jnp.array, params), optimizer, key)
    new_state, metrics = step(state, (x, y))
    grads = jax.grad(ffnn_jax.loss)(params, (x, y))
    assert_trees_all_close(
        new_state.params, jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, params, grads), rtol=1e-5, atol=1e-6
    )
    assert bool(metrics.finite)
    kept, metrics = step(jax.tree_util.tree_map(jnp.array, new_state), (x.at[0, 0].set(jnp.nan), y))
    assert not bool(metrics.finite)
    assert_trees_all_equal(kept.params, new_state.params)


def test_early_stopping_can_watch_validation_accuracy_and_restores_its_best_epoch():
    x, y = _blobs(n=90)
    x_val, y_val = _blobs(n=60, seed=5)
    result = ffnn_jax.train(
        x, y, validation_data=(x_val, y_val), hidden_sizes=(16,), optimizer="adam", learning_rate=0.05,
        epochs=60, early_stopping=True, patience=2, monitor="val_accuracy", min_delta=0.0,
    )  # fmt: skip
    accuracies = result.history["val_accuracy"]
    assert result.best_epoch == int(np.argmax(accuracies)) + 1
    np.testing.assert_allclose(result.evaluate(x_val, y_val)["accuracy"], max(accuracies))


def test_a_stopping_threshold_ends_the_run_on_the_device_where_a_callback_would():
    x, y = _blobs(n=150)
    x, y, x_val, y_val = x[:90], y[:90], x[90:], y[90:]
    settings = dict(hidden_sizes=(16,), optimizer="adam", learning_rate=0.003, epochs=40, batch_size=16)
    full = ffnn_jax.train(x, y, validation_data=(x_val, y_val), **settings)
    accuracies = np.array(full.history["val_accuracy"])
    # reached part-way through the run (about epoch 13); between two attainable accuracies (k / 60),
    # so that float32 on the device and float64 in the callback agree
    threshold = 0.89
    first = int(np.argmax(accuracies >= threshold)) + 1
    assert 1 < first < len(accuracies)
    reached = ffnn_jax.train(
        x, y, validation_data=(x_val, y_val), monitor="val_accuracy", stopping_threshold=threshold, **settings
    )
    assert reached.stopped_early and reached.history["epoch"][-1] == first
    assert reached.history["val_accuracy"] == full.history["val_accuracy"][:first]
    by_callback = ffnn_jax.train(
        x, y, validation_data=(x_val, y_val), callbacks=[lambda _, row: row["val_accuracy"] >= threshold], **settings
    )
    assert_trees_all_equal(reached.params, by_callback.params)
    loss_threshold = ffnn_jax.train(x, y, stopping_threshold=full.history["train_loss"][9], **settings)
    assert loss_threshold.history["epoch"][-1] <= 10  # losses stop at <= the threshold


def test_a_non_finite_stopping_threshold_is_refused_before_training():
    x, y = _blobs(n=30)
    with pytest.raises(ValueError, match="`stopping_threshold` must be a finite real number"):
        ffnn_jax.train(x, y, stopping_threshold=float("nan"))


def test_bfloat16_compute_keeps_float32_master_weights_and_still_learns():
    x, y = _blobs()
    result = ffnn_jax.train(
        x, y, hidden_sizes=(16,), optimizer="adam", learning_rate=1e-2, epochs=20, compute_dtype="bfloat16"
    )
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(result.params))
    assert result.model.compute_dtype == "bfloat16"
    assert result.history["train_accuracy"][-1] > 0.9
    full = ffnn_jax.train(x, y, hidden_sizes=(16,), optimizer="adam", learning_rate=1e-2, epochs=20)
    assert not np.array_equal(result.params[0].W, full.params[0].W)  # the bf16 path really ran


def test_an_update_that_overflows_the_params_is_caught_and_the_epochs_start_params_kept():
    x, y = _blobs(n=64)
    x = x * 1e4  # with η = 1e38 the first loss is finite, but its update overflows float32 to inf
    settings = dict(hidden_sizes=(4,), optimizer="sgd", learning_rate=1e38, epochs=3, batch_size=16, seed=1)
    with pytest.raises(ffnn_jax.TrainingDivergedError, match="epoch 1") as caught:
        ffnn_jax.train(x, y, **settings)
    initial = ffnn_jax.init_params(jax.random.split(jax.random.key(1))[0], [4, 4, 3])
    assert_trees_all_equal(caught.value.params, initial)


def test_poisson_regression_fits_counts_and_predicts_positive_means():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = rng.poisson(np.exp(0.5 * x[:, 0] + 0.3 * x[:, 1]))
    result = ffnn_jax.train(x, y, loss="poisson", hidden_sizes=(8,), optimizer="adam", learning_rate=1e-2, epochs=50)
    assert result.task == "regression"
    predictions = result.predict(x)
    assert predictions.shape == (400,) and np.all(predictions > 0)
    assert result.evaluate(x, y)["r2"] > 0.3
    with pytest.raises(ValueError, match="must be >= 0 for loss='poisson'"):
        ffnn_jax.train(x, -y, loss="poisson", epochs=1)


def test_the_loss_decides_the_task_for_evaluate_and_make_train_step(key):
    x, _ = _blobs(n=40)
    counts = np.random.default_rng(0).poisson(2.0, size=40)
    params = ffnn_jax.init_params(key, [4, 1])
    assert set(ffnn_jax.evaluate(params, x, counts, activation="tanh", loss="poisson")) == {"loss", "r2"}
    optimizer = ffnn_jax.make_optimizer("sgd", learning_rate=0.01)
    step = ffnn_jax.make_train_step(optimizer, loss="poisson")
    state = init_train_state(jax.tree_util.tree_map(jnp.array, params), optimizer, key)
    _, metrics = step(state, (jnp.asarray(x), jnp.asarray(counts, jnp.float32)))
    assert float(metrics.correct) == 0.0  # a regression: no accuracy is counted


def test_epochs_chunked_into_one_dispatch_train_exactly_as_one_epoch_per_dispatch():
    # Without callbacks tiny data runs many epochs per dispatch; a no-op callback forces one per
    # dispatch. Same seed: the same history, stopping epoch, restored params and plateau η.
    x, y = _blobs(n=60)
    x_val, y_val = _blobs(n=60, seed=5)
    settings = dict(
        validation_data=(x_val, (y_val + 1) % 3), hidden_sizes=(8,), optimizer="adam", learning_rate=0.05,
        epochs=200, early_stopping=True, patience=6, reduce_lr_factor=0.5, reduce_lr_patience=2, seed=3,
    )  # fmt: skip
    chunked = ffnn_jax.train(x, y, **settings)
    per_epoch = ffnn_jax.train(x, y, callbacks=[lambda epoch, row: None], **settings)
    assert chunked.stopped_early and 6 < len(chunked.history["epoch"]) < 200
    assert min(chunked.history["learning_rate"]) < 0.05  # the plateau rule did act inside the chunk
    for name in ("train_loss", "val_loss", "learning_rate", "epoch"):
        np.testing.assert_array_equal(chunked.history[name], per_epoch.history[name])
    assert chunked.best_epoch == per_epoch.best_epoch == int(np.argmin(chunked.history["val_loss"])) + 1
    assert_trees_all_equal(chunked.params, per_epoch.params)


def test_epochs_per_dispatch_groups_tiny_epochs_and_leaves_large_ones_alone():
    from ffnn_jax._setup import epochs_per_dispatch

    iris = ffnn_jax.init_params(jax.random.key(0), [4, 20, 3])
    mnist = ffnn_jax.init_params(jax.random.key(0), [784, 128, 10])
    assert epochs_per_dispatch(iris, 112) == 100
    assert epochs_per_dispatch(mnist, 60_000) == 1


def test_a_run_continued_from_its_state_keeps_the_early_stopping_counters():
    x, y = _blobs(n=60)
    settings = dict(hidden_sizes=(4,), optimizer="sgd", learning_rate=1e-9, early_stopping=True, patience=3)
    first = ffnn_jax.train(x, y, epochs=3, **settings)  # η ~ 0: nothing improves after epoch 1
    assert not first.stopped_early and int(first.state.plateau.waited) == 2
    more = ffnn_jax.train(x, y, epochs=10, initial_state=first.state, **settings)
    assert more.stopped_early and len(more.history["epoch"]) == 2  # waited 3, then 4 > patience


def test_divergence_inside_a_chunk_of_epochs_reports_what_one_epoch_per_dispatch_reports():
    # A divergence in the middle of a many-epoch dispatch must report what per-epoch dispatches report.
    x, _ = _blobs()
    y = x.sum(axis=1) * 100.0  # η = 4e-4 is just past the stability limit: it blows up epochs later
    settings = dict(hidden_sizes=(32,), activation="identity", optimizer="sgd", learning_rate=4e-4, epochs=100)
    with pytest.raises(ffnn_jax.TrainingDivergedError) as chunked:
        ffnn_jax.train(x, y, **settings)
    with pytest.raises(ffnn_jax.TrainingDivergedError) as per_epoch:
        ffnn_jax.train(x, y, callbacks=[lambda epoch, row: None], **settings)
    a, b = chunked.value, per_epoch.value
    assert a.epoch == b.epoch > 3 and a.step == b.step
    assert_all_finite(a.params)
    assert_trees_all_equal(a.params, b.params)
    assert a.history["train_loss"] == b.history["train_loss"] and len(a.history["epoch"]) == a.epoch - 1


def test_small_networks_with_stateful_optimizers_step_on_the_flat_theta():
    small = ffnn_jax.init_params(jax.random.key(0), [64, 100, 10])
    large = ffnn_jax.init_params(jax.random.key(0), [784, 128, 10])
    assert _step._steps_on_flat_theta(small, OptimizerSpec("adam"))
    assert _step._steps_on_flat_theta(small, OptimizerSpec("momentum", "cosine", clip=True))
    assert not _step._steps_on_flat_theta(large, OptimizerSpec("adam"))  # copies into θ would cost more
    assert not _step._steps_on_flat_theta(small, OptimizerSpec("sgd"))  # no state to fuse
    assert not _step._steps_on_flat_theta(small, OptimizerSpec("adamw"))  # its decay masks out the biases
    assert not _step._steps_on_flat_theta(small, optax.adam(1e-3))  # a user's transformation may not be element-wise


@pytest.mark.parametrize("optimizer", ["adam", "nadam", "rmsprop", "nag"])
def test_the_flat_theta_epoch_matches_the_per_leaf_epoch(monkeypatch, optimizer):
    x, y = _blobs(n=100)
    settings = dict(hidden_sizes=(16, 8), optimizer=optimizer, learning_rate=1e-2, epochs=3, batch_size=16)
    settings |= dict(weight_decay=1e-3, max_grad_norm=1.0, validation_fraction=0.2)
    real_choice, decisions = _step._steps_on_flat_theta, []

    def recorded(choice):
        def choose(params, optimizer):
            decisions.append(choice(params, optimizer))
            return decisions[-1]

        return choose

    monkeypatch.setattr(_step, "_steps_on_flat_theta", recorded(real_choice))
    jax.clear_caches()  # the compiled epochs close over the choice: trace them anew
    flat = ffnn_jax.train(x, y, **settings)
    assert decisions and all(decisions)  # the epoch was traced on the flat θ
    decisions.clear()
    monkeypatch.setattr(_step, "_steps_on_flat_theta", recorded(lambda params, optimizer: False))
    jax.clear_caches()
    per_leaf = ffnn_jax.train(x, y, **settings)
    assert decisions and not any(decisions)  # ... and this one per leaf
    assert jax.tree_util.tree_structure(flat.state) == jax.tree_util.tree_structure(per_leaf.state)
    learned = (flat.state.params, flat.state.opt_state, flat.state.step)
    assert_trees_all_close(
        learned, (per_leaf.state.params, per_leaf.state.opt_state, per_leaf.state.step), rtol=2e-5, atol=1e-7
    )
    np.testing.assert_allclose(flat.history["train_loss"], per_leaf.history["train_loss"], rtol=2e-5)
    more = ffnn_jax.train(x, y, initial_state=flat.state, **settings)  # the state comes back as a pytree
    assert int(more.state.step) == 2 * int(flat.state.step)


def test_adam_divergence_on_the_flat_theta_keeps_the_last_finite_params():
    x, _ = _blobs()
    y = x.sum(axis=1)
    settings = dict(hidden_sizes=(8,), activation="identity", optimizer="adam", learning_rate=1e12, epochs=20)
    assert _step._steps_on_flat_theta(ffnn_jax.init_params(jax.random.key(0), [4, 8, 1]), OptimizerSpec("adam"))
    with pytest.raises(ffnn_jax.TrainingDivergedError) as caught:
        ffnn_jax.train(x, y, **settings)
    assert caught.value.step >= 1  # a few steps were applied (on θ) before the loss overflowed
    assert_all_finite(caught.value.params)
    assert jax.tree_util.tree_structure(caught.value.params) == jax.tree_util.tree_structure(
        ffnn_jax.init_params(jax.random.key(0), [4, 8, 1])
    )


@pytest.mark.parametrize("hidden_sizes", [(8,), (200, 100)], ids=["flat-theta", "per-leaf"])
@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_a_stateful_optimizer_updates_under_a_conditional_that_equals_the_select(monkeypatch, optimizer, hidden_sizes):
    x, y = _blobs(n=200)
    settings = dict(hidden_sizes=hidden_sizes, optimizer=optimizer, learning_rate=1e-2, epochs=2, batch_size=16,
                    weight_decay=1e-3, validation_fraction=0.2)  # fmt: skip
    flat = _step._steps_on_flat_theta(ffnn_jax.init_params(jax.random.key(0), (x.shape[1], *hidden_sizes, 3)),
                                      OptimizerSpec(optimizer))  # fmt: skip
    assert flat == (hidden_sizes == (8,))
    choices = []
    real = _step._keeps_state
    monkeypatch.setattr(_step, "_keeps_state", lambda opt: choices.append(real(opt)) or choices[-1])
    jax.clear_caches()
    conditional = ffnn_jax.train(x, y, **settings)
    assert choices and all(choices)
    monkeypatch.setattr(_step, "_keeps_state", lambda opt: choices.append(False) or False)
    jax.clear_caches()
    selected = ffnn_jax.train(x, y, **settings)
    assert not choices[-1]
    learned = lambda result: (result.state.params, result.state.opt_state, result.state.step)  # noqa: E731
    assert_trees_all_close(learned(conditional), learned(selected), rtol=1e-6, atol=1e-7)
    assert conditional.history["train_loss"] == pytest.approx(selected.history["train_loss"], rel=1e-6)
    assert not _step._keeps_state(OptimizerSpec("sgd"))  # SGD's select fuses into its one update


def test_a_non_finite_step_under_the_conditional_is_not_applied():
    x, _ = _blobs()
    y = x.sum(axis=1) * 100.0
    settings = dict(hidden_sizes=(200, 100), activation="identity", optimizer="momentum", learning_rate=10.0, epochs=20)
    with pytest.raises(ffnn_jax.TrainingDivergedError) as caught:
        ffnn_jax.train(x, y, **settings)
    assert caught.value.step >= 1
    assert_all_finite(caught.value.params)


def _first_last_bias(x, y, **settings):
    """The last layer's bias after one SGD step too small to move it: where training started."""
    settings = dict(hidden_sizes=(8,), optimizer="sgd", learning_rate=1e-12, epochs=1, batch_size=None, **settings)
    return np.asarray(ffnn_jax.train(x, y, **settings).params[-1].b, np.float64)


def test_a_regression_starts_from_the_best_constant_prediction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = np.stack([150 + 70 * rng.normal(size=200), -3 + rng.normal(size=200)], 1).astype(np.float32)
    w = rng.uniform(0.1, 2.0, size=200)
    np.testing.assert_allclose(_first_last_bias(x, y[:, 0]), [y[:, 0].mean()], rtol=1e-6)
    np.testing.assert_allclose(_first_last_bias(x, y), y.mean(0), rtol=1e-6)
    np.testing.assert_allclose(_first_last_bias(x, y, sample_weight=w), np.average(y, axis=0, weights=w), rtol=1e-6)
    counts = rng.poisson(4.0, size=200).astype(np.float32)
    np.testing.assert_allclose(_first_last_bias(x, counts, loss="poisson"), [np.log(counts.mean())], rtol=1e-6)
    held_out = dict(validation_data=(x[150:], y[150:]))  # the mean of the rows trained on only
    np.testing.assert_allclose(_first_last_bias(x[:150], y[:150], **held_out), y[:150].mean(0), rtol=1e-6)
    unmoved = dict(rtol=0, atol=1e-8)
    np.testing.assert_allclose(_first_last_bias(x, y, output_bias="zeros"), [0.0, 0.0], **unmoved)
    np.testing.assert_allclose(_first_last_bias(x, (y[:, 0] > 150).astype(np.int32)), [0.0, 0.0], **unmoved)  # classes
    start = ffnn_jax.init_params(jax.random.key(1), [3, 8, 2])
    np.testing.assert_allclose(_first_last_bias(x, y, initial_params=start), [0.0, 0.0], **unmoved)


def test_the_built_in_regression_fits_from_its_default_start():
    data = ffnn_jax.load_diabetes()
    train_part, test_part = train_test_split(data.x, data.y, test_fraction=0.2, seed=0)
    settings = dict(hidden_sizes=(256,), optimizer="adam", learning_rate=1e-3, weight_decay=1e-4, standardize=True)
    result = ffnn_jax.train(train_part.x, train_part.y, epochs=60, seed=0, **settings)
    assert result.evaluate(test_part.x, test_part.y)["r2"] > 0.4  # 0.1-0.3 when the output bias started at 0


def test_a_network_whose_relus_died_is_a_warning_naming_the_learning_rate():
    # scikit-learn's diabetes: features of scale 0.05, targets 25-346; SGD at 0.01 kills the ReLUs
    data = ffnn_jax.load_diabetes()
    x = (data.x - data.x.mean(0)) / data.x.std(0) / np.sqrt(len(data.x))
    with pytest.warns(
        RuntimeWarning, match=r"same output .*learning rate too large for this data \(here 0\.01\)"
    ) as record:
        dead = ffnn_jax.train(x, data.y, epochs=50, optimizer="sgd", learning_rate=0.01, weight_decay=0.0)
    assert record[0].filename == __file__  # attributed to the caller of train()
    assert np.std(dead.predict(x)) < 1e-3 * np.std(data.y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        alive = ffnn_jax.train(x, data.y, epochs=50, optimizer="sgd", learning_rate=0.003, weight_decay=0.0)
    assert alive.evaluate(x, data.y)["r2"] > 0.3
