"""The benchmark harness: every benchmark is a named *claim* that returns a verdict.

A claim is a function ``fn(ctx) -> Outcome`` registered with :func:`claim`. The harness runs it,
times it, records a JSON file per claim and writes ``report.md`` with the verdict (holds / falls
short / error), the measured figure, the tolerance and the figures the claim drew.

Writing a claim::

    from benchmarks.harness import Context, Outcome, claim

    @claim("penalty.path", title="Penalty path", issue=2,
           statement="The minimiser of F_γ is ... for γ in {1, 10, 100}.")
    def penalty_path(ctx: Context) -> Outcome:
        steps = 20_000 if ctx.full else 2_000
        ...
        fig, ax = plt.subplots(); ...; ctx.save_figure(fig, "penalty_path")
        return Outcome(holds=err < 1e-6, measured=f"max error {err:.2e}", tolerance="< 1e-6",
                       details={"errors": errs})
"""

from __future__ import annotations

import json
import math
import platform
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


@dataclass
class Outcome:
    """What a claim measured.

    Attributes:
        holds: whether the claim holds within its tolerance.
        measured: the measured figure, as a short human-readable string.
        tolerance: what "holds" required, as a short string (e.g. ``"rel. err <= 1e-6"``).
        details: any JSON-serialisable numbers worth keeping (curves, per-seed values, versions).
        notes: free text for the report (what limits a result, why a peer was skipped).
    """

    holds: bool
    measured: str
    tolerance: str
    details: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


@dataclass(frozen=True)
class Claim:
    """A registered benchmark claim."""

    name: str
    title: str
    statement: str
    issue: int | None
    fn: Callable[[Context], Outcome]
    module: str


@dataclass
class Record:
    """The result of running one claim (what goes into ``<name>.json``)."""

    name: str
    title: str
    statement: str
    issue: int | None
    verdict: str  # "holds" | "falls short" | "error"
    measured: str
    tolerance: str
    seconds: float
    full: bool
    seed: int
    figures: list[str]
    details: dict[str, Any]
    notes: str
    error: str | None = None


REGISTRY: dict[str, Claim] = {}


def claim(
    name: str, *, title: str, statement: str, issue: int | None = None
) -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    """Register ``fn`` as the claim ``name`` (dotted, e.g. ``"penalty.path"``)."""

    def register(fn: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        if name in REGISTRY and REGISTRY[name].fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"benchmark claim {name!r} is registered twice")
        REGISTRY[name] = Claim(name, title, statement.strip(), issue, fn, fn.__module__)
        return fn

    return register


