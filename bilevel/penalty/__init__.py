"""Penalty-based bilevel gradient descent (PBGD / BL-JUST): `PenaltyBGD` and its functional core."""

from bilevel.penalty.functional import (
    PenaltyGrads,
    exchanged,
    inner_steps_,
    penalty_grads,
    step_scale,
    value_estimate,
    value_function,
)
from bilevel.penalty.optimizer import OptimizerFactory, PenaltyBGD
from bilevel.penalty.stats import PenaltyStats

__all__ = [
    "OptimizerFactory",
    "PenaltyBGD",
    "PenaltyGrads",
    "PenaltyStats",
    "exchanged",
    "inner_steps_",
    "penalty_grads",
    "step_scale",
    "value_estimate",
    "value_function",
]
