"""Recognition and translation metrics: WER, CER (Levenshtein, with jiwer), BLEU and chrF (sacrebleu).

* `wer()` — corpus word error rate $\\sum_i d(r_i, h_i) / \\sum_i |r_i|$ where $d$ is the
  Levenshtein distance (substitutions + deletions + insertions) between word sequences and
  $|r_i|$ the number of reference words; a fraction (0.25 = 25 %), can exceed 1.
* `cer()` — the same over characters (spaces included).
* `bleu()` — corpus BLEU (Papineni et al., 2002) with sacrebleu's defaults (4-grams, brevity penalty,
  13a tokenisation), on the 0–100 scale.
* `chrf()` — chrF (Popović, 2015), character n-gram F-score with β = 2, on the 0–100 scale.

Inputs are one string or a sequence of strings (references and hypotheses aligned one to one); no
normalisation is applied here (use [`zoo.data.normalize()`][zoo.data.normalize] on both sides first if
needed). Words are
``str.split()`` tokens; characters are every character, spaces included, with no stripping. The
distances are jiwer's (RapidFuzz's C++ Levenshtein) with transforms that do exactly this tokenisation,
rather than jiwer's default ones (which strip and collapse spaces); empty references are allowed as long
as the corpus's total reference length is positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _pairs(refs: str | Sequence[str], hyps: str | Sequence[str]) -> tuple[list[str], list[str]]:
    r = [refs] if isinstance(refs, str) else list(refs)
    h = [hyps] if isinstance(hyps, str) else list(hyps)
    if len(r) != len(h):
        raise ValueError(f"got {len(r)} references and {len(h)} hypotheses; they must pair up")
    for name, xs in (("references", r), ("hypotheses", h)):
        for i, x in enumerate(xs):
            if not isinstance(x, str):
                raise TypeError(f"{name}[{i}] must be a str, got {type(x).__name__}")
    return r, h


def edit_distance(a: Sequence[object], b: Sequence[object]) -> int:
    """Levenshtein distance between two sequences (unit costs; ``torchaudio.functional.edit_distance``)."""
    import torchaudio.functional as AF

    return int(AF.edit_distance(a, b))


def error_counts(refs: str | Sequence[str], hyps: str | Sequence[str], unit: str = "word") -> tuple[int, int]:
    """``(total edit distance, total reference length)`` in words or characters."""
    import jiwer

    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")
    r, h = _pairs(refs, hyps)
    if not r:
        return 0, 0
    if unit == "word":
        words = jiwer.ReduceToListOfListOfWords()  # str.split() tokens
        out: Any = jiwer.process_words(r, h, reference_transform=words, hypothesis_transform=words)
        n = sum(len(x.split()) for x in r)
    else:
        chars = jiwer.ReduceToListOfListOfChars()  # every character, spaces kept
        out = jiwer.process_characters(r, h, reference_transform=chars, hypothesis_transform=chars)
        n = sum(len(x) for x in r)
    return int(out.substitutions + out.deletions + out.insertions), n


def wer(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Corpus word error rate (fraction). Raises ``ValueError`` if the references hold no word."""
    e, n = error_counts(refs, hyps, "word")
    if n == 0:
        raise ValueError("WER is undefined: the references contain no words")
    return e / n


def cer(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Corpus character error rate (fraction, spaces count as characters)."""
    e, n = error_counts(refs, hyps, "char")
    if n == 0:
        raise ValueError("CER is undefined: the references are empty")
    return e / n


def bleu(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Corpus BLEU (0–100) with sacrebleu's defaults; one reference per hypothesis."""
    import sacrebleu

    r, h = _pairs(refs, hyps)
    return float(sacrebleu.corpus_bleu(h, [r]).score)


def chrf(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Corpus chrF (0–100, β = 2, character 6-grams) with sacrebleu."""
    import sacrebleu

    r, h = _pairs(refs, hyps)
    return float(sacrebleu.corpus_chrf(h, [r]).score)


__all__ = ["bleu", "cer", "chrf", "edit_distance", "error_counts", "wer"]
