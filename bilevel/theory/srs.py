r"""Closed forms for soft random sampling (SRS, arXiv 2311.12727): occupancy, coverage, cover time,
and the standard SGD convergence and stability bounds specialised to SRS's sampling.

Notation: :math:`N` items, ratio :math:`s`, :math:`n = \lceil sN \rceil` i.i.d. uniform draws per epoch,
:math:`T` epochs, :math:`U` = number of distinct items in one epoch, :math:`D` = draws until every item
has been seen (coupon collector), :math:`\tau = \lceil D/n \rceil` = epochs until full coverage.

Every function broadcasts its array arguments (numpy rules) and returns a float64 array, or a 0-d array
for scalar inputs. Derivations: ``theory/srs_*.md``. The paper's own constants were not available; the
convergence and generalization bounds are the standard SGD results (Ghadimi & Lan 2013; Hardt, Recht &
Singer 2016) applied to SRS, whose draws are exactly i.i.d. uniform with replacement.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bilevel._checks import check_choice, check_int, check_real

FloatArray = NDArray[np.float64]
_CEIL_RTOL = 1e-12  # same rule as bilevel.sampling.draw_count
_EULER_GAMMA = 0.57721566490153286
SCHEMES = ("srs", "without_replacement", "fixed_subset", "full")


# --------------------------------------------------------------------------------------------- inputs
def _as_count(x: ArrayLike, name: str, low: int) -> NDArray[np.int64]:
    a = np.asarray(x)
    if a.dtype == bool or a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be integer(s), got dtype {a.dtype}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise TypeError(f"{name} must be integer(s), got non-integer values")
    a = a.astype(np.int64)
    if a.size and a.min() < low:
        raise ValueError(f"{name} must be >= {low}, got {a.min()}")
    return a


def _as_ratio(x: ArrayLike, name: str = "ratio", *, allow_above_one: bool = True) -> FloatArray:
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)) or (a.size and a.min() <= 0):
        raise ValueError(f"{name} must be finite and > 0")
    if not allow_above_one and a.size and a.max() > 1:
        raise ValueError(f"{name} must lie in (0, 1] for this scheme, got {a.max()}")
    return a


def _as_positive(x: ArrayLike, name: str, *, allow_zero: bool = False) -> FloatArray:
    a = np.asarray(x, dtype=np.float64)
    bad = (a < 0) if allow_zero else (a <= 0)
    if not np.all(np.isfinite(a)) or (a.size and np.any(bad)):
        raise ValueError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}")
    return a


def num_draws(n_data: ArrayLike, ratio: ArrayLike) -> NDArray[np.int64]:
    r"""Draws per epoch :math:`n = \lceil sN \rceil` (at least 1), with the sampler's rounding rule."""
    N = _as_count(n_data, "n_data", 1)
    s = _as_ratio(ratio)
    x = s * N
    return np.maximum(1, np.ceil(x - _CEIL_RTOL * x)).astype(np.int64)


