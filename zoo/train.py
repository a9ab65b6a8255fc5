"""``python -m zoo.train MODEL``: supervised training of a zoo ASR model on the generated corpus.

``python -m zoo.train MODEL --preset tiny|small [--steps N] [--minutes M] [--out DIR] [--resume [auto]]``
trains ``MODEL`` (one of [`zoo.models.MODEL_NAMES`][zoo.models.MODEL_NAMES]) with the zoo's one loop
([`zoo.training.Trainer`][zoo.training.Trainer]) and the supervised recipe
([`zoo.recipes.supervised`][zoo.recipes.supervised]): a progress bar,
periodic dev WER, ``log.jsonl`` (and TensorBoard events when ``tensorboard`` is installed), checkpoints
that resume exactly, ``model.pt`` for ``python -m zoo.transcribe OUT audio.wav``, and a final report
(``report.json``; ``report.md`` with the curves, test WER/CER on held-out voices and the real-time factor).
Every option's default comes from the typed preset `run_preset()` of the model and preset, and
``--help`` shows it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from zoo.data import (
    PRESETS as CORPUS_PRESETS,
)
from zoo.data import (
    SpeechDataset,
    build_corpus,
    collate,
    corpus_tokenizer,
)
from zoo.models import MODEL_NAMES, build_model, model_presets
from zoo.recipes.supervised import SupervisedConfig, SupervisedStep, supervised_state
from zoo.training import (
    CheckpointError,
    Trainer,
    TrainState,
    dataclass_arguments,
    dataclass_from_args,
    default_threads,
    evaluate,
    init_distributed,
    is_main_process,
    load_checkpoint,
    read_checkpoint,
    write_report,
)
from zoo.transcribe import FeatureSpec, save_recognizer

__all__ = ["ENGLISH_CORPORA", "ASRData", "RunConfig", "load_data", "main", "parser", "run_preset"]

Batch = dict[str, Any]

#: English-only corpora of ``zoo.data`` used by the ASR recipes (every training voice labelled, dev and test
#: voices held out): ``en-quick`` builds in ≈ 15 s on one core; ``en`` (≈ 1 h of audio) in ≈ 1–2 min on two.
ENGLISH_CORPORA = ("en-quick", "en")


@dataclass
class ASRData:
    """Datasets and tokenizer of one corpus (features cached in memory, computed as ``features`` says)."""

    root: Path
    tokenizer: Any
    train: Any
    dev: Any
    test: Any
    collate: Callable[[list[Any]], Batch]
    features: FeatureSpec = field(default_factory=FeatureSpec)


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
    ([`zoo.data.utterance_cmvn()`][zoo.data.utterance_cmvn]): the voices and channels of the corpus shift the
    raw log-mel levels
    per bin, and without this normalisation the models learn several times more slowly.
    Test utterances are spoken by voices held out from training (``zoo.data`` splits by voice).
    """
    if corpus not in CORPUS_PRESETS:
        raise ValueError(f"corpus must be one of {sorted(CORPUS_PRESETS)}, got {corpus!r}")
    root = build_corpus(CORPUS_PRESETS[corpus], seed=seed, progress=progress)
    tok = corpus_tokenizer(root, tokenizer, vocab_size=vocab_size)
    spec = FeatureSpec(n_mels=n_mels, cmvn=cmvn)  # the very features zoo.transcribe computes
    feats = spec.build()
    langs = list(languages) if languages else None
    train = SpeechDataset(root, list(train_splits), tok, feats, languages=langs).precompute(progress)
    dev = SpeechDataset(root, "dev", tok, feats, languages=langs).precompute(progress)
    test = SpeechDataset(root, "test", tok, feats, languages=langs).precompute(progress)
    return ASRData(root, tok, train, dev, test, collate, spec)


