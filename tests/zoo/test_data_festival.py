"""The optional Festival engine: absent → never used; present (a stand-in text2wave here) → extra domains."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.data import CorpusConfig, build_corpus, load_audio, read_manifest
from zoo.data import festival as F

FAKE = """#!{python}
# Stand-in for Festival's text2wave: writes a 0.5 s tone whose pitch encodes the voice; logs its arguments.
import os, sys, numpy as np, soundfile as sf
args = sys.argv[1:]
out = args[args.index("-o") + 1]
setup = args[args.index("-eval") + 1]
if os.environ.get("FAKE_FESTIVAL_LOG"):
    open(os.environ["FAKE_FESTIVAL_LOG"], "a").write(setup + "\\n")
f0 = 150.0 if "kal" in setup else 220.0
t = np.arange(8000) / 16000
sf.write(out, 0.3 * np.sin(2 * np.pi * f0 * t), 16000)
"""

CFG = CorpusConfig(name="unit-fest", n_utterances=24, languages=("en",), shard_size=12,
                   split_weights=(0.4, 0.3, 0.0, 0.3), festival_share=0.5)  # fmt: skip


@pytest.fixture
def fake_festival(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "text2wave"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(0o755)
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
    assert log.read_text().strip() == "(begin (voice_kal_diphone) (Parameter.set 'Duration_Stretch 1.2500))"
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
