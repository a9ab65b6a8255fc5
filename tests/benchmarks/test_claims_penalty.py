"""Helpers of the PenaltyBGD claims: the statistics behind the verdicts, small-loss selection, the
hyper-cleaning verdict's logic and the overhead claim's hand-written loops (same update as PenaltyBGD)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from benchmarks.claims.penalty import (
    _CLEANING_BASELINES,
    _CLEANING_GRIDS,
    _TRAIN_SET_ONLY,
    CleaningBudget,
    OverheadBudget,
    _digits,
    _small_loss_mask,
    _train_cleaning_arm,
    cleaning_verdict,
    overhead_measure,
)
from benchmarks.stats import median_ratio_interval, paired_t_interval


@pytest.mark.parametrize("n", [6, 10, 30, 60, 80])
def test_median_interval_is_the_sign_test_interval(n: int) -> None:
    x = [float(v) for v in torch.randperm(n, generator=torch.Generator().manual_seed(n)).tolist()]
    lo, hi = median_ratio_interval(x)
    j = int(lo) + 1  # the data are 0..n-1, so x_(j) = j - 1
    assert hi == n - j  # symmetric order statistics x_(j), x_(n+1-j)
    # coverage 1 - 2·P(Bin(n, ½) ≤ j - 1) ≥ 95%, and j is the largest such index
    assert stats.binom.cdf(j - 1, n, 0.5) <= 0.025
    assert stats.binom.cdf(j, n, 0.5) > 0.025


def test_median_interval_falls_back_to_the_range_for_few_rounds() -> None:
    assert median_ratio_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)


@pytest.mark.parametrize("diffs", [[0.01, 0.03, -0.005], [0.2, 0.1, 0.15, 0.12, 0.3], [-1.0, 2.0]])
def test_paired_t_matches_scipy(diffs: list[float]) -> None:
    m, lo, hi = paired_t_interval(diffs)
    ci = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert m == pytest.approx(sum(diffs) / len(diffs), rel=1e-12)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_paired_t_with_one_seed_is_unbounded() -> None:
    assert paired_t_interval([0.1])[1:] == (-math.inf, math.inf)


def test_small_loss_mask_keeps_the_smallest_noisy_losses_and_every_clean_sample() -> None:
    per = torch.tensor([5.0, 0.1, 3.0, 0.2, 4.0, 9.0, 9.0])  # 5 noisy samples, then 2 validation samples
    mask = _small_loss_mask(per, 5, 0.4)
    assert mask.tolist() == [False, True, False, True, False, True, True]
    assert int(_small_loss_mask(per, 5, 1.0)[:5].sum()) == 5
    assert int(_small_loss_mask(per, 5, 0.0)[:5].sum()) == 1  # never empty


def _rows(gains: dict[str, list[float]], auc: float = 0.95) -> list[dict]:
    rows = []
    for i in range(3):
        row = {"seed": i, "auc": auc, "acc_PenaltyBGD": 0.9, "acc_clean_part_only": 0.99}
        for arm in _CLEANING_BASELINES:
            row[f"acc_{arm}"] = 0.9 - gains.get(arm, [0.1] * 3)[i]
        rows.append(row)
    return rows


def _verdict(rows: list[dict]):
    return cleaning_verdict(
        {
            "rows": rows,
            "steps": 1,
            "ramp": 1,
            "grids": _CLEANING_GRIDS,
            "search": {},
            "n_dev": 100,
            "n_test": 497,
        }
    )


def test_cleaning_verdict_holds_only_when_every_paired_interval_is_above_zero() -> None:
    assert _verdict(_rows({"small_loss": [0.02, 0.03, 0.025]})).holds
    # the strongest baseline on average wins on one seed: interval straddles 0
    out = _verdict(_rows({"small_loss": [0.02, -0.03, 0.01]}))
    assert not out.holds and out.details["strongest_baseline"] == "small_loss"
    # a weaker baseline (by mean) with a noisy gain also sinks the claim
    assert not _verdict(_rows({"noisy": [0.3, -0.05, 0.3]})).holds
    assert not _verdict(_rows({}, auc=0.85)).holds


def test_cleaning_arms_that_keep_their_dev_fit_never_read_the_validation_samples() -> None:
    # the measure skips their retrain on all validation samples: it must give the dev-search fit again
    Xtr, Ytr, Xva, Yva, _, _, corrupt = _digits(0, 0.4)
    for arm in _TRAIN_SET_ONLY:
        cfg = _CLEANING_GRIDS[arm][0]
        dev_fit, _ = _train_cleaning_arm(arm, cfg, (Xtr, Ytr, Xva[:200], Yva[:200], corrupt), steps=5, ramp=2)
        full, _ = _train_cleaning_arm(arm, cfg, (Xtr, Ytr, Xva, Yva, corrupt), steps=5, ramp=2)
        assert torch.equal(dev_fit, full)
    # an arm that does read them differs
    cfg = _CLEANING_GRIDS["noisy+validation"][0]
    a, _ = _train_cleaning_arm(
        "noisy+validation", cfg, (Xtr, Ytr, Xva[:200], Yva[:200], corrupt), steps=5, ramp=2
    )
    b, _ = _train_cleaning_arm("noisy+validation", cfg, (Xtr, Ytr, Xva, Yva, corrupt), steps=5, ramp=2)
    assert not torch.equal(a, b)


def test_cleaning_quick_budget_keeps_three_paired_seeds_and_full_is_longer() -> None:
    from benchmarks.harness import REGISTRY

    c = REGISTRY["penalty.hyper_cleaning"]
    quick, full = c.quick, c.full
    assert isinstance(quick, CleaningBudget) and isinstance(full, CleaningBudget)
    assert len(quick.seeds) >= 3 and full.steps > quick.steps and len(full.seeds) >= len(quick.seeds)
    assert 0 < quick.ramp < quick.steps


def test_overhead_hand_loops_compute_the_same_update_as_penalty_bgd() -> None:
    threads = torch.get_num_threads()
    try:
        d = overhead_measure(OverheadBudget(rounds=1))
    finally:
        torch.set_num_threads(threads)
    assert max(d["gate_max_abs_diff"].values()) <= 1e-6
    r1 = d["results"]["inner_steps=1"]
    assert set(r1["hand_ms"]) == {"hand", "hand_efficient"} and r1["reference"] in r1["hand_ms"]
