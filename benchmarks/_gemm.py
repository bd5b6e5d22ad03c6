"""The machine's measured matrix-multiply rate: the ceiling for model FLOP utilisation.

A square ``n × n`` GEMM is timed in JAX and in PyTorch (median of ``reps`` calls after a warm-up)
in the compute dtype. The best rate seen is the ceiling, and
MFU = 6 × weights × samples/s / ceiling.
"""

import os
import time
from typing import Callable, Dict, Optional

import numpy as np


def _median_seconds(call: Callable[[], None], reps: int) -> float:
    call()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def jax_gemm_gflops(n: int, dtype: str, reps: int) -> float:
    """GFLOP/s of a jitted ``a @ b`` with ``a, b`` [n, n] on JAX's default device."""
    import jax
    import jax.numpy as jnp

    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (n, n), jnp.dtype(dtype))
    b = jax.random.normal(key_b, (n, n), jnp.dtype(dtype))
    matmul = jax.jit(jnp.matmul)
    return 2 * n**3 / _median_seconds(lambda: matmul(a, b).block_until_ready(), reps) / 1e9


def torch_gemm_gflops(n: int, dtype: str, reps: int, device: str) -> Optional[float]:
    """GFLOP/s of ``torch.mm`` [n, n] on the target device; None without PyTorch (or CUDA for gpu)."""
    try:
        import torch
    except ImportError:
        return None
    if device == "gpu" and not torch.cuda.is_available():
        return None
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    a = torch.randn(n, n, device=dev).to(getattr(torch, dtype))
    b = torch.randn(n, n, device=dev).to(getattr(torch, dtype))

    def call():
        torch.mm(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return 2 * n**3 / _median_seconds(call, reps) / 1e9


def measure_gemm(n: int, dtype: str, *, device: str, reps: int = 10) -> Dict[str, Optional[float]]:
    """``{"jax": GFLOP/s, "torch": GFLOP/s or None, "best": the larger}`` for one size and dtype."""
    rates = {"jax": jax_gemm_gflops(n, dtype, reps), "torch": torch_gemm_gflops(n, dtype, reps, device)}
    rates["best"] = max(rate for rate in rates.values() if rate is not None)
    return rates


def mfu(n_weights: int, samples_per_s: float, ceiling_gflops: float) -> float:
    """Model FLOP utilisation: 6 × weights × samples/s over the measured GEMM rate (a fraction)."""
    return 6.0 * n_weights * samples_per_s / (ceiling_gflops * 1e9)
