"""Data parallelism on one host: a ``jax.sharding.Mesh`` over the devices, each batch split across them.

``train(..., devices=...)`` builds the mesh; the data and the run state are replicated on it and the
epoch constrains each batch to be split along the mesh's "batch" axis (see ``ffnn_jax._step._epoch``):
the same jitted step, scanned the same way, with XLA inserting the gradient all-reduce. No collective
is written by hand.
"""

from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def make_mesh(devices: Any) -> Optional[Mesh]:
    """None for ``devices=None`` (one default device, no mesh); else a 1-D mesh with axis "batch" over
    ``"all"`` devices, the first ``n``, or the given list of ``jax.Device``."""
    if devices is None:
        return None
    available = jax.devices()
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"`devices` must be None, 'all', a positive int or a list of devices, got {devices!r}")
        chosen = available
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"`devices`={devices}: this process sees {len(available)} device(s): {available}")
        chosen = available[: int(devices)]
    elif isinstance(devices, (list, tuple)) and devices and all(isinstance(d, jax.Device) for d in devices):
        chosen = list(devices)
    else:
        raise ValueError(f"`devices` must be None, 'all', a positive int or a list of jax devices, got {devices!r}")
    return Mesh(np.array(chosen), ("batch",))


def replicate(tree, mesh: Optional[Mesh]):
    """``tree`` on every device of ``mesh`` (unchanged without one)."""
    return tree if mesh is None else jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
