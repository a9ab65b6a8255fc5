"""The ASR claims' protocol and verdicts: enough test utterances, settings chosen on dev, paired intervals,
no verdict that cannot fall short, and latency measured on streamed audio."""

from __future__ import annotations

import pytest
import torch

from benchmarks.claims import zoo_asr as Z
from benchmarks.harness import REGISTRY
from zoo.data.corpus import get_config, plan_utterance


def test_quick_corpus_plans_at_least_200_test_and_100_dev_utterances() -> None:
    config = get_config("en-quick-eval")
    splits = [plan_utterance(config, 0, i)["split"] for i in range(config.n_utterances)]
    assert splits.count("test") >= 200 and splits.count("dev") >= 100
    assert 380 <= splits.count("labelled") <= 460  # en-quick's training size


@pytest.mark.parametrize("name", ["zoo_asr.self_conditioning", "zoo_asr.streaming", "zoo_asr.dota_vs_ctc"])
def test_comparisons_use_three_seeds_and_the_same_tuning_grid_for_every_arm(name: str) -> None:
    for b in (REGISTRY[name].quick, REGISTRY[name].full):
        assert isinstance(b, Z.ASRBudget) and b.seeds >= 3
        grids = {r.lrs for _, r in b.runs}
        assert len(grids) == 1 and len(next(iter(grids))) >= 2


def test_dota_vs_ctc_full_gives_both_models_equal_compute() -> None:
    b = REGISTRY["zoo_asr.dota_vs_ctc"].full
    assert isinstance(b, Z.ASRBudget)
    runs = {m: r for m, r in b.runs}
    assert runs["dota"] == runs["conformer"]


def _rows(conf: list[float], rtf: float = 0.1) -> dict:
    per = [{"test_wer": w, "rtf": rtf, "n_test": 286} for w in conf]
    other = [{"test_wer": 0.5, "rtf": rtf, "n_test": 286}]
    return {"conformer": {"per_seed": per}, "sar": {"per_seed": other}, "dota": {"per_seed": other}}


def test_test_wer_is_judged_in_quick_mode_too() -> None:
    ok = Z.test_wer_verdict({"rows": _rows([0.60, 0.62, 0.61]), "max_wer": 0.75, "limits": ""})
    bad = Z.test_wer_verdict({"rows": _rows([0.80, 0.85, 0.82]), "max_wer": 0.75, "limits": ""})
    slow = Z.test_wer_verdict({"rows": _rows([0.60, 0.62, 0.61], rtf=1.2), "max_wer": 0.75, "limits": ""})
    assert ok.holds and not bad.holds and not slow.holds


def _sc(sc: list[float], plain: list[float]) -> dict:
    return {
        "wer": {"conformer": sc, "conformer-plain": plain},
        "seeds": [0, 1, 2],
        "tuning": {},
        "n_test": 286,
        "limits": "",
    }


def test_self_conditioning_needs_the_paired_interval_below_zero() -> None:
    assert Z.self_conditioning_verdict(_sc([0.50, 0.60, 0.55], [0.53, 0.63, 0.58])).holds
    # a lower mean that does not separate: one seed goes the other way
    out = Z.self_conditioning_verdict(_sc([0.50, 0.60, 0.55], [0.58, 0.58, 0.56]))
    assert not out.holds and out.details["paired_difference"]["mean"] < 0


def test_dota_verdict_bounds_the_paired_difference() -> None:
    base = {"seeds": [0, 1, 2], "rtf": {"dota": 0.2, "conformer": 0.01}, "n_test": 286, "limits": ""}
    base |= {"beam4_first16": {"rtf": 0.5}, "params": {"dota": 1.0e6, "conformer": 1.05e6}}
    close = Z.dota_vs_ctc_verdict(
        {**base, "wer": {"dota": [0.62, 0.63, 0.64], "conformer": [0.60, 0.61, 0.62]}}
    )
    far = Z.dota_vs_ctc_verdict(
        {**base, "wer": {"dota": [0.70, 0.66, 0.74], "conformer": [0.60, 0.61, 0.62]}}
    )
    assert close.holds and not far.holds


