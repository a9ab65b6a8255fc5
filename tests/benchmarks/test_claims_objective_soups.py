"""The objective_soups claims' budgets: one-point quick grids, the weighted sum at full only."""

from __future__ import annotations

from dataclasses import replace

from benchmarks.claims import objective_soups as soups
from benchmarks.harness import REGISTRY


def test_quick_budget_keeps_three_seeds_and_full_is_not_weaker() -> None:
    q, f = soups.QUICK, soups.FULL
    assert len(q.seeds) >= 3 and len(f.seeds) >= len(q.seeds)
    assert q.steps <= f.steps and q.d_model <= f.d_model and q.num_layers <= f.num_layers
    assert not q.weighted_sum and f.weighted_sum
    assert q.timing_repeats >= 15 and f.timing_repeats >= q.timing_repeats  # timing intervals need rounds
    for n in ("bilevel_vs_flat", "multilevel_orders", "conflict_growth", "layer_selection", "step_cost"):
        assert REGISTRY[f"objective_soups.{n}"].quick == q


def test_every_method_gets_the_same_grid_size() -> None:
    for b, size in ((soups.QUICK, 1), (soups.FULL, 4)):
        assert {len(soups._configs(b, m)) for m in (*soups._MOO, "weighted_sum")} == {size}


def test_the_weighted_sum_switch_is_part_of_the_cache_key() -> None:
    assert soups.QUICK.key() != replace(soups.QUICK, weighted_sum=True).key()
    assert soups.QUICK.key() == replace(soups.QUICK, name="objective_soups.step_cost").key()


def test_headline_notes_say_whether_anything_was_tuned() -> None:
    one = {"trials": [{"score": None}]}
    assert "nothing is tuned on dev" in soups._tuning_note({"flat": one, "bilevel_split": one})
    two = {"trials": [{"score": 0.9}, {"score": 0.8}]}
    assert "best of its grid on dev" in soups._tuning_note({"flat": two, "bilevel_split": two})
