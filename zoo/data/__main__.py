"""``python -m zoo.data``: build the generated corpus and describe it.

python -m zoo.data build --preset small [--out DIR] [--seed 0] [--workers 2] [--rebuild]
python -m zoo.data stats DIR
python -m zoo.data verify DIR [--no-repair] [--workers 2]

``verify`` hashes every audio file of a built corpus and re-renders exactly the damaged utterances; it
exits with 0 when the corpus is intact or was repaired, 1 when damage was found and not repaired, and 2
when the corpus cannot be checked (no corpus, damaged config, built by another generator version).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any


def _table(title: str, hours: dict[str, float], limit: int | None = None) -> list[str]:
    rows = sorted(hours.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = rows[:limit] if limit else rows
    lines = [f"{title}:"] + [f"  {k:<32s} {v:8.3f} h  ({v * 60:7.1f} min)" for k, v in shown]
    if limit and len(rows) > limit:
        rest = sum(v for _, v in rows[limit:])
        lines.append(f"  ... {len(rows) - limit} more ({rest:.3f} h)")
    return lines


def describe(stats: dict[str, Any], max_domains: int = 20) -> str:
    """Human-readable summary of a corpus's ``stats.json``: hours per split, language, channel, rate,
    language × rate × channel, and the largest domains."""
    lines = [f"{stats['utterances']} utterances, {stats['hours']:.3f} h of audio"]
    lines += _table("hours per split", stats["hours_by_split"])
    lines += _table("hours per language", stats["hours_by_language"])
    lines += _table("hours per channel", stats["hours_by_channel"])
    lines += _table("hours per speaking rate", stats["hours_by_rate"])
    coarse: dict[str, float] = {}
    for d, h in stats["hours_by_domain"].items():
        lang, _variant, rate, chan = [*d.split(":"), "", "", "", ""][:4]
        k = f"{lang}:*:{rate}:{chan}"
        coarse[k] = coarse.get(k, 0.0) + h
    lines += _table("hours per domain (language:voice:rate:channel, voices pooled)", coarse)
    lines += _table(
        f"largest domains ({len(stats['hours_by_domain'])} in all)",
        stats["hours_by_domain"],
        limit=max_domains,
    )
    b = stats.get("build") or {}
    if b.get("rendered"):
        lines.append(
            f"rendered {b['rendered']} utterances ({b['audio_seconds'] / 3600:.3f} h) "
            f"in {b['wall_seconds']:.1f} s wall: "
            f"{b.get('audio_hours_per_wall_second', 0):.4f} h of audio per second, "
            f"{b.get('realtime_factor_per_core', 0):.0f}x real time per worker core"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from zoo.data.corpus import PRESETS

    ap = argparse.ArgumentParser(prog="python -m zoo.data", description="Generated speech corpus tools.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) a corpus and print hours per language and domain")
    b.add_argument("--preset", default="small", choices=sorted(PRESETS))
    b.add_argument("--out", type=Path, default=None, help="output folder (default $ZOO_DATA_DIR or ~/.cache)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=int, default=None, help="worker processes (default: available CPUs)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument(
        "--rebuild",
        action="store_true",
        help="discard a corpus cached there by another generator version or configuration, and build again",
    )
    s = sub.add_parser("stats", help="print the summary of a built corpus")
    s.add_argument("dir", type=Path)
    v = sub.add_parser(
        "verify", help="hash every audio file of a built corpus and re-render exactly the damaged ones"
    )
    v.add_argument("dir", type=Path)
    v.add_argument("--no-repair", action="store_true", help="only report the damage")
    v.add_argument("--workers", type=int, default=None, help="worker processes for the repair")
    args = ap.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from zoo.data.corpus import build_corpus, load_stats, verify_corpus

    if args.cmd == "build":
        t0 = time.perf_counter()
        try:
            root = build_corpus(
                args.preset, args.out, args.seed, args.workers, progress=not args.quiet, rebuild=args.rebuild
            )
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"corpus: {root}  ({time.perf_counter() - t0:.1f} s)")
        print(describe(load_stats(root)))
        return 0
    if args.cmd == "verify":
        try:
            report = verify_corpus(args.dir, repair=not args.no_repair, workers=args.workers)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"{args.dir}: {report.utterances} utterances checked (sizes and SHA-256)")
        for uid, why in report.damaged.items():
            print(f"  damaged: {uid}: {why}")
        for k in report.shards_rendered:
            print(
                f"  shard {k}: manifest missing or damaged" + ("" if args.no_repair else ", rendered again")
            )
        if report.manifest_rewritten:
            print("  manifest.jsonl was incomplete or damaged and has been rewritten")
        if report.ok:
            print("intact")
            return 0
        if args.no_repair:
            print("damaged (not repaired; run without --no-repair to re-render the damaged utterances)")
            return 1
        print(f"repaired: {len(report.repaired)} utterance(s) re-rendered bit-exactly")
        return 0
    print(describe(load_stats(args.dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
