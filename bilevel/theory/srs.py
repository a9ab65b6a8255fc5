r"""Closed forms for soft random sampling (SRS, arXiv 2311.12727): occupancy, coverage, cover time,
and the standard SGD convergence and stability bounds specialised to SRS's sampling.

Notation: $N$ items, ratio $s$, $n = \lceil sN \rceil$ i.i.d. uniform draws per epoch,
$T$ epochs, $U$ = number of distinct items in one epoch, $D$ = draws until every item
has been seen (coupon collector), $\tau = \lceil D/n \rceil$ = epochs until full coverage.

Every function broadcasts its array arguments (numpy rules). Scalar arguments give a Python ``float`` (or
``int`` for counts); array arguments give a float64 (int64) array. Counts ($N$, $n$, the draws
$nT$ of several epochs) must not exceed `MAX_COUNT` $= 2^{53}$, the largest range in which
float64 holds every integer; larger values are refused with an error naming the argument.

Accuracy: every function is accurate to $10^{-9}$ relative or better (tested against mpmath over
$1 \le N \le 10^{12}$). The forms that cancel in float64 (the variance and skewness of $U$, the
duplicate rate, the cover-time tail) are evaluated in decimal arithmetic with enough digits
(``bilevel/theory/_exact.py``); the others use ``log1p``/``expm1`` forms without cancellation.

Derivations: ``theory/srs_*.md``. The paper's own constants were not available; the convergence and
generalization bounds are the standard SGD results (Ghadimi & Lan 2013; Hardt, Recht & Singer 2016)
applied to SRS, whose draws are exactly i.i.d. uniform with replacement.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bilevel.checks import check_choice, check_int, check_real
from bilevel.theory import _exact

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
_CEIL_RTOL = 1e-12  # same rule as bilevel.sampling.draw_count
_EULER_GAMMA = 0.57721566490153286
SCHEMES = ("srs", "without_replacement", "fixed_subset", "full")
MAX_COUNT = 2**53
"""Largest item count, draw count or total number of draws accepted (every integer up to it is a float64)."""
MAX_PMF_LENGTH = 10**8
"""Largest ``n_data`` for which the occupancy functions build the full pmf (``n_data + 1`` float64 values)."""
MAX_COVER_EPOCHS = 10**6
"""Largest number of epochs `expected_epochs_to_cover()` sums (about $(\\ln N + 46)/s$)."""


# --------------------------------------------------------------------------------------------- inputs
def _as_count(x: ArrayLike, name: str, low: int) -> IntArray:
    """Integer(s) in ``[low, MAX_COUNT]`` as int64, or a TypeError/ValueError naming ``name``."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be integer(s), got bool")
    a = np.asarray(x)
    if a.dtype == object:
        vals = a.ravel().tolist()
        if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            raise ValueError(f"{name} must be <= 2**53 = {MAX_COUNT}, got {max(vals)}")
        raise TypeError(f"{name} must be integer(s), got dtype {a.dtype}")
    if a.dtype == bool or a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be integer(s), got dtype {a.dtype}")
    if a.dtype.kind == "f" and (not np.all(np.isfinite(a)) or not np.all(a == np.round(a))):
        raise TypeError(f"{name} must be integer(s), got non-integer values")
    if a.size and a.max() > MAX_COUNT:
        raise ValueError(f"{name} must be <= 2**53 = {MAX_COUNT}, got {a.max()}")
    if a.size and a.min() < low:
        raise ValueError(f"{name} must be >= {low}, got {a.min()}")
    return a.astype(np.int64)


def _as_ratio(x: ArrayLike, name: str = "ratio", *, allow_above_one: bool = True) -> FloatArray:
    a = _as_real(x, name)
    if not np.all(np.isfinite(a)) or (a.size and a.min() <= 0):
        raise ValueError(f"{name} must be finite and > 0")
    if not allow_above_one and a.size and a.max() > 1:
        raise ValueError(f"{name} must lie in (0, 1] for this scheme, got {a.max()}")
    return a


def _as_real(x: ArrayLike, name: str) -> FloatArray:
    if isinstance(x, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name} must be real number(s), got {type(x).__name__}")
    a = np.asarray(x)
    if a.dtype == bool or a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real number(s), got dtype {a.dtype}")
    return a.astype(np.float64)


def _as_positive(x: ArrayLike, name: str, *, allow_zero: bool = False) -> FloatArray:
    a = _as_real(x, name)
    bad = (a < 0) if allow_zero else (a <= 0)
    if not np.all(np.isfinite(a)) or (a.size and np.any(bad)):
        raise ValueError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}")
    return a


