"""Speech synthesis with the eSpeak NG library shipped by ``espeakng-loader`` (ctypes; no system package).

eSpeak NG is a formant synthesiser (Klatt-style and harmonic wave generators, Duddington 2005–2013;
Dunn et al. 2015–): it turns text into phonemes with per-language rules and dictionaries, then
renders them at 22 050 Hz, several hundred times faster than real time on one core. A *voice* is a
language (``"en-us"``, ``"fr"``...) plus a *variant* (``"m3"``, ``"f2"``, ``"klatt3"``...) that changes
formant scaling, pitch range and glottal source, i.e. the simulated speaker; speaking rate (words per
minute), base pitch and pitch range are parameters.

Determinism. Given the same random seed (``espeak_ng_SetRandSeed``) eSpeak is deterministic, except that
the vocoder keeps a few static variables (glottal phase, flutter index) from one call to the next inside a
process. `synthesize()` therefore runs every batch in a *fresh* process (forked while the
caller has never synthesised, otherwise from a clean fork server), which makes its output bit-exact
reproducible; `synthesize_here()` runs in the calling
process (faster for interactive use: same text, same duration, but sample values depend on what the
process synthesised before).

The eSpeak NG data (GPL-3.0) is used at build time only; the generated audio carries no licence terms
from it.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.audio import resample as _resample
from zoo.data.text import LANGUAGES, check_language

ESPEAK_SAMPLE_RATE = 22050

#: eSpeak NG voice (language file) used for each corpus language.
ESPEAK_LANGUAGE: dict[str, str] = {"en": "en-us", "fr": "fr", "de": "de", "es": "es", "it": "it", "pt": "pt"}

#: Human-sounding variants used as "speakers" (a curated subset of ``espeak-ng-data/voices/!v``).
DEFAULT_VARIANTS: tuple[str, ...] = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "Alex",
    "Annie",
    "adam",
    "anika",
    "aunty",
    "boris",
    "david",
    "ed",
    "edward",
    "gustave",
    "iven",
    "john",
    "linda",
    "max",
    "michel",
    "norbert",
    "paul",
    "pedro",
    "quincy",
    "rob",
    "robert",
    "steph",
    "travis",
    "Andy",
)

# espeak_PARAMETER and option values from speak_lib.h
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def data_path() -> Path:
    """Directory of the eSpeak NG data shipped by ``espeakng-loader``."""
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


@cache
def espeak_version() -> str:
    """The version of the eSpeak NG library that ``espeakng-loader`` ships (``espeak_Info``), e.g. "1.52.0".

    Loading the library to ask does not synthesise, so `engine_used()` stays false.
    """
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    out = lib.espeak_Info(None)
    return out.decode() if out else "unknown"


@cache
def available_variants() -> tuple[str, ...]:
    """Every voice variant shipped with the eSpeak NG data, sorted."""
    return tuple(sorted(p.name for p in (data_path() / "voices" / "!v").iterdir() if p.is_file()))


@dataclass(frozen=True)
class VoiceSpec:
    """An eSpeak NG voice: language, variant (the simulated speaker), rate and pitch.

    Attributes:
        language: corpus language code (one of `zoo.data.LANGUAGES`).
        variant: an eSpeak variant name (see `available_variants()`).
        rate: speaking rate in words per minute, 80 to 450 (eSpeak default 175).
        pitch: base pitch, 0 to 99 (default 50).
        pitch_range: pitch range (intonation excursion), 0 to 99 (default 50).
        word_gap: extra pause between words in units of 10 ms, 0 to 50.
    """

    language: str
    variant: str = "m1"
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0

    def __post_init__(self) -> None:
        check_language(self.language)
        if self.variant not in available_variants():
            raise ValueError(
                f"unknown eSpeak voice variant {self.variant!r}; known variants include "
                f"{', '.join(DEFAULT_VARIANTS[:8])}... (see zoo.data.synth.available_variants())"
            )
        for name, lo, hi in (
            ("rate", 80, 450),
            ("pitch", 0, 99),
            ("pitch_range", 0, 99),
            ("word_gap", 0, 50),
        ):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ValueError(f"voice {name} must be an integer in [{lo}, {hi}], got {v!r}")

    @property
    def name(self) -> str:
        """The eSpeak voice name, e.g. ``"en-us+m3"``; also the speaker id used in the manifest."""
        return f"{ESPEAK_LANGUAGE[self.language]}+{self.variant}"


class _Espeak:
    """The process-wide eSpeak NG library, initialised for synchronous in-memory synthesis."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path()).encode(), 0)
        if sr != ESPEAK_SAMPLE_RATE:
            raise RuntimeError(f"eSpeak NG failed to initialise (returned {sr})")
        self.lib = lib
        self._chunks: list[np.ndarray] = []

        def _collect(wav: Any, n: int, events: Any) -> int:
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _CALLBACK(_collect)  # keep a reference: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None

    def synth(self, text: str, voice: VoiceSpec, seed: int) -> np.ndarray:
        if voice.name != self._voice:
            rc = self.lib.espeak_SetVoiceByName(voice.name.encode())
            if rc != 0:
                raise ValueError(f"eSpeak NG has no voice {voice.name!r} (error {rc})")
            self._voice = voice.name
        for p, v in (
            (_RATE, voice.rate),
            (_PITCH, voice.pitch),
            (_RANGE, voice.pitch_range),
            (_WORDGAP, voice.word_gap),
            (_VOLUME, 100),
        ):
            self.lib.espeak_SetParameter(p, int(v), 0)
        self.lib.espeak_ng_SetRandSeed(int(seed) % (2**31))
        self._chunks = []
        b = text.encode("utf-8")
        rc = self.lib.espeak_Synth(b, len(b) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if rc != 0:
            raise RuntimeError(f"eSpeak NG failed on {text!r} with voice {voice.name} (error {rc})")
        out = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        self._chunks = []
        return out


@cache
def _engine() -> _Espeak:
    return _Espeak()


def _check_text(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"cannot synthesise empty text {text!r}")
    return text


def synthesize_here(text: str, voice: VoiceSpec, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """Synthesise ``text`` with ``voice`` in this process; returns float32 samples in [-1, 1].

    The duration is deterministic; sample values also depend on what this process synthesised before
    (see the module docstring). Use `synthesize()` for bit-exact reproducibility.
    """
    return resample(synthesize_native(text, voice, seed), ESPEAK_SAMPLE_RATE, sample_rate)


def synthesize_native(text: str, voice: VoiceSpec, seed: int = 0) -> np.ndarray:
    """`synthesize_here()` at eSpeak's own rate (`ESPEAK_SAMPLE_RATE`), before resampling."""
    _check_text(text)
    if not isinstance(voice, VoiceSpec):
        raise TypeError(f"voice must be a VoiceSpec, got {type(voice).__name__}")
    raw = _engine().synth(text, voice, seed)
    if raw.size == 0:
        raise RuntimeError(f"eSpeak NG produced no audio for {text!r} with voice {voice.name}")
    return raw.astype(np.float32) * np.float32(1 / 32768)


def advance_state(text: str, voice: VoiceSpec, seed: int = 0) -> None:
    """Run eSpeak NG on ``text`` in this process and discard the audio.

    This leaves the vocoder's state (see the module docstring) where `synthesize_here()` with the same
    arguments would leave it, at a fraction of the cost (no resampling). Replaying the utterances that
    precede one in a fresh process reproduces that utterance bit-exactly without rendering the others,
    which is how [`zoo.data.verify_corpus()`][zoo.data.verify_corpus] repairs a single damaged file.
    """
    _check_text(text)
    _engine().synth(text, voice, seed)


def resample(wav: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed-sinc ``Resample``, kernel cached per rate pair, see
    ``zoo.data.audio.resampler()``) of a 1-D float array; float32 out."""
    if orig == new:
        return wav.astype(np.float32, copy=False)
    return _resample(np.ascontiguousarray(wav, dtype=np.float32), orig, new).numpy()


def _synth_batch(job: tuple[list[str], list[VoiceSpec], list[int], int]) -> list[np.ndarray]:
    import torch

    torch.set_num_threads(1)
    texts, voices, seeds, sr = job
    return [synthesize_here(t, v, s, sr) for t, v, s in zip(texts, voices, seeds)]


def engine_used() -> bool:
    """Whether this process has synthesised with eSpeak NG (its vocoder state is then no longer pristine)."""
    return _engine.cache_info().currsize > 0


def fresh_pool(workers: int) -> Any:
    """A process pool whose every task runs in a fresh process with a pristine eSpeak state.

    ``maxtasksperchild=1`` gives every task its own process. On Linux the workers are forked from this
    process while it has never synthesised (`engine_used()` is false), which needs no ``__main__``
    guard; once it has, they are forked from a fork server that never synthesises (like ``spawn``, this
    re-imports a script's main module in the workers, so scripts need ``if __name__ == "__main__":``).
    Elsewhere the workers are spawned.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    ctx: Any
    if sys.platform.startswith("linux") and not engine_used():
        ctx = mp.get_context("fork")
    elif sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(
            ["zoo.data.synth", "zoo.data.corpus", "torchaudio.functional", "soundfile"]
        )
    else:
        ctx = mp.get_context("spawn")
    return ctx.Pool(workers, maxtasksperchild=1)


def synthesize(
    texts: Sequence[str],
    voices: Sequence[VoiceSpec] | VoiceSpec,
    seeds: Sequence[int] | int = 0,
    sample_rate: int = 16000,
) -> list[np.ndarray]:
    """Synthesise ``texts`` (bit-exact reproducibly) in one fresh process; float32 waveforms in [-1, 1].

    Args:
        texts: the texts to speak.
        voices: one `VoiceSpec` per text, or one for all.
        seeds: eSpeak random seeds (one per text, or one for all).
        sample_rate: output rate in Hz (eSpeak renders at 22 050 Hz; resampled with a windowed sinc).
    """
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"cannot synthesise empty text at index {i}: {t!r}")
    vs = [voices] * len(texts) if isinstance(voices, VoiceSpec) else list(voices)
    ss = [int(seeds)] * len(texts) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if len(vs) != len(texts) or len(ss) != len(texts):
        raise ValueError(f"got {len(texts)} texts, {len(vs)} voices and {len(ss)} seeds; lengths must match")
    if not texts:
        return []
    with fresh_pool(1) as pool:
        (out,) = pool.map(_synth_batch, [(texts, vs, ss, sample_rate)])
        return out


def default_workers() -> int:
    """Worker processes used when none is given: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


__all__ = [
    "DEFAULT_VARIANTS",
    "ESPEAK_LANGUAGE",
    "ESPEAK_SAMPLE_RATE",
    "LANGUAGES",
    "VoiceSpec",
    "advance_state",
    "available_variants",
    "default_workers",
    "engine_used",
    "espeak_version",
    "fresh_pool",
    "resample",
    "synthesize",
    "synthesize_here",
    "synthesize_native",
]
