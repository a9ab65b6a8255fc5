"""Averaging of gradients across ranks when ``torch.distributed`` is initialised.

Gradients taken with ``torch.autograd.grad`` bypass DistributedDataParallel's reducer hooks, so every
optimizer in `bilevel` averages the gradients it computes itself with `all_reduce_mean_()`.

A mean of per-rank means is the mean over the global batch only when every rank holds the same number of
examples. With unequal shards, pass each rank's local batch size as ``weight``: the result is then
$\\sum_r n_r t_r / \\sum_r n_r$, the gradient of the loss averaged over the global batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from bilevel._autograd import flatten
from bilevel.checks import check_real


def is_distributed() -> bool:
    """True when a default process group is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def check_weight(weight: float | None, name: str = "batch_size") -> float | None:
    """Validate a rank weight (``None``: equal weights; else a finite number > 0)."""
    return None if weight is None else check_real(weight, name, low=0.0, low_open=True)


def all_reduce_mean_(tensors: Sequence[Tensor | None], weight: float | None = None) -> None:
    """Average ``tensors`` across ranks in place (one flattened all-reduce); no-op when not distributed.

    ``None`` entries are skipped (every rank must pass ``None`` at the same positions). With ``weight``
    (this rank's local batch size, on every rank) the average is weighted:
    $\\sum_r w_r t_r / \\sum_r w_r$.
    """
    if not is_distributed():
        return
    present = [t for t in tensors if t is not None]
    if not present:
        return
    flat = flatten([t.detach() for t in present])
    if weight is None:
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= dist.get_world_size()
    else:
        flat = torch.cat([flat * weight, flat.new_full((1,), float(weight))])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat = flat[:-1] / flat[-1]
    offset = 0
    with torch.no_grad():
        for t in present:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n
