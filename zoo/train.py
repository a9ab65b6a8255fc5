"""Training loop and command line for the zoo's ASR models.

``python -m zoo.train MODEL --preset tiny|small [--steps N] [--minutes M] [--out DIR] [--resume]``
trains ``MODEL`` (``conformer``, ``conformer-plain``, ``sar``, ``sar-ctc``, ``dota``) on the generated
corpus with a progress bar, periodic dev WER, checkpoints that resume exactly, and a final report
(``report.json`` / ``report.md`` with test WER/CER on held-out voices and the real-time factor).

The functional core is reusable from Python:

* :class:`TrainConfig` — optimisation hyperparameters (AdamW, linear warm-up, cosine decay, clipping);
* :func:`bucket_batches` — the deterministic, length-bucketed batch order of one epoch;
* :func:`default_step` — one step: forward, ``loss.backward()``, clip, ``optimizer.step()``; a recipe
  passes its own ``step_fn(model, batch, optimizer) -> dict`` (e.g. a bilevel optimizer's step);
* :class:`Trainer` — owns model, optimizer, schedule and RNG state; ``state_dict`` /
  ``load_state_dict`` restore a run bitwise (resumed == uninterrupted);
* :func:`evaluate` — WER/CER and real-time factor of ``model.transcribe`` on a data set.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "TrainConfig",
    "Trainer",
    "bucket_batches",
    "default_step",
    "evaluate",
    "main",
    "spec_augment",
    "warmup_cosine",
]

Batch = dict[str, Any]
StepFn = Callable[[nn.Module, Batch, Any], dict[str, float]]


@dataclass
class TrainConfig:
    """Optimisation settings (defaults: the tiny CPU recipe of models.md §6).

    Attributes:
        steps: optimizer steps in total.
        batch_size: utterances per batch.
        lr, weight_decay, betas: AdamW settings.
        warmup: linear warm-up steps, then cosine decay to ``min_lr_ratio · lr`` (with ``max_seconds``
            the decay follows the elapsed fraction of the time budget when that is ahead of the steps).
        grad_clip: max global gradient norm (``None``: no clipping).
        eval_every: steps between dev evaluations (0: only at the end).
        checkpoint_every: steps between checkpoints (0: only at the end).
        max_seconds: stop early after this much training time (``None``: no limit).
        spec_augment: apply SpecAugment masks to training features.
        seed: seeds the batch order, augmentation and dropout.
    """

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    warmup: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float | None = 1.0
    eval_every: int = 0
    checkpoint_every: int = 0
    max_seconds: float | None = None
    spec_augment: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warm-up to 1 over ``warmup`` steps, then cosine decay to ``min_ratio``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def bucket_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches: shuffle, sort within windows of ``50·batch_size`` by length, cut into
    batches, shuffle the batches. Deterministic in ``(seed, epoch)``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = random.Random(seed * 100_003 + epoch)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    window = 50 * batch_size
    out: list[list[int]] = []
    for s in range(0, len(idx), window):
        chunk = sorted(idx[s : s + window], key=lambda i: lengths[i])
        out += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(out)
    return out


def spec_augment(feats: Tensor, feat_lens: Tensor, generator: torch.Generator, **kwargs: Any) -> Tensor:
    """SpecAugment (Park et al., 2019) of a padded batch ``(B, T, F)``: :func:`zoo.data.spec_augment`
    (2 frequency masks of up to 8 bins, 2 time masks of up to 20 frames and 20 % of the utterance; masked
    cells set to 0, the mean of normalised features) on the ``feat_lens[b]`` valid frames of each utterance;
    padding stays untouched. ``kwargs`` go to :func:`zoo.data.spec_augment`."""
    from zoo.data import spec_augment as augment_one

    if feats.dim() != 3 or feat_lens.shape != feats.shape[:1]:
        raise ValueError(
            f"feats must be (B, T, F) and feat_lens (B,), got {tuple(feats.shape)} and "
            f"{tuple(feat_lens.shape)}"
        )
    out = feats.clone()
    kw = {"fill": "zero", **kwargs}
    for b in range(feats.shape[0]):
        n = int(feat_lens[b])
        if n > 0:
            out[b, :n] = augment_one(feats[b, :n], generator=generator, **kw)
    return out


def model_inputs(batch: Batch) -> dict[str, Tensor]:
    """The tensors a zoo model's ``forward`` takes, from a collated batch."""
    return {k: batch[k] for k in ("feats", "feat_lens", "tokens", "token_lens")}


