"""Acoustic features: log-mel and Kaldi fbank, SpecAugment, mean/variance normalisation, frame stacking.

All features are laid out time-major, ``(T, F)`` for one utterance and ``(B, T, F)`` for a batch.

* :class:`LogMel`: :math:`\\log(\\max(M |STFT(x)|^2, \\epsilon))` with an HTK mel filterbank ``M``
  (``torchaudio.transforms.MelSpectrogram``, centred frames: :math:`T = \\lfloor N / hop \\rfloor + 1`).
* :class:`Fbank`: Kaldi-compatible log mel filterbank (``torchaudio.compliance.kaldi.fbank``; Povey et al.,
  2011), 25 ms Povey windows every 10 ms, no padding: :math:`T = 1 + \\lfloor (N - 400) / 160 \\rfloor`.
* :func:`spec_augment` / :class:`SpecAugment`: frequency and time masking (Park et al., 2019), with an
  explicit ``torch.Generator``; masks are filled with the utterance mean (or zeros).
* :func:`utterance_cmvn`, :class:`GlobalCMVN`: per-utterance or corpus-level mean/variance normalisation.
* :func:`stack_frames`: concatenate ``n`` consecutive frames every ``stride`` frames (low-frame-rate
  features, Pundak & Sainath, 2016): ``(T, F) → (⌈T / stride⌉, n F)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn


def _wave(x: Tensor | object) -> Tensor:
    if not isinstance(x, Tensor):
        import numpy as np

        x = torch.from_numpy(np.asarray(x, dtype=np.float32))
    if x.dim() not in (1, 2):
        raise ValueError(f"waveform must be (N,) or (B, N), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"waveform must be floating point, got {x.dtype}")
    return x


class LogMel(nn.Module):
    """Log mel spectrogram: waveform ``(N,)`` → ``(T, n_mels)``, or ``(B, N)`` → ``(B, T, n_mels)``.

    Args:
        sample_rate: Hz.
        n_mels: mel bands.
        n_fft: FFT size in samples.
        win_length: Hann window length in samples (default 25 ms).
        hop_length: hop in samples (default 10 ms).
        f_min: lower band edge in Hz.
        f_max: upper band edge in Hz (default Nyquist).
        eps: floor before the logarithm.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        n_fft: int = 400,
        win_length: int | None = None,
        hop_length: int = 160,
        f_min: float = 0.0,
        f_max: float | None = None,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        import torchaudio

        if n_mels < 1 or hop_length < 1 or n_fft < 2:
            raise ValueError(
                f"need n_mels >= 1, hop_length >= 1, n_fft >= 2; got {n_mels}, {hop_length}, {n_fft}"
            )
        self.sample_rate, self.n_mels, self.hop_length, self.eps = sample_rate, n_mels, hop_length, eps
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            power=2.0,
        )

    @property
    def dim(self) -> int:
        """Feature dimension F."""
        return self.n_mels

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples."""
        return num_samples // self.hop_length + 1

    def forward(self, wav: Tensor) -> Tensor:
        x = _wave(wav)
        return self.mel(x.float()).clamp_min(self.eps).log().transpose(-1, -2)


class Fbank(nn.Module):
    """Kaldi-style log mel filterbank (``torchaudio.compliance.kaldi.fbank``): ``(N,)`` → ``(T, n_mels)``.

    Batches ``(B, N)`` are processed one utterance at a time (equal lengths required).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        dither: float = 0.0,
        **kaldi_kwargs: object,
    ) -> None:
        super().__init__()
        self.sample_rate, self.n_mels = sample_rate, n_mels
        self.frame_length_ms, self.frame_shift_ms, self.dither = frame_length_ms, frame_shift_ms, dither
        self.kaldi_kwargs = kaldi_kwargs

    @property
    def dim(self) -> int:
        return self.n_mels

    def num_frames(self, num_samples: int) -> int:
        win = int(self.sample_rate * self.frame_length_ms / 1000)
        shift = int(self.sample_rate * self.frame_shift_ms / 1000)
        return 0 if num_samples < win else 1 + (num_samples - win) // shift

    def forward(self, wav: Tensor) -> Tensor:
        from torchaudio.compliance import kaldi

        x = _wave(wav)
        if x.dim() == 2:
            return torch.stack([self(w) for w in x])
        win = int(self.sample_rate * self.frame_length_ms / 1000)
        if x.numel() < win:
            raise ValueError(
                f"waveform of {x.numel()} samples is shorter than one {self.frame_length_ms} ms frame"
            )
        return kaldi.fbank(
            x[None].float(),
            sample_frequency=self.sample_rate,
            num_mel_bins=self.n_mels,
            frame_length=self.frame_length_ms,
            frame_shift=self.frame_shift_ms,
            dither=self.dither,
            **self.kaldi_kwargs,  # type: ignore[arg-type]
        )


