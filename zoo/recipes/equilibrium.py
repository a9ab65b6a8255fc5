r"""Heterogeneous self-supervised pre-training with equilibrium constraints (Cui, Saif, Kingsbury & Chen,
arXiv 2508.19990), on the zoo's speech sources.

The unlabelled audio comes from $M$ *sources* (here: English on a clean and on a telephone channel,
German, Spanish: the ``"sources"`` corpus preset). Pre-training minimises a self-supervised loss $\ell_i$
(CPC/InfoNCE, [`zoo.losses.CPCLoss`][zoo.losses.CPCLoss], or masked prediction) of the encoder $\theta$
and the SSL head $\eta$:

* **CSSL** — the averaged global loss $\frac1M\sum_i\ell_i(\theta)$ (`CSSLStep`);
* **Equilibrium** — $\frac1M\sum_i\ell_i(\phi_i^K(\theta))$ with $K$ inner steps of size $\beta$ on
  source $i$'s own loss, with [`bilevel.Equilibrium`][bilevel.Equilibrium] (`EquilibriumStep`):
  ``first_order`` (FOMAML-like), ``second_order`` (exact, through the inner steps) or ``reptile``.

Then each pre-trained encoder is fine-tuned with CTC on a small labelled set of each source separately
(`finetune()`), and its WER is measured on that source's held-out voices.

Compute is counted in *samples processed*: a CSSL step reads one batch per source, an Equilibrium step
$K+1$ per source, so at a fixed `PretrainConfig.samples` CSSL takes $K+1$ times more steps. With $K=0$
`EquilibriumStep` performs exactly the operations of `CSSLStep` (the per-source gradients summed, then
divided by $M$), so both runs agree bit for bit.

Everything runs on the one loop ([`zoo.training.Trainer`][zoo.training.Trainer]); batches come from
[`zoo.training.Batches`][zoo.training.Batches] (one stream per source, `SourceBatches`).
``python -m zoo.recipes equilibrium --preset quick`` runs the comparison and writes its tables and figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn
from torch.func import functional_call
from tqdm.auto import tqdm

from bilevel import Equilibrium
from zoo.checks import check_choice, check_int, check_real
from zoo.data import CharTokenizer, FeatureSpec, SpeechDataset, build_corpus, collate
from zoo.recipes.bl_just import ctc_objective
from zoo.recipes.encoders import ENCODERS, ModelParts, build_parts
from zoo.recipes.experiment import SSL_LOSSES, build_ssl_loss
from zoo.training import (
    Batches,
    Budget,
    Trainer,
    TrainState,
    average_gradients,
    evaluate,
    parse_recipe,
    recipe_parser,
)

PRETRAIN_METHODS = ("cssl", "first_order", "second_order", "reptile")
"""``cssl``: the averaged global loss; the others: [`bilevel.Equilibrium`][bilevel.Equilibrium]'s modes."""

DEFAULT_SOURCES = ("en:clean", "en:telephone", "de", "es")

__all__ = [
    "DEFAULT_SOURCES",
    "PRESETS",
    "PRETRAIN_METHODS",
    "CSSLStep",
    "CTCStep",
    "EquilibriumRun",
    "EquilibriumStep",
    "FinetuneConfig",
    "PretrainConfig",
    "SSLModel",
    "Source",
    "SourceBatches",
    "SourceCorpus",
    "finetune",
    "grid_table",
    "load_sources",
    "main",
    "matches_source",
    "parser",
    "per_source_wer",
    "plot_curves",
    "plot_grid",
    "pretrain",
    "pretrain_trainer",
    "results_table",
    "run_experiment",
    "write_report",
]

Item = dict[str, Any]


# -- data ----------------------------------------------------------------------------------------------
def matches_source(spec: str, item: Item) -> bool:
    """Whether ``item`` belongs to source ``spec``: ``"lang"`` (every item of that language) or
    ``"lang:channel"`` (e.g. ``"en:telephone"``); the item's ``domain`` is ``lang:voice:rate:channel``."""
    parts = str(item["domain"]).split(":")
    want = spec.split(":")
    if len(want) not in (1, 2) or not all(want):
        raise ValueError(f"a source must be 'lang' or 'lang:channel', got {spec!r}")
    return parts[0] == want[0] and (len(want) == 1 or parts[-1] == want[1])


