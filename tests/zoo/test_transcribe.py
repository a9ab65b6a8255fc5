"""Transcribing users' audio files: reading at any rate and channel count, every model, the command line,
and bad input (files and checkpoints)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

import zoo.data
import zoo.training
from tests.bilevel._asserts import BadInput, assert_rejects
from zoo.data import AudioError, CharTokenizer, LogMel, read_audio, utterance_cmvn
from zoo.models import MODEL_NAMES, build_model
from zoo.transcribe import (
    INFERENCE_KEY,
    CheckpointError,
    FeatureSpec,
    load_recognizer,
    main,
    save_recognizer,
    split_points,
    transcribe,
)

ROOT = Path(__file__).resolve().parents[2]
TOK = CharTokenizer(list(" 'abcdefghijklmnopqrstuvwxyz"))


def tiny(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(name, "tiny", vocab_size=TOK.vocab_size, n_mels=80)


def speechlike(sr: int, seconds: float = 1.2, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A vowel-like buzz (120 Hz harmonics, formant-shaped) with a little noise, ``(N, channels)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = sum(
        np.sin(2 * np.pi * 120 * k * t) / k * np.exp(-(((120 * k - 700) / 500) ** 2)) for k in range(1, 30)
    )
    x = 0.3 * x / np.abs(x).max() * np.clip(t / 0.05, 0, 1)
    chans = [x + 0.01 * rng.standard_normal(len(t)) * (c + 1) for c in range(channels)]
    return np.stack(chans, 1).astype(np.float32)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    return {n: save_recognizer(d / f"{n}.pt", n, tiny(n), TOK) for n in MODEL_NAMES}


@pytest.fixture(scope="module")
def wav44(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("audio") / "stereo44k.wav"
    sf.write(p, speechlike(44100, channels=2), 44100, subtype="PCM_16")
    return p


def test_read_audio_downmixes_and_resamples(tmp_path: Path) -> None:
    sr, n = 44100, 44100
    t = np.arange(n) / sr
    left = 0.5 * np.sin(2 * np.pi * 1000 * t)
    p = tmp_path / "lr.wav"
    sf.write(p, np.stack([left, np.zeros(n)], 1).astype(np.float32), sr, subtype="FLOAT")
    clip = read_audio(p, 16000)
    assert (clip.sample_rate, clip.source_rate, clip.channels) == (16000, 44100, 2)
    assert len(clip.wav) == int(np.ceil(n * 16000 / sr))
    spec = np.abs(np.fft.rfft(clip.wav * np.hanning(len(clip.wav))))
    assert np.argmax(spec) * 16000 / len(clip.wav) == pytest.approx(1000, abs=2)
    # downmix = channel mean: a 0.5 tone on one channel gives 0.25 (resampler pass band: ±0.01 dB)
    rms = np.sqrt(np.mean(clip.wav[1000:-1000].astype(np.float64) ** 2))
    assert rms == pytest.approx(0.25 / np.sqrt(2), rel=2e-3)
    same = read_audio(p)  # no target rate: the file's own
    assert same.sample_rate == 44100 and np.allclose(same.wav, left / 2, atol=1e-6)


def test_transcript_equals_the_model_on_independently_computed_features(
    ckpts: dict[str, Path], wav44: Path
) -> None:
    row = transcribe(ckpts["conformer"], [wav44])[0]
    assert (row["sample_rate"], row["channels"], row["model"]) == (44100, 2, "conformer")
    assert row["duration"] == pytest.approx(1.2, abs=1e-3)
    # the same pipeline written out by hand: soundfile, channel mean, torchaudio resample, log-mel, CMVN
    data, sr = sf.read(wav44, dtype="float32", always_2d=True)
    wav = AF.resample(torch.from_numpy(data.mean(1)), sr, 16000)
    feats = utterance_cmvn(LogMel(16000, 80)(wav))
    model = tiny("conformer").eval()
    ids = model.transcribe(feats[None], torch.tensor([feats.shape[0]]))
    assert row["text"] == TOK.decode(ids[0])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_round_trips_and_transcribes(name: str, ckpts: dict[str, Path], tmp_path: Path) -> None:
    rec = load_recognizer(ckpts[name], expect_model=name)
    for k, v in tiny(name).state_dict().items():  # the weights come back exactly (a path against itself)
        assert torch.equal(rec.model.state_dict()[k], v), k
    assert rec.features == FeatureSpec(16000, 80, True) and rec.tokenizer.tokens == TOK.tokens
    p = tmp_path / "mono8k.flac"
    sf.write(p, speechlike(8000, seconds=0.8), 8000)
    row = transcribe(rec, [p])[0]
    assert row["model"] == name and row["sample_rate"] == 8000 and row["channels"] == 1
    assert row["text"] == rec.transcribe_wave(read_audio(p, 16000).wav)
    assert set(row["text"]) <= set(TOK.chars) | {"?"}


def test_run_folder_and_sentencepiece_tokenizer(tmp_path: Path, wav44: Path) -> None:
    from zoo.data import SentencePieceTokenizer

    words = "zero one two three four five six seven eight nine ten eleven twelve".split()
    texts = [" ".join(words[i : i + 4]) for i in range(len(words) - 3)] * 20
    sp = SentencePieceTokenizer.train(texts, 24, "unigram", tmp_path / "tok")
    torch.manual_seed(0)
    model = build_model("dota", "tiny", vocab_size=sp.vocab_size, n_mels=80)
    run = tmp_path / "run"
    save_recognizer(run / "checkpoint.pt", "dota", model, sp)
    rec = load_recognizer(run)  # a folder: finds checkpoint.pt
    assert rec.name == "dota" and rec.tokenizer.tokens == sp.tokens
    assert isinstance(transcribe(rec, [wav44])[0]["text"], str)


class _NoData:
    """A batch source stub: the checkpoint only needs its state."""

    def batch(self, step: int) -> None:
        return None

    def state_dict(self) -> dict[str, int]:
        return {"position": 0}

    def load_state_dict(self, state: dict[str, int]) -> None:
        pass


@pytest.mark.parametrize("layout", ["training checkpoint", "older run folder"])
def test_run_folder_without_model_pt_uses_the_cached_corpus_tokenizer(
    layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wav44: Path
) -> None:
    from zoo.training import TrainState, save_checkpoint

    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "cache"))
    tok_dir = tmp_path / "cache" / "en-quick-seed0" / "tokenizers"
    tok_dir.mkdir(parents=True)
    TOK.save(tok_dir / "char.json")
    run = tmp_path / "run"
    model = tiny("sar-ctc")
    if layout == "training checkpoint":  # a run in progress: the loop's checkpoint, no model.pt yet
        state = TrainState({"model": model}, {"model": torch.optim.SGD(model.parameters(), 0.1)}, _NoData())
        meta = {"recipe": "supervised", "model": "sar-ctc", "preset": "tiny", "corpus": "en-quick"}
        save_checkpoint(
            run / "checkpoint.pt", state, {**meta, "tokenizer": "char", "vocab_size": TOK.vocab_size}
        )
    else:  # checkpoint.pt beside report.json, as zoo.train wrote them before checkpoints had a meta
        run.mkdir()
        torch.save({"model": model.state_dict(), "progress": {"step": 3}}, run / "checkpoint.pt")
        info = {"model": "sar-ctc", "preset": "tiny", "corpus": "en-quick"}
        (run / "report.json").write_text(json.dumps(info))
    rec = load_recognizer(run)
    assert rec.name == "sar-ctc" and rec.tokenizer.tokens == TOK.tokens
    own = save_recognizer(tmp_path / "m.pt", "sar-ctc", model, TOK)
    assert transcribe(rec, [wav44])[0]["text"] == transcribe(own, [wav44])[0]["text"]
    (tok_dir / "char.json").unlink()
    with pytest.raises(CheckpointError, match="not in the cache"):
        load_recognizer(run)


def test_command_line_text_jsonl_and_output_file(
    ckpts: dict[str, Path], wav44: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = transcribe(ckpts["sar"], [wav44])[0]["text"]
    assert main([str(ckpts["sar"]), str(wav44)]) == 0
    assert capsys.readouterr().out == f"{wav44}\t{expected}\n"
    assert main([str(ckpts["sar"]), str(wav44), str(wav44), "--jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == [expected, expected]
    out = tmp_path / "out.jsonl"
    assert main([str(ckpts["sar"]), str(wav44), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["text"] == expected
    # a bad file: named on stderr, exit 1; --keep-going records it and goes on
    missing = tmp_path / "nope.wav"
    assert main([str(ckpts["sar"]), str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err
    assert main([str(ckpts["sar"]), str(missing), str(wav44), "--jsonl", "--keep-going"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "error" in rows[0] and rows[1]["text"] == expected
    # a checkpoint of another model: exit 2, named
    assert main([str(ckpts["sar"]), str(wav44), "--model", "conformer"]) == 2
    assert "holds a 'sar' model, not 'conformer'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(ckpts["sar"]), str(wav44), "--beam-size", "4"])  # SAR decodes greedily only


def test_python_m_zoo_transcribe_on_an_espeak_wav(ckpts: dict[str, Path], tmp_path: Path) -> None:
    """A file the corpus did not produce: eSpeak NG speech at 44.1 kHz stereo, 24-bit."""
    pytest.importorskip("espeakng_loader")
    from zoo.data import VoiceSpec, synthesize_here

    wav = synthesize_here("turn left at the second light", VoiceSpec("en", "f2"), 7, sample_rate=44100)
    p = tmp_path / "espeak.wav"
    sf.write(p, np.stack([wav, 0.8 * wav], 1), 44100, subtype="PCM_24")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "zoo.transcribe", str(ckpts["conformer"]), str(p), "--jsonl"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["sample_rate"] == 44100 and row["channels"] == 2
    assert row["duration"] == pytest.approx(len(wav) / 44100, abs=1e-3)
    assert row["text"] == transcribe(ckpts["conformer"], [p])[0]["text"]


def test_errors_record_keeps_going(ckpts: dict[str, Path], wav44: Path, tmp_path: Path) -> None:
    rows = transcribe(ckpts["conformer"], [tmp_path / "missing.flac", wav44], errors="record")
    assert "does not exist" in rows[0]["error"] and "text" in rows[1]


def _bad_files(tmp: Path) -> dict[str, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    text = tmp / "notes.wav"
    text.write_text("this is not audio\n")
    empty = tmp / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000)
    short = tmp / "short.wav"
    sf.write(short, np.zeros(100, np.float32), 16000)
    return {"text": text, "empty": empty, "short": short, "missing": tmp / "missing.wav", "dir": tmp}


def _bad_checkpoints(tmp: Path, good: Path) -> dict[str, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    trunc = tmp / "truncated.pt"
    trunc.write_bytes(good.read_bytes()[:5000])
    foreign = tmp / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    undescribed = tmp / "undescribed.pt"
    torch.save({"model": tiny("conformer").state_dict()}, undescribed)
    mixed = tmp / "mixed.pt"
    state = torch.load(good, weights_only=True)
    state["model"] = tiny("sar").state_dict()  # sar weights under a conformer description
    torch.save(state, mixed)
    unknown = tmp / "unknown.pt"
    state = torch.load(good, weights_only=True)
    state[INFERENCE_KEY] = {**state[INFERENCE_KEY], "model": "wav2vec"}
    torch.save(state, unknown)
    (tmp / "empty_run").mkdir(exist_ok=True)
    return {
        "truncated": trunc,
        "foreign": foreign,
        "undescribed": undescribed,
        "mixed": mixed,
        "unknown": unknown,
        "empty_run": tmp / "empty_run",
        "missing": tmp / "missing.pt",
    }


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, ckpts: dict[str, Path]) -> dict[str, dict[str, Path]]:
    d = tmp_path_factory.mktemp("bad")
    return {"file": _bad_files(d / "files"), "ckpt": _bad_checkpoints(d / "ckpts", ckpts["conformer"])}


# (name, which table, key, error, message regex; the path must appear in the message)
CASES = [
    ("missing audio", "file", "missing", AudioError, "does not exist"),
    ("not audio", "file", "text", AudioError, "cannot read audio file"),
    ("empty audio", "file", "empty", AudioError, "is empty"),
    ("too short", "file", "short", AudioError, "too short"),
    ("a folder as audio", "file", "dir", AudioError, "is not a file"),
    ("missing checkpoint", "ckpt", "missing", CheckpointError, "does not exist"),
    ("truncated checkpoint", "ckpt", "truncated", CheckpointError, "damaged"),
    ("not a zoo checkpoint", "ckpt", "foreign", CheckpointError, "not a zoo checkpoint"),
    ("no model description", "ckpt", "undescribed", CheckpointError, "does not describe its model"),
    ("weights of another model", "ckpt", "mixed", CheckpointError, "do not fit a 'conformer' model"),
    ("unknown model name", "ckpt", "unknown", CheckpointError, "unknown model 'wav2vec'"),
    ("run folder without checkpoint", "ckpt", "empty_run", CheckpointError, "holds no checkpoint"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_bad_input_names_the_file(
    case: tuple[str, str, str, type[Exception], str], bad: dict[str, dict[str, Path]], ckpts: dict[str, Path]
) -> None:
    name, table, key, error, match = case
    path = bad[table][key]
    if table == "file":
        call = lambda: transcribe(ckpts["conformer"], [path])  # noqa: E731
    else:
        call = lambda: load_recognizer(path)  # noqa: E731
    assert_rejects(BadInput(name, call, error, match))
    with pytest.raises(error) as info:
        call()
    assert str(path) in str(info.value)


API_CASES = [
    BadInput("errors option", lambda: transcribe(Path("x.pt"), [], errors="ignore"), ValueError, "errors"),
    BadInput("one path, not a list", lambda: transcribe(Path("x.pt"), "a.wav"), TypeError, "paths"),  # type: ignore[arg-type]
    BadInput("expect_model", lambda: load_recognizer("x.pt", expect_model="gpt"), ValueError, "expect_model"),
    BadInput("feature rate", lambda: FeatureSpec(sample_rate=0), ValueError, "sample_rate"),
    BadInput("read_audio rate", lambda: read_audio("x.wav", 16000.0), TypeError, "sample_rate"),  # type: ignore[arg-type]
    BadInput(
        "spec vocab",
        lambda: save_recognizer("/tmp/never.pt", "sar", tiny("sar"), CharTokenizer(["a"])),
        ValueError,
        "tokenizer",
    ),
    BadInput(
        "spec class",
        lambda: save_recognizer("/tmp/never.pt", "sar", tiny("conformer"), TOK),
        TypeError,
        "SAR",
    ),
    BadInput(
        "spec name", lambda: save_recognizer("/tmp/never.pt", "rnnt", tiny("sar"), TOK), ValueError, "name"
    ),
]


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.name)
def test_api_rejects_bad_arguments(case: BadInput) -> None:
    assert_rejects(case)


def test_other_model_is_refused(ckpts: dict[str, Path]) -> None:
    with pytest.raises(CheckpointError, match=r"holds a 'dota' model, not 'sar'") as info:
        load_recognizer(ckpts["dota"], expect_model="sar")
    assert str(ckpts["dota"]) in str(info.value)


def test_long_files_are_cut_at_pauses(ckpts: dict[str, Path], tmp_path: Path) -> None:
    sr = 16000
    # four 2.6 s "utterances" separated by 0.6 s of silence (plus a -80 dBFS floor)
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(4):
        parts += [speechlike(sr, 2.6)[:, 0], np.zeros(int(0.6 * sr), np.float32)]
    wav = np.concatenate(parts) + (1e-4 * rng.standard_normal(sum(map(len, parts)))).astype(np.float32)
    gaps = [(k * 3.2 + 2.6, k * 3.2 + 3.2) for k in range(4)]
    cuts = split_points(wav, sr, 3.0)
    assert len(cuts) == 3
    for c in cuts:  # every cut falls inside a pause
        assert any(a * sr < c < b * sr for a, b in gaps), c / sr
    p = tmp_path / "long.wav"
    sf.write(p, wav, sr, subtype="FLOAT")
    rec = load_recognizer(ckpts["conformer"])
    row = transcribe(rec, [p], chunk_seconds=3.0)[0]
    edges = [0, *cuts, len(wav)]
    assert row["chunks"] == [[round(a / sr, 3), round(b / sr, 3)] for a, b in itertools.pairwise(edges)]
    pieces = [rec.transcribe_wave(wav[a:b]) for a, b in itertools.pairwise(edges)]
    assert row["text"] == " ".join(t for t in pieces if t)
    assert "chunks" not in transcribe(rec, [p])[0]
    with pytest.raises(ValueError, match="chunk_seconds"):
        transcribe(rec, [p], chunk_seconds=0.5)


def test_feature_module_is_logmel_then_cmvn() -> None:
    wav = torch.from_numpy(speechlike(16000, 0.7)[:, 0])
    raw = LogMel(16000, 40)(wav)
    f = FeatureSpec(n_mels=40).build()
    out = f(wav)
    assert out.shape == (f.num_frames(len(wav)), 40) and f.dim == 40
    torch.testing.assert_close(out, utterance_cmvn(raw))  # same ops: equal
    torch.testing.assert_close(out.mean(0), torch.zeros(40), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(40), atol=1e-3, rtol=0)
    torch.testing.assert_close(FeatureSpec(n_mels=40, cmvn=False).build()(wav), raw)


def test_training_and_transcription_share_features_and_checkpoint_errors(tmp_path: Path) -> None:
    """One feature description and one checkpoint error for training and transcription: a damaged
    training checkpoint raises the very class that ``zoo.transcribe`` callers catch."""
    assert FeatureSpec is zoo.data.FeatureSpec and CheckpointError is zoo.training.CheckpointError
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.pt"):
        zoo.training.read_checkpoint(bad)
    with pytest.raises(zoo.training.CheckpointError, match="last.pt"):
        load_recognizer(bad)


ALSA = sorted(Path("/usr/share/sounds/alsa").glob("*.wav"))


@pytest.mark.skipif(not ALSA, reason="alsa-utils' recordings are not installed")
def test_human_recordings_of_alsa_utils(ckpts: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Recordings of a human voice at 48 kHz that ship with Debian's alsa-utils."""
    assert main([str(ckpts["conformer"]), *map(str, ALSA), "--jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in ALSA]
    for r, p in zip(rows, ALSA):
        info = sf.info(p)
        assert r["sample_rate"] == info.samplerate and r["duration"] == pytest.approx(info.duration, abs=1e-3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--chunk-seconds", "0.5"], "--chunk-seconds must be >= 1"),
        (["--device", "nowhere"], "--device"),
        (["--beam-size", "0"], "--beam-size must be >= 1"),
        (["--model", "rnnt"], "invalid choice: 'rnnt'"),
    ],
)
def test_command_line_usage_errors(
    extra: list[str], message: str, ckpts: dict[str, Path], wav44: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([str(ckpts["conformer"]), str(wav44), *extra])
    assert info.value.code == 2 and message in capsys.readouterr().err
