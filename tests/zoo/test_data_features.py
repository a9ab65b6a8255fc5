"""Features against independent computations: log-mel, Kaldi fbank, SpecAugment, CMVN, frame stacking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.data.features import (
    Fbank,
    GlobalCMVN,
    LogMel,
    SpecAugment,
    spec_augment,
    stack_frames,
    stacked_length,
    utterance_cmvn,
)


def test_logmel_matches_manual_stft_and_filterbank() -> None:
    import torchaudio.functional as AF

    g = torch.Generator().manual_seed(0)
    x = torch.randn(8000, generator=g, dtype=torch.float32)
    m = LogMel(16000, n_mels=40)
    y = m(x)
    assert y.shape == (8000 // 160 + 1, 40) == (m.num_frames(8000), m.dim)
    # independent: centred reflect-padded STFT, |.|^2, HTK mel filterbank, log
    xp = torch.nn.functional.pad(x.double()[None, None], (200, 200), mode="reflect")[0, 0]
    frames = xp.unfold(0, 400, 160) * torch.hann_window(400, periodic=True, dtype=torch.float64)
    power = torch.fft.rfft(frames, n=400).abs() ** 2
    fb = AF.melscale_fbanks(201, 0.0, 8000.0, 40, 16000, norm=None, mel_scale="htk").double()
    ref = (power @ fb).clamp_min(1e-6).log()
    torch.testing.assert_close(y.double(), ref, atol=2e-3, rtol=1e-4)
    assert m(torch.stack([x, x])).shape == (2, *y.shape)


def test_fbank_frames_and_kaldi_identity() -> None:
    from torchaudio.compliance import kaldi

    x = torch.randn(16000) * 0.1
    f = Fbank(n_mels=23)
    y = f(x)
    assert y.shape == (1 + (16000 - 400) // 160, 23) and y.shape[0] == f.num_frames(16000)
    torch.testing.assert_close(y, kaldi.fbank(x[None], num_mel_bins=23, dither=0.0))
    with pytest.raises(ValueError, match="shorter than one"):
        f(torch.zeros(100))


def test_spec_augment_masks_and_determinism() -> None:
    x = torch.randn(100, 40)
    a = spec_augment(x, 2, 8, 2, 20, generator=torch.Generator().manual_seed(1), fill="zero")
    b = spec_augment(x, 2, 8, 2, 20, generator=torch.Generator().manual_seed(1), fill="zero")
    assert torch.equal(a, b)
    zero_cols = (a == 0).all(0).sum().item()
    zero_rows = (a == 0).all(1).sum().item()
    assert zero_cols <= 16 and zero_rows <= 2 * min(20, 20)
    changed = a != x
    # every changed cell lies in a fully masked row or column
    assert bool((changed <= ((a == 0).all(0)[None] | (a == 0).all(1)[:, None])).all())
    mod = SpecAugment(generator=torch.Generator().manual_seed(0)).eval()
    assert torch.equal(mod(x), x)  # identity in eval mode
    assert mod.train()(x[None]).shape == (1, 100, 40)


def test_cmvn() -> None:
    x = torch.randn(50, 8, dtype=torch.float64) * 3 + 5
    y = utterance_cmvn(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(8, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        y.std(0, unbiased=False), torch.ones(8, dtype=torch.float64), atol=1e-5, rtol=0
    )
    parts = [torch.randn(n, 4) * 2 + 1 for n in (10, 30, 7)]
    g = GlobalCMVN(4).fit(parts)
    cat = np.concatenate([p.numpy() for p in parts]).astype(np.float64)
    np.testing.assert_allclose(g.mean.numpy(), cat.mean(0), atol=1e-5)
    np.testing.assert_allclose(g.std.numpy(), cat.std(0), atol=1e-5)


def test_global_cmvn_save_load(tmp_path) -> None:
    g = GlobalCMVN(3).fit([torch.randn(20, 3)])
    g.save(tmp_path / "cmvn.pt")
    h = GlobalCMVN.load(tmp_path / "cmvn.pt")
    x = torch.randn(5, 3)
    assert torch.equal(g(x), h(x))


def test_stack_frames() -> None:
    x = torch.arange(14.0).reshape(7, 2)
    y = stack_frames(x, 3)
    assert y.shape == (3, 6) and stacked_length(7, 3) == 3
    assert y[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert y[2].tolist() == [12, 13, 12, 13, 12, 13]  # last frame repeated
    z = stack_frames(x, 2, stride=1)
    assert z.shape == (7, 4) and z[3].tolist() == [6, 7, 8, 9]
    assert stacked_length(torch.tensor([7, 6]), 3).tolist() == [3, 2]
    assert stack_frames(torch.stack([x, x]), 3).shape == (2, 3, 6)
    with pytest.raises(ValueError, match="n and stride"):
        stack_frames(x, 0)


def test_stack_frames_drop_last() -> None:
    """``drop_last`` (the encoders' stacking): the incomplete last window is dropped, batch or not."""
    x = torch.arange(2 * 5 * 3).reshape(2, 5, 3).float()
    y = stack_frames(x, 2, drop_last=True)
    n = stacked_length(torch.tensor([5, 3]), 2, drop_last=True)
    assert y.shape == (2, 2, 6) and n.tolist() == [2, 1]
    assert torch.equal(y[0, 1], torch.cat([x[0, 2], x[0, 3]]))
    assert torch.equal(stack_frames(x[1], 2, drop_last=True), y[1])
    # overlapping windows: T' = floor((T - n) / stride) + 1, each row the frames it names
    z = stack_frames(x[0], 3, stride=1, drop_last=True)
    assert z.shape == (3, 9) == (stacked_length(5, 1, n=3, drop_last=True), 9)
    assert torch.equal(z[2], x[0, 2:5].reshape(-1))
    assert stack_frames(x[0, :1], 2, drop_last=True).shape == (0, 6)
    assert stacked_length(torch.tensor([0, 1, 4]), 2, drop_last=True).tolist() == [0, 0, 2]
