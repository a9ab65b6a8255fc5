"""Argument validation: errors that name the argument and what was expected.

Every `bilevel` optimizer checks its arguments with these functions; they are public so that code built on
the library (a training loop, a recipe, a new optimizer) rejects bad input with the same messages.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch
from torch import Tensor

__all__ = ["check_choice", "check_int", "check_loss", "check_ratio", "check_real"]


def check_loss(loss: Any, name: str) -> Tensor:
    """Return ``loss`` if it is a finite scalar tensor, else raise naming ``name``.

    Raises:
        TypeError: ``loss`` is not a tensor.
        ValueError: ``loss`` has more than one element or is NaN/inf.
    """
    if not isinstance(loss, Tensor):
        raise TypeError(f"{name} must return a scalar torch.Tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"{name} must return a scalar tensor, got shape {tuple(loss.shape)}")
    if not bool(torch.isfinite(loss.detach()).all()):
        raise ValueError(f"{name} returned a non-finite loss ({loss.detach().item()})")
    return loss.reshape(())


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``float(value)`` if it is a finite real number in the given interval, else raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {v}")
    return v


def check_ratio(value: Any, name: str) -> float:
    """Return ``value`` if it lies in (0, 1], else raise naming ``name``."""
    return check_real(value, name, low=0.0, high=1.0, low_open=True)


def check_int(value: Any, name: str, *, low: int | None = None) -> int:
    """Return ``value`` if it is an integer (not bool) >= ``low``, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return str(value)