def _total_draws(n: IntArray, T: IntArray, name: str = "epochs") -> IntArray:
    """``n * T`` (broadcast), refused where it exceeds MAX_COUNT (checked before the int64 product)."""
    if (n.size and T.size) and np.any(n.astype(np.float64) * T.astype(np.float64) > MAX_COUNT):
        raise ValueError(f"{name} * num_draws must be <= 2**53 = {MAX_COUNT} draws in all")
    return np.asarray(n * T, dtype=np.int64)


def _float_out(x: Any) -> Any:
    """0-d results as a Python float, others as a float64 array."""
    a = np.asarray(x, dtype=np.float64)
    return float(a) if a.ndim == 0 else a


def _int_out(x: Any) -> Any:
    a = np.asarray(x, dtype=np.int64)
    return int(a) if a.ndim == 0 else a


def _elementwise(fn: Any, *arrays: NDArray[Any]) -> FloatArray:
    """``fn`` of Python ints, over the broadcast of ``arrays`` (for the decimal evaluations)."""
    parts = np.broadcast_arrays(*arrays)
    out = np.empty(parts[0].shape)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*(int(p[idx]) for p in parts))
    return out


def _num_draws(N: IntArray, ratio: ArrayLike) -> IntArray:
    s = _as_ratio(ratio)
    x = s * N
    if x.size and np.any(x > MAX_COUNT):
        raise ValueError(
            f"ratio * n_data must be <= 2**53 = {MAX_COUNT} draws per epoch, got {np.max(x):.4g}"
        )
    return np.maximum(1, np.ceil(x - _CEIL_RTOL * x)).astype(np.int64)


def num_draws(n_data: ArrayLike, ratio: ArrayLike) -> Any:
    r"""Draws per epoch $n = \lceil sN \rceil$ (at least 1), with the sampler's rounding rule
    ([`bilevel.sampling.draw_count()`][bilevel.sampling.draw_count]). An ``int`` for scalar arguments, else an
    int64 array.

    Raises:
        ValueError: ``n_data`` or $sN$ above `MAX_COUNT`, ``ratio`` not finite and > 0.
    """
    return _int_out(_num_draws(_as_count(n_data, "n_data", 1), ratio))


