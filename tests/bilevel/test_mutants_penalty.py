"""The Danskin term of `penalty_grads` under step and loss scaling, against finite differences.

The gradients are $c\\,\\nabla F_\\gamma$ with $F_\\gamma(x, y) = f(x, y) + \\gamma\\,(g(x, y) - v(x))$
and $v(x) = \\min_y g(x, y)$: every term, the Danskin gradient
$\\nabla v(x) = \\nabla_x g(x, y^\\star(x))$ included, is multiplied by $c$ (``scale``) and by the
GradScaler's ``loss_scale``. The references: a central difference of the closed form $F_\\gamma$ (here
$v(x) = \\tfrac{c_g}{2}\\|x\\|^2$ exactly), and the one-backward path (`value_estimate`), which
scales the whole objective at once.
"""

from __future__ import annotations

import pytest
import torch

from bilevel.penalty import inner_steps_, penalty_grads, step_scale, value_estimate, value_function

D = torch.float64


def _problem(seed: int = 0, n: int = 3, m: int = 4, lam: float = 0.2, cg: float = 0.7):
    """g = ½‖y − Ax‖² + ½c_g‖x‖² (v(x) = ½c_g‖x‖²), f = ½‖y − b‖² + ½λ‖x‖² + sin(x₀)."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(m, n, generator=gen, dtype=D)
    b = torch.randn(m, generator=gen, dtype=D)
    x = torch.randn(n, generator=gen, dtype=D).requires_grad_()
    y = torch.randn(m, generator=gen, dtype=D).requires_grad_()

    def f_of(xv, yv):
        return 0.5 * (yv - b).pow(2).sum() + 0.5 * lam * xv.pow(2).sum() + torch.sin(xv[0])

    def g_of(xv, yv):
        return 0.5 * (yv - A @ xv).pow(2).sum() + 0.5 * cg * xv.pow(2).sum()

    def F(xv, yv, gamma):  # closed form of the penalised objective
        return f_of(xv, yv) + gamma * (g_of(xv, yv) - 0.5 * cg * xv.pow(2).sum())

    return x, y, (lambda: f_of(x, y)), (lambda: g_of(x, y)), F


def _central_difference(fun, z: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    z = z.detach()
    out = torch.empty_like(z)
    for i in range(z.numel()):
        e = torch.zeros_like(z)
        e[i] = h
        out[i] = (fun(z + e) - fun(z - e)) / (2 * h)
    return out


@pytest.mark.parametrize(("scale", "loss_scale"), [(0.5, 1.0), (0.25, 1.0), (1.0, 8.0), (0.5, 4.0)])
def test_scaled_penalty_gradients_match_finite_differences(scale: float, loss_scale: float) -> None:
    x, y, f, g, F = _problem()
    gamma = 2.0
    omega = [y.detach().clone()]
    inner_steps_(omega, [y], g, steps=1, lr=1.0)  # g's Hessian in y is I: one unit step reaches y*(x)
    v, v_grads = value_function([x], [y], g, omega)
    out = penalty_grads([x], [y], f, g, gamma, v=v, v_grads=v_grads, scale=scale, loss_scale=loss_scale)
    k = scale * loss_scale
    yd, xd = y.detach(), x.detach()
    fd_x = _central_difference(lambda xv: F(xv, yd, gamma), xd)
    fd_y = _central_difference(lambda yv: F(xd, yv, gamma), yd)
    # central differences of a smooth function in float64 with h = 1e-5: error ~1e-10
    torch.testing.assert_close(out.upper[0], k * fd_x, rtol=0, atol=1e-8 * k)
    torch.testing.assert_close(out.lower[0], k * fd_y, rtol=0, atol=1e-8 * k)


@pytest.mark.parametrize("scale", [0.5, 0.1])
def test_danskin_gradients_agree_with_the_one_backward_path_when_scaled(scale: float) -> None:
    x, y, f, g, _ = _problem(seed=3)
    omega = [torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=D)]
    gamma = 5.0
    v, v_grads = value_function([x], [y], g, omega)
    two = penalty_grads([x], [y], f, g, gamma, v=v, v_grads=v_grads, scale=scale)
    one = penalty_grads([x], [y], f, g, gamma, v=value_estimate([x], [y], g, omega), scale=scale)
    torch.testing.assert_close(two.upper[0], one.upper[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(two.lower[0], one.lower[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("gamma", "want"), [(1.5, 1 / 1.5), (2.0, 0.5), (1.0 + 1e-9, 1 / (1.0 + 1e-9))])
def test_step_scale_is_one_over_gamma_just_above_one(gamma: float, want: float) -> None:
    assert step_scale(gamma) == pytest.approx(want, rel=1e-15)


def test_value_estimate_without_upper_parameters_is_g_at_omega_without_a_graph() -> None:
    _, y, _, g, _ = _problem(seed=2)
    omega = [torch.full(y.shape, 0.3, dtype=D)]
    v = value_estimate([], [y], g, omega)
    y_before = y.detach().clone()
    with torch.no_grad():
        y_at = y.detach().clone()
        y.copy_(omega[0])
        ref = g()
        y.copy_(y_at)
    assert not v.requires_grad
    torch.testing.assert_close(v, ref, rtol=0, atol=1e-14)
    torch.testing.assert_close(y.detach(), y_before, rtol=0, atol=0)  # y is restored


def test_inner_steps_under_a_loss_scale_take_the_unscaled_step_and_skip_overflow() -> None:
    """ω ← ω − lr ∇_y g(x, ω), whatever GradScaler scale multiplies the loss (a power of two: exact)."""
    _, y, _, g, _ = _problem(seed=4)
    start = torch.full(y.shape, -0.2, dtype=D)
    plain, scaled = [start.clone()], [start.clone()]
    assert inner_steps_(plain, [y], g, steps=3, lr=0.3) == 0
    assert inner_steps_(scaled, [y], g, steps=3, lr=0.3, loss_scale=1024.0) == 0
    torch.testing.assert_close(scaled[0], plain[0], rtol=0, atol=1e-13)
    # closed form: ∇_y g = y − Ax (Hessian I), so one unit step reaches y* = Ax and each step of size lr
    # contracts the error by (1 − lr)
    y_star = [start.clone()]
    inner_steps_(y_star, [y], g, steps=1, lr=1.0)
    torch.testing.assert_close(plain[0], y_star[0] + (start - y_star[0]) * 0.7**3, rtol=0, atol=1e-13)
    # an overflowing scale makes every gradient non-finite: every step is skipped and ω is left as it was
    frozen = [start.clone()]
    assert inner_steps_(frozen, [y], g, steps=2, lr=0.3, loss_scale=float("inf")) == 2
    torch.testing.assert_close(frozen[0], start, rtol=0, atol=0)
