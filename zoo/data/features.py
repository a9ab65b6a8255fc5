"""Acoustic features: log-mel and Kaldi fbank, SpecAugment, mean/variance normalisation, frame stacking.

All features are laid out time-major, ``(T, F)`` for one utterance and ``(B, T, F)`` for a batch.

* `LogMel`: $\\log(\\max(M |STFT(x)|^2, \\epsilon))$ with an HTK mel filterbank ``M``
  (``torchaudio.transforms.MelSpectrogram``, centred frames: $T = \\lfloor N / hop \\rfloor + 1$).
* `Fbank`: Kaldi-compatible log mel filterbank (``torchaudio.compliance.kaldi.fbank``; Povey et al.,
  2011), 25 ms Povey windows every 10 ms, no padding: $T = 1 + \\lfloor (N - 400) / 160 \\rfloor$.
* `spec_augment()` / `SpecAugment`: frequency and time masking (Park et al., 2019), with an
  explicit ``torch.Generator``; masks are filled with the utterance mean (or zeros);
  `spec_augment_batch()` masks the valid frames of each utterance of a padded batch.
* `utterance_cmvn()`, `GlobalCMVN`: per-utterance or corpus-level mean/variance normalisation.
* `FeatureSpec` / `Features`: the zoo ASR models' features (log-mel, per-utterance CMVN),
  one description and one module for training and transcription alike.
* `stack_frames()`: concatenate ``n`` consecutive frames every ``stride`` frames (low-frame-rate
  features, Pundak & Sainath, 2016): ``(T, F) → (⌈T / stride⌉, n F)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import torch
from torch import Tensor, nn

from zoo.checks import check_int


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
    """Module form of `spec_augment()`; active only in training mode. ``(T, F)`` or ``(B, T, F)``."""

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


def spec_augment_batch(feats: Tensor, feat_lens: Tensor, generator: torch.Generator, **kwargs: Any) -> Tensor:
    """SpecAugment of a padded batch ``(B, T, F)``: `spec_augment()` (2 frequency masks of up
    to 8 bins, 2 time masks of up to 20 frames and 20 % of the utterance; masked cells set to 0, the mean of
    normalised features) on the ``feat_lens[b]`` valid frames of each utterance; padding stays untouched.
    ``kwargs`` go to `spec_augment()`."""
    if feats.dim() != 3 or feat_lens.shape != feats.shape[:1]:
        raise ValueError(
            f"feats must be (B, T, F) and feat_lens (B,), got {tuple(feats.shape)} and "
            f"{tuple(feat_lens.shape)}"
        )
    out = feats.clone()
    kw = {"fill": "zero", **kwargs}
    for b in range(feats.shape[0]):
        n = int(feat_lens[b])
        if n > 0:
            out[b, :n] = spec_augment(feats[b, :n], generator=generator, **kw)
    return out


def utterance_cmvn(feats: Tensor, variance: bool = True, eps: float = 1e-5) -> Tensor:
    """Per-utterance mean (and variance) normalisation over time of ``(T, F)`` features."""
    if feats.dim() != 2:
        raise ValueError(f"feats must be (T, F), got shape {tuple(feats.shape)}")
    x = feats - feats.mean(0, keepdim=True)
    if variance:
        x = x / (feats.std(0, unbiased=False, keepdim=True) + eps)
    return x


class GlobalCMVN(nn.Module):
    """Corpus-level mean/variance normalisation: ``(x - μ) / σ`` with statistics from `fit()`.

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