# ------------------------------------------------------------------------------------ one epoch (U)
def _log_q(N: IntArray, r: int) -> FloatArray:
    """log(1 - r/N), -inf where r >= N."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(N > r, np.log1p(-r / np.maximum(N, 1)), -np.inf)
    return np.asarray(out, dtype=np.float64)


def _unique_fraction(N: IntArray, m: IntArray) -> FloatArray:
    with np.errstate(invalid="ignore"):
        out = np.where(m == 0, 0.0, -np.expm1(m * _log_q(N, 1)))
    return np.asarray(out, dtype=np.float64)


def expected_unique_fraction(n_data: ArrayLike, ratio: ArrayLike) -> Any:
    r"""Expected fraction of distinct items in one SRS epoch,
    $E[U]/N = 1 - (1 - 1/N)^{\lceil sN \rceil}$.

    Tends to $1 - e^{-s}$ as $N \to \infty$ (0.2592 at $s = 0.3$). Computed as
    ``-expm1(n * log1p(-1/N))`` (no cancellation).
    """
    N = _as_count(n_data, "n_data", 1)
    return _float_out(_unique_fraction(N, _num_draws(N, ratio)))


def expected_unique(n_data: ArrayLike, ratio: ArrayLike) -> Any:
    """Expected number of distinct items in one SRS epoch, $N (1 - (1 - 1/N)^n)$."""
    N = _as_count(n_data, "n_data", 1)
    return _float_out(N * _unique_fraction(N, _num_draws(N, ratio)))


def unique_variance(n_data: ArrayLike, ratio: ArrayLike, epochs: ArrayLike = 1) -> Any:
    r"""Variance of the number of distinct items seen after ``epochs`` SRS epochs ($m = nT$ draws).

    $\mathrm{Var} = N q_1 + N(N-1) q_2 - N^2 q_1^2$ with $q_r = (1 - r/N)^m$. Its terms are of
    order $N^2$ while the variance can be as small as $m^2/(2N)$, so the sum is evaluated in
    decimal arithmetic with enough digits (float64 loses every digit near $N = 10^{14}$).
    """
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    m = _total_draws(_num_draws(N, ratio), T)
    return _float_out(_elementwise(lambda a, b: _exact.occupancy_moments(a, b)[1], N, m))


def unique_skewness(n_data: ArrayLike, ratio: ArrayLike, epochs: ArrayLike = 1) -> Any:
    r"""Skewness $\kappa_3/\sigma^3$ of the number of distinct items after ``epochs`` SRS epochs
    (0 where the variance is 0; ``-inf`` where it exceeds the float64 range, when almost surely every item has
    been seen and the variance is below about $10^{-205}$). The third cumulant is a sum of terms of
    order $N^3$ that cancel to $O(m^2/N)$; it is evaluated in decimal arithmetic like
    `unique_variance()`."""
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    m = _total_draws(_num_draws(N, ratio), T)
    return _float_out(_elementwise(lambda a, b: _exact.occupancy_moments(a, b)[3], N, m))


def duplicate_rate(n_data: ArrayLike, ratio: ArrayLike) -> Any:
    r"""Expected fraction of an epoch's draws that repeat an item already drawn that epoch,
    $1 - E[U]/n$.

    Tends to $1 - (1 - e^{-s})/s$: 0.368 at $s = 1$, 0.048 at $s = 0.1$. It is about
    $n/(2N)$ for small $n/N$, where ``1 - E[U]/n`` cancels; evaluated in decimal arithmetic.
    """
    N = _as_count(n_data, "n_data", 1)
    return _float_out(_elementwise(_exact.duplicate_fraction, N, _num_draws(N, ratio)))


# --------------------------------------------------------------------------- occupancy distribution
def _check_pmf_length(N: int) -> None:
    if N > MAX_PMF_LENGTH:
        raise ValueError(
            f"n_data = {N} would need a pmf of {N + 1} float64 values ({8 * (N + 1) / 2**30:.1f} GiB); the "
            f"occupancy pmf is limited to n_data <= {MAX_PMF_LENGTH}. For the law's moments use "
            "expected_unique, unique_variance and unique_skewness, which take any n_data"
        )


def occupancy_pmf_exact(n_data: int, draws: int) -> FloatArray:
    r"""Exact law of the number of occupied bins after ``draws`` uniform throws into ``n_data`` bins.

    Forward recursion of the occupancy Markov chain, $p_{t+1}(k) = p_t(k)\,k/N + p_t(k-1)\,(N-k+1)/N$,
    in float64. Every term is a non-negative combination, so the result has relative error
    $O(t\,\varepsilon)$ where it does not underflow (unlike the alternating inclusion–exclusion
    sum $\binom{N}{k}\sum_j (-1)^j \binom{k}{j} (k-j)^n / N^n$, which loses every digit for
    $N \gtrsim 50$). Cost $O(n \min(n, N))$; the support is trimmed where mass underflows.

    Returns:
        array of length ``n_data + 1`` with ``pmf[k] = P(U = k)``.

    Raises:
        ValueError: ``n_data`` above `MAX_PMF_LENGTH`.
    """
    N = check_int(n_data, "n_data", low=1)
    n = check_int(draws, "draws", low=0)
    _check_pmf_length(N)
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

    $P(U = k) \approx \Delta\Phi(z_k) - \frac{\gamma_1}{6}\,\Delta[\phi(z)(z^2 - 1)]$, the one-term
    Edgeworth expansion integrated over the unit cell $[k - \frac12, k + \frac12]$, with the exact
    $\mu, \sigma^2, \kappa_3$ of $U$ (central limit theorem for
    occupancy: Weiss 1958, Rényi 1962); negative cells are clipped and the result renormalised.

    Accuracy, measured against `occupancy_pmf_exact()` on 34 cases (N ∈ {10², 10³, 10⁴, 3·10⁴},
    s ∈ [0.02, 4]; test ``test_srs_theory.py`` and claim ``srs.occupancy``): the total-variation distance
    is below $0.05/\sigma^2$ whenever $\sigma = \mathrm{sd}(U) \ge 2$ (e.g. 9e-4 at
    N = 10⁴, s = 0.1; 2.7e-5 at N = 10⁴, s = 0.5). It is poor (TV up to 0.06) when $\sigma < 2$,
    i.e. when an epoch has only a handful of collisions; `occupancy_pmf()` uses the exact law there, which
    is cheap because $n$ is then small.

    Returns:
        array of length ``n_data + 1``.

    Raises:
        ValueError: ``n_data`` above `MAX_PMF_LENGTH`.
    """
    N = check_int(n_data, "n_data", low=1)
    n = check_int(draws, "draws", low=0)
    _check_pmf_length(N)
    mu_e, var, _, g1 = _exact.occupancy_moments(N, n)
    out = np.zeros(N + 1)
    mu = N - mu_e
    if var < 1e-300:
        out[min(N, round(mu))] = 1.0
        return out
    sd = math.sqrt(var)
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
    r"""Law of the number $U$ of distinct items in one SRS epoch (the classical occupancy distribution).

    Give ``ratio`` ($n = \lceil sN \rceil$) or ``draws`` ($n$ directly, e.g. $nT$ for the
    coverage after $T$ epochs). ``method="exact"`` runs `occupancy_pmf_exact()`
    ($O(n\min(n,N))$, about 0.5 s for $N = n = 10^4$), ``"approx"`` runs
    `occupancy_pmf_approx()` ($O(\sigma)$; total-variation error below $0.05/\sigma^2$
    when $\sigma \ge 2$), and ``"auto"`` picks exact when $n\min(n, N) \le 2\cdot 10^8$.

    Returns:
        float64 array of length ``n_data + 1``, ``pmf[k] = P(U = k)``.

    Raises:
        ValueError: ``n_data`` above `MAX_PMF_LENGTH` (the array alone would not fit in memory; the
            moments are available for any ``n_data``), or a bad ``ratio``/``draws``/``method``.
    """
    N = check_int(n_data, "n_data", low=1)
    if (ratio is None) == (draws is None):
        raise ValueError("occupancy_pmf needs exactly one of ratio= or draws=")
    if draws is None:
        r = check_real(ratio, "ratio", low=0.0, low_open=True)
        n = int(_num_draws(np.asarray(N, dtype=np.int64), r))
    else:
        n = check_int(draws, "draws", low=0)
    method = check_choice(method, "method", ("auto", "exact", "approx"))
    _check_pmf_length(N)
    if method == "auto":
        method = "exact" if n * min(n, N) <= EXACT_BUDGET else "approx"
    return occupancy_pmf_exact(N, n) if method == "exact" else occupancy_pmf_approx(N, n)


