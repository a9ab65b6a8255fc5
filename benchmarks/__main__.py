"""``python -m benchmarks``: run the claims and write ``results/report.md``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import torch
from tqdm.auto import tqdm

from benchmarks.claims import load_all
from benchmarks.harness import Record, environment, select, write_report
from benchmarks.runner import run_claims


def default_jobs(threads: int) -> int:
    """Worker processes by default: one per ``threads`` cores, at most 8."""
    return max(1, min(8, (os.cpu_count() or 1) // max(1, threads)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--list", action="store_true", help="list the claims and exit")
    ap.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this claim, or every claim under a dotted prefix (repeatable)",
    )
    ap.add_argument("--full", action="store_true", help="run the long versions")
    ap.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results)")
    ap.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads per process (default 1)")
    ap.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="claim modules run side by side in this many processes; timing claims then run alone at the "
        "end (default: CPU cores / threads, at most 8; 1 runs everything in this process)",
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 when any claim falls short")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    jobs = default_jobs(args.threads) if args.jobs is None else args.jobs
    if jobs < 1:
        ap.error(f"--jobs must be >= 1, got {jobs}")

    load_all()
    try:
        claims = select(args.only)
    except KeyError as e:
        ap.error(str(e.args[0]))
    if args.list:
        for c in claims:
            tag = " (timing)" if c.timing else ""
            print(f"{c.name:40s} {c.title}{tag}" + (f" [{c.paper}]" if c.paper else ""))
        return 0

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**environment(), "jobs": jobs}
    records: list[Record] = []
    bar = tqdm(total=len(claims), desc="claims", disable=args.quiet)

    def report(rec: Record) -> None:
        records.append(rec)
        bar.update(1)
        tqdm.write(f"{rec.verdict:>12s}  {rec.name}  ({rec.measured}; {rec.seconds:.1f} s)")
        if rec.error:
            tqdm.write(rec.error)
        # The report is rewritten after every claim, so an interrupted run still leaves one.
        write_report(sorted(records, key=lambda r: r.name), args.out, full=args.full, env=env)

    try:
        records = run_claims(
            claims,
            jobs=min(jobs, len(claims)) or 1,
            full=args.full,
            seed=args.seed,
            out_dir=args.out,
            threads=args.threads,
            show_progress=not args.quiet,
            report=report,
        )
    finally:
        bar.close()
    path = write_report(records, args.out, full=args.full, env=env)
    n_bad = sum(r.verdict != "holds" for r in records)
    print(f"\nreport: {path}  ({len(records) - n_bad}/{len(records)} claims hold)")
    if any(r.verdict == "error" for r in records):
        return 1
    return 1 if (args.strict and n_bad) else 0


if __name__ == "__main__":
    sys.exit(main())
