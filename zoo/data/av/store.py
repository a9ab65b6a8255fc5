"""Build, cache, load and verify a generated audio-visual corpus.

A corpus lives in ``$ZOO_DATA_DIR/<preset>-seed<seed>`` (default ``~/.cache/bilevel-zoo``): one
``<split>.npz`` per split and a ``config.json`` that records the `AVCorpusConfig`, the seed, the
generator's versions ([`AV_VERSION`][zoo.data.av.AV_VERSION] and the eSpeak NG versions of
``zoo.data.integrity.generator_versions``), the size and SHA-256 of every split file and the log-mel
normalisation. `build_av_corpus()` reuses a cache whose versions and config match, refuses one built by
another generator (`StaleCorpusError`, unless ``rebuild``) and regenerates exactly the split files that
are missing or damaged, and rebuilds a folder that holds another config or seed (splits are
independent: clip $i$ of a split is drawn from the seed
``(seed, split id, i)``). `load_av_corpus()` refuses a damaged cache (`DamagedCorpusError`);
`verify_av_corpus()` hashes every file.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from zoo.checks import check_int
from zoo.data.av.config import AV_VERSION, AVCorpusConfig, av_config
from zoo.data.av.scene import SPLIT_IDS, clip_rng, plan_clip, render_frames
from zoo.data.av.sound import render_audio, word_bank
from zoo.data.features import LogMel
from zoo.data.integrity import (
    StaleCorpusError,
    environment_versions,
    file_digest,
    generator_versions,
    version_differences,
)

__all__ = [
    "SPLITS",
    "AVCorpus",
    "AVSplit",
    "DamagedCorpusError",
    "av_corpus_dir",
    "build_av_corpus",
    "generate_split",
    "load_av_corpus",
    "verify_av_corpus",
]

SPLITS = tuple(SPLIT_IDS)
_FORMAT = 1
_ARRAYS = ("frames", "audio", "labels", "masks", "boxes", "combos", "moving", "seeds")


class DamagedCorpusError(ValueError):
    """A cached audio-visual corpus file is missing, truncated or altered."""


@dataclass
class AVSplit:
    """One split's clips and their per-frame ground truth (N clips, T frames, H = W pixels).

    Attributes:
        frames: ``(N, T, H, W, 3)`` uint8 video frames.
        audio: ``(N, S)`` float32 16 kHz soundtracks in [-1, 1].
        labels: ``(N, T)`` the class sounding at each frame (``-1``: silent).
        masks: ``(N, T, H, W)`` the sounding object's pixels (empty when silent).
        boxes: ``(N, T, 4)`` its box ``(x0, y0, x1, y1)``, end-exclusive (``-1`` when silent).
        combos: ``(N, T, 4)`` its (class, quadrant, background, shade) combination (``-1`` when silent).
        moving: ``(N, T)`` whether it moves.
        seeds: ``(N, 3)`` the seed ``(seed, split id, index)`` of every clip.
    """

    frames: np.ndarray
    audio: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    combos: np.ndarray
    moving: np.ndarray
    seeds: np.ndarray

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def images(self) -> torch.Tensor:
        """Frames as float ``(N, T, 3, H, W)`` in [0, 1]."""
        return torch.from_numpy(self.frames).permute(0, 1, 4, 2, 3).float() / 255.0


@dataclass
class AVCorpus:
    """A loaded corpus: its config, seed, folder, splits and log-mel features.

    Attributes:
        root: the cache folder. config: the `AVCorpusConfig`. seed: the build seed.
        splits: ``{"train", "val", "test"}`` → `AVSplit`.
        mel_stats: ``(mean, std)`` of the training log-mels (the features are normalised with them).
        meta: the parsed ``config.json``.
    """

    root: Path
    config: AVCorpusConfig
    seed: int
    splits: dict[str, AVSplit]
    mel_stats: tuple[float, float]
    meta: dict[str, Any] = field(default_factory=dict)
    _feats: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def features(self, split: str) -> torch.Tensor:
        """Normalised log-mels ``(N, frames, n_mels)`` of a split's soundtracks (computed once)."""
        if split not in self.splits:
            raise ValueError(f"split must be one of {', '.join(self.splits)}; got {split!r}")
        if split not in self._feats:
            mel = _logmel(self.config)
            with torch.no_grad():
                x = mel(torch.from_numpy(self.splits[split].audio))
            self._feats[split] = (x - self.mel_stats[0]) / self.mel_stats[1]
        return self._feats[split]


def _logmel(cfg: AVCorpusConfig) -> LogMel:
    return LogMel(cfg.sample_rate, n_mels=cfg.n_mels, n_fft=cfg.n_fft, hop_length=cfg.hop_length)


