"""Small solvers on the probability simplex, working on an m × m Gramian (m = number of objectives).

- `project_simplex()`: Euclidean projection onto Δ_m (sort-based; Duchi et al., ICML 2008).
- `min_norm_weights()`: the exact minimiser of wᵀQw over Δ_m, i.e. the weights of the min-norm point of
  the convex hull of the gradients (Wolfe's min-norm-point algorithm, *Math. Programming* 11, 1976,
  written on the Gramian). It is an active-set method: it terminates in finitely many steps with the
  optimal support and solves the KKT system on that support exactly, so it reaches the float64 floor
  instead of the O(1/k) accuracy of Frank–Wolfe.

The solvers run in float64 on the CPU (the active-set loop in numpy, whose per-call overhead on tiny arrays
is a fraction of torch's): the problem is m × m (m ≤ a few dozen); callers move the result back to the
gradients' device and dtype. No external solver (scipy, cvxpy) is involved.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from bilevel.checks import check_int, check_real
from bilevel.moo._base import check_gramian


def project_simplex(v: Tensor) -> Tensor:
    r"""Euclidean projection of ``v`` (last dimension) onto the probability simplex.

    $\Pi_\Delta(v) = \max(v - \tau, 0)$ with τ chosen so that the result sums to one
    (sort-based algorithm of Duchi, Shalev-Shwartz, Singer and Chandra, ICML 2008).

    Raises:
        TypeError: ``v`` is not a floating-point tensor.
        ValueError: ``v`` is 0-d or empty, or holds NaN/inf.
    """
    if not isinstance(v, Tensor):
        raise TypeError(f"v must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"v must be a floating-point tensor, got dtype {v.dtype}")
    if v.dim() == 0 or v.shape[-1] == 0:
        raise ValueError(f"v must be a non-empty vector (or a batch of them), got shape {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError("v has non-finite entries (NaN or inf)")
    return _project_simplex(v)


def _project_simplex(v: Tensor) -> Tensor:
    """`project_simplex()` without input checks (for callers that checked already)."""
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = u.cumsum(-1) - 1
    k = torch.arange(1, v.shape[-1] + 1, device=v.device, dtype=v.dtype)
    cond = u - css / k > 0
    r = cond.to(torch.int64).cumsum(-1).argmax(-1, keepdim=True)  # last index where cond holds
    tau = css.gather(-1, r) / (r + 1).to(v.dtype)
    return (v - tau).clamp_min(0)


def _affine_minimizer(q: np.ndarray) -> np.ndarray:
    """Minimiser of μᵀqμ subject to Σμ = 1 (bordered KKT system; exact for affinely independent points)."""
    s = q.shape[0]
    kkt = np.zeros((s + 1, s + 1))
    kkt[:s, :s] = q
    kkt[:s, s] = 1
    kkt[s, :s] = 1
    rhs = np.zeros(s + 1)
    rhs[s] = 1
    try:
        sol = np.linalg.solve(kkt, rhs)
    except np.linalg.LinAlgError:
        sol = None
    if sol is None or not np.isfinite(sol).all():  # affinely dependent (numerically): least squares
        sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
    return sol[:s]


def _wolfe(q: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """Wolfe's min-norm-point algorithm on the Gramian ``q`` (m ≥ 3, max diagonal > 0)."""
    m = q.shape[0]
    scale = float(q.diagonal().max())
    start = int(np.argmin(q.diagonal()))
    active = [start]
    w = np.zeros(m)
    w[start] = 1.0
    for _ in range(max_iter):
        qw = q @ w
        norm2 = float(w @ qw)
        j = int(np.argmin(qw))
        if norm2 - float(qw[j]) <= tol * scale or norm2 <= tol * tol * scale or j in active:
            break
        active.append(j)
        for _minor in range(m + 1):
            idx = np.array(active)
            mu = _affine_minimizer(q[np.ix_(idx, idx)])
            if (mu > 0).all():
                w = np.zeros(m)
                w[idx] = mu
                break
            lam = w[idx]
            neg = mu <= 0
            theta = float(np.min(lam[neg] / (lam[neg] - mu[neg])))
            new = lam + theta * (mu - lam)
            keep = new > 1e-15
            if keep.all():  # drop at least the vertex that defined the step
                keep[int(np.argmin(new))] = False
            w = np.zeros(m)
            w[idx[keep]] = new[keep]
            active = [a for a, k in zip(active, keep.tolist()) if k]
            w = w / w.sum()
    return w


