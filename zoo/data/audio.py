"""Audio file I/O with ``soundfile`` (libsndfile): WAV, FLAC, OGG. No torchcodec needed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class AudioError(ValueError):
    """An audio file is missing, unreadable, truncated or in an unexpected format."""


def load_audio(
    path: str | Path, sample_rate: int | None = None, expected_samples: int | None = None
) -> np.ndarray:
    """Read a mono file as float32 in [-1, 1] (multichannel files are averaged).

    Args:
        path: the file.
        sample_rate: when given, the file must have this rate (raises :class:`AudioError` otherwise; the
            caller decides whether to resample).
        expected_samples: when given, the file must hold exactly this many frames (catches truncation).

    Raises:
        AudioError: naming the file, when it is missing, unreadable, truncated or at the wrong rate.
    """
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise AudioError(f"audio file {p} does not exist")
    try:
        with sf.SoundFile(str(p)) as f:
            sr, frames = f.samplerate, f.frames
            data = f.read(dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises LibsndfileError / RuntimeError for corrupt input
        raise AudioError(f"cannot read audio file {p}: {e}") from None
    if len(data) != frames:
        raise AudioError(f"audio file {p} is truncated: header says {frames} frames, read {len(data)}")
    if expected_samples is not None and len(data) != expected_samples:
        raise AudioError(f"audio file {p} has {len(data)} samples, the manifest says {expected_samples}")
    if sample_rate is not None and sr != sample_rate:
        raise AudioError(f"audio file {p} is at {sr} Hz, expected {sample_rate} Hz")
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]


def audio_info(path: str | Path) -> tuple[int, int]:
    """``(sample_rate, frames)`` of a file, without decoding it; :class:`AudioError` when unreadable."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioError(f"cannot read audio file {path}: {e}") from None
    return int(info.samplerate), int(info.frames)


def write_audio(path: str | Path, wav: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write ``wav`` (1-D float in [-1, 1]) atomically; the format follows the suffix (.flac, .wav)."""
    import soundfile as sf

    p = Path(path)
    a = np.asarray(wav, dtype=np.float32)
    if a.ndim != 1:
        raise ValueError(f"wav must be 1-D, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"refusing to write non-finite samples to {p}")
    fmt = {".flac": "FLAC", ".wav": "WAV", ".ogg": "OGG"}.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported audio suffix {p.suffix!r} for {p}; use .flac, .wav or .ogg")
    tmp = p.with_name(f"{p.name}.{os.getpid()}.part")
    sf.write(str(tmp), np.clip(a, -1.0, 1.0), sample_rate, subtype=subtype, format=fmt)
    os.replace(tmp, p)
    return p
