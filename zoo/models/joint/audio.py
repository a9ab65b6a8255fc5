"""Audio out and spectral distances for TTS: Griffin-Lim from log-mels, WAV files, mel-cepstral distortion.

* `MelInverter`: normalised log-mels → waveform. Undo the corpus-level normalisation
  ($x \\sigma + \\mu$), exponentiate to the mel power spectrum, ``torchaudio.transforms.InverseMelScale``
  back to a linear power spectrogram and ``torchaudio.transforms.GriffinLim`` (Griffin & Lim, 1984) for
  the phase. For listening, not for quality.
* `write_wav()`: a waveform to a 16-bit WAV file ([`zoo.data.write_audio()`][zoo.data.write_audio]).
* `mel_cepstral_distortion()`: with the real cepstra of the mel log-amplitude spectra,
  $c_d = \\frac1F \\sum_{k=0}^{F-1} \\tfrac12 \\ln M_k \\cos\\frac{\\pi d (k + \\frac12)}{F}$ (so that
  $\\tfrac12 \\ln M_k \\approx c_0 + 2\\sum_{d \\ge 1} c_d \\cos\\frac{\\pi d (k+\\frac12)}{F}$),
  averaged over frames,
  $\\mathrm{MCD} = \\frac{10}{\\ln 10}\\sqrt{2 \\sum_{d=1}^{D} (c_d - \\hat c_d)^2}$ dB over $D$ = ``order``
  coefficients ($c_0$, the level, left out),
  after Kubichek (1993). Frames are compared one to one (the TTS runs under reference durations).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import Tensor, nn

from zoo.checks import check_int
from zoo.data import write_audio

__all__ = ["MelInverter", "dct_matrix", "mel_cepstral_distortion", "write_wav"]


def dct_matrix(n: int) -> Tensor:
    """The orthonormal DCT-II matrix ``(n, n)`` (row $d$ is the $d$-th basis vector)."""
    check_int(n, "n", low=1)
    k = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi / n * (k[None] + 0.5) * k[:, None]) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def mel_cepstral_distortion(log_mel: Tensor, ref_log_mel: Tensor, order: int | None = None) -> float:
    """Mean MCD in dB between natural-log mel power spectra ``(T, F)`` of equal shape (cepstra
    $1..$ ``order``, default all $F-1$).

    Examples:
        >>> x = torch.randn(5, 8)
        >>> round(mel_cepstral_distortion(x + 3.0, x), 4)  # a level offset only moves c_0
        0.0
    """
    if log_mel.dim() != 2 or log_mel.shape != ref_log_mel.shape:
        raise ValueError(
            "log_mel and ref_log_mel must be (T, F) of one shape, got "
            f"{tuple(log_mel.shape)}, {tuple(ref_log_mel.shape)}"
        )
    if log_mel.shape[0] == 0:
        raise ValueError("log_mel must have at least one frame")
    F = log_mel.shape[1]
    order = F - 1 if order is None else check_int(order, "order", low=1)
    k = torch.arange(F, dtype=torch.float64)
    C = torch.cos(math.pi / F * k[:, None] * (k[None] + 0.5))  # C[d, k]
    diff = (0.5 / F) * (log_mel.double() - ref_log_mel.double()) @ C.T
    per_frame = (10.0 / math.log(10.0)) * torch.sqrt(2.0 * (diff[:, 1 : order + 1] ** 2).sum(-1))
    return float(per_frame.mean())


class MelInverter(nn.Module):
    """Griffin-Lim vocoder for (normalised) log-mels of the zoo's `zoo.data.LogMel` settings.

    Args:
        mean: ``(F,)`` mean of the normalisation to undo (``None``: 0).
        std: ``(F,)`` its standard deviation (``None``: 1).
        n_mels: mel bands ``F``.
        sample_rate: Hz, as the features were computed.
        n_fft: FFT size of the features.
        hop_length: hop of the features.
        n_iter: Griffin-Lim iterations.
    """

    def __init__(
        self,
        mean: Tensor | None = None,
        std: Tensor | None = None,
        n_mels: int = 80,
        sample_rate: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        n_iter: int = 32,
    ) -> None:
        super().__init__()
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.zeros(n_mels) if mean is None else mean.float().clone())
        self.register_buffer("std", torch.ones(n_mels) if std is None else std.float().clone())
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_fft // 2 + 1, n_mels, sample_rate, driver="gelsd"
        )
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=n_fft, hop_length=hop_length, power=2.0, n_iter=n_iter
        )
        self.sample_rate = sample_rate

    def log_mel(self, feats: Tensor) -> Tensor:
        """Undo the normalisation: ``feats · std + mean``."""
        return feats * self.std + self.mean

    def forward(self, feats: Tensor) -> Tensor:
        """``(T, F)`` normalised log-mels → waveform ``(N,)`` peak-normalised to 0.9."""
        if feats.dim() != 2 or feats.shape[1] != self.mean.shape[0]:
            raise ValueError(f"feats must be (T, {self.mean.shape[0]}), got {tuple(feats.shape)}")
        with torch.no_grad():
            power = self.log_mel(feats.float()).clamp(max=20.0).exp().T  # (F, T)
            spec = self.inverse_mel(power).clamp_min(0.0)
            wav = self.griffin_lim(spec)
        return wav / wav.abs().max().clamp_min(1e-8) * 0.9


def write_wav(path: str | Path, wav: Tensor | np.ndarray, sample_rate: int = 16000) -> Path:
    """Write a mono waveform to a 16-bit WAV file (``ValueError`` for another suffix)."""
    p = Path(path)
    if p.suffix.lower() != ".wav":
        raise ValueError(f"path must end in .wav, got {p.name!r}")
    a = wav.detach().cpu().numpy() if isinstance(wav, Tensor) else np.asarray(wav)
    return write_audio(p, a.astype(np.float32), sample_rate)
