"""``python -m zoo.recipes bl_just``: BL-JUST against supervised-only and PT+FT, with ablations.

Writes to ``--out``: ``results.json`` (every run: error rates, compute, loss history), ``table.md``,
``wer.png``, ``cer.png``, ``curves.png`` (f, g, penalty gap and γ of one BL-JUST run), ``ablations.png``
and ``report.md`` (all of it in one page). ``--preset`` picks a scale; any flag overrides it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # ≈ 4 min on one thread: one share, one seed, a few hundred steps of the tiny Conformer on the quick
    # English corpus (≈ 380 training utterances). The convolutional ``--encoder tiny`` is 5x faster but
    # stays above 100 % WER at this budget.
    "quick": {
        "corpus": "en-quick",
        "shares": [0.2],
        "seeds": [0],
        "encoder": "conformer",
        "steps": [100, 200, 50],
        "ablation_share": 0.2,
    },
    # The setting: the English corpus (≈ 2 000 training utterances, 1 h), the zoo's Conformer,
    # labelled shares 5/10/20 %, three seeds (≈ 3 min per run, ≈ 2 h on one thread).
    "standard": {
        "corpus": "en",
        "shares": [0.05, 0.1, 0.2],
        "seeds": [0, 1, 2],
        "encoder": "conformer",
        "steps": [400, 800, 200],
        "ablation_share": 0.05,
    },
    # The same at 2.5x the steps (≈ 5 h on one thread).
    "full": {
        "corpus": "en",
        "shares": [0.05, 0.1, 0.2],
        "seeds": [0, 1, 2],
        "encoder": "conformer",
        "steps": [1000, 2000, 500],
        "ablation_share": 0.05,
    },
}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m zoo.recipes bl_just",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    ap.add_argument("--corpus", help="corpus preset (tiny, small, ...) or a built corpus directory")
    ap.add_argument("--shares", type=float, nargs="+", help="labelled shares of the pool, e.g. 0.05 0.1 0.2")
    ap.add_argument("--seeds", type=int, nargs="+")
    ap.add_argument("--methods", nargs="+", default=["bl_just", "pt_ft", "supervised"])
    ap.add_argument("--encoder", choices=["tiny", "conformer"])
    ap.add_argument("--ssl", choices=["cpc", "masked"], default="cpc")
    ap.add_argument(
        "--steps",
        type=int,
        nargs=3,
        metavar=("N1", "N2", "N3"),
        help="exploration, joint and fine-tuning steps",
    )
    ap.add_argument("--cycles", type=int, default=1)
    ap.add_argument("--lr", type=float, nargs=3, default=[2e-3, 2e-3, 5e-4], metavar=("RHO", "ALPHA", "TAU"))
    ap.add_argument("--gamma", type=float, nargs=2, default=[0.0, 1.0], metavar=("START", "MAX"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--no-ablations", action="store_true", help="skip the BL-JUST ablations")
    ap.add_argument("--ablation-share", type=float)
    ap.add_argument("--out", type=Path, default=Path("results/bl_just"))
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument(
        "--from-json",
        type=Path,
        metavar="RESULTS",
        help="redraw the table and figures from a results.json instead of training",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    args = parser().parse_args(argv)
    preset = PRESETS[args.preset]
    for k in ("corpus", "shares", "seeds", "encoder", "steps", "ablation_share"):
        if getattr(args, k) is None:
            setattr(args, k, preset[k])

    import torch

    from zoo.recipes.bl_just import BLJustConfig
    from zoo.recipes.experiment import load_pool, run_one, split_share

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.from_json is not None:
        from zoo.recipes.experiment import RunResult

        saved = json.loads(args.from_json.read_text())
        args.ablation_share = float(saved["args"].get("ablation_share", args.ablation_share))
        args.out.mkdir(parents=True, exist_ok=True)
        write_report([RunResult(**r) for r in saved["runs"]], BLJustConfig(**saved["config"]), args, args.out)
        print(f"report: {args.out / 'report.md'}")
        return 0
    n1, n2, n3 = args.steps
    cfg = BLJustConfig(
        exploration_steps=n1,
        joint_steps=n2,
        finetune_steps=n3,
        cycles=args.cycles,
        lr_exploration=args.lr[0],
        lr_joint=args.lr[1],
        lr_finetune=args.lr[2],
        gamma_start=args.gamma[0],
        gamma_max=args.gamma[1],
    )
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        from zoo.data import build_corpus

        corpus = build_corpus(args.corpus, seed=0, progress=not args.quiet)
    pool = load_pool(corpus, progress=not args.quiet)
    runs = []
    # Seed-major order: every finished seed adds one complete row per share and per ablation, so a run cut
    # short still reports every setting (with fewer seeds).
    jobs: list[tuple[float, int, str, str]] = []
    for seed in args.seeds:
        jobs += [(s, seed, m, "full") for s in args.shares for m in args.methods]
        if not args.no_ablations:
            if args.ablation_share not in args.shares:
                jobs += [(args.ablation_share, seed, m, "full") for m in args.methods]
            jobs += [
                (args.ablation_share, seed, "bl_just", v)
                for v in ("no_exploration", "no_finetune", "constant_gamma")
            ]
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (share, seed, method, variant) in enumerate(jobs):
        data = split_share(pool, share, seed)
        r = run_one(
            data,
            cfg,
            method,
            seed=seed,
            variant=variant,
            encoder=args.encoder,
            ssl=args.ssl,
            batch_size=args.batch_size,
            unlabelled_batch_size=args.batch_size,
            progress=not args.quiet,
        )
        runs.append(r)
        if not args.quiet:
            print(
                f"[{i + 1}/{len(jobs)}] share={share:g} seed={seed} {r.label}: WER {100 * r.wer:.1f}% "
                f"CER {100 * r.cer:.1f}% ({r.seconds:.0f} s)",
                flush=True,
            )
        write_report(runs, cfg, args, args.out)
    print(f"report: {args.out / 'report.md'}")
    return 0


def gap_reference(runs: list[Any], share: float, seed: int, window: int = 10) -> float | None:
    """v̂: the lowest moving-average SSL loss any pure self-supervised phase reached for (share, seed)."""
    from zoo.recipes.experiment import _smooth

    best = None
    for r in runs:
        if r.share == share and r.seed == seed:
            g = [h["g"] for h in r.history if h["phase"] == "ssl"]
            if g:
                m = min(_smooth(g, window))
                best = m if best is None else min(best, m)
    return best


def write_report(runs: list[Any], cfg: Any, args: argparse.Namespace, out: Path) -> None:
    """(Re)write every artefact from the runs so far."""
    import matplotlib.pyplot as plt

    from zoo.recipes.experiment import plot_ablations, plot_joint_curves, plot_wer, results_table

    main_runs = [r for r in runs if r.variant in ("", "full")]
    (out / "results.json").write_text(
        json.dumps(
            {
                "config": asdict(cfg),
                "args": {k: str(v) for k, v in vars(args).items()},
                "runs": [asdict(r) for r in runs],
            },
            indent=1,
        )
    )
    table = results_table(main_runs)
    (out / "table.md").write_text(table + "\n")
    lines = [
        "# BL-JUST recipe report",
        "",
        f"Config: `{asdict(cfg)}`",
        "",
        "## Test error at equal compute",
        "",
        table,
        "",
    ]
    if main_runs and min(r.wer for r in main_runs) >= 1.0:
        lines += [
            "Every WER is at or above 100 %: the models insert short wrong words and spell no word "
            "right yet, so WER cannot rank them; compare the CER.",
            "",
        ]
    for metric in ("wer", "cer"):
        if main_runs:
            fig, ax = plt.subplots(figsize=(5.5, 3.8))
            plot_wer(main_runs, metric, ax)
            fig.tight_layout()
            fig.savefig(out / f"{metric}.png", dpi=110)
            plt.close(fig)
            lines.append(f"![{metric}]({metric}.png)")
    bl = [r for r in main_runs if r.method == "bl_just"]
    if bl:
        r0 = bl[0]
        fig = plot_joint_curves(r0, gap_reference(runs, r0.share, r0.seed))
        fig.tight_layout()
        fig.savefig(out / "curves.png", dpi=110)
        plt.close(fig)
        lines += ["", "## Losses during training", "", "![curves](curves.png)"]
    abl = [r for r in runs if r.share == args.ablation_share and (r.method == "bl_just" or r.variant == "")]
    if any(r.variant not in ("", "full") for r in abl):
        fig = plot_ablations(abl)
        fig.tight_layout()
        fig.savefig(out / "ablations.png", dpi=110)
        plt.close(fig)
        lines += ["", "## Ablations", "", results_table(abl), "", "![ablations](ablations.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