# ------------------------------------------------------------------------------ over T epochs
def _unseen_and_seen(N: IntArray, s: FloatArray, T: IntArray, scheme: str) -> tuple[FloatArray, FloatArray]:
    """(probability an item is unseen, expected coverage) after T epochs, each without cancellation."""
    n = _num_draws(N, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        if scheme == "srs":
            m = _total_draws(n, T)
            expo = np.where(m == 0, 0.0, m * _log_q(N, 1))
            unseen, seen = np.exp(expo), -np.expm1(expo)
        elif scheme in ("without_replacement", "fixed_subset"):
            k = np.minimum(n, N)  # distinct items per epoch
            rest = (N - k) / N  # exact integers, one rounding
            if scheme == "fixed_subset":
                unseen = np.where(T == 0, 1.0, rest + 0.0 * T)
                seen = np.where(T == 0, 0.0, k / N + 0.0 * T)
            else:
                log_rest = np.where(k / N < 0.5, np.log1p(-k / N), np.log(rest))
                expo = np.where(T == 0, 0.0, T * log_rest)
                unseen, seen = np.exp(expo), -np.expm1(expo)
        else:
            unseen = np.where(T == 0, 1.0, 0.0 * n)
            seen = 1.0 - unseen
    return np.asarray(unseen, dtype=np.float64), np.asarray(seen + 0.0, dtype=np.float64)  # no -0.0


def prob_unseen(n_data: ArrayLike, ratio: ArrayLike, epochs: ArrayLike, scheme: str = "srs") -> Any:
    r"""Probability that a given item has not been seen after ``epochs`` epochs.

    - ``"srs"``: $(1 - 1/N)^{nT} \to e^{-sT}$ (0.0498 at $s = 0.3, T = 10$);
    - ``"without_replacement"`` (a fresh subset of $m = \lceil sN \rceil$ distinct items per epoch):
      $(1 - m/N)^T$;
    - ``"fixed_subset"`` (one subset of $m$ items for all epochs): $1 - m/N$ for $T \ge 1$;
    - ``"full"``: 0 for $T \ge 1$ (``ratio`` ignored).

    All are 1 at $T = 0$.
    """
    scheme = check_choice(scheme, "scheme", SCHEMES)
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    s = _as_ratio(ratio, allow_above_one=scheme in ("srs", "full"))
    return _float_out(_unseen_and_seen(N, s, T, scheme)[0])


def expected_coverage(n_data: ArrayLike, ratio: ArrayLike, epochs: ArrayLike, scheme: str = "srs") -> Any:
    r"""Expected fraction of items seen at least once in ``epochs`` epochs, ``1 - prob_unseen``
    ($1 - e^{-sT}$ for SRS at large $N$), computed with ``expm1`` so that a small coverage keeps
    its relative accuracy."""
    scheme = check_choice(scheme, "scheme", SCHEMES)
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    s = _as_ratio(ratio, allow_above_one=scheme in ("srs", "full"))
    return _float_out(_unseen_and_seen(N, s, T, scheme)[1])


def _harmonic(a: IntArray) -> FloatArray:
    small = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 64))])
    x = np.maximum(a, 1).astype(np.float64)
    asym = np.log(x) + _EULER_GAMMA + 1 / (2 * x) - 1 / (12 * x**2) + 1 / (120 * x**4) - 1 / (252 * x**6)
    return np.asarray(np.where(a < 64, small[np.minimum(a, 63)], asym), dtype=np.float64)


