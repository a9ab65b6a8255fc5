"""CAGrad: conflict-averse gradient descent (Liu, Liu, Jin, Stone, Liu, NeurIPS 2021)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from bilevel.checks import check_real
from bilevel.moo._base import Aggregator, check_gramian
from bilevel.moo._cagrad_solver import cagrad_dual

RESCALES = (0, 1, 2)


def check_rescale(rescale: Any) -> int:
    """``rescale`` is 0, 1 or 2, else raise."""
    if isinstance(rescale, bool) or rescale not in RESCALES:
        raise ValueError(f"rescale must be one of 0, 1, 2; got {rescale!r}")
    return int(rescale)


def cagrad_weights(gramian: Tensor, c: float = 0.5, *, rescale: int = 1, tol: float = 1e-12) -> Tensor:
    r"""Weights $\beta$ with $d = \sum_i \beta_i g_i$ equal to CAGrad's direction.

    Primal: $\max_d \min_i \langle g_i, d\rangle$ s.t. $\|d - g_0\| \le c\|g_0\|$, with
    $g_0 = \frac1m\sum_i g_i$. Its dual (as in the official code) is
    $w^\star = \arg\min_{w\in\Delta} w^\top Q b + \varphi\sqrt{w^\top Q w}$ with b = 1/m and
    $\varphi = c\|g_0\|$, and $d = g_0 + \varphi\, g_{w^\star} / \|g_{w^\star}\|$.

    Solver (torch, float64, on the Gramian only): with $\varphi\|x\| = \min_{t>0} \frac{\varphi}{2}
    (\|x\|^2/t + t)$, for fixed $s = t/\varphi$ the dual is the min-norm problem of the shifted
    points $g_i + s g_0$ (solved exactly, see [`mgda_weights()`][bilevel.moo.mgda.mgda_weights]); the optimal
    s
    solves $\|g_{w(s)}\| = \varphi s$, whose root is bracketed by
    $[\|d_{\mathrm{MGDA}}\|, \max_i\|g_i\|]/\varphi$ and found by safeguarded regula falsi in log s.
    Once the support is identified the stationarity conditions are solved in closed form on it and
    checked (KKT), which makes the result exact to rounding.

    ``rescale`` as in the official code: 0 → d, 1 → d/(1 + c²), 2 → d/(1 + c).

    Raises:
        ValueError: the Gramian is not a finite symmetric positive semidefinite (m, m) matrix with m ≥ 2,
            ``c`` < 0, ``rescale`` not in {0, 1, 2}, or ``tol`` ≤ 0.
    """
    check_gramian(gramian)
    c = check_real(c, "c", low=0.0)
    rescale = check_rescale(rescale)
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    return _cagrad_weights(gramian, c, rescale, tol)


def _cagrad_weights(gramian: Tensor, c: float, rescale: int, tol: float) -> Tensor:
    """`cagrad_weights()` on checked inputs."""
    q = gramian.detach().to(device="cpu", dtype=torch.float64)
    q = 0.5 * (q + q.T)
    m = q.shape[0]
    b = torch.full((m,), 1.0 / m, dtype=torch.float64)
    a = q @ b
    g0n2 = float(b @ a)
    phi = c * math.sqrt(max(g0n2, 0.0))
    coef = b.clone()
    if phi > 0:
        w = cagrad_dual(q, a, g0n2, phi, tol)
        n = math.sqrt(max(float(w @ q @ w), 0.0))
        if n > 0:
            coef = b + (phi / n) * w
        # Degenerate case: when 0 lies in the convex hull of the gradients (Pareto-stationary) and c >= 1,
        # the dual optimum has g_w = 0, the formula above is undefined, and the primal optimum is the
        # interior point d = 0 (value 0, which no feasible d can beat since some convex combination of
        # ⟨g_i, d⟩ is 0). Detect it by the primal value: d = 0 is feasible for c >= 1.
        if c >= 1.0 and float((q @ coef).min()) < 0.0:
            coef = torch.zeros_like(b)
    if rescale == 1:
        coef = coef / (1 + c * c)
    elif rescale == 2:
        coef = coef / (1 + c)
    return coef.to(device=gramian.device, dtype=gramian.dtype)


class CAGrad(Aggregator):
    r"""Conflict-averse gradient: the direction within a ball around the mean gradient that maximises the
    worst-case decrease,

    $$
    \max_d \min_i \langle g_i, d\rangle \quad \text{s.t.} \quad \|d - g_0\| \le c\,\|g_0\|,
    $$

    $g_0 = \frac1m \sum_i g_i$. c = 0 is gradient descent on the mean loss; larger c moves towards
    MGDA. For 0 ≤ c < 1 CAGrad converges to stationary points of the mean loss (Liu et al., Thm 3.2).
    Solved on the m × m Gramian in torch (no scipy/cvxpy), to rounding accuracy; see
    `cagrad_weights()`.

    Reference: B. Liu, X. Liu, X. Jin, P. Stone, Q. Liu, "Conflict-Averse Gradient Descent for Multi-task
    Learning", NeurIPS 2021.

    Args:
        c: radius of the ball, relative to ‖g₀‖ (≥ 0; official default 0.5, NYUv2 runs 0.4).
        rescale: 0 → d, 1 → d/(1 + c²) (official default), 2 → d/(1 + c). The official training code
            further multiplies by m to match the scale of the summed loss; here d is on the scale of the
            mean gradient g₀.
    """

    def __init__(self, c: float = 0.5, *, rescale: int = 1, tol: float = 1e-12) -> None:
        super().__init__()
        self.c = check_real(c, "c", low=0.0)
        self.rescale = check_rescale(rescale)
        self.tol = check_real(tol, "tol", low=0.0, low_open=True)

    def compute_weights(self, gramian: Tensor, cross_gramian: Tensor | None, losses: Tensor | None) -> Tensor:
        return _cagrad_weights(gramian, self.c, self.rescale, self.tol)

    def __repr__(self) -> str:
        return f"CAGrad(c={self.c}, rescale={self.rescale})"
