"""Test settings: 2 fake CPU devices on the CPU backend, and a PRNG key fixture.

Rank promotion stays at jax's default: the batch-first ``x @ W + b`` relies on broadcasting b.
"""

import os


os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def key():
    return jax.random.key(0)
