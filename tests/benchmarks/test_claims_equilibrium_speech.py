"""The equilibrium_speech claims' budgets and the verdicts on data without Reptile (no training here)."""

from __future__ import annotations

from typing import Any

from benchmarks.claims import equilibrium_speech as es
from benchmarks.harness import REGISTRY
from zoo.recipes.equilibrium import PRETRAIN_METHODS


def test_quick_budget_trains_what_the_verdicts_judge_and_full_is_not_weaker() -> None:
    q, f = es._QUICK, es._FULL
    assert len(q.seeds) >= 3 and len(f.seeds) >= len(q.seeds)
    assert {"cssl", "first_order", "second_order"} <= set(q.methods)
    assert "reptile" not in q.methods and f.methods == PRETRAIN_METHODS
    assert q.finetune_steps == 20 and f.finetune_steps == 120
    assert q.samples <= f.samples and q.finetune_items <= f.finetune_items
    for n in ("adaptivity", "k0_reduction", "sensitivity", "second_order"):
        assert REGISTRY[f"equilibrium_speech.{n}"].quick == q


def _runs(methods: tuple[str, ...]) -> dict[str, Any]:
    runs = []
    for seed in range(3):
        for j, m in enumerate(methods):
            wer = 0.9 + 0.01 * seed + 0.001 * j
            runs.append(
                {
                    "method": m,
                    "seed": seed,
                    "seconds_per_step": 1.0 + j,
                    "sources": {"en": {"wer": wer, "cer": wer / 2}, "de": {"wer": wer, "cer": wer / 2}},
                }
            )
    return {"runs": runs, "sources": ["en", "de"]}


def test_second_order_claim_reports_the_cost_of_the_methods_that_ran(monkeypatch: Any) -> None:
    monkeypatch.setattr(es, "_experiment", lambda b: _runs(("cssl", "first_order", "second_order")))
    d = es.order_measure(es._QUICK)
    assert set(d["seconds_per_step"]) == {"cssl", "first_order", "second_order"}
    out = es.order_verdict(d)
    assert out.holds and "×1.50 per step" in out.measured  # (1 + 2) / (1 + 1)


def test_second_order_verdict_judges_on_cer_when_every_wer_is_saturated() -> None:
    """At ≥ 95 % WER a WER tie means nothing: the same ±5-point rule is applied to the CER."""
    d = {
        "wer": {"first_order": [1.0, 0.99, 1.0], "second_order": [1.0, 1.0, 0.98]},
        "wer_diff": {"mean": 0.3, "low": -1.0, "high": 1.6},
        "cer_diff": {"mean": 0.9, "low": -7.0, "high": 8.7},
        "seconds_per_step": {"first_order": 1.0, "second_order": 2.0},
    }
    out = es.order_verdict(d)
    assert not out.holds and out.measured.startswith("[verdict on CER]") and out.details["metric"] == "cer"
    d["cer_diff"] = {"mean": 0.5, "low": -3.0, "high": 4.0}
    assert es.order_verdict(d).holds
    d["wer"] = {"first_order": [0.6, 0.7, 0.65], "second_order": [0.6, 0.7, 0.65]}
    d["cer_diff"] = {"mean": 0.9, "low": -7.0, "high": 8.7}  # below saturation the WER interval decides
    assert es.order_verdict(d).holds and es.order_verdict(d).details["metric"] == "wer"
