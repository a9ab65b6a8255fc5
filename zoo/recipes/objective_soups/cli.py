"""``python -m zoo.recipes objective_soups``: the Objective Soups recipes on the multilingual corpus.

Trains every method of ``--methods`` for every seed at equal compute (the same steps, batches and model),
evaluates WER (recognition, every language) and sacrebleu BLEU (X→en translation, every non-English
language) on the test voices, and measures the gradient conflict on the shared encoder for 1, 2 and all
languages. Writes to ``--out``: ``results.json``, ``table.md`` (per language), ``wer.png``, ``bleu.png``,
``conflict.png`` (pairwise cosine distributions and conflicting layers against the number of languages),
``top_conflicts.png`` and ``report.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from zoo.data import build_corpus
from zoo.recipes.objective_soups.analysis import conflict_profile
from zoo.recipes.objective_soups.data import SoupBatches, SoupsData, load_soups_data
from zoo.recipes.objective_soups.model import SoupsModel, SoupsModelConfig, objective_names
from zoo.recipes.objective_soups.step import METHODS, SOLVERS, SoupsConfig, evaluate_soups, soups_trainer
from zoo.training import (
    parse_recipe,
    recipe_parser,
)

__all__ = [
    "PRESETS",
    "SoupsRun",
    "conflict_by_languages",
    "main",
    "parser",
    "plot_conflict",
    "plot_per_language",
    "plot_top_conflicts",
    "results_table",
    "run_experiment",
]


@dataclass(frozen=True)
class SoupsRun:
    """A ``python -m zoo.recipes objective_soups`` run.

    Attributes:
        corpus: corpus preset (``multi-quick``) or a built corpus directory.
        methods: the recipes compared at equal compute; seeds: their seeds.
        solver: the MOO solver inside a level.
        steps, steps_per_epoch, batch_size: training length, penalty epoch, utterances per language and draw.
        lr: AdamW learning rate of the encoder and of the heads.
        penalty: (start, max, epochs) of every level penalty.
        weights: weighted-sum weights of (recognition, translation, SSL).
        d_model, num_layers: the shared Conformer encoder.
        conflict_batch: utterances per language in the conflict analysis.
        out: output folder.
    """

    corpus: str = "multi-quick"
    methods: tuple[str, ...] = field(
        default=("flat", "bilevel_split", "multilevel_asr_first", "multilevel_st_first", "weighted_sum"),
        metadata={"choices": METHODS},
    )
    seeds: tuple[int, ...] = (0,)
    solver: str = field(default="modo", metadata={"choices": SOLVERS})
    steps: int = 40
    steps_per_epoch: int = 10
    batch_size: int = 4
    lr: float = 3e-3
    penalty: tuple[float, float, int] = field(
        default=(0.1, 1.5, 4), metadata={"metavar": ("START", "MAX", "EPOCHS")}
    )
    weights: tuple[float, float, float] = (1.0, 1.0, 0.3)
    d_model: int = 48
    num_layers: int = 2
    conflict_batch: int = 8
    out: str = "results/objective_soups"

    def config(self, method: str, seed: int) -> SoupsConfig:
        """The training config of one (method, seed)."""
        return SoupsConfig(
            method=method,
            solver=self.solver,
            steps=self.steps,
            steps_per_epoch=self.steps_per_epoch,
            batch_size=self.batch_size,
            lr_encoder=self.lr,
            lr_heads=self.lr,
            penalty_start=self.penalty[0],
            penalty_max=self.penalty[1],
            penalty_epochs=int(self.penalty[2]),
            weights=self.weights,
            seed=seed,
        )

    def model_config(self) -> SoupsModelConfig:
        return SoupsModelConfig(d_model=self.d_model, num_layers=self.num_layers)


PRESETS: dict[str, SoupsRun] = {
    # a few minutes on one thread: every recipe once, 40 steps of a 2-layer, 48-wide Conformer
    "quick": SoupsRun(),
    # three seeds, 400 steps of a 4-layer, 96-wide Conformer (a few hours on one thread)
    "standard": SoupsRun(
        seeds=(0, 1, 2), steps=400, steps_per_epoch=40, penalty=(0.1, 1.5, 8), d_model=96, num_layers=4
    ),
}


def conflict_by_languages(
    model: SoupsModel, data: SoupsData, counts: tuple[int, ...], *, batch: int = 8, seed: int = 0
) -> dict[str, Any]:
    """`conflict_profile()` of the objectives of the first n languages (every translated one among
    them) plus SSL, for each n of ``counts``, on one draw of ``batch`` utterances per language."""
    src = SoupBatches(data, batch, seed=seed + 77)
    draw = src.batch(0)["first"]
    out = {}
    for n in counts:
        langs = data.languages[:n]
        names = objective_names(langs, [x for x in langs if x in data.translate])
        out[str(n)] = conflict_profile(model, draw, names)
    return out


def run_experiment(
    run: SoupsRun, data: SoupsData, *, progress: bool = False, dev: bool = True
) -> dict[str, Any]:
    """Train and evaluate every (seed, method); returns ``{"runs": [...], "conflict": {...}}``."""
    runs = []
    conflict: dict[str, Any] = {}
    L = len(data.languages)
    counts = tuple(sorted({1, min(2, L), L}))
    for seed in run.seeds:
        for method in run.methods:
            tr = soups_trainer(
                data, run.config(method, seed), run.model_config(), progress=progress, desc=method
            )
            model = tr.step_fn.model  # type: ignore[attr-defined]
            if seed == run.seeds[0] and not conflict:
                conflict["init"] = conflict_by_languages(model, data, counts, batch=run.conflict_batch)
            hist = tr.run()
            row = {
                "method": method,
                "seed": seed,
                "test": evaluate_soups(model, data, "test"),
                "seconds": tr.state.seconds,
                "loss": [h["loss"] for h in hist],
            }
            if dev:
                row["dev"] = evaluate_soups(model, data, "dev")
            if seed == run.seeds[0] and method == run.methods[0]:
                conflict["trained"] = conflict_by_languages(model, data, counts, batch=run.conflict_batch)
            runs.append(row)
    return {
        "runs": runs,
        "conflict": conflict,
        "languages": list(data.languages),
        "translate": list(data.translate),
    }


def _mean(rows: list[dict[str, Any]], key: str, lang: str | None = None) -> float:
    if lang is None:
        return statistics.fmean(r["test"][key] for r in rows)
    return statistics.fmean(r["test"][key][lang] for r in rows)


def results_table(results: dict[str, Any]) -> str:
    """Markdown: test WER (%) and BLEU per language and averaged, per method (mean over seeds)."""
    langs, trans = results["languages"], results["translate"]
    methods = list(dict.fromkeys(r["method"] for r in results["runs"]))
    head = ["method", *[f"WER {x}" for x in langs], "avg WER", *[f"BLEU {x}" for x in trans], "avg BLEU"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        rows = [r for r in results["runs"] if r["method"] == m]
        cells = (
            [m]
            + [f"{100 * _mean(rows, 'wer', x):.1f}" for x in langs]
            + [f"{100 * _mean(rows, 'avg_wer'):.1f}"]
        )
        cells += [f"{_mean(rows, 'bleu', x):.2f}" for x in trans] + [f"{_mean(rows, 'avg_bleu'):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_per_language(results: dict[str, Any], metric: str) -> Any:
    """Grouped bars: test WER (%) or BLEU per language, one bar per method (mean over seeds)."""
    langs = results["languages"] if metric == "wer" else results["translate"]
    methods = list(dict.fromkeys(r["method"] for r in results["runs"]))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(1, len(methods))
    for k, m in enumerate(methods):
        rows = [r for r in results["runs"] if r["method"] == m]
        vals = [(100 if metric == "wer" else 1) * _mean(rows, metric, x) for x in langs]
        ax.bar([i + k * width for i in range(len(langs))], vals, width, label=m)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(langs))], langs)
    ax.set_ylabel("test WER (%)" if metric == "wer" else "test BLEU")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_conflict(conflict: dict[str, Any]) -> Any:
    """Pairwise layer-wise cosine distributions and the conflicting share of layers by number of languages."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    for stage, prof in conflict.items():
        counts = sorted(prof, key=int)
        a.boxplot(
            [prof[n]["pair_cosines"] for n in counts],
            positions=[int(n) + (0.2 if stage == "trained" else -0.2) for n in counts],
            widths=0.3,
            showfliers=False,
            patch_artist=False,
        )
        b.plot([int(n) for n in counts], [prof[n]["conflicting_fraction"] for n in counts], "o-", label=stage)
    counts = sorted(next(iter(conflict.values())), key=int)
    a.set_xticks([int(n) for n in counts], counts)
    a.axhline(0, color="grey", lw=0.5)
    a.set_xlabel("languages (left: init, right: trained)")
    a.set_ylabel("layer-wise pairwise cosine")
    b.set_xlabel("languages")
    b.set_ylabel("share of layers with mean cosine < 0")
    b.legend()
    fig.tight_layout()
    return fig


