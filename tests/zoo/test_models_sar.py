"""SAR: block + look-ahead locality of the encoder, streaming == offline, block alignment, overfit."""

from __future__ import annotations

import itertools

import pytest
import torch

from zoo.models import SAR, SARStreamer, align_to_blocks, build_model, sar_config
from zoo.models.sar import SARConfig


def _tiny(**kw) -> SAR:
    base = dict(
        n_mels=8,
        stack=2,
        d_model=32,
        num_heads=4,
        num_layers=2,
        conv_kernel=3,
        block=4,
        past=3,
        lookahead=2,
        lm_layers=1,
        vocab_size=8,
        dropout=0.0,
    )
    base.update(kw)
    return SAR(SARConfig(**base))


def test_presets_sizes() -> None:
    for name in ("sar", "sar-ctc"):
        n = sum(p.numel() for p in build_model(name, "tiny", vocab_size=32).parameters())
        assert 0.5e6 <= n <= 5e6
    assert sar_config("paper").lookahead == 16
    with pytest.raises(ValueError, match="lm_layers"):
        SARConfig(sar=True, lm_layers=0)


def test_encoder_never_looks_past_block_and_lookahead() -> None:
    torch.manual_seed(0)
    cfg_block, la, past, stack = 4, 2, 3, 2
    m = _tiny().double().eval()
    x = torch.randn(1, 48, 8, dtype=torch.float64, requires_grad=True)  # 24 encoder frames, 6 blocks
    h, _ = m.encode(x, torch.tensor([48]))
    w = torch.randn(h.shape[-1], dtype=torch.float64)
    for t in range(24):
        (g,) = torch.autograd.grad(h[0, t] @ w, x, retain_graph=True)
        touched = (g[0].abs().sum(-1) > 0).nonzero().flatten() // stack
        b = t // cfg_block
        assert touched.max() < (b + 1) * cfg_block + la, t  # never past the block's look-ahead
        assert touched.min() >= max(0, b * cfg_block - past), t  # nor before its past context
        assert touched.max() == min(23, (b + 1) * cfg_block + la - 1), t  # and the look-ahead is used


def test_padding_never_changes_valid_outputs() -> None:
    torch.manual_seed(0)
    m = _tiny().double().eval()
    x = torch.randn(2, 40, 8, dtype=torch.float64)
    lens = torch.tensor([40, 27])
    toks = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    tl = torch.tensor([4, 2])
    a = m(x, lens, toks, tl)
    b = m(x[1:, :27], lens[1:], toks[1:, :2], tl[1:])
    n = int(b.lengths[0])
    assert torch.allclose(a.logits[1, :n], b.logits[0], atol=1e-10)
    assert m.transcribe(x, lens)[1] == m.transcribe(x[1:, :27], lens[1:])[0]


@pytest.mark.parametrize("sar", [True, False])
def test_streaming_equals_offline(sar: bool) -> None:
    torch.manual_seed(0)
    m = _tiny(sar=sar, lm_layers=1 if sar else 0).eval()
    x = torch.randn(2, 50, 8)
    lens = torch.tensor([50, 37])
    offline = m.transcribe(x, lens)
    for b in range(2):
        s = SARStreamer(m)
        partial = []
        for i in range(0, int(lens[b]), 7):
            partial.append(s.push_features(x[b, i : min(i + 7, int(lens[b]))]))
        assert s.finish() == offline[b]
        # partial hypotheses only grow (greedy decoding never retracts)
        for p, q in itertools.pairwise(partial):
            assert q[: len(p)] == p
        assert len(s.block_seconds) == -(-int(lens[b]) // 2 // 4)


def test_streaming_audio_matches_features() -> None:
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=8)

    def feats(w: torch.Tensor) -> torch.Tensor:
        return mel(w).clamp_min(1e-6).log().T

    torch.manual_seed(0)
    m = _tiny().eval()
    wave = torch.randn(16000) * 0.1
    s = SARStreamer(m, feats)
    for i in range(0, 16000, 1234):
        s.push_audio(wave[i : i + 1234])
    got = s.finish()
    f = feats(wave)
    assert got == m.transcribe(f[None], torch.tensor([f.shape[0]]))[0]


