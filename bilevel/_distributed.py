"""Averaging of gradients across ranks when ``torch.distributed`` is initialised.

Gradients taken with ``torch.autograd.grad`` bypass DistributedDataParallel's reducer hooks, so every
optimizer in :mod:`bilevel` averages the gradients it computes itself with :func:`all_reduce_mean_`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a default process group is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_mean_(tensors: Sequence[Tensor | None]) -> None:
    """Average ``tensors`` across ranks in place (one flattened all-reduce); no-op when not distributed.

    ``None`` entries are skipped (every rank must pass ``None`` at the same positions).
    """
    if not is_distributed():
        return
    present = [t for t in tensors if t is not None]
    if not present:
        return
    flat = torch.cat([t.detach().reshape(-1) for t in present])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    with torch.no_grad():
        for t in present:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n
