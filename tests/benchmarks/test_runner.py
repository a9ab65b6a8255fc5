"""The claim runner: worker processes give the same records as one process; timing claims run last,
alone, in the main process; a worker that dies is reported, never hidden."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

from benchmarks.claims import load_all
from benchmarks.harness import REGISTRY, select
from benchmarks.runner import plan, run_claims


@pytest.fixture
def runner_claims():
    load_all()
    before = dict(REGISTRY)
    sys.modules.pop("tests.benchmarks._runner_claims", None)
    importlib.import_module("tests.benchmarks._runner_claims")
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def test_plan_groups_by_module_and_puts_timing_claims_last(runner_claims, tmp_path: Path) -> None:
    groups, timed = plan(select(["zz_runner", "zz_runner_crash"]), tmp_path)
    assert [c.name for c in timed] == ["zz_runner.t"]
    assert [len(g) for g in groups] == [4]  # one module: a0, a1, a2 and the crash claim, in one group
    assert all(len({c.module for c in g}) == 1 for g in groups)


def test_workers_reproduce_the_serial_records(runner_claims, tmp_path: Path) -> None:
    claims = select(["zz_runner"])
    seen: list[str] = []
    serial = run_claims(claims, jobs=1, full=False, seed=7, out_dir=tmp_path / "s", show_progress=False)
    parallel = run_claims(
        claims, jobs=2, full=False, seed=7, out_dir=tmp_path / "p", report=lambda r: seen.append(r.name)
    )
    assert [r.name for r in serial] == [r.name for r in parallel] == sorted(c.name for c in claims)
    for a, b in zip(serial, parallel, strict=True):
        assert a.verdict == b.verdict == "holds"
        assert a.details["x"] == b.details["x"]  # the same seeded draws: a path against itself
    by = {r.name: r for r in parallel}
    assert by["zz_runner.t"].details["pid"] == os.getpid()  # the timing claim ran here ...
    assert seen[-1] == "zz_runner.t"  # ... after every other claim
    workers = {by[f"zz_runner.a{i}"].details["pid"] for i in range(3)}
    assert len(workers) == 1 and os.getpid() not in workers  # one module: one worker process
    assert [by[f"zz_runner.a{i}"].details["calls_here"] for i in range(3)] == [1, 2, 3]
    assert [len(by[f"zz_runner.a{i}"].details["x"]) for i in range(3)] == [4, 5, 6]  # each its own budget
    assert (tmp_path / "p" / "claims" / "zz_runner.a1.json").is_file()


def test_a_dying_worker_is_reported_as_an_error(runner_claims, tmp_path: Path) -> None:
    recs = run_claims(select(["zz_runner_crash"]), jobs=2, full=False, seed=0, out_dir=tmp_path)
    assert [r.verdict for r in recs] == ["error"]
    assert "worker process" in (recs[0].error or "")
    assert (tmp_path / "claims" / "zz_runner_crash.c.json").is_file()


def test_jobs_must_be_positive(runner_claims, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        run_claims(select(["zz_runner"]), jobs=0, full=False, seed=0, out_dir=tmp_path)