@dataclass(frozen=True)
class RunConfig:
    """A ``python -m zoo.train`` run: data, evaluation and checkpoint cadence, and the optimisation.

    Attributes:
        corpus: zoo.data corpus preset (en-quick, en, ...).
        languages: languages to keep ('' = all).
        tokenizer: char or unigram.
        minutes: training time budget in minutes ('none': steps only).
        eval_every: steps between dev evaluations (0: none).
        eval_utterances: dev utterances per evaluation.
        checkpoint_every: steps between checkpoints (0: only at the end).
        train: the optimisation settings
            ([`zoo.recipes.supervised.SupervisedConfig`][zoo.recipes.supervised.SupervisedConfig]).
    """

    corpus: str = "en-quick"
    languages: str = "en"
    tokenizer: str = field(default="char", metadata={"choices": ("char", "unigram")})
    minutes: float | None = None
    eval_every: int = 200
    eval_utterances: int = 64
    checkpoint_every: int = 200
    train: SupervisedConfig = field(default_factory=SupervisedConfig)


def run_preset(model: str, preset: str = "tiny") -> RunConfig:
    """The defaults of ``python -m zoo.train MODEL --preset PRESET``.

    ``tiny``: the ``en-quick`` corpus, 600 steps (60 of warm-up); every other preset: the ``en`` corpus,
    4000 steps (200 of warm-up). AdamW at 3e-3 with SpecAugment for the CTC models (Conformer, SAR);
    1e-3 without SpecAugment and with the unigram tokenizer for DOTA, as in its paper.
    """
    if model not in MODEL_NAMES:
        raise ValueError(f"model must be one of {', '.join(MODEL_NAMES)}; got {model!r}")
    tiny = preset == "tiny"
    ctc = model != "dota"
    train = SupervisedConfig(
        steps=600 if tiny else 4000,
        batch_size=16,
        lr=3e-3 if ctc else 1e-3,
        warmup=60 if tiny else 200,
        spec_augment=ctc,
    )
    return RunConfig(corpus="en-quick" if tiny else "en", tokenizer="char" if ctc else "unigram", train=train)


def parser(model: str = "conformer", preset: str = "tiny") -> argparse.ArgumentParser:
    """The command line, with the defaults of `run_preset()` ``(model, preset)``."""
    cfg = run_preset(model, preset)
    ap = argparse.ArgumentParser(
        prog="python -m zoo.train",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=f"Defaults shown are those of {model} --preset {preset}; give MODEL and --preset before "
        "--help to see another preset's.",
    )
    ap.add_argument("model", choices=MODEL_NAMES, help="the model to train")
    ap.add_argument(
        "--preset", default="tiny", help=f"model preset: {', '.join(model_presets(model))} (default: tiny)"
    )
    ap.add_argument("--out", type=Path, default=None, help="run folder (default: results/train/MODEL-PRESET)")
    ap.add_argument(
        "--resume",
        nargs="?",
        const="yes",
        default="no",
        choices=["yes", "auto", "no"],
        help="continue from OUT/checkpoint.pt: --resume needs it to exist, --resume auto starts afresh "
        "without one (default: no)",
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: $OMP_NUM_THREADS or 1)"
    )
    ap.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")
    ap.add_argument(
        "--tensorboard",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write TensorBoard events (default: when the tensorboard package is installed)",
    )
    group = ap.add_argument_group("run")
    dataclass_arguments(group, RunConfig, cfg, skip=("train",))
    group = ap.add_argument_group("optimisation")
    dataclass_arguments(group, SupervisedConfig, cfg.train, skip=("max_seconds",))
    return ap