def harmonic_number(n: ArrayLike) -> Any:
    """$H_n = \\sum_{k \\le n} 1/k$ (exact sum below 64, asymptotic series to 1e-16 above)."""
    return _float_out(_harmonic(_as_count(n, "n", 0)))


def expected_draws_to_cover(n_data: ArrayLike) -> Any:
    r"""Coupon collector: expected draws until every item is seen,
    $E[D] = N H_N \approx N(\ln N + 0.5772)$."""
    N = _as_count(n_data, "n_data", 1)
    return _float_out(N * _harmonic(N))


# Cover-time tail P(D > m) = P(some item unseen after m draws), by the expected number λ = N(1-1/N)^m of
# unseen items: float64 inclusion–exclusion for λ <= 1 (at most a factor e of cancellation), decimal for
# 1 < λ <= 22, and for λ > 22 the product bound 1 - (1 - q1)^N, within e^-22 = 2.8e-10 of the value.
_LAM_FLOAT = 1.0
_LAM_BOUND = 22.0
_FLOAT_TERMS = 40  # 1/j! < 1e-47 beyond


def _lam(N: int, m: NDArray[np.int64]) -> FloatArray:
    return np.asarray(np.exp(math.log(N) + m * math.log1p(-1.0 / N)), dtype=np.float64)


def _some_empty_float(N: int, m: NDArray[np.int64]) -> FloatArray:
    J = min(N - 1, _FLOAT_TERMS)
    j = np.arange(1, J + 1)
    logc = np.array([_exact.log_binom_float(N, int(v)) for v in j])
    terms = np.exp(logc[None, :] + m.astype(np.float64)[:, None] * np.log1p(-j / N)[None, :])
    signs = np.where(j % 2 == 1, 1.0, -1.0)
    return np.asarray(np.clip((terms[:, ::-1] * signs[::-1]).sum(axis=1), 0.0, 1.0), dtype=np.float64)


def _some_empty(N: int, m: NDArray[np.int64]) -> FloatArray:
    """P(D > m) for one N and an array of m."""
    m = np.asarray(m, dtype=np.int64)
    if N == 1:
        return (m < 1).astype(np.float64)
    out = np.ones(m.shape)
    lam = _lam(N, m)
    low = (m >= N) & (lam <= _LAM_FLOAT)
    if low.any():
        out[low] = _some_empty_float(N, m[low])
    mid = (m >= N) & (lam > _LAM_FLOAT) & (lam <= _LAM_BOUND)
    for i in np.flatnonzero(mid):
        out.flat[i] = _exact.some_empty_progression(N, int(m.flat[i]), 1, 1)[0]
    high = (m >= N) & (lam > _LAM_BOUND)
    if high.any():
        q1 = np.exp(m[high] * math.log1p(-1.0 / N))
        out[high] = -np.expm1(N * np.log1p(-q1))
    return out


def prob_not_covered(n_data: ArrayLike, ratio: ArrayLike, epochs: ArrayLike) -> Any:
    r"""Tail of the SRS cover time: $P(\tau > T) = P(D > nT)$, the probability that some item is still
    unseen after ``epochs`` epochs.

    Inclusion–exclusion $\sum_{j\ge1}(-1)^{j+1}\binom{N}{j}(1-j/N)^{nT}$, in float64 where the expected
    number $\lambda$ of unseen items is at most 1 and in decimal arithmetic for
    $1 < \lambda \le 22$; above, the probability exceeds $1 - e^{-22}$ and the product bound
    $1 - (1 - q_1)^N$ is returned. Relative error below $10^{-9}$. Asymptotically (Erdős–Rényi)
    $P(D > N(\ln N + c)) \to 1 - \exp(-e^{-c})$, see `cover_tail_limit()`.
    """
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    n = _num_draws(N, ratio)
    m = _total_draws(n, T)
    Nb, mb = np.broadcast_arrays(N, m)
    out = np.empty(Nb.shape)
    for idx in np.ndindex(Nb.shape):
        out[idx] = _some_empty(int(Nb[idx]), np.asarray([int(mb[idx])]))[0]
    return _float_out(out)


