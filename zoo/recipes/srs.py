r"""Soft random sampling on speech (Cui et al., arXiv 2311.12727): CTC training with full-data epochs, SRS,
a fixed random subset and a k-center coreset, all through `bilevel.sampling` samplers in
the one loop.

Every method is an epoch sampler under a [`zoo.training.Batches`][zoo.training.Batches] stream
(unbucketed random batches):

* ``full`` — [`ShuffledSampler`][bilevel.sampling.ShuffledSampler], $N$ samples per epoch;
* ``srs`` — [`SoftRandomSampler`][bilevel.sampling.SoftRandomSampler]: a fresh with-replacement draw of
  $\lceil sN\rceil$ items every epoch;
* ``subset`` — [`FixedSubsetSampler`][bilevel.sampling.FixedSubsetSampler] with a random subset of
  $\lceil sN\rceil$ items drawn once;
* ``kcenter`` — the same with the k-center greedy coreset
  ([`k_center_greedy()`][bilevel.sampling.k_center_greedy]) on the initial encoder's mean-pooled
  embeddings; its selection (one forward pass over the $N$ items, counted as $N/3$ samples, the
  cost of a forward pass against a forward and backward one) is added to its compute.

Compute is counted in *samples processed*. Each method trains for the same number of epochs of its own
sampler, so at ratio $s$ SRS, the subset and the coreset spend the same compute ($s$ of the full-data
run's) and the full-data curve gives the reference at every compute. ``python -m zoo.recipes srs --preset
quick`` runs the comparison and writes its tables and figures.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from bilevel.sampling import (
    BucketBatchSampler,
    EpochSampler,
    FixedSubsetSampler,
    ShuffledSampler,
    SoftRandomSampler,
    k_center_greedy,
)
from bilevel.theory import srs as theory
from zoo.checks import check_choice, check_int
from zoo.data import build_corpus
from zoo.recipes.encoders import ENCODERS, ModelParts, build_parts
from zoo.recipes.equilibrium import CTCStep, SourceCorpus, load_sources
from zoo.training import (
    Batches,
    Budget,
    Trainer,
    TrainState,
    WarmupCosine,
    evaluate,
    item_lengths,
    parse_recipe,
    recipe_parser,
)

SRS_METHODS = ("full", "srs", "subset", "kcenter")

__all__ = [
    "PRESETS",
    "SRS_METHODS",
    "ASRData",
    "SRSRun",
    "asr_data",
    "coreset",
    "epoch_sampler",
    "in_loop_sampling",
    "main",
    "parser",
    "plot_tradeoff",
    "results_table",
    "run_experiment",
    "train_one",
    "write_report",
]

Item = dict[str, Any]


@dataclass
class ASRData:
    """One ASR task: ``train`` (every labelled and unlabelled item with its transcript), ``dev``, ``test``."""

    train: list[Item]
    dev: list[Item]
    test: list[Item]
    corpus: SourceCorpus


def asr_data(corpus: SourceCorpus) -> ASRData:
    """The sources of a `SourceCorpus` pooled into one ASR task (the training pool = labelled + unlabelled
    items, all transcribed)."""
    train = [it for s in corpus.sources for it in (*s.labelled, *s.unlabelled)]
    dev = [it for s in corpus.sources for it in s.dev]
    test = [it for s in corpus.sources for it in s.test]
    return ASRData(train, dev, test, corpus)


@torch.no_grad()
def coreset(
    parts: ModelParts, data: ASRData, size: int, *, seed: int = 0
) -> tuple[list[int], dict[str, float]]:
    """The k-center greedy coreset of ``size`` items on the encoder's mean-pooled hidden states.

    Returns the indices and its cost: ``{"samples": N/3, "seconds": ...}`` (one forward pass over the
    training items, counted as a third of a training sample each, plus the greedy selection)."""
    t0 = time.perf_counter()
    was = parts.training
    parts.eval()
    embs = []
    for i in range(0, len(data.train), 32):
        b = data.corpus.collate(data.train[i : i + 32])
        h, lens = parts.encoder(b["feats"], b["feat_lens"])
        mask = (torch.arange(h.shape[1])[None, :] < lens[:, None]).unsqueeze(-1)
        embs.append((h * mask).sum(1) / lens[:, None].clamp(min=1))
    parts.train(was)
    idx, _ = k_center_greedy(torch.cat(embs), size, generator=torch.Generator().manual_seed(seed))
    return idx, {"samples": len(data.train) / 3, "seconds": time.perf_counter() - t0}


def epoch_sampler(
    method: str, n: int, ratio: float, seed: int, indices: Sequence[int] | None = None
) -> EpochSampler:
    """The epoch sampler of ``method`` over ``n`` items (``indices``: the coreset, for ``kcenter``)."""
    check_choice(method, "method", SRS_METHODS)
    if method == "full":
        return ShuffledSampler(n, generator=seed)
    if method == "srs":
        return SoftRandomSampler(n, ratio, generator=seed)
    if method == "subset":
        return FixedSubsetSampler(n, ratio, generator=seed)
    if indices is None:
        raise ValueError("method='kcenter' needs the coreset indices")
    return FixedSubsetSampler(n, indices=indices, generator=seed)


class _Recorder:
    """A step function wrapper that records the training indices of every epoch, as the loop drew them."""

    def __init__(self, step: CTCStep, index: dict[str, int]) -> None:
        self.step, self.index = step, index
        self.epochs: dict[int, list[int]] = {}
        self.counts: list[int] = []

    def __call__(self, state: TrainState, batch: dict[str, Any]) -> dict[str, Any]:
        self.epochs.setdefault(state.data.epoch, []).extend(self.index[i] for i in batch["ids"])  # type: ignore[attr-defined]
        self.counts.append(len(batch["ids"]))
        return self.step(state, batch)


def train_one(
    data: ASRData,
    method: str,
    ratio: float,
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
    split: str = "test",
    encoder: str = "tiny",
    dim: int = 64,
    batch_size: int = 8,
    eval_points: int = 3,
    sampler: EpochSampler | None = None,
) -> dict[str, Any]:
    """Train a fresh model (from ``seed``) for ``epochs`` epochs of ``method``'s sampler and score it on
    ``split`` at ``eval_points`` points along the run.

    Returns ``{"curve": [(samples, wer, cer)], "wer", "cer", "samples", "selection", "epochs_drawn",
    "seconds"}``; ``samples`` includes the coreset's selection cost; ``epochs_drawn`` holds the training
    indices of every epoch in the order the loop used them."""
    check_choice(split, "split", ("dev", "test"))
    check_int(epochs, "epochs", low=1)
    parts = build_parts(encoder, data.corpus.n_feats, data.corpus.vocab_size, seed=seed, dim=dim)
    n = len(data.train)
    selection = {"samples": 0.0, "seconds": 0.0}
    idx = None
    if method == "kcenter":
        idx, selection = coreset(parts, data, max(1, math.ceil(ratio * n - 1e-9)), seed=seed)
    smp = sampler if sampler is not None else epoch_sampler(method, n, ratio, seed, idx)
    bs = BucketBatchSampler(smp, item_lengths(data.train), batch_size=batch_size, pool_size=batch_size)
    stream = Batches(data.train, bs, data.corpus.collate)
    steps = epochs * math.ceil(len(smp) / batch_size)
    opt = torch.optim.AdamW(parts.parameters(), lr=lr, weight_decay=0.01)
    sched = WarmupCosine(opt, steps, max(1, steps // 10), 0.05)
    state = TrainState(
        modules={"model": parts}, optimizers={"model": opt}, data=stream, schedulers={"model": sched}
    )
    held = data.dev if split == "dev" else data.test
    rec = _Recorder(CTCStep(), {it["id"]: i for i, it in enumerate(data.train)})

    def score(st: TrainState) -> dict[str, Any]:
        r = evaluate(parts, held, data.corpus.decode, data.corpus.collate)
        return {"eval_wer": r["wer"], "eval_cer": r["cer"]}

    every = max(1, steps // max(1, eval_points))
    trainer = Trainer(state, rec, Budget(steps=steps), on_eval=score, eval_every=every, progress=False)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        history = trainer.run()
    seconds = time.perf_counter() - t0
    cum = [0]
    for k in rec.counts:
        cum.append(cum[-1] + k)
    sel = selection["samples"]
    curve = [(sel + cum[h["step"]], h["eval_wer"], h["eval_cer"]) for h in history if "eval_wer" in h]
    if not curve or curve[-1][0] != sel + cum[-1]:
        last = score(state)
        curve.append((sel + cum[-1], last["eval_wer"], last["eval_cer"]))
    seen = cum[-1]
    return {
        "curve": curve,
        "wer": curve[-1][1],
        "cer": curve[-1][2],
        "samples": selection["samples"] + seen,
        "selection": selection,
        "epochs_drawn": [rec.epochs[e] for e in sorted(rec.epochs)],
        "seconds": seconds,
    }


@dataclass(frozen=True)
class SRSRun:
    """A ``python -m zoo.recipes srs`` run.

    Attributes:
        corpus: corpus preset or a built corpus directory.
        sources: the parts of the corpus pooled into the ASR task ('lang' or 'lang:channel').
        encoder: the CTC encoder (the tiny convolutional one, or the zoo's tiny Conformer).
        dim: width of the tiny encoder.
        methods: the samplers compared.
        ratios: sampling ratios of SRS, the subset and the coreset.
        seeds: seeds of the test comparison (model, sampler).
        tune_seed: the seed of the learning-rate choice on dev.
        epochs: epochs of every method's own sampler.
        lrs: learning-rate candidates, tried on dev for every (method, ratio) alike.
        batch_size: utterances per batch.
        eval_points: evaluations along each run (the WER-against-compute curve).
        out: output folder.
    """

    corpus: str = "sources"
    sources: tuple[str, ...] = ("en", "de", "es")
    encoder: str = field(default="tiny", metadata={"choices": ENCODERS})
    dim: int = 64
    methods: tuple[str, ...] = field(default=SRS_METHODS, metadata={"choices": SRS_METHODS})
    ratios: tuple[float, ...] = (0.1, 0.3, 0.5)
    seeds: tuple[int, ...] = (0, 1, 2)
    tune_seed: int = 100
    epochs: int = 6
    lrs: tuple[float, ...] = (3e-3, 1e-2)
    batch_size: int = 8
    eval_points: int = 3
    out: str = "results/srs"

    def __post_init__(self) -> None:
        if "full" not in self.methods:
            raise ValueError(f"methods must include 'full' (the reference), got {self.methods}")
        if not self.seeds or not self.lrs or not self.ratios:
            raise ValueError("seeds, lrs and ratios must not be empty")

    def settings(self) -> list[tuple[str, float]]:
        """Every (method, ratio) pair of the comparison (``full`` at ratio 1)."""
        out = [("full", 1.0)]
        return out + [(m, r) for m in self.methods if m != "full" for r in self.ratios]


PRESETS: dict[str, SRSRun] = {
    # The "sources" corpus (≈ 620 training utterances), the tiny encoder (minutes on one thread).
    "quick": SRSRun(),
    # The zoo's tiny Conformer on the larger corpus, more epochs, five seeds.
    "standard": SRSRun(
        corpus="sources-large", encoder="conformer", epochs=12, seeds=(0, 1, 2, 3, 4), eval_points=6
    ),
}


def run_experiment(run: SRSRun, data: ASRData, *, progress: bool = False) -> dict[str, Any]:
    """The lr of every (method, ratio) chosen on dev (seed ``tune_seed``, the same candidates for all),
    then every setting on test for every seed; plain data for the report and the claims."""
    kw: dict[str, Any] = {
        "encoder": run.encoder,
        "dim": run.dim,
        "batch_size": run.batch_size,
        "epochs": run.epochs,
    }
    settings = run.settings()
    bar = tqdm(
        total=len(settings) * (len(run.lrs) + len(run.seeds)), desc="srs", disable=not progress, leave=False
    )
    tuning = []
    for m, r in settings:
        tried = []
        for lr in run.lrs:
            res = train_one(data, m, r, lr=lr, seed=run.tune_seed, split="dev", eval_points=1, **kw)  # type: ignore[arg-type]
            tried.append({"lr": lr, "dev_wer": res["wer"], "dev_cer": res["cer"]})
            bar.update(1)
        best = min(tried, key=lambda t: (t["dev_wer"], t["dev_cer"]))
        tuning.append({"method": m, "ratio": r, "tried": tried, "lr": best["lr"]})
    runs = []
    for seed in run.seeds:
        for t in tuning:
            res = train_one(
                data,
                t["method"],
                t["ratio"],
                lr=t["lr"],
                seed=seed,
                eval_points=run.eval_points,
                **kw,  # type: ignore[arg-type]
            )
            bar.update(1)
            runs.append({"method": t["method"], "ratio": t["ratio"], "seed": seed, "lr": t["lr"], **res})
    bar.close()
    return {"run": asdict(run), "n_train": len(data.train), "tuning": tuning, "runs": runs}


def in_loop_sampling(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per SRS ratio: the measured unique fraction per epoch and coverage after every epoch (means over the
    seeds' runs), beside `bilevel.theory.srs`'s expectations and standard deviations."""
    n = data["n_train"]
    out = []
    for r in sorted({x["ratio"] for x in data["runs"] if x["method"] == "srs"}):
        rs = [x for x in data["runs"] if x["method"] == "srs" and x["ratio"] == r]
        fracs = [len(set(ep)) / n for x in rs for ep in x["epochs_drawn"]]
        T = min(len(x["epochs_drawn"]) for x in rs)
        cov = []
        for x in rs:
            seen: set[int] = set()
            row = []
            for ep in x["epochs_drawn"][:T]:
                seen.update(ep)
                row.append(len(seen) / n)
            cov.append(row)
        out.append(
            {
                "ratio": r,
                "unique_measured": statistics.fmean(fracs),
                "unique_expected": float(theory.expected_unique_fraction(n, r)),
                "unique_sd": math.sqrt(float(theory.unique_variance(n, r))) / n,
                "epochs_counted": len(fracs),
                "coverage_measured": [statistics.fmean(c[t] for c in cov) for t in range(T)],
                "coverage_expected": [float(theory.expected_coverage(n, r, t + 1)) for t in range(T)],
                "runs": len(rs),
            }
        )
    return out


def _label(m: str, r: float) -> str:
    return "full" if m == "full" else f"{m}@{r:g}"


def results_table(data: dict[str, Any]) -> str:
    """Markdown: test WER and CER (mean ± std over seeds) and compute of every setting."""
    lines = [
        "| setting | test WER % | test CER % | samples processed | share of full |",
        "|---|---|---|---|---|",
    ]
    full = next(x["samples"] for x in data["runs"] if x["method"] == "full")
    for t in data["tuning"]:
        rs = [x for x in data["runs"] if x["method"] == t["method"] and x["ratio"] == t["ratio"]]
        w = [100 * x["wer"] for x in rs]
        c = [100 * x["cer"] for x in rs]
        sd = statistics.stdev if len(rs) > 1 else (lambda v: 0.0)
        lines.append(
            f"| {_label(t['method'], t['ratio'])} | {statistics.fmean(w):.1f} ± {sd(w):.1f} | "
            f"{statistics.fmean(c):.1f} ± {sd(c):.1f} | {rs[0]['samples']:.0f} | "
            f"{rs[0]['samples'] / full:.2f} |"
        )
    return "\n".join(lines)


def plot_tradeoff(data: dict[str, Any]) -> Any:
    """Figure: test WER against samples processed, every method (mean over seeds; curves along each run)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    colors = {"full": "k", "srs": "C0", "subset": "C1", "kcenter": "C2"}
    for t in data["tuning"]:
        rs = [x for x in data["runs"] if x["method"] == t["method"] and x["ratio"] == t["ratio"]]
        k = min(len(x["curve"]) for x in rs)
        xs = [statistics.fmean(x["curve"][i][0] for x in rs) for i in range(k)]
        for ax, j in zip(axes, (1, 2)):
            ys = [100 * statistics.fmean(x["curve"][i][j] for x in rs) for i in range(k)]
            ax.plot(
                xs,
                ys,
                marker="o",
                ms=3,
                color=colors.get(t["method"], "C3"),
                alpha=0.4 + 0.6 * t["ratio"],
                label=_label(t["method"], t["ratio"]),
            )
    for ax, name in zip(axes, ("WER", "CER")):
        ax.set_xscale("log")
        ax.set_xlabel("samples processed (coreset: selection included)")
        ax.set_ylabel(f"test {name} (%)")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle("Accuracy against compute (mean over seeds)")
    fig.tight_layout()
    return fig


def write_report(data: dict[str, Any], out: Path) -> None:
    """``results.json``, ``table.md``, ``tradeoff.png`` and ``report.md``."""
    out.mkdir(parents=True, exist_ok=True)
    slim = {**data, "runs": [{k: v for k, v in x.items() if k != "epochs_drawn"} for x in data["runs"]]}
    samp = in_loop_sampling(data)
    (out / "results.json").write_text(json.dumps({**slim, "in_loop_sampling": samp}, indent=1))
    table = results_table(data)
    (out / "table.md").write_text(table + "\n")
    fig = plot_tradeoff(data)
    fig.savefig(out / "tradeoff.png", dpi=110)
    plt.close(fig)
    lines = [
        "# Soft random sampling on speech",
        "",
        table,
        "",
        "![trade-off](tradeoff.png)",
        "",
        "## Sampling inside the loop",
        "",
        "| ratio | unique/N measured | expected | coverage after last epoch (measured / expected) |",
        "|---|---|---|---|",
    ]
    for s in samp:
        lines.append(
            f"| {s['ratio']:g} | {s['unique_measured']:.4f} | {s['unique_expected']:.4f} | "
            f"{s['coverage_measured'][-1]:.3f} / {s['coverage_expected'][-1]:.3f} |"
        )
    (out / "report.md").write_text("\n".join(lines) + "\n")


def parser(preset: str = "quick") -> argparse.ArgumentParser:
    """The command line, with the defaults of ``PRESETS[preset]``."""
    return recipe_parser(
        "python -m zoo.recipes srs",
        SRSRun,
        PRESETS,
        preset,
        description="CTC training with full-data epochs, soft random sampling, a fixed random subset and a "
        "k-center coreset at equal compute.",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.recipes srs [--preset quick|standard] [options]``."""
    run, args = parse_recipe(parser, SRSRun, PRESETS, argv)
    corpus_dir = Path(run.corpus)
    if not corpus_dir.is_dir():
        corpus_dir = build_corpus(run.corpus, seed=0, progress=not args.quiet)
    data = asr_data(load_sources(corpus_dir, run.sources, progress=not args.quiet))
    result = run_experiment(run, data, progress=not args.quiet)
    write_report(result, Path(run.out))
    print(results_table(result))
    print(f"report: {Path(run.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