@dataclass
class Source:
    """One source's feature items by split: ``unlabelled`` (pre-training), ``labelled`` (fine-tuning),
    ``dev`` (choices) and ``test`` (the verdict; voices never heard in training)."""

    name: str
    unlabelled: list[Item]
    labelled: list[Item]
    dev: list[Item]
    test: list[Item]


@dataclass
class SourceCorpus:
    """The sources of a corpus and how to batch and decode their items."""

    sources: list[Source]
    collate: Callable[[list[Any]], dict[str, Any]]
    decode: Callable[[list[int]], str]
    n_feats: int
    vocab_size: int

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]


def load_sources(
    corpus_dir: str | Path,
    sources: Sequence[str] = DEFAULT_SOURCES,
    *,
    n_mels: int = 40,
    progress: bool = False,
) -> SourceCorpus:
    """Log-mel features (per-utterance CMVN) of every split of a built corpus, partitioned by source.

    Raises ``ValueError`` for a source with no item in one of the four splits."""
    if not sources:
        raise ValueError("sources is empty: expected at least one source")
    tok = CharTokenizer.from_corpus(corpus_dir)
    fe = FeatureSpec(n_mels=n_mels, cmvn=True).build()
    ds = SpeechDataset(corpus_dir, ["unlabelled", "labelled", "dev", "test"], tok, fe)
    with torch.no_grad():
        items = [ds[i] for i in tqdm(range(len(ds)), desc="features", disable=not progress)]
    out = []
    for spec in sources:
        mine = [it for it in items if matches_source(spec, it)]
        by = {
            sp: [it for it in mine if it["split"] == sp] for sp in ("unlabelled", "labelled", "dev", "test")
        }
        empty = [sp for sp, v in by.items() if not v]
        if empty:
            raise ValueError(f"source {spec!r} has no item in split(s) {empty} of {corpus_dir}")
        out.append(Source(spec, by["unlabelled"], by["labelled"], by["dev"], by["test"]))
    return SourceCorpus(out, collate, tok.decode, n_mels, tok.vocab_size)


class SourceBatches:
    """The batch source of multi-source pre-training: every step, ``per_step`` batches of every source
    (one [`zoo.training.Batches`][zoo.training.Batches] stream per source, shuffled full epochs).

    ``batch(step)`` returns ``[[batch, ...] per source]``; the state is every stream's state."""

    def __init__(self, streams: Sequence[Batches], per_step: int) -> None:
        if not streams:
            raise ValueError("streams is empty: expected one stream per source")
        self.streams = list(streams)
        self.per_step = check_int(per_step, "per_step", low=1)

    def batch(self, step: int) -> list[list[dict[str, Any]]]:
        return [[next(s) for _ in range(self.per_step)] for s in self.streams]

    def state_dict(self) -> dict[str, Any]:
        return {"streams": [s.state_dict() for s in self.streams]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["streams"]) != len(self.streams):
            raise ValueError(f"the state has {len(state['streams'])} streams, this run {len(self.streams)}")
        for s, st in zip(self.streams, state["streams"]):
            s.load_state_dict(st)


# -- pre-training --------------------------------------------------------------------------------------
class SSLModel(nn.Module):
    """The pre-trained parameters: the encoder θ and the SSL head η; ``forward(feats, lens)`` is the SSL
    loss (so that ``torch.func.functional_call`` can evaluate it at any parameter values)."""

    def __init__(self, encoder: nn.Module, ssl_loss: nn.Module) -> None:
        super().__init__()
        self.encoder, self.ssl_loss = encoder, ssl_loss

    def forward(self, feats: Tensor, lens: Tensor) -> Tensor:
        return self.ssl_loss(self.encoder, feats, lens)  # type: ignore[no-any-return]


def _finite(loss: Tensor, what: str, step: int) -> Tensor:
    if not bool(torch.isfinite(loss.detach())):
        raise FloatingPointError(f"the {what} is not finite ({float(loss)}) at step {step}")
    return loss


