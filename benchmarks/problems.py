"""Problem definitions with closed-form answers, shared by the claims and the tests.

* `c1()` — θ ∈ R², g = (θ1 + θ2 − 1)², f = (θ1 − 2)² + θ2²: the bilevel solution is
  θ* = (1.5, −0.5) with f* = 0.5, and the minimiser of f + γg is θ_γ = (2 − r, −r), r = γ/(1 + 2γ)
  (`c1_minimiser()`), where g = 1/(1 + 2γ)².
* `LinearQuadratic` — g(x, y) = ½‖y − Ax‖² + ½c‖x‖², f(x, y) = ½‖y − b‖² + ½λ‖x‖²: y*(x) = Ax,
  so x* = (AᵀA + λI)⁻¹Aᵀb, and v(x) = ½c‖x‖² depends on x.
* `toy_phi()` — the hyper-objective φ(x) = f(x, −x) of the V-PBGD toy (Shen & Chen 2023).
* `exact_min_norm()` — min over the simplex of wᵀQw by enumerating supports (MGDA's reference).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch

__all__ = ["C1_SOLUTION", "LinearQuadratic", "c1", "c1_minimiser", "exact_min_norm", "toy_phi"]

D = torch.float64
Closure = Callable[[], torch.Tensor]

#: Bilevel solution θ* of `c1()`.
C1_SOLUTION = (1.5, -0.5)


def c1(start: tuple[float, float] = (0.0, 0.0)) -> tuple[torch.Tensor, Closure, Closure]:
    """θ (float64, requires grad) at ``start`` and the closures f (upper) and g (lower) of problem C1."""
    th = torch.tensor(start, dtype=D, requires_grad=True)

    def f() -> torch.Tensor:
        return (th[0] - 2) ** 2 + th[1] ** 2

    def g() -> torch.Tensor:
        return (th[0] + th[1] - 1) ** 2

    return th, f, g


def c1_minimiser(gamma: float) -> np.ndarray:
    """θ_γ = argmin f + γg of problem C1: (2 − r, −r) with r = γ/(1 + 2γ)."""
    r = gamma / (1 + 2 * gamma)
    return np.array([2 - r, -r])


class LinearQuadratic:
    """Problem C5 in float64 with closed forms: A ~ N(0, 1/m) of shape (m, n), b ~ N(0, 1) (seeded)."""

    def __init__(self, seed: int, n: int = 5, m: int = 10, lam: float = 0.5, c: float = 1.0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.A = torch.randn(m, n, generator=gen, dtype=D) / math.sqrt(m)
        self.b = torch.randn(m, generator=gen, dtype=D)
        self.lam, self.c, self.n, self.m = lam, c, n, m
        eye = torch.eye(n, dtype=D)
        self.x_star = torch.linalg.solve(self.A.T @ self.A + lam * eye, self.A.T @ self.b)

    def x_penalty(self, gamma: float) -> torch.Tensor:
        """Minimiser of f + γ(g − v): (AᵀA + λ(1 + 1/γ)I)⁻¹Aᵀb."""
        eye = torch.eye(self.n, dtype=D)
        return torch.linalg.solve(self.A.T @ self.A + self.lam * (1 + 1 / gamma) * eye, self.A.T @ self.b)

    def x_plain(self, gamma: float) -> torch.Tensor:
        """Minimiser of f + γg (v treated as a constant): (AᵀA + (λ + γc)(1 + γ)/γ I)⁻¹Aᵀb."""
        eye = torch.eye(self.n, dtype=D)
        k = (self.lam + gamma * self.c) * (1 + gamma) / gamma
        return torch.linalg.solve(self.A.T @ self.A + k * eye, self.A.T @ self.b)

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> tuple[Closure, Closure]:
        """The closures f (upper) and g (lower) at the variables ``x`` and ``y``."""
        A, b, lam, c = self.A, self.b, self.lam, self.c

        def f() -> torch.Tensor:
            return 0.5 * (y - b).pow(2).sum() + 0.5 * lam * x.pow(2).sum()

        def g() -> torch.Tensor:
            return 0.5 * (y - A @ x).pow(2).sum() + 0.5 * c * x.pow(2).sum()

        return f, g

    def safe_lr(self, gamma_max: float, cap: float = 0.5) -> float:
        """A step below 1.9/L for c(γ)·(∇²f + γ∇²g) over the ramp (c = min(1, 1/γ); plain f + γg is the
        stiffer of the two runs), so that neither run diverges whatever the draw of A."""
        n, m = self.n, self.m
        eye_n, eye_m = torch.eye(n, dtype=D), torch.eye(m, dtype=D)
        hf = torch.block_diag(self.lam * eye_n, eye_m)
        hg = torch.cat(
            [
                torch.cat([self.A.T @ self.A + self.c * eye_n, -self.A.T], 1),
                torch.cat([-self.A, eye_m], 1),
            ]
        )
        worst = max(
            float(torch.linalg.eigvalsh(min(1.0, 1.0 / max(gm, 1e-12)) * (hf + gm * hg)).max())
            for gm in [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, gamma_max]
        )
        return min(cap, 1.9 / worst)

    def rel_err(self, x: torch.Tensor) -> float:
        """‖x − x*‖ / ‖x*‖."""
        return float((x.detach() - self.x_star).norm() / self.x_star.norm())


def toy_phi(x: torch.Tensor) -> torch.Tensor:
    """Hyper-objective φ(x) = f(x, −x) of the V-PBGD toy."""
    return torch.cos(-4 * x + 2) / (1 + torch.exp(2 - 4 * x)) + 0.5 * torch.log((4 * x - 2) ** 2 + 1)


def exact_min_norm(q: torch.Tensor) -> float:
    """min over the simplex of wᵀqw: the best feasible affine minimiser over all supports (KKT
    enumeration, exponential in the size; an independent reference for small problems)."""
    m = q.shape[0]
    best = math.inf
    for r in range(1, m + 1):
        for S in itertools.combinations(range(m), r):
            idx = list(S)
            kkt = torch.zeros(r + 1, r + 1, dtype=torch.float64)
            kkt[:r, :r] = q[idx][:, idx]
            kkt[:r, r] = 1
            kkt[r, :r] = 1
            rhs = torch.zeros(r + 1, dtype=torch.float64)
            rhs[r] = 1
            mu = torch.linalg.lstsq(kkt, rhs.unsqueeze(1)).solution.squeeze(1)[:r]
            if (mu < -1e-12).any() or abs(float(mu.sum()) - 1) > 1e-9:
                continue
            w = torch.zeros(m, dtype=torch.float64)
            w[idx] = mu
            best = min(best, float(w @ q @ w))
    return best
