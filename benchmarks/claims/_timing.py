"""Robust side-by-side timing and saved-tensor memory measurement for the meta-learning claims."""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch


def interleaved_medians(
    fns: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 1, progress: Callable[[Any], Any] = iter
) -> dict[str, dict[str, float]]:
    """Median and IQR (ms) of each function, timed in interleaved rounds so load drifts hit all alike."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in progress(range(repeats)):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))
        for k in order:
            t0 = time.perf_counter()
            fns[k]()
            times[k].append((time.perf_counter() - t0) * 1e3)
    out = {}
    for k, v in times.items():
        q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0]] * 3
        out[k] = {"median_ms": statistics.median(v), "q1_ms": q[0], "q3_ms": q[2], "min_ms": min(v)}
    return out


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
