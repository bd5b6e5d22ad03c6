"""Compile time: JAX's persistent compilation cache, and quick compiles for the one-off set-up programs.

The cache is switched on for the CLI by default and for ``train()`` on request.

A second identical ``ffnn-jax train`` then loads its compiled programs from disk instead of
compiling them again. The folder is ``path``, else ``$FFNN_JAX_COMPILATION_CACHE``, else the
per-user cache (``$XDG_CACHE_HOME/ffnn_jax/jax`` or ``~/.cache/ffnn_jax/jax``); ``off`` (or ``0``,
``none``) disables it. A folder that cannot be used is a warning, never a failure. The folder is
kept under ``max_mb`` (1024 MB unless given; -1: no bound): once a day, a folder that holds more
loses its least recently used programs down to 80% of it.
"""

import functools
import os
import tempfile
import time
import warnings
from typing import Callable, Optional

import jax


_OFF = ("off", "0", "none", "false", "")


def default_cache_folder() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "ffnn_jax", "jax")


def enable_compilation_cache(path: Optional[str] = None, max_mb: float = 1024) -> Optional[str]:
    """Makes JAX keep every compiled program in ``path`` (see the module docstring for the default
    and for ``max_mb``, the folder's bound in MB).

    Call it before the first ``train()`` of a process. Returns the folder used, or None when the
    cache is off or the folder is unusable (a ``RuntimeWarning`` says why).
    """
    if not isinstance(max_mb, (int, float)) or isinstance(max_mb, bool) or not (max_mb > 0 or max_mb == -1):
        raise ValueError(f"`max_mb` must be a positive number of MB, or -1 for no bound; got {max_mb!r}")
    folder = path if path is not None else os.environ.get("FFNN_JAX_COMPILATION_CACHE", default_cache_folder())
    if folder.strip().lower() in _OFF:
        return None
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        warnings.warn(
            f"the compilation cache folder {folder!r} is not usable ({error.strerror or error}); compiling "
            "without it (set FFNN_JAX_COMPILATION_CACHE or --compilation_cache to another folder, or 'off')",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # small programs too: they add up
    _prune(folder, max_mb)
    return folder


_PRUNE_EVERY_S = 24 * 3600  # a folder is measured (and pruned) at most once a day
_PRUNED_MARK = ".ffnn_jax-pruned"


def _prune(folder: str, max_mb: float) -> None:
    """Deletes the least recently used programs of ``folder`` until it holds at most 80% of
    ``max_mb`` MB, when it holds more; at most once a day (a marker file's time), so a command
    start does not list a large folder each time.

    Done here rather than by JAX's own eviction (``jax_compilation_cache_max_size``), which lists
    and reads the whole folder on every write and fails on entries written without it (a folder
    used before, or by another JAX program).
    """
    mark = os.path.join(folder, _PRUNED_MARK)
    try:
        if max_mb == -1 or time.time() - os.stat(mark).st_mtime < _PRUNE_EVERY_S:
            return
    except OSError:  # no marker yet
        pass
    entries = []
    try:
        with os.scandir(folder) as listing:
            for entry in listing:
                if entry.name.endswith("-cache") and entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    entries.append((max(info.st_atime, info.st_mtime), info.st_size, entry.path))
        total = sum(size for _, size, _ in entries)
        if total > max_mb * 2**20:
            for _, size, path in sorted(entries):  # the least recently used first
                if total <= 0.8 * max_mb * 2**20:
                    break
                for name in (path, path[: -len("-cache")] + "-atime"):  # JAX's own eviction's time stamp too
                    try:
                        os.remove(name)
                    except FileNotFoundError:  # another process pruned it (or no stamp)
                        pass
                total -= size
        with open(mark, "w"):
            pass
    except OSError:  # a folder we may not prune is still a usable cache
        pass


# XLA:CPU options for programs that run once per call on small arrays (the weight draws, the
# optimizer's first state): LLVM's optimisation passes and the fusion emitters are most of their
# compile time and buy nothing measurable there. The weight draws of 784-128-10 compile in 0.09 s
# instead of 0.18 s (BENCHMARKS.md, "The first call and the set-up, again").
_QUICK_CPU_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def quick_jit(fun: Callable, **jit_kwargs) -> Callable:
    """``jax.jit(fun, **jit_kwargs)``, compiled with :data:`_QUICK_CPU_OPTIONS` on a CPU backend.

    For set-up programs only: the hot loop keeps XLA's full optimisation. On other backends, and
    with a jax or XLA that lacks these options, it is a plain ``jax.jit``. Floating-point results
    may differ from a fully optimised compile in the last bit (contracted multiply-adds), so every
    caller that must agree (``init_params`` and ``train()``'s first draws) goes through it.
    """
    plain = jax.jit(fun, **jit_kwargs)
    try:
        quick = jax.jit(fun, compiler_options=_QUICK_CPU_OPTIONS, **jit_kwargs)
    except TypeError:  # a jax without per-program compiler options
        return plain
    options_known = [True]  # set False once XLA rejects an option name (a newer XLA may drop one)

    @functools.wraps(fun)
    def call(*args, **kwargs):
        traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((args, kwargs)))
        if options_known[0] and not traced and jax.default_backend() == "cpu":  # options: top-level jits only
            try:
                return quick(*args, **kwargs)
            except RuntimeError as error:  # XLA's runtime errors are RuntimeErrors
                if "compile option" not in str(error):
                    raise
                options_known[0] = False
        return plain(*args, **kwargs)

    return call
