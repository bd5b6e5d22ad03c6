"""JAX's persistent compilation cache, switched on for the CLI by default and for ``train()`` on request.

A second identical ``ffnn-jax train`` then loads its compiled programs from disk instead of
compiling them again. The folder is ``path``, else ``$FFNN_JAX_COMPILATION_CACHE``, else the
per-user cache (``$XDG_CACHE_HOME/ffnn_jax/jax`` or ``~/.cache/ffnn_jax/jax``); ``off`` (or ``0``,
``none``) disables it. A folder that cannot be used is a warning, never a failure.
"""

import os
import tempfile
import warnings
from typing import Optional

import jax


_OFF = ("off", "0", "none", "false", "")


def default_cache_folder() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "ffnn_jax", "jax")


def enable_compilation_cache(path: Optional[str] = None) -> Optional[str]:
    """Makes JAX keep every compiled program in ``path`` (see the module docstring for the default).

    Call it before the first ``train()`` of a process. Returns the folder used, or None when the
    cache is off or the folder is unusable (a ``RuntimeWarning`` says why).
    """
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
    return folder
