"""CAGrad at the boundary c = 1 on Pareto-stationary gradients, against the closed-form optimum.

With $0 = \\sum_i w_i g_i$ for some $w$ on the simplex, every direction has $\\min_i\\langle g_i,
d\\rangle \\le \\sum_i w_i\\langle g_i, d\\rangle = 0$, so the optimal value of
$\\max_d \\min_i\\langle g_i, d\\rangle$ s.t. $\\|d - g_0\\| \\le c\\|g_0\\|$ is at most 0; for $c \\ge 1$
the ball contains $d = 0$, which attains it. The optimum is therefore exactly 0 at $c = 1$ (the ball's
boundary passes through 0), and strictly negative for $c < 1$ where 0 lies outside the ball.
"""

from __future__ import annotations

import pytest
import torch

from bilevel.moo import CAGrad, cagrad_weights


def _stationary(seed: int, m: int = 4, n: int = 6) -> torch.Tensor:
    """m gradients whose convex hull contains 0: the last is minus a scaled convex mix of the others."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(m - 1, n, generator=g, dtype=torch.float64)
    w = torch.rand(m - 1, generator=g, dtype=torch.float64) + 0.1
    w = w / w.sum()
    return torch.cat([A, -1.7 * (w @ A)[None]])


def _worst(G: torch.Tensor, d: torch.Tensor) -> float:
    return float((G @ d).min() / (G * G).sum(1).max())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("c", [1.0, 1.5])
def test_cagrad_at_c_one_attains_the_optimal_value_zero(seed: int, c: float) -> None:
    G = _stationary(seed)
    d = cagrad_weights(G @ G.T, c, rescale=0) @ G
    assert _worst(G, d) >= -1e-12  # optimum is 0 (closed form above); a d with a conflict is not optimal
    g0 = G.mean(0)
    assert float((d - g0).norm()) <= c * float(g0.norm()) * (1 + 1e-12)  # feasible


@pytest.mark.parametrize("seed", range(4))
def test_cagrad_aggregator_at_c_one_gives_no_conflict(seed: int) -> None:
    G = _stationary(seed)
    d = CAGrad(c=1.0, rescale=1)(G)
    assert _worst(G, d) >= -1e-12


@pytest.mark.parametrize("seed", range(4))
def test_cagrad_value_below_one_is_negative_and_tends_to_zero(seed: int) -> None:
    """For c < 1 the ball excludes 0 and the value is < 0; it rises to the c = 1 value 0 as c → 1."""
    G = _stationary(seed)
    vals = [_worst(G, cagrad_weights(G @ G.T, c, rescale=0) @ G) for c in (0.5, 0.9, 0.99, 0.999)]
    assert all(v < 0 for v in vals)
    assert vals == sorted(vals)  # the optimal value is non-decreasing in the radius
    assert abs(vals[-1]) < 0.05 * abs(vals[0])
