"""The CLI's persistent compilation cache: a second identical run compiles nothing; a bad folder only warns."""

import os
import subprocess
import sys

import pytest


pytestmark = pytest.mark.slow

_COUNT_COMPILES = """
import sys, jax
from ffnn_jax import cli
events = []  # the backend-compile event also wraps cache hits: count requests that were not hits
jax.monitoring.register_event_listener(lambda name, *a, **k: events.append(name))
status = cli.main(sys.argv[1:])
hits = events.count("/jax/compilation_cache/cache_hits")
requests = events.count("/jax/compilation_cache/compile_requests_use_cache")
print("COMPILES", requests - hits if requests else -1)
sys.exit(status)
"""


def _train(tmp_path, out: str, cache: str):
    env = {**os.environ, "FFNN_JAX_COMPILATION_CACHE": cache}
    argv = ["train", "-e", "2", "-sz", "16", "--no_progress", "--no_plot", "--out", str(tmp_path / out)]
    done = subprocess.run([sys.executable, "-c", _COUNT_COMPILES, *argv], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split("COMPILES")[-1]), done.stderr


def test_a_second_identical_run_compiles_nothing(tmp_path):
    cache = str(tmp_path / "cache")
    first, _ = _train(tmp_path, "a", cache)
    second, stderr = _train(tmp_path, "b", cache)
    assert first > 0 and second == 0, stderr
    assert os.listdir(cache)


def test_off_writes_no_cache(tmp_path):
    compiles, _ = _train(tmp_path, "a", "off")
    assert compiles > 0 and not (tmp_path / "cache").exists()


def test_an_unusable_or_corrupt_cache_is_a_one_line_warning_never_a_failure(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    _, stderr = _train(tmp_path, "a", str(blocker / "sub"))
    assert "ffnn-jax: warning: the compilation cache folder" in stderr and "Traceback" not in stderr
    cache = tmp_path / "cache"
    _train(tmp_path, "b", str(cache))
    for entry in cache.iterdir():
        if entry.is_file():
            entry.write_bytes(b"garbage")
    compiles, stderr = _train(tmp_path, "c", str(cache))
    assert compiles > 0  # compiled again
    assert stderr.count("ffnn-jax: warning: some entries of the compilation cache") == 1


_LOG_COMPILES = """
import logging, numpy as np, jax
names = []
class Names(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("Compiling "):
            names.append(record.getMessage().split()[1])
logging.getLogger("jax._src.interpreters.pxla").addHandler(Names())
jax.config.update("jax_log_compiles", True)
import ffnn_jax
rng = np.random.default_rng(0)
ffnn_jax.train(rng.normal(size=(64, 5)).astype(np.float32), rng.integers(0, 3, 64), hidden_sizes=(7,),
               optimizer="adam", epochs=2, batch_size=16)
print("COMPILED", " ".join(names))
"""


def test_the_first_train_call_compiles_the_draws_the_optimizer_state_and_the_epochs_only():
    # Each eager jnp.asarray / jnp.zeros would be a program of its own (about 8 ms to compile each).
    done = subprocess.run([sys.executable, "-c", _LOG_COMPILES], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    compiled = done.stdout.split("COMPILED")[-1].split()
    assert sorted(compiled) == ["jit(_init_state)", "jit(_run_epochs)", "jit(first_draws)"], compiled


_BOUNDED = """
import os, sys, numpy as np
import ffnn_jax
folder = ffnn_jax.enable_compilation_cache(sys.argv[1], max_mb=float(sys.argv[2]))
rng = np.random.default_rng(0)
for width in (5, 6, 7, 8):  # four structures: a dozen programs
    ffnn_jax.train(rng.normal(size=(64, 5)).astype(np.float32), rng.integers(0, 3, 64), hidden_sizes=(width,), epochs=1)
sizes = [os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder) if n.endswith("-cache")]
print("CACHE", len(sizes), sum(sizes), max(sizes))
"""


def test_the_cache_folder_is_kept_under_its_bound_by_dropping_the_least_recently_used(tmp_path):
    def fill(folder: str, max_mb: str):
        done = subprocess.run([sys.executable, "-c", _BOUNDED, folder, max_mb], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return [int(v) for v in done.stdout.split("CACHE")[-1].split()]

    count, total, largest = fill(str(tmp_path / "free"), "-1")
    assert count >= 8  # every program kept
    bound = 2 * largest  # room for two of them
    kept, kept_bytes, _ = fill(str(tmp_path / "bounded"), str(bound / 2**20))
    assert 0 < kept < count and kept_bytes <= bound
    with pytest.raises(ValueError, match="`max_mb` must be a positive number of MB, or -1"):
        import ffnn_jax

        ffnn_jax.enable_compilation_cache(str(tmp_path / "x"), max_mb=0)
