"""bilevel.theory.srs against arbitrary-precision references (mpmath), for 1 <= N <= 1e12, rtol 1e-9,
and its refusals of arguments outside the range where that accuracy holds."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bilevel.sampling import draw_count
from bilevel.theory import srs
from tests.bilevel._asserts import BadInput, assert_python_float, assert_rejects

RTOL = 1e-9
NS = [1, 2, 3, 7, 10, 100, 10**3, 12345, 10**5, 10**6, 10**8, 10**10, 10**12]
RATIOS = [1e-6, 0.01, 0.3, 1.0, 4.0]
GRID = [(N, s) for N in NS for s in RATIOS]


def _dps(N: int) -> int:
    return 50 + 4 * len(str(N))


def _close(got: float, want: mpmath.mpf, what: str) -> None:
    w = float(want)
    assert_python_float(got, what)
    # abs_tol only matters where the value is exactly 0 (e.g. the skewness of a fair two-point law), which
    # either side may carry as a residue of its working precision
    assert math.isclose(got, w, rel_tol=RTOL, abs_tol=1e-25), f"{what}: {got!r} vs {w!r}"


def _q(N: int, r: int, m: int) -> mpmath.mpf:
    return (1 - mpmath.mpf(r) / N) ** m if r < N else mpmath.mpf(0 if m > 0 else 1)


def _moments(N: int, m: int) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]:
    """Mean, variance and third central moment of the number of occupied bins (textbook formulas)."""
    f1 = N * _q(N, 1, m)
    f2 = N * (N - 1) * _q(N, 2, m)
    f3 = N * (N - 1) * (N - 2) * _q(N, 3, m)
    var = f2 + f1 - f1**2
    k3_empty = f3 + 3 * f2 + f1 - 3 * f1 * (f2 + f1) + 2 * f1**3
    return N - f1, var, -k3_empty


@pytest.mark.parametrize(("N", "s"), GRID, ids=[f"N={N}-s={s}" for N, s in GRID])
def test_one_epoch_quantities_match_mpmath(N: int, s: float) -> None:
    n = draw_count(N, s)
    assert srs.num_draws(N, s) == n and type(srs.num_draws(N, s)) is int
    with mpmath.workdps(_dps(N)):
        frac = 1 - _q(N, 1, n)
        _close(srs.expected_unique_fraction(N, s), frac, "expected_unique_fraction")
        _close(srs.expected_unique(N, s), N * frac, "expected_unique")
        _close(srs.duplicate_rate(N, s), 1 - N * frac / n, "duplicate_rate")
        for T in (1, 3, 40):
            _, var, k3 = _moments(N, n * T)
            _close(srs.unique_variance(N, s, T), var, f"unique_variance T={T}")
            skew = k3 / var**1.5 if var > 0 else mpmath.mpf(0)
            _close(srs.unique_skewness(N, s, T), skew, f"unique_skewness T={T}")


@settings(max_examples=60, deadline=None)
@given(
    N=st.integers(1, 10**12) | st.integers(1, 10**4),
    s=st.floats(1e-7, 8.0),
    T=st.integers(1, 30),
)
def test_moments_at_random_points_match_mpmath(N: int, s: float, T: int) -> None:
    n = draw_count(N, s)
    with mpmath.workdps(_dps(N)):
        _, var, k3 = _moments(N, n * T)
        if 0 < var < 1e-290:  # beyond float64's range: nothing to compare
            return
        _close(srs.unique_variance(N, s, T), var, "unique_variance")
        _close(srs.unique_skewness(N, s, T), k3 / var**1.5 if var > 0 else mpmath.mpf(0), "unique_skewness")
        _close(srs.duplicate_rate(N, s), 1 - N * (1 - _q(N, 1, n)) / n, "duplicate_rate")
        _close(srs.expected_coverage(N, s, T), 1 - _q(N, 1, n * T), "expected_coverage")


@pytest.mark.parametrize(("N", "s"), GRID, ids=[f"N={N}-s={s}" for N, s in GRID])
def test_coverage_over_epochs_matches_mpmath(N: int, s: float) -> None:
    n = draw_count(N, s)
    k = min(n, N)
    with mpmath.workdps(_dps(N)):
        for T in (0, 1, 2, 10):
            unseen = {
                "srs": _q(N, 1, n * T),
                "full": mpmath.mpf(1 if T == 0 else 0),
            }
            if s <= 1:
                unseen["without_replacement"] = (mpmath.mpf(N - k) / N) ** T
                unseen["fixed_subset"] = mpmath.mpf(1) if T == 0 else mpmath.mpf(N - k) / N
            for scheme, want in unseen.items():
                _close(srs.prob_unseen(N, s, T, scheme=scheme), want, f"prob_unseen {scheme} T={T}")
                _close(srs.expected_coverage(N, s, T, scheme=scheme), 1 - want, f"coverage {scheme} T={T}")


@pytest.mark.parametrize("N", NS)
def test_coupon_collector_matches_mpmath(N: int) -> None:
    with mpmath.workdps(40):
        _close(srs.harmonic_number(N), mpmath.harmonic(N), "harmonic_number")
        _close(srs.expected_draws_to_cover(N), N * mpmath.harmonic(N), "expected_draws_to_cover")


def _tail(N: int, m: int) -> mpmath.mpf:
    """P(D > m) by inclusion–exclusion in high precision, up to terms below 1e-45 (λ <= 60 here)."""
    if N == 1:
        return mpmath.mpf(0 if m >= 1 else 1)
    if m < N:
        return mpmath.mpf(1)
    total, lam = mpmath.mpf(0), N * (1 - mpmath.mpf(1) / N) ** m
    for j in range(1, min(N - 1, 200) + 1):
        term = mpmath.binomial(N, j) * (1 - mpmath.mpf(j) / N) ** m
        total += term if j % 2 else -term
        if j > lam and term < mpmath.mpf(10) ** -45:  # the terms decrease from here on
            break
    return total


@pytest.mark.parametrize("N", [2, 5, 30, 300, 10**4, 10**6, 10**9, 10**12])
def test_cover_tail_matches_mpmath_across_the_transition(N: int) -> None:
    # m = N (ln N + c): the expected number of unseen items λ ≈ e^-c runs from 40 to 1e-12
    with mpmath.workdps(80):
        for c in (-3.7, -3.0, -2.0, -1.0, -0.3, 0.0, 0.5, 1.0, 2.5, 5.0, 12.0, 27.0):
            m = max(1, round(N * (math.log(N) + c)))
            lam = N * (1 - 1 / N) ** m
            if lam > 40:  # the reference sum would need more terms; the value is 1 to within e^-40
                assert float(srs.prob_not_covered(N, m / N, 1)) == pytest.approx(1.0, rel=1e-15)
                continue
            s = m / N
            n = draw_count(N, s)
            _close(srs.prob_not_covered(N, s, 1), _tail(N, n), f"prob_not_covered m={n}")


@pytest.mark.parametrize(
    ("N", "s"), [(1, 0.5), (7, 1.0), (60, 0.5), (10**3, 0.3), (10**6, 1.0), (10**12, 2.0)]
)
def test_expected_epochs_to_cover_matches_mpmath(N: int, s: float) -> None:
    n = draw_count(N, s)
    with mpmath.workdps(60):
        total, T = mpmath.mpf(0), 0
        while True:
            m = n * T
            lam = N * (1 - mpmath.mpf(1) / N) ** m if N > 1 else mpmath.mpf(0)
            if m >= N and lam < mpmath.mpf(10) ** -25:
                break
            total += 1 if lam > 60 else _tail(N, m)
            T += 1
            assert T <= 10**5, "the reference series did not converge in 10^5 epochs"
        _close(srs.expected_epochs_to_cover(N, s), total, "expected_epochs_to_cover")


def test_cover_tail_limit_matches_mpmath() -> None:
    with mpmath.workdps(40):
        for c in (-30.0, -3.0, -0.5, 0.0, 1e-8, 3.09, 20.0, 300.0):
            _close(srs.cover_tail_limit(c), -mpmath.expm1(-mpmath.exp(-c)), f"cover_tail_limit({c})")


def test_bounds_match_mpmath_and_return_floats() -> None:
    with mpmath.workdps(40):
        D, L, S2, eta, K, B = mpmath.mpf(2), mpmath.mpf(4), mpmath.mpf(3), mpmath.mpf("0.1"), 500, 8
        _close(
            srs.nonconvex_sgd_bound(2.0, 4.0, 3.0, 0.1, 500, 8), 2 * D / (eta * K) + L * eta * S2 / B, "sgd"
        )
        _close(srs.optimal_lr(2.0, 4.0, 3.0, 500, 8), min(1 / L, mpmath.sqrt(2 * D * B / (L * S2 * K))), "lr")
        G, beta, c, N = mpmath.mpf(2), mpmath.mpf(3), mpmath.mpf("0.5"), 500
        bc = beta * c
        want = (1 + 1 / bc) / (N - 1) * (2 * c * G**2) ** (1 / (bc + 1)) * mpmath.mpf(K) ** (bc / (bc + 1))
        _close(srs.stability_bound_nonconvex(2.0, 3.0, 0.5, K, N), want, "stability_bound_nonconvex")
        _close(
            srs.stability_bound_convex(1.0, 0.25, 1.0, 10**12, 10**12),
            mpmath.mpf(2),
            "stability_bound_convex",
        )
    assert type(srs.steps_per_epoch(100, 0.25, 8)) is int
    assert isinstance(srs.expected_unique([10, 100], 0.5), np.ndarray)


def test_results_stay_accurate_for_huge_n_and_refuse_beyond_the_limit() -> None:
    # the largest accepted N: the fraction still tends to 1 - e^-s, variance to N e^-s (1 - (1 + s) e^-s)
    N, s = srs.MAX_COUNT, 0.3
    assert srs.expected_unique(N, s) == pytest.approx(N * -math.expm1(-s), rel=1e-9)
    assert srs.unique_variance(N, s) == pytest.approx(
        N * math.exp(-s) * (1 - (1 + s) * math.exp(-s)), rel=1e-6
    )
    assert srs.expected_unique(N, s) > 0


NOT_A_NUMBER = float("nan")
BAD = [
    BadInput("draw_count zero length", lambda: draw_count(0, 0.5), ValueError, "length must be >= 1"),
    BadInput("draw_count negative ratio", lambda: draw_count(10, -1.0), ValueError, "ratio must be > 0"),
    BadInput(
        "draw_count nan ratio", lambda: draw_count(10, NOT_A_NUMBER), ValueError, "ratio must be finite"
    ),
    BadInput("draw_count float length", lambda: draw_count(10.0, 0.5), TypeError, "length must be an int"),  # type: ignore[arg-type]
    BadInput(
        "num_draws int64 overflow", lambda: srs.num_draws(2**62, 4.0), ValueError, "n_data must be <= 2"
    ),
    BadInput("num_draws too many draws", lambda: srs.num_draws(2**52, 4.0), ValueError, "ratio . n_data"),
    BadInput(
        "expected_unique 1e19", lambda: srs.expected_unique(10**19, 0.3), ValueError, "n_data must be <="
    ),
    BadInput(
        "expected_unique 1e30", lambda: srs.expected_unique(10**30, 0.3), ValueError, "n_data must be <="
    ),
    BadInput(
        "expected_unique array 1e19", lambda: srs.expected_unique([10, 10**19], 0.3), ValueError, "n_data"
    ),
    BadInput("expected_unique bool", lambda: srs.expected_unique(True, 0.3), TypeError, "n_data"),
    BadInput(
        "unique_variance epochs overflow",
        lambda: srs.unique_variance(10**12, 1.0, 10**6),
        ValueError,
        "epochs",
    ),
    BadInput("prob_unseen nan ratio", lambda: srs.prob_unseen(10, NOT_A_NUMBER, 1), ValueError, "ratio"),
    BadInput("prob_unseen string ratio", lambda: srs.prob_unseen(10, "0.3", 1), TypeError, "ratio"),  # type: ignore[arg-type]
    BadInput(
        "optimal_lr zero gap", lambda: srs.optimal_lr(0, 1.0, 1.0, 10), ValueError, "initial_gap must be"
    ),
    BadInput(
        "optimal_lr zero gap and variance", lambda: srs.optimal_lr(0, 1.0, 0.0, 10), ValueError, "initial_gap"
    ),
    BadInput(
        "optimal_lr nan smoothness",
        lambda: srs.optimal_lr(1.0, NOT_A_NUMBER, 1.0, 10),
        ValueError,
        "smoothness",
    ),
    BadInput(
        "cover_tail_limit nan", lambda: srs.cover_tail_limit(NOT_A_NUMBER), ValueError, "c must be finite"
    ),
    BadInput(
        "cover_tail_limit inf", lambda: srs.cover_tail_limit([0.0, math.inf]), ValueError, "c must be finite"
    ),
    BadInput(
        "sgd bound overflow",
        lambda: srs.nonconvex_sgd_bound(1e308, 1.0, 0.0, 1e-10, 1),
        ValueError,
        "overflows",
    ),
    BadInput(
        "occupancy_pmf 1e9 items", lambda: srs.occupancy_pmf(10**9, 0.3), ValueError, "n_data = 1000000000"
    ),
    BadInput(
        "occupancy_pmf_exact 1e9", lambda: srs.occupancy_pmf_exact(10**9, 3), ValueError, "limited to n_data"
    ),
    BadInput(
        "occupancy_pmf_approx 1e9",
        lambda: srs.occupancy_pmf_approx(10**9, 3),
        ValueError,
        "limited to n_data",
    ),
    BadInput(
        "cover epochs tiny ratio", lambda: srs.expected_epochs_to_cover(10**12, 1e-6), ValueError, "too small"
    ),
    BadInput(
        "prob_not_covered negative epochs", lambda: srs.prob_not_covered(10, 0.5, -1), ValueError, "epochs"
    ),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_bad_input_is_refused_with_the_argument_named(case: BadInput) -> None:
    assert_rejects(case)
