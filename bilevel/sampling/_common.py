"""Shared pieces of the epoch samplers: argument checks, the draw size ⌈sN⌉, per-epoch seeding, and the
:class:`EpochSampler` base class (epoch counter, ``set_epoch``, ``state_dict``)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from numbers import Integral
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Sampler

from bilevel._checks import check_int, check_real

_MASK64 = (1 << 64) - 1
# A relative tolerance on s·N before the ceiling, so that 0.3·10 (= 3.0000000000000004 in binary) gives 3.
_CEIL_RTOL = 1e-12


def data_length(data_source_or_length: Any, name: str = "data_source_or_length") -> int:
    """Number of items: an ``int`` is the length, a ``Sized`` object gives ``len()``; must be >= 1."""
    if isinstance(data_source_or_length, bool):
        raise TypeError(f"{name} must be a data set (with len()) or a positive int, got bool")
    if isinstance(data_source_or_length, Integral):
        n = int(data_source_or_length)
    elif isinstance(data_source_or_length, Sized):
        n = len(data_source_or_length)
    else:
        raise TypeError(
            f"{name} must be a data set (with len()) or a positive int, "
            f"got {type(data_source_or_length).__name__}"
        )
    if n < 1:
        raise ValueError(f"{name} is empty (length {n}); a sampler needs at least one item")
    return n


def draw_count(length: int, ratio: float) -> int:
    """The epoch size n = ⌈ratio·length⌉ (at least 1), robust to binary rounding of ratio·length."""
    x = ratio * length
    return max(1, math.ceil(x - _CEIL_RTOL * x))


def check_sampling_ratio(ratio: Any, name: str = "ratio", *, allow_above_one: bool) -> float:
    """``ratio`` in (0, 1], or in (0, ∞) when ``allow_above_one`` (with-replacement sampling)."""
    high = None if allow_above_one else 1.0
    r = check_real(ratio, name, low=0.0, high=high, low_open=True)
    return r


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed that depends on ``seed`` and every key (splitmix64 chaining); distinct keys give
    statistically independent torch generators."""
    h = _splitmix64(seed & _MASK64)
    for k in keys:
        h = _splitmix64(h ^ (k & _MASK64))
    return h & ((1 << 63) - 1)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A fresh CPU generator for ``epoch`` (and an optional sub-``stream``) derived from ``seed``."""
    return torch.Generator().manual_seed(mix_seed(seed, epoch, stream))


def resolve_seed(generator: torch.Generator | int | None, name: str = "generator") -> int:
    """The base seed of a sampler.

    An ``int`` is used as is; a ``torch.Generator`` gives one 63-bit draw (so a seeded generator gives a
    reproducible sampler); ``None`` draws from torch's global RNG (reproducible under ``torch.manual_seed``).
    """
    if isinstance(generator, bool):
        raise TypeError(f"{name} must be a torch.Generator, an int seed or None, got bool")
    if isinstance(generator, int):
        return generator & ((1 << 63) - 1)
    if generator is None:
        return int(torch.empty((), dtype=torch.int64).random_().item())
    if isinstance(generator, torch.Generator):
        return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())
    raise TypeError(f"{name} must be a torch.Generator, an int seed or None, got {type(generator).__name__}")


class EpochSampler(Sampler[int]):
    """Base class: a sampler whose order in epoch ``e`` is a pure function of ``(seed, e)``.

    Subclasses implement :meth:`indices`. Iterating draws the indices of the current epoch and then
    advances the epoch counter, so a plain ``for epoch in ...: for batch in loader`` loop gets a fresh draw
    every epoch; :meth:`set_epoch` (as with ``DistributedSampler``) pins the epoch explicitly.
    ``state_dict`` holds the seed and the next epoch, so a run resumed at an epoch boundary sees exactly
    the draws of the uninterrupted run.
    """

    def __init__(self, length: int, seed: int) -> None:
        self.length = length
        self.seed = seed
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will draw."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration draw epoch ``epoch`` (a non-negative int)."""
        self._epoch = check_int(epoch, "epoch", low=0)

    def indices(self, epoch: int | None = None) -> Tensor:  # pragma: no cover - abstract
        """The int64 indices of ``epoch`` (default: the current epoch), without advancing the counter."""
        raise NotImplementedError

    def _epoch_arg(self, epoch: int | None) -> int:
        return self._epoch if epoch is None else check_int(epoch, "epoch", low=0)

    def __iter__(self) -> Iterator[int]:
        idx = self.indices(self._epoch)
        self._epoch += 1
        yield from idx.tolist()

    def state_dict(self) -> dict[str, int]:
        """``{"seed", "epoch"}``: enough to replay every later epoch exactly."""
        return {"seed": self.seed, "epoch": self._epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore :meth:`state_dict` output."""
        for key in ("seed", "epoch"):
            if key not in state:
                raise KeyError(f"state_dict is missing {key!r}")
        self.seed = check_int(state["seed"], "state['seed']")
        self._epoch = check_int(state["epoch"], "state['epoch']", low=0)
