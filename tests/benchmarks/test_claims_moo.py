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
