"""The manifest: one JSON object per line, one line per utterance (`Utterance`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SPLITS: tuple[str, ...] = ("labelled", "unlabelled", "dev", "test")
REQUIRED_FIELDS: tuple[str, ...] = (
    "id",
    "path",
    "duration",
    "language",
    "domain",
    "voice",
    "transcript",
    "translation",
    "split",
)
MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class Utterance:
    """One utterance of a corpus.

    Attributes:
        id: unique id.
        path: absolute path of the audio file (the manifest stores it relative to the corpus directory).
        duration: seconds.
        language: ISO 639-1 code of the spoken language.
        domain: ``"<language>:<variant>:<rate class>:<channel>"`` for generated speech; the reader's choice
            for real corpora.
        voice: speaker id (for eSpeak, the voice name ``"<espeak language>+<variant>"``).
        transcript: normalised transcript (recognition target).
        translation: normalised English translation (X→en target; the transcript itself for English).
        split: ``"labelled"``, ``"unlabelled"``, ``"dev"`` or ``"test"``.
        sample_rate: Hz.
        num_samples: length in samples.
        variant: eSpeak voice variant (the simulated speaker across languages).
        rate_class: ``"slow"``, ``"normal"`` or ``"fast"``.
        channel: ``"clean"``, ``"noise"``, ``"telephone"`` or ``"reverb"``.
        kind: ``"number"``, ``"quantity"``, ``"sentence"`` (or the reader's name).
        spoken: text given to the synthesiser (unnormalised).
        engine: synthesiser (``"espeak-ng"``) or corpus name.
        augment: every perturbation parameter applied (rate, pitch, speed, VTLP, SNR, gain, ...).
        file_size: size of the audio file in bytes (0 = not recorded, e.g. by a real-corpus reader).
        sha256: SHA-256 of the audio file's bytes, hex ("" = not recorded). Generated corpora record both,
            so that a damaged file is found (see [`zoo.data.verify_corpus()`][zoo.data.verify_corpus]).
    """

    id: str
    path: str
    duration: float
    language: str
    domain: str
    voice: str
    transcript: str
    translation: str
    split: str
    sample_rate: int = 16000
    num_samples: int = 0
    variant: str = ""
    rate_class: str = ""
    channel: str = ""
    kind: str = ""
    spoken: str = ""
    engine: str = ""
    augment: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    file_size: int = 0
    sha256: str = ""

    def to_json(self, root: Path | None = None) -> str:
        """One manifest line; ``path`` is written relative to ``root`` when given."""
        d = asdict(self)
        if root is not None:
            try:
                d["path"] = os.path.relpath(self.path, root)
            except ValueError:  # different drive (Windows)
                pass
        return json.dumps(d, ensure_ascii=False, sort_keys=False)


_FIELD_TYPES = {f.name: f for f in fields(Utterance)}


def utterance_from_dict(d: Mapping[str, Any], root: Path | None = None, where: str = "") -> Utterance:
    """Build an `Utterance` from a manifest record; errors name the item and the missing field."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: manifest record must be a JSON object, got {type(d).__name__}")
    item = d.get("id", "<no id>")
    missing = [k for k in REQUIRED_FIELDS if k not in d]
    if missing:
        raise ValueError(f"{where}: utterance {item!r} lacks field(s) {', '.join(missing)}")
    if d["split"] not in SPLITS:
        raise ValueError(f"{where}: utterance {item!r} has unknown split {d['split']!r}; expected {SPLITS}")
    kw = {k: v for k, v in d.items() if k in _FIELD_TYPES}
    path = Path(str(kw["path"]))
    if root is not None and not path.is_absolute():
        path = root / path
    kw["path"] = str(path)
    kw["duration"] = float(kw["duration"])
    kw["augment"] = dict(kw.get("augment") or {})
    return Utterance(**kw)


def read_manifest(path_or_dir: str | Path) -> list[Utterance]:
    """Read a JSONL manifest (or ``<dir>/manifest.jsonl``); paths become absolute.

    Raises ``FileNotFoundError`` when there is no manifest and ``ValueError`` naming the line and the
    item for a malformed line or a line with a missing field.
    """
    p = Path(path_or_dir)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise FileNotFoundError(f"no manifest at {p} (build the corpus first: python -m zoo.data build)")
    root = p.parent
    out = []
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{i}: malformed manifest line ({e.msg})") from None
            out.append(utterance_from_dict(d, root, where=f"{p}:{i}"))
    return out


def write_manifest(utterances: Iterable[Utterance], path: str | Path) -> Path:
    """Write a JSONL manifest atomically (temporary file then rename); paths relative to its folder."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for u in utterances:
            f.write(u.to_json(p.parent) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    return p


def hours_by(utterances: Iterable[Utterance], key: str) -> dict[str, float]:
    """Total hours per value of the attribute ``key`` (e.g. ``"language"``, ``"domain"``, ``"split"``)."""
    out: dict[str, float] = {}
    for u in utterances:
        k = str(getattr(u, key))
        out[k] = out.get(k, 0.0) + u.duration / 3600
    return dict(sorted(out.items()))
