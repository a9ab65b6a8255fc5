"""eSpeak NG synthesis: determinism, plausible durations and levels per language, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data.augment import rms_db
from zoo.data.synth import VoiceSpec, available_variants, engine_used, synthesize, synthesize_here
from zoo.data.text import LANGUAGES, number_words

SR = 16000


@pytest.fixture(scope="module")
def per_language() -> dict[str, list[np.ndarray]]:
    texts, voices = [], []
    for lang in LANGUAGES:
        for rate in (130, 260):
            texts.append(number_words(347, lang))
            voices.append(VoiceSpec(lang, "m3", rate=rate))
    wavs = synthesize(texts, voices, seeds=7, sample_rate=SR)
    return {lang: wavs[2 * i : 2 * i + 2] for i, lang in enumerate(LANGUAGES)}


def test_bit_exact_deterministic() -> None:
    texts = ["twenty three books", "le chat est noir", "hello"]
    voices = [VoiceSpec("en", "f3"), VoiceSpec("fr", "klatt3", rate=220), VoiceSpec("en", "m1", pitch=20)]
    a = synthesize(texts, voices, seeds=[1, 2, 3])
    b = synthesize(texts, voices, seeds=[1, 2, 3])
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # in-process synthesis: same length; afterwards this process is no longer pristine, and synthesize()
    # switches to a clean fork server, with the same bit-exact output
    for _ in range(2):
        assert len(synthesize_here(texts[0], voices[0], 1)) == len(a[0])
    assert engine_used()
    c = synthesize(texts, voices, seeds=[1, 2, 3])
    assert all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plausible_length_and_level(per_language: dict[str, list[np.ndarray]], lang: str) -> None:
    slow, fast = per_language[lang]
    n_words = len(number_words(347, lang).replace("-", " ").split())
    for w in (slow, fast):
        assert w.dtype == np.float32 and np.isfinite(w).all()
        dur = len(w) / SR
        # between 4 and 0.25 s per written word (German/Italian write the number as one word)
        assert 0.25 <= dur <= 4.0 * max(n_words, 2), dur
        assert 0.05 < np.abs(w).max() <= 1.0
        assert -35 < rms_db(w) < -3
    # doubling the rate shortens the utterance by at least a third
    assert len(fast) < len(slow) * 2 / 3


def test_voices_change_the_signal() -> None:
    a, b = synthesize(["seven"] * 2, [VoiceSpec("en", "m1"), VoiceSpec("en", "f2")], seeds=0)
    n = min(len(a), len(b))
    assert not np.allclose(a[:n], b[:n], atol=1e-3)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        VoiceSpec("xx")
    with pytest.raises(ValueError, match="unknown eSpeak voice variant 'nobody'"):
        VoiceSpec("en", "nobody")
    with pytest.raises(ValueError, match="rate must be an integer in"):
        VoiceSpec("en", rate=20)
    with pytest.raises(ValueError, match="empty text at index 1"):
        synthesize(["one", "  "], VoiceSpec("en"))
    with pytest.raises(ValueError, match="empty text"):
        synthesize_here("", VoiceSpec("en"))
    with pytest.raises(ValueError, match="lengths must match"):
        synthesize(["a", "b"], [VoiceSpec("en")], 0)
    assert "m3" in available_variants() and "klatt3" in available_variants()
