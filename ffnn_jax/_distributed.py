"""Several processes (hosts) as one run, through JAX's own runtime: ``jax.distributed``.

Every process runs the same program. :func:`initialize_distributed` joins them (a coordinator on
process 0, CPU collectives over gloo); afterwards ``jax.devices()`` lists every process's
devices, the mesh of :mod:`ffnn_jax._parallel` spans them, and XLA's collectives do the gradient
all-reduce. The host side needs three agreements, kept here: the processes were started with the
same settings and data (:func:`check_same_everywhere`), they stop at the same chunk when a signal
reaches any of them (:func:`any_process`), and only process 0 writes files (:func:`is_primary`).
"""

import errno
import hashlib
import json
import os
import socket
import sys
import threading
import time
from typing import Optional, Tuple

import jax
import numpy as np


DEFAULT_TIMEOUT_S = 60  # waiting for the others to join, and for a silent process to count as dead


def _check_address(coordinator_address) -> tuple:
    host, _, port = str(coordinator_address).rpartition(":")
    if not isinstance(coordinator_address, str) or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"`coordinator_address` must be 'host:port' (e.g. '10.0.0.1:1234'), got {coordinator_address!r}")
    return host.strip("[]"), int(port)


def _from_environment(coordinator_address, num_processes, process_id):
    """The arguments, completed from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID."""
    env = os.environ
    coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS") or None
    for name, value in (("JAX_NUM_PROCESSES", num_processes), ("JAX_PROCESS_ID", process_id)):
        if value is None and env.get(name, "") != "" and not env[name].lstrip("-").isdigit():
            raise ValueError(f"the environment variable {name} must be an integer, got {env[name]!r}")
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])
    return coordinator_address, num_processes, process_id


