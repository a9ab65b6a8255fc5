"""Corpus build: determinism, cache reuse, resumption, splits, manifest round-trip, bad input, CLI."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from zoo.data import (
    CorpusConfig,
    SpeechDataset,
    Utterance,
    build_corpus,
    load_audio,
    read_manifest,
    write_manifest,
)
from zoo.data.__main__ import main as cli
from zoo.data.corpus import default_dir, plan_utterance, voice_splits
from zoo.data.tokenizers import CharTokenizer

CFG = CorpusConfig(
    name="unit", n_utterances=24, languages=("en", "fr"), shard_size=8, split_weights=(0.3, 0.3, 0.2, 0.2)
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_corpus(CFG, out=tmp_path_factory.mktemp("corpus"), seed=3, workers=2, progress=False)


def longest_zero_run(x: np.ndarray) -> int:
    z = np.concatenate([[0], (x == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(z))
    return int((edges[1::2] - edges[::2]).max(initial=0))


def audio_of(root: Path) -> dict[str, np.ndarray]:
    return {u.id: load_audio(u.path) for u in read_manifest(root)}


def test_layout_fields_and_levels(corpus: Path) -> None:
    utts = read_manifest(corpus)
    assert len(utts) == CFG.n_utterances
    assert (corpus / "config.json").is_file() and (corpus / "stats.json").is_file()
    assert len(list((corpus / "shards").glob("*.jsonl"))) == 3
    for u in utts:
        assert u.language in ("en", "fr") and u.transcript and u.translation
        assert u.domain == f"{u.language}:{u.variant}:{u.rate_class}:{u.channel}"
        assert u.voice.endswith("+" + u.variant) and u.engine == "espeak-ng"
        assert {"speed", "vtlp_alpha", "gain_db", "noise_floor_db", "rate_wpm", "pitch"} <= set(u.augment)
        wav = load_audio(u.path, 16000, expected_samples=u.num_samples)
        assert u.duration == pytest.approx(len(wav) / 16000, abs=1e-5)
        assert 0.3 < u.duration < 8.0
        assert 0.01 < np.abs(wav).max() <= 1.0
        assert longest_zero_run(wav) < 16  # a noise floor, never a run of exact digital silence
        if u.language == "en":
            assert u.translation == u.transcript


def test_voices_held_out(corpus: Path) -> None:
    utts = read_manifest(corpus)
    vs = voice_splits(CFG, 3)
    assert not set(vs["train"]) & set(vs["dev"]) and not set(vs["train"]) & set(vs["test"])
    assert not set(vs["dev"]) & set(vs["test"])
    for u in utts:
        pool = vs["train"] if u.split in ("labelled", "unlabelled") else vs[u.split]
        assert u.variant in pool
    assert {u.split for u in utts} == {"labelled", "unlabelled", "dev", "test"}


def test_manifest_round_trip(corpus: Path, tmp_path: Path) -> None:
    utts = read_manifest(corpus)
    (tmp_path / "shards").symlink_to(corpus / "shards")
    write_manifest(utts, tmp_path / "manifest.jsonl")
    again = read_manifest(tmp_path)
    assert [os.path.realpath(u.path) for u in again] == [os.path.realpath(u.path) for u in utts]
    assert [replace(u, path="") for u in again] == [replace(u, path="") for u in utts]
    assert [u.augment for u in again] == [u.augment for u in utts]


def test_deterministic_and_independent_of_workers(corpus: Path, tmp_path: Path) -> None:
    other = build_corpus(CFG, out=tmp_path / "again", seed=3, workers=1, progress=False)
    a, b = audio_of(corpus), audio_of(other)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # plans depend on (seed, index) only, not on the corpus size
    bigger = replace(CFG, n_utterances=100)
    assert plan_utterance(bigger, 3, 5)["phrase"] == plan_utterance(CFG, 3, 5)["phrase"]
    assert plan_utterance(CFG, 4, 5)["espeak_seed"] != plan_utterance(CFG, 3, 5)["espeak_seed"]


def test_reuse_and_resume(corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "c"
    build_corpus(CFG, out=root, seed=3, workers=1, progress=False)
    before = audio_of(root)
    mtime = (root / "manifest.jsonl").stat().st_mtime_ns
    assert build_corpus(CFG, out=root, seed=3, progress=False) == root
    assert (root / "manifest.jsonl").stat().st_mtime_ns == mtime  # reused, not rebuilt
    # simulate an interrupted build: shard 1 half written, a stray partial file, no final manifest
    (root / "manifest.jsonl").unlink()
    (root / "stats.json").unlink()
    (root / "shards" / "00001.jsonl").unlink()
    victim = sorted((root / "shards" / "00001").glob("*.flac"))[0]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated
    (root / "shards" / "00001" / "junk.flac.part").write_bytes(b"xx")
    untouched = (root / "shards" / "00000.jsonl").stat().st_mtime_ns
    build_corpus(CFG, out=root, seed=3, workers=1, progress=False)
    assert (root / "shards" / "00000.jsonl").stat().st_mtime_ns == untouched  # complete shards kept
    after = audio_of(root)
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in after)


def test_other_config_in_same_dir_is_refused(corpus: Path) -> None:
    with pytest.raises(ValueError, match="another configuration or seed"):
        build_corpus(CFG, out=corpus, seed=4, progress=False)


def test_char_tokenizer_saved_beside(corpus: Path) -> None:
    tok = CharTokenizer.from_corpus(corpus)
    for u in read_manifest(corpus):
        assert tok.decode(tok.encode(u.transcript)) == u.transcript
        assert tok.unk_id not in tok.encode(u.transcript + u.translation)


def test_bad_manifest_lines(tmp_path: Path) -> None:
    good = Utterance("a1", "x.flac", 1.0, "en", "d", "v", "one", "one", "labelled")
    p = tmp_path / "manifest.jsonl"
    d = json.loads(good.to_json())
    del d["transcript"]
    p.write_text(good.to_json() + "\n" + json.dumps({**d, "id": "b2"}) + "\n")
    with pytest.raises(ValueError, match=r"manifest.jsonl:2: utterance 'b2' lacks field\(s\) transcript"):
        read_manifest(p)
    p.write_text("{not json\n")
    with pytest.raises(ValueError, match="manifest.jsonl:1: malformed"):
        read_manifest(p)
    p.write_text(json.dumps({**json.loads(good.to_json()), "split": "train"}) + "\n")
    with pytest.raises(ValueError, match="'a1' has unknown split 'train'"):
        read_manifest(p)
    with pytest.raises(FileNotFoundError, match="no manifest"):
        read_manifest(tmp_path / "nowhere")


def test_unreadable_audio_names_the_item(corpus: Path, tmp_path: Path) -> None:
    u = read_manifest(corpus)[0]
    bad = tmp_path / "bad.flac"
    bad.write_bytes(Path(u.path).read_bytes()[:200])
    broken = replace(u, path=str(bad))
    ds = SpeechDataset([broken], None, CharTokenizer.from_corpus(corpus), lambda w: w[:, None])
    with pytest.raises(ValueError, match=f"utterance '{u.id}'"):
        ds[0]
    missing = replace(u, path=str(tmp_path / "gone.flac"))
    ds = SpeechDataset([missing], None, CharTokenizer.from_corpus(corpus), lambda w: w[:, None])
    with pytest.raises(ValueError, match=f"utterance '{u.id}'.*does not exist"):
        ds[0]


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="unknown corpus preset 'huge'"):
        build_corpus("huge", progress=False)
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        CorpusConfig(languages=("xx",))
    with pytest.raises(ValueError, match="unknown eSpeak voice variant"):
        CorpusConfig(variants=("m1", "nobody"))
    with pytest.raises(ValueError, match="cannot hold out"):
        CorpusConfig(variants=("m1", "m2"), n_dev_voices=1, n_test_voices=1)


def test_default_dir_and_cli(
    corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZOO_DATA_DIR", "/somewhere")
    assert default_dir("tiny", 7) == Path("/somewhere/tiny-seed7")
    assert cli(["stats", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "hours per language" in out and "en " in out and "hours per domain" in out


def test_config_json_round_trip(corpus: Path) -> None:
    assert CorpusConfig.from_dict(CFG.to_dict()) == CFG
    meta = json.loads((corpus / "config.json").read_text())
    assert CorpusConfig.from_dict(meta["config"]) == CFG and meta["seed"] == 3


def test_cli_build_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny"
    assert cli(["build", "--preset", "tiny", "--out", str(out), "--workers", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "120 utterances" in text and "hours per language" in text and "h of audio per second" in text
    utts = read_manifest(out)
    assert {u.language for u in utts} == {"en", "fr", "de", "es", "it", "pt"}
    assert 2.0 < sum(u.duration for u in utts) / 60 < 6.0  # "a few minutes of audio"
    assert cli(["build", "--preset", "tiny", "--out", str(out), "--seed", "1", "--quiet"]) == 2
    assert "another configuration or seed" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["en-quick", "en"])
def test_english_presets_plan_english_only_with_held_out_voices(name: str) -> None:
    from zoo.data.corpus import PRESETS, get_config

    config = get_config(name)
    assert config is PRESETS[name] and config.languages == ("en",)
    splits = voice_splits(config, 0)
    plans = [plan_utterance(config, 0, i) for i in range(60)]
    assert {p["voice"].language for p in plans} == {"en"}
    assert {p["split"] for p in plans} == {"labelled", "dev", "test"}  # no unlabelled split
    for p in plans:
        allowed = splits["train"] if p["split"] == "labelled" else splits[p["split"]]
        assert p["voice"].variant in allowed
