"""Run logs on disk: one JSON line per logged step, TensorBoard event files (optional), a final report.

`RunLog` appends ``{"step": ..., "loss": ..., "lr": ..., ...}`` to ``<run>/log.jsonl`` as training
goes (a resumed run first drops the lines after its checkpoint's step, so the file reads as one run) and,
when the ``tensorboard`` package is installed, writes the numeric stats as scalars to ``<run>/tb``.
`write_report()` draws every logged curve into ``<run>/curves.png`` and writes ``<run>/report.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

try:  # optional: pip install tensorboard
    from torch.utils.tensorboard import SummaryWriter as _Writer

    SummaryWriter: type[Any] | None = _Writer
except ImportError:  # pragma: no cover - depends on the environment
    SummaryWriter = None

__all__ = ["RunLog", "numeric", "read_log", "write_report"]


def numeric(stats: dict[str, Any]) -> dict[str, float]:
    """The finite-or-not real-valued entries of ``stats`` (strings and ``None`` dropped)."""
    return {k: float(v) for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``log.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class RunLog:
    """JSON-lines (and TensorBoard) log of a run folder.

    Args:
        run_dir: the run folder (created).
        tensorboard: write TensorBoard events (``None``: when the ``tensorboard`` package is installed).
        resume_step: drop rows with ``step > resume_step`` left by an interrupted run.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool | None = None, resume_step: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "log.jsonl"
        if self.path.exists():
            kept = [r for r in read_log(self.path) if int(r.get("step", 0)) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        if tensorboard and SummaryWriter is None:
            raise ImportError("tensorboard=True needs the tensorboard package (pip install tensorboard)")
        use_tb = SummaryWriter is not None if tensorboard is None else tensorboard
        writer = SummaryWriter if use_tb else None
        self.writer = writer(str(self.run_dir / "tb")) if writer is not None else None

    def log(self, row: dict[str, Any]) -> None:
        """Append one row (must hold ``step``)."""
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row, allow_nan=True) + "\n")
        if self.writer is not None:
            step = int(row["step"])
            for k, v in numeric(row).items():
                if k != "step" and math.isfinite(v):
                    self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _curves(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    out: dict[str, tuple[list[float], list[float]]] = {}
    for r in rows:
        for k, v in numeric(r).items():
            if k != "step" and math.isfinite(v):
                xs, ys = out.setdefault(k, ([], []))
                xs.append(float(r["step"]))
                ys.append(v)
    return out


def write_report(
    run_dir: str | Path,
    rows: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    title: str = "Training report",
) -> Path:
    """Write ``curves.png`` (one panel per logged quantity against the step) and ``report.md``
    (``summary`` as a list, then the figure) into ``run_dir``; returns the report's path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""] + [f"- {k}: {v}" for k, v in summary.items()]
    curves = _curves(rows)
    if curves:
        n = len(curves)
        cols = min(3, n)
        nrows = -(-n // cols)
        fig = Figure(figsize=(4.2 * cols, 2.8 * nrows))
        for i, (name, (xs, ys)) in enumerate(curves.items()):
            ax = fig.add_subplot(nrows, cols, i + 1)
            ax.plot(xs, ys, lw=1)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
        fig.tight_layout()
        fig.savefig(run_dir / "curves.png", dpi=100)
        lines += ["", "## Curves", "", "![curves](curves.png)"]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
