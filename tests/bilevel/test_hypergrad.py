"""bilevel.hypergrad: CG / Neumann solvers and implicit / unrolled hypergradients vs closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bilevel.hypergrad import cg, cg_info, implicit, neumann, unrolled


def _spd(seed: int, d: int, low: float, high: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.linspace(low, high, d, dtype=torch.float64)) @ q.T


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 12))
def test_cg_solves_spd_systems_in_dim_steps(seed: int, d: int) -> None:
    A = _spd(seed, d, 0.5, 20.0)
    b = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    (x,) = cg(lambda v: [A @ v[0]], [b], steps=d)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=0, atol=1e-9)


def test_cg_bound_and_early_stop() -> None:
    A = _spd(0, 30, 1.0, 100.0)
    b = torch.randn(30, dtype=torch.float64)
    xs = torch.linalg.solve(A, b)
    kappa = 100.0
    rate = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    a_norm = float(torch.sqrt(xs @ A @ xs))
    for k in (2, 5, 10):
        (x,) = cg(lambda v: [A @ v[0]], [b], steps=k)
        e = x - xs
        assert float(torch.sqrt(e @ A @ e)) <= 2 * rate**k * a_norm * (1 + 1e-9)
    calls = []
    (x,) = cg(lambda v: calls.append(1) or [A @ v[0]], [b], steps=1000, tol=1e-8)
    assert len(calls) <= 30 + 5 and float((A @ x - b).norm()) <= 1e-8 * float(b.norm()) * 1.0001


def test_cg_rejects_indefinite_operators() -> None:
    with pytest.raises(ValueError, match="positive definite"):
        cg(lambda v: [-v[0]], [torch.ones(3, dtype=torch.float64)], steps=3)


def test_neumann_converges_at_the_documented_rate() -> None:
    mu, L = 0.5, 4.0
    A = _spd(1, 8, mu, L)
    b = torch.randn(8, dtype=torch.float64)
    xs = torch.linalg.solve(A, b)
    alpha = 1 / L
    for n in (0, 5, 20, 80):
        (x,) = neumann(lambda v: [A @ v[0]], [b], steps=n, alpha=alpha)
        assert float((x - xs).norm()) <= (1 - alpha * mu) ** (n + 1) * float(xs.norm()) * (1 + 1e-9)
    (x,) = neumann(lambda v: [A @ v[0]], [b], steps=400, alpha=alpha)
    torch.testing.assert_close(x, xs, rtol=0, atol=1e-12)


def _ridge(d: int = 20, n: int = 60, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.randn(d, generator=g, dtype=torch.float64) + 0.3 * torch.randn(
        n, generator=g, dtype=torch.float64
    )
    Xv = torch.randn(n, d, generator=g, dtype=torch.float64)
    yv = Xv @ torch.randn(d, generator=g, dtype=torch.float64)
    log_lam = torch.randn(d, generator=g, dtype=torch.float64) * 0.5

    def inner(w, lam):
        return 0.5 * ((X @ w[0] - y) ** 2).sum() / n + 0.5 * (torch.exp(lam[0]) * w[0] ** 2).sum()

    def outer(w, lam):
        return 0.5 * ((Xv @ w[0] - yv) ** 2).sum() / n

    def exact(ll):
        w = torch.linalg.solve(X.T @ X / n + torch.diag(torch.exp(ll)), X.T @ y / n)
        return 0.5 * ((Xv @ w - yv) ** 2).sum() / n

    ll = log_lam.clone().requires_grad_(True)
    (h,) = torch.autograd.grad(exact(ll), ll)
    w_star = torch.linalg.solve(X.T @ X / n + torch.diag(torch.exp(log_lam)), X.T @ y / n)
    H = X.T @ X / n + torch.diag(torch.exp(log_lam))
    return inner, outer, w_star, log_lam, h, torch.linalg.eigvalsh(H)


def test_implicit_cg_matches_exact_ridge_hypergradient() -> None:
    inner, outer, w, ll, h, _ = _ridge()
    (g,) = implicit(inner, outer, [w], [ll], method="cg", steps=20)
    assert float((g - h).norm() / h.norm()) < 1e-9


def test_implicit_neumann_error_decreases_and_converges() -> None:
    inner, outer, w, ll, h, ev = _ridge()
    alpha = 1 / float(ev.max())
    errs = [
        float(
            (implicit(inner, outer, [w], [ll], method="neumann", steps=s, alpha=alpha)[0] - h).norm()
            / h.norm()
        )
        for s in (5, 50, 2000)
    ]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-8


def test_unrolled_converges_to_the_implicit_hypergradient() -> None:
    inner, outer, w, ll, h, ev = _ridge()
    lr = 1 / float(ev.max())
    e = []
    for k in (10, 100, 1500):
        g, wk = unrolled(inner, outer, [torch.zeros_like(w)], [ll], lr=lr, steps=k)
        e.append(float((g[0] - h).norm() / h.norm()))
    assert e[0] > e[1] > e[2] and e[2] < 1e-8
    torch.testing.assert_close(wk[0], w, rtol=0, atol=1e-10)


def test_hypergrad_bad_input() -> None:
    inner, outer, w, ll, _, _ = _ridge()
    with pytest.raises(ValueError, match="method"):
        implicit(inner, outer, [w], [ll], method="lu")
    with pytest.raises(ValueError, match="alpha"):
        implicit(inner, outer, [w], [ll], method="neumann")
    with pytest.raises(ValueError, match="steps"):
        cg(lambda v: v, [w], steps=-1)
    with pytest.raises(ValueError, match="inner"):
        implicit(inner, outer, [], [ll])
    with pytest.raises(ValueError, match="scalar"):
        implicit(lambda a, b: a[0], outer, [w], [ll])
    with pytest.raises(ValueError, match="lr"):
        unrolled(inner, outer, [w], [ll], lr=-1.0, steps=1)


def test_cg_can_stop_at_negative_curvature() -> None:
    A = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    info = cg_info(lambda v: [A @ v[0]], [b], steps=5, indefinite="stop")
    assert info.hit_indefinite and info.iterations == 0
    assert torch.equal(info.x[0], b)  # first step: A replaced by I (a copy of b, no arithmetic)
    B = torch.diag(torch.tensor([1.0, 2.0, -0.1], dtype=torch.float64))
    info = cg_info(
        lambda v: [B @ v[0]],
        [torch.tensor([1.0, 1.0, 1e-3], dtype=torch.float64)],
        steps=5,
        indefinite="stop",
    )
    assert info.hit_indefinite and info.iterations >= 1 and torch.isfinite(info.x[0]).all()
    with pytest.raises(ValueError, match="indefinite"):
        cg(lambda v: v, [b], steps=1, indefinite="ignore")
