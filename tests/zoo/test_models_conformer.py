"""Conformer-CTC: shapes, presets, padding invariance, block locality, self-conditioning, overfitting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.models import ConformerCTC, build_model, conformer_config
from zoo.models.conformer import ConformerConfig


def _tiny(**kw) -> ConformerCTC:
    base = dict(
        n_mels=8,
        stack=2,
        d_model=32,
        num_heads=4,
        num_layers=2,
        conv_kernel=5,
        block_size=4,
        max_distance=4,
        vocab_size=7,
        dropout=0.0,
    )
    base.update(kw)
    return ConformerCTC(ConformerConfig(**base))


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_presets_sizes() -> None:
    assert 0.9e6 <= _params(build_model("conformer", "tiny", vocab_size=32)) <= 5e6
    assert 1e6 <= _params(build_model("conformer", "small", vocab_size=32)) <= 5e6
    cfg = conformer_config("granite-3.3")
    assert (cfg.num_layers, cfg.d_model, cfg.num_heads, cfg.block_size, cfg.stack) == (10, 1024, 8, 200, 2)
    with pytest.raises(ValueError, match="preset"):
        conformer_config("huge")


def test_config_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        ConformerConfig(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="conv_kernel"):
        ConformerConfig(conv_kernel=4)
    with pytest.raises(ValueError, match="mid_weight"):
        ConformerConfig(mid_weight=1.0)
    m = _tiny()
    with pytest.raises(ValueError, match="feats"):
        m(torch.randn(2, 10, 9), torch.tensor([10, 10]))


def test_shapes_and_loss_weights() -> None:
    torch.manual_seed(0)
    m = _tiny().double()
    x = torch.randn(3, 21, 8, dtype=torch.float64)
    lens = torch.tensor([21, 16, 9])
    toks = torch.randint(1, 7, (3, 4))
    tl = torch.tensor([4, 3, 2])
    out = m(x, lens, toks, tl)
    assert out.logits.shape == (3, 10, 7) and out.lengths.tolist() == [10, 8, 4]
    assert out.hidden.shape == (3, 10, 32)
    assert out.extra["mid_logits"].shape == (3, 10, 7)
    assert torch.allclose(out.loss, 0.2 * out.losses["ctc_mid"] + 0.8 * out.losses["ctc"])
    # the CTC head is applied to the exposed hidden states
    assert torch.allclose(out.logits, m.encoder.out(out.hidden))


def test_padding_never_changes_valid_outputs() -> None:
    torch.manual_seed(0)
    m = _tiny().double().eval()
    x = torch.randn(2, 23, 8, dtype=torch.float64)
    lens = torch.tensor([23, 13])
    batched = m(x, lens)
    alone = m(x[1:, :13], lens[1:])
    n = int(alone.lengths[0])
    assert torch.allclose(batched.logits[1, :n], alone.logits[0], atol=1e-10)
    # garbage in the padding changes nothing either
    x2 = x.clone()
    x2[1, 13:] = 1e3
    assert torch.allclose(m(x2, lens).logits[1, :n], alone.logits[0], atol=1e-10)


def test_block_attention_stays_in_block() -> None:
    """With a pointwise conv (kernel 1) the only cross-frame path is attention: block b of the output
    depends on block b of the input only."""
    torch.manual_seed(0)
    m = _tiny(conv_kernel=1, block_size=3).double().eval()
    x = torch.randn(1, 24, 8, dtype=torch.float64, requires_grad=True)  # 12 encoder frames, 4 blocks
    y = m(x, torch.tensor([24])).logits
    for t in range(12):
        (g,) = torch.autograd.grad(y[0, t].sum(), x, retain_graph=True)
        touched = (g[0].abs().sum(-1) > 0).nonzero().flatten()
        b = t // 3
        assert touched.min() >= 6 * b and touched.max() < 6 * (b + 1), t


def test_self_conditioning_feeds_posteriors_back() -> None:
    torch.manual_seed(0)
    sc = _tiny(num_layers=4).double().eval()
    x = torch.randn(1, 20, 8, dtype=torch.float64)
    lens = torch.tensor([20])
    a = sc(x, lens).logits
    with torch.no_grad():
        sc.encoder.mid.weight.zero_()
        sc.encoder.mid.bias.zero_()
    b = sc(x, lens).logits
    assert (a - b).abs().max() > 1e-6  # the mid projection matters
    plain = build_model("conformer-plain", "tiny", vocab_size=32)
    assert plain.encoder.mid is None
    assert plain(torch.randn(1, 40, 80), torch.tensor([40])).extra["mid_logits"] is None


def test_full_attention_option() -> None:
    m = _tiny(block_size=None).double().eval()
    x = torch.randn(1, 16, 8, dtype=torch.float64, requires_grad=True)
    y = m(x, torch.tensor([16])).logits
    (g,) = torch.autograd.grad(y[0, 0].sum(), x)
    assert bool((g[0, -1].abs() > 0).any())  # frame 0 sees the last frame


def test_overfits_one_batch() -> None:
    torch.manual_seed(0)
    m = _tiny(num_layers=2, d_model=48, block_size=8)
    x = torch.randn(2, 40, 8)
    lens = torch.tensor([40, 34])
    toks = torch.tensor([[1, 2, 3, 4, 5], [6, 5, 4, 0, 0]])
    tl = torch.tensor([5, 3])
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    for _ in range(60):
        opt.zero_grad()
        loss = m(x, lens, toks, tl).loss
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert m.transcribe(x, lens) == [[1, 2, 3, 4, 5], [6, 5, 4]]
    assert m.transcribe(x, lens, beam_size=4) == [[1, 2, 3, 4, 5], [6, 5, 4]]
    assert F.softmax(m(x, lens).logits, -1).isfinite().all()
