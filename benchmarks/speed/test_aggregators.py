"""One aggregation d = wᵀG of m per-objective gradients: MGDA, CAGrad, PCGrad and MoDo."""

from __future__ import annotations

import pytest
import torch

from bilevel.moo import MGDA, CAGrad, MoDo, PCGrad

SHAPES = [(4, 10_000), (8, 100_000)]


def _gradients(m: int, d: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # a shared component plus noise: the conflicting-but-correlated gradients of multi-task training
    return torch.randn(m, d, generator=gen) + 0.5 * torch.randn(d, generator=gen)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"m{s[0]}-d{s[1]}")
@pytest.mark.parametrize("name", ["MGDA", "CAGrad", "PCGrad"])
def test_aggregator(benchmark, name: str, shape: tuple[int, int]) -> None:
    agg = {"MGDA": MGDA, "CAGrad": CAGrad, "PCGrad": PCGrad}[name]()
    G = _gradients(*shape)
    d = benchmark(agg, G)
    assert d.shape == (shape[1],) and bool(torch.isfinite(d).all())


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"m{s[0]}-d{s[1]}")
def test_modo(benchmark, shape: tuple[int, int]) -> None:
    agg = MoDo(gamma=0.1)
    G1, G2 = _gradients(*shape, seed=0), _gradients(*shape, seed=1)
    d = benchmark(agg, G1, G2)
    assert d.shape == (shape[1],) and bool(torch.isfinite(d).all())
