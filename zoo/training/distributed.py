"""Data-parallel training on ``torch.distributed`` (``torchrun``): process group, batch shards, gradients.

Every rank draws the same global batch from the same seeded sampler and keeps its shard
``indices[rank::world_size]`` ([`zoo.training.Batches.shard()`][zoo.training.Batches.shard]). Gradients from
``loss.backward()``
are averaged across ranks by `average_gradients()`, weighted by each rank's local batch size, so one
step on ``W`` ranks is one step on the global batch for losses that average over utterances; the
`bilevel` optimizers average the gradients they take themselves (pass ``batch_size=`` for unequal
shards). Only rank 0 writes logs, checkpoints and reports.

``torchrun --nproc-per-node 2 -m zoo.train conformer ...`` runs two CPU processes over gloo (NCCL on GPUs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "any_rank",
    "average_gradients",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "rank",
    "world_size",
]


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of ranks (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0, or not distributed: the process that writes files and prints."""
    return rank() == 0


def init_distributed(backend: str | None = None) -> bool:
    """Initialise the default process group from ``torchrun``'s environment (``WORLD_SIZE`` > 1); returns
    whether training is distributed. ``backend`` defaults to NCCL with CUDA, gloo otherwise."""
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return is_distributed()


def average_gradients(params: Iterable[nn.Parameter] | nn.Module, weight: float | None = None) -> None:
    r"""Average the ``.grad`` of ``params`` across ranks in place (no-op when not distributed).

    With ``weight`` (this rank's local batch size) the average is $\sum_r w_r g_r / \sum_r w_r$, the
    gradient of a loss averaged over the global batch when shards differ in size. Parameters without a
    gradient are skipped (every rank must leave the same parameters without one).
    """
    if not is_distributed():
        return
    ps = [p for p in (params.parameters() if isinstance(params, nn.Module) else params) if p.grad is not None]
    if not ps:
        return
    w = 1.0 if weight is None else float(weight)
    flat = torch.cat([p.grad.reshape(-1) * w for p in ps] + [ps[0].new_full((1,), w)])  # type: ignore[union-attr]
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    total = flat[-1]
    offset = 0
    for p in ps:
        n = p.numel()
        p.grad.copy_((flat[offset : offset + n] / total).view_as(p))  # type: ignore[union-attr]
        offset += n


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (e.g. a time budget ran out on one)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