class CSSLStep:
    r"""Step function of CSSL: $d = \frac1M\sum_i\nabla\ell_i(\theta)$ (each source's gradient on its
    batch, summed, then divided by $M$), written into ``.grad``, then ``optimizers["pretrain"].step()``.

    Returns ``{"loss": mean source loss, "loss_<i>": source losses}``."""

    def __call__(self, state: TrainState, batch: list[list[dict[str, Any]]]) -> dict[str, Any]:
        model, opt = state.modules["ssl"], state.optimizers["pretrain"]
        params = [p for p in model.parameters() if p.requires_grad]
        total = [torch.zeros_like(p, memory_format=torch.preserve_format).detach() for p in params]
        losses = []
        for i, source in enumerate(batch):
            (b,) = source
            loss = _finite(model(b["feats"], b["feat_lens"]), f"SSL loss of source {i}", state.step)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            total = [t + (torch.zeros_like(p) if g is None else g) for t, g, p in zip(total, grads, params)]
            losses.append(float(loss.detach()))
        for p, t in zip(params, total):
            p.grad = t / len(batch)
        opt.step()
        return {"loss": statistics.fmean(losses), **{f"loss_{i}": v for i, v in enumerate(losses)}}


class EquilibriumStep:
    r"""Step function of equilibrium-constrained pre-training: one
    [`bilevel.Equilibrium.step()`][bilevel.Equilibrium.step] whose closure for source $i$ reads the
    source's $K+1$ batches of this step in turn (functional closures for ``second_order``).

    Returns ``{"loss": mean loss at θ, "loss_after": mean loss after the inner steps, "grad_norm"}``."""

    def __call__(self, state: TrainState, batch: list[list[dict[str, Any]]]) -> dict[str, Any]:
        model, opt = state.modules["ssl"], state.optimizers["pretrain"]
        names = [n for n, p in model.named_parameters() if p.requires_grad]

        def closure(batches: list[dict[str, Any]]) -> Callable[..., Tensor]:
            it = iter(batches)

            def loss(values: list[Tensor] | None = None) -> Tensor:
                b = next(it)
                if values is None:
                    return model(b["feats"], b["feat_lens"])  # type: ignore[no-any-return]
                return functional_call(model, dict(zip(names, values)), (b["feats"], b["feat_lens"]))  # type: ignore[no-any-return]

            return loss

        stats = opt.step(source_losses=[closure(bs) for bs in batch])
        return {"loss": stats.mean_before, "loss_after": stats.mean_after, "grad_norm": stats.grad_norm}


