"""Properties of a gradient aggregator, written once and checked on every aggregator of ``bilevel.moo``.

Each check takes an aggregator *factory* (a fresh instance per call, so stateful aggregators such as
MoDo are compared from the same state) and a matrix G (m × d) of per-objective gradients, and asserts
one property of d = agg(G) = wᵀG with a tolerance relative to the scale of G (the solvers are exact to
rounding, so the tolerances are a few hundred ulps of the largest gradient, not solver tolerances):

- :func:`assert_expected_structure`: d has shape (d,), w has shape (m,), both finite, and d = wᵀG;
- :func:`assert_conic`: w ≥ 0, so d is a conic combination of the gradients;
- :func:`assert_on_simplex`: w ≥ 0 and Σw = 1 (a convex combination);
- :func:`assert_non_conflicting`: ⟨d, g_i⟩ ≥ 0 for every objective (no objective increases);
- :func:`assert_permutation_invariant`: permuting the objectives does not change d (the weights need
  not be unique: rank-deficient or Pareto-stationary G);
- :func:`assert_scale_equivariant`: d(cG) = c·d(G) for c > 0 (the weights do not depend on the scale);
- :func:`assert_zero_for_zero`: G = 0 gives d = 0;
- :func:`assert_finite_at_extreme_scales`: no NaN/inf for gradients of size 1e-100 or 1e100;
- :func:`assert_input_unchanged`: the call does not modify G.

This mirrors torchjd's ``tests/unit/aggregation/_asserts.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bilevel.moo import Aggregator

Factory = Callable[[], Aggregator]

#: relative tolerance (to the largest ‖g_i‖ or ‖g_i‖²) for float64 inputs
RTOL = 1e-9


def _scale(G: Tensor) -> float:
    return float(G.norm(dim=1).max())


def assert_expected_structure(make: Factory, G: Tensor) -> None:
    agg = make()
    w = agg.weights(G)
    d = make()(G)
    assert w.shape == (G.shape[0],), f"weights of shape {tuple(w.shape)} for {G.shape[0]} objectives"
    assert d.shape == G.shape[1:], f"direction of shape {tuple(d.shape)} for G of shape {tuple(G.shape)}"
    assert bool(torch.isfinite(w).all()) and bool(torch.isfinite(d).all()), (w, d)
    torch.testing.assert_close(d, w @ G, atol=RTOL * _scale(G), rtol=0)
    assert agg.last_weights is not None
    torch.testing.assert_close(agg.last_weights, w, atol=0, rtol=0)  # the same tensor, recorded


def assert_conic(make: Factory, G: Tensor) -> None:
    w = make().weights(G)
    assert float(w.min()) >= -RTOL * float(w.abs().max()), f"negative weight: {w.tolist()}"


def assert_on_simplex(make: Factory, G: Tensor) -> None:
    w = make().weights(G)
    assert float(w.min()) >= 0.0, f"negative weight: {w.tolist()}"
    assert abs(float(w.sum()) - 1.0) <= 1e-12, f"weights sum to {float(w.sum())}"


def assert_non_conflicting(make: Factory, G: Tensor) -> None:
    d = make()(G)
    assert float((G @ d).min()) >= -RTOL * _scale(G) ** 2, f"⟨d, g_i⟩ = {(G @ d).tolist()}"


def assert_permutation_invariant(make: Factory, G: Tensor, *, n_runs: int = 3, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    d = make()(G)
    for _ in range(n_runs):
        perm = torch.randperm(G.shape[0], generator=gen)
        torch.testing.assert_close(make()(G[perm]), d, atol=1e-7 * _scale(G), rtol=0)


def assert_scale_equivariant(make: Factory, G: Tensor, scales: tuple[float, ...] = (1e-3, 0.5, 7.0)) -> None:
    d = make()(G)
    for c in scales:
        torch.testing.assert_close(make()(c * G), c * d, atol=1e-7 * c * _scale(G), rtol=0)


def assert_zero_for_zero(make: Factory, m: int = 3, d: int = 4) -> None:
    out = make()(torch.zeros(m, d, dtype=torch.float64))
    # 0·w = 0 exactly for any finite weights and any kernel, so this comparison is exact by arithmetic
    assert bool((out == 0).all()), f"zero gradients give {out.tolist()}"


def assert_finite_at_extreme_scales(make: Factory, G: Tensor) -> None:
    for c in (1e-100, 1e100):
        w = make().weights(c * G)
        d = make()(c * G)
        assert bool(torch.isfinite(w).all()), f"weights at scale {c}: {w.tolist()}"
        assert bool(torch.isfinite(d).all()), f"direction at scale {c}: {d.tolist()}"


def assert_input_unchanged(make: Factory, G: Tensor) -> None:
    before = G.clone()
    make()(G)
    make().weights(G)
    assert torch.equal(G, before), "the aggregator modified its input"  # a tensor against its own copy
