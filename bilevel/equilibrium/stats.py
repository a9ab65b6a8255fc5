"""What an [`Equilibrium`][bilevel.Equilibrium] step reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EquilibriumStats:
    """What one `Equilibrium.step()` did (floats, on the calling rank).

    Attributes:
        sources: indices (into ``source_losses``) of the sources used this step.
        loss_before: each used source's loss at $\\theta$ (first batch), in ``sources`` order.
        loss_after: each used source's loss after its $K$ inner steps (last batch).
        step: the number of outer steps taken, this one included.
        grad_norm: the norm of the outer direction written into ``.grad`` (rank-averaged, before
            clipping).

    `as_dict()` gives them as a plain dict, as
    [`bilevel.PenaltyStats.as_dict()`][bilevel.PenaltyStats.as_dict] does.
    """

    sources: list[int]
    loss_before: list[float]
    loss_after: list[float]
    step: int
    grad_norm: float = float("nan")

    @property
    def mean_before(self) -> float:
        """Mean of `loss_before` (the averaged global loss of the used sources)."""
        return sum(self.loss_before) / len(self.loss_before)

    @property
    def mean_after(self) -> float:
        """Mean of `loss_after` (the equilibrium objective of the used sources)."""
        return sum(self.loss_after) / len(self.loss_after)

    def as_dict(self) -> dict[str, Any]:
        """The stats as a plain dict (for loggers), with the means."""
        return {**asdict(self), "mean_before": self.mean_before, "mean_after": self.mean_after}
