"""Build, cache and describe the generated multilingual speech corpus.

A corpus is a pure function of a :class:`CorpusConfig` and a seed. Building it (1) *plans* every utterance
(text, voice, rate, pitch, channel, perturbations) from ``numpy.random.default_rng([seed, i])`` alone, so
that the plan of utterance ``i`` depends neither on the size of the corpus nor on the workers; (2) renders
the plan in shards of ``shard_size`` utterances, each in a fresh process (eSpeak NG is then bit-exact
reproducible, see :mod:`zoo.data.synth`), writing ``shards/<k>/<id>.flac`` and, last,
``shards/<k>.jsonl``; (3) merges the shard manifests into ``manifest.jsonl`` and writes ``stats.json``
and the character tokenizer. Every file is written to a temporary name and renamed, so an interrupted
build leaves only complete shards behind and the next call resumes from them (temporary names carry the
process id, so concurrent builds of one directory do not clash; they write identical files).

Splits hold voices out: the eSpeak variants (simulated speakers) are permuted with the seed; the first
``n_test_voices`` speak only the test set, the next ``n_dev_voices`` only the dev set, the rest the
labelled set and the (larger) unlabelled pool.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.manifest import MANIFEST_NAME, Utterance, hours_by, read_manifest, write_manifest
from zoo.data.synth import DEFAULT_VARIANTS, VoiceSpec, available_variants, default_workers
from zoo.data.text import LANGUAGES, check_language, random_phrase

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CorpusConfig:
    """Everything that determines a generated corpus (together with the seed).

    Attributes:
        name: preset name (used in the default cache folder).
        n_utterances: number of utterances.
        languages: spoken languages (drawn uniformly).
        variants: eSpeak variants used as speakers.
        n_dev_voices, n_test_voices: variants held out for the dev and test sets.
        split_weights: relative sizes of labelled / unlabelled / dev / test.
        kind_weights: relative frequency of number / quantity / sentence texts.
        max_number: largest cardinal spoken.
        rates: words-per-minute range of each rate class.
        pitch, pitch_range: eSpeak base-pitch and pitch-range ranges (0–99).
        channel_weights: relative frequency of the clean / noise / telephone / reverb channels.
        snr_db, rt60: ranges for the noise and reverb channels.
        speed_factors, speed_prob: speed perturbation factors and the probability of applying one.
        vtlp_alpha, vtlp_prob: VTLP warp-factor range and the probability of applying it.
        gain_db: gain range; noise_floor_db: range of the always-present noise floor (dBFS).
        pad_s: range of the leading and trailing silence (seconds).
        sample_rate: output rate.
        shard_size: utterances per shard (the unit of parallel work and of resumption).
        festival_share: share of English utterances rendered with Festival (extra domains) where Festival
            is installed (0 = never; see :mod:`zoo.data.festival`). Festival voices are held out like eSpeak
            ones: with two or more installed, the last (sorted) speaks only test utterances.
    """

    name: str = "custom"
    n_utterances: int = 120
    languages: tuple[str, ...] = LANGUAGES
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    n_dev_voices: int = 4
    n_test_voices: int = 4
    split_weights: tuple[float, float, float, float] = (0.25, 0.55, 0.1, 0.1)
    kind_weights: tuple[float, float, float] = (0.3, 0.3, 0.4)
    max_number: int = 999
    rates: tuple[tuple[str, int, int], ...] = (("slow", 120, 150), ("normal", 160, 190), ("fast", 210, 260))
    pitch: tuple[int, int] = (25, 75)
    pitch_range: tuple[int, int] = (30, 80)
    channel_weights: tuple[float, float, float, float] = (0.4, 0.2, 0.2, 0.2)
    snr_db: tuple[float, float] = (10.0, 30.0)
    rt60: tuple[float, float] = (0.15, 0.5)
    speed_factors: tuple[float, ...] = (0.9, 1.1)
    speed_prob: float = 0.3
    vtlp_alpha: tuple[float, float] = (0.9, 1.1)
    vtlp_prob: float = 0.3
    gain_db: tuple[float, float] = (-6.0, 3.0)
    noise_floor_db: tuple[float, float] = (-75.0, -60.0)
    pad_s: tuple[float, float] = (0.05, 0.25)
    sample_rate: int = 16000
    shard_size: int = 50
    festival_share: float = 0.0

    def __post_init__(self) -> None:
        if self.n_utterances < 1:
            raise ValueError(f"n_utterances must be >= 1, got {self.n_utterances}")
        if not self.languages:
            raise ValueError("languages must not be empty")
        for lang in self.languages:
            check_language(lang)
        known = set(available_variants())
        bad = [v for v in self.variants if v not in known]
        if bad:
            raise ValueError(
                f"unknown eSpeak voice variant(s) {bad}; see zoo.data.synth.available_variants()"
            )
        if len(set(self.variants)) != len(self.variants):
            raise ValueError("variants must be distinct")
        if len(self.variants) < self.n_dev_voices + self.n_test_voices + 1:
            raise ValueError(
                f"{len(self.variants)} variants cannot hold out {self.n_dev_voices} dev and "
                f"{self.n_test_voices} test voices and keep one for training"
            )
        for name in ("split_weights", "kind_weights", "channel_weights"):
            w = np.asarray(getattr(self, name), float)
            if (w < 0).any() or w.sum() <= 0:
                raise ValueError(
                    f"{name} must be non-negative with a positive sum, got {getattr(self, name)}"
                )
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if not 0.0 <= self.festival_share <= 1.0:
            raise ValueError(f"festival_share must be in [0, 1], got {self.festival_share}")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorpusConfig:
        """Inverse of :meth:`to_dict` (JSON lists become tuples)."""

        def tup(v: Any) -> Any:
            return tuple(tup(x) for x in v) if isinstance(v, list) else v

        kw: dict[str, Any] = {k: tup(v) for k, v in d.items()}
        return cls(**kw)


PRESETS: dict[str, CorpusConfig] = {
    # ≈ 4 min of audio; builds in well under 30 s on one core.
    "tiny": CorpusConfig(name="tiny", n_utterances=120, shard_size=30),
    # ≈ 1 h of audio; a few minutes on 2 cores.
    "small": CorpusConfig(name="small", n_utterances=2300, shard_size=60),
    # ≈ 10 h of audio.
    "medium": CorpusConfig(name="medium", n_utterances=23000, shard_size=100),
    # English only, every training voice labelled, dev and test voices held out (the ASR recipes):
    # ≈ 400 training utterances, builds in ≈ 15 s on one core.
    "en-quick": CorpusConfig(
        name="en-quick",
        n_utterances=480,
        languages=("en",),
        split_weights=(0.8, 0.0, 0.1, 0.1),
        shard_size=60,
    ),
    # ≈ 1 h of English audio (≈ 2 000 training utterances); ≈ 1–2 min on two cores.
    "en": CorpusConfig(
        name="en", n_utterances=2400, languages=("en",), split_weights=(0.84, 0.0, 0.08, 0.08), shard_size=100
    ),
}


def get_config(preset: str | CorpusConfig) -> CorpusConfig:
    """The :class:`CorpusConfig` of a preset (``"tiny"``, ``"small"``, ``"medium"``, ``"en-quick"``,
    ``"en"``), or ``preset`` itself."""
    if isinstance(preset, CorpusConfig):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown corpus preset {preset!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def default_dir(preset: str | CorpusConfig = "small", seed: int = 0) -> Path:
    """``$ZOO_DATA_DIR/<preset>-seed<seed>``, or ``~/.cache/bilevel-zoo/<preset>-seed<seed>``."""
    base = os.environ.get("ZOO_DATA_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "bilevel-zoo"
    return root / f"{get_config(preset).name}-seed{seed}"


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------


def voice_splits(config: CorpusConfig, seed: int) -> dict[str, tuple[str, ...]]:
    """Which variants speak which split: ``{"train": ..., "dev": ..., "test": ...}`` (disjoint)."""
    rng = np.random.default_rng([seed, 0x5EED])
    perm = [config.variants[i] for i in rng.permutation(len(config.variants))]
    nt, nd = config.n_test_voices, config.n_dev_voices
    return {"test": tuple(perm[:nt]), "dev": tuple(perm[nt : nt + nd]), "train": tuple(perm[nt + nd :])}


def _u(rng: np.random.Generator, lo_hi: Sequence[float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _festival_voice(
    config: CorpusConfig, seed: int, index: int, split: str, language: str, voices: Sequence[str]
) -> str | None:
    """The Festival voice of utterance ``index``, or None (eSpeak). Uses its own random stream, so that
    corpora without Festival are unaffected."""
    if config.festival_share <= 0 or not voices or language != "en":
        return None
    rng = np.random.default_rng([seed, index, 0xFE57])
    if rng.random() >= config.festival_share:
        return None
    vs = sorted(voices)
    if split in ("labelled", "unlabelled"):
        pool = vs[:-1] if len(vs) >= 2 else vs
    elif split == "test" and len(vs) >= 2:
        pool = vs[-1:]
    else:
        return None
    return pool[int(rng.integers(len(pool)))]


def plan_utterance(
    config: CorpusConfig, seed: int, index: int, festival_voices: Sequence[str] = ()
) -> dict[str, Any]:
    """The plan of utterance ``index``: a pure function of ``(config, seed, index)`` (and of the Festival
    voices installed, when ``config.festival_share > 0``)."""
    rng = np.random.default_rng([seed, index])
    voices = voice_splits(config, seed)
    sw = np.asarray(config.split_weights, float)
    split = ("labelled", "unlabelled", "dev", "test")[int(rng.choice(4, p=sw / sw.sum()))]
    pool = voices["train"] if split in ("labelled", "unlabelled") else voices[split]
    variant = pool[int(rng.integers(len(pool)))]
    language = config.languages[int(rng.integers(len(config.languages)))]
    phrase = random_phrase(language, rng, kind_weights=config.kind_weights, max_number=config.max_number)
    rate_class, rlo, rhi = config.rates[int(rng.integers(len(config.rates)))]
    voice = VoiceSpec(
        language,
        variant,
        rate=int(rng.integers(rlo, rhi + 1)),
        pitch=int(rng.integers(config.pitch[0], config.pitch[1] + 1)),
        pitch_range=int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1)),
    )
    cw = np.asarray(config.channel_weights, float)
    channel = ("clean", "noise", "telephone", "reverb")[int(rng.choice(4, p=cw / cw.sum()))]
    aug: dict[str, Any] = {
        "rate_wpm": voice.rate,
        "pitch": voice.pitch,
        "pitch_range": voice.pitch_range,
        "pad_start_s": round(_u(rng, config.pad_s), 4),
        "pad_end_s": round(_u(rng, config.pad_s), 4),
        "speed": float(rng.choice(config.speed_factors)) if rng.random() < config.speed_prob else 1.0,
        "vtlp_alpha": round(_u(rng, config.vtlp_alpha), 4) if rng.random() < config.vtlp_prob else 1.0,
        "gain_db": round(_u(rng, config.gain_db), 2),
        "noise_floor_db": round(_u(rng, config.noise_floor_db), 2),
    }
    if channel == "noise":
        aug["snr_db"] = round(_u(rng, config.snr_db), 2)
        aug["noise_color"] = "pink" if rng.random() < 0.5 else "white"
    elif channel == "telephone":
        aug["low_hz"], aug["high_hz"] = (300.0, 3400.0) if rng.random() < 0.5 else (200.0, 4000.0)
    elif channel == "reverb":
        aug["rt60"] = round(_u(rng, config.rt60), 3)
    return {
        "index": index,
        "festival_voice": _festival_voice(config, seed, index, split, language, festival_voices),
        "id": f"{language}-{index:06d}",
        "split": split,
        "voice": voice,
        "phrase": phrase,
        "rate_class": rate_class,
        "channel": channel,
        "augment": aug,
        "espeak_seed": int(rng.integers(2**31 - 1)),
        "dsp_seed": int(rng.integers(2**31 - 1)),
    }


def render(plan: dict[str, Any], sample_rate: int, festival_exe: str | None = None) -> np.ndarray:
    """Synthesise and perturb one planned utterance in this process (see :func:`plan_utterance`);
    ``festival_exe`` overrides the ``text2wave`` found on ``PATH``."""
    from zoo.data import augment as A
    from zoo.data.synth import synthesize_here

    aug = plan["augment"]
    rng = np.random.default_rng(plan["dsp_seed"])
    if plan.get("festival_voice"):
        from zoo.data.festival import synthesize_festival

        stretch = 175.0 / plan["voice"].rate
        wav = synthesize_festival(
            plan["phrase"].spoken, plan["festival_voice"], sample_rate, stretch=stretch, exe=festival_exe
        )
    else:
        wav = synthesize_here(plan["phrase"].spoken, plan["voice"], plan["espeak_seed"], sample_rate)
    wav = A.normalize_peak(wav, 0.5)
    wav = A.pad(wav, aug["pad_start_s"], aug["pad_end_s"], sample_rate)
    wav = A.speed_perturb(wav, aug["speed"], sample_rate)
    wav = A.vtlp(wav, aug["vtlp_alpha"], sample_rate)
    wav = A.apply_channel(wav, plan["channel"], aug, sample_rate, rng)
    wav = A.apply_gain(wav, aug["gain_db"])
    wav = A.noise_floor(wav, aug["noise_floor_db"], rng)
    return A.apply_gain(wav, 0.0)  # peak protection after the floor


def _utterance(plan: dict[str, Any], path: Path, num_samples: int, sample_rate: int) -> Utterance:
    ph, v = plan["phrase"], plan["voice"]
    fv = plan.get("festival_voice")
    variant, voice, engine = (
        (f"festival-{fv}", f"festival+{fv}", "festival") if fv else (v.variant, v.name, "espeak-ng")
    )
    return Utterance(
        id=plan["id"],
        path=str(path),
        duration=round(num_samples / sample_rate, 6),
        language=ph.language,
        domain=f"{ph.language}:{variant}:{plan['rate_class']}:{plan['channel']}",
        voice=voice,
        transcript=ph.transcript,
        translation=ph.translation,
        split=plan["split"],
        sample_rate=sample_rate,
        num_samples=num_samples,
        variant=variant,
        rate_class=plan["rate_class"],
        channel=plan["channel"],
        kind=ph.kind,
        spoken=ph.spoken,
        engine=engine,
        augment=dict(plan["augment"]),
    )


def _build_shard(
    job: tuple[str, int, CorpusConfig, int, list[int], tuple[str, ...], str | None],
) -> tuple[int, int, float, float]:
    """Render one shard in this (fresh) process; returns (shard, n, audio seconds, cpu seconds)."""
    import torch

    from zoo.data.audio import write_audio

    torch.set_num_threads(1)
    out, k, config, seed, indices, fest, fest_exe = job
    root = Path(out)
    sdir = root / "shards" / f"{k:05d}"
    sdir.mkdir(parents=True, exist_ok=True)
    t0 = time.process_time()
    utts, secs = [], 0.0
    for i in indices:
        plan = plan_utterance(config, seed, i, fest)
        wav = render(plan, config.sample_rate, fest_exe)
        path = write_audio(sdir / f"{plan['id']}.flac", wav, config.sample_rate)
        utts.append(_utterance(plan, path, len(wav), config.sample_rate))
        secs += len(wav) / config.sample_rate
    write_manifest(utts, root / "shards" / f"{k:05d}.jsonl")
    return k, len(indices), secs, time.process_time() - t0


def _same_build(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a cached ``config.json`` describes the corpus ``new`` describes; fields added to
    :class:`CorpusConfig` since the cache was written count as equal when they hold their default."""
    defaults = CorpusConfig().to_dict()
    oc, nc = dict(old.get("config", {})), dict(new.get("config", {}))
    for k, v in nc.items():
        if k not in oc and v == defaults.get(k):
            oc[k] = v
    rest = lambda d: {k: v for k, v in d.items() if k != "config"}  # noqa: E731
    return oc == nc and rest(old) == rest(new)


