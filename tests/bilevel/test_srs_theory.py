"""bilevel.theory.srs: closed forms against reference values, exact arithmetic, enumeration, independent
recursions, and Monte Carlo runs of the samplers themselves."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bilevel.sampling import FixedSubsetSampler, FreshSubsetSampler, SoftRandomSampler, draw_count
from bilevel.theory import srs


# ------------------------------------------------------------------- reference values (algorithms.md §8)
def test_reference_values_c12_to_c15() -> None:
    np.testing.assert_allclose(
        srs.expected_unique_fraction(10**4, [0.1, 0.3, 0.5, 1.0]),
        [0.09517, 0.25919, 0.39348, 0.63214],
        atol=1e-5,
    )
    assert float(srs.prob_unseen(10**4, 0.3, 10)) == pytest.approx(0.0498, abs=1e-4)  # C13
    np.testing.assert_allclose(srs.duplicate_rate(10**7, [1.0, 0.1]), [0.368, 0.048], atol=5e-4)  # C14
    # C15: N H_N / n = 32.6 epochs' worth of draws; whole epochs add about 1/2
    assert float(srs.expected_draws_to_cover(10**4)) / 3000 == pytest.approx(32.6, abs=0.05)
    e = float(srs.expected_epochs_to_cover(10**4, 0.3))
    assert 32.6 <= e < 33.63
    assert float(srs.cover_tail_limit(3.09)) == pytest.approx(0.0445, abs=5e-4)
    assert float(srs.unique_variance(10**4, 0.3)) == pytest.approx(273.6, abs=0.1)  # §6.2 table


def test_limits_in_s() -> None:
    s = np.array([0.05, 0.3, 1.0, 2.0])
    np.testing.assert_allclose(srs.expected_unique_fraction(10**8, s), -np.expm1(-s), rtol=1e-7)
    np.testing.assert_allclose(srs.duplicate_rate(10**8, s), 1 + np.expm1(-s) / s, rtol=1e-6)
    np.testing.assert_allclose(srs.prob_unseen(10**8, s, 7), np.exp(-7 * s), rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 10**6), ratio=st.floats(1e-4, 5.0))
def test_num_draws_matches_the_sampler(n: int, ratio: float) -> None:
    assert int(srs.num_draws(n, ratio)) == draw_count(n, ratio)


def test_vectorised_broadcasting() -> None:
    N = np.array([[100], [1000], [10000]])
    s = np.array([0.1, 0.5, 1.0])
    out = srs.expected_unique_fraction(N, s)
    assert out.shape == (3, 3)
    assert out[1, 2] == pytest.approx(float(srs.expected_unique_fraction(1000, 1.0)), rel=1e-15)
    assert srs.prob_unseen(N, s, np.arange(3)[:, None, None]).shape == (3, 3, 3)
    assert srs.expected_epochs_to_cover([10, 100], 0.5).shape == (2,)
    assert srs.prob_not_covered(50, [0.5, 1.0], [[10], [20]]).shape == (2, 2)


# ------------------------------------------------------------------------------ occupancy law
def _brute_force_pmf(N: int, n: int) -> list[Fraction]:
    counts = [0] * (N + 1)
    for seq in itertools.product(range(N), repeat=n):
        counts[len(set(seq))] += 1
    return [Fraction(c, N**n) for c in counts]


@pytest.mark.parametrize(("N", "n"), [(1, 3), (2, 5), (3, 4), (4, 6), (5, 5), (6, 3), (3, 0)])
def test_exact_pmf_equals_enumeration(N: int, n: int) -> None:
    exact = _brute_force_pmf(N, n)
    got = srs.occupancy_pmf_exact(N, n)
    np.testing.assert_allclose(got, [float(x) for x in exact], rtol=1e-14, atol=1e-300)


def test_exact_pmf_equals_stirling_numbers_where_inclusion_exclusion_fails() -> None:
    # P(U = k) = C(N, k) k! S(n, k) / N^n with Stirling numbers of the second kind in exact integers.
    N, n = 300, 400
    row = [1] + [0] * N  # S(0, k)
    for t in range(1, n + 1):
        new = [0] * (N + 1)
        for k in range(1, min(t, N) + 1):
            new[k] = k * row[k] + row[k - 1]
        row = new
    exact = [Fraction(math.comb(N, k) * math.factorial(k) * row[k], N**n) for k in range(N + 1)]
    ref = np.array([float(x) for x in exact])
    got = srs.occupancy_pmf_exact(N, n)
    big = ref > 1e-250
    np.testing.assert_allclose(got[big], ref[big], rtol=1e-11)
    # The textbook alternating sum in float64 is useless here (shown so the test documents why).
    k = 190
    alt = math.comb(N, k) * sum((-1) ** j * math.comb(k, j) * ((k - j) / N) ** n for j in range(k + 1))
    assert not math.isclose(alt, ref[k], rel_tol=1e-2)


@pytest.mark.parametrize(("N", "s"), [(1000, 0.05), (1000, 1.0), (10**4, 0.3), (10**4, 2.0), (20, 3.0)])
def test_exact_pmf_moments_match_the_closed_forms(N: int, s: float) -> None:
    p = srs.occupancy_pmf_exact(N, draw_count(N, s))
    k = np.arange(N + 1)
    mu = float((k * p).sum())
    var = float(((k - mu) ** 2 * p).sum())
    skew = float(((k - mu) ** 3 * p).sum()) / var**1.5
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert mu == pytest.approx(float(srs.expected_unique(N, s)), rel=1e-12)
    assert var == pytest.approx(float(srs.unique_variance(N, s)), rel=1e-9)
    assert skew == pytest.approx(float(srs.unique_skewness(N, s)), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize(("N", "s"), [(1000, 0.2), (1000, 1.0), (10**4, 0.1), (10**4, 0.5), (3000, 4.0)])
def test_approximation_error_is_within_the_documented_bound(N: int, s: float) -> None:
    n = draw_count(N, s)
    sd = math.sqrt(float(srs.unique_variance(N, s)))
    assert sd >= 2
    tv = 0.5 * np.abs(srs.occupancy_pmf_exact(N, n) - srs.occupancy_pmf_approx(N, n)).sum()
    assert tv <= 0.05 / sd**2


def test_occupancy_pmf_dispatch_and_errors() -> None:
    p = srs.occupancy_pmf(10**6, 0.3)  # approximation (exact would cost n^2 = 9e10)
    assert p.shape == (10**6 + 1,) and p.sum() == pytest.approx(1.0, abs=1e-12)
    assert float((np.arange(10**6 + 1) * p).sum()) == pytest.approx(
        float(srs.expected_unique(10**6, 0.3)), rel=1e-7
    )
    np.testing.assert_array_equal(srs.occupancy_pmf(500, draws=200), srs.occupancy_pmf_exact(500, 200))
    with pytest.raises(ValueError, match="exactly one of ratio= or draws="):
        srs.occupancy_pmf(10)
    with pytest.raises(ValueError, match="method must be one of"):
        srs.occupancy_pmf(10, 0.5, method="fast")
    with pytest.raises(ValueError, match="ratio must be > 0"):
        srs.occupancy_pmf(10, 0.0)


def test_bad_input_to_theory_functions() -> None:
    with pytest.raises(TypeError, match="n_data must be integer"):
        srs.expected_unique_fraction(10.5, 0.3)
    with pytest.raises(ValueError, match="n_data must be >= 1"):
        srs.expected_unique_fraction(0, 0.3)
    with pytest.raises(ValueError, match="ratio must be finite and > 0"):
        srs.prob_unseen(10, -0.1, 3)
    with pytest.raises(ValueError, match=r"ratio must lie in \(0, 1\]"):
        srs.prob_unseen(10, 1.5, 3, scheme="without_replacement")
    with pytest.raises(ValueError, match="scheme must be one of"):
        srs.prob_unseen(10, 0.5, 3, scheme="bogus")
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        srs.prob_unseen(10, 0.5, -1)


# ------------------------------------------------------------------------- Monte Carlo of the samplers
def test_unique_fraction_and_variance_against_the_sampler() -> None:
    N, s, E = 2000, 0.3, 600
    sampler = SoftRandomSampler(N, s, generator=0)
    u = np.array([sampler.indices(e).unique().numel() for e in range(E)], dtype=float)
    mu, var = float(srs.expected_unique(N, s)), float(srs.unique_variance(N, s))
    assert abs(u.mean() - mu) < 4 * math.sqrt(var / E)
    # sample variance: relative SE ≈ sqrt(2/(E-1)) ≈ 0.058; allow 4 SE
    assert abs(u.var(ddof=1) / var - 1) < 4 * math.sqrt(2 / (E - 1))
    # the whole law: the empirical histogram against the pmf (chi-square over pooled bins, p < 1e-3 threshold)
    pmf = srs.occupancy_pmf(N, s)
    cdf = np.cumsum(pmf)
    cuts = np.searchsorted(cdf, np.linspace(0, 1, 11)[1:-1])  # 10 bins of ~equal probability
    probs = np.diff(np.concatenate([[0.0], cdf[cuts], [1.0]]))
    obs = np.bincount(np.searchsorted(cuts, u, side="left"), minlength=10)
    chi2 = float(((obs - E * probs) ** 2 / (E * probs)).sum())
    assert chi2 < 27.9  # chi-square(9) 0.999 quantile


@pytest.mark.parametrize("scheme", ["srs", "without_replacement", "fixed_subset"])
def test_prob_unseen_against_the_samplers(scheme: str) -> None:
    N, s, T, runs = 500, 0.2, 8, 60
    make = {
        "srs": lambda seed: SoftRandomSampler(N, s, generator=seed),
        "without_replacement": lambda seed: FreshSubsetSampler(N, s, generator=seed),
        "fixed_subset": lambda seed: FixedSubsetSampler(N, s, generator=seed),
    }[scheme]
    unseen = np.zeros(T + 1)
    for r in range(runs):
        smp = make(r)
        seen = torch.zeros(N, dtype=torch.bool)
        unseen[0] += 1.0
        for e in range(T):
            seen[smp.indices(e)] = True
            unseen[e + 1] += 1 - float(seen.double().mean())
    unseen /= runs
    theory = srs.prob_unseen(N, s, np.arange(T + 1), scheme=scheme)
    # each MC value averages runs*N indicators (positively correlated within a run); tolerance 0.02 absolute
    np.testing.assert_allclose(unseen, theory, atol=0.02)


def test_cover_time_against_the_sampler_and_an_independent_recursion() -> None:
    N, s = 60, 0.5
    n = draw_count(N, s)
    # independent: P(D > m) = 1 - P(U_m = N) from the Markov-chain recursion
    T = np.arange(0, 40)
    chain = np.array([1 - srs.occupancy_pmf_exact(N, int(n * t))[N] for t in T])
    np.testing.assert_allclose(srs.prob_not_covered(N, s, T), chain, atol=1e-9)
    assert float(srs.expected_epochs_to_cover(N, s)) == pytest.approx(
        float(chain.sum() + sum(1 - srs.occupancy_pmf_exact(N, int(n * t))[N] for t in range(40, 200))),
        abs=1e-8,
    )
    # Monte Carlo: whole epochs until every item is seen, 400 runs of the sampler
    taus = []
    for r in range(400):
        smp = SoftRandomSampler(N, s, generator=1000 + r)
        seen = torch.zeros(N, dtype=torch.bool)
        e = 0
        while not bool(seen.all()):
            seen[smp.indices(e)] = True
            e += 1
            assert e <= 1000, f"run {r}: {N} items not covered in 1000 epochs (expected about 10)"
        taus.append(e)
    t = np.array(taus, dtype=float)
    assert abs(t.mean() - float(srs.expected_epochs_to_cover(N, s))) < 4 * t.std(ddof=1) / math.sqrt(len(t))
    # bracketing by E[D]/n
    ed = float(srs.expected_draws_to_cover(N)) / n
    assert ed <= float(srs.expected_epochs_to_cover(N, s)) < ed + 1


def test_cover_tail_approaches_the_erdos_renyi_limit() -> None:
    N = 10**4
    for c in (-1.0, 0.0, 1.0, 3.09):
        m = round(N * (math.log(N) + c))
        exact = float(srs.prob_not_covered(N, m / N, 1))
        assert exact == pytest.approx(float(srs.cover_tail_limit(c)), abs=0.01)


def test_harmonic_numbers() -> None:
    for n in (0, 1, 2, 10, 63, 64, 100, 5000):
        exact = math.fsum(1.0 / k for k in range(1, n + 1))
        assert float(srs.harmonic_number(n)) == pytest.approx(exact, rel=1e-14, abs=1e-15)


# ------------------------------------------------------------------------------ optimisation bounds
def test_nonconvex_bound_formula_and_optimal_step() -> None:
    got = float(srs.nonconvex_sgd_bound(2.0, 4.0, 3.0, 0.1, 500, 8))
    assert got == pytest.approx(2 * 2.0 / (0.1 * 500) + 4.0 * 0.1 * 3.0 / 8, rel=1e-15)
    eta = float(srs.optimal_lr(2.0, 4.0, 3.0, 500, 8))
    grid = np.linspace(1e-4, 0.25, 4000)
    assert float(srs.nonconvex_sgd_bound(2.0, 4.0, 3.0, eta, 500, 8)) <= srs.nonconvex_sgd_bound(
        2.0, 4.0, 3.0, grid, 500, 8
    ).min() * (1 + 1e-6)
    # SRS form: K = T * ceil(n/B) steps; 25 draws in batches of 8 -> sizes 8, 8, 8, 1
    b = float(srs.srs_convergence_bound(1.0, 2.0, 1.0, 0.1, 100, 0.25, 3, 8))
    assert b == pytest.approx(2 / (0.1 * 12) + 2.0 * 0.1 * (3 / 8 + 1) / 4, rel=1e-14)
    with pytest.raises(ValueError, match="lr <= 1/smoothness"):
        srs.nonconvex_sgd_bound(1.0, 10.0, 1.0, 0.2, 10)


def test_nonconvex_bound_holds_on_a_problem_with_exact_constants() -> None:
    # F(w) = (1/N) sum_i ||w - x_i||^2 / 2: L = 1, per-sample gradient variance
    # sigma^2 = mean ||x_i - xbar||^2 exactly, Delta = ||w0 - xbar||^2 / 2.
    # Average over 40 seeds of (1/K) sum_k ||grad F(w_k)||^2.
    g = torch.Generator().manual_seed(0)
    N, d, B, eta, epochs, s = 200, 5, 4, 0.3, 3, 0.5
    x = torch.randn(N, d, generator=g, dtype=torch.float64) * 2
    xbar = x.mean(0)
    sigma2 = float(((x - xbar) ** 2).sum(1).mean())
    w0 = torch.full((d,), 5.0, dtype=torch.float64)
    delta = 0.5 * float(((w0 - xbar) ** 2).sum())
    avg = []
    for seed in range(40):
        smp = SoftRandomSampler(N, s, generator=seed)
        w, acc, K = w0.clone(), 0.0, 0
        for e in range(epochs):
            for batch in smp.indices(e).split(B):
                acc += float(((w - xbar) ** 2).sum())
                w = w - eta * (w - x[batch].mean(0))
                K += 1
        avg.append(acc / K)
    measured = float(np.mean(avg))
    bound = float(srs.srs_convergence_bound(delta, 1.0, sigma2, eta, N, s, epochs, B))
    assert measured <= bound
    assert measured >= 0.05 * bound  # and the bound is not vacuous here


def test_convex_stability_bound_holds_for_logistic_regression() -> None:
    # Two data sets differing in one example, the same SRS draws: E|loss(w) - loss(w')| <= G E||w - w'||,
    # and Hardt et al. bound G E||w - w'|| by 2 G^2 alpha K / N.
    g = torch.Generator().manual_seed(1)
    N, d, s, epochs = 100, 3, 0.5, 4
    X = torch.randn(N, d, generator=g, dtype=torch.float64)
    X = X / X.norm(dim=1, keepdim=True)  # ||x|| = 1: logistic loss is 1-Lipschitz and 1/4-smooth
    y = torch.randint(0, 2, (N,), generator=g).double() * 2 - 1
    X2, y2 = X.clone(), y.clone()
    X2[0], y2[0] = -X[0], -y[0] * 0 + 1
    G, beta, alpha = 1.0, 0.25, 1.0
    gaps = []
    for seed in range(50):
        smp = SoftRandomSampler(N, s, generator=seed)
        w, w2 = torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
        for e in range(epochs):
            for i in smp.indices(e).tolist():
                w = w + alpha * y[i] * X[i] * torch.sigmoid(-y[i] * (X[i] @ w))
                w2 = w2 + alpha * y2[i] * X2[i] * torch.sigmoid(-y2[i] * (X2[i] @ w2))
        gaps.append(G * float((w - w2).norm()))
    bound = float(srs.srs_generalization_bound(N, s, epochs, G, beta, alpha, convex=True))
    assert bound == pytest.approx(2 * G**2 * alpha * draw_count(N, s) * epochs / N)
    assert float(np.mean(gaps)) <= bound
    with pytest.raises(ValueError, match="lr <= 2/smoothness"):
        srs.stability_bound_convex(1.0, 4.0, 1.0, 10, 10)


def test_nonconvex_stability_bound_formula() -> None:
    G, beta, c, K, N = 2.0, 3.0, 0.5, 1000, 500
    bc = beta * c
    want = (1 + 1 / bc) / (N - 1) * (2 * c * G**2) ** (1 / (bc + 1)) * K ** (bc / (bc + 1))
    assert float(srs.stability_bound_nonconvex(G, beta, c, K, N)) == pytest.approx(want, rel=1e-14)
    smaller = srs.srs_generalization_bound(N, [0.1, 0.5, 1.0], 10, G, beta, c, convex=False)
    assert np.all(np.diff(smaller) > 0)  # fewer SRS steps -> a smaller bound
