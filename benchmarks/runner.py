"""Running the claims: in this process, or in worker processes with one claim module per worker.

* The claims of one module run in order in one process, so a module may share a cached measurement
  (a trained model, say) between its claims.
* Modules run side by side in ``jobs`` worker processes, the longest first (by the ``seconds`` of the
  records a previous run left in ``out/claims``, else of the suite run published in the docs).
* Claims registered with ``timing=True`` (their verdict rests on wall-clock ratios) run last, one at a
  time, in this process, with no other claim competing for the cores.

Every record is written to ``out/claims/<name>.json`` as soon as its claim finishes, and the report is
rewritten after each one, so an interrupted run still leaves both.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing as mp
import queue
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from benchmarks.claims import load_all
from benchmarks.harness import REGISTRY, Claim, Record, run_claim, write_record
from benchmarks.publish import read_records

__all__ = ["plan", "run_claims"]

Report = Callable[[Record], None]


def _previous_seconds(out_dir: Path, name: str, published: Mapping[str, Any]) -> float:
    """The claim's time in the last run into ``out_dir``, else in the published suite run, else 0."""
    try:
        return float(json.loads((out_dir / "claims" / f"{name}.json").read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return float(published[name]["seconds"])
    except (KeyError, ValueError, TypeError):
        return 0.0


def plan(claims: list[Claim], out_dir: Path) -> tuple[list[list[Claim]], list[Claim]]:
    """Split ``claims`` into per-module groups (longest expected first) and the timing claims."""
    timed = [c for c in claims if c.timing]
    groups: dict[str, list[Claim]] = {}
    for c in claims:
        if not c.timing:
            groups.setdefault(c.module, []).append(c)
    try:
        published = read_records().get("claims", {})
    except (OSError, ValueError):  # no usable published run: no estimates from it
        published = {}
    cost = {m: sum(_previous_seconds(out_dir, c.name, published) for c in cs) for m, cs in groups.items()}
    order = sorted(groups, key=lambda m: (-cost[m], m))
    return [groups[m] for m in order], timed


def _run_group(
    module: str, names: list[str], full: bool, seed: int, out_dir: str, threads: int, q: queue.Queue
) -> None:
    """Worker: run the named claims of ``module`` in order, sending each record as it is written."""
    torch.set_num_threads(threads)
    load_all()
    importlib.import_module(module)  # a claim module outside benchmarks.claims registers on import
    for name in names:
        rec = run_claim(REGISTRY[name], full=full, seed=seed, out_dir=Path(out_dir), show_progress=False)
        write_record(rec, Path(out_dir))
        q.put(rec)


def _crashed(c: Claim, full: bool, seed: int, err: str) -> Record:
    return Record(c.name, c.title, c.statement, c.paper, "error", "—", "—", 0.0, full, seed, [], {}, "", err)


def run_claims(
    claims: list[Claim],
    *,
    jobs: int,
    full: bool,
    seed: int,
    out_dir: Path,
    threads: int = 1,
    show_progress: bool = True,
    report: Report | None = None,
) -> list[Record]:
    """Run ``claims`` (see the module docstring) and return their records in name order.

    ``report(record)`` is called in this process as each claim finishes (printing, the bar, the
    report file). With ``jobs <= 1`` everything runs here, in name order, with progress bars.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    done: list[Record] = []

    def finish(rec: Record) -> None:
        done.append(rec)
        if report is not None:
            report(rec)

    if jobs == 1:
        for c in claims:
            rec = run_claim(c, full=full, seed=seed, out_dir=out_dir, show_progress=show_progress)
            write_record(rec, out_dir)
            finish(rec)
        return sorted(done, key=lambda r: r.name)
    groups, timed = plan(claims, out_dir)
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no forked torch thread pools
    with ctx.Manager() as manager, ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        q = manager.Queue()
        futures: dict[Future[None], list[Claim]] = {
            pool.submit(_run_group, g[0].module, [c.name for c in g], full, seed, str(out_dir), threads, q): g
            for g in groups
        }
        pending = dict(futures)
        while pending or not q.empty():
            try:
                finish(q.get(timeout=0.5))
            except queue.Empty:
                pass
            for fut in [f for f in pending if f.done()]:
                group = pending.pop(fut)
                exc = fut.exception()
                if exc is not None:  # the worker died: its unfinished claims are reported as errors
                    while not q.empty():
                        finish(q.get())
                    seen = {r.name for r in done}
                    err = "".join(traceback.format_exception(exc))
                    for c in group:
                        if c.name not in seen:
                            rec = _crashed(c, full, seed, f"the worker process running it failed:\n{err}")
                            write_record(rec, out_dir)
                            finish(rec)
    for c in timed:
        rec = run_claim(c, full=full, seed=seed, out_dir=out_dir, show_progress=show_progress)
        write_record(rec, out_dir)
        finish(rec)
    return sorted(done, key=lambda r: r.name)
