"""Readers for real corpora in their standard layouts, returning [`Utterance`][zoo.data.Utterance] lists.

* LibriSpeech (Panayotov et al., 2015): ``<root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``
  with lines ``<utt id> <TRANSCRIPT>`` and one ``<utt id>.flac`` per line. Audio is probed with
  ``soundfile`` (never ``torchaudio.load``, which needs torchcodec).
* CoVoST 2 (Wang et al., 2020): a tab-separated file with a header holding at least ``path``,
  ``sentence`` (source transcript) and ``translation``; ``client_id`` (speaker) is optional; ``path`` is
  relative to ``clips_dir`` (default: the ``clips`` folder beside the TSV).

Transcripts and translations are normalised with [`zoo.data.normalize()`][zoo.data.normalize].
"""

from __future__ import annotations

import csv
from pathlib import Path

from zoo.data.audio import AudioError, audio_info
from zoo.data.manifest import SPLITS, Utterance
from zoo.data.text import normalize


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def _probe(path: Path, item: str) -> tuple[int, int]:
    try:
        return audio_info(path)
    except AudioError as e:
        raise AudioError(f"utterance {item!r}: {e}") from None


def read_librispeech(root: str | Path, subset: str | None = None, split: str = "labelled") -> list[Utterance]:
    """Read a LibriSpeech tree (``root`` or ``root/subset``); every utterance gets ``split``.

    ``domain`` is ``"librispeech:<subset>"`` and ``voice`` the speaker id. Raises ``FileNotFoundError`` when
    no transcript file is found, ``ValueError`` naming the file and line for a malformed transcript line
    and [`AudioError`][zoo.data.AudioError] naming the utterance when its flac is missing or unreadable.
    """
    _check_split(split)
    base = Path(root) / subset if subset else Path(root)
    trans = sorted(base.rglob("*.trans.txt"))
    if not trans:
        raise FileNotFoundError(f"no LibriSpeech *.trans.txt files under {base}")
    out = []
    for t in trans:
        sub = subset or (t.parents[2].name if len(t.parents) > 2 else base.name)
        for n, line in enumerate(t.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(" ", 1)
            if len(parts) != 2 or not parts[1].strip():
                raise ValueError(f"{t}:{n}: expected '<utterance id> <transcript>', got {line!r}")
            uid, text = parts
            speaker = uid.split("-")[0]
            audio = t.parent / f"{uid}.flac"
            sr, frames = _probe(audio, uid)
            tx = normalize(text)
            out.append(
                Utterance(
                    id=uid,
                    path=str(audio),
                    duration=frames / sr,
                    language="en",
                    domain=f"librispeech:{sub}",
                    voice=speaker,
                    transcript=tx,
                    translation=tx,
                    split=split,
                    sample_rate=sr,
                    num_samples=frames,
                    kind="read",
                    spoken=text,
                    engine="librispeech",
                )
            )
    return out


def read_covost_tsv(
    tsv: str | Path,
    language: str,
    clips_dir: str | Path | None = None,
    split: str = "labelled",
    check_audio: bool = True,
) -> list[Utterance]:
    """Read a CoVoST-style TSV (source language ``language``, translations into English).

    ``domain`` is ``"covost:<language>"``, ``voice`` the ``client_id`` (or ``"unknown"``). With
    ``check_audio`` every clip is probed with soundfile (duration, rate); otherwise durations are 0.
    Raises ``ValueError`` naming the file and the missing column / the row with an empty field.
    """
    _check_split(split)
    p = Path(tsv)
    if not p.is_file():
        raise FileNotFoundError(f"no TSV file at {p}")
    clips = Path(clips_dir) if clips_dir is not None else p.parent / "clips"
    out = []
    with open(p, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in ("path", "sentence", "translation") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{p}: missing column(s) {', '.join(missing)} (header: {reader.fieldnames})")
        for n, row in enumerate(reader, 2):
            rel = (row.get("path") or "").strip()
            if not rel:
                raise ValueError(f"{p}:{n}: empty 'path'")
            uid = Path(rel).stem
            src, tgt = normalize(row.get("sentence") or ""), normalize(row.get("translation") or "")
            if not src:
                raise ValueError(f"{p}:{n}: utterance {uid!r} has an empty 'sentence'")
            audio = clips / rel
            sr, frames = _probe(audio, uid) if check_audio else (16000, 0)
            out.append(
                Utterance(
                    id=uid,
                    path=str(audio),
                    duration=frames / sr,
                    language=language,
                    domain=f"covost:{language}",
                    voice=(row.get("client_id") or "unknown").strip(),
                    transcript=src,
                    translation=tgt,
                    split=split,
                    sample_rate=sr,
                    num_samples=frames,
                    kind="read",
                    spoken=row.get("sentence") or "",
                    engine="covost",
                )
            )
    return out
