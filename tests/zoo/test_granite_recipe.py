"""The Granite-speech recipe: step functions on the one Trainer, response-only labels, text mode kept."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from zoo.data import CharTokenizer, SentencePieceTokenizer
from zoo.models.granite import GraniteSpeech
from zoo.recipes.__main__ import RECIPES
from zoo.recipes.granite import (
    PRESETS,
    GraniteData,
    GraniteRun,
    SpeechCollate,
    model_config,
    parser,
    run_stages,
    speech_items,
    text_logits,
    text_prompts,
)
from zoo.training import dataclass_from_args

torch.set_num_threads(1)

_PHRASES = [
    ("fr", "trois chats", "three cats"),
    ("de", "zwei hunde", "two dogs"),
    ("en", "four books", "four books"),
    ("es", "cinco libros", "five books"),
]


class _Items(list):  # type: ignore[type-arg]
    """A list of speech items with the attributes the recipe reads from a SpeechDataset."""

    def __init__(self, items: list[dict[str, Any]], utterances: list[Any]) -> None:
        super().__init__(items)
        self.utterances = utterances
        self.lengths = [it["feats"].shape[0] for it in items]


def _data(tmp_path: Path, n: int = 12) -> GraniteData:
    g = torch.Generator().manual_seed(0)
    chars = CharTokenizer.from_texts([p[1] for p in _PHRASES] + [p[2] for p in _PHRASES])
    items, utts = [], []
    for i in range(n):
        lang, src, en = _PHRASES[i % len(_PHRASES)]
        T = 60 + 8 * i
        items.append(
            {
                "id": str(i),
                "feats": torch.randn(T, 40, generator=g),
                "tokens": torch.tensor(chars.encode(src)),
                "text": src,
                "language": lang,
            }
        )
        utts.append(SimpleNamespace(language=lang, transcript=src, translation=en, duration=T / 100))
    lines = [f"{s} = {e}" for _, s, e in _PHRASES] * 5 + [
        "transcribe the speech:",
        "translate the speech to english:",
    ]
    sp = SentencePieceTokenizer.train(lines, 40, "unigram", tmp_path, name="lm")
    ds = _Items(items, utts)
    return GraniteData(chars, sp, ds, ds, ds, lines)  # type: ignore[arg-type]


def test_speech_collate_labels_only_responses(tmp_path: Path) -> None:
    data = _data(tmp_path)
    run = replace_run(model="tiny", vocab_size=40)
    model = GraniteSpeech(model_config(run, data))
    items = speech_items(data.train, data.sp, model.audio_id)
    assert {it["task"] for it in items} == {"asr", "ast"} and len(items) == 12 + 9  # AST for non-English only
    batch = SpeechCollate(model)(items[:4])
    counts = model.audio_embeddings(batch["feats"], batch["feat_lens"])[1]
    for b, it in enumerate(items[:4]):
        ids, labels = batch["ids"][b], batch["labels"][b]
        assert int((ids == model.audio_id).sum()) == int(counts[b])  # expanded to the projector's count
        n_prompt = len(it["prompt"]) - 1 + int(counts[b])
        assert (labels[:n_prompt] == -100).all()
        resp = torch.tensor(it["response"])
        assert torch.equal(labels[n_prompt : n_prompt + len(resp)], resp)
        assert (labels[n_prompt + len(resp) :] == -100).all()
    out = model(batch["ids"], labels=batch["labels"], feats=batch["feats"], feat_lens=batch["feat_lens"])
    assert out.loss is not None and bool(torch.isfinite(out.loss))


def replace_run(**kw: Any) -> GraniteRun:
    from dataclasses import replace

    return replace(GraniteRun(), **kw)


def test_stages_run_and_keep_text_mode(tmp_path: Path) -> None:
    data = _data(tmp_path)
    run = replace_run(model="tiny", vocab_size=40, steps=(3, 4, 3, 2), batch_size=4, lm_batch_size=4)
    model, hist = run_stages(replace_run(**{**run.__dict__, "steps": (3, 4, 0, 0)}), data)
    assert [len(hist[k]) for k in ("encoder", "lm")] == [3, 4]
    prompts = text_prompts(data, 4)
    before = text_logits(model, prompts)
    lm_before = {k: v.clone() for k, v in model.lm.state_dict().items() if "lora_" not in k}
    enc_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model, more = run_stages(run, data, model=model, skip=(1, 2))
    assert [len(more[k]) for k in ("speech", "joint")] == [3, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for rows in more.values() for r in rows)
    # the LM's base weights never change after stage 2; the joint stage moved the encoder
    assert all(torch.equal(v, model.lm.state_dict()[k]) for k, v in lm_before.items())
    assert not all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in enc_before.items())
    assert all(torch.equal(a, b) for a, b in zip(text_logits(model, prompts), before))


def test_cli_presets_and_registration() -> None:
    assert "granite" in RECIPES
    args = parser("standard").parse_args(["--preset", "standard", "--projector", "mlp"])
    run = dataclass_from_args(GraniteRun, args)
    assert run.projector == "mlp" and run.steps == PRESETS["standard"].steps and run.model == "standard"
    with pytest.raises(SystemExit):
        parser().parse_args(["--projector", "conv"])
