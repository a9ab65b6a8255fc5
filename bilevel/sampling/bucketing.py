"""Length-bucketing batch sampler for variable-length data (speech), on top of any epoch sampler."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from bilevel.checks import check_int
from bilevel.sampling._common import EpochCursor, EpochSampler, epoch_generator, load_cursor_state

_BATCH_ORDER_STREAM = 2


def bucket_batches(
    indices: Tensor,
    lengths: Tensor,
    *,
    batch_size: int | None = None,
    max_tokens: int | None = None,
    pool_size: int,
    drop_last: bool = False,
) -> list[list[int]]:
    """Cut an index sequence into length-homogeneous batches (the functional core of
    `BucketBatchSampler`).

    ``indices`` is split into consecutive pools of ``pool_size``; each pool is sorted by ``lengths`` (stable)
    and cut greedily into batches of at most ``batch_size`` items and at most ``max_tokens`` padded tokens
    (``len(batch) * max length in batch``). An item longer than ``max_tokens`` forms a batch of its own.
    With ``drop_last``, batches with fewer than ``batch_size`` items are dropped.
    """
    batches: list[list[int]] = []
    idx = indices.tolist()
    lens = lengths[indices].tolist() if len(idx) else []
    for start in range(0, len(idx), pool_size):
        pool = sorted(range(start, min(start + pool_size, len(idx))), key=lens.__getitem__)
        cur: list[int] = []
        cur_max = 0
        for p in pool:
            ln = lens[p]
            new_max = max(cur_max, ln)
            full = (batch_size is not None and len(cur) >= batch_size) or (
                max_tokens is not None and cur and (len(cur) + 1) * new_max > max_tokens
            )
            if full:
                batches.append(cur)
                cur, new_max = [], ln
            cur.append(idx[p])
            cur_max = new_max
        if cur:
            batches.append(cur)
    if drop_last and batch_size is not None:
        batches = [b for b in batches if len(b) == batch_size]
    return batches


class BucketBatchSampler(Sampler[list[int]]):
    r"""Batches of similar-length items drawn from an epoch sampler (SRS or any `EpochSampler`).

    Each epoch takes the inner sampler's draw (e.g. the $\lceil sN \rceil$ with-replacement indices of
    `SoftRandomSampler`), splits it into pools of ``pool_size`` consecutive draws, sorts every pool by
    length and cuts it into batches bounded by ``batch_size`` (items) and/or ``max_tokens`` (padded frames:
    items × longest item). The batch order is then shuffled (``shuffle=True``), seeded by the inner sampler's
    seed and the epoch. Which items an epoch sees is exactly the inner sampler's draw — bucketing only
    reorders it — so SRS coverage results carry over unchanged, while padding shrinks.

    Args:
        sampler: the epoch sampler whose draw is batched; ``set_epoch`` is forwarded to it (call it on the
            batch sampler, not on ``sampler``), and ``state_dict`` holds its seed, the epoch and the number of
            that epoch's batches already yielded (a mid-epoch resume is exact).
        lengths: one non-negative integer length per item of the data set (frames, tokens…).
        batch_size: maximum items per batch.
        max_tokens: maximum ``len(batch) * max(length)`` per batch; at least one of the two bounds is needed.
        pool_size: draws sorted together (default ``64 * batch_size``, or 2048 with only ``max_tokens``).
        drop_last: drop batches with fewer than ``batch_size`` items (needs ``batch_size``).
        shuffle: shuffle the order of batches within the epoch.
    """

    def __init__(
        self,
        sampler: EpochSampler,
        lengths: Sequence[int] | Tensor | np.ndarray,
        *,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        pool_size: int | None = None,
        drop_last: bool = False,
        shuffle: bool = True,
    ):
        if not isinstance(sampler, EpochSampler):
            raise TypeError(
                "sampler must be a bilevel.sampling EpochSampler (e.g. SoftRandomSampler), "
                f"got {type(sampler).__name__}"
            )
        if batch_size is None and max_tokens is None:
            raise ValueError("BucketBatchSampler needs batch_size=, max_tokens= or both")
        self.batch_size = None if batch_size is None else check_int(batch_size, "batch_size", low=1)
        self.max_tokens = None if max_tokens is None else check_int(max_tokens, "max_tokens", low=1)
        if drop_last and self.batch_size is None:
            raise ValueError("drop_last=True needs batch_size=")
        if pool_size is None:
            pool_size = 64 * self.batch_size if self.batch_size is not None else 2048
        self.pool_size = check_int(pool_size, "pool_size", low=1)
        self.sampler = sampler
        self.lengths = _check_lengths(lengths, sampler.length)
        self.drop_last = bool(drop_last)
        self.shuffle = bool(shuffle)
        self._cursor = EpochCursor()
        self._cursor.pin(sampler.epoch)

    @property
    def epoch(self) -> int:
        """The epoch the next batch comes from (kept equal to the inner sampler's epoch)."""
        return self._cursor.epoch

    @property
    def position(self) -> int:
        """How many batches of `epoch` were already yielded."""
        return self._cursor.position

    def set_epoch(self, epoch: int) -> None:
        """Pin the epoch, as `EpochSampler.set_epoch()` (forwarded to the inner sampler)."""
        self.sampler.set_epoch(epoch)
        self._cursor.pin(epoch)

    def state_dict(self) -> dict[str, int]:
        """``{"seed", "epoch", "position"}`` with ``position`` counted in batches: a run resumed from it
        sees exactly the remaining batches of the epoch and then the same later epochs."""
        return {"seed": self.sampler.seed, "epoch": self._cursor.epoch, "position": self._cursor.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore `state_dict()` output (also into the inner sampler)."""
        seed, epoch, position = load_cursor_state(state)
        self.sampler.load_state_dict({"seed": seed, "epoch": epoch})
        size = len(self.batches(epoch)) if position else 0
        self._cursor.restore(epoch, position, size)
        self.sampler.set_epoch(self._cursor.epoch)

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The batches of epoch ``epoch`` (default: the current one), without advancing the epoch."""
        e = self._cursor.epoch if epoch is None else check_int(epoch, "epoch", low=0)
        out = bucket_batches(
            self.sampler.indices(e),
            self.lengths,
            batch_size=self.batch_size,
            max_tokens=self.max_tokens,
            pool_size=self.pool_size,
            drop_last=self.drop_last,
        )
        if self.shuffle and out:
            order = torch.randperm(
                len(out), generator=epoch_generator(self.sampler.seed, e, _BATCH_ORDER_STREAM)
            )
            out = [out[i] for i in order.tolist()]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._cursor.run(self.batches):
            self.sampler.set_epoch(self._cursor.epoch)
            yield batch
        self.sampler.set_epoch(self._cursor.epoch)

    def __len__(self) -> int:
        n = len(self.sampler)
        if self.max_tokens is None and self.batch_size is not None:
            b, p = self.batch_size, self.pool_size
            full_pools, rest = divmod(n, p)
            per = (p // b) if self.drop_last else -(-p // b)
            tail = (rest // b) if self.drop_last else -(-rest // b)
            return full_pools * per + tail
        return len(self.batches())


def _check_lengths(lengths: Any, n: int) -> Tensor:
    if isinstance(lengths, Tensor):
        if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
        t = lengths.detach().cpu()
    else:
        a = np.asarray(lengths)
        if a.dtype.kind not in "iu":
            raise TypeError(f"lengths must be integers, got numpy dtype {a.dtype}")
        t = torch.from_numpy(a.astype(np.int64))
    if t.dim() != 1 or t.numel() != n:
        raise ValueError(f"lengths must be 1-D with one entry per item ({n}), got shape {tuple(t.shape)}")
    if int(t.min()) < 0:
        raise ValueError(f"lengths must be non-negative, got min {int(t.min())}")
    return t.to(torch.int64)