class Context:
    """What a claim receives: the run mode, a seed, and where to put figures."""

    def __init__(self, name: str, *, full: bool, seed: int, out_dir: Path, show_progress: bool = True):
        self.name = name
        self.full = full
        self.seed = seed
        self.out_dir = out_dir
        self.figure_dir = out_dir / "figures"
        self.figures: list[str] = []
        self.show_progress = show_progress

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run seed (plus ``offset`` for independent streams)."""
        return torch.Generator().manual_seed(self.seed + offset)

    def rng(self, offset: int = 0) -> np.random.Generator:
        """A numpy generator seeded from the run seed (plus ``offset``)."""
        return np.random.default_rng(self.seed + offset)

    def progress(self, iterable: Iterable[T], desc: str = "", total: int | None = None) -> Iterator[T]:
        """Wrap ``iterable`` in a tqdm progress bar (disabled when the harness runs quietly)."""
        from tqdm.auto import tqdm

        return iter(
            tqdm(
                iterable,
                desc=f"{self.name}: {desc}".rstrip(": "),
                total=total,
                leave=False,
                disable=not self.show_progress,
            )
        )

    def figure_path(self, stem: str) -> Path:
        """Path for a figure named ``stem`` (PNG); the figure is listed in the report."""
        self.figure_dir.mkdir(parents=True, exist_ok=True)
        fname = f"{self.name.replace('.', '_')}__{stem}.png"
        if fname not in self.figures:
            self.figures.append(fname)
        return self.figure_dir / fname

    def save_figure(self, fig: Any, stem: str) -> Path:
        """Save a matplotlib figure as ``figures/<claim>__<stem>.png`` and close it."""
        import matplotlib.pyplot as plt

        path = self.figure_path(stem)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.detach().cpu().tolist())
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else str(v)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return repr(x)


def run_claim(c: Claim, *, full: bool, seed: int, out_dir: Path, show_progress: bool = True) -> Record:
    """Run one claim with seeded torch/numpy state and return its record (never raises)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds libraries that use the global state
    ctx = Context(c.name, full=full, seed=seed, out_dir=out_dir, show_progress=show_progress)
    t0 = time.perf_counter()
    try:
        out = c.fn(ctx)
        if not isinstance(out, Outcome):
            raise TypeError(f"claim {c.name} returned {type(out).__name__}, expected Outcome")
        verdict = "holds" if out.holds else "falls short"
        err = None
    except Exception:  # a claim that crashes is reported, never hidden
        out = Outcome(False, "—", "—")
        verdict = "error"
        err = traceback.format_exc()
    seconds = time.perf_counter() - t0
    return Record(
        c.name,
        c.title,
        c.statement,
        c.issue,
        verdict,
        out.measured,
        out.tolerance,
        seconds,
        full,
        seed,
        list(ctx.figures),
        _jsonable(out.details),
        out.notes,
        err,
    )


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded at the top of the report."""
    import os

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }


def write_record(rec: Record, out_dir: Path) -> Path:
    cdir = out_dir / "claims"
    cdir.mkdir(parents=True, exist_ok=True)
    path = cdir / f"{rec.name}.json"
    path.write_text(json.dumps(_jsonable(rec.__dict__), indent=2))
    return path


_ICON = {"holds": "✅ holds", "falls short": "❌ falls short", "error": "💥 error"}


def write_report(records: list[Record], out_dir: Path, *, full: bool, env: dict[str, Any]) -> Path:
    """Write ``report.md``: a summary table, then one section per claim with its figures."""
    lines = ["# Benchmark report", ""]
    lines.append(
        f"Mode: **{'full' if full else 'quick (default)'}** · "
        + " · ".join(f"{k}: {v}" for k, v in env.items())
    )
    lines.append("")
    counts = {v: sum(r.verdict == v for r in records) for v in ("holds", "falls short", "error")}
    lines.append(
        f"**{counts['holds']} hold, {counts['falls short']} fall short, {counts['error']} errors** "
        f"out of {len(records)} claims; total {sum(r.seconds for r in records):.0f} s."
    )
    lines += ["", "| claim | issue | verdict | measured | tolerance | time |", "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(
            f"| [{r.name}](#{r.name.replace('.', '')}) | {r.issue or ''} | {_ICON[r.verdict]} | "
            f"{r.measured} | {r.tolerance} | {r.seconds:.1f} s |"
        )
    for r in records:
        lines += [
            "",
            f"## {r.name}",
            "",
            f"**{r.title}** — {_ICON[r.verdict]}",
            "",
            f"> {r.statement}",
            "",
            f"- measured: {r.measured}",
            f"- tolerance: {r.tolerance}",
            f"- time: {r.seconds:.1f} s",
        ]
        if r.notes:
            lines += ["", r.notes]
        for f in r.figures:
            lines += ["", f"![{r.name}](figures/{f})"]
        if r.error:
            lines += ["", "```", r.error.rstrip(), "```"]
        lines += ["", f"Record: `claims/{r.name}.json`"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def select(names: list[str] | None) -> list[Claim]:
    """Claims whose name equals, or starts with ``<pattern>.``, any of ``names`` (all when None)."""
    claims = sorted(REGISTRY.values(), key=lambda c: c.name)
    if not names:
        return claims
    chosen = [c for c in claims if any(c.name == n or c.name.startswith(n.rstrip(".") + ".") for n in names)]
    unknown = [
        n for n in names if not any(c.name == n or c.name.startswith(n.rstrip(".") + ".") for c in claims)
    ]
    if unknown:
        raise KeyError(f"unknown claim(s): {', '.join(unknown)}; see `python -m benchmarks --list`")
    return chosen
