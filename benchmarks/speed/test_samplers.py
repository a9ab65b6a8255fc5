"""One epoch of indices or batches: SoftRandomSampler (alone, in torch's BatchSampler, bucketed by
length) against torch's RandomSampler with replacement."""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, RandomSampler

from bilevel.sampling import BucketBatchSampler, SoftRandomSampler, draw_count

N, RATIO = 100_000, 0.3


def _epoch(sampler) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for _ in sampler)


def test_soft_random_sampler_epoch(benchmark) -> None:
    smp = SoftRandomSampler(N, RATIO, generator=0)
    assert benchmark(_epoch, smp) == draw_count(N, RATIO)


def test_torch_random_sampler_epoch(benchmark) -> None:
    """The reference: torch.utils.data.RandomSampler drawing the same number of indices."""
    smp = RandomSampler(
        range(N), replacement=True, num_samples=draw_count(N, RATIO), generator=torch.Generator()
    )
    assert benchmark(_epoch, smp) == draw_count(N, RATIO)


def test_soft_random_sampler_batches_of_256(benchmark) -> None:
    smp = SoftRandomSampler(N, RATIO, generator=0)
    benchmark(_epoch, BatchSampler(smp, 256, False))


def test_bucket_batch_sampler_epoch(benchmark) -> None:
    lengths = torch.randint(50, 1500, (N,), generator=torch.Generator().manual_seed(0))
    smp = BucketBatchSampler(SoftRandomSampler(N, RATIO, generator=0), lengths, batch_size=32)
    benchmark(_epoch, smp)
