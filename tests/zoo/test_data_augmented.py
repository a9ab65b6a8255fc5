"""AugmentedCopies (training-time acoustic variety) and its wiring into supervised training."""

from __future__ import annotations

import pytest
import torch

from zoo.data import (
    AUGMENT_PRESETS,
    Augment,
    AugmentedCopies,
    CharTokenizer,
    CorpusConfig,
    LogMel,
    SpeechDataset,
    build_corpus,
    collate,
)
from zoo.recipes.supervised import SupervisedConfig, supervised_state

CFG = CorpusConfig(name="unit-aug", n_utterances=8, languages=("en",), shard_size=8)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> SpeechDataset:
    root = build_corpus(CFG, out=tmp_path_factory.mktemp("aug"), seed=2, workers=1, progress=False)
    return SpeechDataset(root, None, CharTokenizer.from_corpus(root), LogMel(n_mels=16))


def test_copies_are_a_pure_function_of_the_seed_and_keep_lengths_right(base: SpeechDataset) -> None:
    aug = AUGMENT_PRESETS["robust"]
    a = AugmentedCopies(base, aug, copies=2, seed=5)
    b = AugmentedCopies(base, aug, copies=2, seed=5)
    c = AugmentedCopies(base, aug, copies=2, seed=6)
    n = len(base)
    assert len(a) == 3 * n
    for j in range(len(a)):
        assert torch.equal(a[j]["feats"], b[j]["feats"])  # same path, same seed: bit-exact
    assert any(not torch.equal(a[j]["feats"], c[j]["feats"]) for j in range(n, 3 * n))
    # copy 0 is the clean set; copies carry the same text and a suffixed id
    for i in range(n):
        assert torch.equal(a[i]["feats"], base[i]["feats"]) and a[i]["id"] == base[i]["id"]
        assert a[n + i]["text"] == base[i]["text"] and a[n + i]["id"] == base[i]["id"] + "~aug1"
    # lengths follow the speed factor: frames of round(N / speed) samples, +-1 frame
    assert a.lengths == [a[j]["feats"].shape[0] for j in range(len(a))]
    for j in range(n, 3 * n):
        p, i = a.params[j - n], j % n
        expect = base.utterances[i].num_samples / p["speed"] / 160 + 1
        assert abs(a.lengths[j] - expect) <= 1.5
    batch = collate([a[j] for j in range(len(a))])
    assert batch["feats"].shape[0] == 3 * n and batch["feat_lens"].tolist() == a.lengths
    no_clean = AugmentedCopies(base, aug, copies=1, seed=5, keep_clean=False)
    assert len(no_clean) == n and torch.equal(no_clean[0]["feats"], a[n]["feats"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"base": [1, 2]}, TypeError, "base must be a zoo.data.SpeechDataset"),
        ({"augment": "robust"}, TypeError, "augment must be a zoo.data.Augment"),
        ({"copies": 0}, ValueError, "copies"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_arguments_are_named(base: SpeechDataset, kwargs: dict, error: type, match: str) -> None:
    args = {"base": base, "augment": Augment(speeds=(0.9,)), "copies": 1, "seed": 0, **kwargs}
    with pytest.raises(error, match=match):
        AugmentedCopies(**args)
    with pytest.raises(IndexError, match="out of range"):
        AugmentedCopies(base, Augment(speeds=(0.9,)), copies=1)[2 * len(base)]


def test_supervised_config_wires_the_augmentation(base: SpeechDataset) -> None:
    model = torch.nn.Linear(2, 2)
    state = supervised_state(
        model, base, collate, SupervisedConfig(augment="robust", augment_copies=1, seed=3)
    )
    assert len(state.data.dataset) == 2 * len(base)  # type: ignore[attr-defined]
    assert len(supervised_state(model, base, collate, SupervisedConfig()).data.dataset) == len(base)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="augment must be one of none, robust"):
        SupervisedConfig(augment="loud")
    with pytest.raises(TypeError, match="needs a zoo.data.SpeechDataset"):
        supervised_state(model, [base[0]], collate, SupervisedConfig(augment="robust"))
