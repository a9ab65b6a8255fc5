"""The optional Festival engine: absent → never used; present (a stand-in text2wave here) → extra domains."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.data import CorpusConfig, build_corpus, load_audio, read_manifest
from zoo.data import festival as F

FAKE = r"""
# Stand-in for `festival --batch script.scm`: for each utt.save.wave in the script, writes a 0.5 s tone
# whose pitch encodes the voice; logs the voice and stretch of each utterance.
import os, re, sys, numpy as np, soundfile as sf
script = open(sys.argv[sys.argv.index("--batch") + 1]).read()
voice = re.search(r"\(voice_(\w+)\)", script).group(1)
f0 = 150.0 if "kal" in voice else 220.0
t = np.arange(8000) / 16000
for stretch, path in re.findall(r"Duration_Stretch ([0-9.]+)\).*?\"([^\"]+)\" 'riff", script):
    if os.environ.get("FAKE_FESTIVAL_LOG"):
        open(os.environ["FAKE_FESTIVAL_LOG"], "a").write(f"{voice} {stretch}\n")
    sf.write(path, 0.3 * np.sin(2 * np.pi * f0 * t), 16000)
"""

CFG = CorpusConfig(name="unit-fest", n_utterances=24, languages=("en",), shard_size=12,
                   split_weights=(0.4, 0.3, 0.0, 0.3), festival_share=0.5)  # fmt: skip


@pytest.fixture
def fake_festival(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "text2wave"
    exe.write_text("#!/bin/sh\nexit 1\n")  # only its presence matters: festival beside it is run
    exe.chmod(0o755)
    fest = bindir / "festival"
    fest.write_text(f"#!{sys.executable}" + FAKE)
    fest.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("ZOO_FESTIVAL_VOICES", "kal_diphone,rab_diphone")
    F.festival_voices.cache_clear()
    yield exe
    F.festival_voices.cache_clear()


def test_absent_festival_is_never_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no text2wave anywhere
    assert not F.festival_available()
    with pytest.raises(RuntimeError, match="not installed"):
        F.synthesize_festival("hello", "kal_diphone")
    root = build_corpus(CFG, out=tmp_path / "c", seed=0, workers=1, progress=False)
    assert {u.engine for u in read_manifest(root)} == {"espeak-ng"}


def test_festival_domains_and_held_out_voice(fake_festival: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKE_FESTIVAL_LOG", str(log))
        wav = F.synthesize_festival("hello there", "kal_diphone", 16000, stretch=1.25)
    assert len(wav) == 8000
    assert log.read_text().strip() == "kal_diphone 1.2500"
    root = build_corpus(CFG, out=tmp_path / "c", seed=0, workers=1, progress=False)
    utts = read_manifest(root)
    fest = [u for u in utts if u.engine == "festival"]
    assert fest and len(fest) < len(utts)
    for u in fest:
        assert u.domain.startswith("en:festival-") and u.voice.startswith("festival+")
        # the last voice (sorted) is held out for the test split
        assert (u.voice == "festival+rab_diphone") == (u.split == "test")
        assert np.abs(load_audio(u.path)).max() > 0.01
    # eSpeak utterances have the same plan as in a corpus without Festival (independent random streams);
    # samples may differ slightly since eSpeak's vocoder phase carries over between calls in a shard
    plain = build_corpus(
        CorpusConfig(**{**CFG.__dict__, "festival_share": 0.0}), out=tmp_path / "p", seed=0, workers=1,
        progress=False,
    )  # fmt: skip
    by_id = {u.id: u for u in read_manifest(plain)}
    for u in utts:
        if u.engine == "espeak-ng":
            v = by_id[u.id]
            assert (u.transcript, u.domain, u.split, u.augment) == (
                v.transcript,
                v.domain,
                v.split,
                v.augment,
            )
            assert abs(u.num_samples - v.num_samples) <= 0.01 * v.num_samples  # at most a glottal period


needs_festival = pytest.mark.skipif(
    not F.festival_available() or not F.festival_voices(),
    reason="Festival (text2wave and a voice) is not installed; .ci/run installs it where apt-get can",
)


@needs_festival
def test_a_festival_test_split_renders_is_cached_and_repairs_bit_exactly(tmp_path: Path) -> None:
    from zoo.data import verify_corpus

    F.festival_voices.cache_clear()
    cfg = CorpusConfig(name="unit-fest-test", n_utterances=6, languages=("en",), shard_size=6,
                       split_weights=(0, 0, 0, 1), engine="festival", kind_weights=(1, 0, 1, 1))  # fmt: skip
    root = build_corpus(cfg, out=tmp_path / "f", seed=0, workers=1, progress=False)
    utts = read_manifest(root)
    assert len(utts) == 6 and {u.engine for u in utts} == {"festival"} and {u.split for u in utts} == {"test"}
    for u in utts:
        assert np.abs(load_audio(u.path)).max() > 0.01
    stamp = [Path(u.path).stat().st_mtime_ns for u in utts]
    assert build_corpus(cfg, out=tmp_path / "f", seed=0, workers=1, progress=False) == root
    assert [Path(u.path).stat().st_mtime_ns for u in utts] == stamp  # reused, not rendered again
    assert verify_corpus(root).ok
    victim = Path(utts[3].path)
    victim.write_bytes(victim.read_bytes()[:-100] + bytes(100))  # same size, other content
    report = verify_corpus(root)
    assert report.repaired == [utts[3].id] and verify_corpus(root).ok  # re-rendered to the recorded hash


def test_festival_engine_is_english_only_and_named() -> None:
    with pytest.raises(ValueError, match="engine must be one of"):
        CorpusConfig(engine="mbrola")
    with pytest.raises(ValueError, match="speaks English only"):
        CorpusConfig(engine="festival", languages=("en", "fr"))


def test_a_festival_corpus_without_festival_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ZOO_FESTIVAL_VOICES", raising=False)
    F.festival_voices.cache_clear()
    try:
        cfg = CorpusConfig(name="nofest", n_utterances=2, languages=("en",), engine="festival")
        with pytest.raises(RuntimeError, match="rendered by Festival, which is not installed"):
            build_corpus(cfg, out=tmp_path / "x", seed=0, workers=1, progress=False)
    finally:
        F.festival_voices.cache_clear()
