r"""MGDA: the min-norm element of the convex hull of the objectives' gradients (Désidéri 2012; Sener &
Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from bilevel.checks import check_choice, check_real
from bilevel.moo._base import Aggregator, check_gramian, check_losses_vector
from bilevel.moo._simplex import _min_norm_weights

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def mgda_weights(
    gramian: Tensor, *, normalization: str = "none", losses: Tensor | None = None, tol: float = 1e-12
) -> Tensor:
    r"""Weights α ∈ Δ_m of the min-norm point $\min_{\alpha\in\Delta}\|\sum_i \alpha_i \hat g_i\|^2$.

    ``normalization`` rescales the gradients before solving, $\hat g_i = g_i / s_i$, as in Sener &
    Koltun's code: ``"l2"`` ($s_i=\|g_i\|$), ``"loss"`` ($s_i=L_i$), ``"loss+"``
    ($s_i=L_i\|g_i\|$) or ``"none"``. As in their code, the weights α are then applied to the raw
    gradients. Zero scales are replaced by one.

    Returns weights on the Gramian's device and dtype. The solve is exact (Wolfe's active-set algorithm,
    see [`bilevel.moo.min_norm_weights()`][bilevel.moo.min_norm_weights]; closed form for m = 2).

    Raises:
        ValueError: the Gramian is not a finite symmetric positive semidefinite (m, m) matrix with m ≥ 2,
            an unknown normalization, missing, non-positive or mis-sized ``losses``, or ``tol`` ≤ 0.
    """
    check_gramian(gramian)
    check_choice(normalization, "normalization", NORMALIZATIONS)
    tol = check_real(tol, "tol", low=0.0, low_open=True)
    return _mgda_weights(gramian, normalization, losses, tol)


def _mgda_weights(gramian: Tensor, normalization: str, losses: Tensor | None, tol: float) -> Tensor:
    """`mgda_weights()` on checked inputs."""
    q = gramian.detach().to(device="cpu", dtype=torch.float64)
    m = q.shape[0]
    if normalization != "none":
        s = torch.ones(m, dtype=torch.float64)
        if normalization in ("l2", "loss+"):
            s = s * q.diagonal().clamp_min(0).sqrt()
        if normalization in ("loss", "loss+"):
            if losses is None:
                raise ValueError(f"normalization={normalization!r} needs the loss values (losses=...)")
            lv = check_losses_vector(losses, m)
            if bool((lv <= 0).any()):
                raise ValueError(f"normalization={normalization!r} needs positive losses, got {lv.tolist()}")
            s = s * lv
        s = torch.where(s > 0, s, torch.ones_like(s))
        q = q / s[:, None] / s[None, :]
    w = _min_norm_weights(q, tol=tol)
    return w.to(device=gramian.device, dtype=gramian.dtype)


class MGDA(Aggregator):
    r"""Multiple-gradient descent: $d = \sum_i \alpha_i g_i$ with
    $\alpha = \arg\min_{\alpha\in\Delta_m} \|\sum_i \alpha_i g_i\|^2$.

    Either d = 0 (the point is Pareto-stationary) or $\langle d, g_i\rangle \ge \|d\|^2 > 0$ for
    every i, so a small step along −d decreases every objective. The weights are solved exactly on the
    m × m Gramian (closed form for m = 2; Wolfe's min-norm-point algorithm for m > 2, which terminates
    with the optimal support instead of the O(1/k) error of Frank–Wolfe).

    References: J.-A. Désidéri, "Multiple-gradient descent algorithm (MGDA) for multiobjective
    optimization", C. R. Math. 2012; O. Sener and V. Koltun, "Multi-Task Learning as Multi-Objective
    Optimization", NeurIPS 2018 (gradient normalisations).

    Args:
        normalization: ``"none"`` (default), ``"l2"``, ``"loss"`` or ``"loss+"`` (Sener & Koltun); the
            loss-based ones need ``losses=`` in `weights()`.
        tol: relative tolerance on the Frank–Wolfe gap of the solver.

    Examples:
        >>> import torch
        >>> G = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> MGDA()(G)
        tensor([0.5000, 0.5000])
    """

    def __init__(self, normalization: str = "none", *, tol: float = 1e-12) -> None:
        super().__init__()
        self.normalization = check_choice(normalization, "normalization", NORMALIZATIONS)
        self.tol = check_real(tol, "tol", low=0.0, low_open=True)

    def compute_weights(self, gramian: Tensor, cross_gramian: Tensor | None, losses: Tensor | None) -> Tensor:
        return _mgda_weights(gramian, self.normalization, losses, self.tol)

    def __repr__(self) -> str:
        return f"MGDA(normalization={self.normalization!r})"