def stack_frames(feats: Tensor, n: int = 3, stride: int | None = None, *, drop_last: bool = False) -> Tensor:
    """Stack ``n`` consecutive frames every ``stride`` (default ``n``) frames (low-frame-rate features):
    ``(..., T, F)`` → ``(..., T', nF)``, for one utterance ``(T, F)`` or a padded batch ``(B, T, F)``.

    By default the last frame is repeated to fill the final window, $T' = \\lceil T / stride \\rceil$;
    with ``drop_last`` an incomplete final window is dropped instead, $T' = \\lfloor (T - n) / stride
    \\rfloor + 1$ (``T // n`` when ``stride == n``; the zoo's encoders stack this way, as Granite drops the
    last frame of an odd count). `stacked_length()` gives $T'$ for a length or a lengths tensor.
    """
    stride = n if stride is None else stride
    if n < 1 or stride < 1:
        raise ValueError(f"n and stride must be >= 1, got {n}, {stride}")
    if feats.dim() not in (2, 3):
        raise ValueError(f"feats must be (T, F) or (B, T, F), got shape {tuple(feats.shape)}")
    T, Fd = feats.shape[-2:]
    out_t = stacked_length(int(T), stride, n=n, drop_last=drop_last)
    if out_t == 0:
        return feats.new_zeros(*feats.shape[:-2], 0, n * Fd)
    if stride == n and out_t * n <= T:  # plain reshape: no gather, no padding
        return feats[..., : out_t * n, :].reshape(*feats.shape[:-2], out_t, n * Fd)
    need = (out_t - 1) * stride + n
    if need > T:
        last = feats[..., -1:, :]
        feats = torch.cat([feats, last.expand(*last.shape[:-2], need - T, Fd)], dim=-2)
    idx = torch.arange(out_t, device=feats.device)[:, None] * stride + torch.arange(n, device=feats.device)
    return feats[..., idx, :].reshape(*feats.shape[:-2], out_t, n * Fd)


@overload
def stacked_length(length: int, stride: int, *, n: int | None = None, drop_last: bool = False) -> int: ...
@overload
def stacked_length(
    length: Tensor, stride: int, *, n: int | None = None, drop_last: bool = False
) -> Tensor: ...
def stacked_length(
    length: int | Tensor, stride: int, *, n: int | None = None, drop_last: bool = False
) -> int | Tensor:
    """Frames after `stack_frames()` with this ``stride``, window ``n`` (default ``stride``) and
    ``drop_last`` (works on ints and length tensors)."""
    n = stride if n is None else n
    if not drop_last:
        if isinstance(length, Tensor):
            return torch.div(length + stride - 1, stride, rounding_mode="floor")
        return -(-int(length) // stride)
    if isinstance(length, Tensor):
        return torch.div(length - n, stride, rounding_mode="floor").add(1).clamp(min=0)
    return max((int(length) - n) // stride + 1, 0)


@dataclass(frozen=True)
class FeatureSpec:
    """The features a model was trained on: log-mel (`LogMel`, 25 ms windows every 10 ms)
    with ``n_mels`` bands at ``sample_rate`` Hz, then per-utterance mean/variance normalisation over time
    when ``cmvn`` (`utterance_cmvn()`), as the zoo's training recipes compute them."""

    sample_rate: int = 16000
    n_mels: int = 80
    cmvn: bool = True

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_mels"):
            check_int(getattr(self, name), f"FeatureSpec.{name}", low=1)
        if not isinstance(self.cmvn, bool):
            raise TypeError(f"FeatureSpec.cmvn must be a bool, got {type(self.cmvn).__name__}")

    def build(self) -> Features:
        """The feature module: waveform ``(N,)`` → ``(T, n_mels)``, with ``num_frames`` for bucketing."""
        return Features(self)


class Features(nn.Module):
    """`FeatureSpec` as a module: log-mel, then per-utterance CMVN when ``spec.cmvn``.

    Training (``zoo.train``, the BL-JUST recipe) and
    [`zoo.transcribe.transcribe()`][zoo.transcribe.transcribe] both compute their
    features with it, so they agree exactly."""

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.spec = spec
        self.mel = LogMel(sample_rate=spec.sample_rate, n_mels=spec.n_mels)

    @property
    def dim(self) -> int:
        return self.spec.n_mels

    def num_frames(self, num_samples: int) -> int:
        return int(self.mel.num_frames(num_samples))

    def forward(self, wav: Tensor) -> Tensor:
        f = self.mel(wav)
        return utterance_cmvn(f) if self.spec.cmvn else f
