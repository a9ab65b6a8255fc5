"""Step (a) of [`bilevel.moo.backward()`][bilevel.moo.backward]: per-objective gradients of the shared tensors
and their Gramians.

Nothing here writes ``.grad`` or changes an aggregator or a selection: these functions return tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from bilevel._autograd import grads_or_zeros
from bilevel._distributed import all_reduce_mean_
from bilevel.moo.layer_selection import LayerSelection, SelectionPlan, layer_scores

_warned_fallback = False


def jacobian(
    losses: Sequence[Tensor], params: Sequence[Tensor], *, batched: bool, retain: bool
) -> list[Tensor]:
    """Per-objective gradients: one (m, *p.shape) tensor per parameter (zeros where a loss does not reach it).

    Batched: one ``torch.autograd.grad`` vmapped over the rows of the identity; an op without a batching
    rule falls back (with one warning per process) to one backward per objective.
    """
    global _warned_fallback
    m = len(losses)
    if not params:
        return []
    if batched:
        out = torch.stack(list(losses))
        eye = torch.eye(m, dtype=out.dtype, device=out.device)
        try:
            gs = torch.autograd.grad(
                out, params, grad_outputs=eye, is_grads_batched=True, retain_graph=True, allow_unused=True
            )
            return [
                torch.zeros((m, *p.shape), dtype=p.dtype, device=p.device) if g is None else g
                for g, p in zip(gs, params)
            ]
        except RuntimeError as e:  # an op without a batching rule: one backward per loss
            if not _warned_fallback:
                warnings.warn(
                    f"bilevel.moo.backward: batched Jacobian failed ({e}); using one backward per objective. "
                    "Pass batched=False to skip the attempt.",
                    RuntimeWarning,
                    stacklevel=4,
                )
                _warned_fallback = True
    rows = [grads_or_zeros(loss, params, retain_graph=retain or i < m - 1) for i, loss in enumerate(losses)]
    return [torch.stack([rows[i][j] for i in range(m)]) for j in range(len(params))]


def gram(a: Tensor, b: Tensor) -> Tensor:
    """(m, m) Gramian of two per-objective gradient tensors of one parameter."""
    m = a.shape[0]
    return a.reshape(m, -1) @ b.reshape(m, -1).T


@dataclass
class Jacobians:
    """Per-objective gradients of some shared tensors, on one or two batches.

    Attributes:
        index: positions (in the shared-parameter list) of the tensors held.
        first: per-objective gradients on the first batch, one (m, *shape) tensor per held tensor.
        second: the same on the second batch, or ``None``.
        layer_gramians: (L, m, m) float64 per-layer Gramians of Ḡ when the layers were scored, else ``None``.
    """

    index: list[int]
    first: list[Tensor]
    second: list[Tensor] | None
    layer_gramians: Tensor | None = None

    @property
    def mean(self) -> list[Tensor]:
        """Ḡ: the first batch's gradients, or the mean of both batches'."""
        if self.second is None:
            return self.first
        return [0.5 * (a + b) for a, b in zip(self.first, self.second)]

    def gramian(self, positions: Sequence[int], *, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        """Q = ḠḠᵀ and the cross-Gramian G₁G₂ᵀ (``None`` with one batch), summed over ``positions``."""
        mean = self.mean
        m = len(mean[0]) if mean else 0
        device = mean[0].device if mean else None
        Q = torch.zeros(m, m, dtype=dtype, device=device)
        C = None if self.second is None else torch.zeros(m, m, dtype=dtype, device=device)
        for pos in positions:
            Q = Q + gram(mean[pos], mean[pos]).to(dtype)
            if C is not None and self.second is not None:
                C = C + gram(self.first[pos], self.second[pos]).to(dtype)
        return Q, C


def _layer_gramians(mean: list[Tensor], layers: Sequence[int], n_layers: int, m: int) -> Tensor:
    device = mean[0].device if mean else None
    lg = torch.zeros(n_layers, m, m, dtype=torch.float64, device=device)
    for j, li in zip(mean, layers):
        lg[li] += gram(j, j).to(torch.float64)
    return lg


def full_jacobians(
    losses: Sequence[Tensor],
    second: Sequence[Tensor] | None,
    shared: Sequence[Tensor],
    plan: SelectionPlan | None,
    *,
    batched: bool,
    retain: bool,
) -> Jacobians:
    """The per-objective gradients of the tensors ``plan`` names (all without a plan), averaged across
    ranks; with a scoring plan, also every layer's Gramian. ``retain``: keep the graph after the last call."""
    index = list(range(len(shared))) if plan is None else plan.tensors
    params = [shared[i] for i in index]
    J1 = jacobian(losses, params, batched=batched, retain=retain or second is not None)
    J2 = jacobian(second, params, batched=batched, retain=retain) if second is not None else None
    all_reduce_mean_(J1 + (J2 or []))
    jac = Jacobians(index, J1, J2)
    if plan is not None and plan.scoring:
        m = len(losses)
        jac.layer_gramians = _layer_gramians(jac.mean, [plan.layer_of[i] for i in index], plan.n_layers, m)
    return jac


def lean_jacobians(
    losses: Sequence[Tensor],
    second: Sequence[Tensor] | None,
    shared: Sequence[Tensor],
    plan: SelectionPlan,
    selection: LayerSelection,
    *,
    batched: bool,
) -> Jacobians:
    """Score layer by layer, keeping per-objective gradients only for layers the selection can still pick.

    Peak memory: the kept layers plus one layer, instead of every layer; cost: one batched backward per
    layer (each stops at that layer), instead of one for all. The graph is kept for the calls that follow.
    """
    m = len(losses)
    by_layer: dict[int, list[int]] = {}
    for i, li in enumerate(plan.layer_of):
        by_layer.setdefault(li, []).append(i)
    device = losses[0].device
    lg = torch.zeros(plan.n_layers, m, m, dtype=torch.float64, device=device)
    kept: dict[int, Jacobians] = {}
    scores: dict[int, float] = {}
    for li, idxs in sorted(by_layer.items()):
        layer = full_jacobians(losses, second, [shared[i] for i in idxs], None, batched=batched, retain=True)
        layer.index = idxs
        lg[li] = _layer_gramians(layer.mean, [0] * len(idxs), 1, m)[0]
        scores[li] = float(layer_scores(lg[li : li + 1])[0])
        kept[li] = layer
        alive = selection.still_selectable(scores)
        kept = {k: v for k, v in kept.items() if k in alive}
    first: dict[int, Tensor] = {}
    sec: dict[int, Tensor] = {}
    for layer in kept.values():
        for pos, i in enumerate(layer.index):
            first[i] = layer.first[pos]
            if layer.second is not None:
                sec[i] = layer.second[pos]
    index = sorted(first)
    return Jacobians(
        index, [first[i] for i in index], None if second is None else [sec[i] for i in index], lg
    )
