"""Corpus cache integrity: damaged, cut, stale and interrupted caches are found and repaired bit-exactly.

Every repair is compared byte for byte with a clean build of the same configuration (a path against itself:
the generator is deterministic, see zoo.data.synth), so "repaired" means "identical to never damaged".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bilevel._asserts import BadInput, assert_rejects
from zoo.data import CorpusConfig, build_corpus, read_manifest
from zoo.data.__main__ import main as cli
from zoo.data.corpus import verify_corpus
from zoo.data.integrity import SYNTHESIS_VERSION, StaleCorpusError, code_fingerprint, file_digest

ROOT = Path(__file__).resolve().parents[2]
CFG = CorpusConfig(
    name="verify", n_utterances=12, languages=("en",), shard_size=4, split_weights=(0.4, 0.2, 0.2, 0.2)
)
SEED = 5


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_corpus(CFG, out=tmp_path_factory.mktemp("clean") / "c", seed=SEED, workers=1, progress=False)


def corpus_bytes(root: Path) -> dict[str, bytes]:
    """Every file of a corpus except stats.json (which records build timings), by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "stats.json"
    }


def copy_of(clean: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "c"
    shutil.copytree(clean, dst)
    return dst


def test_manifest_records_size_and_hash_of_every_file(clean: Path) -> None:
    utts = read_manifest(clean)
    assert len(utts) == CFG.n_utterances
    for u in utts:
        assert file_digest(u.path) == (u.file_size, u.sha256)
    meta = json.loads((clean / "config.json").read_text())
    gen = meta["generator"]
    assert gen["synthesis"] == SYNTHESIS_VERSION and gen["package"] and gen["espeak-ng"]
    assert gen["espeakng-loader"] and "libsndfile" in meta["environment"]


def test_truncated_flac_is_repaired_on_load(clean: Path, tmp_path: Path) -> None:
    root = copy_of(clean, tmp_path)
    victim = Path(read_manifest(root)[6].path)  # third utterance of shard 1: two are replayed
    victim.write_bytes(victim.read_bytes()[:500])
    with pytest.warns(RuntimeWarning, match=r"1 damaged audio file\(s\): .*-000006 \(the file has 500 bytes"):
        build_corpus(CFG, out=root, seed=SEED, progress=False)
    assert corpus_bytes(root) == corpus_bytes(clean)


def test_cut_manifest_is_rewritten_on_load(clean: Path, tmp_path: Path) -> None:
    root = copy_of(clean, tmp_path)
    lines = (root / "manifest.jsonl").read_text().splitlines(keepends=True)
    (root / "manifest.jsonl").write_text("".join(lines[:5]))  # like 100 of 480 lines
    with pytest.warns(RuntimeWarning, match="manifest.jsonl rewritten"):
        build_corpus(CFG, out=root, seed=SEED, progress=False)
    assert len(read_manifest(root)) == CFG.n_utterances
    assert corpus_bytes(root) == corpus_bytes(clean)


def test_corrupt_flac_in_a_complete_shard_is_repaired_when_resuming(clean: Path, tmp_path: Path) -> None:
    root = copy_of(clean, tmp_path)
    (root / "manifest.jsonl").unlink()  # an interrupted build: the merge never happened
    (root / "stats.json").unlink()
    victim = Path(read_manifest(root / "shards" / "00002.jsonl")[1].path)
    victim.write_bytes(victim.read_bytes()[:-40])
    kept = (root / "shards" / "00000" / f"en-{0:06d}.flac").stat().st_mtime_ns
    build_corpus(CFG, out=root, seed=SEED, workers=1, progress=False)
    assert corpus_bytes(root) == corpus_bytes(clean)
    assert (root / "shards" / "00000" / f"en-{0:06d}.flac").stat().st_mtime_ns == kept  # not re-rendered


def test_verify_finds_same_size_corruption_and_repairs_exactly_it(
    clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_of(clean, tmp_path)
    utts = read_manifest(root)
    victim = Path(utts[9].path)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the content hash can tell
    victim.write_bytes(bytes(data))
    build_corpus(CFG, out=root, seed=SEED, progress=False)  # the cheap check cannot see it ...
    assert victim.read_bytes() == bytes(data)
    mtimes = {u.id: Path(u.path).stat().st_mtime_ns for u in utts}
    assert cli(["verify", str(root), "--no-repair"]) == 1  # ... verify can
    assert f"damaged: {utts[9].id}: the file's content hash differs" in capsys.readouterr().out
    assert victim.read_bytes() == bytes(data)
    assert cli(["verify", str(root)]) == 0
    assert "repaired: 1 utterance(s) re-rendered bit-exactly" in capsys.readouterr().out
    assert corpus_bytes(root) == corpus_bytes(clean)
    changed = [u.id for u in utts if Path(u.path).stat().st_mtime_ns != mtimes[u.id]]
    assert changed == [utts[9].id]  # exactly the damaged utterance was rendered again
    assert cli(["verify", str(root)]) == 0 and "intact" in capsys.readouterr().out


def test_a_repair_that_would_not_be_bit_exact_is_an_error(clean: Path, tmp_path: Path) -> None:
    root = copy_of(clean, tmp_path)
    shard = root / "shards" / "00001.jsonl"
    recs = [json.loads(line) for line in shard.read_text().splitlines()]
    recs[2]["sha256"] = "0" * 64  # as if the build's libraries had encoded another file
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
    victim = shard.parent / recs[2]["path"]
    victim.unlink()
    with pytest.raises(RuntimeError, match=r"re-rendering utterance 'en-000006' .* gives another file"):
        verify_corpus(root)
    assert not victim.exists() and not list(victim.parent.glob("*.repair-*"))  # nothing mixed in


def test_verify_report_and_errors(clean: Path, tmp_path: Path) -> None:
    report = verify_corpus(clean, repair=False)
    assert report.ok and report.utterances == CFG.n_utterances
    with pytest.raises(FileNotFoundError, match="no config.json"):
        verify_corpus(tmp_path)
    assert cli(["verify", str(tmp_path)]) == 2


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda g: {**g, "synthesis": g["synthesis"] - 1}, id="older synthesis code"),
        pytest.param(lambda g: {**g, "espeak-ng": "1.49.0"}, id="other eSpeak NG"),
        pytest.param(lambda g: {**g, "package": "0.0.1"}, id="other package version"),
        pytest.param(lambda g: None, id="no version recorded"),
    ],
)
def test_stale_generator_is_refused_and_rebuilt_on_request(clean: Path, tmp_path: Path, edit) -> None:
    root = copy_of(clean, tmp_path)
    meta = json.loads((root / "config.json").read_text())
    gen = edit(meta["generator"])
    if gen is None:
        del meta["generator"]
    else:
        meta["generator"] = gen
    (root / "config.json").write_text(json.dumps(meta))
    stray = root / "notes.txt"
    stray.write_text("mine")
    with pytest.raises(StaleCorpusError, match=r"another corpus generator .*rebuild"):
        build_corpus(CFG, out=root, seed=SEED, progress=False)
    with pytest.raises(StaleCorpusError, match="rebuild"):
        verify_corpus(root)
    assert cli(["build", "--preset", "tiny", "--out", str(root), "--quiet"]) == 2  # another config: refused
    build_corpus(CFG, out=root, seed=SEED, workers=1, progress=False, rebuild=True)
    assert stray.read_text() == "mine"  # rebuild removes only the corpus's own files
    stray.unlink()
    assert corpus_bytes(root) == corpus_bytes(clean)


