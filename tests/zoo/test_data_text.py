"""Corpus text: normalisation, phrase generation, translations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from num2words import num2words

from zoo.data.text import (
    KINDS,
    LANGUAGES,
    name_lists,
    normalize,
    number_words,
    phrase_from_text,
    random_phrase,
    vocabulary,
)


def test_normalize_examples() -> None:
    assert normalize("Vingt-Trois  livres, s’il vous plaît!") == "vingt trois livres s'il vous plaît"
    assert normalize("  Où EST\tla maison ? ") == "où est la maison"
    assert normalize("e\u0301") == "é"  # NFC composes the combining accent
    assert normalize("one thousand, nine hundred") == "one thousand nine hundred"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_normalize_idempotent_and_clean(s: str) -> None:
    t = normalize(s)
    assert normalize(t) == t
    assert "  " not in t and t == t.strip()
    assert all(c.isalnum() or c in " '" for c in t)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_number_words_match_num2words(lang: str) -> None:
    for n in (0, 7, 21, 342, 999):
        assert number_words(n, lang) == num2words(n, lang=lang).replace(",", "")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_phrases_are_deterministic_and_translated(lang: str) -> None:
    a = [random_phrase(lang, np.random.default_rng(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    kinds = set()
    vocab = set(vocabulary(lang))
    en_vocab = set(vocabulary("en"))
    first, last = name_lists(lang)
    for _ in range(200):
        p = random_phrase(lang, rng, kind_weights=(0.25, 0.25, 0.25, 0.25))
        kinds.add(p.kind)
        assert p.transcript == normalize(p.spoken) and p.transcript
        assert set(p.transcript.split()) <= vocab
        # names translate to themselves; every other word is English
        assert set(p.translation.split()) <= en_vocab | set(first) | set(last)
        if lang == "en":
            assert p.translation == p.transcript
    assert kinds == set(KINDS)


def test_quantity_translation_keeps_the_number() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        p = random_phrase("fr", rng, kind="quantity")
        n_words = p.translation.rsplit(" ", 1)[0]
        # the English number words must be num2words' rendering of some n in [2, 999]
        assert any(normalize(num2words(n, lang="en")) == n_words for n in range(2, 1000))


def test_spanish_quantities_avoid_apocope() -> None:
    rng = np.random.default_rng(2)
    for _ in range(300):
        p = random_phrase("es", rng, kind="quantity")
        assert not p.transcript.split()[-2].endswith("uno")


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        random_phrase("xx", np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown kind"):
        random_phrase("en", np.random.default_rng(0), kind="poem")
    with pytest.raises(ValueError, match="empty"):
        phrase_from_text(" ,; ", "en")
    with pytest.raises(ValueError, match="non-negative"):
        number_words(-3, "de")
