r"""Occupancy formulas whose float64 forms cancel catastrophically, evaluated in decimal arithmetic.

The moments of the number of empty bins after $m$ uniform throws into $N$ bins are
alternating combinations of the factorial moments $(N)_r (1 - r/N)^m$ (terms up to $N^3$, results
as small as $1/N$), and the cover-time tail is the inclusion–exclusion sum
$\sum_j (-1)^{j+1}\binom{N}{j}(1 - j/N)^m$ (terms up to $e^{\lambda}$). Both are evaluated here
with the standard library's ``decimal`` (correctly rounded ``ln``/``exp``) at a working precision that covers
the cancellation plus 30 guard digits, so the float64 results are correct to a few units in the last place.
"""

from __future__ import annotations

import math
from decimal import MAX_EMAX, MIN_EMIN, Decimal, localcontext


def _digits(x: int) -> int:
    return len(str(abs(int(x))))


def occupancy_moments(n_bins: int, draws: int) -> tuple[float, float, float, float]:
    r"""Mean, variance, third central moment of the number $E$ of empty bins, and the skewness of the
    number of occupied bins $U = N - E$, after ``draws`` throws into ``n_bins`` bins.

    $\mu = f_1$, $\sigma^2 = f_2 + f_1 - f_1^2$,
    $\kappa_3 = f_3 + 3f_2 + f_1 - 3f_1(f_2 + f_1) + 2f_1^3$ with
    $f_r = (N)_r (1 - r/N)^m$; skewness of $U$ is $-\kappa_3/\sigma^3$ (0 where
    $\sigma = 0$, i.e. $N = 1$ or $m \le 1$).
    """
    N, m = int(n_bins), int(draws)
    if N == 1:
        return (0.0 if m >= 1 else 1.0), 0.0, 0.0, 0.0
    if m <= 1:  # U = m exactly
        return float(N - m), 0.0, 0.0, 0.0
    with localcontext() as ctx:
        # terms reach N^3 while the results can be as small as 1/N: 4 digits of N, plus the digits lost in
        # exp(m log(1 - r/N)) (its argument has |.| <= 3m/N + ...), plus 30 guard digits
        ctx.prec = 30 + 4 * _digits(N) + _digits(m)
        ctx.Emin, ctx.Emax = MIN_EMIN, MAX_EMAX
        Nd = Decimal(N)
        q = [Decimal(1)] + [(m * ((Nd - r) / Nd).ln()).exp() if r < N else Decimal(0) for r in (1, 2, 3)]
        f1 = Nd * q[1]
        f2 = Nd * (Nd - 1) * q[2]
        f3 = Nd * (Nd - 1) * (Nd - 2) * q[3]
        var = f2 + f1 - f1 * f1
        k3 = f3 + 3 * f2 + f1 - 3 * f1 * (f2 + f1) + 2 * f1 * f1 * f1
        skew = -k3 / (var * var.sqrt()) if var > 0 else Decimal(0)
        return float(f1), float(max(var, Decimal(0))), float(k3), float(skew)


def duplicate_fraction(n_bins: int, draws: int) -> float:
    r"""$1 - E[U]/n = (n - N(1 - (1 - 1/N)^n))/n$ (the leading terms cancel: $\approx n/(2N)$)."""
    N, n = int(n_bins), int(draws)
    if N == 1:
        return (n - 1) / n
    if n == 1:
        return 0.0
    with localcontext() as ctx:
        ctx.prec = 30 + 2 * _digits(N) + _digits(n)
        ctx.Emin, ctx.Emax = MIN_EMIN, MAX_EMAX
        Nd = Decimal(N)
        q1 = (n * ((Nd - 1) / Nd).ln()).exp()
        return float((n - Nd * (1 - q1)) / n)


# Cover-time tail: the inclusion–exclusion sum in decimal where its float64 form would lose digits.
_IE_PREC = 45  # terms up to e^22 / sqrt(2π·22) ≈ 3e8; 45 digits leave > 30 after the cancellation
_IE_TERMS = 130  # λ^j / j! < 1e-38 for j > 130 when λ <= 22


def some_empty_progression(n_bins: int, first: int, step: int, count: int) -> list[float]:
    r"""The probability that some bin is empty after $m$ throws,
    $\sum_{j \ge 1} (-1)^{j+1}\binom{N}{j}(1-j/N)^m$, for $m = $ ``first + k * step``,
    ``k < count``, in decimal.

    For the caller's range (expected number of empty bins $\lambda \le 22$ at ``first``, so that every
    term is below $\lambda^j/j!$), ``_IE_TERMS`` terms leave a truncation error below $10^{-38}$.
    Successive $m$ multiply each term by $(1 - j/N)^{\mathrm{step}}$ (exact to the working
    precision), which makes a long progression cheap.
    """
    N = int(n_bins)
    J = min(N - 1, _IE_TERMS)
    out: list[float] = []
    with localcontext() as ctx:
        ctx.prec = _IE_PREC + _digits(first + step * count)
        ctx.Emin, ctx.Emax = MIN_EMIN, MAX_EMAX
        Nd = Decimal(N)
        logs = [((Nd - j) / Nd).ln() for j in range(1, J + 1)]
        terms, ratios = [], []
        binom = Decimal(1)
        for j in range(1, J + 1):
            binom = binom * (N - j + 1) / j
            terms.append(binom * (first * logs[j - 1]).exp())
            ratios.append((step * logs[j - 1]).exp())
        for _ in range(count):
            acc = Decimal(0)
            for j in range(J - 1, -1, -1):  # smallest terms first
                acc = acc + terms[j] if j % 2 == 0 else acc - terms[j]
            out.append(min(1.0, max(0.0, float(acc))))
            terms = [t * r for t, r in zip(terms, ratios, strict=True)]
    return out


def log_binom_float(n: int, j: int) -> float:
    r"""$\log\binom{n}{j}$ for small ``j`` and any ``n`` without the cancellation of
    ``lgamma(n + 1) - lgamma(n - j + 1)`` (which loses every digit at $n = 10^{12}$)."""
    return j * math.log(n) + math.fsum(math.log1p(-i / n) for i in range(1, j)) - math.lgamma(j + 1)
