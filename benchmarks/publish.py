"""``python -m benchmarks.publish RESULTS_DIR``: put a suite run's verdicts and figures into the docs.

1. The claims' JSON records (``RESULTS_DIR/claims/*.json``) are reduced to what the docs show (verdict,
   measured figure, tolerance, time, figures) and written to ``docs/figures/records.json``;
2. the figures they list are copied from ``RESULTS_DIR/figures/`` to ``docs/figures/`` (figures that no
   record lists any more are removed);
3. the table of claims in ``docs/benchmarks.md`` (between ``<!-- suite-table:start -->`` and
   ``<!-- suite-table:end -->``) and every inline claim block in ``docs/`` (between
   ``<!-- claim: NAME -->`` and ``<!-- /claim -->``) are rewritten from ``records.json``.

Step 3 is a pure function of ``records.json`` and of the registered claims (a registered claim without a
record is listed as *not yet run*), so the docs' numbers cannot be typed by hand: the tests regenerate
the table and the blocks from the committed records and compare. ``python -m benchmarks.publish`` without
``RESULTS_DIR`` redoes step 3 alone (after registering a new claim, say).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FIGURES = "figures"  # under docs/
RECORDS = "records.json"  # under docs/figures/
TABLE_START, TABLE_END = "<!-- suite-table:start -->", "<!-- suite-table:end -->"
CLAIM_BLOCK = re.compile(r"(<!-- claim: (?P<name>[\w.]+) -->\n)(?P<body>.*?)(<!-- /claim -->)", re.S)
KEEP = ("name", "title", "paper", "verdict", "measured", "tolerance", "seconds", "full", "seed", "figures")
_VERDICT = {"holds": "✅ holds", "falls short": "❌ falls short", "error": "💥 error", None: "⏳ not yet run"}

__all__ = ["check", "publish", "read_records", "render_claim_block", "render_table", "rewrite_docs"]


def _run_info(results: Path) -> dict[str, Any]:
    """Mode and date of the run, from the first lines of its report.md (written by the harness)."""
    info: dict[str, Any] = {}
    report = results / "report.md"
    if report.is_file():
        for line in report.read_text().splitlines()[:5]:
            if line.startswith("Mode:"):
                info["mode"] = "full" if "**full**" in line else "quick"
                m = re.search(r"date: ([^·]+?) ·", line)
                if m:
                    info["date"] = m.group(1).strip()
    return info


def collect(results: Path) -> dict[str, Any]:
    """The docs' view of a suite run: ``{"run": {...}, "claims": {name: {...}}}`` from its JSON records."""
    cdir = results / "claims"
    if not cdir.is_dir():
        raise FileNotFoundError(f"RESULTS_DIR must hold a claims/ folder of JSON records; {cdir} is missing")
    claims = {}
    for path in sorted(cdir.glob("*.json")):
        rec = json.loads(path.read_text())
        claims[rec["name"]] = {k: rec.get(k) for k in KEEP}
    if not claims:
        raise ValueError(f"no claim records in {cdir}")
    return {"run": _run_info(results), "claims": claims}


def read_records(docs: Path = DOCS) -> dict[str, Any]:
    """The committed records (``docs/figures/records.json``); an empty set when there is none yet."""
    path = docs / FIGURES / RECORDS
    return json.loads(path.read_text()) if path.is_file() else {"run": {}, "claims": {}}


def _cell(text: Any) -> str:
    return str(text or "").replace("\n", " ").replace("|", "\\|").strip()


def _figure_links(figures: Iterable[str], prefix: str) -> str:
    return " ".join(f"[{i + 1}]({prefix}{FIGURES}/{f})" for i, f in enumerate(figures))