def cover_tail_limit(c: ArrayLike) -> Any:
    r"""Erdős–Rényi limit $\lim_N P(D > N(\ln N + c)) = 1 - \exp(-e^{-c})$
    (0.044 at $c = 3.09$); ``c`` must be finite."""
    a = _as_real(c, "c")
    if not np.all(np.isfinite(a)):
        raise ValueError("c must be finite")
    with np.errstate(over="ignore"):
        return _float_out(-np.expm1(-np.exp(-a)))


def _expected_epochs_one(N: int, n: int) -> float:
    if N == 1:
        return 1.0
    # P(D > nT) = 1 for nT < N; the sum stops where λ < e^-46 (the tail is below 1e-20 / s)
    ones = (N - 1) // n + 1
    m_end = (math.log(N) + 46.0) / -math.log1p(-1.0 / N)
    t_end = max(ones, math.ceil(m_end / n) + 1)
    if t_end > MAX_COVER_EPOCHS:
        raise ValueError(
            f"ratio is too small for the exact sum: the cover time spans about {t_end} epochs "
            f"(more than {MAX_COVER_EPOCHS}); use expected_draws_to_cover(n_data) / "
            "num_draws(n_data, ratio), which E[tau] exceeds by less than 1"
        )
    t = np.arange(ones, t_end + 1, dtype=np.int64)
    m = t * n
    lam = _lam(N, m)
    p = np.ones(m.shape)
    high = lam > _LAM_BOUND
    q1 = np.exp(m[high] * math.log1p(-1.0 / N))
    p[high] = -np.expm1(N * np.log1p(-q1))
    mid = np.flatnonzero((lam > _LAM_FLOAT) & ~high)
    if mid.size:  # a contiguous run of epochs: one decimal progression
        p[mid] = _exact.some_empty_progression(N, int(m[mid[0]]), n, mid.size)
    low = lam <= _LAM_FLOAT
    if low.any():
        p[low] = _some_empty_float(N, m[low])
    return float(ones + math.fsum(p.tolist()))


def expected_epochs_to_cover(n_data: ArrayLike, ratio: ArrayLike) -> Any:
    r"""Expected number of whole SRS epochs until every item has been seen,
    $E[\tau] = \sum_{T \ge 0} P(D > nT)$.

    This counts epochs as a training loop does (an integer). It satisfies
    $E[D]/n \le E[\tau] < E[D]/n + 1$ with $E[D]/n = N H_N / n \approx (\ln N + 0.5772)/s$
    (32.6 at $N = 10^4, s = 0.3$); `expected_draws_to_cover()` gives $E[D]$.
    Each term as in `prob_not_covered()`; relative error below $10^{-9}$.

    Raises:
        ValueError: the sum would span more than `MAX_COVER_EPOCHS` epochs (a tiny ``ratio``).
    """
    N = _as_count(n_data, "n_data", 1)
    n = _num_draws(N, ratio)
    return _float_out(_elementwise(_expected_epochs_one, N, n))


# ------------------------------------------------------------------------------- optimisation bounds
def _finite_bound(x: Any, name: str) -> Any:
    """``x`` (computed under ``np.errstate(all="ignore")``) as float(s), or a ValueError if it overflowed."""
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} overflows float64 for these arguments")
    return _float_out(a)


