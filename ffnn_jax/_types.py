"""Type aliases shared across ffnn_jax (documentation only; nothing is checked at runtime)."""

from typing import Any, Callable, NamedTuple, Sequence, Tuple, Union

import jax


Array = jax.Array
PRNGKey = jax.Array


class LayerParams(NamedTuple):
    """Parameters of one dense layer, batch-first: a layer computes ``x @ W + b``."""

    W: Array  # [n_in, n_out]
    b: Array  # [n_out]


Params = Tuple[LayerParams, ...]
Batch = Tuple[Array, Array]  # (x: [batch, n_in], y: [batch] int labels or [batch, n_out] targets)
Metrics = dict
Activation = Union[str, Callable[[Array], Array]]
ArrayLike = Any
IntSequence = Sequence[int]
