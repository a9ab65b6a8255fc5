"""What every aggregator shares: input checks, the Gramian, and the ``d = wᵀG`` convention.

An aggregator maps the matrix G (m × d) of per-objective gradients to a direction d = Σ_i w_i g_i. All
aggregators in [`bilevel.moo`][bilevel.moo] compute their weights w from the m × m Gramian GGᵀ (or, with
double
sampling, from the cross-Gramian G₁G₂ᵀ), so they also work on a selection of layers and inside
[`bilevel.moo.backward()`][bilevel.moo.backward] without ever concatenating the gradients.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
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


def psd_tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance (to the trace) on a negative eigenvalue of a Gramian computed in ``dtype``.

    A Gramian GGᵀ rounded in floating point can have eigenvalues slightly below zero; 10·√ε of the trace
    (1.5e-7 in float64, 3.5e-3 in float32) is far above that rounding and far below the negative
    eigenvalues of a matrix that is not a Gramian.
    """
    return 10.0 * float(torch.finfo(dtype).eps) ** 0.5


def check_gramian(Q: Any, name: str = "gramian", *, symmetric: bool = True, psd: bool = True) -> Tensor:
    """Return ``Q`` if it is a finite floating (m, m) matrix with m ≥ 2, else raise naming ``name``.

    With ``symmetric`` (a Gramian GGᵀ, not a cross-Gramian G₁G₂ᵀ) it must also be symmetric and, with
    ``psd``, positive semidefinite up to `psd_tolerance()`.
    """
    if not isinstance(Q, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (m, m), got {type(Q).__name__}")
    if Q.dim() != 2 or Q.shape[0] != Q.shape[1]:
        raise ValueError(f"{name} must be a square (m, m) matrix, got shape {tuple(Q.shape)}")
    if not Q.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {Q.dtype}")
    if Q.shape[0] < 2:
        raise ValueError(f"{name} is {Q.shape[0]}×{Q.shape[0]}: aggregation needs at least 2 objectives")
    q = Q.detach().to(device="cpu", dtype=torch.float64).numpy()  # one conversion; m × m is tiny
    if not np.isfinite(q).all():
        raise ValueError(f"{name} has non-finite entries (NaN or inf)")
    if symmetric:
        tol = 1e-6 * max(float(np.abs(q).max()), 1e-300)
        if float(np.abs(q - q.T).max()) > tol:
            raise ValueError(f"{name} must be symmetric (a Gramian GGᵀ)")
        if psd:
            low = float(np.linalg.eigvalsh(0.5 * (q + q.T))[0])
            trace = float(np.abs(q.diagonal()).sum())
            if low < -psd_tolerance(Q.dtype) * trace:
                raise ValueError(
                    f"{name} must be positive semidefinite (a Gramian GGᵀ); its smallest eigenvalue is "
                    f"{low:.3g} for a trace of {trace:.3g}"
                )
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


def check_vector(v: Any, name: str, *, size: int | None = None) -> Tensor:
    """Return ``v`` if it is a finite, non-empty, floating 1-D tensor (of length ``size``), else raise."""
    if not isinstance(v, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
    if v.dim() != 1 or v.numel() == 0 or (size is not None and v.numel() != size):
        want = f"({size},)" if size is not None else "a non-empty vector"
        raise ValueError(f"{name} must have shape {want}, got shape {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} has non-finite entries (NaN or inf): {v.tolist()}")
    return v


def check_simplex(v: Any, name: str, *, size: int | None = None) -> Tensor:
    """Return ``v`` if it is a finite vector on the probability simplex (to 1e-6), else raise."""
    v = check_vector(v, name, size=size)
    if bool((v < 0).any()) or abs(float(v.detach().double().sum()) - 1.0) > 1e-6:
        raise ValueError(f"{name} must lie on the probability simplex (w ≥ 0, Σw = 1), got {v.tolist()}")
    return v


class Aggregator(ABC):
    """Base class: ``d = agg(G)`` is the aggregated direction, ``agg.weights(G)`` the weights w with d = wᵀG.

    Subclasses implement `compute_weights()` on checked Gramians; `weights_from_gramian()` is the
    entry point that checks its inputs, calls it, and records the result in ``last_weights`` (the weights
    of this aggregator's most recent call). With two independent batches (``G2``), the direction is taken
    on Ḡ = (G + G2)/2 and the weights from the Gramian ḠḠᵀ, except for aggregators that use double
    sampling (MoDo), which use the unbiased cross-Gramian G G2ᵀ.
    """

    #: whether the aggregator uses the cross-Gramian of two independent batches when it is available
    double_sampling: bool = False

    def __init__(self) -> None:
        self.last_weights: Tensor | None = None

    @abstractmethod
    def compute_weights(self, gramian: Tensor, cross_gramian: Tensor | None, losses: Tensor | None) -> Tensor:
        """Weights w (m,) from a checked Gramian Q = GGᵀ (and the cross-Gramian G₁G₂ᵀ of two batches)."""

    def weights_from_gramian(
        self, gramian: Tensor, cross_gramian: Tensor | None = None, *, losses: Any = None
    ) -> Tensor:
        """Weights w (m,) from the Gramian Q = GGᵀ (and the cross-Gramian G₁G₂ᵀ when two batches exist),
        on the Gramian's device and dtype."""
        Q = check_gramian(gramian, "gramian")
        m = Q.shape[0]
        if cross_gramian is not None:
            check_gramian(cross_gramian, "cross_gramian", symmetric=False)
            if cross_gramian.shape != Q.shape:
                raise ValueError(
                    f"cross_gramian must have the shape of gramian {tuple(Q.shape)}, "
                    f"got {tuple(cross_gramian.shape)}"
                )
        lv = None if losses is None else check_losses_vector(losses, m)
        w = self.compute_weights(Q, cross_gramian, lv)
        if w.shape != (m,) or not bool(torch.isfinite(w).all()):
            raise RuntimeError(f"{self!r} returned invalid weights {w.tolist()} for {m} objectives")
        w = w.to(device=Q.device, dtype=Q.dtype)
        self.last_weights = w.detach().clone()
        return w

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
        w = self.weights_from_gramian(Gbar @ Gbar.T, cross, losses=losses)
        return w.to(device=G.device, dtype=G.dtype)

    def __call__(self, G: Tensor, G2: Tensor | None = None, *, losses: Any = None) -> Tensor:
        """The aggregated direction d = wᵀG (or wᵀ(G + G2)/2)."""
        w = self.weights(G, G2, losses=losses)
        Gbar = G if G2 is None else 0.5 * (G + G2)
        return w @ Gbar

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (empty for stateless aggregators)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        if state:
            raise ValueError(f"{type(self).__name__} is stateless; got state keys {sorted(state)}")


def check_state_keys(state: Any, keys: set[str], owner: str) -> dict[str, Any]:
    """``state`` is a dict with exactly ``keys``, else raise naming ``owner``."""
    if not isinstance(state, dict):
        raise TypeError(f"{owner}.load_state_dict expects a dict, got {type(state).__name__}")
    if set(state) != keys:
        raise ValueError(f"{owner}.load_state_dict expects the keys {sorted(keys)}, got {sorted(state)}")
    return state


__all__ = ["Aggregator", "check_gradients", "check_gramian"]
