"""MoDo: multi-objective gradient with double sampling (Chen, Fernando, Ying, Chen, NeurIPS 2023)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bilevel.checks import check_choice, check_int, check_real
from bilevel.moo._base import Aggregator, check_gramian, check_simplex, check_state_keys
from bilevel.moo._simplex import _project_simplex

CENTERS = ("zero", "uniform")


def modo_step(
    lam: Tensor, cross_gramian: Tensor, *, gamma: float = 0.1, rho: float = 0.0, center: str = "zero"
) -> Tensor:
    r"""One MoDo weight update $\lambda \leftarrow \Pi_\Delta\big(\lambda - \gamma(G_1G_2^\top\lambda
    + \rho(\lambda - \lambda_c))\big)$.

    $G_1G_2^\top$ (``cross_gramian``) comes from two independent mini-batches, so
    $G_1G_2^\top\lambda$ is an unbiased estimate of $\nabla F\nabla F^\top\lambda$, the gradient
    of $\tfrac12\|\nabla F^\top\lambda\|^2$; a single batch ($G_1G_1^\top$) adds the gradient
    covariance and biases λ. ``center`` is the regulariser's anchor $\lambda_c$: ``"zero"`` (MoDo
    paper, LibMTL) or ``"uniform"`` (1/m, the Objective Soups code).

    Raises:
        ValueError: ``cross_gramian`` is not a finite (m, m) matrix with m ≥ 2, ``lam`` is not a point of
            the simplex Δ_m, γ ≤ 0, ρ < 0, or an unknown ``center``.
    """
    M = check_gramian(cross_gramian, "cross_gramian", symmetric=False)
    gamma = check_real(gamma, "gamma", low=0.0, low_open=True)
    rho = check_real(rho, "rho", low=0.0)
    check_choice(center, "center", CENTERS)
    return _modo_step(check_simplex(lam, "lam", size=M.shape[0]), M, gamma, rho, center)


def _modo_step(lam: Tensor, cross_gramian: Tensor, gamma: float, rho: float, center: str) -> Tensor:
    """`modo_step()` on checked inputs."""
    M = cross_gramian.detach()
    m = M.shape[0]
    lam = lam.detach().to(device=M.device, dtype=M.dtype)
    anchor = torch.full_like(lam, 1.0 / m) if center == "uniform" else torch.zeros_like(lam)
    return _project_simplex(lam - gamma * (M @ lam + rho * (lam - anchor)))


class MoDo(Aggregator):
    r"""MoDo: stochastic MGDA whose weights λ follow projected gradient descent on
    $\tfrac12\|G^\top\lambda\|^2 + \tfrac\rho2\|\lambda\|^2$ with *double sampling*:

    $$
    \lambda_{t+1} = \Pi_\Delta\big(\lambda_t
    - \gamma_\lambda (G_1 G_2^\top \lambda_t + \rho\lambda_t)\big),
    \qquad d_t = \tfrac12 (G_1 + G_2)^\top \lambda_{t+1},
    $$

    where $G_1, G_2$ are the objectives' gradients on two independent mini-batches. λ is state
    carried across steps (start: uniform). With only one batch the update uses $G G^\top$ and
    converges to a biased λ (it minimises the expected squared norm, which includes the noise variance).

    Unlike the stateless aggregators, every call advances λ: ``agg(G1, G2)`` and
    ``agg.weights(G1, G2)`` each perform one update. Read the current λ from `lam`.

    Reference: L. Chen, H. Fernando, Y. Ying, T. Chen, "Three-Way Trade-Off in Multi-Objective Learning:
    Optimization, Generalization and Conflict-Avoidance", NeurIPS 2023 (JMLR 2024).

    Args:
        gamma: step size γ_λ of the weight update (> 0; LibMTL 0.1, Objective Soups 0.01–0.1).
        rho: regularisation ρ ≥ 0 (LibMTL 0.1, M2ASR 0).
        center: anchor of the regulariser: ``"zero"`` (paper) or ``"uniform"`` (Objective Soups code).
    """

    double_sampling = True

    def __init__(self, gamma: float = 0.1, rho: float = 0.0, *, center: str = "zero") -> None:
        super().__init__()
        self.gamma = check_real(gamma, "gamma", low=0.0, low_open=True)
        self.rho = check_real(rho, "rho", low=0.0)
        self.center = check_choice(center, "center", CENTERS)
        self.lam: Tensor | None = None
        self.steps = 0

    def compute_weights(self, gramian: Tensor, cross_gramian: Tensor | None, losses: Tensor | None) -> Tensor:
        M = cross_gramian if cross_gramian is not None else gramian
        m = M.shape[0]
        if self.lam is None:
            lam = torch.full((m,), 1.0 / m, dtype=torch.float64)
        elif self.lam.numel() != m:
            raise ValueError(f"MoDo was used with {self.lam.numel()} objectives, now got {m}")
        else:
            lam = self.lam
        new = _modo_step(
            lam, M.detach().to(device="cpu", dtype=torch.float64), self.gamma, self.rho, self.center
        )
        self.lam = new
        self.steps += 1
        return new

    def reset(self) -> None:
        """Forget λ (the next call starts from uniform weights)."""
        self.lam, self.steps = None, 0

    def state_dict(self) -> dict[str, Any]:
        return {"lam": None if self.lam is None else self.lam.clone(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = check_state_keys(state, {"lam", "steps"}, "MoDo")
        lam = state["lam"]
        if lam is not None:
            if not isinstance(lam, Tensor):
                try:
                    lam = torch.as_tensor(lam, dtype=torch.float64)
                except (TypeError, ValueError, RuntimeError) as e:
                    raise TypeError(f"MoDo state 'lam' must be a tensor of weights or None ({e})") from e
            lam = check_simplex(lam, "MoDo state 'lam'").detach().to(torch.float64)
        steps = check_int(state["steps"], "MoDo state 'steps'", low=0)
        self.lam = None if lam is None else lam.clone()
        self.steps = steps

    def __repr__(self) -> str:
        return f"MoDo(gamma={self.gamma}, rho={self.rho}, center={self.center!r})"
