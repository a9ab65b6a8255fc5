"""Apply an aggregator to a model: per-objective gradients of the shared parameters → one ``.grad``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bilevel._checks import check_loss
from bilevel._distributed import all_reduce_mean_
from bilevel._params import ParamsT, check_disjoint, flat_params, param_groups
from bilevel.moo._base import Aggregator
from bilevel.moo.layer_selection import LayerSelection, layer_scores

LossesT = Sequence[Tensor] | Mapping[str, Tensor]


@dataclass
class BackwardResult:
    """What :func:`backward` computed.

    Attributes:
        weights: the weights w (m,) of the objectives; the shared parameters received Σ_i w_i g_i.
        gramian: the (m, m) Gramian the weights were computed from (of the selected layers, if any).
        selected: indices of the selected layers (``None`` without layer selection).
        scores: the layers' mean pairwise cosines from the last scoring step (``None`` without selection).
        scored: whether this step re-scored the layers.
    """

    weights: Tensor
    gramian: Tensor
    selected: list[int] | None = None
    scores: Tensor | None = None
    scored: bool = False


def _order(losses: Any, aggregator: Aggregator, name: str) -> list[Tensor]:
    order = getattr(aggregator, "objectives", None)
    if isinstance(losses, Mapping):
        if order is not None:
            if set(losses) != set(order):
                raise ValueError(
                    f"{name} has objectives {sorted(losses)} but the aggregator expects {sorted(order)}"
                )
            items = [losses[k] for k in order]
        else:
            items = list(losses.values())
    elif isinstance(losses, (list, tuple)):
        items = list(losses)
        if order is not None and len(items) != len(order):
            raise ValueError(f"{name} has {len(items)} losses but the aggregator expects {len(order)}")
    else:
        raise TypeError(f"{name} must be a list/tuple of scalar losses or a dict name → loss")
    if len(items) < 2:
        raise ValueError(f"{name} has {len(items)} loss(es): multi-objective backward needs at least 2")
    out = []
    for i, loss in enumerate(items):
        loss = check_loss(loss, f"{name}[{i}]")
        if not loss.requires_grad:
            raise ValueError(f"{name}[{i}] does not require grad (it depends on no trainable parameter)")
        out.append(loss)
    return out


_warned_fallback = False


def _jacobian(losses: list[Tensor], params: list[Tensor], *, batched: bool, retain: bool) -> list[Tensor]:
    """Per-objective gradients: one (m, *p.shape) tensor per parameter (zeros where unused)."""
    global _warned_fallback
    m = len(losses)
    if not params:
        return []
    grads: Sequence[Tensor | None] | None = None
    if batched:
        out = torch.stack(losses)
        eye = torch.eye(m, dtype=out.dtype, device=out.device)
        try:
            grads = torch.autograd.grad(
                out, params, grad_outputs=eye, is_grads_batched=True, retain_graph=True, allow_unused=True
            )
        except RuntimeError as e:  # an op without a batching rule: fall back to one backward per loss
            if not _warned_fallback:
                warnings.warn(
                    f"bilevel.moo.backward: batched Jacobian failed ({e}); using one backward per objective. "
                    "Pass batched=False to skip the attempt.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                _warned_fallback = True
            grads = None
    if grads is not None:
        rows: list[Tensor] = [
            torch.zeros((m, *p.shape), dtype=p.dtype, device=p.device) if g is None else g
            for g, p in zip(grads, params)
        ]
        return rows
    per_loss = []
    for i, loss in enumerate(losses):
        gs = torch.autograd.grad(loss, params, retain_graph=retain or i < m - 1, allow_unused=True)
        per_loss.append([torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)])
    return [torch.stack([per_loss[i][j] for i in range(m)]) for j in range(len(params))]


def _lean_scoring(
    L1: list[Tensor],
    L2: list[Tensor] | None,
    shared: list[Tensor],
    layer_of: list[int],
    selection: LayerSelection,
    gram: Any,
    batched: bool,
) -> tuple[list[int], list[Tensor], list[Tensor] | None]:
    """Score layer by layer, keeping per-objective gradients only for layers that can still be selected.

    Peak memory: the kept layers plus one layer, instead of every layer; cost: one batched backward per
    layer (each stops at that layer), instead of one for all.
    """
    m = len(L1)
    by_layer: dict[int, list[int]] = {}
    for i, li in enumerate(layer_of):
        by_layer.setdefault(li, []).append(i)
    lg = torch.zeros(selection.n_layers(shared), m, m, dtype=torch.float64, device=L1[0].device)
    kept: dict[int, tuple[list[Tensor], list[Tensor] | None]] = {}
    key: dict[int, tuple[float, int]] = {}
    for li, idxs in sorted(by_layer.items()):
        ps = [shared[i] for i in idxs]
        j1 = _jacobian(L1, ps, batched=batched, retain=True)
        j2 = _jacobian(L2, ps, batched=batched, retain=True) if L2 is not None else None
        all_reduce_mean_(j1 + (j2 or []))
        jb = j1 if j2 is None else [0.5 * (a + b) for a, b in zip(j1, j2)]
        for j in jb:
            lg[li] += gram(j, j).to(torch.float64)
        score = float(layer_scores(lg[li : li + 1])[0])
        if selection.k is None:
            if score < selection.threshold:
                kept[li] = (j1, j2)
        else:
            kept[li] = (j1, j2)
            key[li] = (score, li)
            if len(kept) > selection.k:
                drop = max(kept, key=lambda x: key[x])
                del kept[drop]
    selected = selection.update(lg)
    if set(selected) != set(kept):  # cannot happen unless scores tie inconsistently; be safe
        raise RuntimeError(f"lean scoring kept layers {sorted(kept)} but selected {selected}")
    jac_idx = [i for i, li in enumerate(layer_of) if li in kept]
    pos = {li: 0 for li in kept}
    J1: list[Tensor] = []
    J2: list[Tensor] | None = [] if L2 is not None else None
    for i in jac_idx:
        li = layer_of[i]
        j1, j2 = kept[li]
        J1.append(j1[pos[li]])
        if J2 is not None and j2 is not None:
            J2.append(j2[pos[li]])
        pos[li] += 1
    return jac_idx, J1, J2


def _accumulate(p: Tensor, g: Tensor) -> None:
    """Add ``g`` (a fresh tensor nobody else holds) into ``p.grad``."""
    g = g.detach().to(p.dtype)
    if p.grad is None:
        p.grad = g
    else:
        p.grad.add_(g)


def backward(
    losses: LossesT,
    shared_params: ParamsT,
    aggregator: Aggregator,
    *,
    task_params: ParamsT | None = None,
    second_losses: LossesT | None = None,
    selection: LayerSelection | None = None,
    retain_graph: bool = False,
    batched: bool = True,
) -> BackwardResult:
    r"""Multi-objective backward: aggregate the objectives' gradients of the shared parameters into ``.grad``.

    1. Per-objective gradients :math:`g_i = \nabla_\theta L_i` of the shared parameters θ, batched: one
       ``torch.autograd.grad`` call vmapped over the rows of the identity (``is_grads_batched=True``);
       with ``batched=False`` (or for ops without a batching rule) one backward per objective.
    2. Under ``torch.distributed`` the per-objective gradients are averaged across ranks first, so every
       rank computes the same weights.
    3. The Gramian :math:`Q = GG^\top` is accumulated tensor by tensor (never concatenating G) and the
       aggregator turns it into weights w; the shared parameters' ``.grad`` receives
       :math:`\sum_i w_i g_i` (accumulated, like ``Tensor.backward``: call ``optimizer.zero_grad()``
       first).
    4. ``task_params`` (heads) receive the gradient of :math:`\sum_i L_i`, i.e. each head its own loss's
       gradient when heads are separate.

    Any ``torch.optim`` optimizer can then take the step.

    Args:
        losses: m ≥ 2 scalar losses (a list, or a dict name → loss; a :class:`~bilevel.moo.Recipe` reorders
            a dict to its objectives).
        shared_params: the shared parameters θ (tensors or param-group dicts).
        aggregator: an :class:`~bilevel.moo.Aggregator` (MGDA, CAGrad, PCGrad, MoDo, a Recipe, ...).
        task_params: task-specific parameters, disjoint from ``shared_params``.
        second_losses: the same objectives on an independent batch (double sampling). The direction is
            then taken on :math:`\bar G = (G_1 + G_2)/2`; MoDo uses the cross-Gramian :math:`G_1G_2^\top`.
        selection: a :class:`~bilevel.moo.LayerSelection` (Objective Soups' layer selection).
        retain_graph: keep the graph after the last backward call.
        batched: try the vmapped Jacobian first.

    Returns:
        A :class:`BackwardResult` with the weights, the Gramian and the selection.
    """
    L1 = _order(losses, aggregator, "losses")
    m = len(L1)
    L2 = None
    if second_losses is not None:
        L2 = _order(second_losses, aggregator, "second_losses")
        if len(L2) != m:
            raise ValueError(f"second_losses has {len(L2)} losses but losses has {m}")
    shared = flat_params(param_groups(shared_params, name="shared_params"))
    tasks = flat_params(param_groups(task_params, name="task_params", allow_empty=True))
    check_disjoint(shared, tasks, "shared_params", "task_params")

    layer_of: list[int] | None = None
    scoring = False
    jac_idx = list(range(len(shared)))
    if selection is not None:
        layer_of = selection.layer_index(shared)
        scoring = selection.needs_scoring()
        if not scoring:
            chosen = set(selection.selected or [])
            jac_idx = [i for i, li in enumerate(layer_of) if li in chosen]

    def gram(a: Tensor, b: Tensor) -> Tensor:
        return a.reshape(m, -1) @ b.reshape(m, -1).T

    lean = scoring and selection is not None and selection.scoring == "lean"
    if lean:
        assert selection is not None and layer_of is not None
        jac_idx, J1, J2 = _lean_scoring(L1, L2, shared, layer_of, selection, gram, batched)
    rest_idx = sorted(set(range(len(shared))) - set(jac_idx))
    apply_all = selection is None or selection.apply_to == "all"
    others = "weighted" if apply_all else (selection.others if selection is not None else "none")
    need_rest = bool(rest_idx) and others != "none"
    later = need_rest or bool(tasks)

    if not lean:
        jac_params = [shared[i] for i in jac_idx]
        retain1 = True if L2 is not None else later or retain_graph
        J1 = _jacobian(L1, jac_params, batched=batched, retain=retain1)
        J2 = (
            _jacobian(L2, jac_params, batched=batched, retain=later or retain_graph)
            if L2 is not None
            else None
        )
        all_reduce_mean_(J1 + (J2 or []))
    Jbar = J1 if J2 is None else [0.5 * (a + b) for a, b in zip(J1, J2)]

    dtype = L1[0].dtype
    device = L1[0].device
    tensor_gram = [gram(j, j) for j in Jbar]
    tensor_cross = [gram(a, b) for a, b in zip(J1, J2)] if J2 is not None else None

    use = list(range(len(jac_idx)))  # positions (in jac_idx) whose Gramians define the weights
    selected_layers: list[int] | None = None
    if selection is not None and layer_of is not None:
        if scoring and not lean:
            n_layers = selection.n_layers(shared)
            lg = torch.zeros(n_layers, m, m, dtype=torch.float64, device=device)
            for pos, i in enumerate(jac_idx):
                lg[layer_of[i]] += tensor_gram[pos].to(torch.float64)
            selection.update(lg)
        selected_layers = list(selection.selected or [])
        chosen = set(selected_layers)
        use = [pos for pos, i in enumerate(jac_idx) if layer_of[i] in chosen]

    Q = torch.zeros(m, m, dtype=dtype, device=device)
    for pos in use:
        Q = Q + tensor_gram[pos].to(dtype)
    C = None
    if tensor_cross is not None:
        C = torch.zeros(m, m, dtype=dtype, device=device)
        for pos in use:
            C = C + tensor_cross[pos].to(dtype)

    if selection is not None and not use:
        w = torch.full((m,), 1.0 / m, dtype=dtype, device=device)  # nothing conflicts: the mean gradient
        aggregator.last_weights = w.clone()
    else:
        lv = torch.stack([x.detach() for x in L1])
        if L2 is not None:
            lv = 0.5 * (lv + torch.stack([x.detach() for x in L2]))
        lv = lv.clone()
        all_reduce_mean_([lv])
        w = aggregator.weights_from_gramian(Q, C, losses=lv).to(device=device, dtype=dtype)

    chosen_layers = set(selected_layers or [])
    with torch.no_grad():
        for pos, i in enumerate(jac_idx):
            p = shared[i]
            jb = Jbar[pos]
            in_s = layer_of is None or layer_of[i] in chosen_layers
            if in_s or apply_all:
                _accumulate(p, torch.tensordot(w.to(jb.dtype), jb, dims=1))
            elif others == "mean":
                _accumulate(p, jb.mean(0))
            elif others == "sum":
                _accumulate(p, jb.sum(0))

    total = torch.stack(L1) if L2 is None else 0.5 * (torch.stack(L1) + torch.stack(L2))
    if need_rest:
        coef = {"weighted": w, "mean": torch.full_like(w, 1.0 / m), "sum": torch.ones_like(w)}[others]
        rest = [shared[i] for i in rest_idx]
        gs = torch.autograd.grad(
            (coef.detach() * total).sum(), rest, retain_graph=bool(tasks) or retain_graph, allow_unused=True
        )
        gl = [torch.zeros_like(p) if g is None else g for g, p in zip(gs, rest)]
        all_reduce_mean_(gl)
        for p, g in zip(rest, gl):
            _accumulate(p, g)
    if tasks:
        gs = torch.autograd.grad(total.sum(), tasks, retain_graph=retain_graph, allow_unused=True)
        gl = [torch.zeros_like(p) if g is None else g for g, p in zip(gs, tasks)]
        all_reduce_mean_(gl)
        for p, g in zip(tasks, gl):
            _accumulate(p, g)

    if selection is not None:
        selection.steps += 1
    return BackwardResult(
        weights=w.detach(),
        gramian=Q.detach(),
        selected=selected_layers,
        scores=None if selection is None or selection.scores is None else selection.scores.clone(),
        scored=scoring,
    )
