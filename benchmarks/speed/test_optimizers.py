"""One optimizer step: PenaltyBGD (BL-JUST style and V-PBGD with an inner step) and Equilibrium."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bilevel
from benchmarks.problems import LinearQuadratic


def _mlp(seed: int, width: int = 256) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(64, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 10)
    )


@pytest.mark.parametrize("inner_steps", [0, 1])
def test_penalty_bgd_step_mlp(benchmark, inner_steps: int) -> None:
    """PenaltyBGD on an MLP (≈ 85 k parameters): f = CE on a labelled batch, g = CE on another batch
    weighted by per-sample upper variables."""
    model = _mlp(0)
    gen = torch.Generator().manual_seed(0)
    xl, yl = torch.randn(32, 64, generator=gen), torch.randint(0, 10, (32,), generator=gen)
    xu, yu = torch.randn(64, 64, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    w = torch.zeros(64, requires_grad=True)
    ce = nn.functional.cross_entropy

    def f() -> torch.Tensor:
        return ce(model(xl), yl)

    def g() -> torch.Tensor:
        return (torch.sigmoid(w) * ce(model(xu), yu, reduction="none")).mean()

    opt = bilevel.PenaltyBGD(
        [w], list(model.parameters()), lr=0.01, gamma=2.0, inner_steps=inner_steps, inner_lr=0.01
    )
    st = benchmark(lambda: opt.step(upper_loss=f, lower_loss=g))
    assert torch.isfinite(torch.tensor(st.f))


def test_penalty_bgd_step_linear_quadratic(benchmark) -> None:
    """PenaltyBGD (inner_steps=1) on the 100 × 1000 linear-quadratic problem of the BOAT comparison."""
    prob = LinearQuadratic(0, n=100, m=1000)
    x = torch.zeros(prob.n, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(prob.m, dtype=torch.float64, requires_grad=True)
    f, g = prob.losses(x, y)
    opt = bilevel.PenaltyBGD([x], [y], lr=0.4, gamma=bilevel.LinearRamp(0.0, 100.0, 100), inner_steps=1)
    benchmark(lambda: opt.step(upper_loss=f, lower_loss=g))


@pytest.mark.parametrize("mode", ["first_order", "second_order", "reptile"])
def test_equilibrium_step(benchmark, mode: str) -> None:
    """Equilibrium with 4 sources, K = 3 inner steps, on a 1-40-40-1 MLP (the adaptivity claim's model)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 40), nn.Tanh(), nn.Linear(40, 40), nn.Tanh(), nn.Linear(40, 1))
    gen = torch.Generator().manual_seed(0)
    batches = []
    for i in range(4):
        x = torch.rand(20, 1, generator=gen) * 6 - 3
        batches.append((x, (1 + 0.5 * (i % 2)) * torch.sin(x + i)))
    functional = mode == "second_order"
    names = [n for n, _ in model.named_parameters()]

    def closure(x: torch.Tensor, y: torch.Tensor):  # type: ignore[no-untyped-def]
        if functional:
            return lambda values: nn.functional.mse_loss(
                torch.func.functional_call(model, dict(zip(names, values)), (x,)), y
            )
        return lambda: nn.functional.mse_loss(model(x), y)

    closures = [closure(x, y) for x, y in batches]
    opt = bilevel.Equilibrium(
        model.parameters(), lr=1e-3, inner_lr=0.05, inner_steps=3, mode=mode, functional=functional
    )
    benchmark(lambda: opt.step(source_losses=closures))
