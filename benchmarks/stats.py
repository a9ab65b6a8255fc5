"""Confidence intervals behind the claims' verdicts: a paired Student-t interval for a mean difference
and the distribution-free (sign-test) interval for a median."""

from __future__ import annotations

import math
import statistics

__all__ = ["median_ratio_interval", "paired_t_interval"]


def paired_t_interval(diffs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences (e.g. per-seed) and its two-sided Student-t interval.

    With $n$ differences of mean $\\bar d$ and sample standard deviation $s$, the interval is
    $\\bar d \\pm t_{(1+\\text{level})/2,\\,n-1}\\, s/\\sqrt{n}$.

    Args:
        diffs: the paired differences.
        level: the two-sided coverage.

    Returns:
        ``(mean, low, high)``; with fewer than 2 differences the interval is $(-\\infty, \\infty)$.
    """
    from scipy.stats import t as student_t

    n = len(diffs)
    m = statistics.fmean(diffs)
    if n < 2:
        return m, -math.inf, math.inf
    half = float(student_t.ppf(0.5 + level / 2, n - 1)) * statistics.stdev(diffs) / math.sqrt(n)
    return m, m - half, m + half


def median_ratio_interval(x: list[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval for the median of ``x`` (e.g. per-round time ratios).

    The sign-test interval $[x_{(j)}, x_{(n+1-j)}]$ (order statistics, 1-based) with the largest $j$
    such that $P(\\mathrm{Bin}(n, \\tfrac12) < j) \\le (1-\\text{level})/2$, so its coverage is at least
    ``level``; with too few values for that (e.g. $n \\le 5$ at 95 %) it is the range $[x_{(1)}, x_{(n)}]$.
    """
    xs = sorted(x)
    n = len(xs)
    tail, j, cum = (1 - level) / 2, 0, 0.0
    while j < n // 2:
        cum_next = cum + math.comb(n, j) / 2**n
        if cum_next > tail:
            break
        cum, j = cum_next, j + 1
    j = max(j, 1)
    return xs[j - 1], xs[n - j]
