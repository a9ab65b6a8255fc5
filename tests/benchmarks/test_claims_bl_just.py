"""The BL-JUST claims' verdicts: non-inferiority on per-seed paired differences, strict decrease of both
losses, and settings chosen on dev."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmarks.claims import bl_just as C
from zoo.recipes.experiment import RunResult

EVALS = {"sup": 10, "unsup": 10, "total": 20}
SETUP = {"seeds": [0, 1, 2], "steps": (15, 30, 8), "encoder": "conformer"}


def _run(method: str, seed: int, wer: float, *, variant: str = "", history: list | None = None) -> RunResult:
    return RunResult(
        method, variant, 0.2, seed, wer, wer / 3, EVALS, 1.0, {}, history or [], {"f": 1.0, "g": 2.0}, []
    )


def _wer_data(bl: list[float], pt: list[float], sup: list[float]) -> dict:
    runs = [
        _run(m, s, w)
        for m, ws in (("bl_just", bl), ("pt_ft", pt), ("supervised", sup))
        for s, w in enumerate(ws)
    ]
    return {"setup": {"shares": [0.2], "margin": 1.0, **SETUP}, "runs": runs, "tuning": {}}


def test_wer_no_worse_is_judged_on_the_paired_interval_not_the_largest_std() -> None:
    # BL-JUST 7 points worse than supervised-only at every seed, supervised-only's std ≈ 7.4 points:
    # the old rule (mean + max std) counted this as "no worse"; the paired interval does not.
    d = _wer_data([0.50, 0.60, 0.70], [0.55, 0.65, 0.75], [0.43, 0.53, 0.63 - 0.0])
    out = C.wer_verdict(d)
    assert not out.holds
    p = out.details["per_share"]["0.2"]["paired_difference_pts"]["supervised"]
    assert p["mean"] == pytest.approx(7.0, abs=1e-9)
    # equal to the baselines up to ±0.1 point at every seed: the interval sits below +1 point
    d = _wer_data([0.50, 0.60, 0.70], [0.501, 0.599, 0.70], [0.50, 0.601, 0.699])
    assert C.wer_verdict(d).holds


def _history(f: list[float], g: list[float]) -> list[dict]:
    return [{"step": i, "phase": "joint", "f": a, "g": b, "gamma": 0.0} for i, (a, b) in enumerate(zip(f, g))]


@pytest.mark.parametrize(("g_end", "holds"), [(1.99, True), (2.0 * 1.01, False)])
def test_matched_optima_requires_g_to_decrease_without_slack(g_end: float, holds: bool) -> None:
    per_seed = []
    for s in range(3):
        hist = _history([3.0] * 5 + [1.0] * 5, [2.0] * 5 + [g_end] * 5)
        bl = _run("bl_just", s, 0.5, history=hist)
        bl.final = {"f": 1.0, "g": 1.5 + 0.01 * s}
        pt = _run("pt_ft", s, 0.5)
        pt.final = {"f": 1.0, "g": 3.0}
        per_seed.append({"seed": s, "bl_just": bl, "pt_ft": pt, "v_hat": 1.0})
    assert C.matched_optima_verdict({"setup": SETUP, "per_seed": per_seed, "tuning": {}}).holds is holds


def test_ablations_verdict_pairs_the_full_recipe_with_each_ablation_per_seed() -> None:
    runs = {
        "full": [_run("bl_just", s, w, variant="full") for s, w in enumerate([0.5, 0.6, 0.7])],
        "constant_gamma": [
            _run("bl_just", s, w, variant="constant_gamma") for s, w in enumerate([0.45, 0.55, 0.65])
        ],
    }
    d = {"setup": SETUP, "runs": runs, "tuning": {}, "margin": 1.0, "skipped": ["no_finetune"]}
    out = C.ablations_verdict(d)
    assert not out.holds  # the ablation is 5 points better at every seed
    assert out.details["paired_difference_pts"]["constant_gamma"]["mean"] == pytest.approx(5.0)
    assert "no_finetune" in out.notes
    assert "15/30/8 steps" in out.notes and "far from converged" in out.notes


def test_quick_budgets_tune_every_arm_on_the_same_grid_with_three_seeds() -> None:
    from benchmarks.harness import REGISTRY

    for name in ("bl_just.wer", "bl_just.matched_optima", "bl_just.ablations"):
        b = REGISTRY[name].quick
        assert isinstance(b, C.BLJustBudget)
        st = b.setup()
        assert len(st["seeds"]) >= 3 and len(st["lr_scales"]) >= 2 and st["corpus"] == "en-quick-eval"
        assert st["encoder"] == "conformer" and st["ablations"] == ["constant_gamma"]
        full_budget = REGISTRY[name].full
        assert isinstance(full_budget, C.BLJustBudget)
        full = full_budget.setup()
        assert full["steps"] == (400, 800, 200) and len(full["seeds"]) >= 3


def test_only_the_tuning_seed_is_scored_on_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.recipes.experiment as E
    from zoo.data import collate

    pool = E.Pool(_items(10, 0), _items(3, 1), collate, lambda ids: "", 8, 5, dev=_items(2, 2))
    monkeypatch.setattr(C, "_pool", lambda b: pool)
    seen: dict[int, int] = {}

    def fake_run_one(data, cfg, method, *, seed, **kw):
        seen[seed] = len(data.dev)
        return _run(method, seed, 0.5)

    monkeypatch.setattr(E, "run_one", fake_run_one)
    monkeypatch.setattr(C, "_CACHE", {})
    b = C.BLJustBudget()
    for seed in b.setup()["seeds"]:
        C._run(b, 0.2, seed, "supervised", "full", 1.0)
    assert seen == {0: 2, 1: 0, 2: 0}


def test_tuning_picks_the_lowest_dev_error(monkeypatch: pytest.MonkeyPatch) -> None:
    dev = {1.0: 0.7, 2.0: 0.6}

    def fake_run(b, share, seed, method, variant, scale):
        r = _run(method, seed, 0.5)
        r.dev_wer, r.dev_cer = dev[scale], 0.2
        return r

    monkeypatch.setattr(C, "_run", fake_run)
    t = C._tuned(C.BLJustBudget(), 0.2, "bl_just")
    assert t["chosen_scale"] == 2.0 and t["dev_wer"] == {"1": 0.7, "2": 0.6}


def _items(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "feats": torch.randn(120, 8, generator=g),
            "tokens": torch.tensor([1, 2, 3]),
            "text": "ab",
            "id": f"u{i}",
        }
        for i in range(n)
    ]


def test_run_one_scores_the_dev_split_only_when_the_data_has_one() -> None:
    from zoo.data import collate
    from zoo.recipes.bl_just import BLJustConfig
    from zoo.recipes.experiment import RecipeData, run_one

    cfg = BLJustConfig(exploration_steps=1, joint_steps=1, finetune_steps=2)
    test = _items(4, 2)
    base = RecipeData(_items(8, 0), _items(8, 1), test, collate, lambda ids: "ab"[: len(ids)], 8, 5, 0.5)
    assert (
        run_one(base, cfg, "supervised", encoder="tiny", batch_size=4, unlabelled_batch_size=4).dev_wer
        is None
    )
    with_dev = dataclasses.replace(base, dev=test)
    r = run_one(with_dev, cfg, "supervised", encoder="tiny", batch_size=4, unlabelled_batch_size=4)
    assert r.dev_wer == r.wer and r.dev_cer == r.cer  # the same model scored on the same items
