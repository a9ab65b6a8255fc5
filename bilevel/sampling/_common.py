"""Shared pieces of the epoch samplers: argument checks, the draw size ⌈sN⌉, per-epoch seeding, the
resumable position within an epoch, and the `EpochSampler` base class (``set_epoch``,
``state_dict``)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from numbers import Integral
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.utils.data import Sampler

from bilevel.checks import check_int, check_real

T = TypeVar("T")
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
    """The epoch size n = ⌈ratio·length⌉ (at least 1), robust to binary rounding of ratio·length.

    Raises:
        TypeError: ``length`` is not an integer or ``ratio`` not a real number.
        ValueError: ``length < 1``, ``ratio`` not finite and > 0, or ``ratio·length`` beyond float64.
    """
    if isinstance(length, bool) or not isinstance(length, Integral):
        raise TypeError(f"length must be an int, got {type(length).__name__}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    r = check_real(ratio, "ratio", low=0.0, low_open=True)
    try:
        x = r * float(length)
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise ValueError(
            f"ratio * length overflows float64 (ratio = {r!r}, length has {len(str(length))} digits)"
        )
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


class EpochCursor:
    """Where a resumable epoch-based iterator stands: the epoch of the next element and how many elements of
    that epoch were already yielded (shared by `EpochSampler`, whose elements are indices, and
    [`BucketBatchSampler`][bilevel.sampling.BucketBatchSampler], whose elements are batches).

    ``run(draw)`` yields ``draw(epoch)[position:]``; a state taken between any two ``next()`` calls names
    exactly the next element, and after the last element of an epoch the cursor is at ``(epoch + 1, 0)``.
    A position restored by `restore()` survives one `pin()` of the same epoch (a loop that calls
    ``set_epoch(e)`` at the top of every epoch resumes exactly); any other `pin()` starts its epoch at the
    first element.

    The running epoch is iterated by a plain list iterator (no Python code per element); the position is
    read off that iterator when asked for (``len(rest) - length_hint``). Moving the cursor (`pin()`,
    `restore()` or a new `run()`) empties the list behind the running iterator, so that iterator stops:
    it is stale.
    """

    def __init__(self) -> None:
        self._epoch = 0
        self._position = 0
        self._restored = False
        # the running epoch: (epoch, its length, the list of the elements not yet yielded at the start,
        # the iterator over that list)
        self._live: tuple[int, int, list[Any], Iterator[Any]] | None = None

    def _sync(self) -> None:
        live = self._live
        if live is None:
            return
        e, n, _, it = live
        pos = n - operator.length_hint(it)
        if pos >= n:
            self._epoch, self._position, self._live = e + 1, 0, None
        else:
            self._epoch, self._position = e, pos

    def _detach(self) -> None:
        self._sync()
        if self._live is not None:
            self._live[2].clear()  # the running iterator is now exhausted: stale
            self._live = None

    @property
    def epoch(self) -> int:
        self._sync()
        return self._epoch

    @property
    def position(self) -> int:
        self._sync()
        return self._position

    def pin(self, epoch: int) -> None:
        self._detach()
        if not (self._restored and epoch == self._epoch):
            self._position = 0
        self._epoch = epoch

    def restore(self, epoch: int, position: int, size: int) -> None:
        self._detach()
        if position > size:
            raise ValueError(
                f"state['position'] must be <= {size} (the length of epoch {epoch}), got {position}"
            )
        if position == size and position > 0:  # the epoch was complete
            epoch, position = epoch + 1, 0
        self._epoch, self._position, self._restored = epoch, position, position > 0

    def run(self, draw: Callable[[int], Sequence[T]]) -> Iterator[T]:
        self._detach()
        e, start = self._epoch, self._position
        self._restored = False
        items = draw(e)
        n = len(items)
        if start >= n:
            self._epoch, self._position = e + 1, 0
            return
        # our own copy (a list slice is one): emptying it stops the iterator below
        rest = items[start:] if type(items) is list else list(items[start:])
        it = iter(rest)
        self._live = (e, n, rest, it)
        yield from it


def load_cursor_state(state: Any) -> tuple[int, int, int]:
    """``(seed, epoch, position)`` from a sampler ``state_dict`` (``position`` defaults to 0)."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
    for key in ("seed", "epoch"):
        if key not in state:
            raise KeyError(f"state_dict is missing {key!r}")
    seed = check_int(state["seed"], "state['seed']")
    epoch = check_int(state["epoch"], "state['epoch']", low=0)
    position = check_int(state.get("position", 0), "state['position']", low=0)
    return seed, epoch, position


class EpochSampler(Sampler[int]):
    """Base class: a sampler whose order in epoch ``e`` is a pure function of ``(seed, e)``.

    Subclasses implement `indices()` and ``__len__`` (the length of every epoch). Iterating yields the
    current epoch's indices from the current position and then moves on to the next epoch, so a plain
    ``for epoch in ...: for batch in loader`` loop gets a fresh draw every epoch; `set_epoch()` (as with
    ``DistributedSampler``) pins the epoch explicitly.

    ``state_dict`` holds the seed, the epoch of the next index and the number of that epoch's indices
    already yielded, so a run resumed anywhere, also in the middle of an epoch, sees exactly the indices
    of the uninterrupted run: the rest of the interrupted epoch, then the same later epochs. Under a
    ``DataLoader`` with ``num_workers=0`` the sampler has yielded exactly the indices of the batches
    consumed; with worker processes the loader prefetches, so take the state from a stateful loader
    (e.g. torchdata's ``StatefulDataLoader``) instead.
    """

    def __init__(self, length: int, seed: int) -> None:
        self.length = length
        self.seed = seed
        self._cursor = EpochCursor()

    @property
    def epoch(self) -> int:
        """The epoch the next index comes from."""
        return self._cursor.epoch

    @property
    def position(self) -> int:
        """How many indices of `epoch` were already yielded."""
        return self._cursor.position

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration draw epoch ``epoch`` (a non-negative int) from its first index, or, right
        after `load_state_dict()` of a state inside that epoch, from the restored position."""
        self._cursor.pin(check_int(epoch, "epoch", low=0))

    def indices(self, epoch: int | None = None) -> Tensor:  # pragma: no cover - abstract
        """The int64 indices of ``epoch`` (default: the current epoch), without advancing the counter."""
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover - abstract
        """The number of indices of every epoch."""
        raise NotImplementedError

    def _epoch_arg(self, epoch: int | None) -> int:
        return self._cursor.epoch if epoch is None else check_int(epoch, "epoch", low=0)

    def __iter__(self) -> Iterator[int]:
        return self._cursor.run(lambda e: self.indices(e).tolist())

    def state_dict(self) -> dict[str, int]:
        """``{"seed", "epoch", "position"}``: enough to replay the rest of the run exactly."""
        return {"seed": self.seed, "epoch": self._cursor.epoch, "position": self._cursor.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore `state_dict()` output (a state without ``"position"`` starts its epoch afresh)."""
        seed, epoch, position = load_cursor_state(state)
        self.seed = seed
        self._cursor.restore(epoch, position, len(self))
