"""A gradient check: ``jax.grad(loss)``, hand-written :func:`backprop` and central finite differences, side by side.

:func:`check_gradients` computes the three in float64 when jax can run float64 (inside a scoped x64 switch, so the
caller's float32 defaults are untouched), and returns a :class:`GradientReport`: for every leaf (layer i, W or b) the
largest absolute and relative difference of backprop and of finite differences from ``jax.grad``, an overall verdict
and the tolerances used. A NaN or inf anywhere (params, batch, loss, any of the three gradients) fails the check, and
the report says where. ``print(report)`` shows an aligned table.
"""

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _losses
from ._backprop import activation_and_derivative, backprop
from ._errors import check_non_negative_int, check_positive_int, check_real
from ._model import resolve_activation
from ._params import check_params, count_params, ravel
from ._types import Activation, Array, Batch, Params


# Bound on (elements per vmapped finite-difference chunk) × |θ|: each element carries its own perturbed copy of θ.
_CHUNK_ELEMENTS = 1 << 22


class LeafCheck(NamedTuple):
    """The differences from ``jax.grad`` on one leaf of θ."""

    layer: int  # the lecture's i in W_i, b_i (1-based)
    name: str  # "W" or "b"
    shape: tuple[int, ...]
    checked: int  # elements compared by finite differences (all of them unless the network is large)
    grad_max: float  # max |∂L/∂θ| over the leaf, from jax.grad
    backprop_abs: float  # max |backprop − jax.grad| over the leaf
    backprop_rel: float  # backprop_abs / (the larger of max |backprop| and max |jax.grad|); 0 when both are 0
    fd_abs: float  # max |finite difference − jax.grad| over the checked elements
    fd_rel: float  # fd_abs relative to the larger of the two on those elements, as backprop_rel
    passed: bool  # within tolerance and all finite
    non_finite: tuple[str, ...] = ()  # which of "params", "jax.grad", "backprop", "finite differences" hold NaN/inf


class GradientReport(NamedTuple):
    """The result of :func:`check_gradients`; ``str(report)`` is a table for printing."""

    leaves: tuple[LeafCheck, ...]
    passed: bool  # every leaf within rtol (relative) or atol (absolute) for both comparisons, and nothing non-finite
    dtype: str  # the dtype the three gradients were computed in
    rtol: float
    atol: float  # the rounding floor of a central difference, 10 ε max(1, |L|) / eps
    eps: float  # the finite-difference step
    loss_value: float
    notes: tuple[str, ...]  # float64 unavailable, subsampled elements, ...
    non_finite: tuple[str, ...] = ()  # where NaN/inf were found ("the loss is NaN", "layer 1 W: params 1 NaN of 20")

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        header = ("layer", "param", "shape", "checked", "max|grad|", "backprop abs", "backprop rel", "FD abs", "FD rel")
        header += ("verdict",)
        rows = [header] + [
            (
                str(leaf.layer),
                leaf.name,
                "x".join(map(str, leaf.shape)),
                f"{leaf.checked}/{math.prod(leaf.shape)}",
                f"{leaf.grad_max:.3e}",
                f"{leaf.backprop_abs:.2e}",
                f"{leaf.backprop_rel:.2e}",
                f"{leaf.fd_abs:.2e}",
                f"{leaf.fd_rel:.2e}",
                "ok" if leaf.passed else "FAIL",
            )
            for leaf in self.leaves
        ]
        widths = [max(len(row[j]) for row in rows) for j in range(len(header))]
        title = (
            f"Gradient check {verdict}: jax.grad vs backprop vs central differences, {self.dtype}, "
            f"L = {self.loss_value:.6g}, eps = {self.eps:.3g}, rtol = {self.rtol:.3g}, atol = {self.atol:.3g}"
        )
        lines = [title] + ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
        lines += [f"non-finite: {where}" for where in self.non_finite]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


