"""The granite claims' budgets and their shared run (no training here)."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import pytest

from benchmarks.claims import granite
from benchmarks.harness import REGISTRY

NAMES = ("text_mode", "speech_mode", "projector", "self_conditioning", "performance")


def test_quick_budget_keeps_three_seeds_and_full_is_not_weaker() -> None:
    q, f = granite.QUICK, granite.FULL
    assert len(q.seeds) >= 3 and len(f.seeds) >= len(q.seeds)
    assert all(a <= b for a, b in zip(q.steps, f.steps))
    assert all(a <= b for a, b in zip(q.ablation_steps, f.ablation_steps))
    assert q.ablation_steps == (40, 40) and f.ablation_steps == (3000, 3000)
    assert q.eval_limit <= f.eval_limit
    for n in NAMES:
        c = REGISTRY[f"granite.{n}"]
        assert c.quick == q and c.full == f


def test_the_claims_share_one_pipeline_whatever_name_the_harness_stamps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []

    def fake(b: Any) -> dict[str, Any]:
        seen.append(b)
        return {"budget": b}

    monkeypatch.setattr(granite, "_shared_pipeline", functools.cache(fake))
    outs = [granite._pipeline(replace(granite.QUICK, name=f"granite.{n}", show_progress=True)) for n in NAMES]
    assert len(seen) == 1 and seen[0].name == "" and all(o is outs[0] for o in outs)
    granite._pipeline(replace(granite.QUICK, seed=1))
    assert len(seen) == 2  # another seed is another run
