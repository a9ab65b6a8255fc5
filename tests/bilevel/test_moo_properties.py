"""The shared aggregator properties (tests/bilevel/_moo_asserts.py) checked on MGDA, CAGrad, PCGrad and MoDo.

Which property holds for which aggregator (and why the others are left out):

- every aggregator: structure (d = wᵀG, finite), conic weights, zero in → zero out, finite at extreme
  scales, input left unchanged;
- convex weights (on the simplex): MGDA, MoDo (CAGrad's are g₀ plus a conic term, PCGrad's sum to ≥ m);
- non-conflicting: MGDA (min-norm point), and PCGrad for two objectives; CAGrad and MoDo trade some
  conflict for progress on the mean;
- permutation invariance: MGDA, CAGrad, MoDo (PCGrad draws a random order over the objectives);
- scale equivariance d(cG) = c·d(G): MGDA, CAGrad, PCGrad (MoDo's λ step is γ·GGᵀλ, quadratic in c).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from bilevel.moo import MGDA, CAGrad, MoDo, PCGrad
from tests.bilevel import _moo_asserts as A


def _matrix(seed: int, m: int, d: int, shift: float = 0.0, spread: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(m, d, generator=g, dtype=torch.float64)
    G = G + shift * torch.randn(d, generator=g, dtype=torch.float64)
    return G * torch.exp(spread * torch.randn(m, 1, generator=g, dtype=torch.float64))


def _pareto_stationary() -> torch.Tensor:
    g = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    return torch.stack([g, -0.5 * g, torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64)])


MATRICES: dict[str, torch.Tensor] = {
    "m2": _matrix(0, 2, 5),
    "m2-aligned": _matrix(1, 2, 5, shift=3.0),
    "m3-shift": _matrix(2, 3, 7, shift=1.0),
    "m5-spread": _matrix(3, 5, 9, spread=2.0),
    "m8-wide": _matrix(4, 8, 40, shift=0.5),
    "m6-tall": _matrix(5, 6, 3),
    "rank-deficient": torch.cat([_matrix(6, 2, 6), _matrix(6, 2, 6)]),
    "pareto-stationary": _pareto_stationary(),
}

AGGREGATORS: dict[str, Callable[[], object]] = {
    "mgda": MGDA,
    "cagrad": lambda: CAGrad(0.4),
    "pcgrad": lambda: PCGrad(3),
    "modo": lambda: MoDo(gamma=0.2, rho=0.1),
}
ALL = tuple(AGGREGATORS)

PROPERTIES: dict[str, tuple[Callable[..., None], tuple[str, ...]]] = {
    "structure": (A.assert_expected_structure, ALL),
    "conic": (A.assert_conic, ALL),
    "simplex": (A.assert_on_simplex, ("mgda", "modo")),
    "non_conflicting": (A.assert_non_conflicting, ("mgda",)),
    "permutation": (A.assert_permutation_invariant, ("mgda", "cagrad", "modo")),
    "scale": (A.assert_scale_equivariant, ("mgda", "cagrad", "pcgrad")),
    "extreme_scales": (A.assert_finite_at_extreme_scales, ALL),
    "input_unchanged": (A.assert_input_unchanged, ALL),
}

CASES = [
    pytest.param(check, AGGREGATORS[agg], G, id=f"{prop}-{agg}-{name}")
    for prop, (check, aggs) in PROPERTIES.items()
    for agg in aggs
    for name, G in MATRICES.items()
]


@pytest.mark.parametrize(("check", "make", "G"), CASES)
def test_property(check, make, G) -> None:
    check(make, G)


@pytest.mark.parametrize("make", AGGREGATORS.values(), ids=AGGREGATORS.keys())
def test_zero_gradients_give_zero(make) -> None:
    A.assert_zero_for_zero(make)


@pytest.mark.parametrize("name", [n for n, G in MATRICES.items() if G.shape[0] == 2])
def test_pcgrad_two_objectives_is_non_conflicting(name: str) -> None:
    A.assert_non_conflicting(AGGREGATORS["pcgrad"], MATRICES[name])


def test_the_checks_can_fail() -> None:
    """Each check rejects an aggregator that breaks its property (so none of them passes vacuously)."""

    class Ascent(MGDA):  # negative weights: not conic, conflicting, not on the simplex
        def compute_weights(self, gramian, cross_gramian, losses):
            return -super().compute_weights(gramian, cross_gramian, losses)

    class First(MGDA):  # always the first objective: not permutation invariant
        def compute_weights(self, gramian, cross_gramian, losses):
            w = torch.zeros(gramian.shape[0], dtype=gramian.dtype)
            w[0] = 1.0
            return w

    class Squared(MGDA):  # weights grow with the scale: not scale equivariant
        def compute_weights(self, gramian, cross_gramian, losses):
            return super().compute_weights(gramian, cross_gramian, losses) * float(gramian.trace())

    G = MATRICES["m3-shift"]
    for check, make in [
        (A.assert_conic, Ascent),
        (A.assert_on_simplex, Ascent),
        (A.assert_non_conflicting, Ascent),
        (A.assert_permutation_invariant, First),
        (A.assert_scale_equivariant, Squared),
    ]:
        with pytest.raises(AssertionError):
            check(make, G)
