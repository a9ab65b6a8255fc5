"""The open-vocabulary ``name`` kind: faker's person names, deterministic, normalised, held-out names."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

from zoo.data import CorpusConfig
from zoo.data.corpus import plan_utterance
from zoo.data.integrity import generator_versions
from zoo.data.text import (
    HELD_OUT_SHARE,
    LANGUAGES,
    held_out_words,
    is_held_out,
    name_lists,
    normalize,
    random_phrase,
    vocabulary,
)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_names_are_deterministic_normalised_and_translate_to_themselves(lang: str) -> None:
    def draw(seed: int) -> list:
        return [random_phrase(lang, np.random.default_rng([seed, i]), kind="name") for i in range(20)]

    a, b = draw(7), draw(7)
    assert a == b and a != draw(8)
    first, last = name_lists(lang)
    assert len(first) >= 100 and len(last) >= 50
    for p in a:
        assert p.kind == "name" and p.transcript == normalize(p.spoken)
        # the two name words appear unchanged in the English target
        names = [w for w in p.transcript.split() if w in first or w in last]
        assert len(names) >= 2 and all(w in p.translation.split() for w in names)
        if lang == "en":
            assert p.translation == p.transcript


@pytest.mark.parametrize("lang", LANGUAGES)
def test_held_out_names_are_a_fixed_share_and_disjoint_from_seen(lang: str) -> None:
    first, last = name_lists(lang)
    words = first + last
    held = held_out_words(lang)
    share = len(held) / len(words)
    # a hash partition: binomial share, 5 standard deviations
    assert abs(share - HELD_OUT_SHARE) < 5 * (HELD_OUT_SHARE * (1 - HELD_OUT_SHARE) / len(words)) ** 0.5
    assert held == {w for w in words if is_held_out(w, lang)}
    rng = np.random.default_rng(0)
    for _ in range(100):
        seen = random_phrase(lang, rng, kind="name").transcript.split()
        novel = random_phrase(lang, rng, kind="name", names="held_out").transcript.split()
        assert not set(seen) & held
        assert sum(w in held for w in novel) == 2
    assert set(first) <= set(vocabulary(lang)) and set(last) <= set(vocabulary(lang))


def test_held_out_names_never_reach_the_training_splits() -> None:
    cfg = CorpusConfig(name="names", n_utterances=400, kind_weights=(0, 0, 0, 1.0), held_out_names=0.5)
    by_split: dict[str, list[str]] = {}
    for i in range(cfg.n_utterances):
        p = plan_utterance(cfg, 3, i)
        by_split.setdefault(p["split"], []).append((p["phrase"].language, p["phrase"].transcript))
    novel_test = 0
    for split, items in by_split.items():
        hits = sum(any(w in held_out_words(lang) for w in t.split()) for lang, t in items)
        if split == "test":
            novel_test = hits
        else:
            assert hits == 0, split
    assert 0 < novel_test < len(by_split["test"])


def test_kind_weights_of_three_mean_no_names_and_bad_lengths_are_named() -> None:
    old = CorpusConfig(kind_weights=(0.3, 0.3, 0.4))
    assert old.kind_weights == (0.3, 0.3, 0.4, 0.0)
    assert CorpusConfig.from_dict(old.to_dict()) == old
    with pytest.raises(ValueError, match="kind_weights must be a tuple of 4 weights"):
        CorpusConfig(kind_weights=(0.2, 0.2, 0.2, 0.2, 0.2))
    with pytest.raises(ValueError, match="kind_weights must be 4"):
        random_phrase("en", np.random.default_rng(0), kind_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="names must be"):
        random_phrase("en", np.random.default_rng(0), kind="name", names="all")
    with pytest.raises(ValueError, match="held_out_names"):
        CorpusConfig(held_out_names=1.5)


def test_the_faker_version_is_part_of_the_generator() -> None:
    assert generator_versions()["faker"] == importlib.metadata.version("faker")
