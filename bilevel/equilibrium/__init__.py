"""Equilibrium-constrained multi-source training (PTEC, arXiv 2508.19990): its math in
:mod:`bilevel.equilibrium.functional`, its state in :mod:`bilevel.equilibrium.optimizer` (the layout of
:mod:`bilevel.penalty`)."""

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
