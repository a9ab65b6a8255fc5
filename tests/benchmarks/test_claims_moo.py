"""The Pareto-toy claim advances every (method, start) run in one tensor: each must equal its own run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.claims.moo import _TOY_STARTS, _toy, _toy_makers, _toy_runs


@pytest.mark.parametrize("lr", [0.1, 0.3])
def test_vectorised_toy_runs_equal_independent_runs(lr: float) -> None:
    steps = 40
    runs, stat, paths = _toy_runs(lr, steps, 0, iter)
    assert len(runs) == len(stat) == paths.shape[1] == 4 * len(_TOY_STARTS)
    makers = _toy_makers(0)
    for r in (0, 4, 8, 11):  # MGDA, CAGrad, PCGrad, MoDo from different starts
        name, start = runs[r]
        agg = makers[name]()
        x = torch.tensor([start], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([x], lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            f = _toy(x)[0]
            J = torch.stack([torch.autograd.grad(f[i], x, retain_graph=i == 0)[0][0] for i in range(2)])
            x.grad = agg(J).unsqueeze(0)  # type: ignore[operator]
            opt.step()
            sched.step()
        np.testing.assert_allclose(paths[-1, r], x.detach().numpy()[0], rtol=0, atol=1e-9)


MOO_CLAIMS = (
    "moo.mgda_descent",
    "moo.cagrad_geometry",
    "moo.modo_unbiased",
    "moo.pareto_toy",
    "moo.layer_selection",
    "moo.step_time",
    "moo.selection_savings",
)


@pytest.mark.parametrize("name", MOO_CLAIMS)
def test_moo_claims_are_measure_verdict_figure_with_typed_budgets(name: str) -> None:
    from benchmarks.claims import load_all
    from benchmarks.harness import REGISTRY

    load_all()
    c = REGISTRY[name]
    assert c.measure is not None and c.verdict is not None
    assert type(c.quick) is type(c.full) and c.quick != c.full


def test_pareto_toy_verdict_names_the_failing_method_and_step_size() -> None:
    from benchmarks.claims.moo import pareto_toy_verdict

    runs = [("MGDA", (0.0, 0.0)), ("CAGrad(0.5)", (1.0, 1.0))]
    paths = np.zeros((3, 2, 2))
    per_lr = {
        "0.1": {"MGDA (0.0, 0.0)": 1e-4, "CAGrad(0.5) (1.0, 1.0)": 0.3},
        "0.2": {"MGDA (0.0, 0.0)": 1e-4, "CAGrad(0.5) (1.0, 1.0)": 1e-3},
    }
    d = {"lrs": [0.1, 0.2], "steps": 2, "per_lr": per_lr, "seconds": {}, "lr_shown": 0.2, "runs": runs}
    out = pareto_toy_verdict({**d, "paths": paths, "methods": ["MGDA", "CAGrad(0.5)"]})
    assert not out.holds and "CAGrad(0.5) at lr 0.1" in out.measured
    per_lr["0.1"]["CAGrad(0.5) (1.0, 1.0)"] = 5e-3
    assert pareto_toy_verdict({**d, "paths": paths, "methods": ["MGDA", "CAGrad(0.5)"]}).holds


def test_pareto_toy_statement_names_the_quick_and_full_grids_and_steps() -> None:
    from benchmarks.claims.moo import _TOY_QUICK_LRS, ToyBudget
    from benchmarks.harness import REGISTRY

    c = REGISTRY["moo.pareto_toy"]
    quick, full = c.quick, c.full
    assert isinstance(quick, ToyBudget) and isinstance(full, ToyBudget)
    assert quick.lrs == _TOY_QUICK_LRS == (0.1, 0.15, 0.2, 0.25, 0.3)
    statement = " ".join(c.statement.split())
    assert f"with {quick.steps} steps (quick)" in statement
    assert f"with {full.steps} steps (full)" in statement
    assert full.steps > quick.steps
