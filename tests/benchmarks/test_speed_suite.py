"""The pytest-benchmark speed suite (benchmarks/speed/): it covers every family, stays out of ``make test``,
and (slow) every benchmark runs once."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEED = ROOT / "benchmarks" / "speed"


def _pytest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(SPEED), "-p", "no:xdist", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_speed_suite_covers_every_family() -> None:
    mods = [importlib.import_module(f"benchmarks.speed.{p.stem}") for p in sorted(SPEED.glob("test_*.py"))]
    names = {n for m in mods for n in dir(m) if n.startswith("test_")}
    for needle in (
        "test_penalty_bgd_step_mlp",
        "test_equilibrium_step",
        "test_aggregator",
        "test_modo",
        "test_soft_random_sampler_epoch",
        "test_bucket_batch_sampler_epoch",
        "test_conformer_ctc_tiny_forward_backward",
    ):
        assert needle in names, f"no speed benchmark {needle}"
    aggregators = importlib.import_module("benchmarks.speed.test_aggregators").test_aggregator
    params = {a for mark in aggregators.pytestmark if mark.args[0] == "name" for a in mark.args[1]}
    assert params == {"MGDA", "CAGrad", "PCGrad"}


def test_speed_suite_is_not_in_the_default_test_paths(pytestconfig: pytest.Config) -> None:
    paths = [(ROOT / p).resolve() for p in pytestconfig.getini("testpaths")]
    assert paths and all(SPEED != p and SPEED not in p.parents and p not in SPEED.parents for p in paths)


@pytest.mark.slow
def test_every_speed_benchmark_runs_once() -> None:
    out = _pytest("--benchmark-disable")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
