"""Readers for LibriSpeech and CoVoST-style TSVs, on tiny fixtures written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from zoo.data import AudioError, load_audio, read_covost_tsv, read_librispeech


def tone(n: int, sr: int = 16000) -> np.ndarray:
    return (0.1 * np.sin(2 * np.pi * 220 * np.arange(n) / sr)).astype(np.float32)


@pytest.fixture
def libri(tmp_path: Path) -> Path:
    root = tmp_path / "LibriSpeech"
    lines = {("19", "198"): ["NORTHANGER ABBEY", "THIS LITTLE WORK WAS FINISHED"], ("84", "121"): ["HELLO"]}
    for (spk, ch), texts in lines.items():
        d = root / "dev-clean" / spk / ch
        d.mkdir(parents=True)
        trans = []
        for k, t in enumerate(texts):
            uid = f"{spk}-{ch}-{k:04d}"
            sf.write(d / f"{uid}.flac", tone(8000 + 1600 * k), 16000, subtype="PCM_16")
            trans.append(f"{uid} {t}")
        (d / f"{spk}-{ch}.trans.txt").write_text("\n".join(trans) + "\n")
    return root


def test_librispeech(libri: Path) -> None:
    utts = read_librispeech(libri)
    assert [u.id for u in utts] == ["19-198-0000", "19-198-0001", "84-121-0000"]
    u = utts[1]
    assert u.transcript == "this little work was finished" and u.translation == u.transcript
    assert u.voice == "19" and u.domain == "librispeech:dev-clean" and u.language == "en"
    assert u.duration == pytest.approx(9600 / 16000) and u.num_samples == 9600
    np.testing.assert_allclose(load_audio(u.path), tone(9600), atol=1 / 32768)
    assert len(read_librispeech(libri, "dev-clean", split="test")) == 3


def test_librispeech_errors(libri: Path, tmp_path: Path) -> None:
    (libri / "dev-clean" / "84" / "121" / "84-121-0000.flac").unlink()
    with pytest.raises(AudioError, match="utterance '84-121-0000'"):
        read_librispeech(libri)
    with pytest.raises(FileNotFoundError):
        read_librispeech(tmp_path / "empty")
    (libri / "dev-clean" / "19" / "198" / "19-198.trans.txt").write_text("19-198-0000\n")
    with pytest.raises(ValueError, match=r"19-198.trans.txt:1: expected"):
        read_librispeech(libri)


def test_covost(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    for name, n in (("a.wav", 4000), ("b.wav", 6000)):
        sf.write(clips / name, tone(n), 16000)
    tsv = tmp_path / "covost_v2.fr_en.dev.tsv"
    tsv.write_text(
        "path\tsentence\ttranslation\tclient_id\n"
        "a.wav\tBonjour, le monde !\tHello, world!\tspk1\n"
        "b.wav\tVingt-trois\tTwenty-three\tspk2\n"
    )
    utts = read_covost_tsv(tsv, "fr", split="dev")
    assert [(u.id, u.transcript, u.translation, u.voice) for u in utts] == [
        ("a", "bonjour le monde", "hello world", "spk1"),
        ("b", "vingt trois", "twenty three", "spk2"),
    ]
    assert utts[1].duration == pytest.approx(6000 / 16000) and utts[0].split == "dev"
    bad = tmp_path / "bad.tsv"
    bad.write_text("path\tsentence\na.wav\tx\n")
    with pytest.raises(ValueError, match="missing column.*translation"):
        read_covost_tsv(bad, "fr")
    (clips / "b.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(AudioError, match="utterance 'b'"):
        read_covost_tsv(tsv, "fr")


def test_truncated_wav_detected(tmp_path: Path) -> None:
    p = tmp_path / "t.wav"
    sf.write(p, tone(16000), 16000, subtype="PCM_16")
    p.write_bytes(p.read_bytes()[:20000])
    with pytest.raises(AudioError, match="t.wav"):
        load_audio(p, expected_samples=16000)
