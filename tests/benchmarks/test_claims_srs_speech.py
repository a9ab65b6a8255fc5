"""The srs_speech claims' budgets (no training here)."""

from __future__ import annotations

from benchmarks.claims import srs_speech
from benchmarks.harness import REGISTRY


def test_quick_budget_keeps_three_seeds_and_full_is_not_weaker() -> None:
    q, f = srs_speech._QUICK, srs_speech._FULL
    assert len(q.seeds) >= 3 and len(f.seeds) >= len(q.seeds)
    assert q.epochs == 3 and f.epochs == 12 and q.eval_points <= f.eval_points
    assert set(q.sources) <= set(f.sources)
    speed = REGISTRY["srs_speech.loop_speed"]
    assert isinstance(speed.quick, srs_speech.LoopSpeedBudget)
    assert isinstance(speed.full, srs_speech.LoopSpeedBudget)
    assert speed.quick.repeats == 15 and speed.full.repeats > speed.quick.repeats
    for n in ("tradeoff", "in_loop_sampling"):
        assert REGISTRY[f"srs_speech.{n}"].quick == q


def test_the_loop_speed_ratio_is_timed_alone() -> None:
    """Its verdict is a wall-clock ratio: the runner must not time it beside another worker."""
    assert REGISTRY["srs_speech.loop_speed"].timing
