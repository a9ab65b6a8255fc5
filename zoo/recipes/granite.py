"""``python -m zoo.recipes granite``: Granite-speech's four training stages, speech and text mode evaluated.

Stages (Saon et al., arXiv:2505.08699), all on [`zoo.training.Trainer`][zoo.training.Trainer]:

1. the Conformer-CTC encoder with self-conditioned CTC
   ($0.2\\,\\mathrm{CTC}_{mid} + 0.8\\,\\mathrm{CTC}_{top}$), character targets;
2. the text LM on text only (SentencePiece tokens): transcripts, English translations and written
   translation tasks (`zoo.data.lm_text`);
3. encoder and LM frozen: the projector and the LoRA trained with next-token cross-entropy on the
   responses only, on ASR and X→en AST examples mixed;
4. optionally, encoder, projector and LoRA fine-tuned jointly (the LM's base weights stay frozen).

Writes to ``--out``: ``results.json``, ``table.md``, ``losses.png``, ``scores.png`` and ``report.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from zoo.data import (
    CharTokenizer,
    FeatureSpec,
    SentencePieceTokenizer,
    SpeechDataset,
    build_corpus,
    collate,
    read_manifest,
    select,
    stacked_length,
)
from zoo.data.lm_text import lm_training_texts, translation_prompt
from zoo.metrics import bleu, chrf, wer
from zoo.models.granite import (
    GRANITE_PRESETS,
    GraniteSpeech,
    granite_config,
    lora_enabled,
    lora_parameters,
    merge_lora,
    next_token_loss,
    projector_lengths,
    unmerge_lora,
)
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
    "ASR_PROMPT",
    "AST_PROMPT",
    "PRESETS",
    "GraniteData",
    "GraniteRun",
    "LMStep",
    "SpeechStep",
    "evaluate_speech",
    "main",
    "parser",
    "prepare",
    "run_stages",
    "speech_loss",
    "text_mode_check",
]

#: The speech-mode instructions (after the audio placeholder).
ASR_PROMPT = "transcribe the speech:"
AST_PROMPT = "translate the speech to english:"


@dataclass(frozen=True)
class GraniteRun:
    """A ``python -m zoo.recipes granite`` run.

    Attributes:
        corpus: corpus preset (six languages with translations) or a built corpus directory.
        model: model preset of ``GRANITE_PRESETS`` (the LM vocabulary follows the tokenizer).
        vocab_size: SentencePiece vocabulary (unigram).
        generated: generated phrases per language added to the LM's pre-training text.
        steps: optimizer steps of stages 1 (encoder), 2 (LM), 3 (projector + LoRA) and 4 (joint; 0 = skip).
        lr: peak AdamW learning rates of the four stages.
        batch_size: utterances per speech batch; lm_batch_size: lines per LM batch.
        mid_weight: weight of the mid-layer CTC (0.2 as in the paper; 0 with no self-conditioning = top-only).
        self_conditioning: feed the mid-layer posteriors back (Granite) or not.
        projector: ``qformer`` (Granite) or ``mlp`` (the ablation, equal parameters).
        seed: seeds the models, the batch order and the generated text.
        max_new_tokens: longest decoded response.
        eval_limit: evaluate at most this many test utterances (``none``: all).
        out: output folder.
    """

    corpus: str = "multi-quick"
    model: str = field(default="quick", metadata={"choices": tuple(GRANITE_PRESETS)})
    vocab_size: int = 384
    generated: int = 300
    steps: tuple[int, int, int, int] = field(
        default=(300, 400, 300, 0), metadata={"metavar": ("ENC", "LM", "SPEECH", "JOINT")}
    )
    lr: tuple[float, float, float, float] = field(
        default=(2e-3, 2e-3, 2e-3, 3e-4), metadata={"metavar": ("ENC", "LM", "SPEECH", "JOINT")}
    )
    batch_size: int = 16
    lm_batch_size: int = 32
    mid_weight: float = 0.2
    self_conditioning: bool = True
    projector: str = field(default="qformer", metadata={"choices": ("qformer", "mlp")})
    seed: int = 0
    max_new_tokens: int = 40
    eval_limit: int | None = None
    out: str = "results/granite"


_QUICK = GraniteRun()
#: Named scales; every option overrides its preset's value.
PRESETS: dict[str, GraniteRun] = {
    # The six-language quick corpus, the quick model, a few hundred steps a stage (≈ 15 min of wall time
    # measured on a shared, fully loaded 2-core machine; most of it stage 1).
    "quick": _QUICK,
    # A few million LM tokens (20 000 generated phrases a language) and 10x longer stages (not run here).
    "standard": replace(
        _QUICK, model="standard", vocab_size=1024, generated=20000, steps=(3000, 4000, 3000, 500)
    ),
}


@dataclass
class GraniteData:
    """What the stages train and test on.

    Attributes:
        chars: the encoder's character tokenizer; sp: the LM's SentencePiece tokenizer.
        train, dev, test: feature datasets (character targets) of the corpus splits.
        lm_lines: the LM's pre-training text.
    """

    chars: CharTokenizer
    sp: SentencePieceTokenizer
    train: SpeechDataset
    dev: SpeechDataset
    test: SpeechDataset
    lm_lines: list[str]


def prepare(run: GraniteRun, work: Path, progress: bool = False) -> GraniteData:
    """Build (or reuse) the corpus, compute the features, train the SentencePiece model on the LM text."""
    root = Path(run.corpus)
    if not root.is_dir():
        root = build_corpus(run.corpus, seed=0, progress=progress)
    utts = read_manifest(root)
    n_mels = GRANITE_PRESETS[run.model].encoder.n_mels
    fe = FeatureSpec(n_mels=n_mels, cmvn=True).build()
    chars = CharTokenizer.for_languages()
    train = SpeechDataset(utts, ["labelled", "unlabelled"], chars, fe).precompute(progress)
    dev = SpeechDataset(utts, "dev", chars, fe).precompute(progress)
    test = SpeechDataset(utts, "test", chars, fe).precompute(progress)
    lines = lm_training_texts(select(utts, ["labelled", "unlabelled"]), run.generated, run.seed)
    sp_dir = work / "tokenizer"
    sp = SentencePieceTokenizer.train(
        [*lines, ASR_PROMPT, AST_PROMPT], run.vocab_size, "unigram", sp_dir, name="lm"
    )
    return GraniteData(chars, sp, train, dev, test, lines)


def model_config(run: GraniteRun, data: GraniteData) -> Any:
    """The `GraniteConfig` of a run: the preset with the tokenizers' vocabularies (+1 for the audio token)."""
    base = GRANITE_PRESETS[run.model]
    return granite_config(
        run.model,
        encoder=replace(
            base.encoder,
            vocab_size=data.chars.vocab_size,
            mid_weight=run.mid_weight,
            self_conditioning=run.self_conditioning,
        ),
        lm=replace(base.lm, vocab_size=data.sp.vocab_size + 1),
        projector_kind=run.projector,
    )


