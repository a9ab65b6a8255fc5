"""The benchmark harness: every benchmark is a named *claim* that returns a verdict.

A claim is three small functions registered with `claim()`:

* ``measure(budget) -> dict`` runs the experiment within a typed `Budget` (quick or full
  preset, seed, progress bars) and returns plain data;
* ``verdict(data) -> Outcome`` judges the data: holds / falls short, the measured figure, the
  tolerance, the details kept in the JSON record;
* ``figure(data) -> {stem: matplotlib figure}`` draws (optional).

The harness runs them in that order, times the claim, records a JSON file per claim and writes
``report.md`` with the verdict (holds / falls short / error), the measured figure, the tolerance and
the figures. Writing a claim::

    from dataclasses import dataclass
    from benchmarks.harness import Budget, Outcome, claim
    from benchmarks.plotting import pyplot

    @dataclass(frozen=True)
    class PathBudget(Budget):
        steps: int = 2_000

    def measure(b: PathBudget) -> dict:
        ...  # run b.steps steps, seeded by b.seed / b.generator()
        return {"errors": errs}

    def verdict(d: dict) -> Outcome:
        err = max(d["errors"])
        return Outcome(holds=err < 1e-6, measured=f"max error {err:.2e}", tolerance="< 1e-6",
                       details=d)

    def figure(d: dict) -> dict:
        fig, ax = pyplot().subplots(); ax.semilogy(d["errors"])
        return {"path": fig}

    claim("penalty.path", title="Penalty path", statement="The minimiser of F_γ is ...",
          measure=measure, verdict=verdict, figure=figure,
          quick=PathBudget(), full=PathBudget(steps=20_000))

A claim may also be a single function ``fn(ctx: Context) -> Outcome`` decorated with
``@claim(name, title=..., statement=...)``; it then draws its figures with ``ctx.save_figure``.
"""

from __future__ import annotations

import json
import math
import platform
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np
import torch

from benchmarks.plotting import save_figure

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
class Budget:
    """What a claim's ``measure`` may spend: the run mode, the seed and progress bars.

    A claim subclasses it (frozen dataclass) with its own knobs (steps, seeds, repeats) and registers
    a quick and a full preset; the harness fills in ``full``, ``seed``, ``name`` and
    ``show_progress`` of the chosen preset before calling ``measure``.
    """

    full: bool = False
    seed: int = 0
    name: str = ""
    show_progress: bool = False

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


