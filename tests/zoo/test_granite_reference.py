"""Granite-speech modules against independent implementations: transformers' reference modules
(``models/granite_speech``) and peft's LoRA."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.models import ConformerBlock
from zoo.models.granite import LoRALinear, QFormerConfig, WindowedQFormer, audio_token_count

transformers = pytest.importorskip("transformers", reason="transformers (extra 'refs') is not installed")
gs = pytest.importorskip(
    "transformers.models.granite_speech.modeling_granite_speech",
    reason="this transformers has no granite_speech reference modules",
)

torch.set_num_threads(1)


def _hf_config(encoder_dim: int = 48, lm_dim: int = 40, context: int = 8, max_pos: int = 8) -> object:
    return transformers.GraniteSpeechConfig(
        projector_config=dict(
            model_type="blip_2_qformer",
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            cross_attention_frequency=1,
            encoder_hidden_size=encoder_dim,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        ),
        text_config=dict(
            model_type="granite",
            hidden_size=lm_dim,
            num_attention_heads=4,
            num_hidden_layers=1,
            intermediate_size=64,
            vocab_size=100,
        ),
        encoder_config=dict(
            hidden_dim=encoder_dim,
            num_heads=4,
            num_layers=2,
            context_size=context,
            max_pos_emb=max_pos,
            dropout=0.0,
            input_dim=80,
        ),
    )


def _copy_projector(theirs: nn.Module, ours: WindowedQFormer) -> None:
    sd = theirs.state_dict()
    mine: dict[str, torch.Tensor] = {
        "query": sd["query"],
        "query_norm.weight": sd["qformer.layernorm.weight"],
        "query_norm.bias": sd["qformer.layernorm.bias"],
        "linear.weight": sd["linear.weight"],
        "linear.bias": sd["linear.bias"],
    }
    for i in range(len(ours.layers)):
        hf = f"qformer.encoder.layer.{i}."
        for our_att, their_att in (("self_attn", "attention"), ("cross_attn", "crossattention")):
            for p in ("query", "key", "value"):
                for w in ("weight", "bias"):
                    mine[f"layers.{i}.{our_att}.{p}.{w}"] = sd[f"{hf}{their_att}.attention.{p}.{w}"]
            for w in ("weight", "bias"):
                mine[f"layers.{i}.{our_att}.dense.{w}"] = sd[f"{hf}{their_att}.output.dense.{w}"]
                mine[f"layers.{i}.{our_att}.norm.{w}"] = sd[f"{hf}{their_att}.output.LayerNorm.{w}"]
        for w in ("weight", "bias"):
            mine[f"layers.{i}.ff_in.{w}"] = sd[f"{hf}intermediate_query.dense.{w}"]
            mine[f"layers.{i}.ff_out.{w}"] = sd[f"{hf}output_query.dense.{w}"]
            mine[f"layers.{i}.ff_norm.{w}"] = sd[f"{hf}output_query.LayerNorm.{w}"]
    ours.load_state_dict(mine, strict=True)


@pytest.mark.parametrize("T", [1, 14, 15, 16, 44, 45])
def test_projector_matches_transformers(T: int) -> None:
    torch.manual_seed(0)
    theirs = gs.GraniteSpeechEncoderProjector(_hf_config()).eval()
    ours = WindowedQFormer(48, 40, QFormerConfig(hidden=32, num_heads=4, ffn=64, num_layers=2)).eval()
    _copy_projector(theirs, ours)
    h = torch.randn(3, T, 48)
    with torch.no_grad():
        expected = theirs(h)
        got, counts = ours(h)
    assert got.shape == expected.shape == (3, math.ceil(T / 15) * 3, 40)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert counts.tolist() == [math.ceil(T / 15) * 3] * 3


def test_audio_token_count_matches_feature_extractor() -> None:
    pytest.importorskip("torchaudio", reason="transformers' Granite feature extractor needs torchaudio")
    fe = transformers.GraniteSpeechFeatureExtractor()
    lengths = [0, 1, 159, 160, 161, 2399, 2400, 4799, 4800, 4960, 16000, 16159, 33333, 160000, 480000]
    lengths += list(range(100, 20000, 997))
    assert [audio_token_count(n) for n in lengths] == list(fe._get_num_audio_features(lengths))


def test_conformer_block_matches_transformers() -> None:
    """Where the architectures agree (one utterance, no padding, eval mode, distances clipped to the
    block so that our table of 2R+1 rows is theirs with R = max_pos_emb = context), our block equals theirs.

    Intended differences: (1) our attention masks the padded frames of shorter utterances in a batch,
    theirs attends to them (their batches are padded too); (2) we hold W_q and W_kv in one matrix; (3) our
    relative-position table has 2R+1 rows for R = the clipping distance, theirs 2·max_pos_emb+1 rows of
    which 2·context+1 are used; (4) the encoder around the blocks adds a LayerNorm before the input
    projection and stacks frames itself (theirs stacks in the feature extractor)."""
    torch.manual_seed(0)
    cfg = _hf_config(encoder_dim=48, context=8, max_pos=8).encoder_config
    theirs = gs.GraniteSpeechConformerBlock(cfg).eval()
    ours = ConformerBlock(48, 4, ff_mult=4, conv_kernel=15, conv_expansion=2, max_distance=8).eval()
    sd = theirs.state_dict()
    for bn in ("running_mean", "running_var"):  # non-trivial BatchNorm statistics
        sd[f"conv.batch_norm.{bn}"] = torch.rand_like(sd[f"conv.batch_norm.{bn}"]) + 0.5
    theirs.load_state_dict(sd)
    mine: dict[str, torch.Tensor] = {}
    for ff in ("ff1", "ff2"):
        mine[f"{ff}.net.0.weight"], mine[f"{ff}.net.0.bias"] = (
            sd[f"{ff}.pre_norm.weight"],
            sd[f"{ff}.pre_norm.bias"],
        )
        mine[f"{ff}.net.1.weight"], mine[f"{ff}.net.1.bias"] = (
            sd[f"{ff}.up_proj.weight"],
            sd[f"{ff}.up_proj.bias"],
        )
        mine[f"{ff}.net.4.weight"], mine[f"{ff}.net.4.bias"] = (
            sd[f"{ff}.down_proj.weight"],
            sd[f"{ff}.down_proj.bias"],
        )
    mine["attn_ln.weight"], mine["attn_ln.bias"] = sd["attn.pre_norm.weight"], sd["attn.pre_norm.bias"]
    mine["attn.to_qkv.weight"] = torch.cat([sd["attn.to_q.weight"], sd["attn.to_kv.weight"]])
    mine["attn.to_out.weight"], mine["attn.to_out.bias"] = sd["attn.to_out.weight"], sd["attn.to_out.bias"]
    mine["attn.rel_table"] = sd["attn.rel_pos_emb.weight"]
    conv = {"ln": "norm", "pw1": "up_conv", "pw2": "down_conv", "norm": "batch_norm"}
    for o, t in conv.items():
        for k, v in sd.items():
            if k.startswith(f"conv.{t}."):
                mine[f"conv.{o}.{k.split('.', 2)[2]}"] = v
    mine["conv.dw.weight"] = sd["conv.depth_conv.conv.weight"]
    mine["out_ln.weight"], mine["out_ln.bias"] = sd["post_norm.weight"], sd["post_norm.bias"]
    ours.load_state_dict(mine, strict=True)
    seq = torch.arange(8)
    dists = (seq[:, None] - seq[None, :]).clamp(-8, 8) + 8
    x = torch.randn(1, 21, 48)  # two full blocks and a partial one
    with torch.no_grad():
        torch.testing.assert_close(ours(x, block=8), theirs(x, attention_dists=dists), atol=1e-5, rtol=1e-5)


def test_lora_matches_peft() -> None:
    peft = pytest.importorskip("peft", reason="peft (extra 'refs') is not installed")
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(12, 10))
    ref = peft.get_peft_model(
        nn.Sequential(nn.Linear(12, 10)),
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["0"], lora_dropout=0.0),
    )
    ref.base_model.model[0].base_layer.load_state_dict(base[0].state_dict())
    ours = LoRALinear(base[0], rank=4, alpha=8.0)
    layer = ref.base_model.model[0]
    with torch.no_grad():
        ours.lora_A.copy_(torch.randn(4, 12))
        ours.lora_B.copy_(torch.randn(10, 4))
        layer.lora_A["default"].weight.copy_(ours.lora_A)
        layer.lora_B["default"].weight.copy_(ours.lora_B)
    x = torch.randn(7, 12)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)
        assert not torch.allclose(ours(x), ours.base(x), atol=1e-3)  # the adapter does something
        # merged, peft's merged weight is ours
        ours.merge()
        ref.merge_adapter()
        torch.testing.assert_close(ours.base.weight, layer.base_layer.weight, atol=1e-6, rtol=1e-6)
