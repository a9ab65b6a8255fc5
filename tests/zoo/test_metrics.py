"""WER, CER, BLEU, chrF against hand-computed values, jiwer's defaults and a reference Levenshtein."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.metrics import bleu, cer, chrf, edit_distance, error_counts, wer


def test_wer_hand_computed() -> None:
    # "a b c d" -> "a x c": 1 substitution (b->x), 1 deletion (d) = 2 errors / 4 words
    assert wer("a b c d", "a x c") == pytest.approx(0.5, abs=0)
    # corpus level: (2 + 1) errors over (4 + 2) words; one insertion in the second pair
    assert wer(["a b c d", "e f"], ["a x c", "e f g"]) == pytest.approx(3 / 6, abs=0)
    assert wer(["hello"], [""]) == 1.0
    assert wer(["a"], ["b c d"]) == 3.0  # can exceed 1


def test_cer_hand_computed() -> None:
    assert cer("kitten", "sitting") == pytest.approx(3 / 6, abs=0)  # classic Levenshtein = 3
    assert cer(["ab", "c d"], ["ab", "cd"]) == pytest.approx(1 / 5, abs=0)


words = st.lists(st.sampled_from(["a", "b", "c", "dd"]), max_size=8).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(words.filter(bool), words), min_size=1, max_size=4))
def test_wer_matches_jiwer(pairs: list[tuple[str, str]]) -> None:
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)


def levenshtein(a: Sequence[object], b: Sequence[object]) -> int:
    """The textbook dynamic programme (the independent reference; the library uses jiwer/torchaudio)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


@settings(max_examples=60, deadline=None)
@given(st.text("abc ", max_size=10), st.text("abc ", max_size=10))
def test_edit_distance_matches_reference(a: str, b: str) -> None:
    assert edit_distance(a, b) == levenshtein(a, b)
    assert edit_distance(a.split(), b.split()) == levenshtein(a.split(), b.split())


# Strings with leading, trailing and repeated spaces and empty references: our tokenisation is
# str.split() for words and every character (spaces included, nothing stripped) for characters.
texts = st.text("ab c", max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=5))
def test_error_counts_equal_reference_levenshtein(pairs: list[tuple[str, str]]) -> None:
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    for unit, tok in (("word", str.split), ("char", list)):
        expected = (
            sum(levenshtein(tok(r), tok(h)) for r, h in pairs),
            sum(len(tok(r)) for r in refs),
        )
        assert error_counts(refs, hyps, unit) == expected
        if expected[1]:
            rate = wer(refs, hyps) if unit == "word" else cer(refs, hyps)
            assert rate == pytest.approx(expected[0] / expected[1], abs=1e-15)


def test_bleu_hand_computed() -> None:
    ref, hyp = "the cat sat on the mat", "the cat sat on mat"
    # hyp n-gram precisions: 1-gram 5/5, 2-gram 3/4 (the cat, cat sat, sat on), 3-gram 2/3, 4-gram 1/2
    # brevity penalty exp(1 - 6/5)
    expected = 100 * math.exp(1 - 6 / 5) * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert bleu([ref], [hyp]) == pytest.approx(expected, rel=1e-9)
    assert bleu(["a b c d"], ["a b c d"]) == pytest.approx(100.0)


def test_chrf_extremes() -> None:
    assert chrf(["abcdef"], ["abcdef"]) == pytest.approx(100.0)
    assert chrf(["abcdef"], ["uvwxyz"]) == pytest.approx(0.0)
    assert 0 < chrf(["the cat sat"], ["the cat sit"]) < 100


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="2 references and 1 hypotheses"):
        wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no words"):
        wer([""], ["a"])
    with pytest.raises(TypeError, match=r"hypotheses\[0\]"):
        wer(["a"], [3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unit"):
        error_counts("a", "a", unit="phone")