def test_other_generator_code_under_the_same_version_warns(clean: Path, tmp_path: Path) -> None:
    root = copy_of(clean, tmp_path)
    meta = json.loads((root / "config.json").read_text())
    assert meta["generator"]["code"] == code_fingerprint() != "unavailable"
    meta["generator"]["code"] = "0123456789abcdef"
    (root / "config.json").write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning, match="other corpus-generation code .* bump .*SYNTHESIS_VERSION"):
        build_corpus(CFG, out=root, seed=SEED, progress=False)
    assert corpus_bytes(root) == {**corpus_bytes(clean), "config.json": corpus_bytes(root)["config.json"]}


def test_code_fingerprint_ignores_docstrings_and_comments(tmp_path: Path) -> None:
    from zoo.data.integrity import _code_of

    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text('"""Doc."""\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    b.write_text('"""Other doc."""\n\n\ndef f(x):  # a comment\n    return (x + 1)\n')
    c.write_text('"""Doc."""\ndef f(x):\n    return x + 2\n')
    assert _code_of(a) == _code_of(b) != _code_of(c)


_KILLED_BUILD = """
import sys
from zoo.data import CorpusConfig, build_corpus
cfg = CorpusConfig(name="verify", n_utterances=12, languages=("en",), shard_size=4,
                   split_weights=(0.4, 0.2, 0.2, 0.2))
build_corpus(cfg, out=sys.argv[1], seed=5, workers=1, progress=False)
"""


def test_build_killed_half_way_resumes_to_a_byte_identical_corpus(clean: Path, tmp_path: Path) -> None:
    root = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_BUILD, str(root)], cwd=ROOT, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 120
    try:
        while not (root / "shards" / "00000.jsonl").is_file():
            assert proc.poll() is None, "the build ended before it could be interrupted"
            assert time.monotonic() < deadline, "the build wrote no shard in 120 s"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the build and its pool worker, mid-way through shard 1
        proc.wait()
    assert not (root / "manifest.jsonl").exists(), "the build finished before it was killed"
    assert not (root / "shards" / "00002.jsonl").exists()
    build_corpus(CFG, out=root, seed=SEED, workers=1, progress=False)
    assert corpus_bytes(root) == corpus_bytes(clean)
    assert verify_corpus(root).ok


