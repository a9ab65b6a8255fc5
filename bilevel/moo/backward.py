"""Apply an aggregator to a model: per-objective gradients of the shared parameters → one ``.grad``.

`backward()` composes three steps, each in its own module: (a) per-objective gradients and their
Gramians (``_jacobian``), (b) the aggregator's weights from the Gramian, (c) writing ``.grad``
(``_write``). The layer-selection policy and its counter live in
[`LayerSelection`][bilevel.moo.LayerSelection].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bilevel._distributed import all_reduce_mean_
from bilevel._params import ParamsT, check_disjoint, flat_params, param_groups
from bilevel.checks import check_loss
from bilevel.moo._base import Aggregator
from bilevel.moo._graph import reached_leaves
from bilevel.moo._jacobian import Jacobians, full_jacobians, lean_jacobians
from bilevel.moo._write import backward_combination_, write_combination_
from bilevel.moo.layer_selection import LayerSelection, SelectionPlan

LossesT = Sequence[Tensor] | Mapping[str, Tensor]


@dataclass
class BackwardResult:
    """What `backward()` computed.

    Attributes:
        weights: the weights w (m,) of the objectives; the shared parameters received Σ_i w_i g_i.
        gramian: the (m, m) Gramian the weights were computed from (of the selected layers, if any).
        selected: indices of the selected layers (``None`` without layer selection).
        scores: the layers' mean pairwise cosines from the last scoring step (``None`` without selection).
        scored: whether this step re-scored the layers.
        task_params: the task-specific parameters that received the gradient of Σ_i L_i (given, or
            inferred from the graph).
    """

    weights: Tensor
    gramian: Tensor
    selected: list[int] | None = None
    scores: Tensor | None = None
    scored: bool = False
    task_params: list[Tensor] | None = None


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


def _jacobians(
    L1: list[Tensor],
    L2: list[Tensor] | None,
    shared: list[Tensor],
    plan: SelectionPlan | None,
    selection: LayerSelection | None,
    *,
    batched: bool,
    retain: bool,
) -> tuple[Jacobians, list[int]]:
    """Step (a), and the selection's update on a scoring step: the Jacobians and the positions (in
    ``jac.index``) whose Gramians define the weights."""
    if plan is not None and selection is not None and plan.scoring and selection.scoring == "lean":
        jac = lean_jacobians(L1, L2, shared, plan, selection, batched=batched)
    else:
        jac = full_jacobians(L1, L2, shared, plan, batched=batched, retain=retain)
    if plan is None or selection is None:
        return jac, list(range(len(jac.index)))
    if jac.layer_gramians is not None:
        selection.update(jac.layer_gramians)
    chosen = set(selection.selected or [])
    if plan.scoring and selection.scoring == "lean" and chosen != {plan.layer_of[i] for i in jac.index}:
        raise RuntimeError(f"lean scoring kept tensors {jac.index} but selected layers {sorted(chosen)}")
    return jac, [pos for pos, i in enumerate(jac.index) if plan.layer_of[i] in chosen]


def _mean_losses(L1: list[Tensor], L2: list[Tensor] | None) -> Tensor:
    """The loss values (averaged over both batches and across ranks), for loss-normalised weights."""
    lv = torch.stack([x.detach() for x in L1])
    if L2 is not None:
        lv = 0.5 * (lv + torch.stack([x.detach() for x in L2]))
    lv = lv.clone()
    all_reduce_mean_([lv])
    return lv


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

    1. Per-objective gradients $g_i = \nabla_\theta L_i$ of the shared parameters θ, batched: one
       ``torch.autograd.grad`` call vmapped over the rows of the identity (``is_grads_batched=True``);
       with ``batched=False`` (or for ops without a batching rule) one backward per objective.
    2. Under ``torch.distributed`` the per-objective gradients are averaged across ranks first, so every
       rank computes the same weights.
    3. The Gramian $Q = GG^\top$ is accumulated tensor by tensor (never concatenating G) and the
       aggregator turns it into weights w; the shared parameters' ``.grad`` receives
       $\sum_i w_i g_i$ (accumulated, like ``Tensor.backward``: call ``optimizer.zero_grad()``
       first).
    4. The task-specific parameters (heads) receive the gradient of $\sum_i L_i$, i.e. each head
       its own loss's gradient when heads are separate. Without ``task_params`` they are inferred, as
       torchjd's ``mtl_backward`` does: every trainable leaf tensor the losses reach that is not among
       the shared parameters (found by walking the autograd graph once). Pass ``task_params=[]`` to give
       them nothing, or the list itself to skip the walk.

    Any ``torch.optim`` optimizer can then take the step.

    Args:
        losses: m ≥ 2 scalar losses (a list, or a dict name → loss; a [`Recipe`][bilevel.moo.Recipe] reorders
            a dict to its objectives).
        shared_params: the shared parameters θ (tensors or param-group dicts).
        aggregator: an [`Aggregator`][bilevel.moo.Aggregator] (MGDA, CAGrad, PCGrad, MoDo, a Recipe, ...).
        task_params: task-specific parameters, disjoint from ``shared_params`` (default: inferred).
        second_losses: the same objectives on an independent batch (double sampling). The direction is
            then taken on $\bar G = (G_1 + G_2)/2$; MoDo uses the cross-Gramian $G_1G_2^\top$.
        selection: a [`LayerSelection`][bilevel.moo.LayerSelection] (Objective Soups' layer selection).
        retain_graph: keep the graph after the last backward call.
        batched: try the vmapped Jacobian first.

    Returns:
        A `BackwardResult` with the weights, the Gramian, the selection and the task parameters.
    """
    L1 = _order(losses, aggregator, "losses")
    m = len(L1)
    L2 = None
    if second_losses is not None:
        L2 = _order(second_losses, aggregator, "second_losses")
        if len(L2) != m:
            raise ValueError(f"second_losses has {len(L2)} losses but losses has {m}")
    shared = flat_params(param_groups(shared_params, name="shared_params"))
    if task_params is None:
        tasks = reached_leaves(L1 + (L2 or []), exclude=shared)
    else:
        tasks = flat_params(param_groups(task_params, name="task_params", allow_empty=True))
        check_disjoint(shared, tasks, "shared_params", "task_params")

    plan = selection.plan(shared) if selection is not None else None
    planned_rest = [] if plan is None else sorted(set(range(len(shared))) - set(plan.tensors))
    later = bool(tasks) or (bool(planned_rest) and (selection is None or selection.writes_elsewhere))
    jac, use = _jacobians(L1, L2, shared, plan, selection, batched=batched, retain=later or retain_graph)
    rest = sorted(set(range(len(shared))) - set(jac.index))

    # (b) the weights, from the Gramian of the selected tensors
    dtype, device = L1[0].dtype, L1[0].device
    Q, C = jac.gramian(use, dtype=dtype)
    if selection is not None and not use:  # nothing conflicts: the mean gradient
        w = torch.full((m,), 1.0 / m, dtype=dtype, device=device)
    else:
        w = aggregator.weights_from_gramian(Q, C, losses=_mean_losses(L1, L2)).to(device=device, dtype=dtype)

    # (c) .grad: Σ w_i g_i on the selected tensors, the selection's choice elsewhere, Σ g_i on the heads
    w_other = w if selection is None else selection.weights_elsewhere(w)
    chosen = set(use)
    for pos, (i, jb) in enumerate(zip(jac.index, jac.mean)):
        coef = w if pos in chosen else w_other
        if coef is not None:
            write_combination_(shared[i], jb, coef)
    total = torch.stack(L1) if L2 is None else 0.5 * (torch.stack(L1) + torch.stack(L2))
    if rest and w_other is not None:
        backward_combination_(total, w_other, [shared[i] for i in rest], retain=bool(tasks) or retain_graph)
    backward_combination_(total, torch.ones_like(w), tasks, retain=retain_graph)

    if selection is not None:
        selection.advance()
    return BackwardResult(
        weights=w.detach(),
        gramian=Q.detach(),
        selected=None if selection is None else list(selection.selected or []),
        scores=None if selection is None or selection.scores is None else selection.scores.clone(),
        scored=plan is not None and plan.scoring,
        task_params=tasks,
    )
