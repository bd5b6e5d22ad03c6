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


_FILL = """
import sys, warnings, numpy as np
import ffnn_jax
warnings.simplefilter("error")  # a cache write that fails warns: fail instead
ffnn_jax.enable_compilation_cache(sys.argv[1], max_mb=float(sys.argv[2]))
rng = np.random.default_rng(0)
for width in sys.argv[3:]:  # a structure each: a few programs each
    ffnn_jax.train(rng.normal(size=(64, 5)).astype(np.float32), rng.integers(0, 3, 64), hidden_sizes=(int(width),),
                   epochs=1)
"""


def test_a_cache_folder_over_its_bound_loses_its_least_recently_used_programs_once_a_day(tmp_path):
    folder = tmp_path / "cache"

    def fill(max_mb: str, *widths: int):
        done = subprocess.run([sys.executable, "-c", _FILL, str(folder), max_mb, *map(str, widths)],
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr

    def programs() -> dict:
        return {p.name: p.stat().st_size for p in folder.iterdir() if p.name.endswith("-cache")}

    fill("-1", 5, 6, 7, 8)  # no bound: every program kept
    before = programs()
    assert len(before) >= 8
    for age, name in enumerate(sorted(before)):  # distinct times of last use, oldest first in name order
        os.utime(folder / name, (1e9 + age, 1e9 + age))
    bound = sum(before.values()) / 2
    fill(str(bound / 2**20))  # over the bound: pruned to 80% of it as the cache is switched on
    kept = sorted(programs())
    assert kept and kept == sorted(before)[-len(kept) :]  # the most recently used survive
    assert sum(before[name] for name in kept) <= 0.8 * bound
    fill(str(bound / 2**20), 9)  # the pruned folder takes new programs, with no warning
    after = programs()
    assert set(after) - set(before)
    fill(str(bound / 2**20 / 100))  # pruned today already: not measured again until tomorrow
    assert programs() == after
    with pytest.raises(ValueError, match="`max_mb` must be a positive number of MB, or -1"):
        import ffnn_jax

        ffnn_jax.enable_compilation_cache(str(tmp_path / "x"), max_mb=0)
