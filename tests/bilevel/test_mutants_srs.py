"""`prob_unseen` at small N, where it differs from its N → ∞ limit $e^{-sT}$, against exact counts.

Two references that do not restate the implementation's formula:

- enumeration of every draw sequence (tiny N): the fraction of the $N^{nT}$ sequences of $nT$ uniform
  draws that miss item 0, as an exact fraction;
- the exact occupancy law of the number $U$ of distinct items in $nT$ draws (itself checked against
  enumeration in test_srs_theory.py): by symmetry $P(\\text{item unseen}) = 1 - E[U]/N$.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from bilevel.theory import srs


def _enumerated_unseen(N: int, draws: int) -> Fraction:
    missing = sum(0 not in seq for seq in itertools.product(range(N), repeat=draws))
    return Fraction(missing, N**draws)


@pytest.mark.parametrize(("N", "s", "T"), [(2, 1.0, 2), (3, 1.0, 2), (4, 0.5, 3), (3, 2.0, 1), (5, 0.4, 2)])
def test_prob_unseen_equals_enumeration(N: int, s: float, T: int) -> None:
    draws = srs.num_draws(N, s) * T
    assert draws <= 8  # keeps the enumeration small
    want = _enumerated_unseen(N, draws)
    assert float(srs.prob_unseen(N, s, T)) == pytest.approx(float(want), rel=1e-14)


@pytest.mark.parametrize(("N", "s", "T"), [(10, 1.0, 3), (7, 0.5, 4), (20, 0.3, 5), (50, 1.5, 2)])
def test_prob_unseen_equals_one_minus_mean_occupancy(N: int, s: float, T: int) -> None:
    draws = int(srs.num_draws(N, s)) * T
    pmf = np.asarray(srs.occupancy_pmf_exact(N, draws))
    mean_distinct = float(np.dot(np.arange(N + 1), pmf))
    assert float(srs.prob_unseen(N, s, T)) == pytest.approx(1 - mean_distinct / N, rel=1e-12)


def test_prob_unseen_at_n_10_is_not_its_limit() -> None:
    """N = 10, s = 1, T = 3: (9/10)^30 = 0.0424, while the N → ∞ limit e^{-3} is 0.0498."""
    exact = float(Fraction(9, 10) ** 30)
    got = float(srs.prob_unseen(10, 1.0, 3))
    assert got == pytest.approx(exact, rel=1e-14)
    assert round(got, 4) == 0.0424
    assert abs(got - math.exp(-3)) > 5e-3
