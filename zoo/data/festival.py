"""Optional second synthesis engine: the Festival Speech Synthesis System (Black & Taylor, 1997).

Used only where its ``text2wave`` script is on ``PATH``; never required. Festival voices (e.g.
``kal_diphone``, ``cmu_us_slt_arctic_hts``) are English and sound very different from eSpeak NG, so
utterances rendered with them form extra domains (``"en:festival-<voice>:<rate>:<channel>"``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

from zoo.data.synth import resample


def text2wave() -> str | None:
    """Path of Festival's ``text2wave`` script, or ``None`` when Festival is not installed."""
    return shutil.which("text2wave")


def festival_available() -> bool:
    """Whether Festival can be used on this machine."""
    return text2wave() is not None


@cache
def festival_version() -> str | None:
    """Festival's version line (``festival --version``), ``"unknown"`` when it cannot be read, or ``None``
    when Festival is not installed. Recorded with a generated corpus that uses Festival."""
    if not festival_available():
        return None
    exe = shutil.which("festival")
    if exe is None:
        return "unknown"
    try:
        res = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (res.stdout or res.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


@cache
def festival_voices() -> tuple[str, ...]:
    """Installed Festival voices, sorted (empty when Festival is absent or lists none).

    Looks for ``festival/voices/<language>/<voice>`` folders under the usual prefixes, and for an
    environment override ``ZOO_FESTIVAL_VOICES`` (comma-separated).
    """
    env = os.environ.get("ZOO_FESTIVAL_VOICES")
    if env:
        return tuple(sorted(v.strip() for v in env.split(",") if v.strip()))
    if not festival_available():
        return ()
    found: set[str] = set()
    for base in (
        "/usr/share/festival/voices",
        "/usr/local/share/festival/voices",
        "/usr/lib/festival/voices",
    ):
        p = Path(base)
        if p.is_dir():
            found |= {v.name for lang in p.iterdir() if lang.is_dir() for v in lang.iterdir() if v.is_dir()}
    return tuple(sorted(found))


def synthesize_festival(
    text: str,
    voice: str,
    sample_rate: int = 16000,
    stretch: float = 1.0,
    timeout: float = 60.0,
    exe: str | None = None,
) -> np.ndarray:
    """Speak ``text`` with Festival voice ``voice``; float32 samples at ``sample_rate``.

    ``stretch`` scales durations (Festival's ``Duration_Stretch``: 2 = half the speaking rate); ``exe``
    overrides the ``text2wave`` found on ``PATH``.

    Raises ``RuntimeError`` when Festival is not installed or fails, ``ValueError`` for empty text.
    """
    import soundfile as sf

    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"cannot synthesise empty text {text!r}")
    exe = exe or text2wave()
    if exe is None:
        raise RuntimeError("Festival is not installed (no text2wave on PATH)")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
        src.write_text(text + "\n", encoding="utf-8")
        if not 0.25 <= stretch <= 4.0:
            raise ValueError(f"stretch must be in [0.25, 4], got {stretch}")
        setup = f"(begin (voice_{voice}) (Parameter.set 'Duration_Stretch {stretch:.4f}))"
        cmd = [exe, "-eval", setup, "-o", str(dst), str(src)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if res.returncode != 0 or not dst.is_file():
            raise RuntimeError(
                f"Festival failed on {text!r} with voice {voice!r}: {res.stderr.strip()[:300]}"
            )
        data, sr = sf.read(str(dst), dtype="float32", always_2d=True)
    wav = data.mean(axis=1)
    if wav.size == 0:
        raise RuntimeError(f"Festival produced no audio for {text!r} with voice {voice!r}")
    return resample(wav, int(sr), sample_rate)
