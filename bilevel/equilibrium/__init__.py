"""Equilibrium-constrained multi-source training (PTEC, arXiv 2508.19990): its math in
[`bilevel.equilibrium.functional`][bilevel.equilibrium.functional], its state in
[`bilevel.equilibrium.optimizer`][bilevel.equilibrium.optimizer] (the layout of
[`bilevel.penalty`][bilevel.penalty])."""

from bilevel.equilibrium.functional import (
    EquilibriumDirection,
    SourceResult,
    equilibrium_direction,
    source_direction,
)
from bilevel.equilibrium.optimizer import Equilibrium
from bilevel.equilibrium.stats import EquilibriumStats

__all__ = [
    "Equilibrium",
    "EquilibriumDirection",
    "EquilibriumStats",
    "SourceResult",
    "equilibrium_direction",
    "source_direction",
]
