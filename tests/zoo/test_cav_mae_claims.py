"""The ``cav_mae.*`` claims judge given data as their statements say (no training here)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.claims import cav_mae as claims

ARMS = ("cav_mae", "sync", "sync_noreg", "moo")


def _data(level: dict[str, float], noise: float = 0.01) -> dict[str, Any]:
    arms = []
    for seed in range(3):
        for arm in ARMS:
            x = level[arm] + noise * (seed - 1)
            arms.append(
                {
                    "arm": arm,
                    "seed": seed,
                    "retrieval": {f"{d}_r{k}": x for d in ("a2v", "v2a") for k in (1, 5, 10)},
                    "localisation": {"ciou": x, "auc": x, "mean_iou": x},
                    "probe_accuracy": 0.5 + x,
                    "cosines": [[x - 0.5, x - 0.4]],
                    "cosine_steps": [0],
                    "layer_names": ["a", "b"],
                }
            )
    trivial = {"pixel_accuracy": 0.2, "bin_accuracy": 0.3, "retrieval": {"a2v_r1": 0.01}}
    return {"run": {"seeds": (0, 1, 2), "corpus": "av-quick"}, "arms": arms, "trivial": trivial}


BETTER = {"cav_mae": 0.1, "sync": 0.4, "sync_noreg": 0.2, "moo": 0.15}
WORSE = {"cav_mae": 0.4, "sync": 0.1, "sync_noreg": 0.3, "moo": 0.2}


@pytest.mark.parametrize(
    "verdict",
    [claims.retrieval_verdict, claims.localisation_verdict, claims.probe_verdict, claims.conflict_verdict],
)
def test_verdicts_follow_the_paired_intervals(verdict: Any) -> None:
    assert verdict(_data(BETTER)).holds
    assert not verdict(_data(WORSE)).holds


def test_trivial_baseline_needs_a_wide_gap() -> None:
    assert claims.trivial_verdict(_data(BETTER)).holds  # Sync's worst seed 0.89 vs 0.3
    d = _data(BETTER)
    d["trivial"]["bin_accuracy"] = 0.8
    assert not claims.trivial_verdict(d).holds


def test_speed_verdict_bounds_the_cost_of_registers() -> None:
    d = {
        "clips_per_second": {"cav_mae": 100.0, "sync": 150.0, "sync_noreg": 160.0},
        "registers_ratio": [1.05, 1.1, 1.02, 1.08, 1.04, 1.06, 1.07],
        "sync_vs_cav_mae_ratio": [0.7] * 7,
        "embed_frames_per_second": 1000.0,
        "search_seconds_200": 0.001,
        "generation_clips_per_second": 30.0,
    }
    assert claims.speed_verdict(d).holds
    d["registers_ratio"] = [1.5] * 7
    assert not claims.speed_verdict(d).holds
