"""Data of the Objective Soups recipe: per-language labelled streams (audio, transcript, X→en translation)
and an unlabelled stream for self-supervision, each a resumable
[`zoo.training.Batches`][zoo.training.Batches].

Every labelled item carries both targets of its audio: ``tokens`` (the transcript, characters) and
``trans`` (the English translation, words of a
[`zoo.models.translation.WordVocab`][zoo.models.translation.WordVocab]),
so a language's recognition and translation objectives share one encoder pass, as in the authors' code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from zoo.checks import check_int
from zoo.data import CharTokenizer, FeatureSpec, SpeechDataset, collate
from zoo.models.translation import WordVocab
from zoo.training import Batches

__all__ = ["SoupBatches", "SoupsData", "collate_soup", "load_soups_data"]


def collate_soup(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """[`zoo.data.collate`][zoo.data.collate] plus the translation ids: ``trans`` (B, U) padded with 0 and
    ``trans_lens`` (B,)."""
    out = collate(items)
    tr = [it.get("trans", torch.zeros(0, dtype=torch.long)) for it in items]
    U = max((t.numel() for t in tr), default=0)
    y = torch.zeros(len(items), U, dtype=torch.long)
    for b, t in enumerate(tr):
        y[b, : t.numel()] = t
    out["trans"], out["trans_lens"] = y, torch.tensor([t.numel() for t in tr], dtype=torch.long)
    out["translations"] = [it.get("translation", "") for it in items]
    return out


@dataclass
class SoupsData:
    """Featurised splits by language, and the two target vocabularies.

    Attributes:
        train: labelled items per language; unlabelled: the self-supervision pool (every language);
        dev, test: held-out items per language (other voices).
        translate: languages with X→en translation targets (every non-English language with translations).
        tokenizer: characters of the transcripts (CTC); vocab: English words of the translations.
        n_mels: features per frame.
    """

    train: dict[str, list[dict[str, Any]]]
    unlabelled: list[dict[str, Any]]
    dev: dict[str, list[dict[str, Any]]]
    test: dict[str, list[dict[str, Any]]]
    translate: tuple[str, ...]
    tokenizer: CharTokenizer
    vocab: WordVocab
    n_mels: int

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.train)


def _items(ds: SpeechDataset, vocab: WordVocab | None, progress: bool, desc: str) -> list[dict[str, Any]]:
    out = []
    with torch.no_grad():
        for i in tqdm(range(len(ds)), desc=desc, disable=not progress, leave=False):
            it = dict(ds[i])
            u = ds.utterances[i]
            it["translation"] = u.translation if u.language != "en" else ""
            if vocab is not None and it["translation"]:
                it["trans"] = torch.tensor(vocab.encode(it["translation"]), dtype=torch.long)
            out.append(it)
    return out


def _by_language(items: list[dict[str, Any]], languages: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    return {lang: [it for it in items if it["language"] == lang] for lang in languages}


def load_soups_data(
    corpus_dir: str | Path,
    *,
    languages: Sequence[str] | None = None,
    translate: Sequence[str] | None = None,
    n_mels: int = 40,
    progress: bool = False,
) -> SoupsData:
    """Featurise a built multilingual corpus (log-mel with per-utterance CMVN) into `SoupsData`.

    Args:
        languages: the languages to recognise (default: every language of the labelled split).
        translate: the languages to translate into English (default: every non-English language of
            ``languages``). English is never translated (its "translation" is its transcript).

    Raises:
        ValueError: a language without labelled, dev or test utterances, or a language of ``translate``
            whose labelled utterances carry no translation.
    """
    tok = CharTokenizer.from_corpus(corpus_dir)
    fe = FeatureSpec(n_mels=n_mels, cmvn=True).build()
    lab = SpeechDataset(corpus_dir, "labelled", tok, fe, languages=languages)
    langs = tuple(languages) if languages is not None else tuple(sorted({u.language for u in lab.utterances}))
    vocab = WordVocab.from_texts(u.translation for u in lab.utterances if u.language != "en")
    train = _by_language(_items(lab, vocab, progress, "labelled"), langs)
    tr = tuple(translate) if translate is not None else tuple(x for x in langs if x != "en")
    for lang in tr:
        if lang == "en" or lang not in langs:
            raise ValueError(f"translate: {lang!r} must be a non-English language of {langs}")
        if not any(it.get("trans") is not None and it["trans"].numel() for it in train[lang]):
            raise ValueError(f"translate: language {lang!r} has no translation data in {corpus_dir}")
    splits = {}
    for split in ("dev", "test"):
        ds = SpeechDataset(corpus_dir, split, tok, fe, languages=langs)
        splits[split] = _by_language(_items(ds, vocab, progress, split), langs)
    unl = _items(
        SpeechDataset(corpus_dir, "unlabelled", tok, fe, languages=langs), None, progress, "unlabelled"
    )
    for lang in langs:
        for name, part in (("labelled", train), ("dev", splits["dev"]), ("test", splits["test"])):
            if not part[lang]:
                raise ValueError(f"language {lang!r} has no {name} utterances in {corpus_dir}")
    return SoupsData(train, unl, splits["dev"], splits["test"], tr, tok, vocab, n_mels)


class SoupBatches:
    """The batch source of the recipe: every step draws two independent batches (MoDo's double sampling)
    of every language and of the unlabelled pool.

    ``batch(step)`` is ``{"first": {lang: batch, ..., "ssl": batch}, "second": {...}}``. Each stream is a
    seeded [`zoo.training.Batches`][zoo.training.Batches]; the state holds every stream's position.
    """

    def __init__(
        self,
        data: SoupsData,
        batch_size: int,
        *,
        seed: int = 0,
        collate_fn: Callable[..., Any] = collate_soup,
    ) -> None:
        check_int(batch_size, "batch_size", low=1)
        self.streams: dict[str, Batches] = {}
        for i, (lang, items) in enumerate(data.train.items()):
            self.streams[lang] = Batches.shuffled(
                items, batch_size, collate_fn, seed=1000 * seed + i, pool_batches=1
            )
        self.streams["ssl"] = Batches.shuffled(
            data.unlabelled, batch_size, collate_fn, seed=1000 * seed + 999, pool_batches=1
        )

    def batch(self, step: int) -> dict[str, Any]:
        return {
            "first": {k: next(s) for k, s in self.streams.items()},
            "second": {k: next(s) for k, s in self.streams.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        return {k: s.state_dict() for k, s in self.streams.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != set(self.streams):
            raise ValueError(f"the saved streams are {sorted(state)}, this source has {sorted(self.streams)}")
        for k, s in self.streams.items():
            s.load_state_dict(state[k])