@contextlib.contextmanager
def x64_scope() -> Iterator[None]:
    """Enables float64 inside the block (``jax_enable_x64``) and restores the previous setting after it.

    Uses ``jax.enable_x64`` where it exists, ``jax.experimental.enable_x64`` on older jax, and otherwise a
    ``jax.config.update`` undone on exit.
    """
    scope = getattr(jax, "enable_x64", None)
    if scope is None:
        try:
            from jax.experimental import enable_x64 as scope
        except ImportError:
            scope = None
    if scope is not None:
        with scope(True):
            yield
        return
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def _float64_unavailable() -> str | None:
    """None if float64 arrays can be made and computed with on the default backend, else the reason.

    A backend without float64 can fail in many ways (at tracing, compiling or running): each means "unavailable".
    """
    try:
        with x64_scope():
            value = jnp.ones((), jnp.float64) * 3
            value.block_until_ready()
            if value.dtype != jnp.float64:
                return f"float64 arrays come out as {value.dtype}"
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _cast_floating(tree, dtype):
    return jax.tree_util.tree_map(
        lambda leaf: jnp.asarray(leaf, dtype) if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating) else leaf, tree
    )


def _difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max |a − b|, that relative to the larger of max |a| and max |b|; 0 when all are 0, NaN when any is NaN)."""
    largest_abs = float(np.max(np.abs(a - b)))
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    return largest_abs, (largest_abs / scale if scale > 0 else (0.0 if largest_abs == 0 else math.nan))


def _count_non_finite(values, *, checked: bool = False) -> str | None:
    """None if every entry of ``values`` is finite, else e.g. ``"2 NaN, 1 inf of 20"``."""
    values = np.asarray(values)
    nan, inf = int(np.count_nonzero(np.isnan(values))), int(np.count_nonzero(np.isinf(values)))
    if nan == inf == 0:
        return None
    counts = ", ".join(f"{count} {kind}" for count, kind in ((nan, "NaN"), (inf, "inf")) if count)
    return f"{counts} of {values.size}" + (" checked" if checked else "")


def _scalar_name(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:g}"


def _check_batch(batch) -> None:
    """Raises ``ValueError`` unless ``batch`` is ``(x, y)`` with x ``[N, n_in]``, N ≥ 1 and N rows of y."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(f"`batch` must be a pair (x, y), got {type(batch).__name__}")
    x_shape, y_shape = np.shape(batch[0]), np.shape(batch[1])
    if len(x_shape) != 2 or len(y_shape) < 1:
        raise ValueError(f"`batch` must be x [N, n_in] and y [N] or [N, k], got shapes {x_shape} and {y_shape}")
    if x_shape[0] == 0:
        raise ValueError(
            f"`batch` must have at least one row, got x of shape {x_shape} (a mean loss over 0 rows is NaN)"
        )
    if y_shape[0] != x_shape[0]:
        raise ValueError(f"`batch` x and y must have the same number of rows, got shapes {x_shape} and {y_shape}")


_STATIC = ("gradient_fn", "activation", "loss", "classification")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _gradients(params, batch, weight_decay, indices, eps, *, gradient_fn, **static):
    """L, jax.grad(loss), gradient_fn and the central differences at flat indices ``[chunks, chunk]`` of θ.

    One compiled program per network shape and settings; the differences are a ``lax.map`` over chunks of a
    ``vmap`` over the elements of a chunk (each element carries its own perturbed copy of θ).
    """
    objective = functools.partial(_losses.loss, batch=batch, weight_decay=weight_decay, **static)
    value, reference = jax.value_and_grad(objective)(params)
    theta, unravel = ravel(params)

    def central_difference(k):
        step = jnp.zeros_like(theta).at[k].set(eps)
        return (objective(unravel(theta + step)) - objective(unravel(theta - step))) / (2 * eps)

    differences = jax.lax.map(jax.vmap(central_difference), indices)
    return value, reference, gradient_fn(params, batch, weight_decay=weight_decay, **static), differences


