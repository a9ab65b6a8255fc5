"""The LM pre-training text of the Granite-speech recipe."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from zoo.data.lm_text import lm_training_texts, translation_prompt


def test_lm_text_is_seeded_and_holds_every_part() -> None:
    utt = SimpleNamespace(language="fr", transcript="trois chats", translation="three cats")
    a = lm_training_texts([utt], generated=5, seed=1, languages=("de", "en"))  # type: ignore[list-item]
    assert a == lm_training_texts([utt], generated=5, seed=1, languages=("de", "en"))  # type: ignore[list-item]
    assert a != lm_training_texts([utt], generated=5, seed=2, languages=("de", "en"))  # type: ignore[list-item]
    assert len(a) == 3 * (1 + 2 * 5)  # source, translation task, English per phrase
    assert {"trois chats", "three cats", "translate fr to english: trois chats = three cats"} <= set(a)
    assert sum(line.startswith("translate de to english: ") for line in a) == 5


def test_lm_text_bad_input() -> None:
    with pytest.raises(ValueError, match="generated"):
        lm_training_texts(generated=-1)
    with pytest.raises(ValueError, match="language"):
        lm_training_texts(generated=1, languages=("xx",))
    with pytest.raises(ValueError, match="language"):
        translation_prompt("klingon", "x")