@dataclass(frozen=True)
class PretrainConfig:
    """One pre-training run.

    Attributes:
        method: ``cssl``, ``first_order``, ``second_order`` or ``reptile``.
        inner_steps: K, inner steps per source (``first_order`` with K = 0 is CSSL).
        inner_lr: β, the inner step size.
        lr: outer AdamW learning rate.
        samples: compute: utterances processed in all (every method the same).
        batch_size: utterances per batch.
        weight_decay: AdamW weight decay.
    """

    method: str = "first_order"
    inner_steps: int = 1
    inner_lr: float = 0.05
    lr: float = 2e-3
    samples: int = 3200
    batch_size: int = 8
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        check_choice(self.method, "method", PRETRAIN_METHODS)
        check_int(self.inner_steps, "inner_steps", low=1 if self.method in ("reptile", "second_order") else 0)
        check_real(self.inner_lr, "inner_lr", low=0.0)
        check_real(self.lr, "lr", low=0.0, low_open=True)
        check_int(self.samples, "samples", low=1)
        check_int(self.batch_size, "batch_size", low=1)
        check_real(self.weight_decay, "weight_decay", low=0.0)

    def batches_per_source(self) -> int:
        """Batches of each source one step reads (1 for CSSL, K + 1 for Equilibrium)."""
        return 1 if self.method == "cssl" else self.inner_steps + 1

    def steps(self, n_sources: int) -> int:
        """Outer steps that spend `samples` utterances over ``n_sources`` sources (at least 1)."""
        return max(1, self.samples // (self.batch_size * n_sources * self.batches_per_source()))


def pretrain_trainer(
    parts: ModelParts, ssl_loss: nn.Module, corpus: SourceCorpus, cfg: PretrainConfig, *, seed: int = 0
) -> Trainer:
    """The [`zoo.training.Trainer`][zoo.training.Trainer] of one pre-training run on the unlabelled items
    of every source: module ``"ssl"`` = `SSLModel` (encoder + SSL head), optimizer ``"pretrain"`` (AdamW
    for CSSL, [`bilevel.Equilibrium`][bilevel.Equilibrium] driving AdamW otherwise), `SourceBatches`, a
    budget of `PretrainConfig.steps()`."""
    model = SSLModel(parts.encoder, ssl_loss)
    params = [p for p in model.parameters() if p.requires_grad]
    opt: Any
    if cfg.method == "cssl":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        step_fn: Any = CSSLStep()
    else:
        opt = Equilibrium(
            params,
            lr=cfg.lr,
            inner_lr=cfg.inner_lr,
            inner_steps=cfg.inner_steps,
            mode=cfg.method,
            functional=cfg.method == "second_order",
            optimizer=torch.optim.AdamW,
            optimizer_kwargs={"weight_decay": cfg.weight_decay},
        )
        step_fn = EquilibriumStep()
    streams = [
        Batches.shuffled(
            s.unlabelled, cfg.batch_size, corpus.collate, seed=1000 * seed + i, pool_batches=1, drop_last=True
        )
        for i, s in enumerate(corpus.sources)
    ]
    state = TrainState(
        modules={"ssl": model},
        optimizers={"pretrain": opt},
        data=SourceBatches(streams, cfg.batches_per_source()),
        generator=torch.Generator().manual_seed(seed),
    )
    return Trainer(
        state,
        step_fn,
        Budget(steps=cfg.steps(len(corpus.sources))),
        meta={"recipe": "equilibrium", "config": asdict(cfg)},
        progress=False,
    )


def pretrain(
    corpus: SourceCorpus,
    cfg: PretrainConfig,
    *,
    seed: int = 0,
    encoder: str = "tiny",
    dim: int = 32,
    ssl: str = "cpc",
    ssl_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pre-train a fresh encoder (initialised from ``seed``); returns ``{"encoder": state_dict,
    "seconds", "steps", "history"}``. Leaves the global torch RNG as it found it."""
    parts = build_parts(encoder, corpus.n_feats, corpus.vocab_size, seed=seed, dim=dim)
    ssl_loss = build_ssl_loss(ssl, parts, corpus.n_feats, seed=seed, **(ssl_kwargs or {}))
    trainer = pretrain_trainer(parts, ssl_loss, corpus, cfg, seed=seed)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        history = trainer.run()
    return {
        "encoder": copy.deepcopy(parts.encoder.state_dict()),
        "seconds": time.perf_counter() - t0,
        "steps": trainer.state.step,
        "history": [{k: h[k] for k in ("step", "loss") if k in h} for h in history],
    }


# -- fine-tuning ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FinetuneConfig:
    """Per-source CTC fine-tuning from a pre-trained encoder (a fresh CTC head).

    Attributes:
        steps: AdamW steps.
        lr: AdamW learning rate.
        batch_size: utterances per batch.
        items: labelled utterances of the source used (the first ones; ``None``: all).
        eval_every: steps between WER evaluations (the fine-tuning curve).
        weight_decay: AdamW weight decay.
    """

    steps: int = 60
    lr: float = 3e-3
    batch_size: int = 8
    items: int | None = 24
    eval_every: int = 20
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        check_int(self.steps, "steps", low=1)
        check_real(self.lr, "lr", low=0.0, low_open=True)
        check_int(self.batch_size, "batch_size", low=1)
        if self.items is not None:
            check_int(self.items, "items", low=1)
        check_int(self.eval_every, "eval_every", low=1)


class CTCStep:
    """Step function of CTC training: ``optimizers["model"]`` (AdamW in the recipes) on
    [`ctc_objective()`][zoo.recipes.bl_just.ctc_objective] of ``state.model`` (a
    [`ModelParts`][zoo.recipes.ModelParts]: encoder and CTC head); under ``torch.distributed`` the gradients
    are averaged across ranks first. Returns ``{"loss"}``."""

    def __call__(self, state: TrainState, batch: dict[str, Any]) -> dict[str, Any]:
        parts, opt = state.model, state.optimizers["model"]
        opt.zero_grad(set_to_none=True)
        loss = _finite(ctc_objective(parts, batch, parts.blank), "CTC loss", state.step)  # type: ignore[arg-type]
        loss.backward()
        average_gradients(
            parts, weight=len(batch["feat_lens"])
        )  # under torchrun: the global batch's gradient
        opt.step()
        return {"loss": float(loss.detach())}


def finetune(
    encoder_state: dict[str, Tensor] | None,
    source: Source,
    corpus: SourceCorpus,
    cfg: FinetuneConfig,
    *,
    seed: int = 0,
    split: str = "test",
    encoder: str = "tiny",
    dim: int = 32,
) -> dict[str, Any]:
    """Fine-tune with CTC on ``source``'s labelled items, from ``encoder_state`` (``None``: from scratch),
    and score it on ``split`` (``"dev"`` or ``"test"``) every ``cfg.eval_every`` steps.

    The CTC head and the batch order come from ``seed`` alone, so starts of one seed are compared on the
    same head and batches. Returns ``{"curve": [(step, wer, cer)], "wer", "cer"}`` (the last point)."""
    check_choice(split, "split", ("dev", "test"))
    parts = build_parts(encoder, corpus.n_feats, corpus.vocab_size, seed=seed, dim=dim)
    if encoder_state is not None:
        parts.encoder.load_state_dict(encoder_state)
    items = source.labelled if cfg.items is None else source.labelled[: cfg.items]
    held = source.dev if split == "dev" else source.test
    opt = torch.optim.AdamW(parts.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    data = Batches.shuffled(items, cfg.batch_size, corpus.collate, seed=seed, pool_batches=1)
    state = TrainState(modules={"model": parts}, optimizers={"model": opt}, data=data)

    def score(st: TrainState) -> dict[str, Any]:
        r = evaluate(parts, held, corpus.decode, corpus.collate)
        return {"eval_wer": r["wer"], "eval_cer": r["cer"]}

    first = score(state)
    trainer = Trainer(
        state, CTCStep(), Budget(steps=cfg.steps), on_eval=score, eval_every=cfg.eval_every, progress=False
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        history = trainer.run()
    curve = [(0, first["eval_wer"], first["eval_cer"])]
    curve += [(h["step"], h["eval_wer"], h["eval_cer"]) for h in history if "eval_wer" in h]
    if curve[-1][0] != cfg.steps:
        last = score(state)
        curve.append((cfg.steps, last["eval_wer"], last["eval_cer"]))
    return {"curve": curve, "wer": curve[-1][1], "cer": curve[-1][2]}


# -- the experiment --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EquilibriumRun:
    """A ``python -m zoo.recipes equilibrium`` run.

    Attributes:
        corpus: corpus preset or a built corpus directory.
        sources: the sources ('lang' or 'lang:channel').
        methods: pre-training methods compared at equal compute.
        seeds: seeds of the test comparison (model, SSL head, CTC head, batch order).
        tune_seed: the seed of the choices made on dev.
        encoder: the encoder (tiny convolutional, or the zoo's tiny Conformer).
        dim: width of the tiny encoder.
        ssl: the self-supervised loss.
        samples: pre-training compute: utterances processed per run.
        batch_size: utterances per batch (pre-training and fine-tuning).
        lr: outer AdamW learning rate of the Equilibrium variants.
        cssl_lrs: CSSL's learning-rate candidates (as many as the Equilibrium grid has cells: equal tuning
            budgets).
        grid_k: K values of the Equilibrium grid (first order).
        grid_inner_lr: β values of the Equilibrium grid.
        finetune_steps: CTC fine-tuning steps per source.
        finetune_lr: CTC fine-tuning learning rate.
        finetune_items: labelled utterances per source.
        eval_every: steps between points of the fine-tuning curves.
        reduction_steps: steps of the K = 0 reduction check.
        out: output folder.
    """

    corpus: str = "sources"
    sources: tuple[str, ...] = DEFAULT_SOURCES
    methods: tuple[str, ...] = field(default=PRETRAIN_METHODS, metadata={"choices": PRETRAIN_METHODS})
    seeds: tuple[int, ...] = (0, 1, 2)
    tune_seed: int = 100
    encoder: str = field(default="tiny", metadata={"choices": ENCODERS})
    dim: int = 32
    ssl: str = field(default="cpc", metadata={"choices": SSL_LOSSES})
    samples: int = 1536
    batch_size: int = 8
    lr: float = 3e-3
    cssl_lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2)
    grid_k: tuple[int, ...] = (1, 2)
    grid_inner_lr: tuple[float, ...] = (0.03, 0.3)
    finetune_steps: int = 40
    finetune_lr: float = 5e-3
    finetune_items: int = 24
    eval_every: int = 10
    reduction_steps: int = 4
    out: str = "results/equilibrium"

    def __post_init__(self) -> None:
        if not self.methods or "cssl" not in self.methods:
            raise ValueError(f"methods must include 'cssl' (the baseline), got {self.methods}")
        if not self.seeds:
            raise ValueError("seeds is empty")
        if not self.grid_k or not self.grid_inner_lr or not self.cssl_lrs:
            raise ValueError("grid_k, grid_inner_lr and cssl_lrs must not be empty")

    def pretrain_config(self, method: str, **kw: Any) -> PretrainConfig:
        return PretrainConfig(
            method=method, lr=self.lr, samples=self.samples, batch_size=self.batch_size, **kw
        )

    def finetune_config(self) -> FinetuneConfig:
        return FinetuneConfig(
            steps=self.finetune_steps,
            lr=self.finetune_lr,
            batch_size=self.batch_size,
            items=self.finetune_items,
            eval_every=self.eval_every,
        )

    def ssl_kwargs(self) -> dict[str, Any]:
        return {"context_frames": 48, "future_frames": 24} if self.ssl == "cpc" else {}


PRESETS: dict[str, EquilibriumRun] = {
    # The "sources" corpus, the tiny encoder, a 2 × 2 grid, three seeds (minutes on one thread).
    "quick": EquilibriumRun(),
    # The larger corpus, four times the pre-training compute, 3 × 3 grid, five seeds.
    "standard": EquilibriumRun(
        corpus="sources-large",
        seeds=(0, 1, 2, 3, 4),
        dim=64,
        samples=6144,
        cssl_lrs=(3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 3e-2, 5e-2),
        grid_k=(1, 2, 4),
        grid_inner_lr=(0.01, 0.03, 0.1),
        finetune_steps=120,
        finetune_items=48,
        eval_every=20,
    ),
}


def _finetune_all(
    run: EquilibriumRun, corpus: SourceCorpus, encoder_state: Any, seed: int, split: str
) -> list[dict[str, Any]]:
    return [
        finetune(
            encoder_state,
            s,
            corpus,
            run.finetune_config(),
            seed=seed,
            split=split,
            encoder=run.encoder,
            dim=run.dim,
        )
        for s in corpus.sources
    ]


def _score(results: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """(mean WER, mean CER) over sources: the dev criterion (WER first, CER breaks ties)."""
    return statistics.fmean(r["wer"] for r in results), statistics.fmean(r["cer"] for r in results)


def _max_param_diff(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def run_experiment(run: EquilibriumRun, corpus: SourceCorpus, *, progress: bool = False) -> dict[str, Any]:
    """Everything the report and the claims need, as plain data:

    1. ``tuning``: on dev (seed ``tune_seed``), CSSL's lr over ``cssl_lrs`` and first-order Equilibrium
       over the (K, β) grid (the sensitivity grid), each pre-trained and fine-tuned on every source;
    2. ``runs``: for every seed and method, pre-training at the chosen settings (Reptile and second order
       use first order's (K, β)) and per-source fine-tuning curves on test;
    3. ``reduction``: CSSL against first-order Equilibrium with K = 0, same seed, parameter difference.
    """
    bar = tqdm(desc="equilibrium", disable=not progress, leave=False)
    kw: dict[str, Any] = {
        "encoder": run.encoder,
        "dim": run.dim,
        "ssl": run.ssl,
        "ssl_kwargs": run.ssl_kwargs(),
    }

    def tuned(cfg: PretrainConfig) -> dict[str, Any]:
        pre = pretrain(corpus, cfg, seed=run.tune_seed, **kw)
        res = _finetune_all(run, corpus, pre["encoder"], run.tune_seed, "dev")
        bar.update(1)
        wer, cer = _score(res)
        return {
            "dev_wer": wer,
            "dev_cer": cer,
            "per_source": [r["wer"] for r in res],
            "seconds": pre["seconds"],
        }

    cssl_tuning = [
        {"lr": lr, **tuned(replace(run.pretrain_config("cssl", inner_steps=0), lr=lr))} for lr in run.cssl_lrs
    ]
    grid = [
        {"K": k, "inner_lr": b, **tuned(run.pretrain_config("first_order", inner_steps=k, inner_lr=b))}
        for k in run.grid_k
        for b in run.grid_inner_lr
    ]
    best_cssl = min(cssl_tuning, key=lambda r: (r["dev_wer"], r["dev_cer"]))
    best_eq = min(grid, key=lambda r: (r["dev_wer"], r["dev_cer"]))
    chosen: dict[str, PretrainConfig] = {}
    for m in run.methods:
        if m == "cssl":
            chosen[m] = replace(run.pretrain_config("cssl", inner_steps=0), lr=best_cssl["lr"])
        else:
            chosen[m] = run.pretrain_config(m, inner_steps=best_eq["K"], inner_lr=best_eq["inner_lr"])
    runs = []
    for seed in run.seeds:
        for m, cfg in chosen.items():
            pre = pretrain(corpus, cfg, seed=seed, **kw)
            res = _finetune_all(run, corpus, pre["encoder"], seed, "test")
            bar.update(1)
            runs.append(
                {
                    "method": m,
                    "seed": seed,
                    "pretrain_seconds": pre["seconds"],
                    "pretrain_steps": pre["steps"],
                    "seconds_per_step": pre["seconds"] / max(1, pre["steps"]),
                    "pretrain_loss": [h["loss"] for h in pre["history"]],
                    "sources": {s.name: r for s, r in zip(corpus.sources, res)},
                }
            )
    # the K = 0 reduction: the same seed, CSSL against Equilibrium(K = 0), a few steps
    red = replace(run, samples=run.batch_size * len(corpus.sources) * run.reduction_steps)
    a = pretrain(corpus, red.pretrain_config("cssl", inner_steps=0), seed=run.seeds[0], **kw)
    b = pretrain(corpus, red.pretrain_config("first_order", inner_steps=0), seed=run.seeds[0], **kw)
    bar.close()
    identical = all(torch.equal(a["encoder"][k], b["encoder"][k]) for k in a["encoder"])
    return {
        "run": asdict(run),
        "sources": corpus.names,
        "sizes": {
            s.name: {sp: len(getattr(s, sp)) for sp in ("unlabelled", "labelled", "dev", "test")}
            for s in corpus.sources
        },
        "tuning": {
            "cssl": cssl_tuning,
            "grid": grid,
            "chosen": {m: asdict(c) for m, c in chosen.items()},
        },
        "runs": runs,
        "reduction": {
            "steps": a["steps"],
            "identical": identical,
            "max_abs_diff": _max_param_diff(a["encoder"], b["encoder"]),
            "losses_cssl": [h["loss"] for h in a["history"]],
            "losses_k0": [h["loss"] for h in b["history"]],
        },
    }


# -- report ----------------------------------------------------------------------------------------------
def per_source_wer(data: dict[str, Any], method: str) -> dict[str, list[float]]:
    """Test WER per source of ``method``'s runs, in seed order."""
    out: dict[str, list[float]] = {s: [] for s in data["sources"]}
    for r in data["runs"]:
        if r["method"] == method:
            for s in data["sources"]:
                out[s].append(r["sources"][s]["wer"])
    return out


def results_table(data: dict[str, Any]) -> str:
    """Markdown: test WER % (mean ± std over seeds) per source and on average, pre-training cost."""
    names = data["sources"]
    lines = [
        "| method | " + " | ".join(names) + " | mean | pre-train s/step | steps |",
        "|---|" + "---|" * (len(names) + 3),
    ]
    methods = list(dict.fromkeys(r["method"] for r in data["runs"]))
    for m in methods:
        ws = per_source_wer(data, m)
        cells = []
        for s in names:
            v = [100 * x for x in ws[s]]
            cells.append(f"{statistics.fmean(v):.1f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.1f}")
        means = [100 * statistics.fmean(ws[s][i] for s in names) for i in range(len(ws[names[0]]))]
        rs = [r for r in data["runs"] if r["method"] == m]
        sps = statistics.fmean(r["seconds_per_step"] for r in rs)
        sd = statistics.stdev(means) if len(means) > 1 else 0.0
        lines.append(
            f"| {m} | " + " | ".join(cells) + f" | {statistics.fmean(means):.1f} ± {sd:.1f} | "
            f"{sps * 1e3:.0f} ms | {rs[0]['pretrain_steps']} |"
        )
    return "\n".join(lines)


def grid_table(data: dict[str, Any]) -> str:
    """Markdown: mean dev WER % of first-order Equilibrium over the (K, β) grid, and CSSL's lr search."""
    grid = data["tuning"]["grid"]
    ks = sorted({g["K"] for g in grid})
    bs = sorted({g["inner_lr"] for g in grid})
    lines = ["| K \\ β | " + " | ".join(f"{b:g}" for b in bs) + " |", "|---|" + "---|" * len(bs)]
    for k in ks:
        row = [next(g for g in grid if g["K"] == k and g["inner_lr"] == b) for b in bs]
        lines.append(f"| {k} | " + " | ".join(f"{100 * g['dev_wer']:.1f}" for g in row) + " |")
    lines += ["", "| CSSL lr | " + " | ".join(f"{c['lr']:g}" for c in data["tuning"]["cssl"]) + " |"]
    lines += ["|---|" + "---|" * len(data["tuning"]["cssl"])]
    lines += [
        "| dev WER % | " + " | ".join(f"{100 * c['dev_wer']:.1f}" for c in data["tuning"]["cssl"]) + " |"
    ]
    return "\n".join(lines)


def plot_curves(data: dict[str, Any]) -> Any:
    """Figure: test WER against fine-tuning steps, one panel per source, mean over seeds per method."""
    names = data["sources"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), squeeze=False)
    methods = list(dict.fromkeys(r["method"] for r in data["runs"]))
    for ax, s in zip(axes[0], names):
        for j, m in enumerate(methods):
            curves = [r["sources"][s]["curve"] for r in data["runs"] if r["method"] == m]
            steps = [c[0] for c in curves[0]]
            mean = [100 * statistics.fmean(c[i][1] for c in curves) for i in range(len(steps))]
            ax.plot(steps, mean, marker="o", ms=3, color=f"C{j}", label=m)
        ax.set_title(s)
        ax.set_xlabel("fine-tuning step")
    axes[0][0].set_ylabel("test WER (%)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Per-source CTC fine-tuning from each pre-trained start (mean over seeds)")
    fig.tight_layout()
    return fig


def plot_grid(data: dict[str, Any]) -> Any:
    """Figure: the (K, β) sensitivity grid (mean dev WER)."""
    grid = data["tuning"]["grid"]
    ks = sorted({g["K"] for g in grid})
    bs = sorted({g["inner_lr"] for g in grid})
    m = [
        [100 * next(g for g in grid if g["K"] == k and g["inner_lr"] == b)["dev_wer"] for b in bs] for k in ks
    ]
    fig, ax = plt.subplots(figsize=(4, 3.2))
    im = ax.imshow(m, cmap="viridis_r")
    ax.set_xticks(range(len(bs)), [f"{b:g}" for b in bs])
    ax.set_yticks(range(len(ks)), [str(k) for k in ks])
    for i in range(len(ks)):
        for j in range(len(bs)):
            ax.text(j, i, f"{m[i][j]:.1f}", ha="center", va="center", color="w", fontsize=8)
    ax.set_xlabel("inner step size β")
    ax.set_ylabel("inner steps K")
    ax.set_title("first-order Equilibrium: mean dev WER %")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def write_report(data: dict[str, Any], out: Path) -> None:
    """``results.json``, ``table.md``, ``grid.md``, ``curves.png``, ``grid.png`` and ``report.md``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(data, indent=1))
    table, grid = results_table(data), grid_table(data)
    (out / "table.md").write_text(table + "\n")
    (out / "grid.md").write_text(grid + "\n")
    for stem, fig in (("curves", plot_curves(data)), ("grid", plot_grid(data))):
        fig.savefig(out / f"{stem}.png", dpi=110)
        plt.close(fig)
    red = data["reduction"]
    lines = [
        "# Equilibrium-constrained pre-training on speech",
        "",
        f"Sources: {', '.join(data['sources'])}. Chosen on dev: `{data['tuning']['chosen']}`.",
        "",
        "## Test WER after per-source fine-tuning (equal pre-training compute)",
        "",
        table,
        "",
        "![curves](curves.png)",
        "",
        "## Sensitivity (dev)",
        "",
        grid,
        "",
        "![grid](grid.png)",
        "",
        f"## K = 0 reduction\n\n{red['steps']} steps: bit-for-bit identical = {red['identical']} "
        f"(max |Δθ| = {red['max_abs_diff']:.3g}).",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def parser(preset: str = "quick") -> argparse.ArgumentParser:
    """The command line, with the defaults of ``PRESETS[preset]``."""
    return recipe_parser(
        "python -m zoo.recipes equilibrium",
        EquilibriumRun,
        PRESETS,
        preset,
        description="Equilibrium-constrained against averaged-loss self-supervised pre-training on "
        "heterogeneous speech sources, then per-source CTC fine-tuning.",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.recipes equilibrium [--preset quick|standard] [options]``."""
    run, args = parse_recipe(parser, EquilibriumRun, PRESETS, argv)
    corpus_dir = Path(run.corpus)
    if not corpus_dir.is_dir():
        corpus_dir = build_corpus(run.corpus, seed=0, progress=not args.quiet)
    corpus = load_sources(corpus_dir, run.sources, progress=not args.quiet)
    data = run_experiment(run, corpus, progress=not args.quiet)
    write_report(data, Path(run.out))
    print(results_table(data))
    print(f"report: {Path(run.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
