"""``python -m zoo.recipes joint_stt_tts``: joint non-autoregressive STT + TTS (arXiv:2501.09104) against
its same-size STT-only and TTS-only baselines and against training on the paired share alone.

The corpus' training voices are split into a paired share (speech with transcript), a speech-only share
and a text-only share (default 40 / 30 / 30 %). A zoo Conformer-CTC (the *judge*) trained on the training
transcripts gives the forced-alignment durations of the paired share and transcribes synthesised speech
(ASR-WER). The methods:

* ``joint`` — [`zoo.models.joint.JointSTTTTS`][zoo.models.joint.JointSTTTTS] on all three shares: paired
  batches train STT (speech in, text stream missing or partly masked, CTC) and TTS (text in with the
  alignment's durations, speech stream missing or partly masked, mel L1 + duration MSE); speech-only
  batches masked-speech reconstruction; text-only batches a masked text model in CTC form;
* ``paired-only`` — the same model and steps on the paired share only;
* ``stt-only`` / ``tts-only`` — the baselines (same encoder size, paired share, one task).

Writes ``results.json``, ``table.md``, ``refinement.png``, ``report.md`` and a few ``wav/*.wav`` files
(Griffin-Lim) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.checks import check_choice, check_int, check_real
from zoo.data import (
    PRESETS as CORPUS_PRESETS,
)
from zoo.data import (
    FeatureSpec,
    GlobalCMVN,
    SpeechDataset,
    build_corpus,
    collate,
    corpus_tokenizer,
    utterance_cmvn,
)
from zoo.metrics import wer
from zoo.models import build_model
from zoo.models.joint import (
    JointSTTTTS,
    MelInverter,
    alignment_durations,
    joint_config,
    mask_text,
    mel_cepstral_distortion,
    random_frame_mask,
    refine_stt,
    refine_tts,
    span_mask,
    time_freq_mask,
    write_wav,
)
from zoo.models.masks import lengths_to_mask
from zoo.recipes.supervised import SupervisedConfig, SupervisedStep, supervised_state
from zoo.training import (
    Batches,
    Budget,
    Trainer,
    TrainState,
    WarmupCosine,
    parse_recipe,
    recipe_parser,
)

__all__ = [
    "METHODS",
    "PRESETS",
    "JointData",
    "JointRun",
    "JointStep",
    "MixedBatches",
    "collate_joint",
    "evaluate_stt",
    "evaluate_tts",
    "joint_state",
    "main",
    "prepare_data",
    "train_method",
]

METHODS = ("joint", "paired-only", "stt-only", "tts-only")
MODES = ("paired", "speech", "text")
#: Cepstral coefficients $c_1..c_{24}$ in the mel-cepstral distortion (the usual 24 of a 25-dim mel-cepstrum).
MCD_ORDER = 24
Batch = dict[str, Any]


@dataclass(frozen=True)
class JointRun:
    """A joint STT + TTS run: data split, judge, model, optimisation, masking and evaluation.

    Attributes:
        corpus: zoo.data corpus preset (English).
        shares: paired, speech-only and text-only shares of the training utterances.
        judge_steps: steps of the Conformer-CTC judge (alignments, ASR-WER).
        judge_lr: the judge's learning rate.
        model: JointSTTTTS preset (micro, mini, tiny, small).
        methods: methods to train.
        seeds: seeds (model, batches, masks).
        steps: optimizer steps per method.
        batch_size: utterances per batch.
        lr: peak AdamW learning rate.
        warmup: linear warm-up steps before the cosine decay.
        grad_clip: max global gradient norm.
        text_mask: share of characters replaced by MASK (text-only batches).
        span_p, span: wav2vec 2.0 span-mask start probability and span length in encoder frames.
        mel_weight, duration_weight: loss weights (CTC has weight 1).
        refine_steps: largest K of the refinement curves.
        threshold: STT refinement confidence threshold.
        eval_utterances: test utterances scored per method (0: all).
        wavs: synthesised test utterances written as WAV files.
        out: output folder.
    """

    corpus: str = "en-quick"
    shares: tuple[float, float, float] = (0.4, 0.3, 0.3)
    judge_steps: int = 200
    judge_lr: float = 5e-3
    model: str = "tiny"
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0,)
    steps: int = 200
    batch_size: int = 8
    lr: float = 3e-3
    warmup: int = 20
    grad_clip: float = 1.0
    text_mask: float = 0.2
    span_p: float = 0.065
    span: int = 4
    mel_weight: float = 1.0
    duration_weight: float = 1.0
    refine_steps: int = 8
    threshold: float = 0.9
    eval_utterances: int = 0
    wavs: int = 3
    out: str = "runs/joint_stt_tts"

    def __post_init__(self) -> None:
        if (
            len(self.shares) != 3
            or any(s < 0 for s in self.shares)
            or not math.isclose(sum(self.shares), 1.0)
        ):
            raise ValueError(f"shares must be 3 non-negative numbers summing to 1, got {self.shares}")
        for m in self.methods:
            check_choice(m, "methods", METHODS)
        for name in (
            "judge_steps",
            "steps",
            "batch_size",
            "warmup",
            "refine_steps",
            "eval_utterances",
            "wavs",
            "span",
        ):
            check_int(getattr(self, name), name, low=0)
        check_real(self.text_mask, "text_mask", low=0.0, high=1.0)
        check_real(self.span_p, "span_p", low=0.0, high=1.0)
        check_real(self.threshold, "threshold", low=0.0, high=1.0)
        check_real(self.lr, "lr", low=0.0, low_open=True)


#: Named scales: ``quick`` (minutes on one core) and ``standard`` (the ``en`` corpus, longer runs).
PRESETS: dict[str, JointRun] = {
    "quick": JointRun(),
    "standard": JointRun(
        corpus="en",
        judge_steps=1500,
        steps=1500,
        batch_size=16,
        warmup=100,
        seeds=(0, 1, 2),
        out="runs/joint_stt_tts_standard",
    ),
}


# -- data --------------------------------------------------------------------------------------------------


@dataclass
class JointData:
    """Items of the three training shares, dev and test, the tokenizer, the normalisation and the judge.

    Every item holds ``feats`` (corpus-normalised log-mels, the joint model's input and TTS target),
    ``asr_feats`` (per-utterance normalised: the judge's features), ``tokens``, ``text`` and
    ``durations`` (the judge's forced alignment at the encoder frame rate).
    """

    tokenizer: Any
    shares: dict[str, list[dict[str, Any]]]
    dev: list[dict[str, Any]]
    test: list[dict[str, Any]]
    cmvn: GlobalCMVN
    judge: nn.Module
    judge_wer: float


def collate_joint(items: Sequence[dict[str, Any]]) -> Batch:
    """Pad items into a batch: ``feats`` ``(B, T, F)``, ``asr_feats``, ``feat_lens``, ``tokens``,
    ``token_lens``, ``durations`` ``(B, 2U+1)``, ``texts``."""
    if not items:
        raise ValueError("cannot collate an empty list of items")
    B = len(items)
    T = max(int(it["feats"].shape[0]) for it in items)
    U = max(int(it["tokens"].numel()) for it in items)
    Fd = int(items[0]["feats"].shape[1])
    feats, asr = torch.zeros(B, T, Fd), torch.zeros(B, T, Fd)
    toks = torch.zeros(B, U, dtype=torch.long)
    durs = torch.zeros(B, 2 * U + 1, dtype=torch.long)
    for b, it in enumerate(items):
        n, u = int(it["feats"].shape[0]), int(it["tokens"].numel())
        feats[b, :n], asr[b, :n] = it["feats"], it["asr_feats"]
        toks[b, :u] = it["tokens"]
        durs[b, : 2 * u + 1] = it["durations"]
    return {
        "feats": feats,
        "asr_feats": asr,
        "feat_lens": torch.tensor([int(it["feats"].shape[0]) for it in items]),
        "tokens": toks,
        "token_lens": torch.tensor([int(it["tokens"].numel()) for it in items]),
        "durations": durs,
        "texts": [it["text"] for it in items],
    }


def _items(ds: SpeechDataset) -> list[dict[str, Any]]:
    out = []
    for i in range(len(ds)):
        it = ds[i]
        raw = it["feats"]
        out.append({"raw": raw, "asr_feats": utterance_cmvn(raw), "tokens": it["tokens"], "text": it["text"]})
    return out


def _align(judge: nn.Module, items: list[dict[str, Any]], stack: int) -> list[dict[str, Any]]:
    """Durations of every item from the judge's forced alignment; items it cannot align are dropped."""
    kept = []
    judge.eval()
    with torch.no_grad():
        for it in items:
            n = int(it["asr_feats"].shape[0])
            out = judge(it["asr_feats"][None], torch.tensor([n]))
            frames = int(out.lengths[0])
            try:
                it["durations"] = alignment_durations(out.logits[0], frames, it["tokens"].tolist())
            except ValueError:
                continue
            it["feats"] = it["feats"][: frames * stack]
            it["asr_feats"] = it["asr_feats"][: frames * stack]
            kept.append(it)
    return kept


def prepare_data(
    corpus: str = "en-quick",
    shares: tuple[float, float, float] = (0.4, 0.3, 0.3),
    judge_steps: int = 200,
    judge_lr: float = 5e-3,
    seed: int = 0,
    stack: int = 4,
    progress: bool = False,
) -> JointData:
    """Build the corpus, the features, the three shares, the judge and the alignments (see the module)."""
    if corpus not in CORPUS_PRESETS:
        raise ValueError(f"corpus must be one of {sorted(CORPUS_PRESETS)}, got {corpus!r}")
    root = build_corpus(CORPUS_PRESETS[corpus], seed=0, progress=progress)
    tok = corpus_tokenizer(root, "char")
    raw = FeatureSpec(n_mels=80, cmvn=False).build()
    sets = {
        s: _items(SpeechDataset(root, s, tok, raw, languages=["en"]).precompute(progress))
        for s in ("labelled", "dev", "test")
    }
    cmvn = GlobalCMVN(80).fit([it["raw"] for it in sets["labelled"]])
    for items in sets.values():
        for it in items:
            it["feats"] = cmvn(it.pop("raw"))
    # the judge: the zoo's tiny Conformer-CTC on every training transcript (a tool, not a compared method)
    torch.manual_seed(seed)
    judge = build_model("conformer", "tiny", vocab_size=tok.vocab_size)
    jd = [
        {"feats": it["asr_feats"], "tokens": it["tokens"], "text": it["text"], "id": str(i)}
        for i, it in enumerate(sets["labelled"])
    ]
    cfg = SupervisedConfig(steps=judge_steps, batch_size=8, lr=judge_lr, warmup=20, seed=seed)
    state = supervised_state(judge, jd, collate, cfg, lengths=[int(x["feats"].shape[0]) for x in jd])
    Trainer(state, SupervisedStep(cfg.grad_clip), cfg.budget(), progress=progress, desc="judge").run()
    judge.eval()
    dev = _align(judge, sets["dev"], stack)
    test = _align(judge, sets["test"], stack)
    with torch.no_grad():
        refs = [it["text"] for it in dev]
        hyps = [
            tok.decode(judge.transcribe(it["asr_feats"][None], torch.tensor([it["asr_feats"].shape[0]]))[0])  # type: ignore[operator]
            for it in dev
        ]
    train = sets["labelled"]
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    n_p = round(shares[0] * len(train))
    n_s = round(shares[1] * len(train))
    parts = {"paired": order[:n_p], "speech": order[n_p : n_p + n_s], "text": order[n_p + n_s :]}
    split: dict[str, list[dict[str, Any]]] = {}
    for mode, idx in parts.items():
        items = [train[i] for i in idx]
        if mode == "paired":
            items = _align(judge, items, stack)
        else:  # unpaired items keep no durations (text-only ones use predicted durations)
            for it in items:
                frames = int(it["feats"].shape[0]) // stack
                it["feats"], it["asr_feats"] = (
                    it["feats"][: frames * stack],
                    it["asr_feats"][: frames * stack],
                )
                it["durations"] = torch.zeros(2 * it["tokens"].numel() + 1, dtype=torch.long)
        split[mode] = items
    return JointData(tok, split, dev, test, cmvn, judge, float(wer(refs, hyps)))


# -- batches and the step ---------------------------------------------------------------------------------


class MixedBatches:
    """Batches of the three shares, one share per step drawn with probabilities ``weights`` from a
    seeded generator; each share's batches are a [`zoo.training.Batches`][zoo.training.Batches]. The state
    holds every share's position and the generator."""

    def __init__(self, sources: dict[str, Batches], weights: dict[str, float], seed: int = 0) -> None:
        if not sources:
            raise ValueError("sources must not be empty")
        self.sources = sources
        self.names = [k for k in sources if weights.get(k, 0) > 0]
        if not self.names:
            raise ValueError("weights must give some source a positive weight")
        self.weights = torch.tensor([float(weights[k]) for k in self.names])
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, step: int) -> Batch:
        k = self.names[int(torch.multinomial(self.weights, 1, generator=self.generator))]
        return {**self.sources[k].batch(step), "mode": k}

    def state_dict(self) -> dict[str, Any]:
        return {
            "sources": {k: s.state_dict() for k, s in self.sources.items()},
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, s in self.sources.items():
            s.load_state_dict(state["sources"][k])
        self.generator.set_state(state["generator"])


class JointStep:
    """One optimizer step of a joint STT + TTS method on a batch of one share (see the module docstring);
    masks draw from ``state.generator``. Returns the loss terms, ``loss``, ``grad_norm`` and ``lr``."""

    def __init__(self, run: JointRun) -> None:
        self.run = run

    def _uniform(self, g: torch.Generator, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    def losses(self, model: JointSTTTTS, batch: Batch, g: torch.Generator) -> dict[str, Tensor]:
        r, tasks = self.run, model.cfg.tasks
        feats, fl, tok, tl, dur = (
            batch[k] for k in ("feats", "feat_lens", "tokens", "token_lens", "durations")
        )
        frames = model.encoder_frames(fl)
        T = int(frames.max())
        out: dict[str, Tensor] = {}
        if batch["mode"] == "paired":
            if "stt" in tasks:
                x = time_freq_mask(feats, fl, g)
                if "tts" in tasks and float(torch.rand((), generator=g)) < 0.5:  # text stream partly given
                    _, tm = mask_text(tok, tl, self._uniform(g, 0.3, 1.0), model.cfg.mask_id, g)
                    o = model(tokens=tok, token_lens=tl, durations=dur, feats=x, feat_lens=fl, text_mask=tm)
                else:
                    o = model(feats=x, feat_lens=fl)
                out["ctc"] = model.ctc(o, tok, tl)
            if "tts" in tasks:
                if "stt" in tasks and float(torch.rand((), generator=g)) < 0.5:  # speech stream partly given
                    share = torch.empty(len(fl)).uniform_(0.3, 1.0, generator=g)
                    sm = random_frame_mask(frames, T, share, g)
                    o = model(
                        tokens=tok, token_lens=tl, durations=dur, feats=feats, feat_lens=fl, speech_mask=sm
                    )
                    out["mel"] = model.mel_loss(o, feats, sm)
                else:
                    o = model(tokens=tok, token_lens=tl, durations=dur)
                    out["mel"] = model.mel_loss(o, feats)
                out["duration"] = model.duration_loss(o, dur)
        elif batch["mode"] == "speech":
            sm = span_mask(frames, T, r.span_p, r.span, g)
            if not bool(sm.any()):
                sm = lengths_to_mask(frames, T)
            o = model(feats=time_freq_mask(feats, fl, g), feat_lens=fl, speech_mask=sm)
            out["mel"] = model.mel_loss(o, feats, sm)
        else:  # text only: a masked text model in CTC form, durations from the duration predictor
            _, tm = mask_text(tok, tl, r.text_mask, model.cfg.mask_id, g)
            o = model(tokens=tok, token_lens=tl, text_mask=tm)
            out["ctc"] = model.ctc(o, tok, tl)
        return out

    def __call__(self, state: TrainState, batch: Batch) -> dict[str, Any]:
        model, opt = state.model, state.optimizers["model"]
        assert isinstance(model, JointSTTTTS)
        opt.zero_grad(set_to_none=True)
        terms = self.losses(model, batch, state.generator)
        w = {"ctc": 1.0, "mel": self.run.mel_weight, "duration": self.run.duration_weight}
        loss = sum(w[k] * v for k, v in terms.items())
        if not isinstance(loss, Tensor) or not bool(torch.isfinite(loss.detach())):
            raise FloatingPointError(f"non-finite or missing loss ({loss}) at step {state.step}")
        loss.backward()
        stats: dict[str, Any] = {f"{batch['mode']}_{k}": float(v.detach()) for k, v in terms.items()}
        stats["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), self.run.grad_clip))
        stats["lr"] = float(opt.param_groups[0]["lr"])
        opt.step()
        stats["loss"] = float(loss.detach())
        return stats


def _tasks(method: str) -> tuple[str, ...]:
    return {"stt-only": ("stt",), "tts-only": ("tts",)}.get(method, ("stt", "tts"))


def joint_state(data: JointData, method: str, run: JointRun, seed: int) -> TrainState:
    """The [`zoo.training.TrainState`][zoo.training.TrainState] of one method: model, AdamW with warm-up and
    cosine decay, the method's batch mixture and the run's generator."""
    check_choice(method, "method", METHODS)
    torch.manual_seed(seed)
    model = JointSTTTTS(joint_config(run.model, vocab_size=data.tokenizer.vocab_size, tasks=_tasks(method)))
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=(0.9, 0.98), weight_decay=1e-2)
    weights = dict(zip(MODES, run.shares)) if method == "joint" else {"paired": 1.0}
    sources = {
        k: Batches.shuffled(
            v, run.batch_size, collate_joint, seed=seed + i, lengths=[int(x["feats"].shape[0]) for x in v]
        )
        for i, (k, v) in enumerate(data.shares.items())
        if weights.get(k, 0) > 0 and v
    }
    return TrainState(
        modules={"model": model},
        optimizers={"model": opt},
        data=MixedBatches(sources, weights, seed),
        schedulers={"model": WarmupCosine(opt, run.steps, run.warmup, 0.05)},
        generator=torch.Generator().manual_seed(seed),
    )


def train_method(
    data: JointData, method: str, run: JointRun, seed: int, progress: bool = False
) -> TrainState:
    """Train one method for ``run.steps`` steps on the zoo's loop; returns its state."""
    state = joint_state(data, method, run, seed)
    Trainer(state, JointStep(run), Budget(steps=run.steps), progress=progress, desc=method).run()
    state.model.eval()
    return state


# -- evaluation ---------------------------------------------------------------------------------------------


def _limit(items: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return items if n <= 0 else items[:n]


@torch.no_grad()
def evaluate_stt(
    model: JointSTTTTS,
    data: JointData,
    items: list[dict[str, Any]],
    steps: int = 0,
    threshold: float = 0.9,
    batch_size: int = 16,
) -> float:
    """Corpus WER of STT with ``steps`` refinement steps on ``items``."""
    model.eval()
    refs: list[str] = []
    hyps: list[str] = []
    for s in range(0, len(items), batch_size):
        b = collate_joint(items[s : s + batch_size])
        ids, _ = refine_stt(model, b["feats"], b["feat_lens"], steps, threshold)
        hyps += [data.tokenizer.decode(h) for h in ids]
        refs += b["texts"]
    return float(wer(refs, hyps))


def asr_features(data: JointData, mel: Tensor) -> Tensor:
    """The judge's features of corpus-normalised log-mels ``(T, F)``: undo the normalisation, then
    per-utterance CMVN."""
    return utterance_cmvn(mel * data.cmvn.std + data.cmvn.mean)


@torch.no_grad()
def evaluate_tts(
    model: JointSTTTTS,
    data: JointData,
    items: list[dict[str, Any]],
    steps: int = 0,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, float]:
    """TTS metrics on ``items`` with ``steps`` refinement steps: mel L1 and MCD (dB) against the reference
    under reference durations (MCD over $c_1..c_{24}$), the duration error (mean absolute error in encoder
    frames over the
    interleaved states, and the relative error of the total length) and ASR-WER (the judge transcribing
    speech synthesised with predicted durations)."""
    model.eval()
    l1s, mcds, dur_mae, len_err = [], [], [], []
    refs: list[str] = []
    hyps: list[str] = []
    judge = data.judge
    for s in range(0, len(items), batch_size):
        b = collate_joint(items[s : s + batch_size])
        tok, tl = b["tokens"], b["token_lens"]
        mel, lens, _ = refine_tts(
            model, tok, tl, steps, torch.Generator().manual_seed(seed), durations=b["durations"]
        )
        free, flens, outs = refine_tts(model, tok, tl, steps, torch.Generator().manual_seed(seed))
        pred_d = outs[0].durations
        assert pred_d is not None
        for i in range(len(tl)):
            n = int(lens[i])
            ref = b["feats"][i, :n]
            l1s.append(float((mel[i, :n] - ref).abs().mean()))
            mcds.append(
                mel_cepstral_distortion(
                    data.cmvn.std * mel[i, :n] + data.cmvn.mean,
                    data.cmvn.std * ref + data.cmvn.mean,
                    order=MCD_ORDER,
                )
            )
            m = 2 * int(tl[i]) + 1
            dur_mae.append(float((pred_d[i, :m] - b["durations"][i, :m]).abs().float().mean()))
            len_err.append(
                abs(int(pred_d[i, :m].sum()) - int(b["durations"][i, :m].sum()))
                / max(1, int(b["durations"][i, :m].sum()))
            )
            nf = int(flens[i])
            x = asr_features(data, free[i, :nf])
            hyp = judge.transcribe(x[None], torch.tensor([nf]))[0]  # type: ignore[operator]
            hyps.append(data.tokenizer.decode(hyp))
            refs.append(b["texts"][i])
    return {
        "mel_l1": statistics.fmean(l1s),
        "mcd_db": statistics.fmean(mcds),
        "duration_mae_frames": statistics.fmean(dur_mae),
        "length_rel_error": statistics.fmean(len_err),
        "asr_wer": float(wer(refs, hyps)),
    }


# -- the command ---------------------------------------------------------------------------------------------


def parser(preset: str = "quick") -> argparse.ArgumentParser:
    """The command line, with the defaults of ``PRESETS[preset]``."""
    return recipe_parser(
        "python -m zoo.recipes joint_stt_tts",
        JointRun,
        PRESETS,
        preset,
        description="Joint non-autoregressive STT + TTS against STT-only, TTS-only and paired-only training.",
    )


def _cell(res: dict[str, Any], key: str) -> str:
    return f"{res[key]:.3f}" if key in res else "–"


def _figure(curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.2))
    for i, (key, label) in enumerate(
        (("stt_wer", "STT WER"), ("mel_l1", "TTS mel L1"), ("asr_wer", "TTS ASR-WER"))
    ):
        ax = fig.add_subplot(1, 3, i + 1)
        for name, c in curves.items():
            if key in c:
                ax.plot(range(len(c[key])), c[key], marker="o", label=name)
        ax.set_xlabel("refinement steps K")
        ax.set_title(label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    run, args = parse_recipe(parser, JointRun, PRESETS, argv)
    out = Path(run.out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    data = prepare_data(run.corpus, run.shares, run.judge_steps, run.judge_lr, progress=not args.quiet)
    test = _limit(data.test, run.eval_utterances)
    results: dict[str, Any] = {"run": asdict(run), "judge_dev_wer": data.judge_wer, "methods": {}}
    curves: dict[str, dict[str, list[float]]] = {}
    rows = [
        "| method | seed | STT WER | mel L1 | MCD dB | dur. MAE | ASR-WER |",
        "|---|---|---|---|---|---|---|",
    ]
    inverter = MelInverter(data.cmvn.mean, data.cmvn.std)
    for method in run.methods:
        for seed in run.seeds:
            state = train_method(data, method, run, seed, not args.quiet)
            model = state.model
            assert isinstance(model, JointSTTTTS)
            res: dict[str, Any] = {"train_seconds": state.seconds}
            if "stt" in model.cfg.tasks:
                res["stt_wer"] = evaluate_stt(model, data, test, 0, run.threshold)
            if "tts" in model.cfg.tasks:
                res.update(evaluate_tts(model, data, test, 0, seed))
            if seed == run.seeds[0]:
                c: dict[str, list[float]] = {}
                for k in range(run.refine_steps + 1):
                    if "stt" in model.cfg.tasks:
                        c.setdefault("stt_wer", []).append(evaluate_stt(model, data, test, k, run.threshold))
                    if "tts" in model.cfg.tasks:
                        t = evaluate_tts(model, data, test, k, seed)
                        c.setdefault("mel_l1", []).append(t["mel_l1"])
                        c.setdefault("asr_wer", []).append(t["asr_wer"])
                curves[method] = c
                if "tts" in model.cfg.tasks:
                    for j, it in enumerate(test[: run.wavs]):
                        mel, lens, _ = refine_tts(
                            model, it["tokens"][None], torch.tensor([it["tokens"].numel()])
                        )
                        write_wav(out / "wav" / f"{method}-{j}.wav", inverter(mel[0, : int(lens[0])]))
            results["methods"].setdefault(method, {})[str(seed)] = res
            cells = [_cell(res, k) for k in ("stt_wer", "mel_l1", "mcd_db", "duration_mae_frames", "asr_wer")]
            rows.append(f"| {method} | {seed} | " + " | ".join(cells) + " |")
    results["refinement"] = curves
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "table.md").write_text("\n".join(rows) + "\n")
    _figure(curves, out / "refinement.png")
    report = [
        f"# Joint STT + TTS ({run.corpus}, {run.model})",
        "",
        f"Judge dev WER: {data.judge_wer:.3f}",
        "",
        *rows,
        "",
        "![refinement](refinement.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(report))
    print("\n".join(rows))
    print(f"wrote {out}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
