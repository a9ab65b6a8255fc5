"""``SpeechDataset`` and ``collate`` for CTC/attention training (batch them with
[`bilevel.sampling.BucketBatchSampler`][bilevel.sampling.BucketBatchSampler] over ``SpeechDataset.lengths``,
as [`zoo.training`][zoo.training] does).

Items are dictionaries ``{"id", "feats" (T, F) float32, "tokens" (U,) int64, "text", "language",
"domain", "split", "duration"}``. `collate()` pads features with zeros and tokens with 0 (the blank /
padding id of every tokenizer here) and returns lengths.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.data.audio import load_audio
from zoo.data.manifest import SPLITS, Utterance, read_manifest


class Tokenizer(Protocol):
    blank_id: int

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


def select(
    utts: Sequence[Utterance],
    split: str | Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    domains: Sequence[str] | None = None,
) -> list[Utterance]:
    """Utterances of ``split`` (one name or several), ``languages`` and ``domains`` (exact names or
    ``fnmatch`` patterns such as ``"en:*:*:clean"``); ``None`` keeps all."""
    splits = None if split is None else ({split} if isinstance(split, str) else set(split))
    if splits is not None:
        bad = splits - set(SPLITS)
        if bad:
            raise ValueError(f"unknown split(s) {sorted(bad)}; expected {', '.join(SPLITS)}")
    out = []
    for u in utts:
        if splits is not None and u.split not in splits:
            continue
        if languages is not None and u.language not in languages:
            continue
        if domains is not None and not any(
            u.domain == d or fnmatch.fnmatchcase(u.domain, d) for d in domains
        ):
            continue
        out.append(u)
    return out


class SpeechDataset(Dataset[dict[str, Any]]):
    """Utterances of a built corpus (or any manifest) as features and token ids.

    Args:
        corpus_dir: a corpus directory or manifest file, or a list of `Utterance`.
        split: ``"labelled"``, ``"unlabelled"``, ``"dev"``, ``"test"``, several of them, or ``None`` (all).
        tokenizer: anything with ``encode(str) -> list[int]`` (see `zoo.data.CharTokenizer`,
            `zoo.data.SentencePieceTokenizer`).
        features: a module mapping a waveform ``(N,)`` to ``(T, F)`` (e.g. [`LogMel`][zoo.data.LogMel]).
        languages: keep only these languages.
        domains: keep only these domains (exact or ``fnmatch`` patterns).
        target: ``"transcript"`` (recognition) or ``"translation"`` (X→en).
        cache: keep computed features in memory (computed lazily, or all at once with `precompute()`).
        transform: optional function applied to the features after the cache (e.g. SpecAugment).

    Raises ``ValueError`` naming the item for an utterance whose audio is missing, unreadable or truncated,
    and when the selection is empty.
    """

    def __init__(
        self,
        corpus_dir: str | Path | Sequence[Utterance],
        split: str | Sequence[str] | None,
        tokenizer: Tokenizer,
        features: Callable[[Tensor], Tensor],
        languages: Sequence[str] | None = None,
        domains: Sequence[str] | None = None,
        target: str = "transcript",
        cache: bool = False,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if target not in ("transcript", "translation"):
            raise ValueError(f"target must be 'transcript' or 'translation', got {target!r}")
        utts = list(corpus_dir) if not isinstance(corpus_dir, (str, Path)) else read_manifest(corpus_dir)
        self.utterances = select(utts, split, languages, domains)
        if not self.utterances:
            raise ValueError(
                f"no utterance matches split={split!r}, languages={languages!r}, domains={domains!r}"
            )
        self.tokenizer, self.features, self.target = tokenizer, features, target
        self.transform = transform
        self.cache = cache
        self._cache: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self.utterances)

    def feature_frames(self, i: int) -> int:
        """Frames of item ``i`` without computing it (from the manifest's sample count when possible)."""
        u = self.utterances[i]
        nf = getattr(self.features, "num_frames", None)
        n = u.num_samples or round(u.duration * u.sample_rate)
        return int(nf(n)) if callable(nf) else n // 160 + 1

    @property
    def lengths(self) -> list[int]:
        """Feature frames of every item, for
        [`bilevel.sampling.BucketBatchSampler`][bilevel.sampling.BucketBatchSampler]."""
        return [self.feature_frames(i) for i in range(len(self))]

    def waveform(self, i: int) -> Tensor:
        """The audio of item ``i`` as float32 ``(N,)``."""
        u = self.utterances[i]
        try:
            wav = load_audio(u.path, u.sample_rate, expected_samples=u.num_samples or None)
        except ValueError as e:
            raise ValueError(f"utterance {u.id!r}: {e}") from None
        return torch.from_numpy(wav)

    def _feats(self, i: int) -> Tensor:
        if self.cache and i in self._cache:
            return self._cache[i]
        with torch.no_grad():
            f = self.features(self.waveform(i)).float()
        if f.dim() != 2:
            raise ValueError(f"features must return (T, F) for one waveform, got shape {tuple(f.shape)}")
        if self.cache:
            self._cache[i] = f
        return f

    def precompute(self, progress: bool = False) -> SpeechDataset:
        """Compute and cache the features of every item now (turns caching on)."""
        from tqdm.auto import tqdm

        self.cache = True
        for i in tqdm(range(len(self)), desc="features", disable=not progress, leave=False):
            self._feats(i)
        return self

    def with_tokenizer(self, tokenizer: Tokenizer) -> SpeechDataset:
        """The same utterances with another ``tokenizer``, sharing this dataset's feature cache (the
        features do not depend on the targets' tokenizer)."""
        out = copy.copy(self)
        out.tokenizer = tokenizer
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        u = self.utterances[i]
        f = self._feats(i)
        if self.transform is not None:
            f = self.transform(f)
        text = u.transcript if self.target == "transcript" else u.translation
        return {
            "id": u.id,
            "feats": f,
            "tokens": torch.tensor(self.tokenizer.encode(text), dtype=torch.long),
            "text": text,
            "language": u.language,
            "domain": u.domain,
            "split": u.split,
            "duration": u.duration,
        }


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of items into a batch.

    Returns ``{"feats": (B, T, F) zero-padded, "feat_lens": (B,), "tokens": (B, U) padded with 0,
    "token_lens": (B,), "texts", "ids", "languages", "domains"}``.
    """
    if not items:
        raise ValueError("cannot collate an empty list of items")
    feats = [it["feats"] for it in items]
    toks = [it["tokens"] for it in items]
    dims = {f.shape[1] for f in feats}
    if len(dims) != 1:
        raise ValueError(f"items have different feature dimensions {sorted(dims)}")
    B, T, U = len(items), max(f.shape[0] for f in feats), max((t.numel() for t in toks), default=0)
    x = feats[0].new_zeros(B, T, feats[0].shape[1])
    y = torch.zeros(B, U, dtype=torch.long)
    for b, (f, t) in enumerate(zip(feats, toks)):
        x[b, : f.shape[0]] = f
        y[b, : t.numel()] = t
    return {
        "feats": x,
        "feat_lens": torch.tensor([f.shape[0] for f in feats], dtype=torch.long),
        "tokens": y,
        "token_lens": torch.tensor([t.numel() for t in toks], dtype=torch.long),
        "texts": [it["text"] for it in items],
        "ids": [it["id"] for it in items],
        "languages": [it.get("language", "") for it in items],
        "domains": [it.get("domain", "") for it in items],
    }
