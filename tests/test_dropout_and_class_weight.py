"""Dropout (inverted, training only, key threaded through the run) and class_weight (= matching sample_weight)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_all_equal
from sklearn.utils.class_weight import compute_class_weight

import ffnn_jax


FAST = dict(hidden_sizes=(32,), optimizer="adam", learning_rate=0.01, epochs=3)


def test_dropout_zero_is_exactly_no_dropout(digits):
    x, y = digits
    assert_trees_all_equal(ffnn_jax.train(x, y, dropout=0.0, **FAST).params, ffnn_jax.train(x, y, **FAST).params)


def test_dropout_changes_training_reproducibly_and_is_off_at_predict(digits):
    x, y = digits
    plain = ffnn_jax.train(x, y, **FAST)
    dropped = ffnn_jax.train(x, y, dropout=0.5, **FAST)
    again = ffnn_jax.train(x, y, dropout=0.5, **FAST)
    assert_trees_all_equal(dropped.params, again.params)  # the same seed draws the same masks
    assert dropped.history["train_loss"][-1] > plain.history["train_loss"][-1]  # noisier training loss
    np.testing.assert_array_equal(dropped.predict_proba(x), dropped.predict_proba(x))  # deterministic
    expected = jax.nn.softmax(ffnn_jax.forward(dropped.params, x))
    np.testing.assert_allclose(dropped.predict_proba(x), expected, rtol=1e-6)
    assert dropped.evaluate(x, y)["accuracy"] > 0.9


def test_inverted_dropout_keeps_the_expected_activation(key):
    params = ffnn_jax.init_params(key, [20, 200, 1], init="he")
    x = jnp.ones((4000, 20))
    clean = ffnn_jax.forward(params, x, activation="identity")
    noisy = ffnn_jax.forward(params, x, activation="identity", dropout=(0.3,), key=jax.random.key(1))
    assert not np.allclose(noisy, clean)
    np.testing.assert_allclose(noisy.mean(), clean.mean(), rtol=0.05)


def test_dropout_rates_per_layer_and_bad_rates_are_checked(digits):
    x, y = digits
    ffnn_jax.train(x, y, hidden_sizes=(16, 8), dropout=(0.2, 0.0), epochs=1)
    with pytest.raises(ValueError, match="`dropout` must be one rate or one per hidden layer \\(2\\), got 3"):
        ffnn_jax.train(x, y, hidden_sizes=(16, 8), dropout=(0.1, 0.1, 0.1), epochs=1)
    with pytest.raises(ValueError, match="`dropout`"):
        ffnn_jax.train(x, y, dropout=1.0, epochs=1)


def test_class_weight_equals_the_matching_sample_weight(digits):
    x, y = digits
    weights = {0: 5.0, 3: 0.5}
    by_class = ffnn_jax.train(x, y, class_weight=weights, **FAST)
    by_row = ffnn_jax.train(x, y, sample_weight=np.array([weights.get(int(c), 1.0) for c in y], np.float32), **FAST)
    assert_trees_all_equal(by_class.params, by_row.params)


def test_balanced_class_weight_is_scikit_learns(digits):
    x, y = digits
    keep = (y != 1) | (np.arange(len(y)) % 4 == 0)  # class 1 made rare
    x, y = x[keep], y[keep]
    per_class = compute_class_weight("balanced", classes=np.unique(y), y=y)
    balanced = ffnn_jax.train(x, y, class_weight="balanced", **FAST)
    by_row = ffnn_jax.train(x, y, sample_weight=per_class[y].astype(np.float32), **FAST)
    np.testing.assert_allclose(balanced.history["train_loss"], by_row.history["train_loss"], rtol=1e-6)


def test_class_weight_with_string_labels_and_its_errors(digits):
    x, y = digits
    names = np.array(["even", "odd"])[y % 2]
    ffnn_jax.train(x, names, class_weight={"odd": 2.0}, epochs=1)
    with pytest.raises(ValueError, match="not in `y`: \\['three'\\]"):
        ffnn_jax.train(x, names, class_weight={"three": 2.0}, epochs=1)
    with pytest.raises(ValueError, match="`class_weight` needs class labels"):
        ffnn_jax.train(x, x[:, 0], class_weight="balanced", epochs=1)


def test_the_cli_takes_dropout_and_class_weight(tmp_path):
    import json

    from ffnn_jax import cli

    out = tmp_path / "run"
    argv = ["train", "-e", "1", "-sz", "8", "--dropout", "0.25", "--class_weight", "0:2,3:0.5", "--no_progress"]
    assert cli.main(argv + ["--no_plot", "--out", str(out)]) == 0
    config = json.loads((out / "summary.json").read_text())["config"]
    assert config["dropout"] == [0.25] and config["class_weight"] == {"0": 2.0, "3": 0.5}
