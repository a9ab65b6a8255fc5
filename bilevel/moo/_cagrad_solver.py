"""CAGrad's dual, $\\min_{w\\in\\Delta} a^\top w + \varphi\\sqrt{w^\top Q w}$, solved on the Gramian
(see [`bilevel.moo.cagrad_weights()`][bilevel.moo.cagrad_weights] for the method)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bilevel.moo._simplex import _min_norm_weights


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


def cagrad_dual(q: Tensor, a: Tensor, g0n2: float, phi: float, tol: float, max_iter: int = 60) -> Tensor:
    """argmin_{w∈Δ} aᵀw + φ√(wᵀQw) (see `cagrad_weights()`)."""
    ones = torch.ones_like(a)

    def solve(s: float) -> tuple[Tensor, float]:
        qs = q + s * (a[:, None] + a[None, :]) + (s * s * g0n2) * ones[:, None] * ones[None, :]
        w = _min_norm_weights(qs, tol=tol)
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
    w_min = _min_norm_weights(q, tol=tol)
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
