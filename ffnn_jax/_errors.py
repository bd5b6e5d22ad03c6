"""Shared argument checks: every user-facing check raises before anything is traced or compiled."""

import os
import sys
from numbers import Integral, Real
from typing import Any, Iterable, Optional


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` in the caller that names the first line outside
    ffnn_jax: the user's call, however deep the package's own calls go (``train()``, ``sweep()``,
    ``train(ensemble=k)``)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Returns ``value`` lower-cased if it names one of ``choices``, else raises ``ValueError``."""
    choices = sorted(choices)
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}")
    return value.lower()


def check_positive_int(name: str, value: Any, *, allow_none: bool = False) -> Optional[int]:
    """Returns ``value`` as an int if it is a positive integer (not a bool)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        expected = "a positive integer" + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {expected}, got {value!r}")
    return int(value)


def check_non_negative_int(name: str, value: Any) -> int:
    """Returns ``value`` as an int if it is an integer >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}")
    return int(value)


def check_real(
    name: str,
    value: Any,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Returns ``value`` as a float if it is a finite real number within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, Real) or value != value or abs(value) == float("inf"):
        raise ValueError(f"`{name}` must be a finite real number, got {value!r}")
    value = float(value)
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"`{name}` must be in {interval}, got {value!r}")
    return value