Measure = Callable[[Any], dict[str, Any]]
Verdict = Callable[[dict[str, Any]], Outcome]
Figure = Callable[[dict[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class Claim:
    """A registered benchmark claim.

    ``fn(ctx)`` runs it whole. A claim registered as three functions also keeps them
    (``measure``, ``verdict``, ``figure``) and its budgets, so that a test can judge or draw given
    data without measuring.
    """

    name: str
    title: str
    statement: str
    paper: str | None
    fn: Callable[[Context], Outcome]
    module: str
    measure: Measure | None = None
    verdict: Verdict | None = None
    figure: Figure | None = None
    quick: Budget | None = None
    full: Budget | None = None
    timing: bool = False

    def budget(self, *, full: bool, seed: int = 0, show_progress: bool = False) -> Budget:
        """The quick or full preset (full falls back to quick) with the run's mode, seed and progress."""
        preset = (self.full if full else None) or self.quick or Budget()
        return replace(preset, full=full, seed=seed, name=self.name, show_progress=show_progress)


@dataclass
class Record:
    """The result of running one claim (what goes into ``<name>.json``)."""

    name: str
    title: str
    statement: str
    paper: str | None
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


def _register(c: Claim) -> None:
    if c.name in REGISTRY and REGISTRY[c.name].fn.__qualname__ != c.fn.__qualname__:
        raise ValueError(f"benchmark claim {c.name!r} is registered twice")
    REGISTRY[c.name] = c


def _staged(measure: Measure, verdict: Verdict, figure: Figure | None, c: Callable[[], Claim]) -> Callable:
    def run(ctx: Context) -> Outcome:
        data = measure(c().budget(full=ctx.full, seed=ctx.seed, show_progress=ctx.show_progress))
        out = verdict(data)
        if figure is not None:
            for stem, fig in figure(data).items():
                ctx.save_figure(fig, stem)
        return out

    run.__qualname__ = measure.__qualname__
    run.__module__ = measure.__module__
    return run


@overload
def claim(
    name: str, *, title: str, statement: str, paper: str | None = None, timing: bool = False
) -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]: ...


@overload
def claim(
    name: str,
    *,
    title: str,
    statement: str,
    paper: str | None = None,
    measure: Measure,
    verdict: Verdict,
    figure: Figure | None = None,
    quick: Budget | None = None,
    full: Budget | None = None,
    timing: bool = False,
) -> Claim: ...


def claim(
    name: str,
    *,
    title: str,
    statement: str,
    paper: str | None = None,
    measure: Measure | None = None,
    verdict: Verdict | None = None,
    figure: Figure | None = None,
    quick: Budget | None = None,
    full: Budget | None = None,
    timing: bool = False,
) -> Any:
    """Register the claim ``name`` (dotted, e.g. ``"penalty.path"``).

    With ``measure`` and ``verdict`` (and optionally ``figure`` and the ``quick``/``full`` budgets)
    it registers the three-function claim and returns its `Claim`; without them it returns a
    decorator for a single ``fn(ctx) -> Outcome``. ``paper`` names where the claim comes from (a paper
    reference); a claim about our own targets (speed, memory) leaves it empty. ``timing=True`` marks a
    claim whose verdict rests on wall-clock time: the runner then runs it alone, after the other claims,
    with no other claim competing for the cores.
    """
    if measure is None and verdict is None:
        if figure is not None or quick is not None or full is not None:
            raise TypeError(f"claim {name!r}: figure/quick/full need measure= and verdict=")

        def register(fn: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
            _register(Claim(name, title, statement.strip(), paper, fn, fn.__module__, timing=timing))
            return fn

        return register
    if measure is None or verdict is None:
        raise TypeError(f"claim {name!r}: give both measure= and verdict=")
    for label, b in (("quick", quick), ("full", full)):
        if b is not None and not isinstance(b, Budget):
            raise TypeError(f"claim {name!r}: {label} must be a Budget, got {type(b).__name__}")
    made: list[Claim] = []
    fn = _staged(measure, verdict, figure, lambda: made[0])
    c = Claim(
        name,
        title,
        statement.strip(),
        paper,
        fn,
        measure.__module__,
        measure,
        verdict,
        figure,
        quick,
        full,
        timing,
    )
    made.append(c)
    _register(c)
    return c


class Context(Budget):
    """What a single-function claim receives: a `Budget` plus where to put figures."""

    def __init__(self, name: str, *, full: bool, seed: int, out_dir: Path, show_progress: bool = True):
        super().__init__(full=full, seed=seed, name=name, show_progress=show_progress)
        object.__setattr__(self, "out_dir", out_dir)
        object.__setattr__(self, "figure_dir", out_dir / "figures")
        object.__setattr__(self, "figures", [])

    out_dir: Path
    figure_dir: Path
    figures: list[str]

    def figure_path(self, stem: str) -> Path:
        """Path for a figure named ``stem`` (PNG); the figure is listed in the report."""
        self.figure_dir.mkdir(parents=True, exist_ok=True)
        fname = f"{self.name.replace('.', '_')}__{stem}.png"
        if fname not in self.figures:
            self.figures.append(fname)
        return self.figure_dir / fname

    def save_figure(self, fig: Any, stem: str) -> Path:
        """Save a matplotlib figure as ``figures/<claim>__<stem>.png`` and close it."""
        return save_figure(fig, self.figure_path(stem))


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
        c.paper,
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
    lines += ["", "| claim | source | verdict | measured | tolerance | time |", "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(
            f"| [{r.name}](#{r.name.replace('.', '')}) | {r.paper or ''} | {_ICON[r.verdict]} | "
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