# ---------------------------------------------------------------------------------------------- stage 2


def _pad(rows: Sequence[Sequence[int]], value: int) -> Tensor:
    S = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (S - len(r)) for r in rows], dtype=torch.long)


def text_collate(items: list[list[int]]) -> dict[str, Tensor]:
    """LM batch: ``ids`` padded with 0 and ``labels`` (the ids, ``-100`` at padding)."""
    ids = _pad(items, 0)
    labels = _pad(items, -100)
    return {"ids": ids, "labels": labels}


class LMStep:
    """Stage 2's step function: next-token cross-entropy of the LM (adapters off), clip, step."""

    def __init__(self, grad_clip: float = 1.0) -> None:
        self.grad_clip = grad_clip

    def __call__(self, state: TrainState, batch: dict[str, Tensor]) -> dict[str, Any]:
        lm, opt = state.modules["lm"], state.optimizers["lm"]
        opt.zero_grad(set_to_none=True)
        with lora_enabled(lm, False):
            loss = next_token_loss(lm(batch["ids"]).logits, batch["labels"])
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"non-finite LM loss at step {state.step}")
        loss.backward()
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], self.grad_clip)
        opt.step()
        return {"loss": float(loss.detach()), "lr": float(opt.param_groups[0]["lr"])}


# ---------------------------------------------------------------------------------------------- stage 3


