"""Early stopping and learning-rate plateaus as a pure update on device arrays.

The rule runs inside the compiled multi-epoch loop (so a run on tiny data needs no host round
trip per epoch), and its counters live in ``TrainState`` (so a continued run, such as
scikit-learn's ``partial_fit``, keeps them). Two rules:

- ``"keras"`` (Keras' ``EarlyStopping`` and ``ReduceLROnPlateau``): the best value moves only on
  an improvement larger than ``min_delta``; early stopping and the learning-rate plateau count
  separately; a reduction never takes η below ``min_learning_rate``.
- ``"sklearn"`` (scikit-learn's MLP): the best value is the running best; one counter grows on
  every epoch that does not beat it by ``min_delta``. When it exceeds ``patience``, η is divided
  (``reduce_lr_factor``) while η > ``min_learning_rate``, else training stops.

Either rule also stops as soon as the watched value reaches ``threshold`` (PyTorch Lightning's
``stopping_threshold``: "train until 97% validation accuracy"), with or without early stopping.

Values are watched "smaller is better": the caller multiplies accuracies and R² by −1.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._types import Array


RULES = ("keras", "sklearn")


class Plateau(NamedTuple):
    """Counters of the rule (arrays; part of ``TrainState``)."""

    best: Array  # float32 [], best watched value so far (+inf before the first epoch)
    waited: Array  # int32 [], epochs without an improvement > min_delta
    lr_best: Array  # float32 [], the learning-rate plateau's own best ("keras" rule)
    lr_waited: Array  # int32 []


class StopRule(NamedTuple):
    """The static part of the rule (hashable; closed over by the compiled loop)."""

    monitor: str = "train_loss"  # a history name: train_loss, val_loss, val_accuracy, ...
    rule: str = "keras"
    early_stopping: bool = False
    reduce_lr: bool = False


class StopNumbers(NamedTuple):
    """The numeric part (arrays, so changing them never recompiles)."""

    min_delta: Array  # float32 []
    patience: Array  # int32 []
    lr_factor: Array  # float32 [], η ← η × lr_factor on a plateau
    lr_patience: Array  # int32 [] ("keras" rule)
    min_learning_rate: Array  # float32 []
    threshold: Array  # float32 [], stop once the watched value is <= this (-inf: never)


class Decision(NamedTuple):
    plateau: Plateau
    improved: Array  # bool [], this epoch is the new best (its params are the ones to restore)
    stop: Array  # bool []
    learning_rate: Array  # float32 [], η for the next epoch


def init_plateau() -> Plateau:
    # Four distinct buffers: a state is donated, and one buffer may not be donated twice.
    # Host values put on the device: a transfer each, where jnp.full / jnp.zeros / jnp.asarray would
    # each compile a program first.
    inf, zero = (lambda: jax.device_put(np.float32(np.inf))), (lambda: jax.device_put(np.int32(0)))
    return Plateau(inf(), zero(), inf(), zero())


def stop_numbers(
    *,
    min_delta: float,
    patience: int,
    lr_factor: float,
    lr_patience: int,
    min_learning_rate: float,
    threshold: float = -float("inf"),
) -> StopNumbers:
    """The numbers as (NumPy) arrays; ``threshold`` is in watched ("smaller is better") units, -inf for none."""
    f32, i32 = np.float32, np.int32  # host scalars: they travel with the compiled call that reads them
    return StopNumbers(
        f32(min_delta), i32(patience), f32(lr_factor), i32(lr_patience), f32(min_learning_rate), f32(threshold)
    )


def update(plateau: Plateau, watched: Array, learning_rate: Array, numbers: StopNumbers, rule: StopRule) -> Decision:
    """One epoch's decision from its watched value (smaller is better) and the current η."""
    watched = watched.astype(jnp.float32)
    reached = watched <= numbers.threshold
    if rule.rule == "sklearn":
        improved = watched < plateau.best
        waited = jnp.where(watched > plateau.best - numbers.min_delta, plateau.waited + 1, 0)
        exhausted = waited > numbers.patience
        reduce = exhausted & (learning_rate > numbers.min_learning_rate) if rule.reduce_lr else jnp.zeros((), bool)
        learning_rate = jnp.where(reduce, learning_rate * numbers.lr_factor, learning_rate)
        stop = (rule.early_stopping & exhausted & ~reduce) | reached
        new = Plateau(
            jnp.minimum(plateau.best, watched), jnp.where(reduce, 0, waited), plateau.lr_best, plateau.lr_waited
        )
        return Decision(new, improved, stop, learning_rate)

    improved = watched < plateau.best - numbers.min_delta
    best = jnp.where(improved, watched, plateau.best)
    waited = jnp.where(improved, 0, plateau.waited + 1)
    lr_best, lr_waited = plateau.lr_best, plateau.lr_waited
    if rule.reduce_lr:
        lr_improved = watched < lr_best - numbers.min_delta
        lr_best = jnp.where(lr_improved, watched, lr_best)
        lr_waited = jnp.where(lr_improved, 0, lr_waited + 1)
        reduce = (lr_waited >= numbers.lr_patience) & (learning_rate > numbers.min_learning_rate)
        reduced = jnp.maximum(learning_rate * numbers.lr_factor, numbers.min_learning_rate)
        learning_rate = jnp.where(reduce, reduced, learning_rate)
        lr_waited = jnp.where(reduce, 0, lr_waited)
    stop = (rule.early_stopping & (waited > numbers.patience)) | reached
    return Decision(Plateau(best, waited, lr_best, lr_waited), improved, stop, learning_rate)


def watched_value(monitor: str, row: dict) -> Array:
    """``row[monitor]`` made "smaller is better" (accuracy and R² negated)."""
    value = row[monitor]
    return -value if monitor.endswith(("accuracy", "r2")) else value
