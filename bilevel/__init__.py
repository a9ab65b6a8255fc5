"""bilevel: model-agnostic bilevel, meta-learning and multi-objective optimizers for PyTorch.

Public names are re-exported here; the subpackages ``bilevel.meta``, ``bilevel.hypergrad``, ``bilevel.moo``,
``bilevel.sampling`` and ``bilevel.theory`` are importable as attributes (torch and numpy only).
"""

from bilevel import checks, hypergrad, meta, moo, sampling, schedules, theory
from bilevel.equilibrium import Equilibrium, EquilibriumStats
from bilevel.penalty import PenaltyBGD, PenaltyStats
from bilevel.sampling import (
    BucketBatchSampler,
    DistributedSoftRandomSampler,
    FixedSubsetSampler,
    FreshSubsetSampler,
    ShuffledSampler,
    SoftRandomSampler,
)
from bilevel.schedules import Constant, LinearRamp

__version__ = "0.1.0"

__all__ = [
    "BucketBatchSampler",
    "Constant",
    "DistributedSoftRandomSampler",
    "Equilibrium",
    "EquilibriumStats",
    "FixedSubsetSampler",
    "FreshSubsetSampler",
    "LinearRamp",
    "PenaltyBGD",
    "PenaltyStats",
    "ShuffledSampler",
    "SoftRandomSampler",
    "__version__",
    "checks",
    "hypergrad",
    "meta",
    "moo",
    "sampling",
    "schedules",
    "theory",
]