def speech_items(ds: SpeechDataset, sp: SentencePieceTokenizer, audio_id: int) -> list[dict[str, Any]]:
    """ASR items for every utterance and X→en AST items for every non-English one."""
    asr = [sp.bos_id, audio_id, *sp.encode(ASR_PROMPT)]
    ast = [sp.bos_id, audio_id, *sp.encode(AST_PROMPT)]
    items = []
    for i, u in enumerate(ds.utterances):
        feats = ds[i]["feats"]
        items.append(
            {"feats": feats, "prompt": asr, "response": [*sp.encode(u.transcript), sp.eos_id], "task": "asr"}
        )
        if u.language != "en":
            items.append(
                {
                    "feats": feats,
                    "prompt": ast,
                    "response": [*sp.encode(u.translation), sp.eos_id],
                    "task": "ast",
                }
            )
    return items


class SpeechCollate:
    """Speech batch: features, and the prompts with the audio token expanded to each utterance's count,
    followed by the responses; ``labels`` are ``-100`` except on the responses."""

    def __init__(self, model: GraniteSpeech) -> None:
        self.stack = model.cfg.encoder.stack
        self.window, self.queries = model.cfg.projector.window, model.cfg.projector.num_queries
        self.audio_id = model.audio_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        feat_lens = torch.tensor([it["feats"].shape[0] for it in items])
        counts = projector_lengths(
            stacked_length(feat_lens, self.stack, drop_last=True), self.window, self.queries
        )
        ids, labels = [], []
        for it, c in zip(items, counts.tolist()):
            p = it["prompt"]
            at = p.index(self.audio_id)
            prompt = p[:at] + [self.audio_id] * c + p[at + 1 :]
            ids.append(prompt + it["response"])
            labels.append([-100] * len(prompt) + it["response"])
        T = int(feat_lens.max())
        feats = torch.zeros(len(items), T, items[0]["feats"].shape[1])
        for b, it in enumerate(items):
            feats[b, : it["feats"].shape[0]] = it["feats"]
        return {"feats": feats, "feat_lens": feat_lens, "ids": _pad(ids, 0), "labels": _pad(labels, -100)}


class SpeechStep:
    """Stages 3 and 4's step function: speech-mode cross-entropy on the responses, clip, step.

    ``frozen_encoder``: the encoder runs without gradients and in eval mode (stage 3); the LM always runs
    in eval mode (its base weights are frozen; only the adapters train)."""

    def __init__(self, frozen_encoder: bool = True, grad_clip: float = 1.0) -> None:
        self.frozen_encoder, self.grad_clip = frozen_encoder, grad_clip

    def __call__(self, state: TrainState, batch: dict[str, Any]) -> dict[str, Any]:
        model, opt = state.model, state.optimizers["model"]
        assert isinstance(model, GraniteSpeech)
        model.lm.eval()
        if self.frozen_encoder:
            model.encoder.eval()
        opt.zero_grad(set_to_none=True)
        out = model(batch["ids"], labels=batch["labels"], feats=batch["feats"], feat_lens=batch["feat_lens"])
        assert out.loss is not None
        if not bool(torch.isfinite(out.loss)):
            raise FloatingPointError(f"non-finite speech loss at step {state.step}")
        out.loss.backward()
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], self.grad_clip)
        opt.step()
        return {"loss": float(out.loss.detach()), "lr": float(opt.param_groups[0]["lr"])}


