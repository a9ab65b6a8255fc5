"""The meta-learning, hypergradient and BL-JUST claims as measure / verdict / figure: registration with
budgets, verdicts on hand-made data, and small measurements against independent implementations."""

from __future__ import annotations

from typing import Any

import pytest

import benchmarks.claims.bl_just
import benchmarks.claims.hypergrad
import benchmarks.claims.meta
from benchmarks.claims.hypergrad import RidgeBudget, ridge_measure, ridge_verdict
from benchmarks.claims.meta import (
    IMAMLBudget,
    PeersBudget,
    SinusoidBudget,
    imaml_closed_form_measure,
    imaml_closed_form_verdict,
    memory_verdict,
    peers_equal_measure,
    sinusoid_verdict,
)
from benchmarks.harness import REGISTRY

_MODULES = (benchmarks.claims.meta, benchmarks.claims.hypergrad, benchmarks.claims.bl_just)


@pytest.mark.parametrize(
    "name", sorted(n for n, c in REGISTRY.items() if c.module in {m.__name__ for m in _MODULES})
)
def test_claim_is_staged_with_a_quick_budget(name: str) -> None:
    c = REGISTRY[name]
    assert c.measure is not None and c.verdict is not None and c.quick is not None
    assert c.budget(full=True, seed=3).seed == 3


def test_every_claim_of_the_three_modules_is_registered() -> None:
    names = {n for n, c in REGISTRY.items() if c.module in {m.__name__ for m in _MODULES}}
    assert len(names) == 9


def test_peers_equal_matches_higher_and_torchopt_at_one_step() -> None:
    d = peers_equal_measure(PeersBudget(ks=(1,)))
    assert set(d["max_abs_diff"]) == {"higher_K1", "torchopt_K1", "fomaml_manual_K1"}
    assert max(d["max_abs_diff"].values()) <= 1e-10


def test_imaml_verdict_needs_the_closed_form_within_ten_cg_steps() -> None:
    d = imaml_closed_form_measure(IMAMLBudget(neumann_max=10))
    assert imaml_closed_form_verdict(d).holds
    slow = {**d, "cg_rel_err": [1e-3] * 11 + [1e-7, 1e-8]}  # reaches 1e-6 only at step 11
    assert not imaml_closed_form_verdict(slow).holds


def test_ridge_cg_reaches_the_exact_hypergradient() -> None:
    d = ridge_measure(RidgeBudget(cg_steps=(10, 50), neumann_steps=(400,), unrolled_steps=(400,), repeats=1))
    cg = {k: e for k, e, _ in d["rows"]["implicit CG"]}
    assert cg[10] <= 1e-4 and cg[50] <= 1e-10
    assert ridge_verdict(d).holds


@pytest.mark.parametrize(("ratio", "holds"), [(0.3, True), (1.2, False)])
def test_memory_verdict_is_judged_at_the_last_k(ratio: float, holds: bool) -> None:
    res = {
        "K=1": {"second_order_MiB": 1.0, "first_order_MiB": 0.5, "ratio": 0.5},
        "K=5": {"second_order_MiB": 10.0, "first_order_MiB": 10.0 * ratio, "ratio": ratio},
    }
    out = memory_verdict(res)
    assert out.holds is holds and "K = 5" in out.measured and "K = 1: ×0.50" in out.measured


def test_sinusoid_verdict_names_its_budget_and_needs_every_method_at_half_the_baseline() -> None:
    c = REGISTRY["meta.sinusoid"]
    assert isinstance(c.quick, SinusoidBudget) and isinstance(c.full, SinusoidBudget)
    assert c.full.iters > c.quick.iters and c.full.meta_batch >= c.quick.meta_batch

    def data(imaml: float) -> dict[str, Any]:
        curves = {"baseline": [2.0, 1.5], "maml": [2.0, 0.5], "imaml": [2.0, imaml]}
        ratios = {m: v[-1] / 1.5 for m, v in curves.items() if m != "baseline"}
        return {
            "curves": curves,
            "ratio_to_baseline": ratios,
            "diverged_at": {},
            "iters": 300,
            "meta_batch": 25,
        }

    out = sinusoid_verdict(data(0.7))
    assert "300 meta-iterations" in out.notes and "meta-batch 25" in out.notes
    assert out.holds
    assert not sinusoid_verdict(data(0.8)).holds  # 0.53 × the baseline