def steps_per_epoch(n_data: ArrayLike, ratio: ArrayLike, batch_size: ArrayLike = 1) -> Any:
    r"""Optimizer steps per SRS epoch, $\lceil n / B \rceil$ (the last batch may be short)."""
    B = _as_count(batch_size, "batch_size", 1)
    n = _num_draws(_as_count(n_data, "n_data", 1), ratio)
    return _int_out(-(-n // B))


def _mean_inv_batch(n: IntArray, B: IntArray) -> FloatArray:
    q, r = n // B, n % B
    steps = q + (r > 0)
    return np.asarray((q / B + np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0)) / steps, dtype=np.float64)


def _check_step(eta: FloatArray, L: FloatArray) -> None:
    if np.any(eta * L > 1 + 1e-12):
        raise ValueError("lr must satisfy lr <= 1/smoothness for the non-convex SGD bound")


def nonconvex_sgd_bound(
    initial_gap: ArrayLike,
    smoothness: ArrayLike,
    variance: ArrayLike,
    lr: ArrayLike,
    steps: ArrayLike,
    batch_size: ArrayLike = 1,
) -> Any:
    r"""Ghadimi–Lan bound for constant-step SGD on an $L$-smooth non-convex objective:

    $$
    \min_{k<K} E\|\nabla F(w_k)\|^2 \le \frac1K \sum_{k<K} E\|\nabla F(w_k)\|^2
    \le \frac{2\Delta}{\eta K} + \frac{L\eta\sigma^2}{B}.
    $$

    Assumptions: $F$ is $L$-smooth and bounded below, $\Delta = F(w_0) - F^*$; the minibatch
    gradient is unbiased with variance $\le \sigma^2/B$ (per-sample variance $\le \sigma^2$);
    $0 < \eta \le 1/L$.

    Raises:
        ValueError: ``lr > 1/smoothness`` somewhere (the bound does not hold there).
    """
    D = _as_positive(initial_gap, "initial_gap", allow_zero=True)
    L = _as_positive(smoothness, "smoothness")
    s2 = _as_positive(variance, "variance", allow_zero=True)
    eta = _as_positive(lr, "lr")
    K = _as_count(steps, "steps", 1)
    B = _as_count(batch_size, "batch_size", 1)
    _check_step(eta, L)
    with np.errstate(all="ignore"):
        value = 2 * D / (eta * K) + L * eta * s2 / B
    return _finite_bound(value, "nonconvex_sgd_bound")


def srs_convergence_bound(
    initial_gap: ArrayLike,
    smoothness: ArrayLike,
    variance: ArrayLike,
    lr: ArrayLike,
    n_data: ArrayLike,
    ratio: ArrayLike,
    epochs: ArrayLike,
    batch_size: ArrayLike = 1,
) -> Any:
    r"""The non-convex SGD bound of `nonconvex_sgd_bound()` for ``epochs`` SRS epochs (standard form
    adapted to SRS; the paper's own constants were not available).

    SRS minibatches are $B$ i.i.d. uniform draws from the data set, so they are unbiased for the
    empirical risk $F = \frac1N\sum_i f_i$ with variance $\sigma^2/B$ given the iterate —
    exactly the setting of the bound, with $K = T\lceil n/B \rceil$ steps. The short last batch of an
    epoch is accounted for by replacing $1/B$ with the average of $1/B_k$ over an epoch:

    $$
    \min_k E\|\nabla F(w_k)\|^2 \le \frac{2\Delta}{\eta T \lceil n/B\rceil}
    + L\eta\sigma^2\,\overline{B^{-1}}.
    $$

    At equal compute (draws $nT$) the bound does not depend on $s$: SRS trades per-epoch
    coverage for epoch time, not for rate. Same assumptions as `nonconvex_sgd_bound()`.
    """
    N = _as_count(n_data, "n_data", 1)
    n = _num_draws(N, ratio)
    B = _as_count(batch_size, "batch_size", 1)
    T = _as_count(epochs, "epochs", 1)
    K = _total_draws(-(-n // B), T)
    D = _as_positive(initial_gap, "initial_gap", allow_zero=True)
    L = _as_positive(smoothness, "smoothness")
    s2 = _as_positive(variance, "variance", allow_zero=True)
    eta = _as_positive(lr, "lr")
    _check_step(eta, L)
    with np.errstate(all="ignore"):
        value = 2 * D / (eta * K) + L * eta * s2 * _mean_inv_batch(n, B)
    return _finite_bound(value, "srs_convergence_bound")


def optimal_lr(
    initial_gap: ArrayLike,
    smoothness: ArrayLike,
    variance: ArrayLike,
    steps: ArrayLike,
    batch_size: ArrayLike = 1,
) -> Any:
    r"""The step minimising `nonconvex_sgd_bound()`:
    $\eta = \min\{1/L, \sqrt{2\Delta B/(L\sigma^2 K)}\}$,
    which gives $O(\sqrt{L\Delta\sigma^2/(BK)} + L\Delta/K)$.

    ``initial_gap`` must be > 0 (at $\Delta = 0$ the bound is minimised by $\eta \to 0$, which is
    no step size); ``variance = 0`` gives $1/L$.
    """
    D = _as_positive(initial_gap, "initial_gap")
    L = _as_positive(smoothness, "smoothness")
    s2 = _as_positive(variance, "variance", allow_zero=True)
    K = _as_count(steps, "steps", 1)
    B = _as_count(batch_size, "batch_size", 1)
    with np.errstate(divide="ignore", over="ignore"):
        eta = np.minimum(1 / L, np.sqrt(2 * D * B / (L * s2 * K)))  # overflow is refused below
    if np.any(eta <= 0):
        raise ValueError("optimal_lr underflows to 0: initial_gap is too small relative to the variance")
    return _finite_bound(eta, "optimal_lr")


def stability_bound_convex(
    lipschitz: ArrayLike, smoothness: ArrayLike, lr: ArrayLike, steps: ArrayLike, n_data: ArrayLike
) -> Any:
    r"""Uniform stability of SGD with replacement sampling on a convex loss (Hardt, Recht & Singer 2016,
    Thm 3.8), constant step $\alpha$:

    $$
    \varepsilon_{\rm stab} \le \frac{2G^2}{N}\sum_{t=1}^{K}\alpha_t = \frac{2G^2 \alpha K}{N}.
    $$

    Assumptions: each loss $f(\cdot; z)$ is convex, $G$-Lipschitz and $\beta$-smooth, and
    $\alpha \le 2/\beta$. The expected generalization gap $|E[R(w_K) - R_S(w_K)]|$ is at most
    $\varepsilon_{\rm stab}$. ``steps`` counts updates: single-sample steps, or minibatch steps when
    each step averages $B$ i.i.d. draws (the differing example enters a step with probability
    $\approx B/N$ at weight $\alpha/B$, so the per-step perturbation is the same
    $2\alpha G/N$; see ``theory/srs_generalization.md``).
    """
    G = _as_positive(lipschitz, "lipschitz", allow_zero=True)
    beta = _as_positive(smoothness, "smoothness")
    a = _as_positive(lr, "lr")
    K = _as_count(steps, "steps", 0)
    N = _as_count(n_data, "n_data", 1)
    if np.any(a * beta > 2 + 1e-12):
        raise ValueError("lr must satisfy lr <= 2/smoothness for the convex stability bound")
    with np.errstate(all="ignore"):
        value = 2 * G**2 * a * K / N
    return _finite_bound(value, "stability_bound_convex")


def stability_bound_nonconvex(
    lipschitz: ArrayLike, smoothness: ArrayLike, c: ArrayLike, steps: ArrayLike, n_data: ArrayLike
) -> Any:
    r"""Uniform stability of SGD with replacement sampling on a non-convex loss (Hardt, Recht & Singer 2016,
    Thm 3.12), steps $\alpha_t \le c/t$:

    $$
    \varepsilon_{\rm stab} \le \frac{1 + 1/(\beta c)}{N - 1}\,(2cG^2)^{1/(\beta c + 1)}\,
    K^{\beta c/(\beta c + 1)}.
    $$

    Assumptions: the loss takes values in $[0, 1]$, is $G$-Lipschitz and $\beta$-smooth;
    $N \ge 2$.
    """
    G = _as_positive(lipschitz, "lipschitz", allow_zero=True)
    beta = _as_positive(smoothness, "smoothness")
    cc = _as_positive(c, "c")
    K = _as_count(steps, "steps", 0)
    N = _as_count(n_data, "n_data", 2)
    bc = beta * cc
    with np.errstate(all="ignore"):
        value = (
            (1 + 1 / bc)
            / (N - 1)
            * (2 * cc * G**2) ** (1 / (bc + 1))
            * K.astype(np.float64) ** (bc / (bc + 1))
        )
    return _finite_bound(value, "stability_bound_nonconvex")


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
) -> Any:
    r"""Stability bound on the generalization gap after ``epochs`` epochs of single-sample SRS-SGD
    (the uniform-stability bounds of Hardt, Recht & Singer, ICML 2016, applied to SRS).

    SRS with $B = 1$ *is* SGD with replacement sampling, run for $K = T\lceil sN \rceil$ steps, so
    Hardt et al.'s bounds apply verbatim with that $K$: convex (``convex=True``, ``lr`` = constant
    $\alpha \le 2/\beta$) $2G^2\alpha T\lceil sN\rceil/N \approx 2G^2\alpha sT$; non-convex
    (``lr`` = $c$ in $\alpha_t \le c/t$, loss in [0, 1]) as `stability_bound_nonconvex()`.
    Smaller $s$ means fewer steps and a smaller bound, at the price of optimisation error.
    With ``batch_size`` $B > 1$ (convex case only) $K = T\lceil n/B \rceil$ minibatch steps.
    """
    N = _as_count(n_data, "n_data", 1)
    T = _as_count(epochs, "epochs", 0)
    B = check_int(batch_size, "batch_size", low=1)
    if not convex and B != 1:
        raise ValueError("the non-convex stability bound is stated for batch_size=1")
    K = _total_draws(np.asarray(-(-_num_draws(N, ratio) // B)), T)
    if convex:
        return stability_bound_convex(lipschitz, smoothness, lr, K, N)
    return stability_bound_nonconvex(lipschitz, smoothness, lr, K, N)


__all__ = [
    "MAX_COUNT",
    "MAX_COVER_EPOCHS",
    "MAX_PMF_LENGTH",
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
