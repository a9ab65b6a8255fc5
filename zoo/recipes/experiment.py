"""Run BL-JUST and its baselines on a corpus, and turn the runs into a table and figures.

* `load_pool()` / `split_share()` — features of the generated corpus (or any
  [`zoo.data.SpeechDataset`][zoo.data.SpeechDataset] items) and a labelled share of the training pool;
* `run_one()` — train one method (or one ablation of BL-JUST) from a seed and score it on the test set;
* `results_table()`, `plot_wer()`, `plot_joint_curves()`, `plot_ablations()` — the report.

The labelled set is a seeded ``share`` of the pool (the corpus' ``labelled`` + ``unlabelled`` splits); the
unlabelled set is the *whole* pool, audio only, as the authors use all of train-clean-100 for CPC. The test
set is the corpus' ``test`` split (voices never heard in training).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import nn
from tqdm.auto import tqdm

from zoo.checks import check_choice, check_real
from zoo.data import CharTokenizer, FeatureSpec, SpeechDataset, collate
from zoo.losses import CPCLoss, MaskedPredictionLoss
from zoo.recipes.bl_just import (
    PHASES,
    BLJustConfig,
    ablate,
    bl_just_trainer,
    ctc_objective,
    evaluations_done,
    phase_plan,
    plan_evaluations,
)
from zoo.recipes.encoders import ModelParts, build_parts
from zoo.training import Batches, Trainer, evaluate

SSL_LOSSES = ("cpc", "masked")

__all__ = [
    "SSL_LOSSES",
    "Pool",
    "RecipeData",
    "RunResult",
    "build_ssl_loss",
    "load_pool",
    "plot_ablations",
    "plot_joint_curves",
    "plot_wer",
    "results_table",
    "run_one",
    "smooth",
    "split_share",
]


@dataclass
class Pool:
    """Feature items of a corpus: the training ``pool``, the ``test`` items, how to batch and decode them."""

    pool: list[dict[str, Any]]
    test: list[dict[str, Any]]
    collate: Callable[[list[Any]], dict[str, Any]]
    decode: Callable[[list[int]], str]
    n_feats: int
    vocab_size: int
    dev: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RecipeData:
    """One labelled share of a `Pool`: ``labelled`` ⊂ pool, ``unlabelled`` = the whole pool (``dev``: the
    pool's dev items, empty unless `load_pool()` was asked for them)."""

    labelled: list[dict[str, Any]]
    unlabelled: list[dict[str, Any]]
    test: list[dict[str, Any]]
    collate: Callable[[list[Any]], dict[str, Any]]
    decode: Callable[[list[int]], str]
    n_feats: int
    vocab_size: int
    share: float
    dev: list[dict[str, Any]] = field(default_factory=list)


def load_pool(
    corpus_dir: str | Path,
    n_mels: int = 40,
    languages: Sequence[str] | None = None,
    progress: bool = False,
    dev: bool = False,
) -> Pool:
    """Log-mel features (per-utterance CMVN) of a built corpus' training pool and test split (and of its
    dev split with ``dev=True``: `run_one()` then also scores every run on it, for choosing settings)."""
    tok = CharTokenizer.from_corpus(corpus_dir)
    fe = FeatureSpec(n_mels=n_mels, cmvn=True).build()  # the features zoo.train and zoo.transcribe compute
    kw: dict[str, Any] = {"languages": languages}
    pool_ds = SpeechDataset(corpus_dir, ["labelled", "unlabelled"], tok, fe, **kw)
    test_ds = SpeechDataset(corpus_dir, "test", tok, fe, **kw)
    with torch.no_grad():
        pool = [pool_ds[i] for i in tqdm(range(len(pool_ds)), desc="features", disable=not progress)]
        test = [test_ds[i] for i in range(len(test_ds))]
        dev_items = []
        if dev:
            dev_ds = SpeechDataset(corpus_dir, "dev", tok, fe, **kw)
            dev_items = [dev_ds[i] for i in range(len(dev_ds))]
    return Pool(pool, test, collate, tok.decode, n_mels, tok.vocab_size, dev_items)


def split_share(pool: Pool, share: float, seed: int = 0, min_labelled: int = 2) -> RecipeData:
    """A seeded labelled subset of ``share`` of the pool (at least ``min_labelled`` items)."""
    check_real(share, "share", low=0.0, low_open=True, high=1.0)
    n = len(pool.pool)
    k = min(n, max(min_labelled, round(share * n)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(10_007 * seed + 17)).tolist()
    labelled = [pool.pool[i] for i in sorted(perm[:k])]
    return RecipeData(
        labelled,
        pool.pool,
        pool.test,
        pool.collate,
        pool.decode,
        pool.n_feats,
        pool.vocab_size,
        share,
        pool.dev,
    )


def build_ssl_loss(kind: str, parts: ModelParts, n_feats: int, *, seed: int = 0, **kwargs: Any) -> nn.Module:
    """``"cpc"``: [`zoo.losses.CPCLoss`][zoo.losses.CPCLoss]; ``"masked"``:
    [`zoo.losses.MaskedPredictionLoss`][zoo.losses.MaskedPredictionLoss]."""
    check_choice(kind, "ssl", SSL_LOSSES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7)
        if kind == "cpc":
            return CPCLoss(parts.dim, seed=seed, **kwargs)
        return MaskedPredictionLoss(parts.dim, n_feats, stride=parts.stride, seed=seed, **kwargs)


@dataclass
class RunResult:
    """One trained run: what was trained, its test (and, when the data has a dev split, dev) error rates,
    compute and loss history."""

    method: str
    variant: str
    share: float
    seed: int
    wer: float
    cer: float
    evaluations: dict[str, int]
    seconds: float
    phase_seconds: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    examples: list[tuple[str, str]] = field(default_factory=list)
    dev_wer: float | None = None
    dev_cer: float | None = None

    @property
    def label(self) -> str:
        return self.method if self.variant in ("", "full") else f"{self.method}:{self.variant}"


def stream(
    items: Sequence[Any], batch_size: int, collate_fn: Callable[[list[Any]], Any], seed: int
) -> Batches:
    """Random (unbucketed) batches of ``batch_size`` items, full shuffled epochs, incomplete batches
    dropped: the recipe's labelled and unlabelled streams ([`zoo.training.Batches`][zoo.training.Batches])."""
    return Batches.shuffled(items, batch_size, collate_fn, seed=seed, pool_batches=1, drop_last=True)


@torch.no_grad()
def _final_losses(trainer: Trainer, data: RecipeData, batch_size: int, batches: int = 4) -> dict[str, float]:
    """CTC on labelled batches and the SSL loss on unlabelled batches, eval mode, fixed sampling."""
    parts = trainer.state.modules["model"]
    parts.eval()
    ssl = copy.deepcopy(trainer.state.modules["ssl_loss"]).eval()
    gen = getattr(ssl, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed(12345)
    lab = stream(data.labelled, batch_size, data.collate, seed=999)
    unl = stream(data.unlabelled, batch_size, data.collate, seed=998)
    f = statistics.fmean(float(ctc_objective(parts, next(lab))) for _ in range(batches))  # type: ignore[arg-type]
    g = statistics.fmean(
        float(ssl(parts.encoder, (b := next(unl))["feats"], b["feat_lens"])) for _ in range(batches)
    )
    return {"f": f, "g": g}


def run_one(
    data: RecipeData,
    cfg: BLJustConfig,
    method: str,
    *,
    seed: int = 0,
    variant: str = "full",
    encoder: str = "tiny",
    ssl: str = "cpc",
    batch_size: int = 8,
    unlabelled_batch_size: int = 8,
    ssl_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> RunResult:
    """Train ``method`` (with BL-JUST ``variant`` from
    [`zoo.recipes.bl_just.ABLATIONS`][zoo.recipes.bl_just.ABLATIONS]) and test it.

    The model, the SSL head, the batch order and dropout all derive from ``seed``; the run leaves the
    global torch RNG as it found it.
    """
    run_cfg = ablate(cfg, variant) if method == "bl_just" else cfg
    parts = build_parts(encoder, data.n_feats, data.vocab_size, seed=seed)
    ssl_loss = build_ssl_loss(ssl, parts, data.n_feats, seed=seed, **(ssl_kwargs or {}))
    lab = stream(data.labelled, batch_size, data.collate, seed=2 * seed)
    unl = stream(data.unlabelled, unlabelled_batch_size, data.collate, seed=2 * seed + 1)
    trainer = bl_just_trainer(
        parts,
        ssl_loss,
        lab,
        unl,
        run_cfg,
        method,
        progress=progress,
        desc=f"{method}:{variant} share={data.share:g} seed={seed}",
    )
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        history = trainer.run()
    seconds = time.perf_counter() - t0
    plan = phase_plan(method, run_cfg)
    evaluations = evaluations_done(plan, trainer.state.step)
    assert evaluations == plan_evaluations(plan)
    final = _final_losses(trainer, data, batch_size)
    scores = evaluate(parts, data.test, data.decode, data.collate)
    dev = evaluate(parts, data.dev, data.decode, data.collate) if data.dev else None
    phase_seconds = {k: 0.0 for k in PHASES}
    for h in history:
        phase_seconds[h["phase"]] += h["step_seconds"]
    return RunResult(
        method,
        variant if method == "bl_just" else "",
        data.share,
        seed,
        scores["wer"],
        scores["cer"],
        evaluations,
        seconds,
        phase_seconds,
        [{k: h[k] for k in ("step", "phase", "f", "g", "gamma")} for h in history],
        final,
        list(zip(scores["refs"], scores["hyps"]))[:3],
        None if dev is None else dev["wer"],
        None if dev is None else dev["cer"],
    )


# -- report --------------------------------------------------------------------------------------


def _stats(xs: Sequence[float]) -> tuple[float, float]:
    m = statistics.fmean(xs)
    return m, (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def group(results: Sequence[RunResult]) -> dict[tuple[float, str], list[RunResult]]:
    """Results keyed by ``(share, label)``, in first-seen order."""
    out: dict[tuple[float, str], list[RunResult]] = {}
    for r in results:
        out.setdefault((r.share, r.label), []).append(r)
    return out


def results_table(results: Sequence[RunResult]) -> str:
    """Markdown table: share, method, test WER and CER (mean ± sample std over seeds), compute, time."""
    lines = [
        "| labelled share | method | seeds | test WER % | test CER % | grad. evals (sup + unsup) | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for (share, label), rs in group(results).items():
        w, ws = _stats([100 * r.wer for r in rs])
        c, cs = _stats([100 * r.cer for r in rs])
        ev = rs[0].evaluations
        t, _ = _stats([r.seconds for r in rs])
        lines.append(
            f"| {100 * share:g}% | {label} | {len(rs)} | {w:.1f} ± {ws:.1f} | {c:.1f} ± {cs:.1f} | "
            f"{ev['total']} ({ev['sup']} + {ev['unsup']}) | {t:.0f} |"
        )
    return "\n".join(lines)


_COLORS = {"bl_just": "C0", "pt_ft": "C1", "supervised": "C2"}


def plot_wer(results: Sequence[RunResult], metric: str = "wer", ax: Any = None) -> Any:
    """Test error rate against labelled share per method: seed means, ± std bars, each seed as a dot."""
    check_choice(metric, "metric", ("wer", "cer"))
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.8))
    groups = group([r for r in results if r.variant in ("", "full")])
    methods = list(dict.fromkeys(label for _, label in groups))
    shares = sorted({s for s, _ in groups})
    for j, m in enumerate(methods):
        xs, ms, ss = [], [], []
        for s in shares:
            rs = groups.get((s, m))
            if not rs:
                continue
            vals = [100 * getattr(r, metric) for r in rs]
            mu, sd = _stats(vals)
            x = shares.index(s) + 0.08 * (j - (len(methods) - 1) / 2)
            xs.append(x)
            ms.append(mu)
            ss.append(sd)
            ax.scatter([x] * len(vals), vals, s=10, alpha=0.5, color=_COLORS.get(m, f"C{j}"))
        ax.errorbar(xs, ms, yerr=ss, marker="o", capsize=3, label=m, color=_COLORS.get(m, f"C{j}"))
    ax.set_xticks(range(len(shares)), [f"{100 * s:g}%" for s in shares])
    ax.set_xlim(-0.5, len(shares) - 0.5)
    ax.set_xlabel("labelled share of the training pool")
    ax.set_ylabel(f"test {metric.upper()} (%)")
    ax.set_title(f"Test {metric.upper()} at equal compute (mean ± std over seeds)")
    ax.legend()
    return ax


def smooth(xs: list[float], w: int) -> list[float]:
    """Moving average of ``xs`` over the last ``w`` values (fewer at the start)."""
    out, acc = [], 0.0
    for i, x in enumerate(xs):
        acc += x
        if i >= w:
            acc -= xs[i - w]
        out.append(acc / min(i + 1, w))
    return out


def joint_curves(result: RunResult, v_hat: float | None = None, window: int = 10) -> dict[str, Any]:
    """Smoothed f, g and the gap g − v̂ over the joint phase of a BL-JUST run (``v̂``: an estimate of min g)."""
    rows = [h for h in result.history if h["phase"] == "joint"]
    if not rows:
        raise ValueError("the run has no joint phase")
    steps = [h["step"] for h in rows]
    f = smooth([h["f"] for h in rows], window)
    g = smooth([h["g"] for h in rows], window)
    out: dict[str, Any] = {"steps": steps, "f": f, "g": g, "gamma": [h["gamma"] for h in rows]}
    if v_hat is not None:
        out["gap"] = [x - v_hat for x in g]
    return out


def plot_joint_curves(result: RunResult, v_hat: float | None = None, window: int | None = None) -> Any:
    """Figure: supervised loss f, unsupervised loss g, gap g − v̂ and γ against steps (all phases shaded).

    ``window``: moving-average length (default ``max(10, steps // 60)``).
    """
    window = window or max(10, len(result.history) // 60)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    hist = result.history
    fs = [(h["step"], h["f"]) for h in hist if h["f"] is not None]
    gs = [(h["step"], h["g"]) for h in hist if h["g"] is not None]
    axes[0].plot(
        [s for s, _ in fs], smooth([v for _, v in fs], window), color="C2", label="f = CTC (labelled)"
    )
    axes[0].set_ylabel("CTC loss")
    axes[1].plot(
        [s for s, _ in gs], smooth([v for _, v in gs], window), color="C1", label="g = SSL (unlabelled)"
    )
    axes[1].set_ylabel("self-supervised loss")
    cur = joint_curves(result, v_hat, window)
    if "gap" in cur:
        axes[2].plot(cur["steps"], cur["gap"], color="C3", label="gap g − v̂")
        axes[2].axhline(0.0, color="k", lw=0.6)
    ax2 = axes[2].twinx()
    ax2.plot(cur["steps"], cur["gamma"], color="C0", ls="--", label="γ")
    ax2.set_ylabel("γ")
    axes[2].set_ylabel("penalty gap g − v̂")
    axes[2].plot([], [], color="C0", ls="--", label="γ (right axis)")
    for ax in axes:
        bounds: dict[str, list[int]] = {}
        for h in hist:
            bounds.setdefault(h["phase"], []).append(h["step"])
        for ph, col in (("ssl", "C1"), ("joint", "C0"), ("sup", "C2")):
            if ph in bounds:
                ax.axvspan(min(bounds[ph]), max(bounds[ph]), color=col, alpha=0.07)
        ax.set_xlabel("step (shaded: exploration / joint / fine-tuning)")
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(
        f"BL-JUST losses, share {100 * result.share:g}%, seed {result.seed} (moving average of {window})"
    )
    return fig


def plot_ablations(results: Sequence[RunResult], metric: str = "wer") -> Any:
    """Bar chart of test error per BL-JUST variant (mean ± std over seeds) beside the baselines."""
    groups = group(results)
    labels = list(dict.fromkeys(label for _, label in groups))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, lab in enumerate(labels):
        vals = [100 * getattr(r, metric) for (_, la), rs in groups.items() if la == lab for r in rs]
        mu, sd = _stats(vals)
        ax.bar(i, mu, yerr=sd, capsize=3, color=f"C{i}")
        ax.scatter([i] * len(vals), vals, color="k", s=8, zorder=3)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"test {metric.upper()} (%)")
    ax.set_title("BL-JUST ablations at equal compute")
    return fig
