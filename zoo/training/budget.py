"""A training budget: a number of optimizer steps, a wall-clock time, or both (whichever ends first)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from zoo.checks import check_int, check_real

__all__ = ["Budget"]


@dataclass(frozen=True)
class Budget:
    """Stop after ``steps`` optimizer steps or ``seconds`` of training time, whichever comes first.

    Attributes:
        steps: optimizer steps in total (``None``: no step limit).
        seconds: training time in seconds, summed over resumed runs (``None``: no time limit).
    """

    steps: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.steps is None and self.seconds is None:
            raise ValueError("a Budget needs steps=, seconds= or both")
        if self.steps is not None:
            check_int(self.steps, "steps", low=0)
        if self.seconds is not None:
            check_real(self.seconds, "seconds", low=0.0)

    def exhausted(self, step: int, seconds: float) -> bool:
        """Whether a run at ``step`` steps and ``seconds`` of training time must stop."""
        return (self.steps is not None and step >= self.steps) or (
            self.seconds is not None and seconds >= self.seconds
        )

    def fraction(self, step: int, seconds: float) -> float:
        """How much of the budget is spent, in [0, 1]: the larger of the step and the time fractions."""
        parts = [0.0]
        if self.steps is not None:
            parts.append(step / self.steps if self.steps else 1.0)
        if self.seconds is not None:
            parts.append(seconds / self.seconds if self.seconds else 1.0)
        return min(1.0, max(parts))

    @property
    def total_steps(self) -> int | None:
        """The step limit (for a progress bar), or ``None``."""
        return self.steps if self.steps is not None and not math.isinf(self.steps) else None