def default_step(
    model: nn.Module, batch: Batch, optimizer: Any, grad_clip: float | None = 1.0
) -> dict[str, float]:
    """Forward, backward, clip the gradient norm to ``grad_clip``, ``optimizer.step()``."""
    optimizer.zero_grad(set_to_none=True)
    out = model(**model_inputs(batch))
    loss = out.loss
    if loss is None or not bool(torch.isfinite(loss.detach())):
        raise ValueError(f"the model returned a non-finite or missing loss ({loss})")
    loss.backward()
    logs = {k: float(v.detach()) for k, v in out.losses.items()}
    if grad_clip is not None:
        logs["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
    optimizer.step()
    logs["loss"] = float(loss.detach())
    return logs


def evaluate(
    model: nn.Module,
    dataset: Sequence[Any],
    tokenizer: Any,
    collate: Callable[[list[Any]], Batch],
    *,
    batch_size: int = 16,
    limit: int | None = None,
    sample_rate: int = 16000,
    hop: int = 160,
    **transcribe_kwargs: Any,
) -> dict[str, float]:
    """WER, CER and real-time factor of ``model.transcribe`` on ``dataset`` (first ``limit`` items).

    RTF = decoding wall time / audio duration, with audio duration = feature frames · ``hop / sample_rate``.
    """
    from zoo.metrics import cer, wer

    n = len(dataset) if limit is None else min(limit, len(dataset))
    refs: list[str] = []
    hyps: list[str] = []
    seconds = 0.0
    audio = 0.0
    for s in range(0, n, batch_size):
        batch = collate([dataset[i] for i in range(s, min(n, s + batch_size))])
        t0 = time.perf_counter()
        ids = model.transcribe(batch["feats"], batch["feat_lens"], **transcribe_kwargs)  # type: ignore[operator]
        seconds += time.perf_counter() - t0
        audio += float(batch["feat_lens"].sum()) * hop / sample_rate
        hyps += [tokenizer.decode(h) for h in ids]
        refs += list(batch["texts"])
    return {
        "wer": float(wer(refs, hyps)),
        "cer": float(cer(refs, hyps)),
        "rtf": seconds / max(audio, 1e-9),
        "n": float(n),
    }


@dataclass
class _Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Trains ``model`` on ``dataset`` with an exactly resumable state.

    Args:
        model: a zoo model (``forward(**batch)`` returns an object with ``.loss`` and ``.losses``).
        dataset: indexable training items; ``lengths`` gives each item's length for bucketing.
        collate: turns a list of items into a batch dict.
        cfg: :class:`TrainConfig`.
        optimizer: any optimizer with ``step``/``zero_grad``/``state_dict`` (default AdamW per ``cfg``).
        step_fn: ``step_fn(model, batch, optimizer) -> logs`` (default :func:`default_step`).
        lengths: per-item lengths (default: ``len(item["feats"])`` computed once).
        on_eval: ``on_eval(trainer) -> dict`` called every ``cfg.eval_every`` steps (e.g. dev WER).
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Sequence[Any],
        collate: Callable[[list[Any]], Batch],
        cfg: TrainConfig | None = None,
        *,
        optimizer: Any | None = None,
        step_fn: StepFn | None = None,
        lengths: Sequence[int] | None = None,
        on_eval: Callable[[Trainer], dict[str, float]] | None = None,
        show_progress: bool = True,
    ):
        if len(dataset) == 0:
            raise ValueError("dataset must not be empty")
        self.model, self.dataset, self.collate = model, dataset, collate
        self.cfg = cfg or TrainConfig()
        self.optimizer = optimizer or torch.optim.AdamW(
            model.parameters(), lr=self.cfg.lr, betas=self.cfg.betas, weight_decay=self.cfg.weight_decay
        )
        self.custom_optimizer = optimizer is not None
        base = (
            [g["lr"] for g in self.optimizer.param_groups] if hasattr(self.optimizer, "param_groups") else []
        )
        self._base_lrs = base
        self.step_fn = step_fn or (lambda m, b, o: default_step(m, b, o, self.cfg.grad_clip))
        self.lengths = (
            list(lengths) if lengths is not None else [len(dataset[i]["feats"]) for i in range(len(dataset))]
        )
        self.on_eval = on_eval
        self.show_progress = show_progress
        self.progress = _Progress()
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        self._epoch_cache: tuple[int, list[list[int]]] | None = None

    # -- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bitwise: model, optimizer, progress and RNG states."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "progress": asdict(self.progress),
            "torch_rng": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "cfg": asdict(self.cfg),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.progress = _Progress(**state["progress"])
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["generator"])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)
        return path

    def load(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(path, weights_only=False))

    # -- loop ---------------------------------------------------------------------------------------
    def _schedule_step(self) -> int:
        """The step the LR schedule is evaluated at. Under a time budget (``cfg.max_seconds``) the decay
        after warm-up follows the elapsed fraction of the budget whenever that is ahead of the step count,
        so a run cut short by time still ends with a decayed learning rate."""
        p, cfg = self.progress, self.cfg
        if cfg.max_seconds is None or cfg.max_seconds <= 0 or p.step < cfg.warmup:
            return p.step
        frac = min(1.0, p.seconds / cfg.max_seconds)
        return max(p.step, cfg.warmup + int(frac * (cfg.steps - cfg.warmup)))

    def _set_lr(self) -> None:
        if not self._base_lrs:
            return
        f = warmup_cosine(self._schedule_step(), self.cfg.steps, self.cfg.warmup, self.cfg.min_lr_ratio)
        for g, base in zip(self.optimizer.param_groups, self._base_lrs):
            g["lr"] = base * f

    def _next_batch(self) -> Batch:
        p = self.progress
        while True:
            if self._epoch_cache is None or self._epoch_cache[0] != p.epoch:
                self._epoch_cache = (
                    p.epoch,
                    bucket_batches(self.lengths, self.cfg.batch_size, self.cfg.seed, p.epoch),
                )
            batches = self._epoch_cache[1]
            if p.batch_in_epoch < len(batches):
                idx = batches[p.batch_in_epoch]
                p.batch_in_epoch += 1
                return self.collate([self.dataset[i] for i in idx])
            p.epoch += 1
            p.batch_in_epoch = 0

    def run(self, steps: int | None = None, checkpoint: str | Path | None = None) -> list[dict[str, float]]:
        """Train until ``steps`` (default ``cfg.steps``) or ``cfg.max_seconds``; returns the log history."""
        from tqdm.auto import tqdm

        target = self.cfg.steps if steps is None else steps
        self.model.train()
        bar = tqdm(total=target, initial=self.progress.step, desc="train", disable=not self.show_progress)
        start = time.perf_counter()
        spent0 = self.progress.seconds
        try:
            while self.progress.step < target:
                if self.cfg.max_seconds is not None and self.progress.seconds >= self.cfg.max_seconds:
                    break
                batch = self._next_batch()
                if self.cfg.spec_augment:
                    batch = {
                        **batch,
                        "feats": spec_augment(batch["feats"], batch["feat_lens"], self.generator),
                    }
                self._set_lr()
                logs = self.step_fn(self.model, batch, self.optimizer)
                self.progress.step += 1
                self.progress.seconds = spent0 + time.perf_counter() - start
                logs = {"step": float(self.progress.step), **logs}
                ev = self.cfg.eval_every
                if self.on_eval is not None and ev and self.progress.step % ev == 0:
                    logs.update(self.on_eval(self))
                    self.model.train()
                self.progress.history.append(logs)
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k in ("loss", "dev_wer")})
                ck = self.cfg.checkpoint_every
                if checkpoint is not None and ck and self.progress.step % ck == 0:
                    self.save(checkpoint)
        finally:
            bar.close()
        if checkpoint is not None:
            self.save(checkpoint)
        return self.progress.history


