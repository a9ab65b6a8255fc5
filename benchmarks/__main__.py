"""``python -m benchmarks``: run the claims and write ``results/report.md``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")


def main(argv: list[str] | None = None) -> int:
    import torch

    from benchmarks.claims import load_all
    from benchmarks.harness import environment, run_claim, select, write_record, write_report

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
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when any claim falls short")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    load_all()
    try:
        claims = select(args.only)
    except KeyError as e:
        ap.error(str(e.args[0]))
    if args.list:
        for c in claims:
            print(f"{c.name:40s} {c.title}" + (f" [{c.paper}]" if c.paper else ""))
        return 0

    torch.set_num_threads(args.threads)
    from tqdm.auto import tqdm

    args.out.mkdir(parents=True, exist_ok=True)
    env = environment()
    records = []
    bar = tqdm(claims, desc="claims", disable=args.quiet)
    for c in bar:
        bar.set_postfix_str(c.name)
        rec = run_claim(c, full=args.full, seed=args.seed, out_dir=args.out, show_progress=not args.quiet)
        write_record(rec, args.out)
        records.append(rec)
        tqdm.write(f"{rec.verdict:>12s}  {c.name}  ({rec.measured}; {rec.seconds:.1f} s)")
        if rec.error:
            tqdm.write(rec.error)
        # The report is rewritten after every claim, so an interrupted run still leaves one.
        write_report(records, args.out, full=args.full, env=env)
    path = write_report(records, args.out, full=args.full, env=env)
    n_bad = sum(r.verdict != "holds" for r in records)
    print(f"\nreport: {path}  ({len(records) - n_bad}/{len(records)} claims hold)")
    if any(r.verdict == "error" for r in records):
        return 1
    return 1 if (args.strict and n_bad) else 0


if __name__ == "__main__":
    sys.exit(main())
