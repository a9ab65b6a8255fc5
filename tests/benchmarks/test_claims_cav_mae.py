"""The cav_mae claims' budgets (the verdicts are tested in tests/zoo/test_cav_mae_claims.py)."""

from __future__ import annotations

from benchmarks.claims import cav_mae
from benchmarks.harness import REGISTRY


def test_quick_budget_keeps_three_seeds_and_full_is_not_weaker() -> None:
    q, f = cav_mae.QUICK, cav_mae.FULL
    assert len(q.seeds) >= 3 and len(f.seeds) >= len(q.seeds)
    assert q.steps == 24 and f.steps == 2000
    assert q.steps // q.cosine_every >= 3  # at least three gradient-cosine measurements per run
    assert q.probe_clips <= f.probe_clips and q.batch_size <= f.batch_size
    for n in ("trivial_baseline", "retrieval", "localisation", "probe", "gradient_conflict"):
        assert REGISTRY[f"cav_mae.{n}"].quick == q