# -- command line -----------------------------------------------------------------------------------

MODELS = ("conformer", "conformer-plain", "sar", "sar-ctc", "dota")

#: English-only corpora of ``zoo.data`` used by the ASR recipes (every training voice labelled, dev and test
#: voices held out): ``en-quick`` builds in ≈ 15 s on one core; ``en`` (≈ 1 h of audio) in ≈ 1–2 min on two.
ENGLISH_CORPORA = ("en-quick", "en")


@dataclass
class ASRData:
    """Datasets and tokenizer of one corpus (features cached in memory)."""

    root: Path
    tokenizer: Any
    train: Any
    dev: Any
    test: Any
    collate: Callable[[list[Any]], Batch]


def corpus_config(name: str) -> Any:
    """A ``zoo.data`` corpus preset (``en-quick``, ``en``, ``tiny``, ``small``, ...) as a ``CorpusConfig``."""
    from zoo.data.corpus import PRESETS

    if name not in PRESETS:
        raise ValueError(f"corpus must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]


class _NormalisedLogMel(nn.Module):
    """Log-mel features followed by per-utterance CMVN (keeps ``LogMel.num_frames`` for bucketing)."""

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        from zoo.data import LogMel

        self.mel = LogMel(n_mels=n_mels)

    def num_frames(self, num_samples: int) -> int:
        return int(self.mel.num_frames(num_samples))

    def forward(self, wav: Tensor) -> Tensor:
        from zoo.data import utterance_cmvn

        return utterance_cmvn(self.mel(wav))


def load_data(
    corpus: str = "en-quick",
    *,
    tokenizer: str = "char",
    vocab_size: int = 96,
    languages: Sequence[str] | None = ("en",),
    train_splits: Sequence[str] = ("labelled",),
    seed: int = 0,
    n_mels: int = 80,
    cmvn: bool = True,
    progress: bool = False,
) -> ASRData:
    """Build (or reuse) the corpus and return train / dev / test datasets with cached log-mel features.

    With ``cmvn=True`` (default) every utterance's log-mels are mean- and variance-normalised over time
    (:func:`zoo.data.utterance_cmvn`): the voices and channels of the corpus shift the raw log-mel levels
    per bin, and without this normalisation the models learn several times more slowly.
    Test utterances are spoken by voices held out from training (``zoo.data`` splits by voice).
    """
    import zoo.data as zd

    root = zd.build_corpus(corpus_config(corpus), seed=seed, progress=progress)
    tok = zd.corpus_tokenizer(root, tokenizer, vocab_size=vocab_size)
    feats: Any = _NormalisedLogMel(n_mels) if cmvn else zd.LogMel(n_mels=n_mels)
    langs = list(languages) if languages else None
    train = zd.SpeechDataset(root, list(train_splits), tok, feats, languages=langs).precompute(progress)
    dev = zd.SpeechDataset(root, "dev", tok, feats, languages=langs).precompute(progress)
    test = zd.SpeechDataset(root, "test", tok, feats, languages=langs).precompute(progress)
    return ASRData(root, tok, train, dev, test, zd.collate)


def build(name: str, preset: str, vocab_size: int, n_mels: int = 80) -> nn.Module:
    """A zoo ASR model by name and preset (see ``MODELS``)."""
    from zoo.models import build_model

    return build_model(name, preset, vocab_size=vocab_size, n_mels=n_mels)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the final report as a dict."""
    ap = argparse.ArgumentParser(prog="python -m zoo.train", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("model", choices=MODELS)
    ap.add_argument("--preset", default="tiny", help="model preset (tiny, small, or a paper preset)")
    ap.add_argument(
        "--corpus",
        default=None,
        help="en-quick, en, or a zoo.data preset (default: en-quick for tiny models, else en)",
    )
    ap.add_argument("--languages", default="en", help="comma-separated languages ('' = all)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (default 600 tiny / 4000 small)")
    ap.add_argument("--minutes", type=float, default=None, help="training time budget")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--checkpoint-every", type=int, default=200)
    ap.add_argument(
        "--out", type=Path, default=None, help="run folder (default results/train/<model>-<preset>)"
    )
    ap.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--spec-augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="SpecAugment on training features (default: on for the CTC models, off for dota, as in its "
        "paper)",
    )
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    corpus = args.corpus or ("en-quick" if args.preset == "tiny" else "en")
    steps = args.steps or (600 if args.preset == "tiny" else 4000)
    out = args.out or Path("results") / "train" / f"{args.model}-{args.preset}"
    out.mkdir(parents=True, exist_ok=True)
    langs = [x for x in args.languages.split(",") if x] or None
    data = load_data(
        corpus,
        tokenizer="unigram" if args.model == "dota" else "char",
        languages=langs,
        seed=0,
        progress=not args.quiet,
    )
    model = build(args.model, args.preset, data.tokenizer.vocab_size)
    n_params = sum(p.numel() for p in model.parameters())
    lr = args.lr or (3e-3 if args.model.startswith(("conformer", "sar")) else 1e-3)
    cfg = TrainConfig(
        steps=steps,
        batch_size=args.batch_size,
        lr=lr,
        warmup=min(200, steps // 10),
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        spec_augment=args.model != "dota" if args.spec_augment is None else args.spec_augment,
        max_seconds=None if args.minutes is None else 60 * args.minutes,
    )

    def on_eval(tr: Trainer) -> dict[str, float]:
        r = evaluate(tr.model, data.dev, data.tokenizer, data.collate, limit=64)
        return {"dev_wer": r["wer"], "dev_cer": r["cer"]}

    trainer = Trainer(
        model,
        data.train,
        data.collate,
        cfg,
        lengths=data.train.lengths,
        on_eval=on_eval,
        show_progress=not args.quiet,
    )
    ckpt = out / "checkpoint.pt"
    if args.resume and ckpt.exists():
        trainer.load(ckpt)
    history = trainer.run(checkpoint=ckpt)
    res = evaluate(model, data.test, data.tokenizer, data.collate)
    report = {
        "model": args.model,
        "preset": args.preset,
        "corpus": corpus,
        "params": n_params,
        "steps": trainer.progress.step,
        "train_seconds": round(trainer.progress.seconds, 1),
        "test_wer": res["wer"],
        "test_cer": res["cer"],
        "rtf": res["rtf"],
        "test_utterances": int(res["n"]),
        "final_loss": history[-1]["loss"] if history else None,
        "threads": args.threads,
        "dev_wer_curve": [(h["step"], h["dev_wer"]) for h in history if "dev_wer" in h],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    lines = ["# Training report", ""] + [f"- {k}: {v}" for k, v in report.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