def spec_augment(
    feats: Tensor,
    n_freq_masks: int = 2,
    freq_mask: int = 8,
    n_time_masks: int = 2,
    time_mask: int = 20,
    max_time_ratio: float = 0.2,
    fill: str = "mean",
    generator: torch.Generator | None = None,
) -> Tensor:
    """SpecAugment masking (Park et al., 2019) of ``(T, F)`` features; returns a new tensor.

    Each frequency mask zeroes ``f ~ U{0..freq_mask}`` consecutive bins starting at ``f0 ~ U{0..F-f}``; each
    time mask ``t ~ U{0..min(time_mask, max_time_ratio·T)}`` frames. Masked cells are set to the utterance
    mean (``fill="mean"``) or 0 (``fill="zero"``).

    Our own rather than ``torchaudio.transforms.FrequencyMasking``/``TimeMasking``: those (and
    ``torchaudio.functional.mask_along_axis``) draw from the global RNG, not from a ``generator``, and bound
    the time mask by a fixed ``mask_param`` rather than by each utterance's own length.
    """
    if feats.dim() != 2:
        raise ValueError(f"feats must be (T, F), got shape {tuple(feats.shape)}")
    if fill not in ("mean", "zero"):
        raise ValueError(f"fill must be 'mean' or 'zero', got {fill!r}")
    T, F = feats.shape
    out = feats.clone()
    value = float(feats.mean()) if fill == "mean" and feats.numel() else 0.0

    def draw(hi: int) -> int:
        return int(torch.randint(0, hi + 1, (1,), generator=generator))

    for _ in range(n_freq_masks):
        f = draw(min(freq_mask, F))
        f0 = draw(F - f)
        out[:, f0 : f0 + f] = value
    tmax = min(time_mask, int(max_time_ratio * T))
    for _ in range(n_time_masks):
        t = draw(max(tmax, 0))
        t0 = draw(T - t)
        out[t0 : t0 + t, :] = value
    return out


class SpecAugment(nn.Module):
    """Module form of :func:`spec_augment`; active only in training mode. ``(T, F)`` or ``(B, T, F)``."""

    def __init__(
        self,
        n_freq_masks: int = 2,
        freq_mask: int = 8,
        n_time_masks: int = 2,
        time_mask: int = 20,
        max_time_ratio: float = 0.2,
        fill: str = "mean",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.kw = dict(
            n_freq_masks=n_freq_masks,
            freq_mask=freq_mask,
            n_time_masks=n_time_masks,
            time_mask=time_mask,
            max_time_ratio=max_time_ratio,
            fill=fill,
        )
        self.generator = generator

    def forward(self, feats: Tensor) -> Tensor:
        if not self.training:
            return feats
        if feats.dim() == 3:
            return torch.stack([self(f) for f in feats])
        return spec_augment(feats, generator=self.generator, **self.kw)  # type: ignore[arg-type]


def utterance_cmvn(feats: Tensor, variance: bool = True, eps: float = 1e-5) -> Tensor:
    """Per-utterance mean (and variance) normalisation over time of ``(T, F)`` features."""
    if feats.dim() != 2:
        raise ValueError(f"feats must be (T, F), got shape {tuple(feats.shape)}")
    x = feats - feats.mean(0, keepdim=True)
    if variance:
        x = x / (feats.std(0, unbiased=False, keepdim=True) + eps)
    return x


class GlobalCMVN(nn.Module):
    """Corpus-level mean/variance normalisation: ``(x - μ) / σ`` with statistics from :meth:`fit`.

    Accumulates in float64 (sum and sum of squares over every frame of every utterance).
    """

    mean: Tensor
    std: Tensor

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, feats: object) -> GlobalCMVN:
        """Estimate μ and σ from an iterable of ``(T, F)`` tensors."""
        s = s2 = None
        n = 0
        for f in feats:  # type: ignore[attr-defined]
            f = f.double()
            if f.dim() != 2 or f.shape[1] != self.mean.numel():
                raise ValueError(f"expected (T, {self.mean.numel()}) features, got shape {tuple(f.shape)}")
            s = f.sum(0) if s is None else s + f.sum(0)
            s2 = (f * f).sum(0) if s2 is None else s2 + (f * f).sum(0)
            n += f.shape[0]
        if n == 0 or s is None or s2 is None:
            raise ValueError("GlobalCMVN.fit needs at least one frame")
        mu = s / n
        var = (s2 / n - mu * mu).clamp_min(0)
        self.mean.copy_(mu.float())
        self.std.copy_(var.sqrt().float())
        return self

    def forward(self, feats: Tensor) -> Tensor:
        return (feats - self.mean) / (self.std + self.eps)

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> GlobalCMVN:
        sd = torch.load(path, weights_only=True)
        m = cls(sd["mean"].numel())
        m.load_state_dict(sd)
        return m


def stack_frames(feats: Tensor, n: int = 3, stride: int | None = None) -> Tensor:
    """Stack ``n`` consecutive frames every ``stride`` (default ``n``) frames: ``(T, F)`` → ``(T', nF)``
    with :math:`T' = \\lceil T / stride \\rceil`; the last frame is repeated to fill the final window.
    ``(B, T, F)`` batches are stacked along time the same way."""
    stride = n if stride is None else stride
    if n < 1 or stride < 1:
        raise ValueError(f"n and stride must be >= 1, got {n}, {stride}")
    if feats.dim() == 3:
        return torch.stack([stack_frames(f, n, stride) for f in feats])
    if feats.dim() != 2:
        raise ValueError(f"feats must be (T, F) or (B, T, F), got shape {tuple(feats.shape)}")
    T = feats.shape[0]
    if T == 0:
        return feats.new_zeros(0, n * feats.shape[1])
    out_t = -(-T // stride)
    need = (out_t - 1) * stride + n
    x = torch.cat([feats, feats[-1:].expand(max(need - T, 0), -1)]) if need > T else feats
    idx = torch.arange(out_t)[:, None] * stride + torch.arange(n)[None]
    return x[idx].reshape(out_t, -1)


def stacked_length(length: int | Tensor, stride: int) -> int | Tensor:
    """Frames after :func:`stack_frames` with this ``stride`` (works on ints and length tensors)."""
    if isinstance(length, Tensor):
        return torch.div(length + stride - 1, stride, rounding_mode="floor")
    return -(-int(length) // stride)
