"""Training sets of nearby sizes share one compiled program, and the padding changes nothing learned."""

import jax
import numpy as np
import pytest
from helpers import assert_trees_all_close, assert_trees_all_equal

import ffnn_jax
from ffnn_jax import _buckets, _loop
from ffnn_jax._buckets import bucket_rows
from ffnn_jax._shuffle import permutation, real_rows_first


def _digits_like(n, d=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    x = rng.normal(size=(n, d)).astype(np.float32) + y[:, None]
    return x, y


def test_a_bucket_holds_at_most_an_eighth_more_rows_and_nearby_sizes_share_it():
    sizes = np.arange(1, 20_000)
    buckets = np.array([bucket_rows(int(n)) for n in sizes])
    assert np.all(buckets >= sizes) and np.all(buckets <= np.maximum(sizes * 1.125, 16))
    assert bucket_rows(1437) == bucket_rows(1438)  # digits' cross-validation folds
    assert len(set(buckets[999:1100])) <= 2


def test_real_rows_first_moves_the_real_rows_forward_keeping_both_groups_in_order():
    order = permutation(jax.random.key(0), 20)
    moved = np.asarray(real_rows_first(order, np.int32(13)))
    order = np.asarray(order)
    np.testing.assert_array_equal(moved[:13], order[order < 13])
    np.testing.assert_array_equal(moved[13:], order[order >= 13])


def test_training_sets_of_nearby_sizes_compile_the_epoch_program_once():
    x, y = _digits_like(1010)
    settings = dict(hidden_sizes=(7,), epochs=2, batch_size=32, validation_fraction=0.1, seed=3)
    ffnn_jax.train(x[:1000], y[:1000], **settings)
    compiled = _loop.run_epochs._cache_size()
    for n in (1001, 1007, 1010):  # their validation splits differ in size too
        ffnn_jax.train(x[:n], y[:n], **settings)
    assert _loop.run_epochs._cache_size() == compiled


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_without_shuffling_a_padded_set_trains_exactly_as_the_set_placed_as_it_is(monkeypatch, optimizer):
    x, y = _digits_like(1001)
    held = _digits_like(203, seed=1)
    settings = dict(hidden_sizes=(9,), epochs=3, batch_size=64, shuffle=False, optimizer=optimizer,
                    validation_data=held, seed=0)  # fmt: skip
    padded = ffnn_jax.train(x, y, **settings)
    monkeypatch.setattr(_buckets, "_MOST_BYTES", -1)  # nothing is small enough to pad
    as_it_is = ffnn_jax.train(x, y, **settings)
    assert bucket_rows(1001) > 1001 and bucket_rows(203) > 203
    assert_trees_all_equal(padded.params, as_it_is.params)
    assert_trees_all_close(padded.history["val_loss"], as_it_is.history["val_loss"], rtol=1e-6)
    assert_trees_all_close(padded.history["val_accuracy"], as_it_is.history["val_accuracy"], rtol=1e-6)


def test_a_shuffled_padded_epoch_counts_every_real_row_once_and_no_padding_row():
    x, y = _digits_like(1001)
    start = ffnn_jax.init_params(jax.random.key(1), (12, 9, 4))
    # an η so small that the epoch's mean loss is the starting params' loss on the real rows
    result = ffnn_jax.train(x, y, hidden_sizes=(9,), epochs=1, batch_size=64, learning_rate=1e-30,
                            initial_params=start, standardize=False)  # fmt: skip
    expected = ffnn_jax.evaluate(start, x, y)
    np.testing.assert_allclose(result.history["train_loss"][0], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(result.history["train_accuracy"][0], expected["accuracy"], rtol=1e-6)


def test_a_padded_validation_set_scores_its_real_rows_only():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = x @ rng.normal(size=5).astype(np.float32)
    held_x, held_y = x[:77] + 0.1, y[:77]
    result = ffnn_jax.train(x, y, hidden_sizes=(8,), epochs=3, validation_data=(held_x, held_y), standardize=False)
    expected = ffnn_jax.evaluate(result.params, held_x, held_y, loss="mse")
    np.testing.assert_allclose(result.history["val_r2"][-1], expected["r2"], rtol=1e-5)
    np.testing.assert_allclose(result.history["val_loss"][-1], expected["loss"], rtol=1e-5)


def test_cross_validation_folds_of_two_sizes_run_in_one_program_each_member_as_its_train_call():
    x, y = _digits_like(100)
    settings = dict(hidden_sizes=(5,), epochs=2, batch_size=16)
    result = ffnn_jax.sweep(x, y, grid={"learning_rate": [0.01, 0.1]}, folds=3, refit=False, **settings)
    assert result.programs == 1  # folds of 66 and 67 training rows
    pairs = ffnn_jax._sweep.fold_pairs(3, x, y, seed=0)
    assert len({len(train_rows) for train_rows, _ in pairs}) == 2
    for member, (train_rows, held_rows) in zip(result.results[3:], pairs):  # learning rate 0.1
        alone = ffnn_jax.train(x[train_rows], y[train_rows], validation_data=(x[held_rows], y[held_rows]),
                               learning_rate=0.1, **settings)  # fmt: skip
        assert_trees_all_close(member.params, alone.params, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(member.history["val_loss"], alone.history["val_loss"], rtol=1e-5)


def test_predictions_for_nearby_sizes_reuse_one_program_and_have_one_row_per_input():
    from ffnn_jax import _inference

    x, y = _digits_like(400)
    result = ffnn_jax.train(x, y, hidden_sizes=(6,), epochs=1)
    expected = np.asarray(ffnn_jax.predict_proba(result.params, x))
    result.predict_proba(x[:359])
    compiled = _inference._outputs._cache_size()
    for n in (360, 361, 383):  # a cross-validation's held-out folds
        proba = result.predict_proba(x[:n])
        assert proba.shape == (n, 4)
        np.testing.assert_allclose(proba, expected[:n], rtol=1e-6)
        np.testing.assert_array_equal(result.predict(x[:n]), np.argmax(expected[:n], axis=1))
    assert _inference._outputs._cache_size() == compiled + 1  # the labels' program, once


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_evaluating_sets_of_nearby_sizes_reuses_one_program_and_scores_the_real_rows(monkeypatch, task):
    from ffnn_jax import _step

    x, y = _digits_like(400)
    if task == "regression":
        y = (x[:, :2] @ np.ones(2)).astype(np.float32)
    result = ffnn_jax.train(x, y, hidden_sizes=(6,), epochs=1, task=task)
    ffnn_jax.evaluate(result.params, x[:359], y[:359])
    compiled = _step.evaluate_arrays._cache_size()
    padded = {n: ffnn_jax.evaluate(result.params, x[:n], y[:n]) for n in (360, 383)}
    assert _step.evaluate_arrays._cache_size() == compiled
    monkeypatch.setattr(_buckets, "_MOST_BYTES", -1)  # nothing is small enough to pad
    for n, metrics in padded.items():
        as_it_is = ffnn_jax.evaluate(result.params, x[:n], y[:n])
        assert metrics.keys() == as_it_is.keys() == {"loss", "accuracy" if task == "classification" else "r2"}
        for name in metrics:
            np.testing.assert_allclose(metrics[name], as_it_is[name], rtol=1e-5)
