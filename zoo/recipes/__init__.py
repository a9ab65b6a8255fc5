"""Training recipes of the zoo: each one a typed config and a step function for
[`zoo.training`][zoo.training].

* [`zoo.recipes.supervised`][zoo.recipes.supervised] — supervised training of any zoo ASR model (``python -m
zoo.train``);
* [`zoo.recipes.bl_just`][zoo.recipes.bl_just] — BL-JUST (arXiv 2401.06980, 2412.08548): CTC on labelled
speech as the
  upper level, a self-supervised loss on unlabelled speech as the lower level, solved with
  [`bilevel.PenaltyBGD`][bilevel.PenaltyBGD]; baselines and ablations at equal compute
  (``python -m zoo.recipes bl_just --preset quick``).
"""

from zoo.recipes.bl_just import (
    ABLATIONS,
    METHODS,
    BLJustConfig,
    BLJustStep,
    PhaseSpec,
    PlanBatches,
    ablate,
    bl_just_trainer,
    build_optimizers,
    ctc_objective,
    evaluations_done,
    optimizer_key,
    phase_at,
    phase_plan,
    plan_evaluations,
)
from zoo.recipes.encoders import ConformerAdapter, ModelParts, TinyEncoder, build_parts
from zoo.recipes.supervised import SupervisedConfig, SupervisedStep, supervised_state

__all__ = [
    "ABLATIONS",
    "METHODS",
    "BLJustConfig",
    "BLJustStep",
    "ConformerAdapter",
    "ModelParts",
    "PhaseSpec",
    "PlanBatches",
    "SupervisedConfig",
    "SupervisedStep",
    "TinyEncoder",
    "ablate",
    "bl_just_trainer",
    "build_optimizers",
    "build_parts",
    "ctc_objective",
    "evaluations_done",
    "optimizer_key",
    "phase_at",
    "phase_plan",
    "plan_evaluations",
    "supervised_state",
]