def _shard_complete(root: Path, k: int, n: int) -> bool:
    p = root / "shards" / f"{k:05d}.jsonl"
    if not p.is_file():
        return False
    try:
        utts = read_manifest(p)
    except (ValueError, OSError):
        return False
    return len(utts) == n and all(Path(u.path).is_file() for u in utts)


@dataclass
class BuildStats:
    """What a build did: utterances and audio rendered now, wall and worker CPU seconds."""

    rendered: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    shards: list[int] = field(default_factory=list)


def build_corpus(
    preset: str | CorpusConfig = "small",
    out: str | Path | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Build the corpus (or reuse the cached one) and return its directory.

    Args:
        preset: ``"tiny"`` (≈ 4 min of audio), ``"small"`` (≈ 1 h), ``"medium"`` (≈ 10 h) or a
            :class:`CorpusConfig`.
        out: target directory; default :func:`default_dir`.
        seed: the corpus is a pure function of ``(preset, seed)``.
        workers: parallel worker processes (default: the CPUs available); the output does not depend on it.
        progress: show a tqdm progress bar.

    Idempotent: a finished corpus is returned as is; an interrupted build resumes from its complete shards.
    Raises ``ValueError`` if ``out`` holds a corpus built from another configuration or seed.
    """
    config = get_config(preset)
    root = Path(out) if out is not None else default_dir(config, seed)
    root.mkdir(parents=True, exist_ok=True)
    fest: tuple[str, ...] = ()
    fest_exe: str | None = None
    meta: dict[str, Any] = {"format": FORMAT_VERSION, "seed": int(seed), "config": config.to_dict()}
    if config.festival_share > 0:
        from zoo.data.festival import festival_voices, text2wave

        fest_exe = text2wave()
        fest = festival_voices() if fest_exe else ()
        meta["festival_voices"] = list(fest)
    cfg_path = root / "config.json"
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        if not _same_build(old, meta):
            raise ValueError(
                f"{root} holds a corpus built with another configuration or seed "
                f"(seed {old.get('seed')}, preset {old.get('config', {}).get('name')}); "
                "choose another output directory or delete it"
            )
    else:
        tmp = cfg_path.with_name(f"config.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, cfg_path)
    if (root / MANIFEST_NAME).is_file() and (root / "stats.json").is_file():
        return root
    n, size = config.n_utterances, config.shard_size
    shards = [(k, list(range(k * size, min(n, (k + 1) * size)))) for k in range((n + size - 1) // size)]
    todo = [
        (str(root), k, config, int(seed), idx, fest, fest_exe)
        for k, idx in shards
        if not _shard_complete(root, k, len(idx))
    ]
    stats = BuildStats()
    t0 = time.perf_counter()
    if todo:
        from tqdm.auto import tqdm

        from zoo.data.synth import fresh_pool

        nw = min(workers or default_workers(), len(todo))
        bar = tqdm(
            total=sum(len(j[4]) for j in todo), desc=f"corpus {config.name}", unit="utt", disable=not progress
        )
        with fresh_pool(nw) as pool:
            for k, cnt, secs, cpu in pool.imap_unordered(_build_shard, todo):
                stats.rendered += cnt
                stats.audio_seconds += secs
                stats.cpu_seconds += cpu
                stats.shards.append(k)
                bar.update(cnt)
                bar.set_postfix_str(f"{stats.audio_seconds / 3600:.2f} h audio")
        bar.close()
    stats.wall_seconds = time.perf_counter() - t0
    utts: list[Utterance] = []
    for k, _ in shards:
        utts += read_manifest(root / "shards" / f"{k:05d}.jsonl")
    write_manifest(utts, root / MANIFEST_NAME)
    from zoo.data.tokenizers import CharTokenizer

    tok = CharTokenizer.for_languages(config.languages)
    (root / "tokenizers").mkdir(exist_ok=True)
    tok.save(root / "tokenizers" / "char.json")
    summary = corpus_stats(utts)
    summary["build"] = asdict(stats)
    if stats.wall_seconds > 0 and stats.audio_seconds > 0:
        summary["build"]["audio_hours_per_wall_second"] = stats.audio_seconds / 3600 / stats.wall_seconds
        summary["build"]["realtime_factor_per_core"] = stats.audio_seconds / max(stats.cpu_seconds, 1e-9)
    tmp = root / f"stats.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, root / "stats.json")
    return root


def corpus_stats(utts: Sequence[Utterance]) -> dict[str, Any]:
    """Counts and hours per split, language, channel, rate class, kind and domain."""
    return {
        "utterances": len(utts),
        "hours": sum(u.duration for u in utts) / 3600,
        "hours_by_split": hours_by(utts, "split"),
        "hours_by_language": hours_by(utts, "language"),
        "hours_by_channel": hours_by(utts, "channel"),
        "hours_by_rate": hours_by(utts, "rate_class"),
        "hours_by_kind": hours_by(utts, "kind"),
        "hours_by_domain": hours_by(utts, "domain"),
        "voices_by_split": {
            s: sorted({u.voice for u in utts if u.split == s})
            for s in ("labelled", "unlabelled", "dev", "test")
        },
    }


def load_stats(corpus_dir: str | Path) -> dict[str, Any]:
    """The ``stats.json`` of a built corpus."""
    p = Path(corpus_dir) / "stats.json"
    if not p.is_file():
        raise FileNotFoundError(f"no stats.json in {corpus_dir}: is the corpus built?")
    out: dict[str, Any] = json.loads(p.read_text())
    return out


__all__ = [
    "PRESETS",
    "BuildStats",
    "CorpusConfig",
    "build_corpus",
    "corpus_stats",
    "default_dir",
    "get_config",
    "load_stats",
    "plan_utterance",
    "render",
    "voice_splits",
]
