"""The shared timing helper: interleaving order, per-call times, medians and ratios (on a fake clock)."""

from __future__ import annotations

import pytest

from benchmarks import timing
from benchmarks.timing import interleave, interleaved_medians


class FakeClock:
    """perf_counter that only advances when a timed function says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", c)
    return c


def _fns(clock: FakeClock, calls: list[str], costs: dict[str, list[float]]):
    def make(name: str):
        it = iter(costs[name])

        def f() -> None:
            calls.append(name)
            clock.now += next(it)

        return f

    return {k: make(k) for k in costs}


def test_interleave_alternates_order_and_divides_by_calls(clock) -> None:
    calls: list[str] = []
    # a costs 2, 2, 2, ... and b 1, 1, ...; each round calls each 3 times after 1 warm-up round
    fns = _fns(clock, calls, {"a": [2.0] * 100, "b": [1.0] * 100})
    t = interleave(fns, repeats=4, warmup=1, calls=3)
    assert calls[:2] == ["a", "b"]  # warm-up in the given order
    rounds = [calls[2 + 6 * r : 2 + 6 * (r + 1)] for r in range(4)]
    assert rounds == [["a"] * 3 + ["b"] * 3, ["b"] * 3 + ["a"] * 3] * 2
    assert t.seconds == {"a": [2.0] * 4, "b": [1.0] * 4}  # per call, not per round
    assert t.ratio("a", "b") == 2.0 and t.median_paired_ratio("a", "b") == 2.0


def test_interleave_fixed_order_and_after_round(clock) -> None:
    calls: list[str] = []
    seen: list[int] = []
    fns = _fns(clock, calls, {"a": [1.0, 3.0, 5.0], "b": [1.0, 1.0, 4.0]})
    t = interleave(fns, repeats=3, warmup=0, alternate=False, after_round=seen.append)
    assert calls == ["a", "b"] * 3 and seen == [0, 1, 2]
    # ratio of medians (3 / 1) differs from the median of paired ratios (median of 1, 3, 1.25)
    assert t.ratio("a", "b") == 3.0
    assert t.paired_ratios("a", "b") == [1.0, 3.0, 1.25] and t.median_paired_ratio("a", "b") == 1.25


def test_summary_in_milliseconds(clock) -> None:
    calls: list[str] = []
    fns = _fns(clock, calls, {"a": [0.001, 0.004, 0.002, 0.003, 0.005]})
    s = interleaved_medians(fns, repeats=5, warmup=0)["a"]
    assert s["median_ms"] == pytest.approx(3.0, rel=1e-12)
    assert s["min_ms"] == pytest.approx(1.0, rel=1e-12)
    assert s["q1_ms"] <= s["median_ms"] <= s["q3_ms"]


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"repeats": 0}, "repeats"), ({"repeats": 1, "calls": 0}, "calls")]
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        interleave({"a": lambda: None}, **kwargs)
