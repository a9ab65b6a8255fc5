"""What every aggregator shares: input checks, the Gramian, and the ``d = wᵀG`` convention.

An aggregator maps the matrix G (m × d) of per-objective gradients to a direction d = Σ_i w_i g_i. All
aggregators in :mod:`bilevel.moo` compute their weights w from the m × m Gramian GGᵀ (or, with double
sampling, from the cross-Gramian G₁G₂ᵀ), so they also work on a selection of layers and inside
:func:`bilevel.moo.backward` without ever concatenating the gradients.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def check_gradients(G: Any, name: str = "G") -> Tensor:
    """Return ``G`` if it is a finite floating (m, d) matrix with m ≥ 2, else raise naming ``name``."""
    if not isinstance(G, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (m, d), got {type(G).__name__}")
    if G.dim() != 2:
        raise ValueError(
            f"{name} must be a matrix (m objectives × d parameters), got shape {tuple(G.shape)}; "
            "flatten each objective's gradient into one row"
        )
    if not G.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {G.dtype}")
    if G.shape[0] < 2:
        raise ValueError(
            f"{name} has {G.shape[0]} row(s): multi-objective aggregation needs at least 2 objectives"
        )
    if G.shape[1] == 0:
        raise ValueError(f"{name} has no columns (d = 0)")
    if not bool(torch.isfinite(G).all()):
        rows = (~torch.isfinite(G)).any(dim=1).nonzero().flatten().tolist()
        raise ValueError(f"{name} has non-finite entries (NaN or inf) in the gradient of objective(s) {rows}")
    return G


def check_gramian(Q: Any, name: str = "gramian", *, symmetric: bool = True) -> Tensor:
    """Return ``Q`` if it is a finite floating (m, m) matrix with m ≥ 2, else raise naming ``name``."""
    if not isinstance(Q, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (m, m), got {type(Q).__name__}")
    if Q.dim() != 2 or Q.shape[0] != Q.shape[1]:
        raise ValueError(f"{name} must be a square (m, m) matrix, got shape {tuple(Q.shape)}")
    if not Q.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {Q.dtype}")
    if Q.shape[0] < 2:
        raise ValueError(f"{name} is {Q.shape[0]}×{Q.shape[0]}: aggregation needs at least 2 objectives")
    if not bool(torch.isfinite(Q).all()):
        raise ValueError(f"{name} has non-finite entries (NaN or inf)")
    if symmetric:
        tol = 1e-6 * float(Q.detach().abs().max().clamp_min(1e-300))
        if float((Q - Q.T).abs().max()) > tol:
            raise ValueError(f"{name} must be symmetric (a Gramian GGᵀ)")
    return Q


def check_losses_vector(losses: Any, m: int, name: str = "losses") -> Tensor:
    """Loss values as a finite float64 vector of length ``m``."""
    if isinstance(losses, Tensor):
        v = losses.detach().reshape(-1).to(torch.float64).cpu()
    elif isinstance(losses, Sequence):
        v = torch.tensor([float(x) for x in losses], dtype=torch.float64)
    else:
        raise TypeError(f"{name} must be a tensor or a sequence of {m} numbers, got {type(losses).__name__}")
    if v.numel() != m:
        raise ValueError(f"{name} has {v.numel()} values but there are {m} objectives")
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} has non-finite values: {v.tolist()}")
    return v


class Aggregator(ABC):
    """Base class: ``d = agg(G)`` is the aggregated direction, ``agg.weights(G)`` the weights w with d = wᵀG.

    Subclasses implement :meth:`weights_from_gramian`. ``last_weights`` holds the weights of the most
    recent call. With two independent batches (``G2``), the direction is taken on Ḡ = (G + G2)/2 and the
    weights from the Gramian ḠḠᵀ, except for aggregators that use double sampling (MoDo), which use the
    unbiased cross-Gramian G G2ᵀ.
    """

    #: whether the aggregator uses the cross-Gramian of two independent batches when it is available
    double_sampling: bool = False

    def __init__(self) -> None:
        self.last_weights: Tensor | None = None

    @abstractmethod
    def weights_from_gramian(
        self, gramian: Tensor, cross_gramian: Tensor | None = None, *, losses: Tensor | None = None
    ) -> Tensor:
        """Weights w (m,) from the Gramian Q = GGᵀ (and the cross-Gramian G₁G₂ᵀ when two batches exist)."""

    def weights(self, G: Tensor, G2: Tensor | None = None, *, losses: Any = None) -> Tensor:
        """Weights w with d = wᵀG (or wᵀ(G + G2)/2 with a second independent batch ``G2``)."""
        G = check_gradients(G, "G")
        cross = None
        if G2 is not None:
            G2 = check_gradients(G2, "G2")
            if G2.shape != G.shape:
                raise ValueError(f"G2 must have the shape of G {tuple(G.shape)}, got {tuple(G2.shape)}")
            cross = G.detach() @ G2.detach().T
            Gbar = 0.5 * (G.detach() + G2.detach())
        else:
            Gbar = G.detach()
        lv = None if losses is None else check_losses_vector(losses, G.shape[0])
        w = self.weights_from_gramian(Gbar @ Gbar.T, cross, losses=lv)
        return w.to(device=G.device, dtype=G.dtype)

    def __call__(self, G: Tensor, G2: Tensor | None = None, *, losses: Any = None) -> Tensor:
        """The aggregated direction d = wᵀG (or wᵀ(G + G2)/2)."""
        w = self.weights(G, G2, losses=losses)
        Gbar = G if G2 is None else 0.5 * (G + G2)
        return w @ Gbar

    def _record(self, w: Tensor, like: Tensor) -> Tensor:
        w = w.to(device=like.device, dtype=like.dtype)
        self.last_weights = w.detach().clone()
        return w

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (empty for stateless aggregators)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if state:
            raise ValueError(f"{type(self).__name__} is stateless; got state keys {sorted(state)}")


__all__ = ["Aggregator", "check_gradients", "check_gramian"]
