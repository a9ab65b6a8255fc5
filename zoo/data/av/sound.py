"""The soundtrack of a generated audio-visual clip: per-class sound families over background noise.

Every event's class has its own family (see `zoo.data.av.CLASSES`): a harmonic tone
with a random fundamental, a rising chirp, band-pass noise with a random centre and width, or a word spoken
by the eSpeak NG synthesiser ([`zoo.data.synthesize()`][zoo.data.synthesize], several voices, rendered once
per build: `word_bank()`). Events fade in and out over 10 ms; silent slots and the gaps between events hold
only the background noise (pink-ish, at a random level).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.data.av.config import CLASSES, AVCorpusConfig
from zoo.data.synth import VoiceSpec, synthesize

__all__ = ["WORD_VOICES", "event_sound", "render_audio", "word_bank"]

#: The eSpeak NG voices (variant, words per minute) that speak the word classes.
WORD_VOICES: tuple[tuple[str, int], ...] = (("m1", 230), ("m3", 250), ("f2", 230), ("f4", 260))


def _trim(wav: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.nonzero(np.abs(wav) > threshold)[0]
    return wav[loud[0] : loud[-1] + 1] if loud.size else wav


def word_bank(cfg: AVCorpusConfig) -> dict[str, list[np.ndarray]]:
    """Every word class's renditions (one per `WORD_VOICES` entry), trimmed, peak-normalised."""
    words = sorted({c.word for c in CLASSES[: cfg.classes] if c.sound == "word"})
    if not words:
        return {}
    texts = [w for w in words for _ in WORD_VOICES]
    voices = [VoiceSpec("en", v, rate=r) for _ in words for v, r in WORD_VOICES]
    wavs = synthesize(texts, voices, seeds=0, sample_rate=cfg.sample_rate)
    out: dict[str, list[np.ndarray]] = {w: [] for w in words}
    for text, wav in zip(texts, wavs):
        w = _trim(wav)
        out[text].append((w / max(1e-6, float(np.abs(w).max()))).astype(np.float32))
    return out


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float, sr: int) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec[(f < lo) | (f > hi)] = 0.0
    return np.fft.irfft(spec, n)


def event_sound(cfg: AVCorpusConfig, event: dict[str, Any], bank: dict[str, list[np.ndarray]]) -> np.ndarray:
    """The waveform of one event (its own length, peak at its gain)."""
    sr = cfg.sample_rate
    n = max(1, round((event["end"] - event["start"]) * sr))
    rng = np.random.default_rng(event["sound_seed"])
    cls = CLASSES[event["cls"]]
    t = np.arange(n) / sr
    if cls.sound == "harmonic":
        f0 = rng.uniform(*cls.band)
        amps = rng.uniform(0.4, 1.0, 4) / np.arange(1, 5)
        wav = sum(a * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) for h, a in zip(range(1, 5), amps))
        wav = np.asarray(wav) * (1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(3, 8) * t))
    elif cls.sound == "chirp":
        f1 = rng.uniform(*cls.band)
        ratio = rng.uniform(1.3, 1.7)
        dur = max(t[-1], 1e-3)
        phase = 2 * np.pi * f1 * dur / np.log(ratio) * (ratio ** (t / dur) - 1)
        wav = np.sin(phase)
    elif cls.sound == "noise":
        lo, hi = cls.band
        width = rng.uniform(0.3, 0.6) * (hi - lo)
        centre = rng.uniform(lo + width / 2, hi - width / 2)
        wav = _band_noise(rng, n, centre - width / 2, centre + width / 2, sr)
    else:
        takes = bank[cls.word]
        w = takes[int(rng.integers(len(takes)))]
        wav = np.zeros(n)
        m = min(n, w.size)
        off = int(rng.integers(n - m + 1))
        wav[off : off + m] = w[:m]
    wav = wav / max(1e-9, float(np.abs(wav).max()))
    fade = min(n // 2, round(0.01 * sr))
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
        wav[:fade] *= ramp
        wav[n - fade :] *= ramp[::-1]
    return wav * 10 ** (event["gain_db"] / 20)


def render_audio(cfg: AVCorpusConfig, plan: dict[str, Any], bank: dict[str, list[np.ndarray]]) -> np.ndarray:
    """The clip's soundtrack: float32 samples in [-1, 1] of length ``cfg.num_samples``."""
    n = cfg.num_samples
    rng = np.random.default_rng(plan["pixel_seed"] + 1)
    white = rng.normal(size=n)
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1.0 / cfg.sample_rate)
    spec /= np.sqrt(np.maximum(f, 50.0) / 50.0)  # 1/f power: pink-ish
    noise = np.fft.irfft(spec, n)
    level = rng.uniform(*cfg.noise_db)
    out = noise / max(1e-9, float(np.sqrt(np.mean(noise**2)))) * 10 ** (level / 20)
    for ev in plan["events"]:
        if ev is None:
            continue
        s = event_sound(cfg, ev, bank)
        a = round(ev["start"] * cfg.sample_rate)
        b = min(n, a + s.size)
        out[a:b] += s[: b - a]
    return np.clip(out, -1.0, 1.0).astype(np.float32)
