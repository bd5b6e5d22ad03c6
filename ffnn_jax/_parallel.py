"""Data parallelism: a ``jax.sharding.Mesh`` over the devices, each batch split across them.

``train(..., devices=...)`` builds the mesh; the run state is replicated on it and the epoch
constrains each batch to be split along the mesh's "batch" axis (see ``ffnn_jax._step._epoch``):
the same jitted step, scanned the same way, with XLA inserting the gradient all-reduce. No
collective is written by hand. On one process the training arrays are replicated; across several
processes (:mod:`ffnn_jax._distributed`) each process puts only its own block of rows on its
devices (:func:`shard_rows`), and the gather of a batch's rows becomes a masked local gather plus
one all-reduce of the batch.
"""

import os
from typing import Any, Optional, Tuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._errors import check_positive_int
from ._run_checkpoint import _is_key


def use_cpu_cores(count: Optional[int] = None) -> None:
    """Splits JAX's CPU backend into ``count`` devices (None: one per core this process may run
    on), so that ``sweep(devices="all")`` trains a share of the members on each core at once.

    On a small network one program uses the second core poorly (XLA:CPU parallelises each small
    operation; the handover costs about what it saves), while members on separate devices run
    side by side without talking to each other. ``train()`` still runs on the first device.
    Call it right after ``import ffnn_jax``, before JAX computes anything: JAX fixes its devices
    when it starts (``RuntimeError`` otherwise). A count chosen in the environment
    (``XLA_FLAGS=--xla_force_host_platform_device_count=n`` or ``JAX_NUM_CPU_DEVICES``) is kept.
    """
    check_positive_int("count", count, allow_none=True)
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") or os.environ.get(
        "JAX_NUM_CPU_DEVICES"
    ):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        jax.config.update("jax_num_cpu_devices", int(count or cores))
    except RuntimeError:
        raise RuntimeError(
            "use_cpu_cores() must run before JAX computes anything (JAX fixes its devices when it starts): "
            "call it right after `import ffnn_jax`"
        ) from None


def make_mesh(devices: Any, axis: str = "batch") -> Optional[Mesh]:
    """None for ``devices=None`` on one process (one default device, no mesh); else a 1-D mesh with
    axis ``axis`` over ``"all"`` devices, the first ``n``, or the given list of ``jax.Device``.
    Across several processes ``None`` means all of them, and the mesh must hold devices of each."""
    if devices is None and jax.process_count() == 1:
        return None
    available = jax.devices()
    if devices is None or (isinstance(devices, str) and devices == "all"):
        chosen = available
    elif isinstance(devices, str):
        raise ValueError(f"`devices` must be None, 'all', a positive int or a list of devices, got {devices!r}")
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"`devices`={devices}: this process sees {len(available)} device(s): {available}")
        chosen = available[: int(devices)]
    elif isinstance(devices, (list, tuple)) and devices and all(isinstance(d, jax.Device) for d in devices):
        chosen = list(devices)
    else:
        raise ValueError(f"`devices` must be None, 'all', a positive int or a list of jax devices, got {devices!r}")
    missing = sorted({d.process_index for d in available} - {d.process_index for d in chosen})
    if missing:
        raise ValueError(f"`devices`={devices!r} leaves out every device of process(es) {missing}; a multi-process "
                         "run needs devices of each process (use devices='all')")  # fmt: skip
    return Mesh(np.array(chosen), (axis,))


def replicate(tree, mesh: Optional[Mesh]):
    """``tree`` on every device of ``mesh`` (unchanged without one). PRNG keys travel as their data
    (``device_put`` does not place key arrays on other processes' devices)."""
    return _put(tree, mesh, PartitionSpec())


def shard_leading(tree, mesh: Optional[Mesh]):
    """``tree``'s arrays split along their leading axis (a sweep's members) over ``mesh``'s axis;
    the axis must divide by the device count. Unchanged without a mesh."""
    return _put(tree, mesh, PartitionSpec(mesh.axis_names[0]) if mesh is not None else None)


def _put(tree, mesh: Optional[Mesh], spec):
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, spec)

    def put(leaf):
        if _is_key(leaf):
            return jax.random.wrap_key_data(jax.device_put(jax.random.key_data(leaf), sharding),
                                            impl=jax.random.key_impl(leaf))  # fmt: skip
        return jax.device_put(leaf, sharding)

    return jax.tree_util.tree_map(put, tree)


def padded_rows(n: int, mesh: Mesh) -> int:
    """``n`` rounded up to a multiple of the mesh's device count (rows of :func:`shard_rows`' arrays)."""
    return -(-n // mesh.size) * mesh.size


def shard_rows(tree, mesh: Mesh):
    """``tree``'s arrays [n, ...] split by rows over ``mesh`` (padded with zero rows to
    :func:`padded_rows`); each process puts only the blocks of its own devices."""
    sharding = NamedSharding(mesh, PartitionSpec("batch"))

    def put(leaf):
        array = np.asarray(leaf)
        extra = padded_rows(len(array), mesh) - len(array)
        shape: Tuple[int, ...] = (len(array) + extra, *array.shape[1:])

        def block(index):
            rows = array[index[0]]  # a slice of the padded rows; the padding is zeros
            pad = index[0].indices(shape[0])
            short = len(range(*pad)) - len(rows)
            return np.concatenate([rows, np.zeros((short, *array.shape[1:]), array.dtype)]) if short else rows

        return jax.make_array_from_callback(shape, sharding, block)

    return jax.tree_util.tree_map(put, tree)


def gather_to_host(tree):
    """NumPy copies of ``tree``'s arrays whole, also where their blocks lie on other processes
    (an all-gather then); PRNG keys come back as keys on this process's default device. What is
    left of a multi-process run's arrays for this process alone."""
    multi = jax.process_count() > 1

    def fetch(leaf):
        if not isinstance(leaf, jax.Array):
            return leaf
        key = _is_key(leaf)
        data = jax.random.key_data(leaf) if key else leaf
        if multi and not data.is_fully_addressable and not data.is_fully_replicated:
            from jax.experimental import multihost_utils

            data = multihost_utils.process_allgather(data, tiled=True)
        data = np.asarray(data)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf)) if key else data

    return jax.tree_util.tree_map(fetch, tree)