def render_table(records: Mapping[str, Any], registered: Iterable[str]) -> str:
    """The benchmarks page's table (Markdown, between the markers): every registered claim, in name order,
    with its verdict, measured figure, tolerance and figure links from ``records``."""
    claims = records.get("claims", {})
    run = records.get("run", {})
    names = sorted(set(registered))
    counts = {v: sum(claims.get(n, {}).get("verdict") == v for n in names) for v in ("holds", "falls short")}
    missing = [n for n in names if n not in claims]
    head = (
        f"Suite run: {run.get('mode', 'quick')} mode, {run.get('date', 'date not recorded')} · "
        f"{counts['holds']} hold, {counts['falls short']} fall short"
        + (f", {len(missing)} not yet run" if missing else "")
        + f" out of {len(names)} registered claims."
    )
    lines = [
        head,
        "",
        "| claim | source | verdict | measured | tolerance | time | figures |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in names:
        r = claims.get(n)
        if r is None:
            lines.append(f"| `{n}` |  | {_VERDICT[None]} |  |  |  |  |")
            continue
        verdict = _VERDICT.get(r.get("verdict"), _cell(r.get("verdict")))
        seconds = float(r.get("seconds") or 0)
        lines.append(
            f"| `{n}` | {_cell(r.get('paper'))} | {verdict} | {_cell(r.get('measured'))} | "
            f"{_cell(r.get('tolerance'))} | {seconds:.1f} s | {_figure_links(r.get('figures') or [], '')} |"
        )
    return "\n".join(lines)


def render_claim_block(records: Mapping[str, Any], name: str) -> str:
    """An inline block for a docs page: the claim's verdict and measured figure, as the suite recorded it."""
    r = records.get("claims", {}).get(name)
    if r is None:
        return f"*`{name}`: not yet run by the published suite run.*\n"
    mode = records.get("run", {}).get("mode", "quick")
    return (
        f"*Suite ({mode}), `{name}`: {_VERDICT.get(r.get('verdict'), r.get('verdict'))}; measured "
        f"{_cell(r.get('measured'))} (tolerance: {_cell(r.get('tolerance'))}).*\n"
    )


def rewrite_docs(records: Mapping[str, Any], registered: Iterable[str], docs: Path = DOCS) -> dict[Path, str]:
    """The docs pages whose generated parts differ from what ``records`` gives: ``{path: new text}``."""
    changed: dict[Path, str] = {}
    table = render_table(records, registered)
    for path in sorted(docs.rglob("*.md")):
        text = path.read_text()
        new = CLAIM_BLOCK.sub(
            lambda m: m.group(1) + render_claim_block(records, m.group("name")) + m.group(4), text
        )
        if path == docs / "benchmarks.md":
            if TABLE_START not in new or TABLE_END not in new:
                raise ValueError(f"{path} lacks the markers {TABLE_START} ... {TABLE_END}")
            before, rest = new.split(TABLE_START, 1)
            _, after = rest.split(TABLE_END, 1)
            new = f"{before}{TABLE_START}\n{table}\n{TABLE_END}{after}"
        if new != text:
            changed[path] = new
    return changed


def _registered() -> list[str]:
    from benchmarks.claims import load_all
    from benchmarks.harness import REGISTRY

    load_all()
    return sorted(n for n, c in REGISTRY.items() if c.module.startswith("benchmarks.claims."))


def publish(results: Path | None, docs: Path = DOCS) -> list[Path]:
    """Copy the run's records and figures into ``docs`` (when ``results`` is given) and regenerate the
    generated parts of the pages; returns the files written."""
    written: list[Path] = []
    fig_dir = docs / FIGURES
    if results is not None:
        records = collect(results)
        listed = {f for r in records["claims"].values() for f in (r.get("figures") or [])}
        fig_dir.mkdir(parents=True, exist_ok=True)
        for f in sorted(listed):
            src = results / "figures" / f
            if not src.is_file():
                raise FileNotFoundError(f"the record lists {f}, which is not in {results / 'figures'}")
            shutil.copyfile(src, fig_dir / f)
            written.append(fig_dir / f)
        for stale in fig_dir.glob("*.png"):
            if stale.name not in listed:
                stale.unlink()
        (fig_dir / RECORDS).write_text(
            json.dumps(records, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
        )
        written.append(fig_dir / RECORDS)
    for path, text in rewrite_docs(read_records(docs), _registered(), docs).items():
        path.write_text(text)
        written.append(path)
    return written


def check(docs: Path = DOCS) -> list[Path]:
    """The pages whose generated parts are stale (empty when the docs match the committed records)."""
    return sorted(rewrite_docs(read_records(docs), _registered(), docs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.publish", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="?", help="a suite run's output folder (default: docs only)")
    ap.add_argument("--docs", type=Path, default=DOCS, help="the docs folder (default: docs/)")
    ap.add_argument("--check", action="store_true", help="exit 1 when the docs are stale; write nothing")
    args = ap.parse_args(argv)
    if args.check:
        stale = check(args.docs)
        for p in stale:
            print(f"stale: {p} (run python -m benchmarks.publish)")
        return 1 if stale else 0
    for p in publish(args.results, args.docs):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