def _adamw_state(
    modules: dict[str, nn.Module],
    key: str,
    params: list[nn.Parameter],
    lr: float,
    steps: int,
    data: Any,
    seed: int,
) -> TrainState:
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    sched = WarmupCosine(opt, max(steps, 1), min(100, steps // 10), 0.05)
    return TrainState(
        modules=modules,
        optimizers={key: opt},
        data=data,
        schedulers={key: sched},
        generator=torch.Generator().manual_seed(seed),
    )


def _freeze(model: GraniteSpeech, trainable: list[nn.Parameter]) -> None:
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)


def run_stages(
    run: GraniteRun,
    data: GraniteData,
    *,
    progress: bool = False,
    model: GraniteSpeech | None = None,
    skip: Sequence[int] = (),
) -> tuple[GraniteSpeech, dict[str, list[dict[str, Any]]]]:
    """Train the stages of ``run`` (those not in ``skip``, e.g. ``(1, 2)`` with a ``model`` whose encoder and
    LM are trained already); returns the model and every stage's step history."""
    torch.manual_seed(run.seed)
    model = model or GraniteSpeech(model_config(run, data))
    hist: dict[str, list[dict[str, Any]]] = {}
    s1, s2, s3, s4 = run.steps
    if 1 not in skip and s1:
        _freeze(model, list(model.encoder.parameters()))
        cfg = SupervisedConfig(
            steps=s1, batch_size=run.batch_size, lr=run.lr[0], warmup=min(100, s1 // 10), seed=run.seed
        )
        train: Sequence[Any] = data.train  # type: ignore[assignment]  # a map-style data set
        st = supervised_state(model.encoder, train, collate, cfg)
        hist["encoder"] = Trainer(
            st, SupervisedStep(cfg.grad_clip), cfg.budget(), progress=progress, desc="1 encoder"
        ).run()
    if 2 not in skip and s2:
        lora = {id(p) for p in lora_parameters(model.lm)}
        base = [p for p in model.lm.parameters() if id(p) not in lora]
        _freeze(model, base)
        ids = [[data.sp.bos_id, *data.sp.encode(t), data.sp.eos_id] for t in data.lm_lines]
        batches = Batches.shuffled(
            ids, run.lm_batch_size, text_collate, seed=run.seed, lengths=[len(i) for i in ids]
        )
        st = _adamw_state({"lm": model.lm}, "lm", base, run.lr[1], s2, batches, run.seed)
        hist["lm"] = Trainer(st, LMStep(), Budget(steps=s2), progress=progress, desc="2 LM").run()
    items = speech_items(data.train, data.sp, model.audio_id)
    lengths = [it["feats"].shape[0] for it in items]
    for stage, steps, lr, params, frozen in (
        (3, s3, run.lr[2], model.speech_parameters(), True),
        (4, s4, run.lr[3], [*model.encoder.parameters(), *model.speech_parameters()], False),
    ):
        if stage in skip or not steps:
            continue
        _freeze(model, params)
        batches = Batches.shuffled(
            items, run.batch_size, SpeechCollate(model), seed=run.seed + stage, lengths=lengths
        )
        st = _adamw_state({"model": model}, "model", params, lr, steps, batches, run.seed)
        name = "speech" if stage == 3 else "joint"
        hist[name] = Trainer(
            st, SpeechStep(frozen), Budget(steps=steps), progress=progress, desc=f"{stage} {name}"
        ).run()
    _freeze(model, [])
    model.eval()
    return model, hist


# ------------------------------------------------------------------------------------------- evaluation


def text_prompts(data: GraniteData, n: int = 24) -> list[list[int]]:
    """Fixed text-mode prompts: written translation tasks of the first ``n`` dev utterances."""
    sp = data.sp
    return [
        [sp.bos_id, *sp.encode(translation_prompt(u.language, u.transcript))] for u in data.dev.utterances[:n]
    ]


@torch.no_grad()
def text_logits(model: GraniteSpeech, prompts: list[list[int]]) -> list[Tensor]:
    """Text-mode logits of each prompt (one at a time: no padding)."""
    return [model.text_logits(torch.tensor([p]))[0] for p in prompts]


@torch.no_grad()
def text_mode_check(model: GraniteSpeech, prompts: list[list[int]], before: list[Tensor]) -> dict[str, Any]:
    """Text-mode logits now against ``before``: bit-identical? and the largest difference after merging and
    unmerging the LoRA."""
    now = text_logits(model, prompts)
    identical = all(torch.equal(a, b) for a, b in zip(now, before))
    merge_lora(model.lm)
    unmerge_lora(model.lm)
    after = text_logits(model, prompts)
    diff = max(float((a - b).abs().max()) for a, b in zip(after, before))
    scale = max(1.0, max(float(b.abs().max()) for b in before))
    return {
        "bit_identical": identical,
        "merge_unmerge_max_abs_diff": diff,
        "merge_unmerge_max_rel_diff": diff / scale,
        "n_prompts": len(prompts),
    }


@torch.no_grad()
def speech_loss(
    model: GraniteSpeech, items: list[dict[str, Any]], batch_size: int = 8, task: str | None = "asr"
) -> float:
    """Teacher-forced cross-entropy per response token of speech-mode ``items`` (``task``: ``"asr"``,
    ``"ast"`` or ``None`` for both): a score that ranks models long before they decode words right."""
    chosen = [it for it in items if task is None or it["task"] == task]
    if not chosen:
        raise ValueError(f"no speech item of task {task!r}")
    col = SpeechCollate(model)
    was = model.training
    model.eval()
    total = count = 0.0
    try:
        for i in range(0, len(chosen), batch_size):
            b = col(chosen[i : i + batch_size])
            out = model(b["ids"], labels=b["labels"], feats=b["feats"], feat_lens=b["feat_lens"])
            n = float((b["labels"][:, 1:] != -100).sum())
            assert out.loss is not None
            total += float(out.loss) * n
            count += n
    finally:
        model.train(was)
    return total / count


def _decode(sp: SentencePieceTokenizer, ids: list[int]) -> str:
    return sp.decode([i for i in ids if i < sp.vocab_size])


@torch.no_grad()
def evaluate_speech(
    model: GraniteSpeech,
    data: GraniteData,
    split: str = "test",
    limit: int | None = None,
    max_new_tokens: int = 40,
) -> dict[str, Any]:
    """Speech-mode ASR and AST, the encoder's CTC readout and the cascade (CTC transcript → text-mode
    translation) on ``split``; WER, per-language BLEU and chrF, real-time factors."""
    ds = data.test if split == "test" else data.dev
    sp, n = data.sp, len(ds) if limit is None else min(limit, len(ds))
    asr_p = [sp.bos_id, model.audio_id, *sp.encode(ASR_PROMPT)]
    ast_p = [sp.bos_id, model.audio_id, *sp.encode(AST_PROMPT)]
    refs, hyp_lm, hyp_ctc = [], [], []
    by_lang: dict[str, dict[str, list[str]]] = {}
    t_lm = t_ctc = audio_s = 0.0
    for i in range(n):
        it, u = ds[i], ds.utterances[i]
        f, fl = it["feats"][None], torch.tensor([it["feats"].shape[0]])
        audio_s += u.duration
        t0 = time.perf_counter()
        ctc = data.chars.decode(model.ctc_transcribe(f, fl)[0])
        t1 = time.perf_counter()
        asr = _decode(
            sp,
            model.generate([asr_p], feats=f, feat_lens=fl, max_new_tokens=max_new_tokens, eos_id=sp.eos_id)[
                0
            ],
        )
        t2 = time.perf_counter()
        t_ctc += t1 - t0
        t_lm += t2 - t1
        refs.append(u.transcript)
        hyp_lm.append(asr)
        hyp_ctc.append(ctc)
        if u.language != "en":
            d = by_lang.setdefault(u.language, {"refs": [], "speech": [], "cascade": []})
            d["refs"].append(u.translation)
            d["speech"].append(
                _decode(
                    sp,
                    model.generate(
                        [ast_p], feats=f, feat_lens=fl, max_new_tokens=max_new_tokens, eos_id=sp.eos_id
                    )[0],
                )
            )
            casc = [sp.bos_id, *sp.encode(translation_prompt(u.language, ctc))]
            d["cascade"].append(
                _decode(sp, model.generate([casc], max_new_tokens=max_new_tokens, eos_id=sp.eos_id)[0])
            )
    ast = {
        lang: {
            "n": len(d["refs"]),
            "bleu_speech": bleu(d["refs"], d["speech"]),
            "bleu_cascade": bleu(d["refs"], d["cascade"]),
            "chrf_speech": chrf(d["refs"], d["speech"]),
            "chrf_cascade": chrf(d["refs"], d["cascade"]),
            "examples": list(zip(d["refs"], d["speech"], d["cascade"]))[:3],
        }
        for lang, d in sorted(by_lang.items())
    }
    return {
        "n": n,
        "wer_speech": wer(refs, hyp_lm),
        "wer_ctc": wer(refs, hyp_ctc),
        "rtf_speech": t_lm / max(audio_s, 1e-9),
        "rtf_ctc": t_ctc / max(audio_s, 1e-9),
        "ast": ast,
        "examples": list(zip(refs, hyp_lm, hyp_ctc))[:5],
    }


def results_table(ev: dict[str, Any]) -> str:
    """One Markdown table: ASR WER (speech LM, CTC readout), AST BLEU / chrF per language (speech LM,
    cascade)."""
    lines = [
        "| task | language | n | speech LM | baseline | metric |",
        "|---|---|---|---|---|---|",
        f"| ASR | all | {ev['n']} | {100 * ev['wer_speech']:.1f} | {100 * ev['wer_ctc']:.1f} (CTC readout) "
        "| WER % |",
    ]
    for lang, a in ev["ast"].items():
        for metric, name in (("bleu", "BLEU"), ("chrf", "chrF")):
            speech, cascade = a[f"{metric}_speech"], a[f"{metric}_cascade"]
            lines.append(f"| AST | {lang}→en | {a['n']} | {speech:.1f} | {cascade:.1f} (cascade) | {name} |")
    return "\n".join(lines)


def write_outputs(
    out: Path,
    run: GraniteRun,
    hist: dict[str, list[dict[str, Any]]],
    ev: dict[str, Any],
    text: dict[str, Any],
) -> None:
    """``results.json``, ``table.md``, ``losses.png``, ``scores.png``, ``report.md``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(
            {"run": asdict(run), "eval": ev, "text_mode": text, "history": hist}, indent=1, default=str
        )
    )
    table = results_table(ev)
    (out / "table.md").write_text(table + "\n")
    fig, axes = plt.subplots(1, max(1, len(hist)), figsize=(3.2 * max(1, len(hist)), 2.8))
    for ax, (name, rows) in zip(list(getattr(axes, "flat", [axes])), hist.items()):
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8)
        ax.set_title(name)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out / "losses.png", dpi=110)
    plt.close(fig)
    langs = list(ev["ast"])
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    x = range(len(langs))
    ax.bar([i - 0.2 for i in x], [ev["ast"][lang]["chrf_speech"] for lang in langs], 0.4, label="speech LM")
    ax.bar([i + 0.2 for i in x], [ev["ast"][lang]["chrf_cascade"] for lang in langs], 0.4, label="cascade")
    ax.set_xticks(list(x), langs)
    ax.set_ylabel("chrF")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=110)
    plt.close(fig)
    lines = [
        "# Granite-speech recipe report",
        "",
        f"Run: `{asdict(run)}`",
        "",
        "## Speech mode on held-out voices",
        "",
        table,
        "",
        f"Real-time factor: speech LM {ev['rtf_speech']:.3f}, CTC readout {ev['rtf_ctc']:.4f}.",
        "",
        "## Text mode",
        "",
        f"Text-mode logits on {text['n_prompts']} fixed prompts bit-identical to the LM's before the speech "
        f"stages: {text['bit_identical']}; largest difference after merging and unmerging the LoRA: "
        f"{text['merge_unmerge_max_abs_diff']:.2e}.",
        "",
        "![losses](losses.png)",
        "",
        "![scores](scores.png)",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def parser(preset: str = "quick") -> argparse.ArgumentParser:
    """The command line, with the defaults of ``PRESETS[preset]``."""
    return recipe_parser("python -m zoo.recipes granite", GraniteRun, PRESETS, preset, description=__doc__)


def main(argv: list[str] | None = None) -> int:
    """Run the stages, evaluate both modes, write the table, figures and report into ``--out``."""
    run, args = parse_recipe(parser, GraniteRun, PRESETS, argv)
    out = Path(run.out)
    progress = not args.quiet
    data = prepare(run, out, progress)
    model, hist = run_stages(replace(run, steps=(*run.steps[:2], 0, 0)), data, progress=progress)
    prompts = text_prompts(data)
    before = text_logits(model, prompts)
    model, more = run_stages(run, data, progress=progress, model=model, skip=(1, 2))
    hist.update(more)
    text = text_mode_check(model, prompts, before)
    ev = evaluate_speech(model, data, "test", run.eval_limit, run.max_new_tokens)
    write_outputs(out, run, hist, ev, text)
    print(results_table(ev))
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
