"""The joint_stt_tts claims' budgets and the one-point learning-rate grid (no training here)."""

from __future__ import annotations

from benchmarks.claims import joint_stt_tts as joint
from benchmarks.harness import REGISTRY


def test_quick_budget_keeps_three_seeds_and_full_is_not_weaker() -> None:
    q, f = joint.QUICK, joint.FULL
    assert q.seeds >= 3 and f.seeds >= q.seeds
    assert q.steps == 30 and f.steps == 1500 and q.judge_steps <= f.judge_steps
    assert len(q.lr_grid) == 1 and len(f.lr_grid) == 2
    for n in ("stt", "tts", "refinement", "unpaired"):
        assert REGISTRY[f"joint_stt_tts.{n}"].quick == q
    assert "30 steps per method" in REGISTRY["joint_stt_tts.stt"].statement


def test_best_learning_rate() -> None:
    assert joint._best({3e-3: None}) == 3e-3
    assert joint._best({1e-3: 0.5, 3e-3: 0.4}) == 3e-3
    assert joint._best({1e-3: 0.4, 3e-3: 0.4}) == 1e-3  # ties: the first candidate


def _data(search: dict[str, dict[str, float | None]]) -> dict[str, object]:
    return {
        "budget": {"corpus": "en-quick", "model": "mini", "steps": 30, "batch": 8, "seeds": 3},
        "n_test": 16,
        "judge_dev_wer": 0.8,
        "lr_search_dev": search,
    }


def test_limits_say_whether_anything_was_tuned() -> None:
    one = joint._limits(_data({"joint": {"0.003": None}, "stt-only": {"0.003": None}}))
    assert "one learning rate for every method (0.003" in one and "nothing is tuned" in one
    two = joint._limits(_data({"joint": {"0.001": 0.5, "0.003": 0.4}}))
    assert "from the dev grid" in two
    assert "from the dev grid {}" in joint._limits(_data({}))
