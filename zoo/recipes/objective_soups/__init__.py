"""Objective Soups (Saif et al., arXiv 2508.09228): multilingual recognition, X→en translation and
self-supervision on one shared Conformer encoder, arranged into levels of multi-objective optimisation.

* [`zoo.recipes.objective_soups.data`][zoo.recipes.objective_soups.data] — per-language streams with both
  targets, and the unlabelled stream;
* [`zoo.recipes.objective_soups.model`][zoo.recipes.objective_soups.model] — the shared encoder and its
  heads, and the objectives of a batch;
* [`zoo.recipes.objective_soups.step`][zoo.recipes.objective_soups.step] — the recipes (flat, bi-level,
  multi-level in both orders, weighted sum) as a step function, and evaluation;
* [`zoo.recipes.objective_soups.analysis`][zoo.recipes.objective_soups.analysis] — gradient conflict by layer;
* [`zoo.recipes.objective_soups.cli`][zoo.recipes.objective_soups.cli] —
  ``python -m zoo.recipes objective_soups --preset quick``.
"""

from zoo.recipes.objective_soups.analysis import conflict_profile
from zoo.recipes.objective_soups.cli import PRESETS, SoupsRun, main, run_experiment
from zoo.recipes.objective_soups.data import SoupBatches, SoupsData, collate_soup, load_soups_data
from zoo.recipes.objective_soups.model import SoupsModel, SoupsModelConfig, objective_names
from zoo.recipes.objective_soups.step import (
    LEVELS,
    METHODS,
    SOLVERS,
    SoupsConfig,
    SoupsController,
    SoupsStep,
    build_recipe,
    evaluate_soups,
    resolve_levels,
    soups_trainer,
)

__all__ = [
    "LEVELS",
    "METHODS",
    "PRESETS",
    "SOLVERS",
    "SoupBatches",
    "SoupsConfig",
    "SoupsController",
    "SoupsData",
    "SoupsModel",
    "SoupsModelConfig",
    "SoupsRun",
    "SoupsStep",
    "build_recipe",
    "collate_soup",
    "conflict_profile",
    "evaluate_soups",
    "load_soups_data",
    "main",
    "objective_names",
    "resolve_levels",
    "run_experiment",
    "soups_trainer",
]