def test_align_to_blocks() -> None:
    # one-hot posteriors: label 1 spikes at frame 1, label 2 at frame 5, label 2 again at 9
    T, C = 12, 3
    lp = torch.full((T, C), -20.0)
    lp[:, 0] = 0.0
    for t, c in [(1, 1), (5, 2), (9, 2)]:
        lp[t] = -20.0
        lp[t, c] = 0.0
    blocks = align_to_blocks(lp.log_softmax(-1), torch.tensor([1, 2, 2]), block=4)
    assert blocks.tolist() == [0, 1, 2]
    # too few frames: labels are spread uniformly
    assert align_to_blocks(lp[:2].log_softmax(-1), torch.tensor([1, 2, 2]), block=4).tolist() == [0, 0, 0]


def test_training_uses_label_context_of_earlier_blocks() -> None:
    torch.manual_seed(0)
    m = _tiny().double().eval()
    x = torch.randn(1, 40, 8, dtype=torch.float64)
    toks = torch.tensor([[1, 2, 3, 4, 5]])
    out = m(x, torch.tensor([40]), toks, torch.tensor([5]))
    blocks = out.extra["label_blocks"][0]
    # changing the last label changes no fused logits in blocks up to and including its own block
    toks2 = toks.clone()
    toks2[0, 4] = 6
    out2 = m(x, torch.tensor([40]), toks2, torch.tensor([5]))
    if torch.equal(out2.extra["label_blocks"][0], blocks):
        last = int(blocks[4])
        upto = (last + 1) * 4
        assert torch.allclose(out.extra["sar_logits"][0, :upto], out2.extra["sar_logits"][0, :upto])
    assert set(out.losses) == {"ctc", "sar", "lm"}


def test_overfits_one_batch() -> None:
    torch.manual_seed(0)
    m = _tiny(d_model=48)
    x = torch.randn(2, 48, 8)
    lens = torch.tensor([48, 40])
    toks = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 6, 5, 0, 0, 0]])
    tl = torch.tensor([6, 3])
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    for _ in range(80):
        opt.zero_grad()
        loss = m(x, lens, toks, tl).loss
        loss.backward()
        opt.step()
    want = [[1, 2, 3, 4, 5, 6], [7, 6, 5]]
    assert m.transcribe(x, lens) == want


def test_tied_heads_start_as_the_blockwise_ctc_baseline() -> None:
    """With ``tie_heads`` the fusion adds exactly 0 at initialisation, so the untrained SAR model's
    label-conditioned logits equal its plain CTC logits and it decodes like the CTC baseline."""
    torch.manual_seed(0)
    m = _tiny(tie_heads=True).eval()
    assert m.sar_head is m.ctc_head
    base = _tiny(sar=False, lm_layers=0).eval()
    base.load_state_dict(m.state_dict(), strict=False)
    x = torch.randn(3, 40, 8)
    lens = torch.tensor([40, 33, 21])
    out = m(x, lens, torch.tensor([[1, 2, 3, 4], [2, 3, 0, 0], [5, 0, 0, 0]]), torch.tensor([4, 2, 1]))
    assert torch.allclose(out.extra["sar_logits"], out.logits, atol=1e-6)
    assert m.transcribe(x, lens) == base.transcribe(x, lens)


@pytest.mark.parametrize("sar_loss", ["block", "utterance"])
def test_sar_losses_are_finite_and_train_every_part(sar_loss: str) -> None:
    torch.manual_seed(0)
    m = _tiny(sar_loss=sar_loss, tie_heads=True)
    x = torch.randn(2, 40, 8)
    out = m(x, torch.tensor([40, 30]), torch.tensor([[1, 2, 3, 4], [2, 3, 0, 0]]), torch.tensor([4, 2]))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for name in (
        "fuse.o.weight",
        "lm.layers.0.linear1.weight",
        "ctc_head.weight",
        "layers.0.ff1.net.1.weight",
    ):
        p = dict(m.named_parameters())[name]
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_unknown_sar_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="sar_loss"):
        SARConfig(sar_loss="frame")
