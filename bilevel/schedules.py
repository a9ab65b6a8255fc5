"""Schedules for penalty constants and loss weights (γ ramps in PBGD/BL-JUST, nested penalties in
Objective Soups).

A schedule is a pure function of an integer counter ``k`` (steps or epochs, as the optimizer that
owns it decides); the counter lives in the owner's ``state_dict``, so resuming restores the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bilevel.checks import check_int, check_real


@runtime_checkable
class Schedule(Protocol):
    """A value as a function of a non-negative counter ``k``."""

    def __call__(self, k: int) -> float: ...


@dataclass(frozen=True)
class Constant:
    """γ_k = ``value`` for every k."""

    value: float

    def __post_init__(self) -> None:
        check_real(self.value, "value")

    def __call__(self, k: int) -> float:
        return float(self.value)


@dataclass(frozen=True)
class LinearRamp:
    r"""Linear ramp $\gamma_k = \min(\gamma_{\max}, \gamma_0 + k\,\Delta)$.

    This is the schedule of the official PBGD code (Shen & Chen, ICML 2023) and of BL-JUST
    (arXiv 2401.06980), where ``delta = (stop - start) / steps``.

    Args:
        start: γ_0.
        stop: γ_max (the ramp saturates there; ``stop >= start``).
        steps: number of counter increments to go from ``start`` to ``stop`` (> 0).
    """

    start: float
    stop: float
    steps: int

    def __post_init__(self) -> None:
        check_real(self.start, "start")
        check_real(self.stop, "stop", low=float(self.start))
        check_int(self.steps, "steps", low=1)

    @property
    def delta(self) -> float:
        return (self.stop - self.start) / self.steps

    def __call__(self, k: int) -> float:
        return float(min(self.stop, self.start + k * self.delta))


def as_schedule(value: float | Schedule, name: str = "schedule") -> Schedule:
    """Wrap a float as `Constant`; pass a schedule through; reject anything else."""
    if isinstance(value, Schedule) and not isinstance(value, (int, float)):
        return value
    return Constant(check_real(value, name))


__all__ = ["Constant", "LinearRamp", "Schedule", "as_schedule"]
