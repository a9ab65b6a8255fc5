"""Soft random sampling (SRS): a fresh with-replacement draw of ⌈sN⌉ indices every epoch."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bilevel.checks import check_int
from bilevel.sampling._common import (
    EpochSampler,
    check_sampling_ratio,
    data_length,
    draw_count,
    epoch_generator,
    resolve_seed,
)


def soft_random_indices(length: int, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
    """One SRS epoch: ``num_samples`` indices drawn i.i.d. uniformly from ``{0, …, length−1}``.

    The functional core of `SoftRandomSampler`; returns an int64 tensor in draw order
    (duplicates kept, as SRS prescribes).
    """
    check_int(length, "length", low=1)
    check_int(num_samples, "num_samples", low=0)
    return torch.randint(length, (num_samples,), generator=generator, dtype=torch.int64)


class SoftRandomSampler(EpochSampler):
    r"""Soft random sampling (SRS; Cui et al., arXiv 2311.12727).

    Every epoch draws a multiset $S_e$ of $n = \lceil sN \rceil$ indices i.i.d. uniformly
    *with replacement* from the $N$ items and visits them in draw order. An epoch costs
    $sN$ samples instead of $N$; each item is seen in a given epoch with probability
    $1 - (1 - 1/N)^{n} \to 1 - e^{-s}$, and every item is eventually seen
    (see [`bilevel.theory.srs`][bilevel.theory.srs] for coverage, occupancy and convergence).

    Drop-in for ``DataLoader(ds, shuffle=True)``::

        loader = DataLoader(ds, batch_size=64, sampler=SoftRandomSampler(ds, ratio=0.3, generator=0))

    Args:
        data_source_or_length: the data set (anything with ``len()``) or its length $N$ as an int.
        ratio: the sampling ratio $s > 0$. Values above 1 are allowed (more draws than items;
            with replacement this is well defined).
        generator: an int seed, a seeded ``torch.Generator`` (one draw is taken from it for the base seed),
            or ``None`` (the base seed comes from torch's global RNG).

    Epoch ``e``'s draw depends only on the base seed and ``e``: call `set_epoch()` to pin it; otherwise
    every iteration advances to the next epoch. ``state_dict``/``load_state_dict`` resume exactly.
    """

    def __init__(
        self, data_source_or_length: Any, ratio: float, generator: torch.Generator | int | None = None
    ):
        length = data_length(data_source_or_length)
        self.ratio = check_sampling_ratio(ratio, "ratio", allow_above_one=True)
        self.num_samples = draw_count(length, self.ratio)
        super().__init__(length, resolve_seed(generator))

    def __len__(self) -> int:
        return self.num_samples

    def indices(self, epoch: int | None = None) -> Tensor:
        """Epoch ``epoch``'s draw (default: the current epoch) as an int64 tensor; no side effects."""
        e = self._epoch_arg(epoch)
        return soft_random_indices(self.length, self.num_samples, epoch_generator(self.seed, e))

    def __repr__(self) -> str:
        return f"SoftRandomSampler(length={self.length}, ratio={self.ratio}, num_samples={self.num_samples})"