def _known(argv: list[str]) -> tuple[str, str]:
    """MODEL and --preset from ``argv`` (before parsing the rest), for the preset's defaults."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("model", nargs="?", default="conformer")
    pre.add_argument("--preset", default="tiny")
    ns, _ = pre.parse_known_args(argv)
    model = ns.model if ns.model in MODEL_NAMES else "conformer"
    return model, ns.preset


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the final report as a dict."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = parser(*_known(argv))
    args = ap.parse_args(argv)
    if args.preset not in model_presets(args.model):
        ap.error(f"--preset must be one of {', '.join(model_presets(args.model))} for {args.model}")
    threads = args.threads if args.threads is not None else default_threads()
    torch.set_num_threads(threads)
    distributed = init_distributed()  # under torchrun: one process per rank, each its shard of every batch
    torch.manual_seed(args.seed)
    train_cfg = dataclass_from_args(SupervisedConfig, args)
    run = dataclass_from_args(RunConfig, args, train=train_cfg)
    if run.minutes is not None:
        train_cfg = replace(train_cfg, max_seconds=60 * run.minutes)
    out = args.out or Path("results") / "train" / f"{args.model}-{args.preset}"
    ckpt = out / "checkpoint.pt"
    if args.resume == "yes" and not ckpt.exists():
        ap.error(f"--resume: no checkpoint at {ckpt} (use --resume auto to start afresh when there is none)")
    resuming = args.resume != "no" and ckpt.exists()
    wanted = {"model": args.model, "preset": args.preset, "corpus": run.corpus, "tokenizer": run.tokenizer}
    if resuming:  # before building anything: another model or preset is named, not a raw size mismatch
        try:
            saved = read_checkpoint(ckpt)["meta"]
        except CheckpointError as e:
            ap.error(str(e))
        for key, value in wanted.items():
            if key in saved and saved[key] != value:
                ap.error(
                    f"--resume: {ckpt} was written with {key}={saved[key]!r}, this run has {key}={value!r}; "
                    "use the same settings or another --out"
                )
    langs = [x for x in run.languages.split(",") if x] or None
    data = load_data(run.corpus, tokenizer=run.tokenizer, languages=langs, seed=0, progress=not args.quiet)
    model = build_model(args.model, args.preset, vocab_size=data.tokenizer.vocab_size)
    n_params = sum(p.numel() for p in model.parameters())
    shard = (dist.get_rank(), dist.get_world_size()) if distributed else None
    state = supervised_state(
        model, data.train, data.collate, train_cfg, lengths=data.train.lengths, shard=shard
    )

    def on_eval(st: TrainState) -> dict[str, float]:
        if not is_main_process():
            return {}
        r = evaluate(st.model, data.dev, data.tokenizer, data.collate, limit=run.eval_utterances)
        return {"dev_wer": r["wer"], "dev_cer": r["cer"]}

    meta = {"recipe": "supervised", **wanted, "vocab_size": data.tokenizer.vocab_size}
    trainer = Trainer(
        state,
        SupervisedStep(train_cfg.grad_clip, train_cfg.spec_augment),
        train_cfg.budget(),
        run_dir=out,
        meta=meta,
        on_eval=on_eval,
        eval_every=run.eval_every,
        checkpoint_every=run.checkpoint_every,
        progress=not args.quiet,
        tensorboard=args.tensorboard,
    )
    if resuming:
        try:
            load_checkpoint(ckpt, state, meta)
        except CheckpointError as e:
            ap.error(str(e))
    history = trainer.run()
    if not is_main_process():
        return {}
    # the trained model with its tokenizer and features, for python -m zoo.transcribe OUT audio.wav
    save_recognizer(out / "model.pt", args.model, model, data.tokenizer, data.features)
    res = evaluate(model, data.test, data.tokenizer, data.collate)
    report = {
        "model": args.model,
        "preset": args.preset,
        "corpus": run.corpus,
        "params": n_params,
        "steps": state.step,
        "train_seconds": round(state.seconds, 1),
        "test_wer": res["wer"],
        "test_cer": res["cer"],
        "rtf": res["rtf"],
        "test_utterances": int(res["n"]),
        "final_loss": history[-1]["loss"] if history else None,
        "threads": threads,
        "dev_wer_curve": [(h["step"], h["dev_wer"]) for h in history if "dev_wer" in h],
        "config": asdict(run),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    shown = {k: v for k, v in report.items() if k not in ("dev_wer_curve", "config")}
    write_report(out, history, shown, title=f"Training report: {args.model} --preset {args.preset}")
    if not args.quiet:
        print("\n".join(f"- {k}: {v}" for k, v in shown.items()))
    return report


if __name__ == "__main__":
    main()
