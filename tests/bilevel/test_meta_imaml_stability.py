"""iMAML's step-controlled inner descent: plain gradient descent where that descends, halved steps where a
fixed step would diverge, and the same procedure for new tasks (imaml_adapt_batched)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from bilevel.meta import imaml_adapt_batched, imaml_grad
from bilevel.meta._proximal import controlled_descent


def _quadratic(a: torch.Tensor, c: torch.Tensor):
    def value_and_grad(p):
        d = p["w"] - c
        return 0.5 * d @ a @ d, {"w": a @ d}

    return value_and_grad


def _spd(seed: int, d: int, low: float, high: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.linspace(low, high, d, dtype=torch.float64)) @ q.T


def test_below_two_over_l_it_is_plain_gradient_descent() -> None:
    a, c = _spd(0, 6, 0.5, 4.0), torch.ones(6, dtype=torch.float64)
    w0 = torch.zeros(6, dtype=torch.float64)
    lr = 0.4  # < 2/L = 0.5: every step decreases the quadratic
    out = controlled_descent(_quadratic(a, c), {"w": w0}, lr, 30)["w"]
    w = w0.clone()
    for _ in range(30):
        w = w - lr * (a @ (w - c))
    torch.testing.assert_close(out, w, rtol=0, atol=1e-14)


def test_above_two_over_l_the_step_is_halved_and_the_minimiser_reached() -> None:
    """lr = 10/L: plain descent multiplies the top eigencomponent by 9 per step; the controlled one
    converges to the closed-form minimiser c."""
    a, c = _spd(1, 6, 0.5, 4.0), torch.ones(6, dtype=torch.float64)
    w0 = torch.zeros(6, dtype=torch.float64)
    out = controlled_descent(_quadratic(a, c), {"w": w0}, 2.5, 300)["w"]
    torch.testing.assert_close(out, c, rtol=0, atol=1e-8)
    w = w0.clone()
    for _ in range(300):
        w = w - 2.5 * (a @ (w - c))
    assert not bool(torch.isfinite(w).all()) or float((w - c).norm()) > 1e6  # plain descent diverges


def test_the_objective_never_increases() -> None:
    a, c = (
        _spd(2, 5, 0.1, 50.0),
        torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
    )
    vg = _quadratic(a, c)
    w = {"w": torch.zeros(5, dtype=torch.float64)}
    values = [float(vg(w)[0])]
    for k in range(1, 40):
        values.append(float(vg(controlled_descent(vg, w, 1.0, k))[0]))
    assert all(b <= a_ * (1 + 1e-5) for a_, b in itertools.pairwise(values))
    assert values[-1] < values[0] / 10


def test_imaml_adapt_batched_is_imaml_grads_inner_solution() -> None:
    """New tasks are adapted by the very inner loop of training (per task, to round-off)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    xs, ys = torch.randn(3, 10, 1, dtype=torch.float64), torch.randn(3, 10, 1, dtype=torch.float64)

    def loss(p, d):
        return F.mse_loss(functional_call(m, p, (d[0],)), d[1])

    phi = imaml_adapt_batched(m, loss, (xs, ys), reg=2.0, inner_lr=0.5, inner_steps=15)
    for t in range(3):
        r = imaml_grad(
            m,
            lambda p, t=t: loss(p, (xs[t], ys[t])),
            lambda p, t=t: loss(p, (xs[t], ys[t])),
            reg=2.0,
            inner_lr=0.5,
            inner_steps=15,
            accumulate=False,
        )
        for n in r.adapted:
            torch.testing.assert_close(phi[n][t], r.adapted[n], rtol=0, atol=1e-12)
    assert all(not v.requires_grad for v in phi.values())