def _no_pool(*args: object, **kwargs: object) -> None:
    raise AssertionError("a worker pool was started for bad input")


BUILD_CASES = [
    ("negative seed", {"seed": -1}, r"seed must be >= 0"),
    ("float seed", {"seed": 1.5}, "seed must be an int"),
    ("zero workers", {"workers": 0}, "workers must be >= 1"),
    ("progress not a bool", {"progress": "yes"}, "progress must be a bool"),
    ("rebuild not a bool", {"rebuild": 1}, "rebuild must be a bool"),
    ("unknown preset", {"preset": "huge"}, "unknown corpus preset 'huge'"),
]


@pytest.mark.parametrize(("name", "kwargs", "match"), BUILD_CASES, ids=[c[0] for c in BUILD_CASES])
def test_build_rejects_bad_arguments_before_any_work(
    name: str, kwargs: dict[str, object], match: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zoo.data.synth

    monkeypatch.setattr(zoo.data.synth, "fresh_pool", _no_pool)
    out = tmp_path / "never"
    call = {"preset": CFG, "out": out, "progress": False, **kwargs}
    assert_rejects(BadInput(name, lambda: build_corpus(**call), (ValueError, TypeError), match))
    assert not out.exists()


CONFIG_CASES = [
    ("name", "", "name"),
    ("name", "a/b", "path separators"),
    ("n_utterances", 0, "n_utterances must be >= 1"),
    ("n_utterances", 2.0, "n_utterances must be an int"),
    ("languages", (), "languages"),
    ("languages", ("en", "en"), "languages must be distinct"),
    ("languages", ("xx",), "unknown language 'xx'"),
    ("variants", ("m1", "nobody"), "unknown eSpeak voice variant"),
    ("n_dev_voices", -1, "n_dev_voices must be >= 0"),
    ("n_test_voices", 40, "cannot hold out"),
    ("split_weights", (1.0, 1.0, 1.0), "split_weights must be a tuple of 4"),
    ("split_weights", (0.0, 0.0, 0.0, 0.0), "split_weights must have a positive sum"),
    ("split_weights", (1.0, -1.0, 1.0, 1.0), r"split_weights\[1\] must be >= 0"),
    ("kind_weights", (1.0, float("nan"), 1.0), r"kind_weights\[1\] must be finite"),
    ("channel_weights", (1.0, 1.0), "channel_weights must be a tuple of 4"),
    ("max_number", 1, "max_number must be >= 2"),
    ("rates", (), "rates must be a non-empty tuple"),
    ("rates", (("slow", 120),), r"rates\[0\] must be \(name, low wpm, high wpm\)"),
    ("rates", (("slow", 10, 20),), r"rates\[0\] \(words per minute\) low must be >= 80"),
    ("rates", (("slow", 200, 150),), r"rates\[0\] \(words per minute\) must satisfy"),
    ("pitch", (60, 40), "pitch must satisfy 0 <= low <= high <= 99"),
    ("pitch_range", (0, 120), "pitch_range must satisfy"),
    ("pitch", (10.5, 20), "pitch low must be an int"),
    ("snr_db", (30.0,), r"snr_db must be a \(low, high\) pair"),
    ("rt60", (0.0, 0.5), "rt60 low must be >= 0.05"),
    ("speed_factors", (), "speed_factors must be a non-empty tuple"),
    ("speed_factors", (0.9, 3.0), r"speed_factors\[1\] must be <= 2.0"),
    ("speed_prob", 1.5, "speed_prob must be <= 1.0"),
    ("vtlp_alpha", (0.5, 1.1), "vtlp_alpha low must be >= 0.7"),
    ("vtlp_prob", -0.1, "vtlp_prob must be >= 0.0"),
    ("gain_db", (3.0, -6.0), "gain_db must satisfy"),
    ("noise_floor_db", (-75.0, 0.0), "noise_floor_db must satisfy"),
    ("pad_s", (-0.1, 0.2), "pad_s low must be >= 0.0"),
    ("sample_rate", 8000, "sample_rate must be >= 8001"),
    ("sample_rate", 96000, "sample_rate must be <= 48000"),
    ("shard_size", 0, "shard_size must be >= 1"),
    ("festival_share", 1.5, "festival_share must be <= 1.0"),
]


@pytest.mark.parametrize(("field", "value", "match"), CONFIG_CASES, ids=lambda x: str(x)[:30])
def test_config_rejects_bad_fields_at_construction(field: str, value: object, match: str) -> None:
    assert_rejects(BadInput(field, lambda: CorpusConfig(**{field: value}), (ValueError, TypeError), match))


def test_config_accepts_json_lists() -> None:
    cfg = CorpusConfig(languages=["en"], rates=[["slow", 120, 150]])  # type: ignore[arg-type]
    assert cfg.languages == ("en",) and cfg.rates == (("slow", 120, 150),)
    assert hash(cfg) == hash(CorpusConfig(languages=("en",), rates=(("slow", 120, 150),)))