def av_corpus_dir(preset: str | AVCorpusConfig, seed: int = 0) -> Path:
    """``$ZOO_DATA_DIR/<preset>-seed<seed>`` (default base ``~/.cache/bilevel-zoo``)."""
    base = os.environ.get("ZOO_DATA_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "bilevel-zoo"
    return root / f"{av_config(preset).name}-seed{seed}"


def _boxes(masks: np.ndarray) -> np.ndarray:
    out = np.full((*masks.shape[:2], 4), -1, dtype=np.int16)
    for i, j in zip(*np.nonzero(masks.any(axis=(2, 3)))):
        ys, xs = np.nonzero(masks[i, j])
        out[i, j] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return out


def generate_split(
    cfg: AVCorpusConfig,
    seed: int,
    split: str,
    *,
    bank: dict[str, list[np.ndarray]] | None = None,
    progress: bool = False,
) -> AVSplit:
    """Render every clip of ``split`` (deterministic given ``cfg``, ``seed`` and ``split``)."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    check_int(seed, "seed", low=0)
    n = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}[split]
    bank = word_bank(cfg) if bank is None else bank
    T, H = cfg.frames, cfg.image_size
    frames = np.empty((n, T, H, H, 3), np.uint8)
    masks = np.empty((n, T, H, H), bool)
    audio = np.empty((n, cfg.num_samples), np.float32)
    labels = np.full((n, T), -1, np.int8)
    combos = np.full((n, T, 4), -1, np.int8)
    moving = np.zeros((n, T), bool)
    for i in tqdm(range(n), desc=f"av corpus {split}", disable=not progress, leave=False):
        plan = plan_clip(cfg, clip_rng(seed, split, i), split)
        frames[i], masks[i] = render_frames(cfg, plan)
        audio[i] = render_audio(cfg, plan, bank)
        for k, ev in enumerate(plan["events"]):
            if ev is not None:
                labels[i, k] = ev["cls"]
                combos[i, k] = (ev["cls"], ev["quadrant"], plan["background"]["kind"], ev["shade"])
                moving[i, k] = ev["moving"]
    seeds = np.array([[seed, SPLIT_IDS[split], i] for i in range(n)], np.int64).reshape(n, 3)
    return AVSplit(frames, audio, labels, masks, _boxes(masks), combos, moving, seeds)


def _write_split(path: Path, s: AVSplit) -> None:
    tmp = path.with_suffix(".tmp")
    arrays = {k: getattr(s, k) for k in _ARRAYS}
    arrays["audio"] = np.rint(s.audio * 32767.0).astype(np.int16)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)


def _read_split(path: Path) -> AVSplit:
    try:
        with np.load(path) as z:
            a = {k: z[k] for k in _ARRAYS}
    except Exception as e:  # a truncated or altered zip: numpy raises several kinds
        raise DamagedCorpusError(f"corpus file {path} cannot be read ({e})") from e
    a["audio"] = a["audio"].astype(np.float32) / 32767.0
    return AVSplit(**a)


#: The generator versions an audio-visual corpus depends on (the eSpeak NG renderer of the word classes).
_VERSION_KEYS = ("package", "espeakng-loader", "espeak-ng")


def _generator() -> dict[str, Any]:
    gv = generator_versions()
    return {k: gv.get(k) for k in _VERSION_KEYS}


def _meta_of(cfg: AVCorpusConfig, seed: int) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "av_version": AV_VERSION,
        "config": json.loads(json.dumps(cfg.to_dict())),  # as config.json stores it (lists, not tuples)
        "seed": seed,
        "generator": _generator(),
    }


def _problems(root: Path, meta: dict[str, Any], full: bool) -> dict[str, str]:
    out = {}
    for split in SPLITS:
        rec = meta.get("files", {}).get(split)
        p = root / f"{split}.npz"
        if rec is None:
            out[split] = "config.json records no size or hash for it"
        elif not p.is_file():
            out[split] = f"{p.name} is missing"
        elif p.stat().st_size != rec["bytes"]:
            out[split] = f"{p.name} has {p.stat().st_size} bytes, config.json says {rec['bytes']}"
        elif full and file_digest(p)[1] != rec["sha256"]:
            out[split] = f"{p.name}'s content hash differs from config.json's"
    return out


def _read_meta(root: Path) -> dict[str, Any] | None:
    p = root / "config.json"
    if not p.is_file():
        return None
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DamagedCorpusError(f"{p} is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise DamagedCorpusError(f"{p} does not hold a JSON object")
    return meta


def _check_versions(root: Path, meta: dict[str, Any]) -> None:
    diffs = version_differences(meta.get("generator"), _generator())
    if meta.get("av_version") != AV_VERSION:
        diffs.insert(0, f"av_version: cache {meta.get('av_version')!r}, running {AV_VERSION!r}")
    if meta.get("format") != _FORMAT:
        diffs.insert(0, f"format: cache {meta.get('format')!r}, running {_FORMAT!r}")
    if diffs:
        raise StaleCorpusError(
            f"the audio-visual corpus at {root} was built by another generator ({'; '.join(diffs)}); "
            "rebuild it (rebuild=True)"
        )


def build_av_corpus(
    preset: str | AVCorpusConfig = "av-quick",
    seed: int = 0,
    *,
    root: str | Path | None = None,
    rebuild: bool = False,
    verify: bool = False,
    progress: bool = True,
) -> AVCorpus:
    """Build (or reuse) the cached corpus of ``preset`` and ``seed`` and load it.

    Args:
        preset: a name of `zoo.data.av.AV_PRESETS` or an `AVCorpusConfig`.
        seed: the build seed (every clip's seed derives from it).
        root: the cache folder (default `av_corpus_dir()`).
        rebuild: regenerate everything, even a matching or stale cache.
        verify: hash every file of a reused cache (otherwise sizes only).
        progress: show a tqdm bar per split.

    Raises:
        StaleCorpusError: the cache was built by another generator (and ``rebuild`` is off).
    """
    cfg = av_config(preset)
    check_int(seed, "seed", low=0)
    folder = Path(root) if root is not None else av_corpus_dir(cfg, seed)
    folder.mkdir(parents=True, exist_ok=True)
    want = _meta_of(cfg, seed)
    meta = None if rebuild else _read_meta(folder)
    todo = list(SPLITS)
    if meta is not None:
        _check_versions(folder, meta)
        if meta.get("config") != want["config"] or meta.get("seed") != seed:
            warnings.warn(
                f"{folder} holds an audio-visual corpus of another config or seed; rebuilding it",
                RuntimeWarning,
                stacklevel=2,
            )
            meta = None
    if meta is not None:
        problems = _problems(folder, meta, verify)
        if problems:
            warnings.warn(
                f"regenerating damaged corpus files in {folder}: {problems}", RuntimeWarning, stacklevel=2
            )
        todo = [s for s in SPLITS if s in problems]
    else:
        meta = {**want, "files": {}}
    if todo:
        t0 = time.perf_counter()
        bank = word_bank(cfg)
        clips = 0
        for split in todo:
            s = generate_split(cfg, seed, split, bank=bank, progress=progress)
            p = folder / f"{split}.npz"
            _write_split(p, s)
            size, digest = file_digest(p)
            meta["files"][split] = {"bytes": size, "sha256": digest}
            clips += len(s)
            if split == "train":
                with torch.no_grad():
                    x = _logmel(cfg)(torch.from_numpy(s.audio))
                meta["mel_stats"] = [float(x.mean()), float(x.std())]
        seconds = time.perf_counter() - t0
        meta["build"] = {"clips": clips, "seconds": seconds, "clips_per_second": clips / max(seconds, 1e-9)}
        meta["environment"] = environment_versions()
        tmp = folder / "config.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, folder / "config.json")
    return load_av_corpus(folder)


def load_av_corpus(root: str | Path) -> AVCorpus:
    """Load a built corpus, checking its versions and every file's size.

    Raises:
        FileNotFoundError: no corpus there. StaleCorpusError: built by another generator.
        DamagedCorpusError: a file is missing, truncated or unreadable.
    """
    folder = Path(root)
    meta = _read_meta(folder)
    if meta is None:
        raise FileNotFoundError(f"no audio-visual corpus at {folder} (config.json is missing)")
    _check_versions(folder, meta)
    problems = _problems(folder, meta, full=False)
    if problems:
        raise DamagedCorpusError(f"the audio-visual corpus at {folder} is damaged: {problems}")
    if "mel_stats" not in meta:
        raise DamagedCorpusError(f"{folder / 'config.json'} records no log-mel statistics")
    cfg = AVCorpusConfig.from_dict(meta["config"])
    splits = {s: _read_split(folder / f"{s}.npz") for s in SPLITS}
    mean, std = meta["mel_stats"]
    return AVCorpus(folder, cfg, int(meta["seed"]), splits, (float(mean), float(std)), meta)


def verify_av_corpus(root: str | Path) -> dict[str, str]:
    """Hash every split file against ``config.json``: ``{split: problem}`` (empty when all is well)."""
    folder = Path(root)
    meta = _read_meta(folder)
    if meta is None:
        raise FileNotFoundError(f"no audio-visual corpus at {folder} (config.json is missing)")
    _check_versions(folder, meta)
    return _problems(folder, meta, full=True)
