"""Argument contract of the functional PBGD core (`bilevel.penalty.functional`), from its docstrings.

Every closure's result is checked: a non-scalar or non-tensor loss and, by default (``check_finite=True``),
a NaN/inf loss are refused with an error naming the closure (``lower_loss``/``upper_loss``, whole word,
case-sensitive); ``check_finite=False`` leaves the check to the caller. Omitted arguments behave as their
documented defaults (``loss_scale=1.0``, ``check_finite=True``, ``penalty="value"``, ``scale=1.0``).
``loss_scale`` multiplies the loss and divides the gradient (same step), and with a ``loss_scale`` a step
whose gradient is not finite is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import torch

from bilevel.penalty import inner_steps_, penalty_grads, step_scale, value_estimate, value_function
from tests.bilevel._asserts import BadInput, assert_finite, assert_rejects

D = torch.float64
NAN = float("nan")


def problem() -> tuple[torch.Tensor, torch.Tensor, Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    """f = ½‖y − 1‖² + ½‖x‖², g = ½‖y − 2x‖² + ½‖x‖² on small float64 leaves."""
    x = torch.tensor([0.5, -1.0], dtype=D, requires_grad=True)
    y = torch.tensor([1.5, 0.25], dtype=D, requires_grad=True)

    def f() -> torch.Tensor:
        return 0.5 * (y - 1).pow(2).sum() + 0.5 * x.pow(2).sum()

    def g() -> torch.Tensor:
        return 0.5 * (y - 2 * x).pow(2).sum() + 0.5 * x.pow(2).sum()

    return x, y, f, g


def omega_like(y: torch.Tensor) -> list[torch.Tensor]:
    return [y.detach().clone() + 0.125]


# --------------------------------------------------------------------------------- step_scale
@pytest.mark.parametrize("gamma", [-1e-9, -1.0, NAN, math.inf])
def test_step_scale_rejects_bad_gamma(gamma: float) -> None:
    assert_rejects(BadInput(f"gamma={gamma}", lambda: step_scale(gamma), match="gamma"))


@pytest.mark.parametrize(("gamma", "expected"), [(0.0, 1.0), (1.0, 1.0), (2.0, 0.5), (1e6, 1e-6)])
def test_step_scale_is_min_one_inverse_gamma(gamma: float, expected: float) -> None:
    assert step_scale(gamma) == pytest.approx(expected, rel=1e-15, abs=0)


# ---------------------------------------------------------------- closures returning bad values
# bad results a closure can return, each built from a loss that does depend on the parameters
BAD_KINDS = {"nan": ValueError, "inf": ValueError, "vector": ValueError, "float": TypeError}


def spoil(kind: str, loss: Callable[[], torch.Tensor]) -> Callable[[], object]:
    if kind == "nan":
        return lambda: loss() * NAN
    if kind == "inf":
        return lambda: loss() + math.inf
    if kind == "vector":
        return lambda: loss() * torch.ones(2, dtype=D)
    if kind == "float":
        return lambda: float(loss().detach())
    assert kind == "ok"
    return loss


def call_with_lower(entry: str, kind: str, **kw: object) -> object:
    """``entry`` called with the lower loss g spoilt as ``kind`` says."""
    x, y, f, g = problem()
    om = omega_like(y)
    lower_loss = spoil(kind, g)
    if entry == "inner_steps_":
        return inner_steps_(om, [y], lower_loss, steps=1, lr=0.1, **kw)  # type: ignore[arg-type]
    if entry == "value_function":
        return value_function([x], [y], lower_loss, om, **kw)  # type: ignore[arg-type]
    if entry == "value_function(no upper)":
        return value_function([], [y], lower_loss, om, **kw)  # type: ignore[arg-type]
    if entry == "value_estimate":
        return value_estimate([x], [y], lower_loss, om, **kw)  # type: ignore[arg-type]
    if entry == "value_estimate(no upper)":
        return value_estimate([], [y], lower_loss, om, **kw)  # type: ignore[arg-type]
    if entry == "penalty_grads":
        return penalty_grads([x], [y], f, lower_loss, 1.0, **kw)  # type: ignore[arg-type]
    if entry == "penalty_grads(gradient)":
        return penalty_grads([x], [y], f, lower_loss, 1.0, penalty="gradient", **kw)  # type: ignore[arg-type]
    raise AssertionError(entry)


LOWER_ENTRIES = [
    "inner_steps_",
    "value_function",
    "value_function(no upper)",
    "value_estimate",
    "value_estimate(no upper)",
    "penalty_grads",
    "penalty_grads(gradient)",
]


@pytest.mark.parametrize("entry", LOWER_ENTRIES)
@pytest.mark.parametrize("kind", list(BAD_KINDS))
def test_bad_lower_loss_is_refused_by_default(entry: str, kind: str) -> None:
    error = BAD_KINDS[kind]
    assert_rejects(BadInput(f"{entry}/{kind}", partial(call_with_lower, entry, kind), error, "lower_loss"))
    # check_finite=True is the default
    assert_rejects(
        BadInput(
            f"{entry}/{kind}", partial(call_with_lower, entry, kind, check_finite=True), error, "lower_loss"
        )
    )


@pytest.mark.parametrize("entry", LOWER_ENTRIES)
@pytest.mark.parametrize("kind", ["vector", "float"])
def test_shape_and_type_are_checked_even_without_check_finite(entry: str, kind: str) -> None:
    call = partial(call_with_lower, entry, kind, check_finite=False)
    assert_rejects(BadInput(f"{entry}/{kind}", call, BAD_KINDS[kind], "lower_loss"))


@pytest.mark.parametrize("entry", LOWER_ENTRIES)
def test_check_finite_false_leaves_nan_to_the_caller(entry: str) -> None:
    call_with_lower(entry, "nan", check_finite=False)  # no error
    call_with_lower(entry, "ok")


@pytest.mark.parametrize("kind", list(BAD_KINDS))
@pytest.mark.parametrize("penalty", ["value", "gradient"])
def test_bad_upper_loss_is_refused_by_default(kind: str, penalty: str) -> None:
    x, y, f, g = problem()
    call = partial(penalty_grads, [x], [y], spoil(kind, f), g, 1.0, penalty=penalty)  # type: ignore[arg-type]
    assert_rejects(BadInput(kind, call, BAD_KINDS[kind], "upper_loss"))


@pytest.mark.parametrize("penalty", ["Value", "", "values", None])
def test_penalty_grads_rejects_unknown_penalty(penalty: Any) -> None:
    x, y, f, g = problem()
    assert_rejects(
        BadInput(
            repr(penalty), lambda: penalty_grads([x], [y], f, g, 1.0, penalty=penalty), ValueError, "penalty"
        )
    )


def test_lower_loss_independent_of_the_lower_parameters_is_refused() -> None:
    """Documented: a ``lower_loss`` that does not depend on the lower parameters raises a ValueError."""
    x, y, _, _ = problem()
    assert_rejects(
        BadInput(
            "constant lower_loss",
            lambda: inner_steps_(omega_like(y), [y], lambda: x.pow(2).sum(), steps=1, lr=0.1),
            ValueError,
            "lower_loss",
        )
    )


# ---------------------------------------------------------------------------- results and defaults
def test_value_function_without_upper_parameters_is_g_at_omega() -> None:
    x, y, _, g = problem()
    om = omega_like(y)
    with torch.no_grad():
        y0 = y.detach().clone()
        y.copy_(om[0])
        expected = g().detach()
        y.copy_(y0)
    v, vg = value_function([], [y], g, om)
    assert vg == []
    assert not v.requires_grad
    torch.testing.assert_close(v, expected, rtol=0, atol=0)
    ve = value_estimate([], [y], g, om)
    assert not ve.requires_grad
    torch.testing.assert_close(ve, expected, rtol=0, atol=0)
    v_up, _ = value_function([x], [y], g, om)
    torch.testing.assert_close(v_up, expected, rtol=0, atol=0)
    torch.testing.assert_close(value_estimate([x], [y], g, om).detach(), expected, rtol=0, atol=0)
    assert torch.equal(y.detach(), y0)


def _run_inner(
    lower_loss_of: Callable[[torch.Tensor], torch.Tensor], start: float, steps: int = 3, **kw: object
) -> tuple[int, torch.Tensor]:
    y = torch.tensor([start], dtype=D, requires_grad=True)
    om = [y.detach().clone()]
    skipped = inner_steps_(om, [y], lambda: lower_loss_of(y), steps=steps, lr=0.25, **kw)  # type: ignore[arg-type]
    return skipped, om[0]


def _sqrt_loss(y: torch.Tensor) -> torch.Tensor:
    return y.abs().sqrt().sum()  # finite value 0 at y = 0, infinite gradient there


def _quadratic(y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (y - 3.0).pow(2).sum()


@pytest.mark.parametrize("loss", [_quadratic, _sqrt_loss], ids=lambda f: f.__name__)
@pytest.mark.parametrize("kw", [{"loss_scale": 1.0}, {"check_finite": True}, {"weight": None}], ids=str)
def test_inner_steps_defaults(loss: Callable[[torch.Tensor], torch.Tensor], kw: dict[str, object]) -> None:
    # one step: at the sqrt loss's kink the gradient is infinite (no loss_scale: the step is taken)
    s0, w0 = _run_inner(loss, 0.0, steps=1)
    s1, w1 = _run_inner(loss, 0.0, steps=1, **kw)
    assert s0 == s1
    torch.testing.assert_close(w0, w1, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("loss_scale", [2.0, 1024.0, 0.5])
def test_loss_scale_gives_the_same_step(loss_scale: float) -> None:
    """The loss is multiplied by ``loss_scale`` and the gradient divided by it: the same descent."""
    s0, w0 = _run_inner(_quadratic, 0.0)
    s1, w1 = _run_inner(_quadratic, 0.0, loss_scale=loss_scale)
    assert s0 == s1 == 0
    torch.testing.assert_close(w1, w0, rtol=1e-12, atol=0)
    assert_finite(w1)


@pytest.mark.parametrize("loss_scale", [2.0, 1024.0, 0.5])
def test_loss_scale_skips_non_finite_gradient_steps(loss_scale: float) -> None:
    skipped, w = _run_inner(_sqrt_loss, 0.0, loss_scale=loss_scale)
    assert skipped == 3
    assert torch.equal(w, torch.zeros(1, dtype=D))


@pytest.mark.parametrize("penalty", ["value", "gradient"])
@pytest.mark.parametrize(
    "kw",
    [{"scale": 1.0}, {"loss_scale": 1.0}, {"check_finite": True}, {"weight": None}, {"v": None}],
    ids=str,
)
def test_penalty_grads_defaults(penalty: str, kw: dict[str, object]) -> None:
    x, y, f, g = problem()
    a = penalty_grads([x], [y], f, g, 2.0, penalty=penalty)
    b = penalty_grads([x], [y], f, g, 2.0, penalty=penalty, **kw)  # type: ignore[arg-type]
    for ga, gb in zip([*a.upper, *a.lower], [*b.upper, *b.lower]):
        torch.testing.assert_close(ga, gb, rtol=0, atol=0)


def test_penalty_grads_default_penalty_is_value() -> None:
    x, y, f, g = problem()
    a = penalty_grads([x], [y], f, g, 2.0)
    b = penalty_grads([x], [y], f, g, 2.0, penalty="value")
    c = penalty_grads([x], [y], f, g, 2.0, penalty="gradient")
    assert a.lower[0] is not None and b.lower[0] is not None and c.lower[0] is not None
    torch.testing.assert_close(a.lower[0], b.lower[0], rtol=0, atol=0)
    assert not torch.allclose(a.lower[0], c.lower[0])
