"""Granite-speech's own modules: LoRA, the KV-cached LM, the audio scatter, speech / text modes, presets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.bilevel._asserts import BadInput, assert_rejects
from zoo.models.granite import (
    GRANITE_PRESETS,
    DecoderLM,
    GraniteSpeech,
    LMConfig,
    LoRAConfig,
    LoRALinear,
    MLPProjector,
    QFormerConfig,
    WindowedQFormer,
    apply_lora,
    expand_audio_token,
    granite_config,
    lora_enabled,
    merge_lora,
    scatter_audio,
    unmerge_lora,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> GraniteSpeech:
    torch.manual_seed(0)
    m = GraniteSpeech(granite_config("tiny")).eval()
    with torch.no_grad():  # non-zero adapters, so that speech and text mode differ
        for p in m.speech_parameters():
            p.normal_(0, 0.3)
    return m


def test_lora_merge_unmerge_and_twice() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5), rank=2, alpha=3.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 6)
    w0 = layer.base.weight.clone()
    y = layer(x)
    expected = layer.base(x) + 1.5 * x @ layer.lora_A.t() @ layer.lora_B.t()  # α / r = 1.5
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=1e-6)
    layer.merge()
    torch.testing.assert_close(layer(x), y, atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()
    with pytest.raises(RuntimeError, match="unmerge"):
        layer.enabled = False
        layer(x)
    layer.enabled = True
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, w0, atol=1e-6, rtol=0)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()
    layer.enabled = False
    assert torch.equal(layer(x), layer.base(x))  # off = exactly the base layer


def test_apply_lora_targets_q_and_v_only() -> None:
    lm = DecoderLM(LMConfig(vocab_size=20, d_model=16, num_heads=2, num_layers=2))
    names = apply_lora(lm, LoRAConfig(rank=2))
    assert names == [f"blocks.{i}.attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]
    with pytest.raises(ValueError, match="targets"):
        apply_lora(nn.Sequential(nn.Linear(2, 2)), LoRAConfig(rank=2))


@pytest.mark.parametrize("split", [1, 5, 8])
def test_lm_cache_equals_full_forward(split: int) -> None:
    torch.manual_seed(0)
    lm = DecoderLM(LMConfig(vocab_size=30, d_model=24, num_heads=3, num_layers=3, max_len=32)).eval()
    ids = torch.randint(0, 30, (2, 9))
    with torch.no_grad():
        full = lm(ids).logits
        first = lm(ids[:, :split], use_cache=True)
        parts = [first.logits]
        cache = first.cache
        for t in range(split, 9):  # one token at a time, as in decoding
            step = lm(ids[:, t : t + 1], cache=cache, use_cache=True)
            parts.append(step.logits)
            cache = step.cache
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


def test_lm_is_causal() -> None:
    torch.manual_seed(0)
    lm = DecoderLM(LMConfig(vocab_size=30, d_model=16, num_heads=2, num_layers=2)).eval()
    a = torch.randint(0, 30, (1, 8))
    b = a.clone()
    b[0, 5:] = (b[0, 5:] + 1) % 30
    with torch.no_grad():
        torch.testing.assert_close(lm(a).logits[:, :5], lm(b).logits[:, :5], atol=1e-6, rtol=0)


def test_scatter_places_valid_audio_and_drops_padding() -> None:
    torch.manual_seed(0)
    embeds = torch.randn(2, 7, 4)
    audio = torch.randn(2, 3, 4)
    counts = torch.tensor([3, 2])
    is_audio = torch.zeros(2, 7, dtype=torch.bool)
    is_audio[0, 1:4] = True
    is_audio[1, 4:6] = True
    out = scatter_audio(embeds, is_audio, audio, counts)
    expected = embeds.clone()
    expected[0, 1:4] = audio[0]
    expected[1, 4:6] = audio[1, :2]  # audio[1, 2] is padding: dropped
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="audio tokens"):
        scatter_audio(embeds, is_audio, audio, torch.tensor([3, 3]))


def test_projector_counts_and_shapes() -> None:
    cfg = QFormerConfig(hidden=16, num_heads=2, ffn=32)
    for T in (1, 15, 16, 100):
        for proj in (WindowedQFormer(8, 12, cfg), MLPProjector(8, 12, cfg, hidden=16)):
            out, counts = proj(torch.randn(2, T, 8), torch.tensor([T, max(1, T // 2)]))
            assert out.shape == (2, math.ceil(T / 15) * 3, 12)
            assert counts.tolist() == [math.ceil(T / 15) * 3, math.ceil(max(1, T // 2) / 15) * 3]


def test_mlp_projector_has_about_the_qformer_parameters() -> None:
    cfg = granite_config("quick")
    q = GraniteSpeech(cfg).projector
    m = GraniteSpeech(granite_config("quick", projector_kind="mlp")).projector
    nq, nm = (sum(p.numel() for p in x.parameters()) for x in (q, m))
    assert isinstance(m, MLPProjector) and abs(nm - nq) / nq < 0.01


def test_speech_mode_differs_from_text_mode_and_batches_agree(model: GraniteSpeech) -> None:
    a = model.audio_id
    torch.manual_seed(1)
    feats = torch.randn(2, 160, 40)
    lens = torch.tensor([160, 70])
    counts = model.audio_embeddings(feats, lens)[1]
    rows = [expand_audio_token([2, a, 5, 6], int(c), a) for c in counts]
    S = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (S - len(r)) for r in rows])
    with torch.no_grad():
        batched = model(ids, feats=feats, feat_lens=lens).logits
        alone = model(torch.tensor([rows[1]]), feats=feats[1:, :70], feat_lens=lens[1:]).logits
        torch.testing.assert_close(batched[1, : len(rows[1])], alone[0], atol=1e-4, rtol=1e-4)
        text = torch.tensor([[2, 5, 6]])
        assert not torch.allclose(model.text_logits(text), model.lm(text).logits, atol=1e-4)  # LoRA was on
        with lora_enabled(model.lm, False):
            assert torch.equal(model.text_logits(text), model.lm(text).logits)


def test_text_mode_untouched_by_speech_training_and_merge() -> None:
    """The speech stage trains the projector and the LoRA only: text-mode logits stay bit-identical
    (same operations), and equal to 1e-6 after merging and unmerging the LoRA."""
    torch.manual_seed(0)
    m = GraniteSpeech(granite_config("tiny"))
    a = m.audio_id
    prompts = torch.tensor([[2, 5, 6, 7, 8], [2, 9, 10, 11, 12]])
    m.eval()
    with torch.no_grad():
        before = m.text_logits(prompts)
    for p in m.parameters():
        p.requires_grad_(False)
    params = m.speech_parameters()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=1e-2)
    feats, lens = torch.randn(2, 120, 40), torch.tensor([120, 120])
    ids = torch.tensor([expand_audio_token([2, a, 5, 6, 7], 6, a)] * 2)
    labels = ids.clone()
    labels[:, :8] = -100
    m.train()
    m.encoder.eval()  # frozen encoder: BatchNorm statistics fixed too
    for _ in range(3):
        opt.zero_grad()
        out = m(ids, labels=labels, feats=feats, feat_lens=lens)
        assert out.loss is not None
        out.loss.backward()
        opt.step()
    assert any(
        float(p.detach().abs().sum()) > 0
        for p in m.lm.modules()
        if isinstance(p, LoRALinear)
        for p in [p.lora_B]
    )
    m.eval()
    with torch.no_grad():
        assert torch.equal(m.text_logits(prompts), before)
        merge_lora(m.lm)
        with pytest.raises(RuntimeError, match="already merged"):
            merge_lora(m.lm)
        unmerge_lora(m.lm)
        torch.testing.assert_close(m.text_logits(prompts), before, atol=1e-6, rtol=0)


def test_generate_greedy_cache_beam(model: GraniteSpeech) -> None:
    a = model.audio_id
    feats, lens = torch.randn(2, 120, 40), torch.tensor([120, 90])
    kw = dict(feats=feats, feat_lens=lens, max_new_tokens=6, eos_id=3)
    cached = model.generate([[2, a, 5]] * 2, **kw)
    plain = model.generate([[2, a, 5]] * 2, use_cache=False, **kw)
    assert cached == plain and all(1 <= len(c) <= 6 or c == [] for c in cached)
    # beam 1 is greedy; a wider beam finds a sequence at least as likely (length-normalised)
    beam = model.generate([[2, 5, 6]], max_new_tokens=4, beam_size=1)
    assert beam == model.generate([[2, 5, 6]], max_new_tokens=4)
    assert len(model.generate([[2, 5, 6]], max_new_tokens=4, beam_size=3)[0]) <= 4


def test_paper_presets_are_consistent() -> None:
    big = GRANITE_PRESETS["granite-3.3-8b"]
    assert (big.projector.window, big.projector.num_queries, big.lora.rank) == (15, 3, 64)
    assert big.encoder.d_model == 1024 and big.lm.d_model == 4096 and big.audio_id == 49155
    assert GRANITE_PRESETS["granite-3.3-2b"].lm.d_model == 2048


def _bad_cases(model: GraniteSpeech) -> list[BadInput]:
    a = model.audio_id
    feats, lens = torch.randn(1, 120, 40), torch.tensor([120])
    long_feats = torch.randn(1, 4 * 15 * 50, 40)  # 50 windows · 3 = 150 > max_len 128
    return [
        BadInput(
            "speech prompt without audio",
            lambda: model(torch.tensor([[2, 5]]), feats=feats, feat_lens=lens),
            ValueError,
            "audio token",
        ),
        BadInput("text prompt with audio", lambda: model(torch.tensor([[2, a, 5]])), ValueError, "text mode"),
        BadInput("generate text with audio", lambda: model.generate([[2, a]]), ValueError, "text mode"),
        BadInput(
            "wrong placeholder count",
            lambda: model(torch.tensor([[2, a, a, 5]]), feats=feats, feat_lens=lens),
            ValueError,
            "audio tokens",
        ),
        BadInput(
            "audio longer than context",
            lambda: model(torch.tensor([[2, a]]), feats=long_feats, feat_lens=torch.tensor([3000])),
            ValueError,
            "context",
        ),
        BadInput("prompt twice audio", lambda: expand_audio_token([a, a], 3, a), ValueError, "once"),
        BadInput(
            "feats without lens", lambda: model(torch.tensor([[2, a]]), feats=feats), ValueError, "feat_lens"
        ),
        BadInput("float ids", lambda: model(torch.zeros(1, 3)), ValueError, "input_ids"),
        BadInput("ids out of range", lambda: model.lm(torch.tensor([[999]])), ValueError, "input_ids"),
        BadInput(
            "LM too long", lambda: model.lm(torch.zeros(1, 129, dtype=torch.long)), ValueError, "context"
        ),
        BadInput(
            "all labels ignored",
            lambda: model(torch.tensor([[2, 5]]), labels=torch.full((1, 2), -100)),
            ValueError,
            "labels",
        ),
        BadInput(
            "unknown projector",
            lambda: granite_config("tiny", projector_kind="conv"),
            ValueError,
            "projector_kind",
        ),
        BadInput("unknown preset", lambda: granite_config("huge"), ValueError, "preset"),
        BadInput("rank 0", lambda: LoRAConfig(rank=0), ValueError, "rank"),
        BadInput(
            "heads do not divide", lambda: QFormerConfig(hidden=10, num_heads=4), ValueError, "num_heads"
        ),
        BadInput("beam 0", lambda: model.generate([[2]], beam_size=0), ValueError, "beam_size"),
        BadInput(
            "checkpoint of another size",
            lambda: model.load_state_dict(GraniteSpeech(granite_config("quick")).state_dict()),
            RuntimeError,
            "size mismatch",
        ),
    ]


@pytest.mark.parametrize("i", range(17))
def test_bad_input(model: GraniteSpeech, i: int) -> None:
    cases = _bad_cases(model)
    assert len(cases) == 17
    assert_rejects(cases[i])
