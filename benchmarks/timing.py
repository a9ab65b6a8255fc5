"""Side-by-side timing for the claims: interleaved rounds, medians and ratios from one run.

Every speed claim compares functions timed in the same process, in interleaved rounds (the order
alternates by default), so that load drifts on a shared machine hit all of them alike; it reports
medians and ratios of that one run. `SavedTensorMeter` measures the memory saved for backward.
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["SavedTensorMeter", "Timings", "interleave", "interleaved_medians", "time_once"]


@dataclass
class Timings:
    """Seconds per call of each function, one entry per round (rounds are paired across functions)."""

    seconds: dict[str, list[float]]

    def median(self, name: str) -> float:
        """Median seconds per call."""
        return statistics.median(self.seconds[name])

    def ratio(self, a: str, b: str) -> float:
        """Ratio of medians, median(a) / median(b)."""
        return self.median(a) / self.median(b)

    def paired_ratios(self, a: str, b: str) -> list[float]:
        """Per-round ratios a / b (both timed in the same round)."""
        return [x / y for x, y in zip(self.seconds[a], self.seconds[b])]

    def median_paired_ratio(self, a: str, b: str) -> float:
        """Median of the per-round ratios a / b."""
        return statistics.median(self.paired_ratios(a, b))

    def summary_ms(self) -> dict[str, dict[str, float]]:
        """Per function: median, quartiles and minimum in milliseconds."""
        out = {}
        for k, s in self.seconds.items():
            v = [1e3 * x for x in s]
            q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0]] * 3
            out[k] = {"median_ms": statistics.median(v), "q1_ms": q[0], "q3_ms": q[2], "min_ms": min(v)}
        return out


def interleave(
    fns: dict[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int = 1,
    calls: int = 1,
    alternate: bool = True,
    progress: Callable[[Iterable[int]], Iterable[int]] = iter,
    after_round: Callable[[int], Any] | None = None,
) -> Timings:
    """Time every function once per round for ``repeats`` rounds, after ``warmup`` untimed rounds.

    Args:
        fns: the functions to compare, by name (called without arguments).
        repeats: timed rounds.
        warmup: untimed rounds first (functions in the given order).
        calls: calls per function and round; the time recorded is per call.
        alternate: reverse the order every other round (so neither always runs first).
        progress: wraps the range of rounds (e.g. a progress bar).
        after_round: called with the round index after each round (e.g. to record an error curve).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    for _ in range(warmup):
        for f in fns.values():
            f()
    seconds: dict[str, list[float]] = {k: [] for k in fns}
    for r in progress(range(repeats)):
        order = list(fns) if (r % 2 == 0 or not alternate) else list(reversed(fns))
        for k in order:
            f = fns[k]
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            seconds[k].append((time.perf_counter() - t0) / calls)
        if after_round is not None:
            after_round(r)
    return Timings(seconds)


def interleaved_medians(
    fns: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 1, progress: Callable[[Any], Any] = iter
) -> dict[str, dict[str, float]]:
    """Median and IQR (ms) of each function, timed in interleaved rounds so load drifts hit all alike."""
    return interleave(fns, repeats=repeats, warmup=warmup, progress=progress).summary_ms()


def time_once(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` once; return its result and the wall-clock seconds it took."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


class _Holder:
    __slots__ = ("__weakref__", "tensor")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


class SavedTensorMeter:
    """Peak bytes of *live* tensors saved for backward (unique storages), via saved-tensor hooks.

    Each saved tensor is wrapped in a holder; the storage counts while at least one holder of it is
    alive (the autograd graph owns the holders, so freeing a graph releases its bytes).
    """

    def __init__(self) -> None:
        self.live: dict[int, list[int]] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[key]

    def _pack(self, t: torch.Tensor) -> _Holder:
        st = t.untyped_storage()
        key = st.data_ptr()
        if key not in self.live:
            self.live[key] = [st.nbytes(), 0]
            self.current += st.nbytes()
            self.peak = max(self.peak, self.current)
        self.live[key][1] += 1
        h = _Holder(t)
        weakref.finalize(h, self._release, key)
        return h

    @staticmethod
    def _unpack(h: _Holder) -> torch.Tensor:
        return h.tensor

    def measure(self, fn: Callable[[], Any]) -> int:
        """Run ``fn`` and return the peak live saved-tensor bytes during it."""
        self.live.clear()
        self.current = self.peak = 0
        with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack):
            fn()
        return self.peak
