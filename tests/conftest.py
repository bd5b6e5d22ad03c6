"""Test settings: 2 fake CPU devices on the CPU backend, full float32 dots, and a PRNG key fixture.

Rank promotion stays at jax's default: the batch-first ``x @ W + b`` relies on broadcasting b.
"""

import os


os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# cli.main() would switch on JAX's persistent compilation cache in the user's home for the whole test
# process; tests/test_cache.py tests it in subprocesses with folders of their own.
os.environ["FFNN_JAX_COMPILATION_CACHE"] = "off"

import jax  # noqa: E402
import pytest  # noqa: E402


# The tests pin float32 arithmetic (against float64 references, scikit-learn, and between code
# paths). On recent NVIDIA GPUs JAX's default float32 dots use TF32 (about 1e-3 relative), which
# would fail them for a reason that is not a bug; the CPU ignores the setting.
jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture
def key():
    return jax.random.key(0)


def _mapped_regions() -> int:
    """Memory mappings of this process (0 where /proc is absent)."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return 0


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Drops JAX's compiled programs once this worker holds many.

    Each compiled CPU program keeps about three memory mappings of machine code until its jit cache
    lets it go, and the module-level jits keep every shape and setting they saw. A test worker
    compiles thousands; near the end of a full run it passed Linux's vm.max_map_count (65530) and
    LLVM crashed in the next compile (SIGSEGV or SIGABRT in backend_compile_and_load).
    """
    yield
    if _mapped_regions() > 30_000:
        jax.clear_caches()


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits (the built-in copy) as NumPy arrays: x [1797, 64] in [0, 1], y [1797]."""
    import numpy as np

    import ffnn_jax

    x, y = ffnn_jax.load_digits()
    return np.asarray(x), np.asarray(y)


@pytest.fixture(scope="session")
def blobs():
    """Three standardized Gaussian blobs: X [90, 4], y [90] in {0, 1, 2} (the estimator tests' data)."""
    from sklearn.datasets import make_blobs
    from sklearn.preprocessing import StandardScaler

    X, y = make_blobs(n_samples=90, centers=3, n_features=4, random_state=0)
    return StandardScaler().fit_transform(X), y