def min_norm_weights(gramian: Any, *, tol: float = 1e-12, max_iter: int | None = None) -> Tensor:
    r"""Exact weights of the min-norm element of the convex hull of the rows of G, given Q = GGᵀ.

    Solves $\min_{w \in \Delta_m} w^\top Q w$ with Wolfe's min-norm-point algorithm on the Gramian
    (major cycle: add the most violating vertex; minor cycle: affine minimiser on the active set, step back
    to the simplex and drop vertices that hit zero). It stops when the Frank–Wolfe gap
    $w^\top Q w - \min_i (Qw)_i$ is below ``tol · max_i Q_ii``; since
    $\|d - d^\star\|^2 \le 2\,\mathrm{gap}$, the returned direction is then exact to
    $\sqrt{2\,\mathrm{tol}}$ relative to the largest gradient.

    Args:
        gramian: symmetric PSD (m, m) matrix.
        tol: relative stopping tolerance on the Frank–Wolfe gap.
        max_iter: cap on major iterations (default ``50 + 10 m``); the best iterate so far is returned.

    Returns:
        Weights (m,) in float64 on the CPU.

    Raises:
        ValueError: the Gramian is not a finite symmetric PSD (m, m) matrix with m ≥ 2, ``tol`` is not
            positive or ``max_iter`` is below 1.
    """
    check_gramian(gramian, "gramian")
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    if max_iter is not None:
        check_int(max_iter, "max_iter", low=1)
    return _min_norm_weights(gramian, tol=tol, max_iter=max_iter)


def _min_norm_weights(gramian: Tensor, *, tol: float = 1e-12, max_iter: int | None = None) -> Tensor:
    """`min_norm_weights()` without input checks (for callers that checked already)."""
    q = gramian.detach().to(device="cpu", dtype=torch.float64)
    q = 0.5 * (q + q.T)
    m = q.shape[0]
    scale = float(q.diagonal().max())
    if m == 1:
        return torch.ones(1, dtype=torch.float64)
    if scale <= 0:  # every gradient is zero: any weights give d = 0; return uniform ones
        return torch.full((m,), 1.0 / m, dtype=torch.float64)
    if m == 2:
        return two_point_weights(q)
    max_iter = 50 + 10 * m if max_iter is None else max_iter
    return torch.from_numpy(_wolfe(q.numpy(), tol, max_iter))


def two_point_weights(q: Tensor) -> Tensor:
    r"""Closed form for m = 2: weights (α, 1 − α) with
    $\alpha = \mathrm{clip}\big(\frac{(g_2 - g_1)^\top g_2}{\|g_1 - g_2\|^2}, 0, 1\big)$
    (Sener & Koltun, NeurIPS 2018, Algorithm 1 without their 0.001/0.999 clipping)."""
    q = q.detach().to(device="cpu", dtype=torch.float64)
    den = float(q[0, 0] + q[1, 1] - 2 * q[0, 1])
    if den <= 1e-300:
        return torch.tensor([0.5, 0.5], dtype=torch.float64)
    a = min(1.0, max(0.0, float(q[1, 1] - q[0, 1]) / den))
    return torch.tensor([a, 1.0 - a], dtype=torch.float64)


def frank_wolfe_gap(gramian: Tensor, w: Tensor) -> float:
    """The Frank–Wolfe duality gap wᵀQw − min_i (Qw)_i of weights ``w`` (≥ 0; 0 at the optimum)."""
    q = gramian.detach().to(device="cpu", dtype=torch.float64)
    w = w.detach().to(device="cpu", dtype=torch.float64)
    qw = q @ w
    return float(w @ qw - qw.min())
