"""Text for pre-training a small LM: the corpus's transcripts and translations plus generated phrases.

Granite-speech keeps its LM's text abilities (text mode) while adding speech (arXiv:2505.08699). For a
small LM trained here from scratch to be worth preserving, it learns text-only tasks as well:
`lm_training_texts()` gives, for every phrase, its transcript, its English translation and a written
translation task in the format of `translation_prompt()` (``"translate fr to english: soixante quinze =
seventy five"``). Phrases come from the corpus's training utterances and from
[`zoo.data.random_phrase()`][zoo.data.random_phrase] in every language (``generated`` of them, seeded).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zoo.checks import check_int
from zoo.data.manifest import Utterance
from zoo.data.text import LANGUAGES, check_language, random_phrase

__all__ = ["lm_training_texts", "translation_prompt"]


def translation_prompt(language: str, text: str) -> str:
    """The text-mode translation prompt: ``"translate <language> to english: <text> ="``.

    Examples:
        >>> translation_prompt("fr", "trois chats")
        'translate fr to english: trois chats ='
    """
    check_language(language)
    return f"translate {language} to english: {text} ="


def lm_training_texts(
    utterances: Sequence[Utterance] = (),
    generated: int = 1000,
    seed: int = 0,
    languages: Sequence[str] = LANGUAGES,
) -> list[str]:
    """Lines of LM pre-training text (see the module docstring), in a seeded order.

    Args:
        utterances: corpus utterances whose transcripts and translations are included.
        generated: phrases drawn per language with ``random_phrase`` (seeded by ``seed``).
        seed: seeds the generated phrases and the order.
        languages: languages of the generated phrases.

    Examples:
        >>> lines = lm_training_texts(generated=2, languages=("fr",))
        >>> len(lines), lines[0].startswith(("translate", ""))
        (6, True)
    """
    check_int(generated, "generated", low=0)
    rng = np.random.default_rng(seed)
    pairs: list[tuple[str, str, str]] = [
        (u.language, u.transcript, u.translation) for u in utterances if u.transcript and u.translation
    ]
    for lang in languages:
        check_language(lang)
        for _ in range(generated):
            p = random_phrase(lang, rng)
            pairs.append((lang, p.transcript, p.translation))
    lines: list[str] = []
    for lang, src, en in pairs:
        lines += [src, f"{translation_prompt(lang, src)} {en}"]
        if lang != "en":
            lines.append(en)
        else:
            lines.append(src)
    order = rng.permutation(len(lines))
    return [lines[i] for i in order]