def _check_port_free(host: str, port: int) -> None:
    """Process 0 hosts the coordinator: a port already taken here is named now, not as a gRPC abort."""
    if host not in ("localhost", "127.0.0.1", "::1", "0.0.0.0", socket.gethostname()):
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the coordinator binds: TIME_WAIT is free
        try:
            probe.bind(("", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ValueError(
                    f"`coordinator_address`: port {port} is already in use on this machine; pick a free port "
                    "(ffnn-jax launch picks one itself)"
                ) from None
            raise


def initialize_distributed(
    coordinator_address: Optional[str] = None,
    num_processes: Optional[int] = None,
    process_id: Optional[int] = None,
    *,
    timeout_s: int = DEFAULT_TIMEOUT_S,
) -> bool:
    """Joins this process to a multi-process run (``jax.distributed.initialize``); returns whether one is on.

    Without arguments it reads JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID, and
    under Slurm (SLURM_JOB_ID with more than one task) lets JAX detect everything; with none of
    these it does nothing and returns False. Calling it again with the same values is a no-op.

    Args:
      coordinator_address: "host:port" of process 0, which hosts the coordinator.
      num_processes: how many processes take part (one per host, or one per GPU).
      process_id: this process's rank, 0 .. num_processes − 1.
      timeout_s: seconds to wait for every process to join, after which a silent process counts as
        dead (the others then exit with an error instead of hanging), and for the shutdown barrier.

    Raises:
      ValueError: a malformed address, a rank out of range, or process 0's port already in use.
      RuntimeError: JAX already computed something in this process (initialize first).
    """
    coordinator_address, num_processes, process_id = _from_environment(coordinator_address, num_processes, process_id)
    slurm = os.environ.get("SLURM_JOB_ID") and int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1
    given = (coordinator_address, num_processes, process_id)
    if all(value is None for value in given) and not slurm:
        return False
    if not isinstance(timeout_s, (int, np.integer)) or isinstance(timeout_s, bool) or timeout_s < 1:
        raise ValueError(f"`timeout_s` must be a positive number of seconds, got {timeout_s!r}")
    if not slurm or any(value is not None for value in given):
        if None in given:
            missing = [name for name, value in zip(("coordinator_address", "num_processes", "process_id"), given)
                       if value is None]  # fmt: skip
            raise ValueError(f"a multi-process run needs coordinator_address, num_processes and process_id; missing {missing}")
        host, port = _check_address(coordinator_address)
        if not isinstance(num_processes, (int, np.integer)) or isinstance(num_processes, bool) or num_processes < 1:
            raise ValueError(f"`num_processes` must be a positive int, got {num_processes!r}")
        if not isinstance(process_id, (int, np.integer)) or isinstance(process_id, bool) or not 0 <= process_id < num_processes:
            raise ValueError(f"`process_id` must be an int in 0..{num_processes - 1} (`num_processes`={num_processes}), "
                             f"got {process_id!r}")  # fmt: skip
    if jax.distributed.is_initialized():
        if num_processes is not None and (jax.process_count(), jax.process_index()) != (num_processes, process_id):
            raise RuntimeError(
                f"this process already joined a run as process {jax.process_index()} of {jax.process_count()}; "
                f"cannot join another as {process_id} of {num_processes}"
            )
        return True
    if not slurm and process_id == 0:
        _check_port_free(host, port)
    elif not slurm:
        _wait_for_coordinator(host, port, timeout_s)
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes all-reduce over TCP
    kwargs = dict(initialization_timeout=int(timeout_s), heartbeat_timeout_seconds=int(timeout_s),
                  shutdown_timeout_seconds=int(timeout_s))  # fmt: skip
    # JAX would end the process with SIGABRT and a C++ log when not every process joins in time: say why instead.
    watchdog = threading.Timer(timeout_s, _not_joined, (num_processes, coordinator_address, timeout_s))
    watchdog.daemon = True
    watchdog.start()
    try:
        if slurm and coordinator_address is None:
            jax.distributed.initialize(**kwargs)
        else:
            jax.distributed.initialize(coordinator_address, int(num_processes), int(process_id), **kwargs)
    except RuntimeError as error:
        if "before" in str(error).lower():
            raise RuntimeError(
                "initialize the multi-process run before JAX computes anything in this process: pass "
                "coordinator_address/num_processes/process_id to the first train() call, or call "
                "ffnn_jax.initialize_distributed() first"
            ) from error
        raise
    finally:
        watchdog.cancel()
    return True


def _wait_for_coordinator(host: str, port: int, timeout_s: float) -> None:
    """Processes 1.. wait until process 0's coordinator accepts connections, or raise a clear error."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no coordinator answered at `coordinator_address` {host}:{port} within {timeout_s} s: start "
                    "process 0 there (or check the address and firewall), or raise --distributed_timeout"
                ) from None
            time.sleep(0.2)


def _not_joined(num_processes, coordinator_address, timeout_s) -> None:
    """Ends the process (status 1) with a clear message: nothing was written yet, and JAX would abort anyway."""
    print(f"ffnn-jax: error: not all {num_processes} processes joined the run at {coordinator_address} within "
          f"{timeout_s} s (a process did not start, or was started with another --num_processes or port); "
          "stopping", file=sys.stderr, flush=True)  # fmt: skip
    os._exit(1)


def is_primary() -> bool:
    """Whether this process writes the files (metrics, checkpoints, outputs): process 0."""
    return jax.process_index() == 0


def any_process(*flags: bool) -> Tuple[bool, ...]:
    """Each of ``flags``, true if it is true on any process (one tiny all-gather; the flags
    themselves with one process)."""
    if jax.process_count() == 1:
        return tuple(bool(flag) for flag in flags)
    from jax.experimental import multihost_utils

    everyone = np.asarray(multihost_utils.process_allgather(np.array(flags, np.int32)))  # [processes, flags]
    return tuple(bool(flag) for flag in np.any(everyone.reshape(-1, len(flags)), axis=0))


def refuse_together(refusal: Optional[Exception], what: str) -> None:
    """Raises ``refusal`` where it arose and, on every other process, an error pointing to it, so
    that all processes refuse together (none waits on a collective the refusing one never joins).
    ``what`` names the refused thing, e.g. "`checkpoint_dir` 'ckpt'"."""
    (refused_somewhere,) = any_process(refusal is not None)
    if refusal is not None:
        raise refusal
    if refused_somewhere:
        raise ValueError(f"another process refused {what} (its error says why)")


def smallest_everywhere(value: int) -> int:
    """The smallest of every process's ``value`` (``value`` itself with one process)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(np.min(multihost_utils.process_allgather(np.array([value], np.int64))))


def _digest(value) -> int:
    text = json.dumps(value, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little") & 0x7FFFFFFF


def check_same_everywhere(about: dict) -> None:
    """Raises ValueError on every process when the processes' settings or data differ (names them).

    ``about`` is the run's description (``settings``: name -> value, ``data``: shapes and sampled
    row hash); one digest per setting and one for the data are compared across processes.
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    names = sorted(about["settings"])
    digests = np.array([_digest(about["settings"][name]) for name in names] + [_digest(about["data"])], np.int64)
    everyone = np.asarray(multihost_utils.process_allgather(digests))  # [processes, names + 1]
    differ = np.any(everyone != everyone[0], axis=0)
    if np.any(differ):
        what = [f"`{name}`" for name, bad in zip(names, differ) if bad] + (["the training data"] if differ[-1] else [])
        ranks = [int(i) for i in np.flatnonzero(np.any(everyone != everyone[0], axis=1))]
        raise ValueError(
            f"the processes of this run were started with different {', '.join(what)}: processes {ranks} differ "
            "from process 0; start every process with the same settings and data"
        )
