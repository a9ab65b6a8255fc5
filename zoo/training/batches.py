"""Endless, resumable streams of collated batches drawn by a [`bilevel.sampling`][bilevel.sampling] batch
sampler.

The zoo batches the way a user of the library would: a
[`bilevel.sampling.BucketBatchSampler`][bilevel.sampling.BucketBatchSampler] over
an epoch sampler ([`ShuffledSampler`][bilevel.sampling.ShuffledSampler] for full epochs,
[`SoftRandomSampler`][bilevel.sampling.SoftRandomSampler] for SRS,
[`FixedSubsetSampler`][bilevel.sampling.FixedSubsetSampler] for a
subset) gives each epoch's batches as a pure function of its seed and the epoch. `Batches` walks
them epoch after epoch; its state is the sampler's state plus the position inside the current epoch, so
a resumed run sees exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bilevel.sampling import BucketBatchSampler, EpochSampler, ShuffledSampler, SoftRandomSampler
from zoo.checks import check_int

__all__ = ["BatchSource", "Batches", "item_lengths"]

Collate = Callable[[list[Any]], Any]


class BatchSource(Protocol):
    """What the training loop draws from: the batch of global step ``step``, and a resumable state."""

    def batch(self, step: int) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def item_lengths(items: Sequence[Any]) -> list[int]:
    """Frames of every item: ``items.lengths`` when the data set has them, else ``len(item["feats"])``."""
    lengths = getattr(items, "lengths", None)
    if lengths is not None:
        return [int(n) for n in lengths]
    return [int(items[i]["feats"].shape[0]) for i in range(len(items))]


class Batches:
    """Batches of ``dataset`` in the order of ``sampler``, epoch after epoch, without end.

    Args:
        dataset: indexable items.
        sampler: a [`bilevel.sampling.BucketBatchSampler`][bilevel.sampling.BucketBatchSampler]; `shuffled()`
            builds the usual one.
        collate: turns a list of items into a batch.

    Implements `BatchSource` (``batch(step)`` is the next batch). ``state_dict`` holds the sampler's
    state and the position in the current epoch.
    """

    def __init__(self, dataset: Sequence[Any], sampler: BucketBatchSampler, collate: Collate) -> None:
        if len(dataset) == 0:
            raise ValueError("dataset must not be empty")
        if not isinstance(sampler, BucketBatchSampler):
            raise TypeError(f"sampler must be a bilevel.sampling.BucketBatchSampler, got {type(sampler)}")
        self.dataset, self.sampler, self.collate = dataset, sampler, collate
        self.position = 0
        self.rank, self.world_size = 0, 1
        self._cache: tuple[int, list[list[int]]] | None = None

    @classmethod
    def shuffled(
        cls,
        dataset: Sequence[Any],
        batch_size: int,
        collate: Collate,
        *,
        seed: int = 0,
        lengths: Sequence[int] | None = None,
        pool_batches: int = 50,
        drop_last: bool = False,
        ratio: float | None = None,
    ) -> Batches:
        """The usual stream: full shuffled epochs (or SRS with ``ratio``), length-bucketed in pools of
        ``pool_batches`` batches (``pool_batches=1``: no bucketing, i.e. random batches)."""
        check_int(batch_size, "batch_size", low=1)
        check_int(pool_batches, "pool_batches", low=1)
        n = len(dataset)
        inner: EpochSampler = (
            ShuffledSampler(n, generator=seed)
            if ratio is None
            else SoftRandomSampler(n, ratio, generator=seed)
        )
        bs = min(batch_size, n)
        sampler = BucketBatchSampler(
            inner,
            list(lengths) if lengths is not None else item_lengths(dataset),
            batch_size=bs,
            pool_size=pool_batches * bs,
            drop_last=drop_last,
        )
        return cls(dataset, sampler, collate)

    def shard(self, rank: int, world_size: int) -> Batches:
        """Keep shard ``rank`` of ``world_size`` of every batch (``indices[rank::world_size]``): every rank
        walks the same global batches and takes its own part. Returns ``self``."""
        check_int(world_size, "world_size", low=1)
        if not 0 <= check_int(rank, "rank", low=0) < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if self.sampler.batch_size is not None and self.sampler.batch_size < world_size:
            raise ValueError(f"batch_size {self.sampler.batch_size} is smaller than world_size {world_size}")
        self.rank, self.world_size = rank, world_size
        return self

    @property
    def batch_size(self) -> int | None:
        return self.sampler.batch_size

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def _epoch_batches(self) -> list[list[int]]:
        e = self.sampler.epoch
        if self._cache is None or self._cache[0] != e:
            self._cache = (e, self.sampler.batches(e))
        return self._cache[1]

    def next_indices(self) -> list[int]:
        """The item indices of the next batch (advances the stream)."""
        for _ in range(2):
            batches = self._epoch_batches()
            if self.position < len(batches):
                idx = batches[self.position]
                self.position += 1
                return idx
            self.sampler.set_epoch(self.sampler.epoch + 1)
            self.position = 0
        raise ValueError("the sampler gives no batch in an epoch (drop_last with too few items?)")

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> Any:
        idx = self.next_indices()[self.rank :: self.world_size]
        if not idx:
            raise ValueError(f"a batch has fewer items than world_size={self.world_size}")
        return self.collate([self.dataset[i] for i in idx])

    def batch(self, step: int) -> Any:
        """The next batch (every step draws one)."""
        return next(self)

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.position = check_int(state["position"], "state['position']", low=0)
        self._cache = None
