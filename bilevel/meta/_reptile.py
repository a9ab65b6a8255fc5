"""Reptile (Nichol, Achiam & Schulman, arXiv 1803.02999): move the start towards the adapted weights."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from bilevel._distributed import all_reduce_mean_
from bilevel.checks import check_int
from bilevel.meta._adapt import LearningRate, LossFn, Params, check_lr, select_names, sgd_steps


def reptile_grad(
    model: nn.Module,
    task_losses: Sequence[LossFn],
    inner_lr: LearningRate,
    inner_steps: int,
    *,
    names: Iterable[str] | None = None,
    accumulate: bool = True,
) -> Params:
    r"""The Reptile direction $d = \theta - \frac1n\sum_i W_i$, added to the model's ``.grad``.

    $W_i$ is the result of ``inner_steps`` plain SGD steps on task $i$'s loss from
    $\theta$. An outer SGD step of size $\epsilon$ then performs Reptile's update
    $\theta \leftarrow \theta + \epsilon(\bar W - \theta)$; any other ``torch.optim`` optimizer
    may consume $d$ instead. For SGD inner steps $d = \beta\,\frac1n\sum_i\sum_k
    \nabla\mathcal L_i(\phi_i^{(k)})$: the sum of the gradients along the whole path, where FOMAML uses
    only the last (with $K=1$, $d/\beta$ is the joint-training gradient). No
    second-order terms are formed. Under ``torch.distributed`` the direction is averaged over ranks.

    Args:
        model: the module.
        task_losses: one ``loss_fn(params)`` per task (see [`adapt()`][bilevel.meta.adapt]).
        inner_lr: $\beta$, scalar or per parameter.
        inner_steps: $K \ge 1$.
        names: adapt only these parameters (the others get $d = 0$).
        accumulate: add $d$ into ``.grad`` (like ``backward``); ``False`` only returns it.

    Returns:
        $d$ by parameter name (detached).
    """
    check_int(inner_steps, "inner_steps", low=1)
    losses = list(task_losses)
    if not losses:
        raise ValueError("task_losses is empty: expected at least one task")
    keys = select_names(model, names)
    theta = dict(model.named_parameters())
    lrs = check_lr(inner_lr, keys, theta)
    lrs = {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in lrs.items()}
    total = {n: torch.zeros_like(theta[n]) for n in keys}
    for i, loss_fn in enumerate(losses):
        start = {n: (p.detach().requires_grad_(True) if n in keys else p.detach()) for n, p in theta.items()}
        fast = sgd_steps(loss_fn, start, keys, lrs, inner_steps, first_order=True, name=f"task_losses[{i}]")
        for n in keys:
            total[n] += fast[n].detach()
    d = {n: theta[n].detach() - total[n] / len(losses) for n in keys}
    all_reduce_mean_(list(d.values()))
    if accumulate:
        for n in keys:
            p = theta[n]
            p.grad = d[n].clone() if p.grad is None else p.grad + d[n]
    return d
