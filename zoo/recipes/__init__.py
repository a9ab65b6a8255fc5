"""End-to-end training recipes that apply :mod:`bilevel` optimizers to zoo models.

* :mod:`zoo.recipes.bl_just` — BL-JUST (arXiv 2401.06980, 2412.08548): CTC on labelled speech as the
  upper level, a self-supervised loss on unlabelled speech as the lower level, solved with
  :class:`bilevel.PenaltyBGD`; baselines and ablations at equal compute
  (``python -m zoo.recipes bl_just --preset quick``).
"""

from zoo.recipes._streams import BatchStream
from zoo.recipes.bl_just import (
    ABLATIONS,
    METHODS,
    BLJustConfig,
    BLJustTrainer,
    PhaseSpec,
    StepRecord,
    ablate,
    ctc_objective,
    evaluate,
    phase_plan,
    plan_evaluations,
)
from zoo.recipes.encoders import ConformerAdapter, ModelParts, TinyEncoder, build_model

__all__ = [
    "ABLATIONS",
    "METHODS",
    "BLJustConfig",
    "BLJustTrainer",
    "BatchStream",
    "ConformerAdapter",
    "ModelParts",
    "PhaseSpec",
    "StepRecord",
    "TinyEncoder",
    "ablate",
    "build_model",
    "ctc_objective",
    "evaluate",
    "phase_plan",
    "plan_evaluations",
]
