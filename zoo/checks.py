"""Argument checks shared by the zoo (errors that name the argument).

``zoo`` may use only ``bilevel``'s public API, so it keeps its own small copy of these checks.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any


def check_int(value: Any, name: str, *, low: int | None = None) -> int:
    """Return ``value`` if it is an int (not bool) >= ``low``, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_real(
    value: Any, name: str, *, low: float | None = None, low_open: bool = False, high: float | None = None
) -> float:
    """Return ``float(value)`` if it is a finite real number in the interval, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v}")
    return v


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return str(value)
