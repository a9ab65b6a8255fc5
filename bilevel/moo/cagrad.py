"""CAGrad: conflict-averse gradient descent (Liu, Liu, Jin, Stone, Liu, NeurIPS 2021)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bilevel._checks import check_real
from bilevel.moo._base import Aggregator, check_gramian
from bilevel.moo._simplex import min_norm_weights

RESCALES = (0, 1, 2)


def _closed_form_on_support(q: Tensor, a: Tensor, phi: float, support: list[int]) -> Tensor | None:
    """Minimiser of aᵀw + φ‖Gᵀw‖ over {w: Σw = 1, supp w ⊆ S} from its stationarity conditions, or None.

    On the support, Q_S w = (n/φ)(ν1 − a_S) with n = ‖Gᵀw‖; with u = Q_S⁻¹1, v = Q_S⁻¹a_S this gives
    φ² = ν²(1ᵀu) − 2ν(1ᵀv) + aᵀv and n = φ / (ν 1ᵀu − 1ᵀv).
    """
    idx = torch.tensor(support)
    qs = q[idx][:, idx]
    try:
        uv = torch.linalg.solve(qs, torch.stack([torch.ones(len(support), dtype=q.dtype), a[idx]], 1))
    except RuntimeError:
        return None
    u, v = uv[:, 0], uv[:, 1]
    al, be, ga = float(u.sum()), float(v.sum()), float(a[idx] @ v)
    disc = be * be - al * (ga - phi * phi)
    if al <= 0 or disc < 0:
        return None
    nu = (be + math.sqrt(disc)) / al
    den = nu * al - be
    if den <= 0:
        return None
    ws = (nu * u - v) / den
    if not bool(torch.isfinite(ws).all()):
        return None
    w = torch.zeros(q.shape[0], dtype=q.dtype)
    w[idx] = ws
    return w


def _feasible(w: Tensor | None) -> Tensor | None:
    if w is None or bool((w < -1e-12).any()):
        return None
    w = w.clamp_min(0)
    return w / w.sum()


def _kkt_ok(q: Tensor, a: Tensor, phi: float, w: Tensor, tol: float) -> bool:
    """Optimality of w for min_{w∈Δ} aᵀw + φ√(wᵀQw): (∇F)_i ≥ wᵀ∇F − tol for every i."""
    n2 = float(w @ q @ w)
    if n2 <= 0:
        return False
    grad = a + phi * (q @ w) / math.sqrt(n2)
    scale = float(a.abs().max()) + phi * math.sqrt(float(q.diagonal().max()))
    return float(grad.min()) >= float(w @ grad) - tol * max(scale, 1e-300)


def cagrad_weights(gramian: Tensor, c: float = 0.5, *, rescale: int = 1, tol: float = 1e-12) -> Tensor:
    r"""Weights :math:`\beta` with :math:`d = \sum_i \beta_i g_i` equal to CAGrad's direction.

    Primal: :math:`\max_d \min_i \langle g_i, d\rangle` s.t. :math:`\|d - g_0\| \le c\|g_0\|`, with
    :math:`g_0 = \frac1m\sum_i g_i`. Its dual (as in the official code) is
    :math:`w^\star = \arg\min_{w\in\Delta} w^\top Q b + \varphi\sqrt{w^\top Q w}` with b = 1/m and
    :math:`\varphi = c\|g_0\|`, and :math:`d = g_0 + \varphi\, g_{w^\star} / \|g_{w^\star}\|`.

    Solver (torch, float64, on the Gramian only): with :math:`\varphi\|x\| = \min_{t>0} \frac{\varphi}{2}
    (\|x\|^2/t + t)`, for fixed :math:`s = t/\varphi` the dual is the min-norm problem of the shifted
    points :math:`g_i + s g_0` (solved exactly, see :func:`~bilevel.moo.mgda.mgda_weights`); the optimal s
    solves :math:`\|g_{w(s)}\| = \varphi s`, whose root is bracketed by
    :math:`[\|d_{\mathrm{MGDA}}\|, \max_i\|g_i\|]/\varphi` and found by safeguarded regula falsi in log s.
    Once the support is identified the stationarity conditions are solved in closed form on it and
    checked (KKT), which makes the result exact to rounding.

    ``rescale`` as in the official code: 0 → d, 1 → d/(1 + c²), 2 → d/(1 + c).
    """
    q = check_gramian(gramian).detach().to(device="cpu", dtype=torch.float64)
    q = 0.5 * (q + q.T)
    c = check_real(c, "c", low=0.0)
    if rescale not in RESCALES:
        raise ValueError(f"rescale must be one of 0, 1, 2; got {rescale!r}")
    m = q.shape[0]
    b = torch.full((m,), 1.0 / m, dtype=torch.float64)
    a = q @ b
    g0n2 = float(b @ a)
    phi = c * math.sqrt(max(g0n2, 0.0))
    coef = b.clone()
    if phi > 0:
        w = _cagrad_dual(q, a, g0n2, phi, tol)
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


def _cagrad_dual(q: Tensor, a: Tensor, g0n2: float, phi: float, tol: float, max_iter: int = 60) -> Tensor:
    """argmin_{w∈Δ} aᵀw + φ√(wᵀQw) (see :func:`cagrad_weights`)."""
    ones = torch.ones_like(a)

    def solve(s: float) -> tuple[Tensor, float]:
        qs = q + s * (a[:, None] + a[None, :]) + (s * s * g0n2) * ones[:, None] * ones[None, :]
        w = min_norm_weights(qs, tol=tol)
        return w, math.sqrt(max(float(w @ q @ w), 0.0))

    # fast path: closed form on the full support, then drop the most negative weight (at most m tries);
    # any candidate is accepted only if it passes the KKT check
    support = list(range(q.shape[0]))
    while support:
        raw = _closed_form_on_support(q, a, phi, support)
        if raw is None:
            break
        cand = _feasible(raw)
        if cand is not None:
            if _kkt_ok(q, a, phi, cand, 1e-12):
                return cand
            break
        support.remove(int(torch.argmin(raw)))
    w_min = min_norm_weights(q, tol=tol)
    n_min = math.sqrt(max(float(w_min @ q @ w_min), 0.0))
    n_max = math.sqrt(float(q.diagonal().max()))
    hi = math.log(max(n_max / phi, 1e-300))
    lo = math.log(n_min / phi) if n_min > 1e-8 * n_max else hi - 18.0
    # r(s) = n(s)/s − φ is non-increasing in s; bracket [lo, hi] in log s with r(lo) ≥ 0 ≥ r(hi)
    w_lo, n_lo = solve(math.exp(lo))
    r_lo = n_lo / math.exp(lo) - phi
    if r_lo <= 0:  # degenerate (Pareto-stationary hull): the root is at s → 0
        return w_lo
    w_hi, n_hi = solve(math.exp(hi))
    r_hi = n_hi / math.exp(hi) - phi
    if r_hi >= 0:
        return w_hi
    best = w_hi
    side = 0
    tried: set[tuple[int, ...]] = set()
    for _ in range(max_iter):
        x = (lo * r_hi - hi * r_lo) / (r_hi - r_lo)
        if not (lo < x < hi):
            x = 0.5 * (lo + hi)
        w, n = solve(math.exp(x))
        r = n / math.exp(x) - phi
        best = w
        support = (w > 1e-14).nonzero().flatten().tolist()
        key = tuple(support)
        if key not in tried:
            tried.add(key)
            cand = _feasible(_closed_form_on_support(q, a, phi, support))
            if cand is not None and _kkt_ok(q, a, phi, cand, 1e-12):
                return cand
        if r > 0:
            lo, r_lo = x, r
            if side == 1:
                r_hi *= 0.5  # Illinois modification
            side = 1
        else:
            hi, r_hi = x, r
            if side == -1:
                r_lo *= 0.5
            side = -1
        if hi - lo < 1e-13 or abs(r) <= 1e-14 * phi:
            break
    return best


class CAGrad(Aggregator):
    r"""Conflict-averse gradient: the direction within a ball around the mean gradient that maximises the
    worst-case decrease,

    .. math:: \max_d \min_i \langle g_i, d\rangle \quad \text{s.t.} \quad \|d - g_0\| \le c\,\|g_0\|,

    :math:`g_0 = \frac1m \sum_i g_i`. c = 0 is gradient descent on the mean loss; larger c moves towards
    MGDA. For 0 ≤ c < 1 CAGrad converges to stationary points of the mean loss (Liu et al., Thm 3.2).
    Solved on the m × m Gramian in torch (no scipy/cvxpy), to rounding accuracy; see
    :func:`cagrad_weights`.

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
        if rescale not in RESCALES:
            raise ValueError(f"rescale must be one of 0, 1, 2; got {rescale!r}")
        self.rescale = rescale
        self.tol = check_real(tol, "tol", low=0.0, low_open=True)

    def weights_from_gramian(
        self, gramian: Tensor, cross_gramian: Tensor | None = None, *, losses: Tensor | None = None
    ) -> Tensor:
        w = cagrad_weights(gramian, self.c, rescale=self.rescale, tol=self.tol)
        return self._record(w, gramian)

    def __repr__(self) -> str:
        return f"CAGrad(c={self.c}, rescale={self.rescale})"
