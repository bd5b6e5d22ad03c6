"""``ffnn-jax launch -n N -- train ...``: N local processes of one multi-process run.

For tests, and for one machine with several GPUs (one process each). Each process gets the run's
coordinates through the variables :func:`ffnn_jax.initialize_distributed` reads
(JAX_COORDINATOR_ADDRESS on a free loopback port, JAX_NUM_PROCESSES, JAX_PROCESS_ID, and
JAX_LOCAL_DEVICE_IDS so that each process owns one GPU). Their output comes back line by line,
prefixed with the rank. When one process fails, the others are stopped (SIGTERM, then SIGKILL
after ``grace_s``) instead of waiting on a collective that cannot finish; SIGINT and SIGTERM to the
launcher are passed on to every process, so a checkpointed run saves and exits as a whole.
"""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import List, Optional, Sequence, Tuple


def _ephemeral_ports() -> Tuple[int, int]:
    """The range the OS draws ephemeral ports from (outgoing connections and bind to port 0)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(value) for value in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default; macOS and Windows start at 49152


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the coordinator binds
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port free on this machine now, drawn below the OS's ephemeral range.

    The OS's own choice (bind to port 0) is drawn from the ephemeral range, where any other
    process's outgoing connection (gloo opens many) may take it in the seconds before process 0's
    coordinator binds it; below that range only a listener can, and a random draw makes two
    launches choosing at once unlikely to meet.
    """
    low, _ = _ephemeral_ports()
    draw = random.Random()  # seeded from os.urandom: launches started at once draw apart
    for _ in range(100):
        port = draw.randrange(20000, low) if low > 21000 else draw.randrange(low, 65536)
        if _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:  # nothing free there: the OS's choice
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _relay(rank: int, stream, out, lock: threading.Lock) -> None:
    for line in iter(stream.readline, ""):
        with lock:
            out.write(f"[rank {rank}] {line}")
            out.flush()
    stream.close()


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal s: 128 + s, as a shell reports it


def launch(
    num_processes: int,
    command: Sequence[str],
    *,
    port: Optional[int] = None,
    grace_s: float = 5.0,
    out=None,
) -> int:
    """Runs ``ffnn-jax <command>`` as ``num_processes`` processes of one run; returns the exit status
    (0 when all succeed, else the first failure's).

    Args:
      num_processes: how many processes (ranks 0 .. num_processes − 1).
      command: the ffnn-jax command and its flags, e.g. ``["train", "-d", "digits", "--out", "run"]``.
      port: the coordinator's loopback port (default: a free one).
      grace_s: seconds the others get to exit after one has failed, before SIGKILL.
      out: where the ranked output goes (default sys.stdout).
    """
    if not isinstance(num_processes, int) or isinstance(num_processes, bool) or num_processes < 1:
        raise ValueError(f"`-n` must be a positive number of processes, got {num_processes!r}")
    command = list(command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command or command[0] not in ("train", "sweep"):
        raise ValueError(
            f"ffnn-jax launch runs `train` or `sweep` (e.g. launch -n 2 -- train -d digits), got {command!r}"
        )
    out = sys.stdout if out is None else out
    address = f"127.0.0.1:{port or free_port()}"
    lock = threading.Lock()
    processes: List[subprocess.Popen] = []
    relays = []
    for rank in range(num_processes):
        env = {**os.environ, "JAX_COORDINATOR_ADDRESS": address, "JAX_NUM_PROCESSES": str(num_processes),
               "JAX_PROCESS_ID": str(rank), "PYTHONUNBUFFERED": "1"}  # fmt: skip
        env.setdefault("JAX_LOCAL_DEVICE_IDS", str(rank))
        process = subprocess.Popen([sys.executable, "-m", "ffnn_jax", *command], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        processes.append(process)
        relay = threading.Thread(target=_relay, args=(rank, process.stdout, out, lock), daemon=True)
        relay.start()
        relays.append(relay)
    with lock:
        out.write(f"[launch] {num_processes} processes, coordinator {address}\n")

    def forward(number, frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(number)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    failure: Optional[int] = None
    try:
        deadline = None
        while any(process.poll() is None for process in processes):
            for rank, process in enumerate(processes):
                code = process.poll()
                if code not in (None, 0) and failure is None:
                    failure = _exit_status(code)
                    with lock:
                        out.write(f"[launch] process {rank} exited with status {failure}; stopping the others\n")
                    for other in processes:
                        if other.poll() is None:
                            other.send_signal(signal.SIGTERM)
                    deadline = time.monotonic() + grace_s
            if deadline is not None and time.monotonic() > deadline:
                for process in processes:
                    if process.poll() is None:
                        process.kill()
            time.sleep(0.05)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for relay in relays:
            relay.join(timeout=5)
    if failure is None:
        codes = [_exit_status(process.returncode) for process in processes]
        failure = next((code for code in codes if code), 0)
    return failure
