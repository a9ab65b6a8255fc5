"""Equilibrium-constrained multi-source training (PTEC, arXiv 2508.19990): functional core + optimizer."""

from bilevel.equilibrium._core import (
    EquilibriumDirection,
    SourceResult,
    equilibrium_direction,
    source_direction,
)
from bilevel.equilibrium._optimizer import Equilibrium, EquilibriumStats

__all__ = [
    "Equilibrium",
    "EquilibriumDirection",
    "EquilibriumStats",
    "SourceResult",
    "equilibrium_direction",
    "source_direction",
]
