"""The CLI's pictures (loss curve, confusion matrix), drawn beside the training in a second process.

Importing matplotlib and drawing two PNGs costs about half a second, a quarter of a short
``ffnn-jax train`` run. :class:`PlotWorker` starts this file as a plain script (NumPy and
matplotlib only: it never imports ffnn_jax, so it does not import JAX) when the command starts;
the child imports matplotlib on the other core while this process trains, then draws each picture
as soon as it is sent (one JSON line each), while this process writes its other files. The command
waits for it, so every picture exists when the command returns. Without a worker (it could not
start, or failed) the same functions draw in this process.
"""

import json
import os
import subprocess
import sys
from typing import List, Optional, Sequence


def plot_losses(path: str, history: dict) -> None:
    """Train (and validation) loss per epoch on a log scale, written atomically to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for key in ("train_loss", "val_loss"):
        if key in history:
            ax.plot(history["epoch"], history[key], label=key.replace("_", " "))
    ax.set(xlabel="epoch", ylabel="loss", yscale="log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(path: str, labels: Sequence[str], matrix) -> None:
    """The confusion matrix [k, k] (rows: true class), shaded by the share of each true class."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix)
    k = len(labels)
    fig = Figure(figsize=(max(5, 0.55 * k + 2), max(4, 0.5 * k + 1.5)))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    accuracy = matrix.trace() / max(matrix.sum(), 1)
    ax.set(xlabel="predicted", ylabel="true", title=f"test set confusion matrix (accuracy {accuracy:.4f})")
    fig.colorbar(image, ax=ax, label="share of the true class")
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str) -> None:
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), ".tmp-" + os.path.basename(path))
    fig.savefig(tmp, dpi=120, format="png")
    os.replace(tmp, path)


_DRAW = {"losses": plot_losses, "confusion": plot_confusion}


def draw(jobs: List[dict]) -> None:
    """Each job ``{"kind": "losses" | "confusion", "path": ..., **arguments}``."""
    for job in jobs:
        job = dict(job)
        _DRAW[job.pop("kind")](**job)


def have_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


class PlotWorker:
    """A child process that imports matplotlib now and draws each job :meth:`send` gives it."""

    def __init__(self):
        self._process: Optional[subprocess.Popen] = None
        self._sent: List[dict] = []
        try:
            self._process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
        except OSError:
            self._process = None

    def send(self, job: dict) -> None:
        """Queues one picture (``{"kind": ..., "path": ..., **arguments}``); the child starts on it at once."""
        self._sent.append(job)
        if self._process is not None:
            try:
                self._process.stdin.write(json.dumps(job) + "\n")
                self._process.stdin.flush()
            except OSError:  # the child is gone: finish() draws here
                pass

    def finish(self, timeout_s: float = 120.0) -> None:
        """Returns once every picture sent is written (drawn here if the child failed or never started)."""
        process, self._process = self._process, None
        if process is not None:
            try:
                process.communicate(timeout=timeout_s)
                if process.returncode == 0:
                    return
            except (OSError, ValueError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
        draw(self._sent)  # here, where an error is the user's to see

    def close(self) -> None:
        """Stops the child without drawing (the command ended before it had pictures to draw)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def _serve() -> int:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    warm = Figure(figsize=(1, 1))  # fonts and the renderer load now too, while the parent trains
    FigureCanvasAgg(warm)
    warm.subplots().set_title("warm-up")
    warm.canvas.draw()
    for line in sys.stdin:
        if line.strip():
            draw([json.loads(line)])
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
