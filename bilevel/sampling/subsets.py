"""The comparison samplers of the SRS benchmarks: full shuffled epochs, a fresh subset without replacement
each epoch, and a fixed subset chosen once (a static subset or a coreset)."""

from __future__ import annotations

from collections.abc import Sequence
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

_SUBSET_STREAM = 1  # the fixed subset is drawn from its own stream, independent of every epoch's order


class FreshSubsetSampler(EpochSampler):
    r"""A fresh subset of $m = \lceil sN \rceil$ *distinct* indices each epoch (without replacement).

    The "subset without replacement" alternative to SRS: every epoch visits exactly $m$ distinct
    items, so per-epoch coverage is exactly $m/N$ and an item stays unseen for $T$ epochs with
    probability $(1 - m/N)^T$.

    Args:
        data_source_or_length: the data set or its length $N$.
        ratio: $s \in (0, 1]$.
        generator: an int seed, a seeded ``torch.Generator`` or ``None`` (see `SoftRandomSampler`).
    """

    def __init__(
        self, data_source_or_length: Any, ratio: float, generator: torch.Generator | int | None = None
    ):
        length = data_length(data_source_or_length)
        self.ratio = check_sampling_ratio(ratio, "ratio", allow_above_one=False)
        self.num_samples = draw_count(length, self.ratio)
        super().__init__(length, resolve_seed(generator))

    def __len__(self) -> int:
        return self.num_samples

    def indices(self, epoch: int | None = None) -> Tensor:
        """Epoch ``epoch``'s subset in visiting order (a prefix of a random permutation)."""
        e = self._epoch_arg(epoch)
        return torch.randperm(self.length, generator=epoch_generator(self.seed, e))[: self.num_samples]


class ShuffledSampler(FreshSubsetSampler):
    """Full epochs: every item once per epoch in a fresh random order (``ratio = 1`` without replacement).

    Unlike ``RandomSampler(shuffle=True)``, epoch ``e``'s order is a pure function of the seed and ``e``
    (``set_epoch``, exact resume).
    """

    def __init__(self, data_source_or_length: Any, generator: torch.Generator | int | None = None):
        super().__init__(data_source_or_length, 1.0, generator)


class FixedSubsetSampler(EpochSampler):
    r"""A subset chosen once and revisited every epoch (a static subset or a coreset).

    Either ``ratio`` (a uniformly random subset of $\lceil sN \rceil$ distinct items, drawn once from
    the seed) or ``indices`` (e.g. a coreset from k-center greedy or CRAIG) must be given. Each epoch visits
    the subset in a fresh random order (``shuffle=True``) or in the given order. Items outside the subset
    are never seen.

    Args:
        data_source_or_length: the data set or its length $N$.
        ratio: $s \in (0, 1]$ for a random subset.
        indices: explicit subset (distinct ints in ``[0, N)``), instead of ``ratio``.
        generator: an int seed, a seeded ``torch.Generator`` or ``None``.
        shuffle: reshuffle the subset each epoch.
    """

    def __init__(
        self,
        data_source_or_length: Any,
        ratio: float | None = None,
        *,
        indices: Sequence[int] | Tensor | None = None,
        generator: torch.Generator | int | None = None,
        shuffle: bool = True,
    ):
        length = data_length(data_source_or_length)
        super().__init__(length, resolve_seed(generator))
        if (ratio is None) == (indices is None):
            raise ValueError("FixedSubsetSampler needs exactly one of ratio= or indices=")
        self.shuffle = bool(shuffle)
        if indices is not None:
            self.subset = _check_subset(indices, length)
            self.ratio = len(self.subset) / length
        else:
            self.ratio = check_sampling_ratio(ratio, "ratio", allow_above_one=False)
            m = draw_count(length, self.ratio)
            g = epoch_generator(self.seed, 0, _SUBSET_STREAM)
            self.subset = torch.randperm(length, generator=g)[:m].sort().values

    def __len__(self) -> int:
        return len(self.subset)

    def indices(self, epoch: int | None = None) -> Tensor:
        """The subset in epoch ``epoch``'s visiting order."""
        e = self._epoch_arg(epoch)
        if not self.shuffle:
            return self.subset.clone()
        return self.subset[torch.randperm(len(self.subset), generator=epoch_generator(self.seed, e))]


def _check_subset(indices: Any, length: int) -> Tensor:
    t = torch.as_tensor(indices)
    if t.numel() == 0:
        raise ValueError("indices is empty; a fixed subset needs at least one item")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"indices must be integers, got dtype {t.dtype}")
    t = t.to(torch.int64).reshape(-1)
    if int(t.min()) < 0 or int(t.max()) >= length:
        raise ValueError(f"indices must lie in [0, {length}), got range [{int(t.min())}, {int(t.max())}]")
    if t.unique().numel() != t.numel():
        raise ValueError("indices must be distinct")
    return t.clone()


def k_center_greedy(
    features: Tensor, size: int, generator: torch.Generator | int | None = None
) -> tuple[list[int], int]:
    r"""The greedy k-center coreset (Sener & Savarese, ICLR 2018) of ``size`` rows of ``features``.

    Starts from a random row, then repeatedly adds the row farthest (squared Euclidean distance) from the
    rows chosen so far, a 2-approximation of $\min_S\max_i\min_{j\in S}\lVert x_i-x_j\rVert$. Use the
    indices with [`FixedSubsetSampler`][bilevel.sampling.FixedSubsetSampler] (``indices=``).

    Args:
        features: ``(N, d)`` embeddings.
        size: the coreset size $1 \le m \le N$.
        generator: seeds the first row (an int seed, a ``torch.Generator`` or ``None``).

    Returns:
        The chosen row indices in selection order and the multiply-add count of the selection ($mNd$).

    Examples:
        >>> import torch
        >>> from bilevel.sampling import k_center_greedy
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [10.0]])
        >>> sorted(k_center_greedy(x, 3, generator=torch.Generator().manual_seed(0))[0])
        [0, 2, 3]
    """
    if not isinstance(features, Tensor) or features.dim() != 2 or features.shape[0] == 0:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"features must be a non-empty (N, d) tensor, got {shape}")
    n, d = features.shape
    check_int(size, "size", low=1)
    if size > n:
        raise ValueError(f"size must be <= the number of rows {n}, got {size}")
    gen = generator if isinstance(generator, torch.Generator) else None
    if gen is None:
        gen = torch.Generator().manual_seed(resolve_seed(generator))
    first = int(torch.randint(n, (1,), generator=gen))
    chosen = [first]
    dist = ((features - features[first]) ** 2).sum(1)
    macs = n * d
    for _ in range(size - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = torch.minimum(dist, ((features - features[nxt]) ** 2).sum(1))
        macs += n * d
    return chosen, macs