# ------------------------------------------------------------------------------------ one epoch (U)
def _log_q(N: NDArray[np.int64], r: int) -> FloatArray:
    """log(1 - r/N), -inf where r >= N."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(N > r, np.log1p(-r / np.maximum(N, 1)), -np.inf)
    return np.asarray(out, dtype=np.float64)


def _empty_moments(N: NDArray[np.int64], m: NDArray[np.int64]) -> tuple[FloatArray, FloatArray, FloatArray]:
    r"""Mean, variance and third central moment of the number of empty bins after ``m`` draws.

    Factorial moments :math:`E[(X)_r] = (N)_r (1 - r/N)^m`; the cancellations are removed by writing
    :math:`(1-2/N)^m = q_1^2 (1 + d_2)` and :math:`(1-3/N)^m = q_1^3 (1 + d_3)` with :math:`d_r` from expm1.
    """
    N = N.astype(np.float64) if N.dtype != np.float64 else N
    Ni = np.asarray(N).astype(np.int64)
    m = np.asarray(m, dtype=np.float64)
    l1, l2, l3 = _log_q(Ni, 1), _log_q(Ni, 2), _log_q(Ni, 3)
    with np.errstate(invalid="ignore", over="ignore"):
        q1 = np.exp(m * l1)
        q1 = np.where(m == 0, 1.0, q1)
        d2 = np.where(np.isfinite(l2), np.expm1(m * (l2 - 2 * l1)), -1.0)
        d3 = np.where(np.isfinite(l3), np.expm1(m * (l3 - 3 * l1)), -1.0)
        d2 = np.where(m == 0, 0.0, d2)
        d3 = np.where(m == 0, 0.0, d3)
    mu = N * q1
    var = N * q1 * (1 - q1) + N * (N - 1) * q1**2 * d2
    # κ3 = f3 + 3 f2 + f1 − 3μ(f2 + f1) + 2μ³, expanded in powers of N with the d-terms grouped.
    a3 = q1**3
    k3 = (
        N**3 * a3 * (d3 - 3 * d2)
        + 3 * N**2 * a3 * (d2 - d3)
        + 2 * N * a3 * (1 + d3)
        + 3 * N**2 * q1**2 * d2
        - 3 * N * q1**2 * (1 + d2)
        + N * q1
    )
    var = np.where(Ni == 1, 0.0, np.maximum(var, 0.0))
    k3 = np.where(Ni == 1, 0.0, k3)
    return (
        np.asarray(mu, dtype=np.float64),
        np.asarray(var, dtype=np.float64),
        np.asarray(k3, dtype=np.float64),
    )


def expected_unique_fraction(n_data: ArrayLike, ratio: ArrayLike) -> FloatArray:
    r"""Expected fraction of distinct items in one SRS epoch,
    :math:`E[U]/N = 1 - (1 - 1/N)^{\lceil sN \rceil}`.

    Tends to :math:`1 - e^{-s}` as :math:`N \to \infty` (0.2592 at :math:`s = 0.3`). Computed as
    ``-expm1(n * log1p(-1/N))`` (no cancellation).
    """
    N = _as_count(n_data, "n_data", 1)
    n = num_draws(N, ratio)
    return np.asarray(-np.expm1(n * _log_q(N, 1)), dtype=np.float64)


def expected_unique(n_data: ArrayLike, ratio: ArrayLike) -> FloatArray:
    """Expected number of distinct items in one SRS epoch, :math:`N (1 - (1 - 1/N)^n)`."""
    N = _as_count(n_data, "n_data", 1)
    return N * expected_unique_fraction(N, ratio)


def unique_variance(n_data: ArrayLike, ratio: ArrayLike, epochs: ArrayLike = 1) -> FloatArray:
    r"""Variance of the number of distinct items seen after ``epochs`` SRS epochs (:math:`m = nT` draws).

    :math:`\mathrm{Var} = N q_1 + N(N-1) q_2 - N^2 q_1^2` with :math:`q_r = (1 - r/N)^m`, evaluated as
    :math:`N q_1 (1 - q_1) + N(N-1) q_1^2\,\mathrm{expm1}(m[\log(1-2/N) - 2\log(1-1/N)])`, which is stable for
    large :math:`N` (the textbook form cancels catastrophically).
    """
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    return _empty_moments(N, num_draws(N, ratio) * T)[1]


def unique_skewness(n_data: ArrayLike, ratio: ArrayLike, epochs: ArrayLike = 1) -> FloatArray:
    r"""Skewness :math:`\kappa_3/\sigma^3` of the number of distinct items after ``epochs`` SRS epochs
    (0 where the variance is 0)."""
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    _, var, k3 = _empty_moments(N, num_draws(N, ratio) * T)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(var > 0, -k3 / np.maximum(var, 1e-300) ** 1.5, 0.0), dtype=np.float64)


def duplicate_rate(n_data: ArrayLike, ratio: ArrayLike) -> FloatArray:
    r"""Expected fraction of an epoch's draws that repeat an item already drawn that epoch,
    :math:`1 - E[U]/n`.

    Tends to :math:`1 - (1 - e^{-s})/s`: 0.368 at :math:`s = 1`, 0.048 at :math:`s = 0.1`.
    """
    N = _as_count(n_data, "n_data", 1)
    n = num_draws(N, ratio)
    return np.asarray(1.0 - expected_unique(N, ratio) / n, dtype=np.float64)


# --------------------------------------------------------------------------- occupancy distribution
def occupancy_pmf_exact(n_data: int, draws: int) -> FloatArray:
    r"""Exact law of the number of occupied bins after ``draws`` uniform throws into ``n_data`` bins.

    Forward recursion of the occupancy Markov chain, :math:`p_{t+1}(k) = p_t(k)\,k/N + p_t(k-1)\,(N-k+1)/N`,
    in float64. Every term is a non-negative combination, so the result has relative error
    :math:`O(t\,\varepsilon)` where it does not underflow (unlike the alternating inclusion–exclusion
    sum :math:`\binom{N}{k}\sum_j (-1)^j \binom{k}{j} (k-j)^n / N^n`, which loses every digit for
    :math:`N \gtrsim 50`). Cost :math:`O(n \min(n, N))`; the support is trimmed where mass underflows.

    Returns:
        array of length ``n_data + 1`` with ``pmf[k] = P(U = k)``.
    """
    N = check_int(n_data, "n_data", low=1)
    n = check_int(draws, "draws", low=0)
    K = min(n, N)
    p = np.zeros(K + 1)
    p[0] = 1.0
    k = np.arange(K + 1, dtype=np.float64)
    stay = k / N
    move = (N - k) / N  # from k to k + 1
    lo = 0
    for t in range(1, n + 1):
        hi = min(t, K)
        # new[j] = p[j] * stay[j] + p[j-1] * move[j-1], for j in [lo, hi]
        new_hi = p[hi - 1] * move[hi - 1] + (p[hi] * stay[hi] if hi < t else 0.0)
        p[lo + 1 : hi] = p[lo + 1 : hi] * stay[lo + 1 : hi] + p[lo : hi - 1] * move[lo : hi - 1]
        p[lo] *= stay[lo]
        p[hi] = new_hi
        while lo < hi and p[lo] == 0.0:
            lo += 1
    out = np.zeros(N + 1)
    out[: K + 1] = p
    return out


def _ndtr(z: FloatArray) -> FloatArray:
    import torch  # the library's own dependency; numpy has no erf

    return torch.special.ndtr(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))).numpy()


def occupancy_pmf_approx(n_data: int, draws: int) -> FloatArray:
    r"""Edgeworth approximation to the occupancy law (normal with exact mean, variance and skewness).

    :math:`P(U = k) \approx \Delta\Phi(z_k) - \frac{\gamma_1}{6}\,\Delta[\phi(z)(z^2 - 1)]`, the one-term
    Edgeworth expansion integrated over the unit cell :math:`[k - \frac12, k + \frac12]`, with the exact
    :math:`\mu, \sigma^2, \kappa_3` of :math:`U` (central limit theorem for
    occupancy: Weiss 1958, Rényi 1962); negative cells are clipped and the result renormalised.

    Accuracy, measured against :func:`occupancy_pmf_exact` on 34 cases (N ∈ {10², 10³, 10⁴, 3·10⁴},
    s ∈ [0.02, 4]; test ``test_srs_theory.py`` and claim ``srs.occupancy``): the total-variation distance
    is below :math:`0.05/\sigma^2` whenever :math:`\sigma = \mathrm{sd}(U) \ge 2` (e.g. 9e-4 at
    N = 10⁴, s = 0.1; 2.7e-5 at N = 10⁴, s = 0.5). It is poor (TV up to 0.06) when :math:`\sigma < 2`,
    i.e. when an epoch has only a handful of collisions; :func:`occupancy_pmf` uses the exact law there, which
    is cheap because :math:`n` is then small.

    Returns:
        array of length ``n_data + 1``.
    """
    N = check_int(n_data, "n_data", low=1)
    n = check_int(draws, "draws", low=0)
    mu_e, var, k3_e = (float(v) for v in _empty_moments(np.asarray(N), np.asarray(n)))
    out = np.zeros(N + 1)
    mu = N - mu_e
    if var < 1e-300:
        out[min(N, round(mu))] = 1.0
        return out
    sd = math.sqrt(var)
    g1 = -k3_e / sd**3
    lo = max(0, math.floor(mu - 40 * sd))
    hi = min(N, math.ceil(mu + 40 * sd))
    edges = (np.arange(lo, hi + 2, dtype=np.float64) - 0.5 - mu) / sd
    cdf = _ndtr(edges)
    phi = np.exp(-0.5 * edges**2) / math.sqrt(2 * math.pi)
    corr = phi * (edges**2 - 1)
    cells = np.diff(cdf) - g1 / 6 * np.diff(corr)
    cells = np.clip(cells, 0.0, None)
    out[lo : hi + 1] = cells / cells.sum()
    return out


EXACT_BUDGET = 2 * 10**8


def occupancy_pmf(
    n_data: int, ratio: float | None = None, *, draws: int | None = None, method: str = "auto"
) -> FloatArray:
    r"""Law of the number :math:`U` of distinct items in one SRS epoch (the classical occupancy distribution).

    Give ``ratio`` (:math:`n = \lceil sN \rceil`) or ``draws`` (:math:`n` directly, e.g. :math:`nT` for the
    coverage after :math:`T` epochs). ``method="exact"`` runs :func:`occupancy_pmf_exact`
    (:math:`O(n\min(n,N))`, about 0.5 s for :math:`N = n = 10^4`), ``"approx"`` runs
    :func:`occupancy_pmf_approx` (:math:`O(\sigma)`; total-variation error below :math:`0.05/\sigma^2`
    when :math:`\sigma \ge 2`), and ``"auto"`` picks exact when :math:`n\min(n, N) \le 2\cdot 10^8`.

    Returns:
        float64 array of length ``n_data + 1``, ``pmf[k] = P(U = k)``.
    """
    N = check_int(n_data, "n_data", low=1)
    if (ratio is None) == (draws is None):
        raise ValueError("occupancy_pmf needs exactly one of ratio= or draws=")
    if draws is None:
        r = check_real(ratio, "ratio", low=0.0, low_open=True)
        n = int(num_draws(N, r))
    else:
        n = check_int(draws, "draws", low=0)
    method = check_choice(method, "method", ("auto", "exact", "approx"))
    if method == "auto":
        method = "exact" if n * min(n, N) <= EXACT_BUDGET else "approx"
    return occupancy_pmf_exact(N, n) if method == "exact" else occupancy_pmf_approx(N, n)


# ------------------------------------------------------------------------------ over T epochs
def prob_unseen(n_data: ArrayLike, ratio: ArrayLike, epochs: ArrayLike, scheme: str = "srs") -> FloatArray:
    r"""Probability that a given item has not been seen after ``epochs`` epochs.

    - ``"srs"``: :math:`(1 - 1/N)^{nT} \to e^{-sT}` (0.0498 at :math:`s = 0.3, T = 10`);
    - ``"without_replacement"`` (a fresh subset of :math:`m = \lceil sN \rceil` distinct items per epoch):
      :math:`(1 - m/N)^T`;
    - ``"fixed_subset"`` (one subset of :math:`m` items for all epochs): :math:`1 - m/N` for :math:`T \ge 1`;
    - ``"full"``: 0 for :math:`T \ge 1` (``ratio`` ignored).

    All are 1 at :math:`T = 0`.
    """
    scheme = check_choice(scheme, "scheme", SCHEMES)
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    s = _as_ratio(ratio, allow_above_one=scheme in ("srs", "full"))
    n = num_draws(N, s)
    if scheme == "srs":
        with np.errstate(invalid="ignore"):
            out = np.exp(np.where(T == 0, 0.0, (n * T) * _log_q(N, 1)))
    elif scheme == "without_replacement":
        out = np.where(T == 0, 1.0, (1.0 - np.minimum(n, N) / N) ** T)
    elif scheme == "fixed_subset":
        out = np.where(T == 0, 1.0, 1.0 - np.minimum(n, N) / N + 0 * T)
    else:
        out = np.where(T == 0, 1.0, 0.0 * n)
    return np.asarray(out, dtype=np.float64)


def expected_coverage(
    n_data: ArrayLike, ratio: ArrayLike, epochs: ArrayLike, scheme: str = "srs"
) -> FloatArray:
    r"""Expected fraction of items seen at least once in ``epochs`` epochs, ``1 - prob_unseen``
    (:math:`1 - e^{-sT}` for SRS at large :math:`N`)."""
    return np.asarray(1.0 - prob_unseen(n_data, ratio, epochs, scheme), dtype=np.float64)


def harmonic_number(n: ArrayLike) -> FloatArray:
    """:math:`H_n = \\sum_{k \\le n} 1/k` (exact sum below 64, asymptotic series to 1e-16 above)."""
    a = _as_count(n, "n", 0)
    small = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 64))])
    x = np.maximum(a, 1).astype(np.float64)
    asym = np.log(x) + _EULER_GAMMA + 1 / (2 * x) - 1 / (12 * x**2) + 1 / (120 * x**4) - 1 / (252 * x**6)
    return np.asarray(np.where(a < 64, small[np.minimum(a, 63)], asym), dtype=np.float64)


def expected_draws_to_cover(n_data: ArrayLike) -> FloatArray:
    r"""Coupon collector: expected draws until every item is seen,
    :math:`E[D] = N H_N \approx N(\ln N + 0.5772)`."""
    N = _as_count(n_data, "n_data", 1)
    return np.asarray(N * harmonic_number(N), dtype=np.float64)


def _p_some_empty(N: int, m: NDArray[np.int64]) -> FloatArray:
    """P(D > m) = P(some bin is empty after m draws), for one N and an array of m."""
    m = np.asarray(m, dtype=np.int64)
    if N == 1:
        return (m < 1).astype(np.float64)
    lq1 = math.log1p(-1.0 / N)
    lam = np.exp(math.log(N) + m * lq1)  # expected number of empty bins
    out = np.ones(m.shape)
    # Inclusion–exclusion  sum_{j>=1} (-1)^{j+1} C(N,j) (1-j/N)^m  where lam <= 15: the terms are bounded by
    # lam^j / j!, so the cancellation costs at most e^15 * eps ~ 4e-10 absolute error.
    ok = (m >= N) & (lam <= 15.0)
    if ok.any():
        J = min(N - 1, 200)
        j = np.arange(1, J + 1, dtype=np.float64)
        logc = math.lgamma(N + 1) - np.array([math.lgamma(v + 1) + math.lgamma(N - v + 1) for v in j])
        logq = np.log1p(-j / N)
        mm = m[ok].astype(np.float64)[:, None]
        terms = np.exp(logc[None, :] + mm * logq[None, :])
        signs = np.where(j % 2 == 1, 1.0, -1.0)
        out[ok] = np.clip((terms * signs).sum(axis=1), 0.0, 1.0)
    # Where lam > 15, P(no empty bin) <= prod_i P(bin i occupied) = (1 - q1)^N <= e^{-lam} < 3.1e-7
    # (negative association of the occupancy indicators): use that bound as the value.
    big = (m >= N) & (lam > 15.0)
    if big.any():
        q1 = np.exp(m[big] * lq1)
        out[big] = -np.expm1(N * np.log1p(-q1))
    return out


def prob_not_covered(n_data: ArrayLike, ratio: ArrayLike, epochs: ArrayLike) -> FloatArray:
    r"""Tail of the SRS cover time: :math:`P(\tau > T) = P(D > nT)`, the probability that some item is still
    unseen after ``epochs`` epochs.

    Exact inclusion–exclusion where it is numerically safe (at most 200 terms, expected number of unseen
    items :math:`\le 15`); elsewhere the probability exceeds :math:`1 - 3.1\cdot10^{-7}` and the product bound
    is returned. Absolute error below :math:`10^{-6}`. Asymptotically (Erdős–Rényi)
    :math:`P(D > N(\ln N + c)) \to 1 - \exp(-e^{-c})`, see :func:`cover_tail_limit`.
    """
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    n = num_draws(N, ratio)
    Nb, nb, Tb = np.broadcast_arrays(N, n, T)
    out = np.empty(Nb.shape)
    for idx in np.ndindex(Nb.shape):
        out[idx] = _p_some_empty(int(Nb[idx]), np.asarray(int(nb[idx]) * int(Tb[idx])))
    return out


def cover_tail_limit(c: ArrayLike) -> FloatArray:
    r"""Erdős–Rényi limit :math:`\lim_N P(D > N(\ln N + c)) = 1 - \exp(-e^{-c})`
    (0.044 at :math:`c = 3.09`)."""
    c = np.asarray(c, dtype=np.float64)
    return np.asarray(-np.expm1(-np.exp(-c)), dtype=np.float64)


def _expected_epochs_one(N: int, n: int) -> float:
    if N == 1:
        return 1.0
    m_needed = (math.log(N) + 41.0) / -math.log1p(-1.0 / N)  # beyond this P(D > m) < 1e-18
    t = np.arange(0, math.ceil(m_needed / n) + 2, dtype=np.int64)
    return float(_p_some_empty(N, t * n).sum())


def expected_epochs_to_cover(n_data: ArrayLike, ratio: ArrayLike) -> FloatArray:
    r"""Expected number of whole SRS epochs until every item has been seen,
    :math:`E[\tau] = \sum_{T \ge 0} P(D > nT)`.

    This counts epochs as a training loop does (an integer). It satisfies
    :math:`E[D]/n \le E[\tau] < E[D]/n + 1` with :math:`E[D]/n = N H_N / n \approx (\ln N + 0.5772)/s`
    (32.6 at :math:`N = 10^4, s = 0.3`); :func:`expected_draws_to_cover` gives :math:`E[D]`.
    Absolute error below :math:`10^{-5}` (see :func:`prob_not_covered`).
    """
    N = _as_count(n_data, "n_data", 1)
    n = num_draws(N, ratio)
    Nb, nb = np.broadcast_arrays(N, n)
    out = np.empty(Nb.shape)
    for idx in np.ndindex(Nb.shape):
        out[idx] = _expected_epochs_one(int(Nb[idx]), int(nb[idx]))
    return out


# ------------------------------------------------------------------------------- optimisation bounds
def steps_per_epoch(n_data: ArrayLike, ratio: ArrayLike, batch_size: ArrayLike = 1) -> NDArray[np.int64]:
    r"""Optimizer steps per SRS epoch, :math:`\lceil n / B \rceil` (the last batch may be short)."""
    B = _as_count(batch_size, "batch_size", 1)
    n = num_draws(n_data, ratio)
    return np.asarray(-(-n // B), dtype=np.int64)


def _mean_inv_batch(n: NDArray[np.int64], B: NDArray[np.int64]) -> FloatArray:
    q, r = n // B, n % B
    steps = q + (r > 0)
    return np.asarray((q / B + np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0)) / steps, dtype=np.float64)


def nonconvex_sgd_bound(
    initial_gap: ArrayLike,
    smoothness: ArrayLike,
    variance: ArrayLike,
    lr: ArrayLike,
    steps: ArrayLike,
    batch_size: ArrayLike = 1,
) -> FloatArray:
    r"""Ghadimi–Lan bound for constant-step SGD on an :math:`L`-smooth non-convex objective:

    .. math:: \min_{k<K} E\|\nabla F(w_k)\|^2 \le \frac1K \sum_{k<K} E\|\nabla F(w_k)\|^2
              \le \frac{2\Delta}{\eta K} + \frac{L\eta\sigma^2}{B}.

    Assumptions: :math:`F` is :math:`L`-smooth and bounded below, :math:`\Delta = F(w_0) - F^*`; the minibatch
    gradient is unbiased with variance :math:`\le \sigma^2/B` (per-sample variance :math:`\le \sigma^2`);
    :math:`0 < \eta \le 1/L`.

    Raises:
        ValueError: ``lr > 1/smoothness`` somewhere (the bound does not hold there).
    """
    D = _as_positive(initial_gap, "initial_gap", allow_zero=True)
    L = _as_positive(smoothness, "smoothness")
    s2 = _as_positive(variance, "variance", allow_zero=True)
    eta = _as_positive(lr, "lr")
    K = _as_count(steps, "steps", 1)
    B = _as_count(batch_size, "batch_size", 1)
    if np.any(eta * L > 1 + 1e-12):
        raise ValueError("lr must satisfy lr <= 1/smoothness for the non-convex SGD bound")
    return np.asarray(2 * D / (eta * K) + L * eta * s2 / B, dtype=np.float64)


def srs_convergence_bound(
    initial_gap: ArrayLike,
    smoothness: ArrayLike,
    variance: ArrayLike,
    lr: ArrayLike,
    n_data: ArrayLike,
    ratio: ArrayLike,
    epochs: ArrayLike,
    batch_size: ArrayLike = 1,
) -> FloatArray:
    r"""The non-convex SGD bound of :func:`nonconvex_sgd_bound` for ``epochs`` SRS epochs (standard form
    adapted to SRS; the paper's own constants were not available).

    SRS minibatches are :math:`B` i.i.d. uniform draws from the data set, so they are unbiased for the
    empirical risk :math:`F = \frac1N\sum_i f_i` with variance :math:`\sigma^2/B` given the iterate —
    exactly the setting of the bound, with :math:`K = T\lceil n/B \rceil` steps. The short last batch of an
    epoch is accounted for by replacing :math:`1/B` with the average of :math:`1/B_k` over an epoch:

    .. math:: \min_k E\|\nabla F(w_k)\|^2 \le \frac{2\Delta}{\eta T \lceil n/B\rceil}
              + L\eta\sigma^2\,\overline{B^{-1}}.

    At equal compute (draws :math:`nT`) the bound does not depend on :math:`s`: SRS trades per-epoch
    coverage for epoch time, not for rate. Same assumptions as :func:`nonconvex_sgd_bound`.
    """
    N = _as_count(n_data, "n_data", 1)
    n = num_draws(N, ratio)
    B = _as_count(batch_size, "batch_size", 1)
    T = _as_count(epochs, "epochs", 1)
    K = T * (-(-n // B))
    D = _as_positive(initial_gap, "initial_gap", allow_zero=True)
    L = _as_positive(smoothness, "smoothness")
    s2 = _as_positive(variance, "variance", allow_zero=True)
    eta = _as_positive(lr, "lr")
    if np.any(eta * L > 1 + 1e-12):
        raise ValueError("lr must satisfy lr <= 1/smoothness for the non-convex SGD bound")
    return np.asarray(2 * D / (eta * K) + L * eta * s2 * _mean_inv_batch(n, B), dtype=np.float64)


def optimal_lr(
    initial_gap: ArrayLike,
    smoothness: ArrayLike,
    variance: ArrayLike,
    steps: ArrayLike,
    batch_size: ArrayLike = 1,
) -> FloatArray:
    r"""The step minimising :func:`nonconvex_sgd_bound`:
    :math:`\eta = \min\{1/L, \sqrt{2\Delta B/(L\sigma^2 K)}\}`,
    which gives :math:`O(\sqrt{L\Delta\sigma^2/(BK)} + L\Delta/K)`."""
    D = _as_positive(initial_gap, "initial_gap", allow_zero=True)
    L = _as_positive(smoothness, "smoothness")
    s2 = _as_positive(variance, "variance", allow_zero=True)
    K = _as_count(steps, "steps", 1)
    B = _as_count(batch_size, "batch_size", 1)
    with np.errstate(divide="ignore"):
        eta = np.sqrt(2 * D * B / (L * s2 * K))
    return np.asarray(np.minimum(1 / L, eta), dtype=np.float64)


def stability_bound_convex(
    lipschitz: ArrayLike, smoothness: ArrayLike, lr: ArrayLike, steps: ArrayLike, n_data: ArrayLike
) -> FloatArray:
    r"""Uniform stability of SGD with replacement sampling on a convex loss (Hardt, Recht & Singer 2016,
    Thm 3.8), constant step :math:`\alpha`:

    .. math:: \varepsilon_{\rm stab} \le \frac{2G^2}{N}\sum_{t=1}^{K}\alpha_t = \frac{2G^2 \alpha K}{N}.

    Assumptions: each loss :math:`f(\cdot; z)` is convex, :math:`G`-Lipschitz and :math:`\beta`-smooth, and
    :math:`\alpha \le 2/\beta`. The expected generalization gap :math:`|E[R(w_K) - R_S(w_K)]|` is at most
    :math:`\varepsilon_{\rm stab}`. ``steps`` counts updates: single-sample steps, or minibatch steps when
    each step averages :math:`B` i.i.d. draws (the differing example enters a step with probability
    :math:`\approx B/N` at weight :math:`\alpha/B`, so the per-step perturbation is the same
    :math:`2\alpha G/N`; see ``theory/srs_generalization.md``).
    """
    G = _as_positive(lipschitz, "lipschitz", allow_zero=True)
    beta = _as_positive(smoothness, "smoothness")
    a = _as_positive(lr, "lr")
    K = _as_count(steps, "steps", 0)
    N = _as_count(n_data, "n_data", 1)
    if np.any(a * beta > 2 + 1e-12):
        raise ValueError("lr must satisfy lr <= 2/smoothness for the convex stability bound")
    return np.asarray(2 * G**2 * a * K / N, dtype=np.float64)


def stability_bound_nonconvex(
    lipschitz: ArrayLike, smoothness: ArrayLike, c: ArrayLike, steps: ArrayLike, n_data: ArrayLike
) -> FloatArray:
    r"""Uniform stability of SGD with replacement sampling on a non-convex loss (Hardt, Recht & Singer 2016,
    Thm 3.12), steps :math:`\alpha_t \le c/t`:

    .. math:: \varepsilon_{\rm stab} \le \frac{1 + 1/(\beta c)}{N - 1}\,(2cG^2)^{1/(\beta c + 1)}\,
              K^{\beta c/(\beta c + 1)}.

    Assumptions: the loss takes values in :math:`[0, 1]`, is :math:`G`-Lipschitz and :math:`\beta`-smooth;
    :math:`N \ge 2`.
    """
    G = _as_positive(lipschitz, "lipschitz", allow_zero=True)
    beta = _as_positive(smoothness, "smoothness")
    cc = _as_positive(c, "c")
    K = _as_count(steps, "steps", 0)
    N = _as_count(n_data, "n_data", 2)
    bc = beta * cc
    return np.asarray(
        (1 + 1 / bc) / (N - 1) * (2 * cc * G**2) ** (1 / (bc + 1)) * K.astype(np.float64) ** (bc / (bc + 1)),
        dtype=np.float64,
    )


def srs_generalization_bound(
    n_data: ArrayLike,
    ratio: ArrayLike,
    epochs: ArrayLike,
    lipschitz: ArrayLike,
    smoothness: ArrayLike,
    lr: ArrayLike,
    *,
    convex: bool = True,
    batch_size: int = 1,
) -> FloatArray:
    r"""Stability bound on the generalization gap after ``epochs`` epochs of single-sample SRS-SGD
    (standard Hardt et al. bounds adapted to SRS; the paper's own bound was not available).

    SRS with :math:`B = 1` *is* SGD with replacement sampling, run for :math:`K = T\lceil sN \rceil` steps, so
    Hardt et al.'s bounds apply verbatim with that :math:`K`: convex (``convex=True``, ``lr`` = constant
    :math:`\alpha \le 2/\beta`) :math:`2G^2\alpha T\lceil sN\rceil/N \approx 2G^2\alpha sT`; non-convex
    (``lr`` = :math:`c` in :math:`\alpha_t \le c/t`, loss in [0, 1]) as :func:`stability_bound_nonconvex`.
    Smaller :math:`s` means fewer steps and a smaller bound, at the price of optimisation error.
    With ``batch_size`` :math:`B > 1` (convex case only) :math:`K = T\lceil n/B \rceil` minibatch steps.
    """
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    B = check_int(batch_size, "batch_size", low=1)
    if not convex and B != 1:
        raise ValueError("the non-convex stability bound is stated for batch_size=1")
    K = steps_per_epoch(N, ratio, B) * T
    if convex:
        return stability_bound_convex(lipschitz, smoothness, lr, K, N)
    return stability_bound_nonconvex(lipschitz, smoothness, lr, K, N)


__all__ = [
    "SCHEMES",
    "cover_tail_limit",
    "duplicate_rate",
    "expected_coverage",
    "expected_draws_to_cover",
    "expected_epochs_to_cover",
    "expected_unique",
    "expected_unique_fraction",
    "harmonic_number",
    "nonconvex_sgd_bound",
    "num_draws",
    "occupancy_pmf",
    "occupancy_pmf_approx",
    "occupancy_pmf_exact",
    "optimal_lr",
    "prob_not_covered",
    "prob_unseen",
    "srs_convergence_bound",
    "srs_generalization_bound",
    "stability_bound_convex",
    "stability_bound_nonconvex",
    "steps_per_epoch",
    "unique_skewness",
    "unique_variance",
]
