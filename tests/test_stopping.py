"""The early-stopping / plateau rule: Keras' and scikit-learn's ways of counting improvements."""

import jax.numpy as jnp
import numpy as np

from ffnn_jax._stopping import StopRule, init_plateau, stop_numbers, update, watched_value


def _run(values, rule, *, learning_rate=1.0, **numbers):
    """Feeds ``values`` epoch by epoch; returns per-epoch (improved, stop, η after the epoch)."""
    settings = dict(min_delta=0.1, patience=2, lr_factor=0.5, lr_patience=2, min_learning_rate=0.0) | numbers
    plateau, lr, out = init_plateau(), jnp.float32(learning_rate), []
    for value in values:
        decision = update(plateau, jnp.float32(value), lr, stop_numbers(**settings), rule)
        plateau, lr = decision.plateau, decision.learning_rate
        out.append((bool(decision.improved), bool(decision.stop), float(lr)))
    return out


def test_keras_moves_the_best_only_on_an_improvement_larger_than_min_delta():
    # 1.0 -> 0.95 -> 0.9 -> 0.85: steps of 0.05 < min_delta 0.1; 0.85 beats the best 1.0 by 0.15.
    out = _run([1.0, 0.95, 0.9, 0.85, 0.84, 0.83, 0.82], StopRule(rule="keras", early_stopping=True))
    assert [o[0] for o in out] == [True, False, False, True, False, False, False]
    assert [o[1] for o in out] == [False] * 6 + [True]  # waited 3 > patience 2 after 0.85


def test_sklearn_keeps_the_running_best_so_slow_steady_progress_stops():
    # The same losses: each epoch beats the last by 0.05 < tol, so the counter never resets.
    out = _run([1.0, 0.95, 0.9, 0.85, 0.84], StopRule(rule="sklearn", early_stopping=True))
    assert [o[0] for o in out] == [True] * 5  # every epoch is the new (running) best: its params are kept
    assert [o[1] for o in out] == [False, False, False, True, True]  # count 1, 2, 3 > 2: stop


def test_sklearn_adaptive_divides_the_learning_rate_until_the_floor_then_stops():
    flat = [1.0] * 12
    out = _run(flat, StopRule(rule="sklearn", early_stopping=True, reduce_lr=True), min_learning_rate=0.3)
    rates = [o[2] for o in out]
    # count exceeds patience 2 at epochs 4 and 7 (η 1 -> 0.5 -> 0.25); at 0.25 <= 0.3 the next plateau stops
    assert rates[:3] == [1.0] * 3 and rates[3:6] == [0.5] * 3 and rates[6] == 0.25
    assert [o[1] for o in out].index(True) == 9


def test_keras_reduce_lr_waits_lr_patience_and_never_goes_below_the_floor():
    out = _run([1.0] * 7, StopRule(rule="keras", reduce_lr=True), min_learning_rate=0.3)
    np.testing.assert_allclose([o[2] for o in out], [1.0, 1.0, 0.5, 0.5, 0.3, 0.3, 0.3], rtol=1e-6)
    assert not any(o[1] for o in out)  # early_stopping off: plateaus never stop training


def test_accuracy_and_r2_are_watched_negated_and_losses_as_they_are():
    row = {"val_accuracy": jnp.float32(0.9), "val_r2": jnp.float32(0.5), "val_loss": jnp.float32(0.2)}
    assert np.allclose([watched_value(k, row) for k in row], [-0.9, -0.5, 0.2])


def test_a_threshold_stops_at_the_first_epoch_that_reaches_it_under_either_rule():
    losses = [1.0, 0.8, 0.5, 0.5, 0.2, 0.1]
    for rule in ("keras", "sklearn"):
        out = _run(losses, StopRule(rule=rule), threshold=0.5, patience=100)
        assert [o[1] for o in out] == [False, False, True, True, True, True], rule  # 0.5 <= 0.5 counts
        never = _run(losses, StopRule(rule=rule), patience=100)  # the default threshold is -inf
        assert not any(o[1] for o in never), rule
