"""Property checks written once and reused by every public entry point's tests.

A new entry point gets the standard bad-input battery by listing its cases; for example::

    from tests.bilevel._asserts import BadInput, assert_rejects_all

    CASES = [
        BadInput("negative lr", lambda: PenaltyBGD([], [w], lr=-1.0), ValueError, "lr"),
        BadInput("empty params", lambda: PenaltyBGD([], [], lr=0.1), ValueError, "empty"),
    ]

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
    def test_rejects_bad_input(case):
        assert_rejects(case)

Each check asserts the library's contract for bad input: a ``TypeError`` or ``ValueError`` (never a NaN,
a silent no-op, or an unrelated exception from deep inside torch), whose message names the argument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
import torch


@dataclass(frozen=True)
class BadInput:
    """One bad call: ``call()`` must raise ``error`` with a message matching ``match`` (a regex)."""

    name: str
    call: Callable[[], Any]
    error: type[Exception] | tuple[type[Exception], ...] = (ValueError, TypeError)
    match: str = ""


def assert_rejects(case: BadInput) -> None:
    """``case.call()`` raises ``case.error`` and the message names what was wrong."""
    with pytest.raises(case.error) as info:
        case.call()
    message = str(info.value)
    assert message, f"{case.name}: the error has no message"
    if case.match:
        # a bare argument name must appear as a whole word: "tol" does not match "XXtolXX must be > 0"
        pattern = rf"(?<!\w){case.match}(?!\w)" if re.fullmatch(r"\w+", case.match) else case.match
        assert re.search(pattern, message), f"{case.name}: {message!r} does not match {pattern!r}"


def assert_rejects_all(cases: Iterable[BadInput]) -> None:
    """Every case is rejected (use parametrize for one test per case where the list is long)."""
    for case in cases:
        assert_rejects(case)


def assert_finite(value: Any, name: str = "result") -> None:
    """A result (tensor, float, or nested sequence of them) holds no NaN or inf."""
    if isinstance(value, torch.Tensor):
        assert bool(torch.isfinite(value).all()), f"{name} is not finite: {value}"
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            assert_finite(v, f"{name}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            assert_finite(v, f"{name}[{k!r}]")
    else:
        assert math.isfinite(float(value)), f"{name} is not finite: {value}"


def assert_params_unchanged(params: Iterable[torch.Tensor], before: Iterable[torch.Tensor]) -> None:
    """A rejected step left every parameter exactly as it was (a path against itself: bit-exact)."""
    for i, (p, b) in enumerate(zip(params, before, strict=True)):
        assert torch.equal(p.detach(), b), f"parameter {i} changed although the step was rejected"


def snapshot(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of the parameters, for ``assert_params_unchanged``."""
    return [p.detach().clone() for p in params]


def assert_python_float(value: Any, name: str = "result") -> None:
    """A scalar result is a plain Python float (not a 0-d array or tensor)."""
    assert type(value) is float, f"{name} must be a Python float, got {type(value).__name__}"


# Non-finite and overflow-prone values every numerical entry point should be probed with.
NON_FINITE = (float("nan"), float("inf"), -float("inf"))
