"""Reptile (path-sum identity, C17) and iMAML (closed-form implicit gradient, C18)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bilevel.meta import imaml_grad, reptile_grad

D = 5


class Vec(nn.Module):
    def __init__(self, init: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(init.clone())


def _spd(seed: int, d: int = D, low: float = 0.5, high: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    ev = torch.linspace(low, high, d, dtype=torch.float64)
    return q @ torch.diag(ev) @ q.T


def _quad(a: torch.Tensor, c: torch.Tensor):
    return lambda p: 0.5 * (p["w"] - c) @ a @ (p["w"] - c)


def test_reptile_one_step_is_joint_training_gradient() -> None:
    """C17: with K = 1, d/β = mean_i ∇L_i(θ)."""
    m = Vec(torch.randn(D, dtype=torch.float64))
    a1, a2 = _spd(1), _spd(2)
    c1, c2 = torch.randn(D, dtype=torch.float64), torch.randn(D, dtype=torch.float64)
    d = reptile_grad(m, [_quad(a1, c1), _quad(a2, c2)], inner_lr=0.1, inner_steps=1)
    th = m.w.detach()
    expected = 0.5 * (a1 @ (th - c1) + a2 @ (th - c2))
    torch.testing.assert_close(d["w"] / 0.1, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(m.w.grad, d["w"], rtol=0, atol=0)  # .grad is a copy of the returned direction


def test_reptile_two_steps_sum_the_path_gradients() -> None:
    """C17: with K = 2, d/β = g1 + g2 = 2∇L(θ) - β∇²L(θ)∇L(θ) exactly for a quadratic."""
    m = Vec(torch.randn(D, dtype=torch.float64))
    a, c, beta = _spd(3), torch.randn(D, dtype=torch.float64), 0.05
    d = reptile_grad(m, [_quad(a, c)], inner_lr=beta, inner_steps=2, accumulate=False)
    g = a @ (m.w.detach() - c)
    torch.testing.assert_close(d["w"] / beta, 2 * g - beta * a @ g, rtol=0, atol=1e-12)
    assert m.w.grad is None


def test_reptile_outer_sgd_step_is_interpolation() -> None:
    m = Vec(torch.randn(D, dtype=torch.float64))
    a, c = _spd(4), torch.randn(D, dtype=torch.float64)
    theta = m.w.detach().clone()
    w = theta.clone()
    for _ in range(3):
        w = w - 0.1 * (a @ (w - c))
    reptile_grad(m, [_quad(a, c)], inner_lr=0.1, inner_steps=3)
    torch.optim.SGD(m.parameters(), lr=0.5).step()
    torch.testing.assert_close(m.w.detach(), theta + 0.5 * (w - theta), rtol=0, atol=1e-14)


def test_reptile_rejects_bad_input() -> None:
    m = Vec(torch.zeros(D, dtype=torch.float64))
    with pytest.raises(ValueError, match="inner_steps"):
        reptile_grad(m, [_quad(_spd(1), torch.zeros(D, dtype=torch.float64))], inner_lr=0.1, inner_steps=0)
    with pytest.raises(ValueError, match="empty"):
        reptile_grad(m, [], inner_lr=0.1, inner_steps=1)


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_imaml_matches_closed_form_implicit_gradient(lam: float) -> None:
    """C18: for L_tr = ½(φ-a)ᵀA(φ-a), g = (I + A/λ)⁻¹ ∇L_val(φ*) with φ* = (A+λI)⁻¹(Aa+λθ)."""
    theta = torch.randn(D, dtype=torch.float64)
    m = Vec(theta)
    A, a, b = _spd(5), torch.randn(D, dtype=torch.float64), torch.randn(D, dtype=torch.float64)

    def val(p):
        return 0.5 * ((p["w"] - b) ** 2).sum() + (p["w"] ** 3).sum() / 10

    lr = 1.0 / (3.0 + lam)
    res = imaml_grad(m, _quad(A, a), val, reg=lam, inner_lr=lr, inner_steps=400, cg_steps=D)
    phi = torch.linalg.solve(A + lam * torch.eye(D, dtype=torch.float64), A @ a + lam * theta)
    torch.testing.assert_close(res.adapted["w"], phi, rtol=0, atol=1e-10)
    gv = (phi - b) + 3 * phi**2 / 10
    expected = torch.linalg.solve(torch.eye(D, dtype=torch.float64) + A / lam, gv)
    torch.testing.assert_close(m.w.grad, expected, rtol=0, atol=1e-8)
    # and it is the true derivative of θ ↦ L_val(φ*(θ)) (the implicit function theorem)
    jac = lam * torch.linalg.inv(A + lam * torch.eye(D, dtype=torch.float64))
    torch.testing.assert_close(jac.T @ gv, expected, rtol=0, atol=1e-10)


def test_imaml_cg_error_shrinks_with_steps() -> None:
    theta = torch.randn(D, dtype=torch.float64)
    A, a, b = (
        _spd(6, low=0.1, high=10.0),
        torch.randn(D, dtype=torch.float64),
        torch.randn(D, dtype=torch.float64),
    )
    lam = 1.0
    errs = []
    phi = torch.linalg.solve(A + lam * torch.eye(D, dtype=torch.float64), A @ a + lam * theta)
    exact = torch.linalg.solve(torch.eye(D, dtype=torch.float64) + A / lam, phi - b)
    for k in range(1, D + 1):
        m = Vec(theta)
        imaml_grad(
            m,
            _quad(A, a),
            lambda p: 0.5 * ((p["w"] - b) ** 2).sum(),
            reg=lam,
            inner_lr=1 / 11,
            inner_steps=800,
            cg_steps=k,
        )
        errs.append(float((m.w.grad - exact).norm()))
    assert errs[-1] < 1e-9
    assert errs[-1] < errs[0] / 100


def test_imaml_rejects_bad_reg() -> None:
    m = Vec(torch.zeros(D, dtype=torch.float64))
    q = _quad(_spd(1), torch.zeros(D, dtype=torch.float64))
    with pytest.raises(ValueError, match="reg"):
        imaml_grad(m, q, q, reg=0.0, inner_lr=0.1, inner_steps=1)


@pytest.mark.parametrize("reg", [2.0, 0.02])  # 0.02: every task's CG meets negative curvature
def test_batched_imaml_equals_per_task_loop(reg: float) -> None:
    import torch.nn.functional as F
    from torch.func import functional_call

    from bilevel.meta import imaml_grad_batched

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    xs, ys, xq, yq = (torch.randn(3, 10, 1, dtype=torch.float64) for _ in range(4))

    def loss(p, d):
        return F.mse_loss(functional_call(m, p, (d[0],)), d[1])

    imaml_grad_batched(m, loss, (xs, ys), (xq, yq), reg=reg, inner_lr=0.05, inner_steps=10, cg_steps=5)
    batched = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    hits = []
    for t in range(3):
        r = imaml_grad(
            m,
            lambda p, t=t: loss(p, (xs[t], ys[t])),
            lambda p, t=t: loss(p, (xq[t], yq[t])),
            reg=reg,
            inner_lr=0.05,
            inner_steps=10,
            cg_steps=5,
        )
        hits.append(r.hit_indefinite)
    assert all(hits) == (reg < 1)
    for b, p in zip(batched, m.parameters()):
        torch.testing.assert_close(b, p.grad, rtol=0, atol=1e-12)


def test_batched_imaml_step_control_solves_a_task_too_stiff_for_inner_lr() -> None:
    """Task 1 (curvature 1e3) makes steps of 0.1 expand by ~100× each; plain descent diverged there. The
    step control halves its step until descent resumes, so both tasks reach the closed form
    φ* = -1/(s+λ) (θ = 0, λ = 1) and g = (1 + s/λ)⁻¹ ∇L_val(φ*) = λ/((s+λ)(s+1)) per coordinate."""
    from bilevel.meta import imaml_adapt_batched, imaml_grad_batched

    m = Vec(torch.zeros(D, dtype=torch.float64))
    scale = torch.tensor([1.0, 1e3], dtype=torch.float64)

    def loss(p, s):
        return 0.5 * s * (p["w"] ** 2).sum() + p["w"].sum()

    phi = imaml_adapt_batched(m, loss, scale, reg=1.0, inner_lr=0.1, inner_steps=200)["w"]
    expected_phi = (-1 / (scale + 1)).reshape(2, 1).expand(2, D)
    torch.testing.assert_close(phi, expected_phi, rtol=1e-10, atol=0)
    out = imaml_grad_batched(m, loss, scale, scale, reg=1.0, inner_lr=0.1, inner_steps=200, cg_steps=2)
    per_task = 1.0 / ((scale + 1) * (scale + 1))
    torch.testing.assert_close(out["w"], per_task.sum().expand(D), rtol=1e-8, atol=0)
    torch.testing.assert_close(m.w.grad, out["w"], rtol=0, atol=0)  # accumulated: the same tensor values


def test_batched_imaml_reports_non_finite_meta_gradients() -> None:
    """Task 1's query targets (1e308, finite) make CG's ||r||² overflow: its meta-gradient is named, not
    returned, and nothing is accumulated."""
    from bilevel.meta import imaml_grad_batched

    m = Vec(torch.zeros(D, dtype=torch.float64))

    def loss(p, target):
        return 0.5 * ((p["w"] - target) ** 2).sum()

    support = torch.zeros(2, D, dtype=torch.float64)
    query = torch.tensor([[0.0] * D, [1e308] * D], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"meta-gradient for tasks \[1\]"):
        imaml_grad_batched(m, loss, support, query, reg=1.0, inner_lr=0.1, inner_steps=1)
    assert m.w.grad is None


def test_imaml_reports_inner_stationarity_residual() -> None:
    """inner_residual = ||A(φ-a) + λ(φ-θ)|| at the returned φ; it shrinks with inner steps to ~0."""
    lam = 2.0
    theta = torch.randn(D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    A, a = _spd(7), torch.randn(D, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

    def val(p):
        return 0.5 * (p["w"] ** 2).sum()

    residuals = []
    for k in [0, 5, 20, 400]:
        res = imaml_grad(Vec(theta), _quad(A, a), val, reg=lam, inner_lr=1 / (3 + lam), inner_steps=k)
        phi = res.adapted["w"]
        expected = float((A @ (phi - a) + lam * (phi - theta)).norm())
        assert res.inner_residual == pytest.approx(expected, rel=1e-12, abs=1e-14)
        residuals.append(res.inner_residual)
    assert residuals[0] == pytest.approx(float((A @ (theta - a)).norm()), rel=1e-12)
    assert residuals[0] > residuals[1] > residuals[2] > 0
    assert residuals[3] <= 1e-10


def test_batched_imaml_max_norm_clips_each_task() -> None:
    """max_norm rescales each task's meta-gradient (from the per-task loop) to norm ≤ max_norm."""
    import torch.nn.functional as F
    from torch.func import functional_call

    from bilevel.meta import imaml_grad_batched

    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    xs, ys, xq, yq = (torch.randn(3, 10, 1, dtype=torch.float64) for _ in range(4))
    yq = yq * torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64).reshape(3, 1, 1)

    def loss(p, d):
        return F.mse_loss(functional_call(m, p, (d[0],)), d[1])

    kw = dict(reg=2.0, inner_lr=0.05, inner_steps=10, cg_steps=5)
    norms, expected = [], None
    for t in range(3):
        r = imaml_grad(
            m, lambda p, t=t: loss(p, (xs[t], ys[t])), lambda p, t=t: loss(p, (xq[t], yq[t])), **kw
        )
        g = torch.cat([v.reshape(-1) for v in r.meta_grad.values()])
        norms.append(float(g.norm()))
        clipped = g * min(1.0, 5.0 / float(g.norm()))
        expected = clipped if expected is None else expected + clipped
    assert min(norms) < 5.0 < max(norms)  # the test exercises both branches
    m.zero_grad()
    out = imaml_grad_batched(m, loss, (xs, ys), (xq, yq), max_norm=5.0, **kw)
    got = torch.cat([out[n].reshape(-1) for n, _ in m.named_parameters()])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="max_norm"):
        imaml_grad_batched(m, loss, (xs, ys), (xq, yq), max_norm=0.0, **kw)