def _compare(params, batch, *, gradient_fn, rtol, eps, full_check_limit, samples_per_leaf, seed, **loss_kwargs):
    """Builds the report in the dtype of ``params`` (float64 when the caller enabled it)."""
    weight_decay = loss_kwargs.pop("weight_decay")
    theta, _ = ravel(params)
    dtype = theta.dtype
    eps = float(eps if eps is not None else np.finfo(dtype).eps ** (1 / 3))
    rtol = float(rtol if rtol is not None else (1e-6 if dtype == np.float64 else 1e-2))
    subsample = count_params(params) > full_check_limit

    # Each leaf's checked positions in θ, in ravel's order W_1, b_1, ..., W_L, b_L.
    rng = np.random.default_rng(seed)
    sizes = [leaf.size for leaf in jax.tree_util.tree_leaves(params)]
    offsets = np.cumsum([0] + sizes[:-1])
    picks = [np.sort(rng.choice(n, min(n, samples_per_leaf), False)) if subsample else np.arange(n) for n in sizes]
    indices = np.concatenate([offset + pick for offset, pick in zip(offsets, picks)])
    chunk = int(np.clip(_CHUNK_ELEMENTS // theta.size, 1, 256))
    chunks = np.pad(indices, (0, -len(indices) % chunk)).reshape(-1, chunk)

    loss_value, reference, by_hand, fd = _gradients(
        params, batch, weight_decay, chunks, eps, gradient_fn=gradient_fn, **loss_kwargs
    )
    loss_value = float(loss_value)
    loss_scale = abs(loss_value) if math.isfinite(loss_value) else 1.0  # an inf loss must not make atol inf
    atol = 10 * float(np.finfo(dtype).eps) * max(1.0, loss_scale) / eps
    flat_reference = np.asarray(ravel(reference)[0])
    fd_by_leaf = np.split(np.asarray(fd).reshape(-1)[: len(indices)], np.cumsum([len(pick) for pick in picks])[:-1])

    non_finite = [] if math.isfinite(loss_value) else [f"the loss is {_scalar_name(loss_value)}"]
    for part, values in zip(("x", "y"), batch):
        if jnp.issubdtype(jnp.asarray(values).dtype, jnp.inexact):
            found = _count_non_finite(values)
            non_finite += [f"the batch's {part}: {found}"] if found else []
    names = [(i + 1, name) for i in range(len(params)) for name in ("W", "b")]
    leaves = zip(
        names,
        jax.tree_util.tree_leaves(params),
        jax.tree_util.tree_leaves(reference),
        jax.tree_util.tree_leaves(by_hand),
        fd_by_leaf,
    )
    rows = []
    for ((layer, name), value, grad, hand, fd_leaf), offset, pick in zip(leaves, offsets, picks):
        backprop_abs, backprop_rel = _difference(np.asarray(hand).ravel(), np.asarray(grad).ravel())
        fd_abs, fd_rel = _difference(fd_leaf, flat_reference[offset + pick])
        sources = {"params": value, "jax.grad": grad, "backprop": hand, "finite differences": fd_leaf}
        found = {what: _count_non_finite(v, checked=what == "finite differences") for what, v in sources.items()}
        found = {what: counts for what, counts in found.items() if counts}
        if found:
            non_finite.append(
                f"layer {layer} {name}: " + "; ".join(f"{what} {counts}" for what, counts in found.items())
            )
        within = (backprop_rel <= rtol or backprop_abs <= atol) and (fd_rel <= rtol or fd_abs <= atol)
        grad_max = float(np.max(np.abs(grad)))
        rows.append(
            LeafCheck(
                layer,
                name,
                tuple(grad.shape),
                len(pick),
                grad_max,
                backprop_abs,
                backprop_rel,
                fd_abs,
                fd_rel,
                within and not found,
                tuple(found),
            )
        )
    notes = ()
    if subsample:
        note = (
            f"{count_params(params)} parameters > full_check_limit = {full_check_limit}: finite differences on a "
            f"random subset of at most {samples_per_leaf} elements per leaf (seed {seed}); backprop on all elements"
        )
        notes = (note,)
    passed = all(row.passed for row in rows) and not non_finite
    return GradientReport(tuple(rows), passed, str(dtype), rtol, atol, eps, loss_value, notes, tuple(non_finite))


def check_gradients(
    params: Params,
    batch: Batch,
    *,
    activation: Activation = "relu",
    loss: str = "cross_entropy",
    weight_decay: float | Array = 0.0,
    classification: bool | None = None,
    rtol: float | None = None,
    eps: float | None = None,
    full_check_limit: int = 20_000,
    samples_per_leaf: int = 100,
    seed: int = 0,
    gradient_fn: Callable[..., Params] | None = None,
) -> GradientReport:
    """Compares ``jax.grad(loss)``, :func:`backprop` and central finite differences of ``loss``, leaf by leaf.

    The three are computed in float64 (params and float inputs are cast inside a scoped x64 switch) when the backend
    can, otherwise in the dtype of ``params`` with a note in the report. A leaf passes when each of backprop and
    finite differences is within ``rtol`` of ``jax.grad`` relative to the leaf's largest entry, or within
    ``atol = 10 ε max(1, |L|) / eps`` in absolute terms (the rounding error of a central difference, which
    matters for leaves whose gradient is 0 or nearly so).

    A NaN or inf in ``params``, the batch, the loss, ``jax.grad``, the hand-written gradient or the finite
    differences fails the check; ``report.non_finite`` (printed below the table) says where.

    Args:
      params: network parameters.
      batch: ``(x, y)`` as for :func:`ffnn_jax._losses.loss`.
      activation: hidden activation with a hand-written derivative (see :mod:`ffnn_jax._backprop`).
      loss: loss name or alias.
      weight_decay: λ ≥ 0.
      classification: as for ``loss``.
      rtol: relative tolerance; 1e-6 in float64, 1e-2 in float32 when None.
      eps: finite-difference step, the same for every element; ε^(1/3) of the dtype when None
        (6.1e-6 in float64, 4.9e-3 in float32).
      full_check_limit: networks with more parameters get finite differences on a random subset of each leaf.
      samples_per_leaf: the subset's size per leaf.
      seed: the subset's seed (NumPy), so a report can be reproduced.
      gradient_fn: the hand-written gradient to check, called like :func:`backprop` (which it is when None); pass
        your own to check it, or a deliberately wrong one to see the check fail.

    Returns:
      A :class:`GradientReport`; ``report.passed`` is the verdict and ``print(report)`` shows the table.

    Raises:
      ValueError: unknown ``loss`` or ``activation``, a tolerance, step or count out of range, or a ``batch``
        that is not ``(x [N, n_in], y)`` with N ≥ 1 rows in both.

    Examples:
      >>> params = init_params(jax.random.key(0), [4, 3, 2])
      >>> x, y = jax.random.normal(jax.random.key(1), (5, 4)), jnp.array([0, 1, 1, 0, 1])
      >>> check_gradients(params, (x, y), activation="tanh").passed
      True
    """
    check_params(params)
    _losses.canonical_loss(loss)
    _check_batch(batch)
    if gradient_fn is None:
        activation_and_derivative(activation)  # backprop's own check, raised here before any tracing
        gradient_fn = backprop
    else:
        resolve_activation(activation)
    for name, value in (("rtol", rtol), ("eps", eps)):
        if value is not None:
            check_real(name, value, low=0.0, low_inclusive=False)
    options = {
        "gradient_fn": gradient_fn,
        "rtol": rtol,
        "eps": eps,
        "full_check_limit": check_positive_int("full_check_limit", full_check_limit),
        "samples_per_leaf": check_positive_int("samples_per_leaf", samples_per_leaf),
        "seed": check_non_negative_int("seed", seed),
        "activation": activation,
        "loss": loss,
        "weight_decay": weight_decay,
        "classification": classification,
    }
    reason = _float64_unavailable()
    if reason is not None:
        report = _compare(params, batch, **options)
        note = f"float64 is not available here ({reason}); the check ran in {report.dtype} with looser tolerances"
        return report._replace(notes=(note,) + report.notes)
    with x64_scope():
        return _compare(_cast_floating(params, jnp.float64), _cast_floating(batch, jnp.float64), **options)
