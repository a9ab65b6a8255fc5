"""The shared problem definitions: their closed forms against autograd stationarity and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from benchmarks.problems import C1_SOLUTION, LinearQuadratic, c1, c1_minimiser, exact_min_norm

D = torch.float64


@pytest.mark.parametrize("gamma", [0.5, 1.0, 10.0, 1000.0])
def test_c1_minimiser_is_stationary_with_closed_form_g(gamma: float) -> None:
    th, f, g = c1(tuple(c1_minimiser(gamma)))
    (grad,) = torch.autograd.grad(f() + gamma * g(), th)
    assert float(grad.abs().max()) <= 1e-12 * (1 + gamma)
    assert float(g().detach()) == pytest.approx(1 / (1 + 2 * gamma) ** 2, rel=1e-12)


def test_c1_path_tends_to_the_bilevel_solution() -> None:
    dist = np.linalg.norm(c1_minimiser(1e6) - np.array(C1_SOLUTION))
    assert dist <= 1e-6  # O(1/γ)
    _th, f, g = c1(C1_SOLUTION)
    assert float(g().detach()) == 0.0 and float(f().detach()) == pytest.approx(0.5, abs=1e-15)


def _stationarity(prob: LinearQuadratic, x: torch.Tensor, gamma: float, *, value_function: bool) -> float:
    """|∇| of F = f + γ(g − v) (or f + γg) at (x, y(x)) with y(x) = argmin_y F = (b + γAx)/(1 + γ)."""
    x = x.clone().requires_grad_()
    y = ((prob.b + gamma * prob.A @ x) / (1 + gamma)).detach().requires_grad_()
    f, g = prob.losses(x, y)
    F = f() + gamma * g()
    if value_function:
        F = F - gamma * 0.5 * prob.c * x.pow(2).sum()  # v(x) = min_y g = ½c‖x‖²
    gx, gy = torch.autograd.grad(F, (x, y))
    return float(torch.cat([gx, gy]).abs().max())


@pytest.mark.parametrize("seed", [0, 1])
def test_linear_quadratic_closed_forms_are_stationary(seed: int) -> None:
    prob = LinearQuadratic(seed)
    xs = prob.x_star.clone().requires_grad_()
    (g,) = torch.autograd.grad(
        0.5 * (prob.A @ xs - prob.b).pow(2).sum() + 0.5 * prob.lam * xs.pow(2).sum(), xs
    )
    assert float(g.abs().max()) <= 1e-12
    for gamma in (1.0, 10.0, 100.0):
        assert _stationarity(prob, prob.x_penalty(gamma), gamma, value_function=True) <= 1e-11 * gamma
        assert _stationarity(prob, prob.x_plain(gamma), gamma, value_function=False) <= 1e-11 * gamma
    # the penalty solution approaches x* as O(1/γ); the plain one does not
    assert prob.rel_err(prob.x_penalty(1e6)) <= 1e-5 < 0.5 < prob.rel_err(prob.x_plain(100.0))


def test_safe_lr_is_below_the_stability_limit() -> None:
    prob = LinearQuadratic(0)
    lr = prob.safe_lr(100.0)
    assert 0 < lr <= 0.5
    # largest curvature of the scaled plain penalty at γ = 100 (the stiffest point of the ramp)
    n, m = prob.n, prob.m
    H = torch.zeros(n + m, n + m, dtype=D)
    H[:n, :n] = prob.lam * torch.eye(n, dtype=D) + 100 * (prob.A.T @ prob.A + prob.c * torch.eye(n, dtype=D))
    H[:n, n:] = -100 * prob.A.T
    H[n:, :n] = -100 * prob.A
    H[n:, n:] = 101 * torch.eye(m, dtype=D)
    assert lr * float(torch.linalg.eigvalsh(H / 100).max()) <= 1.9 + 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_exact_min_norm_two_objectives_closed_form(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(2, 6, generator=gen, dtype=D) + torch.randn(6, generator=gen, dtype=D)
    g1, g2 = G
    a = float(((g2 - g1) @ g2 / (g1 - g2).pow(2).sum()).clamp(0, 1))  # argmin_α ‖αg1 + (1 − α)g2‖²
    closed = float((a * g1 + (1 - a) * g2).pow(2).sum())
    assert exact_min_norm(G @ G.T) == pytest.approx(closed, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("seed", range(3))
def test_exact_min_norm_three_objectives_against_a_grid(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(3, 4, generator=gen, dtype=D) + 0.5 * torch.randn(4, generator=gen, dtype=D)
    Q = G @ G.T
    k = 200
    grid = [
        (i / k, j / k, 1 - (i + j) / k) for i, j in itertools.product(range(k + 1), repeat=2) if i + j <= k
    ]
    W = torch.tensor(grid, dtype=D)
    brute = float(torch.einsum("ni,ij,nj->n", W, Q, W).min())
    exact = exact_min_norm(Q)
    # the grid can only overshoot, by at most about ‖Q‖·(2/k) at this spacing
    assert exact <= brute + 1e-12
    assert brute - exact <= 2 * float(Q.abs().max()) * 2 / k
