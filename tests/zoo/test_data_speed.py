"""The faster generation paths against torchaudio's own (independent implementations, stated tolerances)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from zoo.data import augment as A
from zoo.data.audio import load_audio, resample, resampler, write_audio

SR = 16000


def _smooth(m: int) -> bool:
    for p in (2, 3, 5):
        while m % p == 0:
            m //= p
    return m == 1


def test_fast_length_is_the_next_5_smooth_number() -> None:
    for n in [*range(1, 400), 38399, 44101, 65537]:
        m = A.fast_length(n)
        assert m >= n and _smooth(m) and not any(_smooth(k) for k in range(n, m))


@pytest.mark.parametrize(("n", "k"), [(38399 - 6399, 6400), (1000, 1), (17, 33)])
def test_fft_convolve_matches_torchaudio(n: int, k: int) -> None:
    g = torch.Generator().manual_seed(0)
    x, h = torch.randn(n, generator=g), torch.randn(k, generator=g)
    ref = AF.fftconvolve(x.double(), h.double())
    out = A.fft_convolve(x, h)
    assert out.shape == ref.shape
    assert float((out.double() - ref).abs().max()) <= 1e-4 * float(ref.abs().max())


def test_cached_resampler_matches_torchaudio_resample() -> None:
    g = torch.Generator().manual_seed(1)
    for n in (1000, 22050, 30011):
        x = torch.randn(n, generator=g) * 0.3
        ref = AF.resample(x, 22050, 16000)
        out = resample(x.numpy(), 22050, 16000)
        assert out.shape == ref.shape == (int(np.ceil(n * 320 / 441)),)
        assert float((out - ref).abs().max()) < 1e-4  # the same kernel, float32 rounding
    assert resampler(44100, 32000) is resampler(441, 320)  # one kernel per reduced rate pair
    # speed perturbation = torchaudio.functional.speed with a cached kernel
    y = torch.randn(SR, generator=g) * 0.3
    ref, _ = AF.speed(y[None], SR, 1.1)
    assert np.abs(A.speed_perturb(y.numpy(), 1.1, SR) - ref[0].numpy()).max() < 1e-4


def _gain_db(wav: np.ndarray, f: float) -> float:
    t = np.arange(len(wav)) / SR
    tone = np.sin(2 * np.pi * f * t).astype(np.float32)
    out = A.band_limit(tone, SR, 300.0, 3400.0)
    mid = slice(SR // 4, -SR // 4)  # away from the edges
    return 20 * np.log10(np.sqrt(np.mean(out[mid] ** 2)) / np.sqrt(np.mean(tone[mid] ** 2)))


def test_band_limit_passes_the_telephone_band_and_stops_the_rest() -> None:
    x = np.zeros(SR, np.float32)
    assert A.band_limit(x + 0.1, SR).shape == (SR,)  # length kept
    for f in (500.0, 1000.0, 3000.0):
        assert abs(_gain_db(x, f)) < 0.5  # pass band within 0.5 dB
    for f in (50.0, 5000.0, 7000.0):
        assert _gain_db(x, f) < -40.0  # stop band (50 dB design) below -40 dB
    with pytest.raises(ValueError, match="low_hz < high_hz"):
        A.band_limit(x, SR, 3400.0, 300.0)


def test_flac_compression_level_keeps_the_samples(tmp_path: Path) -> None:
    wav = (0.3 * np.sin(np.arange(SR) / 7)).astype(np.float32)
    a = write_audio(tmp_path / "a.flac", wav, SR)
    b = write_audio(tmp_path / "b.flac", wav, SR, compression_level=0.0)
    assert np.array_equal(load_audio(a), load_audio(b))
    with pytest.raises(ValueError, match="compression_level"):
        write_audio(tmp_path / "c.wav", wav, SR, compression_level=0.5)
