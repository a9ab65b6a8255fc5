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
from collections.abc import Sequence
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
    overrides the ``text2wave`` found on ``PATH`` (the ``festival`` beside it is run).

    Raises ``RuntimeError`` when Festival is not installed or fails, ``ValueError`` for empty text.
    """
    return synthesize_festival_batch([text], voice, sample_rate, [stretch], timeout, exe)[0]


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesize_festival_batch(
    texts: Sequence[str],
    voice: str,
    sample_rate: int = 16000,
    stretches: Sequence[float] | None = None,
    timeout: float = 60.0,
    exe: str | None = None,
) -> list[np.ndarray]:
    """Speak several texts with one Festival process (``festival --batch`` on a Scheme script that
    synthesises each text with ``utt.synth`` and saves it); starting Festival costs about a second, the
    synthesis of a short phrase a few milliseconds. Every text is synthesised on its own, so the output
    of one does not depend on the others (`synthesize_festival()` gives the same samples).

    Args:
        texts: what to speak.
        voice: a Festival voice (see `festival_voices()`).
        sample_rate: output rate (resampled from the voice's own).
        stretches: per-text ``Duration_Stretch`` in [0.25, 4] (default 1).
        timeout: seconds per text (plus 30 s to start).
        exe: the ``text2wave`` whose ``festival`` to run (default: found on ``PATH``).
    """
    import soundfile as sf

    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"cannot synthesise empty text {t!r} (index {i})")
    st = [1.0] * len(texts) if stretches is None else [float(x) for x in stretches]
    if len(st) != len(texts):
        raise ValueError(f"got {len(texts)} texts and {len(st)} stretches")
    for x in st:
        if not 0.25 <= x <= 4.0:
            raise ValueError(f"stretch must be in [0.25, 4], got {x}")
    if not voice or not all(c.isalnum() or c in "_-" for c in voice):
        raise ValueError(f"not a Festival voice name: {voice!r}")
    exe = exe or text2wave()
    if exe is None:
        raise RuntimeError("Festival is not installed (no text2wave on PATH)")
    beside = Path(exe).with_name("festival")
    festival = str(beside) if beside.is_file() else shutil.which("festival")
    if festival is None:
        raise RuntimeError(f"Festival is not installed (no festival beside {exe} or on PATH)")
    if not texts:
        return []
    out: list[np.ndarray] = []
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"(voice_{voice})"]
        for i, (t, x) in enumerate(zip(texts, st)):
            wav = Path(tmp) / f"{i}.wav"
            lines.append(
                f"(Parameter.set 'Duration_Stretch {x:.4f}) "
                f'(utt.save.wave (utt.synth (Utterance Text {_scheme_string(t)})) "{wav}" \'riff)'
            )
        script = Path(tmp) / "batch.scm"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            res = subprocess.run(
                [festival, "--batch", str(script)],
                capture_output=True,
                text=True,
                timeout=30 + timeout * len(texts),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"Festival timed out on {len(texts)} texts with voice {voice!r}") from None
        for i, t in enumerate(texts):
            wav = Path(tmp) / f"{i}.wav"
            if res.returncode != 0 or not wav.is_file():
                raise RuntimeError(
                    f"Festival failed on {t!r} with voice {voice!r}: {res.stderr.strip()[:300]}"
                )
            data, sr = sf.read(str(wav), dtype="float32", always_2d=True)
            w = data.mean(axis=1)
            if w.size == 0:
                raise RuntimeError(f"Festival produced no audio for {t!r} with voice {voice!r}")
            out.append(resample(w, int(sr), sample_rate))
    return out