def plot_top_conflicts(profile: dict[str, Any]) -> Any:
    """The ten most conflicting layers (lowest mean pairwise cosine)."""
    names, vals = zip(*profile["top"]) if profile["top"] else ((), ())
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.barh(range(len(vals)), vals)
    ax.set_yticks(range(len(vals)), [n.replace("layers.", "L") for n in names], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("mean pairwise cosine")
    fig.tight_layout()
    return fig


def write_report(results: dict[str, Any], run: SoupsRun, out: Path) -> None:
    """(Re)write every artefact from ``results``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"run": asdict(run), **results}, indent=1))
    table = results_table(results)
    (out / "table.md").write_text(table + "\n")
    figs = {"wer": plot_per_language(results, "wer"), "bleu": plot_per_language(results, "bleu")}
    conf = results["conflict"]
    if conf:
        figs["conflict"] = plot_conflict(conf)
        stage = conf.get("trained") or conf["init"]
        figs["top_conflicts"] = plot_top_conflicts(stage[max(stage, key=int)])
    for stem, fig in figs.items():
        fig.savefig(out / f"{stem}.png", dpi=110)
        plt.close(fig)
    lines = [
        "# Objective Soups report",
        "",
        f"Run: `{asdict(run)}`",
        "",
        "## Test WER and BLEU",
        "",
        table,
        "",
    ]
    lines += [f"![{s}]({s}.png)" for s in figs]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def parser(preset: str = "quick") -> argparse.ArgumentParser:
    """The command line, with the defaults of ``PRESETS[preset]``."""
    return recipe_parser(
        "python -m zoo.recipes objective_soups", SoupsRun, PRESETS, preset, description=__doc__
    )


def main(argv: list[str] | None = None) -> int:
    run, args = parse_recipe(parser, SoupsRun, PRESETS, argv)
    corpus = Path(run.corpus)
    if not corpus.is_dir():
        corpus = build_corpus(run.corpus, seed=0, progress=not args.quiet)
    data = load_soups_data(corpus, progress=not args.quiet)
    results = run_experiment(replace(run), data, progress=not args.quiet, dev=False)
    write_report(results, run, Path(run.out))
    print(results_table(results))
    print(f"report: {Path(run.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
