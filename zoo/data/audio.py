"""Audio file I/O with ``soundfile`` (libsndfile): WAV, FLAC, OGG. No torchcodec needed.

* `load_audio()` — a corpus file, checked against the rate and length its manifest records.
* `read_audio()` — a user's file at any rate and channel count, downmixed to mono and resampled to a
  model's rate (``torchaudio.functional.resample``, windowed sinc); empty audio is an error.
* `audio_info()`, `write_audio()` — header only; atomic write.
* `resampler()` — a cached ``torchaudio.transforms.Resample`` per rate pair: its windowed-sinc kernel
  is computed once per process instead of once per call (the corpus resamples every utterance from
  eSpeak's 22 050 Hz, and ``torchaudio.functional.resample`` rebuilds a 320-phase kernel each time).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio


@cache
def resampler(orig_hz: int, new_hz: int) -> torchaudio.transforms.Resample:
    """The ``torchaudio.transforms.Resample(orig_hz, new_hz)`` of this process (rates reduced by their
    gcd; kernel built once, float32); maps ``(..., N)`` to ``(..., ceil(N new / orig))`` samples."""
    g = math.gcd(int(orig_hz), int(new_hz))
    if g != 1:
        return resampler(int(orig_hz) // g, int(new_hz) // g)
    return torchaudio.transforms.Resample(int(orig_hz), int(new_hz))


def resample(wav: np.ndarray | torch.Tensor, orig_hz: int, new_hz: int) -> torch.Tensor:
    """Band-limited resampling of float32 samples (last axis) with the cached `resampler()`."""
    x = torch.as_tensor(wav, dtype=torch.float32)
    if orig_hz == new_hz:
        return x
    # oneDNN builds a convolution primitive per input shape; with a new length per utterance that costs
    # 3-5 times the convolution itself, so resample with ATen's own kernel
    mkldnn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
    try:
        with torch.no_grad():
            return resampler(orig_hz, new_hz)(x)
    finally:
        torch.backends.mkldnn.enabled = mkldnn  # type: ignore[assignment]


class AudioError(ValueError):
    """An audio file is missing, unreadable, truncated or in an unexpected format."""


def _read(p: Path) -> tuple[np.ndarray, int]:
    """``(frames, channels)`` float32 samples and the rate of ``p``; `AudioError` naming ``p``."""
    if not p.exists():
        raise AudioError(f"audio file {p} does not exist")
    if not p.is_file():
        raise AudioError(f"{p} is not a file")
    try:
        with sf.SoundFile(str(p)) as f:
            sr, frames = f.samplerate, f.frames
            data = f.read(dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises LibsndfileError / RuntimeError for corrupt input
        raise AudioError(f"cannot read audio file {p}: {e}") from None
    if len(data) != frames:
        raise AudioError(f"audio file {p} is truncated: header says {frames} frames, read {len(data)}")
    return data, int(sr)


def load_audio(
    path: str | Path, sample_rate: int | None = None, expected_samples: int | None = None
) -> np.ndarray:
    """Read a mono file as float32 in [-1, 1] (multichannel files are averaged).

    Args:
        path: the file.
        sample_rate: when given, the file must have this rate (raises `AudioError` otherwise; the
            caller decides whether to resample).
        expected_samples: when given, the file must hold exactly this many frames (catches truncation).

    Raises:
        AudioError: naming the file, when it is missing, unreadable, truncated or at the wrong rate.
    """
    p = Path(path)
    data, sr = _read(p)
    if expected_samples is not None and len(data) != expected_samples:
        raise AudioError(f"audio file {p} has {len(data)} samples, the manifest says {expected_samples}")
    if sample_rate is not None and sr != sample_rate:
        raise AudioError(f"audio file {p} is at {sr} Hz, expected {sample_rate} Hz")
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]


@dataclass(frozen=True)
class AudioClip:
    """A decoded file: mono float32 ``wav`` at ``sample_rate``, and what the file held."""

    path: Path
    wav: np.ndarray
    sample_rate: int
    source_rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Seconds."""
        return len(self.wav) / self.sample_rate


def read_audio(path: str | Path, sample_rate: int | None = None) -> AudioClip:
    """Read any file libsndfile decodes (WAV, FLAC, OGG, ...), at any rate, mono or multichannel.

    Channels are averaged (downmix $x = \\frac{1}{C} \\sum_c x_c$); with ``sample_rate`` the
    result is resampled to it by ``torchaudio.functional.resample`` (band-limited windowed-sinc
    interpolation, Smith & Gossett 1984), giving $\\lceil N r / r_0 \\rceil$ samples.

    Raises:
        AudioError: naming the file, when it is missing, not audio, truncated, empty (no samples) or
            holds non-finite samples (floating-point files).
    """
    p = Path(path)
    if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(sample_rate, int)):
        raise TypeError(f"sample_rate must be an int, got {type(sample_rate).__name__}")
    if sample_rate is not None and sample_rate < 1:
        raise ValueError(f"sample_rate must be >= 1 Hz, got {sample_rate}")
    data, sr = _read(p)
    if len(data) == 0:
        raise AudioError(f"audio file {p} is empty (0 samples)")
    if not np.isfinite(data).all():
        raise AudioError(f"audio file {p} holds non-finite samples")
    wav = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    rate = sr
    if sample_rate is not None and sample_rate != sr:
        wav = resample(np.ascontiguousarray(wav), sr, sample_rate).numpy()
        rate = sample_rate
        if len(wav) == 0:
            raise AudioError(f"audio file {p} is too short to resample to {sample_rate} Hz")
    return AudioClip(p, np.ascontiguousarray(wav, dtype=np.float32), rate, sr, int(data.shape[1]))


def audio_info(path: str | Path) -> tuple[int, int]:
    """``(sample_rate, frames)`` of a file, without decoding it; `AudioError` when unreadable."""
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioError(f"cannot read audio file {path}: {e}") from None
    return int(info.samplerate), int(info.frames)


def write_audio(
    path: str | Path,
    wav: np.ndarray,
    sample_rate: int,
    subtype: str = "PCM_16",
    compression_level: float | None = None,
) -> Path:
    """Write ``wav`` (1-D float in [-1, 1]) atomically; the format follows the suffix (.flac, .wav).

    ``compression_level`` (FLAC only, 0 = fastest to 1 = smallest; libsndfile's default when ``None``)
    changes the file size and the encoding time, never the decoded samples."""
    p = Path(path)
    a = np.asarray(wav, dtype=np.float32)
    if a.ndim != 1:
        raise ValueError(f"wav must be 1-D, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"refusing to write non-finite samples to {p}")
    fmt = {".flac": "FLAC", ".wav": "WAV", ".ogg": "OGG"}.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported audio suffix {p.suffix!r} for {p}; use .flac, .wav or .ogg")
    if compression_level is not None and not (fmt == "FLAC" and 0.0 <= compression_level <= 1.0):
        raise ValueError(f"compression_level must be in [0, 1] and only for .flac, got {compression_level!r}")
    tmp = p.with_name(f"{p.name}.{os.getpid()}.part")
    kw = {} if compression_level is None else {"compression_level": float(compression_level)}
    sf.write(str(tmp), np.clip(a, -1.0, 1.0), sample_rate, subtype=subtype, format=fmt, **kw)
    os.replace(tmp, p)
    return p


__all__ = [
    "AudioClip",
    "AudioError",
    "audio_info",
    "load_audio",
    "read_audio",
    "resample",
    "resampler",
    "write_audio",
]