def test_streamed_latency_waits_for_the_look_ahead_and_full_context_for_the_end() -> None:
    from zoo.data import FeatureSpec
    from zoo.models import SAR, build_model

    torch.manual_seed(0)
    sar = build_model("sar", "tiny", vocab_size=20).eval()
    assert isinstance(sar, SAR)
    full = build_model("conformer", "tiny", vocab_size=20).eval()
    spec = FeatureSpec(n_mels=sar.cfg.n_mels)
    wav = 0.1 * torch.randn(32000, generator=torch.Generator().manual_seed(1))
    r = Z.stream_latency(sar, full, spec.build(), wav, 16000, 0.16)
    cfg = sar.cfg
    block_s, ahead_s = cfg.block * cfg.stack * 0.01, cfg.lookahead * cfg.stack * 0.01
    n_blocks = -(-(32000 // 160 // cfg.stack) // cfg.block)
    assert abs(len(r["sar_s"]) - n_blocks) <= 1 and len(r["full_s"]) == len(r["sar_s"])
    for lat in r["sar_s"][:-2]:
        assert lat >= ahead_s - 1e-9  # a block cannot be decoded before its look-ahead has arrived
    for b, lat in enumerate(r["full_s"]):
        assert lat >= r["duration_s"] - min(r["duration_s"], (b + 1) * block_s) - 1e-9
    assert r["full_s"][0] > 1.0  # the first block's words wait for the end of the 2 s utterance


def test_every_model_trains_once_per_seed_and_lr_across_the_quick_claims() -> None:
    """The claims share their quick models (one `TrainRun` per model), so the quick suite trains each model
    at every grid value (first seed) and at the other seeds once, with a warm-up shorter than its run."""
    runs: dict[str, set[Z.TrainRun]] = {}
    seeds = set()
    for c in REGISTRY.values():
        if c.name.startswith("zoo_asr.") and isinstance(c.quick, Z.ASRBudget):
            seeds.add(c.quick.seeds)
            for model, r in c.quick.runs:
                runs.setdefault(model, set()).add(r)
    assert set(runs) == {"conformer", "conformer-plain", "sar", "sar-ctc", "dota"}
    assert all(len(rs) == 1 for rs in runs.values())
    assert seeds == {3}
    for (r,) in runs.values():
        assert r.corpus == "en-quick-eval" and 0 < r.warmup <= r.steps // 5 and r.lrs == Z.QUICK_LRS


def test_streaming_diagnostics_are_limited_in_quick_mode_only() -> None:
    quick, full = REGISTRY["zoo_asr.streaming"].quick, REGISTRY["zoo_asr.streaming"].full
    assert isinstance(quick, Z.StreamingBudget) and isinstance(full, Z.StreamingBudget)
    assert quick.curve_limit is not None and full.curve_limit is None
    assert quick.latency_utterances >= 12 and full.latency_utterances >= quick.latency_utterances


def _streaming(sar: list[float], ratio: float) -> dict:
    lat = [{"duration_s": 2.0, "sar_s": [0.3, 0.3], "full_s": [0.3 * ratio, 0.3 * ratio]} for _ in range(12)]
    return {
        "wer_sar": sar,
        "wer_ctc": [0.60, 0.62, 0.61],
        "seeds": [0, 1, 2],
        "n_test": 286,
        "latency": lat,
        "chunk_s": 0.16,
        "algorithmic_s": 0.48,
        "streamed_wer_seed0": 0.7,
        "diagnostic_utterances": 16,
        "limits": "",
    }


def test_streaming_needs_both_the_wer_lead_and_the_latency_ratio() -> None:
    ok = Z.streaming_verdict(_streaming([0.55, 0.58, 0.56], 3.0))
    assert ok.holds and "first 16 test utterances" in ok.notes
    assert not Z.streaming_verdict(_streaming([0.55, 0.58, 0.56], 2.0)).holds  # latency ratio too small
    assert not Z.streaming_verdict(_streaming([0.62, 0.63, 0.60], 3.0)).holds  # no WER lead
