"""A resumable, seeded, endless stream of mini-batches (reshuffled every pass)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from zoo.losses._checks import check_int


class BatchStream:
    """Endless mini-batches of ``items``: pass ``e`` visits a permutation drawn from ``seed + e``.

    The state is three integers (seed, pass, position), so :meth:`state_dict` /
    :meth:`load_state_dict` resume the exact batch sequence. The last incomplete batch of a pass is
    dropped (every batch has ``batch_size`` items; ``batch_size`` is clipped to ``len(items)``).
    """

    def __init__(
        self, items: Sequence[Any], batch_size: int, collate: Callable[[list[Any]], Any], seed: int = 0
    ) -> None:
        if len(items) == 0:
            raise ValueError("items must not be empty")
        self.items = items
        self.batch_size = min(check_int(batch_size, "batch_size", low=1), len(items))
        self.collate = collate
        self.seed = int(seed)
        self.epoch = 0
        self.pos = 0
        self._perm = self._permutation()

    def _permutation(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(len(self.items), generator=g).tolist()

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Any:
        if self.pos + self.batch_size > len(self._perm):
            self.epoch += 1
            self.pos = 0
            self._perm = self._permutation()
        idx = self._perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.collate([self.items[i] for i in idx])

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.epoch, self.pos = int(state["seed"]), int(state["epoch"]), int(state["pos"])
        self._perm = self._permutation()
