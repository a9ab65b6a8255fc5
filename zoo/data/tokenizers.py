"""Tokenizers trained from corpus text: characters, and SentencePiece unigram / BPE.

Both share one interface: ``encode(str) -> list[int]``, ``decode(list[int]) -> str``, ``vocab_size``,
``blank_id == 0`` (reserved for the CTC blank / padding, never produced by ``encode``), ``save``/``load``.

* `CharTokenizer`: one id per character seen in the training text (space included), plus
  ``<blank>`` = 0 and ``<unk>`` = 1 for characters never seen.
* `SentencePieceTokenizer`: subwords from the unigram language model (Kudo, 2018, "Subword
  regularization") or byte-pair encoding (Sennrich et al., 2016), trained with the ``sentencepiece``
  library (Kudo & Richardson, 2018); ids 0–3 are ``<blank>`` (SentencePiece's pad), ``<unk>``,
  ``<s>`` (``bos_id``) and ``</s>`` (``eos_id``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

BLANK = "<blank>"
UNK = "<unk>"


def _check_ids(ids: Sequence[int], vocab_size: int) -> None:
    for i in ids:
        if not 0 <= int(i) < vocab_size:
            raise ValueError(f"token id {int(i)} out of range [0, {vocab_size})")


class CharTokenizer:
    """Character tokenizer with ``blank_id = 0`` and ``unk_id = 1``.

    Args:
        chars: the characters, in id order starting at id 2 (duplicates and the reserved names rejected).
    """

    blank_id = 0
    unk_id = 1

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"every entry of chars must be a single character, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct")
        self.chars = chars
        self._ids = {c: i + 2 for i, c in enumerate(chars)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        """All characters that occur in ``texts``, sorted by code point."""
        seen: set[str] = set()
        for t in texts:
            seen.update(t)
        if not seen:
            raise ValueError("cannot build a tokenizer from empty text")
        return cls(sorted(seen))

    @classmethod
    def for_languages(cls, languages: Iterable[str] = ("en", "fr", "de", "es", "it", "pt")) -> CharTokenizer:
        """Every character the generated corpus can produce in ``languages`` and in English (its
        translations), so that the vocabulary does not depend on the corpus size or seed."""
        from zoo.data.text import vocabulary

        words: list[str] = []
        for lang in {*languages, "en"}:
            words += vocabulary(lang)
        return cls.from_texts([" ".join(words)])

    @classmethod
    def from_corpus(cls, corpus_dir: str | Path) -> CharTokenizer:
        """The tokenizer saved beside a built corpus (``tokenizers/char.json``)."""
        return cls.load(Path(corpus_dir) / "tokenizers" / "char.json")

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 2

    @property
    def tokens(self) -> list[str]:
        """Token strings in id order (``tokens[0] == "<blank>"``)."""
        return [BLANK, UNK, *self.chars]

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text`` (unknown characters → ``unk_id``)."""
        return [self._ids.get(c, self.unk_id) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``: blanks are skipped, ``unk_id`` decodes to ``"?"``; ``ValueError`` for ids
        out of range. (No CTC collapsing here: merge repeats before decoding.)"""
        ids = [int(i) for i in ids]
        _check_ids(ids, self.vocab_size)
        return "".join("?" if i == self.unk_id else self.chars[i - 2] for i in ids if i != self.blank_id)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps({"type": "char", "chars": self.chars}, ensure_ascii=False))
        return p

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no tokenizer at {p}")
        d = json.loads(p.read_text())
        if d.get("type") != "char":
            raise ValueError(f"{p} is not a character tokenizer")
        return cls(d["chars"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class SentencePieceTokenizer:
    """A SentencePiece model with ``blank_id = 0`` (pad), ``unk_id = 1``, ``bos_id = 2``, ``eos_id = 3``.

    Build one with `train()` or `load()` (a ``.model`` file).
    """

    blank_id = 0
    unk_id = 1
    bos_id = 2
    eos_id = 3

    def __init__(self, model_file: str | Path) -> None:
        import sentencepiece as spm

        p = Path(model_file)
        if not p.is_file():
            raise FileNotFoundError(f"no SentencePiece model at {p}")
        self.model_file = p
        self.sp = spm.SentencePieceProcessor(model_file=str(p))
        if self.sp.pad_id() != 0 or self.sp.unk_id() != 1 or self.sp.bos_id() != 2 or self.sp.eos_id() != 3:
            raise ValueError(
                f"{p} was not trained with pad=0, unk=1, bos=2, eos=3 (use SentencePieceTokenizer.train)"
            )

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        model_type: str = "unigram",
        out_dir: str | Path = ".",
        name: str | None = None,
        character_coverage: float = 1.0,
    ) -> SentencePieceTokenizer:
        """Train on ``texts`` and save ``<out_dir>/<name>.model`` (default name ``spm_<type>_<vocab>``).

        ``vocab_size`` counts the four special ids. Training is deterministic (one thread, no sampling
        of the input).
        """
        import sentencepiece as spm

        if model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
        lines = [t for t in texts if t.strip()]
        if not lines:
            raise ValueError("cannot train a SentencePiece model on empty text")
        if vocab_size < 8:
            raise ValueError(f"vocab_size must be >= 8, got {vocab_size}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        prefix = out / (name or f"spm_{model_type}_{vocab_size}")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,
            pad_piece=BLANK,
            num_threads=1,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            hard_vocab_limit=False,
            minloglevel=2,
        )
        return cls(f"{prefix}.model")

    @classmethod
    def load(cls, path: str | Path) -> SentencePieceTokenizer:
        return cls(path)

    @property
    def vocab_size(self) -> int:
        return int(self.sp.get_piece_size())

    @property
    def tokens(self) -> list[str]:
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        _check_ids(ids, self.vocab_size)
        return str(self.sp.decode([i for i in ids if i not in (self.blank_id, self.bos_id, self.eos_id)]))

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_bytes(self.model_file.read_bytes())
        return p

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer({self.model_file.name}, vocab_size={self.vocab_size})"


def corpus_tokenizer(
    corpus_dir: str | Path,
    kind: str = "char",
    vocab_size: int = 256,
    field: str = "transcript",
    splits: Sequence[str] = ("labelled", "unlabelled"),
) -> CharTokenizer | SentencePieceTokenizer:
    """The tokenizer of a built corpus, trained on its ``field`` texts of ``splits`` and cached in
    ``<corpus>/tokenizers/`` (``kind``: ``"char"``, ``"unigram"`` or ``"bpe"``)."""
    from zoo.data.manifest import read_manifest

    root = Path(corpus_dir)
    if kind == "char":
        return CharTokenizer.from_corpus(root)
    if kind not in ("unigram", "bpe"):
        raise ValueError(f"kind must be 'char', 'unigram' or 'bpe', got {kind!r}")
    name = f"spm_{kind}_{vocab_size}_{field}"
    path = root / "tokenizers" / f"{name}.model"
    if path.is_file():
        return SentencePieceTokenizer(path)
    texts = [getattr(u, field) for u in read_manifest(root) if u.split in splits]
    return SentencePieceTokenizer.train(texts, vocab_size, kind, root / "tokenizers", name=name)
