"""Claims for the runner tests: imported by the test and, under spawn, by each worker process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from benchmarks.harness import Budget, Outcome, claim


@dataclass(frozen=True)
class DrawBudget(Budget):
    n: int = 5


_CALLS: list[int] = []


def draw(b: DrawBudget) -> dict:
    _CALLS.append(b.n)  # counts the measurements made in this process (module caches share it)
    x = torch.rand(b.n, generator=b.generator())
    return {"x": x.tolist(), "pid": os.getpid(), "calls_here": len(_CALLS)}


def judge(d: dict) -> Outcome:
    return Outcome(
        holds=all(0 <= v < 1 for v in d["x"]), measured=f"{d['x'][0]:.6f}", tolerance="in [0, 1)", details=d
    )


def crash(b: Budget) -> dict:
    os._exit(3)  # the worker process dies without a Python exception


for i in range(3):
    claim(
        f"zz_runner.a{i}",
        title="a",
        statement="draws",
        measure=draw,
        verdict=judge,
        quick=DrawBudget(n=4 + i),
    )
claim(
    "zz_runner.t", title="t", statement="timing", measure=draw, verdict=judge, quick=DrawBudget(), timing=True
)
claim("zz_runner_crash.c", title="c", statement="crashes", measure=crash, verdict=judge)
