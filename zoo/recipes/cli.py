"""``python -m zoo.recipes bl_just``: BL-JUST against supervised-only and PT+FT, with ablations.

Writes to ``--out``: ``results.json`` (every run: error rates, compute, loss history), ``table.md``,
``wer.png``, ``cer.png``, ``curves.png`` (f, g, penalty gap and γ of one BL-JUST run), ``ablations.png``
and ``report.md`` (all of it in one page). ``--preset`` picks a scale; any flag overrides it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from zoo.data import build_corpus
from zoo.recipes.bl_just import METHODS, BLJustConfig
from zoo.recipes.encoders import ENCODERS
from zoo.recipes.experiment import (
    SSL_LOSSES,
    RunResult,
    load_pool,
    plot_ablations,
    plot_joint_curves,
    plot_wer,
    results_table,
    run_one,
    smooth,
    split_share,
)
from zoo.training import parse_recipe, recipe_parser

__all__ = ["PRESETS", "BLJustRun", "gap_reference", "main", "parser", "write_experiment_report"]


@dataclass(frozen=True)
class BLJustRun:
    """A ``python -m zoo.recipes bl_just`` run: the corpus, the labelled shares and seeds, the methods, the
    model and the BL-JUST hyper-parameters (the symbols of the paper's Algorithm 1).

    Attributes:
        corpus: corpus preset (en-quick, en, tiny, ...) or a built corpus directory.
        shares: labelled shares of the training pool.
        seeds: seeds (model, SSL head, batch order, labelled subset).
        methods: methods to compare at equal compute.
        encoder: the shared encoder (tiny convolutional, or the zoo's tiny Conformer).
        ssl: the lower-level self-supervised loss.
        steps: N1 exploration, N2 joint and N3 fine-tuning steps.
        cycles: K, repetitions of (exploration, joint).
        lr: learning rates ρ (exploration), α (joint), τ (fine-tuning).
        gamma: γ at the first joint step and its maximum (linear ramp).
        batch_size: utterances per labelled and per unlabelled batch.
        ablations: also run the BL-JUST ablations.
        ablation_share: the labelled share of the ablations.
        out: output folder.
    """

    corpus: str = "en-quick"
    shares: tuple[float, ...] = (0.2,)
    seeds: tuple[int, ...] = (0,)
    methods: tuple[str, ...] = field(
        default=("bl_just", "pt_ft", "supervised"), metadata={"choices": METHODS}
    )
    encoder: str = field(default="conformer", metadata={"choices": ENCODERS})
    ssl: str = field(default="cpc", metadata={"choices": SSL_LOSSES})
    steps: tuple[int, int, int] = field(default=(100, 200, 50), metadata={"metavar": ("N1", "N2", "N3")})
    cycles: int = 1
    lr: tuple[float, float, float] = field(
        default=(2e-3, 2e-3, 5e-4), metadata={"metavar": ("RHO", "ALPHA", "TAU")}
    )
    gamma: tuple[float, float] = field(default=(0.0, 1.0), metadata={"metavar": ("START", "MAX")})
    batch_size: int = 8
    ablations: bool = True
    ablation_share: float = 0.2
    out: str = "results/bl_just"

    def config(self) -> BLJustConfig:
        """The [`zoo.recipes.BLJustConfig`][zoo.recipes.BLJustConfig] of this run."""
        n1, n2, n3 = self.steps
        return BLJustConfig(
            exploration_steps=n1,
            joint_steps=n2,
            finetune_steps=n3,
            cycles=self.cycles,
            lr_exploration=self.lr[0],
            lr_joint=self.lr[1],
            lr_finetune=self.lr[2],
            gamma_start=self.gamma[0],
            gamma_max=self.gamma[1],
        )


_QUICK = BLJustRun()
#: Named scales of the recipe; every option overrides its preset's value.
# The papers' setting at CPU scale: the English corpus (≈ 2 000 training utterances, 1 h), the zoo's
# Conformer, labelled shares 5/10/20 %, three seeds (≈ 3 min per run, ≈ 2 h on one thread).
_STANDARD = replace(
    _QUICK, corpus="en", shares=(0.05, 0.1, 0.2), seeds=(0, 1, 2), steps=(400, 800, 200), ablation_share=0.05
)

PRESETS: dict[str, BLJustRun] = {
    # ≈ 4 min on one thread: one share, one seed, a few hundred steps of the tiny Conformer on the quick
    # English corpus (≈ 380 training utterances). The convolutional ``--encoder tiny`` is 5x faster but
    # stays above 100 % WER at this budget.
    "quick": _QUICK,
    "standard": _STANDARD,
    # The same at 2.5x the steps (≈ 5 h on one thread).
    "full": replace(_STANDARD, steps=(1000, 2000, 500)),
}


def parser(preset: str = "quick") -> argparse.ArgumentParser:
    """The command line, with the defaults of ``PRESETS[preset]``."""
    ap = recipe_parser("python -m zoo.recipes bl_just", BLJustRun, PRESETS, preset, description=__doc__)
    ap.add_argument(
        "--from-json",
        type=Path,
        metavar="RESULTS",
        help="redraw the table and figures from a results.json instead of training (default: train)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    run, args = parse_recipe(parser, BLJustRun, PRESETS, argv)
    out = Path(run.out)
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        run = replace(run, ablation_share=float(saved["run"].get("ablation_share", run.ablation_share)))
        out.mkdir(parents=True, exist_ok=True)
        write_experiment_report(
            [RunResult(**r) for r in saved["runs"]], BLJustConfig(**saved["config"]), run, out
        )
        print(f"report: {out / 'report.md'}")
        return 0
    cfg = run.config()
    corpus = Path(run.corpus)
    if not corpus.is_dir():
        corpus = build_corpus(run.corpus, seed=0, progress=not args.quiet)
    pool = load_pool(corpus, progress=not args.quiet)
    runs = []
    # Seed-major order: every finished seed adds one complete row per share and per ablation, so a run cut
    # short still reports every setting (with fewer seeds).
    jobs: list[tuple[float, int, str, str]] = []
    for seed in run.seeds:
        jobs += [(s, seed, m, "full") for s in run.shares for m in run.methods]
        if run.ablations:
            if run.ablation_share not in run.shares:
                jobs += [(run.ablation_share, seed, m, "full") for m in run.methods]
            jobs += [
                (run.ablation_share, seed, "bl_just", v)
                for v in ("no_exploration", "no_finetune", "constant_gamma")
            ]
    out.mkdir(parents=True, exist_ok=True)
    for i, (share, seed, method, variant) in enumerate(jobs):
        data = split_share(pool, share, seed)
        r = run_one(
            data,
            cfg,
            method,
            seed=seed,
            variant=variant,
            encoder=run.encoder,
            ssl=run.ssl,
            batch_size=run.batch_size,
            unlabelled_batch_size=run.batch_size,
            progress=not args.quiet,
        )
        runs.append(r)
        if not args.quiet:
            print(
                f"[{i + 1}/{len(jobs)}] share={share:g} seed={seed} {r.label}: WER {100 * r.wer:.1f}% "
                f"CER {100 * r.cer:.1f}% ({r.seconds:.0f} s)",
                flush=True,
            )
        write_experiment_report(runs, cfg, run, out)
    print(f"report: {out / 'report.md'}")
    return 0


def gap_reference(runs: list[Any], share: float, seed: int, window: int = 10) -> float | None:
    """v̂: the lowest moving-average SSL loss any pure self-supervised phase reached for (share, seed)."""
    best = None
    for r in runs:
        if r.share == share and r.seed == seed:
            g = [h["g"] for h in r.history if h["phase"] == "ssl"]
            if g:
                m = min(smooth(g, window))
                best = m if best is None else min(best, m)
    return best


def write_experiment_report(runs: list[Any], cfg: BLJustConfig, run: BLJustRun, out: Path) -> None:
    """(Re)write every artefact from the runs so far."""
    main_runs = [r for r in runs if r.variant in ("", "full")]
    (out / "results.json").write_text(
        json.dumps(
            {
                "config": asdict(cfg),
                "run": asdict(run),
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
    abl = [r for r in runs if r.share == run.ablation_share and (r.method == "bl_just" or r.variant == "")]
    if any(r.variant not in ("", "full") for r in abl):
        fig = plot_ablations(abl)
        fig.tight_layout()
        fig.savefig(out / "ablations.png", dpi=110)
        plt.close(fig)
        lines += ["", "## Ablations", "", results_table(abl), "", "![ablations](ablations.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
