"""The functional core of PenaltyBGD against closed forms, finite differences and torch.func."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bilevel.penalty import exchanged, inner_steps_, penalty_grads, step_scale, value_estimate, value_function

D = torch.float64


def quad_problem(n: int = 3, m: int = 5, lam: float = 0.1, c: float = 0.7, seed: int = 0):
    """g = ½‖y − Ax‖² + ½c‖x‖², f = ½‖y − b‖² + ½λ‖x‖² (claim 5's problem)."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(m, n, generator=gen, dtype=D)
    b = torch.randn(m, generator=gen, dtype=D)
    x = torch.randn(n, generator=gen, dtype=D).requires_grad_()
    y = torch.randn(m, generator=gen, dtype=D).requires_grad_()

    def f() -> torch.Tensor:
        return 0.5 * (y - b).pow(2).sum() + 0.5 * lam * x.pow(2).sum()

    def g() -> torch.Tensor:
        return 0.5 * (y - A @ x).pow(2).sum() + 0.5 * c * x.pow(2).sum()

    return A, b, x, y, f, g, lam, c


def test_step_scale_is_min_one_inverse_gamma() -> None:
    assert step_scale(0.0) == 1.0
    assert step_scale(0.5) == 1.0
    assert step_scale(1.0) == 1.0
    assert step_scale(4.0) == 0.25
    with pytest.raises(ValueError, match="gamma"):
        step_scale(-1.0)


def test_value_penalty_gradients_match_closed_form() -> None:
    A, b, x, y, f, g, lam, c = quad_problem()
    gamma = 3.0
    omega = [y.detach().clone()]
    # g's Hessian in y is I, so one inner step of size 1 lands exactly on y*(x) = Ax.
    inner_steps_(omega, [y], g, steps=1, lr=1.0)
    torch.testing.assert_close(omega[0], (A @ x).detach(), rtol=0, atol=1e-12)
    v, v_grads = value_function([x], [y], g, omega)
    torch.testing.assert_close(v, 0.5 * c * x.detach().pow(2).sum(), rtol=0, atol=1e-12)
    torch.testing.assert_close(v_grads[0], c * x.detach(), rtol=0, atol=1e-12)  # Danskin: ∇v = ∇_x g(x, y*)
    out = penalty_grads([x], [y], f, g, gamma, v=v, v_grads=v_grads)
    xd, yd = x.detach(), y.detach()
    # F_γ = f + γ(g − v) = f + γ/2‖y − Ax‖²: the c‖x‖² term cancels.
    gx = lam * xd - gamma * A.T @ (yd - A @ xd)
    gy = (yd - b) + gamma * (yd - A @ xd)
    torch.testing.assert_close(out.upper[0], gx, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.lower[0], gy, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.gap, 0.5 * (yd - A @ xd).pow(2).sum(), rtol=0, atol=1e-12)


def test_constant_v_gives_plain_f_plus_gamma_g() -> None:
    A, b, x, y, f, g, lam, c = quad_problem(seed=1)  # noqa: RUF059
    out = penalty_grads([x], [y], f, g, 2.0)
    xd, yd = x.detach(), y.detach()
    gx = lam * xd + 2.0 * (-A.T @ (yd - A @ xd) + c * xd)
    torch.testing.assert_close(out.upper[0], gx, rtol=0, atol=1e-12)
    assert out.gap is None


def test_inner_steps_are_gradient_descent_on_g_at_omega() -> None:
    A, b, x, y, f, g, lam, c = quad_problem(seed=2)  # noqa: RUF059
    w0 = torch.randn(5, dtype=D)
    omega = [w0.clone()]
    y_before = y.detach().clone()
    inner_steps_(omega, [y], g, steps=3, lr=0.3)
    ref = w0.clone()
    for _ in range(3):
        ref = ref - 0.3 * (ref - A @ x.detach())
    torch.testing.assert_close(omega[0], ref, rtol=0, atol=1e-13)
    assert torch.equal(y.detach(), y_before)  # y itself untouched, bitwise


def test_value_function_gradient_matches_finite_differences_of_v() -> None:
    # Non-quadratic lower level: g(x, y) = Σ log cosh(y − Wx) + ½‖x‖²; v(x) = ½‖x‖² + 0 at y = Wx.
    gen = torch.Generator().manual_seed(3)
    W = torch.randn(4, 2, generator=gen, dtype=D)
    x = torch.randn(2, generator=gen, dtype=D).requires_grad_()
    y = torch.randn(4, generator=gen, dtype=D).requires_grad_()

    def g() -> torch.Tensor:
        return torch.log(torch.cosh(y - W @ x)).sum() + 0.5 * x.pow(2).sum() * (1 + x[0] ** 2)

    omega = [y.detach().clone()]
    inner_steps_(omega, [y], g, steps=300, lr=0.9)
    v, (vg,) = value_function([x], [y], g, omega)

    def v_true(xv: torch.Tensor) -> torch.Tensor:
        return 0.5 * xv.pow(2).sum() * (1 + xv[0] ** 2)

    eps = 1e-6
    fd = torch.stack(
        [
            (v_true(x.detach() + eps * e) - v_true(x.detach() - eps * e)) / (2 * eps)
            for e in torch.eye(2, dtype=D)
        ]
    )
    torch.testing.assert_close(v, v_true(x.detach()), rtol=0, atol=1e-10)
    torch.testing.assert_close(vg, fd, rtol=0, atol=1e-7)


def test_gradient_penalty_matches_torch_func_double_derivative() -> None:
    gen = torch.Generator().manual_seed(4)
    W = torch.randn(3, 2, generator=gen, dtype=D)
    x = torch.randn(2, generator=gen, dtype=D).requires_grad_()
    y = torch.randn(3, generator=gen, dtype=D).requires_grad_()

    def fx(xv, yv):
        return torch.sin(xv).sum() * yv.sum() + yv.pow(2).sum()

    def gx(xv, yv):
        return torch.log(torch.cosh(yv - W @ xv)).sum() + (yv**4).sum() / 4

    gamma = 1.7

    def F(xv, yv):
        gy = torch.func.grad(gx, argnums=1)(xv, yv)
        return fx(xv, yv) + gamma * gy.pow(2).sum()

    ref_x, ref_y = torch.func.grad(F, argnums=(0, 1))(x.detach(), y.detach())
    out = penalty_grads([x], [y], lambda: fx(x, y), lambda: gx(x, y), gamma, penalty="gradient", scale=0.5)
    torch.testing.assert_close(out.upper[0], 0.5 * ref_x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.lower[0], 0.5 * ref_y, rtol=1e-12, atol=1e-12)
    gy = torch.func.grad(gx, argnums=1)(x.detach(), y.detach())
    torch.testing.assert_close(out.gap, gy.pow(2).sum(), rtol=1e-12, atol=0)


@settings(max_examples=25, deadline=None)
@given(
    gamma=st.floats(0.0, 100.0),
    scale=st.floats(1e-3, 1.0),
    penalty=st.sampled_from(["value", "gradient"]),
    seed=st.integers(0, 1000),
)
def test_gradients_are_linear_in_scale(gamma: float, scale: float, penalty: str, seed: int) -> None:
    A, b, x, y, f, g, lam, c = quad_problem(seed=seed)  # noqa: RUF059
    one = penalty_grads([x], [y], f, g, gamma, penalty=penalty)
    sc = penalty_grads([x], [y], f, g, gamma, penalty=penalty, scale=scale)
    for a, s in zip(one.upper + one.lower, sc.upper + sc.lower):
        assert a is not None and s is not None
        torch.testing.assert_close(s, scale * a, rtol=1e-12, atol=1e-12)


def test_exchanged_backs_params_by_values_and_restores_exactly() -> None:
    p = torch.randn(4, requires_grad=True)
    before = p.detach().clone()
    w = torch.zeros(4)
    with exchanged([p], [w]):
        assert torch.equal(p.detach(), torch.zeros(4))
        with torch.no_grad():
            p.add_(1.0)
    assert torch.equal(w, torch.ones(4))
    assert torch.equal(p.detach(), before)
    with pytest.raises(ValueError, match="exchanged"), exchanged([p], [torch.zeros(3)]):
        pass
    assert torch.equal(p.detach(), before)


def test_penalty_grads_rejects_unknown_penalty() -> None:
    A, b, x, y, f, g, lam, c = quad_problem()  # noqa: RUF059
    with pytest.raises(ValueError, match="penalty"):
        penalty_grads([x], [y], f, g, 1.0, penalty="norm")


def test_value_estimate_folds_the_danskin_term_into_one_backward_pass() -> None:
    # x sits BELOW y in the network, so the x-gradient of g(x, ω) reads ω's weights in the backward pass
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(7, 3, generator=gen, dtype=D)
    x = torch.randn(4, 3, generator=gen, dtype=D).requires_grad_()  # first layer (upper)
    y = torch.randn(4, 2, generator=gen, dtype=D).requires_grad_()  # second layer (lower), saved as is by mm
    t = torch.randn(7, 2, generator=gen, dtype=D)

    def f() -> torch.Tensor:
        return (torch.tanh(z @ x.T) @ y - t).pow(2).mean() + 0.1 * x.pow(2).sum()

    def g() -> torch.Tensor:
        return (torch.tanh(z @ x.T) @ y).pow(2).mean() + 0.01 * y.pow(2).sum()

    omega = [torch.randn(4, 2, generator=gen, dtype=D)]
    gamma = 3.0
    v_val, v_grads = value_function([x], [y], g, omega)
    ref = penalty_grads([x], [y], f, g, gamma, v=v_val, v_grads=v_grads)
    v = value_estimate([x], [y], g, omega)
    assert v.requires_grad
    one = penalty_grads([x], [y], f, g, gamma, v=v)
    torch.testing.assert_close(one.upper[0], ref.upper[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(one.lower[0], ref.lower[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(one.gap, ref.gap, rtol=0, atol=0)

    # and against torch.func with ω as an explicit argument
    def gfun(xv, yv):
        return (torch.tanh(z @ xv.T) @ yv).pow(2).mean() + 0.01 * yv.pow(2).sum()

    dvx = torch.func.grad(gfun, argnums=0)(x.detach(), omega[0])
    dfx = torch.func.grad(
        lambda xv: (torch.tanh(z @ xv.T) @ y.detach() - t).pow(2).mean() + 0.1 * xv.pow(2).sum()
    )(x.detach())
    dgx = torch.func.grad(gfun, argnums=0)(x.detach(), y.detach())
    torch.testing.assert_close(one.upper[0], dfx + gamma * (dgx - dvx), rtol=1e-12, atol=1e-12)
    assert y.requires_grad  # restored
