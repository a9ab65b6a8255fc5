"""Tokenizers round-trip; reserved ids; save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.data.text import LANGUAGES, random_phrase
from zoo.data.tokenizers import CharTokenizer, SentencePieceTokenizer

CHAR = CharTokenizer.for_languages()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(600):
        p = random_phrase(LANGUAGES[i % 6], rng)
        out += [p.transcript, p.translation]
    return out


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="".join(CHAR.chars), max_size=30))
def test_char_round_trip(s: str) -> None:
    ids = CHAR.encode(s)
    assert len(ids) == len(s) and all(2 <= i < CHAR.vocab_size for i in ids)
    assert CHAR.decode(ids) == s
    assert CHAR.decode([0, *ids, 0]) == s  # blanks are skipped


def test_char_reserved_unknown_and_io(tmp_path: Path) -> None:
    assert CHAR.blank_id == 0 and CHAR.tokens[0] == "<blank>" and CHAR.tokens[1] == "<unk>"
    assert CHAR.encode("a€") == [CHAR.encode("a")[0], CHAR.unk_id]
    assert CHAR.decode(CHAR.encode("a€")) == "a?"
    CHAR.save(tmp_path / "c.json")
    back = CharTokenizer.load(tmp_path / "c.json")
    assert back.tokens == CHAR.tokens
    with pytest.raises(ValueError, match="out of range"):
        CHAR.decode([CHAR.vocab_size])
    with pytest.raises(ValueError, match="empty text"):
        CharTokenizer.from_texts([])
    with pytest.raises(ValueError, match="distinct"):
        CharTokenizer(["a", "a"])


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_round_trip(texts: list[str], tmp_path: Path, model_type: str) -> None:
    sp = SentencePieceTokenizer.train(texts, 120, model_type, tmp_path)
    assert (sp.blank_id, sp.unk_id, sp.bos_id, sp.eos_id) == (0, 1, 2, 3)
    assert sp.tokens[0] == "<blank>" and sp.vocab_size <= 120
    n_tok = n_char = 0
    for t in texts[:200]:
        ids = sp.encode(t)
        assert sp.decode(ids) == t
        assert all(3 < i < sp.vocab_size for i in ids) or sp.unk_id in ids
        n_tok += len(ids)
        n_char += len(t)
    assert n_tok < 0.6 * n_char  # subwords are longer than characters
    assert sp.decode([sp.bos_id, *sp.encode(texts[0]), sp.eos_id, 0]) == texts[0]
    again = SentencePieceTokenizer.train(texts, 120, model_type, tmp_path, name="again")
    assert again.tokens == sp.tokens  # deterministic training
    sp.save(tmp_path / "copy.model")
    assert SentencePieceTokenizer.load(tmp_path / "copy.model").encode(texts[1]) == sp.encode(texts[1])


def test_sentencepiece_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model_type"):
        SentencePieceTokenizer.train(["a b"], 50, "word", tmp_path)
    with pytest.raises(ValueError, match="empty text"):
        SentencePieceTokenizer.train(["  "], 50, "bpe", tmp_path)
    with pytest.raises(FileNotFoundError):
        SentencePieceTokenizer(tmp_path / "none.model")
