"""SpeechDataset, collate and the length-bucketed batch sampler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from bilevel.sampling import BucketBatchSampler, ShuffledSampler
from zoo.data import (
    CharTokenizer,
    CorpusConfig,
    LogMel,
    SpeechDataset,
    build_corpus,
    collate,
    read_manifest,
)

CFG = CorpusConfig(name="unit-ds", n_utterances=16, languages=("en", "de"), shard_size=8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_corpus(CFG, out=tmp_path_factory.mktemp("ds"), seed=1, workers=2, progress=False)


def test_items_and_filters(corpus: Path) -> None:
    tok = CharTokenizer.from_corpus(corpus)
    feats = LogMel(n_mels=24)
    ds = SpeechDataset(corpus, ["labelled", "unlabelled", "dev", "test"], tok, feats)
    assert len(ds) == 16
    it = ds[0]
    u = read_manifest(corpus)[0]
    assert it["id"] == u.id and it["text"] == u.transcript
    assert it["feats"].shape == (feats.num_frames(u.num_samples), 24) and it["feats"].dtype == torch.float32
    assert tok.decode(it["tokens"].tolist()) == u.transcript
    assert ds.lengths == [ds[i]["feats"].shape[0] for i in range(len(ds))]
    en = SpeechDataset(corpus, None, tok, feats, languages=["en"])
    assert {en[i]["language"] for i in range(len(en))} == {"en"}
    clean = (
        SpeechDataset(corpus, None, tok, feats, domains=["*:*:*:clean"])
        if any(x.channel == "clean" for x in read_manifest(corpus))
        else None
    )
    if clean is not None:
        assert all(clean[i]["domain"].endswith(":clean") for i in range(len(clean)))
    tr = SpeechDataset(corpus, None, tok, feats, target="translation")
    assert tr[0]["text"] == u.translation
    with pytest.raises(ValueError, match="no utterance matches"):
        SpeechDataset(corpus, "dev", tok, feats, languages=["it"])
    with pytest.raises(ValueError, match="unknown split"):
        SpeechDataset(corpus, "train", tok, feats)


def test_with_tokenizer_shares_the_features_and_retokenizes(corpus: Path) -> None:
    chars = CharTokenizer.from_corpus(corpus)
    ds = SpeechDataset(corpus, None, chars, LogMel(n_mels=24), cache=True).precompute()

    class Upper:  # a second tokenizer: each character's code point
        def encode(self, text: str) -> list[int]:
            return [ord(c) for c in text]

    other = ds.with_tokenizer(Upper())
    assert other._cache is ds._cache and ds.tokenizer is chars  # a view: the original keeps its tokenizer
    for i in range(len(ds)):
        a, b = ds[i], other[i]
        assert a["feats"] is b["feats"]  # the very cached tensor, computed once
        assert b["tokens"].tolist() == [ord(c) for c in a["text"]]
        assert chars.decode(a["tokens"].tolist()) == a["text"]


def test_cache_gives_identical_features(corpus: Path) -> None:
    tok = CharTokenizer.from_corpus(corpus)
    a = SpeechDataset(corpus, None, tok, LogMel(n_mels=24))
    b = SpeechDataset(corpus, None, tok, LogMel(n_mels=24)).precompute()
    assert len(b._cache) == len(b)
    assert all(torch.equal(a[i]["feats"], b[i]["feats"]) for i in range(len(a)))


def test_collate_pads_and_reports_lengths(corpus: Path) -> None:
    tok = CharTokenizer.from_corpus(corpus)
    ds = SpeechDataset(corpus, None, tok, LogMel(n_mels=24))
    items = [ds[i] for i in range(5)]
    b = collate(items)
    T, U = max(i["feats"].shape[0] for i in items), max(len(i["tokens"]) for i in items)
    assert b["feats"].shape == (5, T, 24) and b["tokens"].shape == (5, U)
    for k, it in enumerate(items):
        n, m = it["feats"].shape[0], len(it["tokens"])
        assert b["feat_lens"][k] == n and b["token_lens"][k] == m
        assert torch.equal(b["feats"][k, :n], it["feats"]) and (b["feats"][k, n:] == 0).all()
        assert torch.equal(b["tokens"][k, :m], it["tokens"]) and (b["tokens"][k, m:] == 0).all()
    assert b["ids"] == [i["id"] for i in items] and b["texts"] == [i["text"] for i in items]
    loader = DataLoader(
        ds,
        batch_sampler=BucketBatchSampler(ShuffledSampler(len(ds), generator=0), ds.lengths, batch_size=4),
        collate_fn=collate,
    )
    assert sum(len(x["ids"]) for x in loader) == len(ds)
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_bucketing_the_lengths_through_bilevel_sampling_cuts_padding() -> None:
    """The zoo batches with bilevel.sampling (its own tests cover the sampler); here: on speech-like lengths
    every item comes once per epoch and padding waste is far below random batching."""
    lengths = list(torch.randint(1, 1000, (200,), generator=torch.Generator().manual_seed(0)).tolist())
    s = BucketBatchSampler(ShuffledSampler(200, generator=3), lengths, batch_size=10, pool_size=500)
    a = s.batches(0)
    assert sorted(i for b in a for i in b) == list(range(200)) and a == s.batches(0) != s.batches(1)
    waste = lambda bs: sum(len(x) * max(lengths[i] for i in x) - sum(lengths[i] for i in x) for x in bs)  # noqa: E731
    rand = [list(range(i, i + 10)) for i in range(0, 200, 10)]
    assert waste(a) < 0.5 * waste(rand)
