"""Distributed soft random sampling: every rank takes a disjoint share of the same epoch draw."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from bilevel.checks import check_int
from bilevel.sampling._common import (
    EpochSampler,
    check_sampling_ratio,
    data_length,
    draw_count,
    epoch_generator,
)
from bilevel.sampling.soft_random import soft_random_indices


class DistributedSoftRandomSampler(EpochSampler):
    r"""SRS across ``num_replicas`` ranks, the way ``DistributedSampler`` shards full epochs.

    Every rank computes the same epoch draw from ``(seed, epoch)``: the $n = \lceil sN \rceil$
    i.i.d. uniform indices of `SoftRandomSampler` with the same seed. Rank ``r`` takes positions
    ``r, r + W, r + 2W, …`` of it ($W$ = ``num_replicas``), so the ranks' shares are disjoint
    *positions* of one draw (the same item may still appear on two ranks, as it may twice on one).

    When $W$ does not divide $n$:

    - ``drop_last=False`` (default): the draw is *extended* with $\lceil n/W \rceil W - n < W$
      further i.i.d. uniform draws from the same generator. Since SRS draws are i.i.d., the padded epoch
      is still an exact SRS draw (of a slightly larger size), unlike ``DistributedSampler``'s padding by
      repetition. Each rank gets $\lceil n/W \rceil$ indices.
    - ``drop_last=True``: the draw is truncated to $\lfloor n/W \rfloor W$ positions; each rank gets
      $\lfloor n/W \rfloor$ indices (an error if that is 0).

    Args:
        data_source_or_length: the data set or its length $N$.
        ratio: the sampling ratio $s > 0$.
        num_replicas: world size $W$ (default: from the initialised process group).
        rank: this rank (default: from the process group).
        seed: the base seed; it must be the same int on every rank.
        drop_last: truncate instead of extending (see above).

    Call ``set_epoch(e)`` at the start of every epoch on every rank (as with ``DistributedSampler``);
    without it each iteration advances to the next epoch, which stays consistent across ranks as long
    as every rank iterates the same number of times.
    """

    def __init__(
        self,
        data_source_or_length: Any,
        ratio: float,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        drop_last: bool = False,
    ):
        length = data_length(data_source_or_length)
        if num_replicas is None or rank is None:
            if not (dist.is_available() and dist.is_initialized()):
                raise RuntimeError(
                    "num_replicas and rank are required when torch.distributed is not initialised"
                )
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        self.num_replicas = check_int(num_replicas, "num_replicas", low=1)
        self.rank = check_int(rank, "rank", low=0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"rank must be in [0, {self.num_replicas - 1}], got {self.rank}")
        check_int(seed, "seed")
        self.ratio = check_sampling_ratio(ratio, "ratio", allow_above_one=True)
        self.drop_last = bool(drop_last)
        self.draws = draw_count(length, self.ratio)
        if self.drop_last:
            self.num_samples = self.draws // self.num_replicas
            if self.num_samples == 0:
                raise ValueError(
                    f"drop_last=True leaves no sample per rank: ⌈ratio·N⌉ = {self.draws} < "
                    f"num_replicas = {self.num_replicas}"
                )
        else:
            self.num_samples = math.ceil(self.draws / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        super().__init__(length, seed & ((1 << 63) - 1))

    def __len__(self) -> int:
        return self.num_samples

    def global_indices(self, epoch: int | None = None) -> Tensor:
        """The whole (extended or truncated) epoch draw that the ranks share, of size ``total_size``."""
        e = self._epoch_arg(epoch)
        g = epoch_generator(self.seed, e)
        full = soft_random_indices(self.length, self.draws, g)
        if self.total_size > self.draws:
            full = torch.cat([full, soft_random_indices(self.length, self.total_size - self.draws, g)])
        return full[: self.total_size]

    def indices(self, epoch: int | None = None) -> Tensor:
        """This rank's share of epoch ``epoch``'s draw."""
        return self.global_indices(epoch)[self.rank : self.total_size : self.num_replicas]
