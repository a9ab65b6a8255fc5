"""The generated audio-visual corpus: determinism, disjoint splits, unseen test combinations, ground truth
that matches the rendered frames and audio, cache reuse / verification / refusal, bad input."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.bilevel._asserts import BadInput, assert_rejects
from zoo.data.av import (
    AV_PRESETS,
    CLASSES,
    SHADES,
    AVCorpusConfig,
    DamagedCorpusError,
    av_config,
    build_av_corpus,
    generate_split,
    held_out,
    load_av_corpus,
    verify_av_corpus,
    word_bank,
)
from zoo.data.integrity import StaleCorpusError

CFG = replace(AV_PRESETS["av-tiny"], name="av-test", n_train=16, n_val=6, n_test=10)


@pytest.fixture(scope="module")
def bank() -> dict:
    return word_bank(CFG)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("av") / "corpus"
    build_av_corpus(CFG, seed=3, root=root, progress=False)
    return root


def test_split_is_deterministic_given_its_seed(bank: dict) -> None:
    a = generate_split(CFG, 5, "val", bank=bank)
    b = generate_split(CFG, 5, "val", bank=bank)
    c = generate_split(CFG, 6, "val", bank=bank)
    for name in ("frames", "audio", "labels", "masks", "boxes", "combos"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name  # same path, same ops: bit-exact
    assert not np.array_equal(a.frames, c.frames)


def test_splits_use_disjoint_seeds_and_differ(corpus_dir: Path) -> None:
    c = load_av_corpus(corpus_dir)
    seeds = {s: {tuple(x) for x in c.splits[s].seeds.tolist()} for s in c.splits}
    assert (
        not seeds["train"] & seeds["val"]
        and not seeds["train"] & seeds["test"]
        and not seeds["val"] & seeds["test"]
    )
    tr = c.splits["train"].audio
    for s in ("val", "test"):
        other = c.splits[s].audio
        # no clip of another split repeats a training clip (max |difference| far above int16 rounding)
        diffs = np.abs(tr[:, None, :4000] - other[None, :, :4000]).max(-1)
        assert diffs.min() > 1e-2


def test_test_split_holds_only_unseen_combinations(corpus_dir: Path) -> None:
    c = load_av_corpus(corpus_dir)

    def combos(split: str) -> np.ndarray:
        x = c.splits[split].combos.reshape(-1, 4)
        return x[x[:, 0] >= 0]

    tr, va, te = combos("train"), combos("val"), combos("test")
    assert all(held_out(*map(int, x)) for x in te)
    assert not any(held_out(*map(int, x)) for x in np.concatenate([tr, va]))
    assert not {tuple(x) for x in te.tolist()} & {tuple(x) for x in tr.tolist()}
    # every part of a test combination (class, quadrant, background, shade) is seen in training
    for j in range(4):
        assert set(te[:, j].tolist()) <= set(tr[:, j].tolist())


def test_ground_truth_matches_the_rendered_frames(corpus_dir: Path) -> None:
    s = load_av_corpus(corpus_dir).splits["train"]
    n_on = 0
    for i in range(len(s)):
        for k in range(CFG.frames):
            m = s.masks[i, k]
            if s.labels[i, k] < 0:
                assert not m.any() and (s.boxes[i, k] == -1).all() and (s.combos[i, k] == -1).all()
                continue
            n_on += 1
            cls, quadrant, _, shade = s.combos[i, k]
            assert cls == s.labels[i, k] and m.any()
            want = np.asarray(CLASSES[cls].rgb) * SHADES[shade]
            got = s.frames[i, k][m].astype(float).mean(0)
            assert np.abs(got - want).max() < 6.0  # pixel noise has sd 0.03·255 ≈ 7.7, mean over >= 10 pixels
            ys, xs = np.nonzero(m)
            assert tuple(s.boxes[i, k]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            cy, cx = ys.mean(), xs.mean()
            half = CFG.image_size / 2
            if not s.moving[i, k]:  # a still object's centre lies in its quadrant
                assert (cx >= half - 1) == (quadrant % 2 == 1) and (cy >= half - 1) == (quadrant >= 2)
    assert n_on > 20


def test_sounding_slots_are_louder_than_silent_ones(corpus_dir: Path) -> None:
    s = load_av_corpus(corpus_dir).splits["train"]
    per = CFG.num_samples // CFG.frames
    centre = per // 4  # a window around the slot centre, inside every event
    loud, quiet = [], []
    for i in range(len(s)):
        for k in range(CFG.frames):
            w = s.audio[i, k * per + per // 2 - centre // 2 : k * per + per // 2 + centre // 2]
            (loud if s.labels[i, k] >= 0 else quiet).append(float(np.sqrt(np.mean(w**2))))
    assert quiet and min(loud) > max(quiet)  # a spoken word may pause at the window
    assert np.median(loud) > 4 * np.median(quiet)


def test_cache_is_reused_verified_and_repaired(corpus_dir: Path, tmp_path: Path) -> None:
    before = json.loads((corpus_dir / "config.json").read_text())
    c1 = build_av_corpus(CFG, seed=3, root=corpus_dir, progress=False, verify=True)
    assert json.loads((corpus_dir / "config.json").read_text()) == before  # nothing regenerated
    assert verify_av_corpus(corpus_dir) == {}
    # a truncated file is refused on load and regenerated exactly by build
    p = corpus_dir / "test.npz"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedCorpusError, match="test"):
        load_av_corpus(corpus_dir)
    with pytest.warns(RuntimeWarning, match="regenerating"):
        c2 = build_av_corpus(CFG, seed=3, root=corpus_dir, progress=False)
    assert np.array_equal(c1.splits["test"].frames, c2.splits["test"].frames)
    assert np.array_equal(c1.splits["test"].audio, c2.splits["test"].audio)
    # same size, altered content: only the full hash check sees it
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    assert "hash" in verify_av_corpus(corpus_dir)["test"]
    with pytest.warns(RuntimeWarning):
        build_av_corpus(CFG, seed=3, root=corpus_dir, progress=False, verify=True)
    assert verify_av_corpus(corpus_dir) == {}


def test_stale_or_foreign_cache_is_refused(corpus_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    root.mkdir()
    for f in corpus_dir.iterdir():
        (root / f.name).write_bytes(f.read_bytes())
    meta = json.loads((root / "config.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    for f in corpus_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    with pytest.warns(RuntimeWarning, match="another config or seed"):
        c = build_av_corpus(CFG, seed=4, root=other, progress=False)
    assert c.seed == 4 and int(c.splits["train"].seeds[0, 0]) == 4
    meta["av_version"] = -1
    (root / "config.json").write_text(json.dumps(meta))
    with pytest.raises(StaleCorpusError, match="av_version"):
        load_av_corpus(root)
    with pytest.raises(StaleCorpusError):
        build_av_corpus(CFG, seed=3, root=root, progress=False)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_av_corpus(tmp_path / "nothing")


def test_features_are_normalised_log_mels(corpus_dir: Path) -> None:
    c = load_av_corpus(corpus_dir)
    x = c.features("train")
    assert tuple(x.shape) == (CFG.n_train, CFG.num_feature_frames, CFG.n_mels)
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-3  # normalised with train stats


CASES = [
    BadInput("no clips", lambda: AVCorpusConfig(n_train=0), ValueError, "n_train"),
    BadInput("too many classes", lambda: AVCorpusConfig(classes=99), ValueError, "classes"),
    BadInput("object too large", lambda: AVCorpusConfig(size=(4, 30)), ValueError, "size"),
    BadInput("positive noise level", lambda: AVCorpusConfig(noise_db=(-10.0, 3.0)), ValueError, "noise_db"),
    BadInput("bad fps", lambda: AVCorpusConfig(fps=0.0), ValueError, "fps"),
    BadInput("unknown preset", lambda: av_config("nope"), ValueError, "preset"),
    BadInput("unknown split", lambda: generate_split(CFG, 0, "dev", bank={}), ValueError, "split"),
    BadInput("negative seed", lambda: generate_split(CFG, -1, "train", bank={}), ValueError, "seed"),
    BadInput("unknown config field", lambda: AVCorpusConfig.from_dict({"colour": 1}), ValueError, "colour"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rejects_bad_input(case: BadInput) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_rejects(case)
