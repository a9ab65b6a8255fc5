"""DOTA: prefix-LM masking, padding invariance, key-value-cache decoding, one-batch overfit."""

from __future__ import annotations

import pytest
import torch

from zoo.models import DOTA, build_model, dota_config
from zoo.models.dota import DOTAConfig


def _tiny(**kw) -> DOTA:
    base = dict(
        n_mels=8,
        stack=2,
        d_model=32,
        num_layers=2,
        num_heads=4,
        emb_dim=16,
        vocab_size=9,
        max_audio=64,
        max_text=16,
        dropout=0.0,
    )
    base.update(kw)
    return DOTA(DOTAConfig(**base))


def test_presets() -> None:
    n = sum(p.numel() for p in build_model("dota", "tiny", vocab_size=64).parameters())
    assert 0.5e6 <= n <= 5e6
    assert dota_config("dota-634m").num_layers == 32
    with pytest.raises(ValueError, match="sep_id"):
        DOTAConfig(vocab_size=4, sep_id=4)


def test_padding_never_changes_valid_outputs() -> None:
    torch.manual_seed(0)
    m = _tiny().double().eval()
    x = torch.randn(2, 30, 8, dtype=torch.float64)
    lens = torch.tensor([30, 19])
    toks = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]])
    tl = torch.tensor([5, 2])
    out = m(x, lens, toks, tl)
    alone = m(x[1:, :19], lens[1:], toks[1:, :2], tl[1:])
    assert torch.allclose(out.logits[1, :3], alone.logits[0], atol=1e-10)
    assert torch.allclose(out.extra["audio_lengths"], torch.tensor([15, 9]))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_prefix_attention_direction(bidirectional: bool) -> None:
    torch.manual_seed(0)
    m = _tiny(bidirectional_prefix=bidirectional).double().eval()
    x = torch.randn(1, 20, 8, dtype=torch.float64, requires_grad=True)
    out = m(x, torch.tensor([20]), torch.tensor([[1, 2, 3]]), torch.tensor([3]))
    # text position 1 (after [SEP] t1) never sees t2: logits at u depend on tokens <= u only
    a = out.logits[0, 1]
    b = m(x, torch.tensor([20]), torch.tensor([[1, 5, 3]]), torch.tensor([3])).logits[0, 1]
    assert torch.allclose(a, b, atol=1e-12)
    # the first audio position's hidden state sees the last audio frame iff the prefix is bidirectional
    audio, _ = m._audio(x, torch.tensor([20]))
    h, _ = m._run(
        audio,
        torch.zeros(1, 10, 10, dtype=torch.float64).masked_fill(
            ~m._prefix_mask(torch.tensor([10]), 10), torch.finfo(torch.float64).min / 4
        ),
    )
    (g,) = torch.autograd.grad(h[0, 0].sum(), x)
    assert bool((g[0, -1].abs() > 0).any()) == bidirectional


def test_kv_cache_greedy_equals_full_recompute() -> None:
    torch.manual_seed(1)
    m = _tiny().eval()
    x = torch.randn(3, 24, 8)
    lens = torch.tensor([24, 17, 9])
    cached = m.transcribe(x, lens, max_len=8)
    for b in range(3):
        seq: list[int] = []
        for _ in range(8):
            tk = torch.tensor([seq], dtype=torch.long) if seq else torch.zeros(1, 0, dtype=torch.long)
            logits = m(x[b : b + 1, : int(lens[b])], lens[b : b + 1], tk, torch.tensor([len(seq)])).logits
            nxt = int(logits[0, len(seq)].argmax())
            if nxt == m.cfg.sep_id:
                break
            seq.append(nxt)
        assert cached[b] == seq


def test_errors() -> None:
    m = _tiny()
    with pytest.raises(ValueError, match="max_audio"):
        m(torch.randn(1, 200, 8), torch.tensor([200]))
    with pytest.raises(ValueError, match="beam_size"):
        m.transcribe(torch.randn(1, 10, 8), torch.tensor([10]), beam_size=0)


def test_overfits_one_batch_greedy_and_beam() -> None:
    torch.manual_seed(0)
    m = _tiny()
    x = torch.randn(2, 24, 8)
    lens = torch.tensor([24, 20])
    toks = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]])
    tl = torch.tensor([4, 3])
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(120):
        opt.zero_grad()
        loss = m(x, lens, toks, tl).loss
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert m.transcribe(x, lens) == [[1, 2, 3, 4], [5, 6, 7]]
    assert m.transcribe(x, lens, beam_size=3) == [[1, 2, 3, 4], [5, 6, 7]]
