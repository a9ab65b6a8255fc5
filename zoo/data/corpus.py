"""Build, cache and describe the generated multilingual speech corpus.

A corpus is a pure function of a `CorpusConfig` and a seed. Building it (1) *plans* every utterance
(text, voice, rate, pitch, channel, perturbations) from ``numpy.random.default_rng([seed, i])`` alone, so
that the plan of utterance ``i`` depends neither on the size of the corpus nor on the workers; (2) renders
the plan in shards of ``shard_size`` utterances, each in a fresh process (eSpeak NG is then bit-exact
reproducible, see [`zoo.data.synth`][zoo.data.synth]), writing ``shards/<k>/<id>.flac`` and, last,
``shards/<k>.jsonl``; (3) merges the shard manifests into ``manifest.jsonl`` and writes ``stats.json``
and the character tokenizer. Every file is written to a temporary name and renamed, so an interrupted
build leaves only complete shards behind and the next call resumes from them (temporary names carry the
process id, so concurrent builds of one directory do not clash; they write identical files).

Every manifest line records its audio file's size and SHA-256, and ``config.json`` the generator's
versions ([`zoo.data.integrity`][zoo.data.integrity]): reusing a built corpus checks counts, sizes and
versions, repairs
what is missing or truncated by re-rendering exactly those utterances, and refuses a corpus made by
another generator version; `verify_corpus()` also checks every hash.

Splits hold voices out: the eSpeak variants (simulated speakers) are permuted with the seed; the first
``n_test_voices`` speak only the test set, the next ``n_dev_voices`` only the dev set, the rest the
labelled set and the (larger) unlabelled pool.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from zoo.checks import check_int, check_real
from zoo.data.integrity import (
    SYNTHESIS_VERSION,
    StaleCorpusError,
    code_changed,
    damaged,
    environment_versions,
    file_digest,
    file_problem,
    generator_versions,
    version_differences,
)
from zoo.data.manifest import MANIFEST_NAME, Utterance, hours_by, read_manifest, write_manifest
from zoo.data.synth import DEFAULT_VARIANTS, VoiceSpec, advance_state, available_variants, default_workers
from zoo.data.text import KINDS, LANGUAGES, check_language, name_lists, random_phrase

FORMAT_VERSION = 2

#: Synthesis engines a corpus can be rendered with (`CorpusConfig.engine`).
ENGINES: tuple[str, ...] = ("espeak-ng", "festival")


def _check_strings(value: Any, name: str) -> None:
    if not isinstance(value, tuple) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{name} must be a non-empty tuple of non-empty strings, got {value!r}")


def _check_weights(value: Any, name: str, n: int) -> None:
    if not isinstance(value, tuple) or len(value) != n:
        raise ValueError(f"{name} must be a tuple of {n} weights, got {value!r}")
    w = [check_real(v, f"{name}[{i}]", low=0.0) for i, v in enumerate(value)]
    if sum(w) <= 0:
        raise ValueError(f"{name} must have a positive sum, got {value}")


def _check_range(value: Any, name: str, lo: float, hi: float, integer: bool = False) -> None:
    """``value`` is a pair ``(low, high)`` with ``lo <= low <= high <= hi``."""
    if not isinstance(value, tuple) or len(value) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
    check = (
        (lambda v, n: check_int(v, n, low=int(lo))) if integer else (lambda v, n: check_real(v, n, low=lo))
    )
    a, b = check(value[0], f"{name} low"), check(value[1], f"{name} high")
    if not a <= b <= hi:
        raise ValueError(f"{name} must satisfy {lo} <= low <= high <= {hi}, got {value}")


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
        kind_weights: relative frequency of number / quantity / sentence / name texts (see
            `zoo.data.text`); a configuration of three weights (written before the
            ``name`` kind existed) means no names.
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
            is installed (0 = never; see [`zoo.data.festival`][zoo.data.festival]). Festival voices are held
            out like eSpeak
            ones: with two or more installed, the last (sorted) speaks only test utterances.
        held_out_names: share of the test set's ``name`` utterances that draw their names from
            `zoo.data.text.held_out_words()`, words that no other split
            contains (the rest, and every other split, draw from the remaining names).
        engine: ``"espeak-ng"`` (every utterance, except the ``festival_share``), or ``"festival"``: every
            utterance is rendered by the installed Festival voices, in every split (English only; the
            eSpeak variants then only set the plan's rate class and rate). A Festival corpus whose
            splits are all test is a test set from an engine that no eSpeak corpus trains on.
    """

    name: str = "custom"
    n_utterances: int = 120
    languages: tuple[str, ...] = LANGUAGES
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    n_dev_voices: int = 4
    n_test_voices: int = 4
    split_weights: tuple[float, float, float, float] = (0.25, 0.55, 0.1, 0.1)
    kind_weights: tuple[float, ...] = (0.25, 0.25, 0.3, 0.2)
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
    held_out_names: float = 0.5
    engine: str = "espeak-ng"

    def __post_init__(self) -> None:
        for f in fields(self):  # lists (e.g. from JSON) become tuples, so that the config stays hashable
            v = getattr(self, f.name)
            if isinstance(v, list):
                object.__setattr__(self, f.name, tuple(tuple(x) if isinstance(x, list) else x for x in v))
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in "/\\\0"):
            raise ValueError(f"name must be a non-empty string without path separators, got {self.name!r}")
        check_int(self.n_utterances, "n_utterances", low=1)
        _check_strings(self.languages, "languages")
        for lang in self.languages:
            check_language(lang)
        if len(set(self.languages)) != len(self.languages):
            raise ValueError(f"languages must be distinct, got {self.languages}")
        _check_strings(self.variants, "variants")
        known = set(available_variants())
        bad = [v for v in self.variants if v not in known]
        if bad:
            raise ValueError(
                f"unknown eSpeak voice variant(s) {bad}; see zoo.data.synth.available_variants()"
            )
        if len(set(self.variants)) != len(self.variants):
            raise ValueError("variants must be distinct")
        check_int(self.n_dev_voices, "n_dev_voices", low=0)
        check_int(self.n_test_voices, "n_test_voices", low=0)
        if len(self.variants) < self.n_dev_voices + self.n_test_voices + 1:
            raise ValueError(
                f"{len(self.variants)} variants cannot hold out {self.n_dev_voices} dev and "
                f"{self.n_test_voices} test voices and keep one for training"
            )
        _check_weights(self.split_weights, "split_weights", 4)
        if isinstance(self.kind_weights, tuple) and len(self.kind_weights) == len(KINDS) - 1:
            object.__setattr__(self, "kind_weights", (*self.kind_weights, 0.0))
        if not isinstance(self.kind_weights, tuple) or len(self.kind_weights) != len(KINDS):
            raise ValueError(
                f"kind_weights must be a tuple of {len(KINDS)} weights ({', '.join(KINDS)}), or of "
                f"{len(KINDS) - 1} without names; got {self.kind_weights!r}"
            )
        _check_weights(self.kind_weights, "kind_weights", len(KINDS))
        _check_weights(self.channel_weights, "channel_weights", 4)
        check_int(self.max_number, "max_number", low=2)
        if not isinstance(self.rates, tuple) or not self.rates:
            raise ValueError(
                f"rates must be a non-empty tuple of (name, low wpm, high wpm), got {self.rates!r}"
            )
        for i, r in enumerate(self.rates):
            if not (isinstance(r, tuple) and len(r) == 3 and isinstance(r[0], str) and r[0]):
                raise ValueError(f"rates[{i}] must be (name, low wpm, high wpm), got {r!r}")
            _check_range(r[1:], f"rates[{i}] (words per minute)", 80, 450, integer=True)
        _check_range(self.pitch, "pitch", 0, 99, integer=True)
        _check_range(self.pitch_range, "pitch_range", 0, 99, integer=True)
        _check_range(self.snr_db, "snr_db", -20.0, 100.0)
        _check_range(self.rt60, "rt60", 0.05, 2.0)
        if not isinstance(self.speed_factors, tuple) or not self.speed_factors:
            raise ValueError(f"speed_factors must be a non-empty tuple, got {self.speed_factors!r}")
        for i, factor in enumerate(self.speed_factors):
            check_real(factor, f"speed_factors[{i}]", low=0.5, high=2.0)
        check_real(self.speed_prob, "speed_prob", low=0.0, high=1.0)
        _check_range(self.vtlp_alpha, "vtlp_alpha", 0.7, 1.3)
        check_real(self.vtlp_prob, "vtlp_prob", low=0.0, high=1.0)
        _check_range(self.gain_db, "gain_db", -60.0, 20.0)
        _check_range(self.noise_floor_db, "noise_floor_db", -140.0, -20.0)
        _check_range(self.pad_s, "pad_s", 0.0, 10.0)
        check_int(self.sample_rate, "sample_rate", low=8001)
        if self.sample_rate > 48000:
            raise ValueError(f"sample_rate must be <= 48000 Hz, got {self.sample_rate}")
        check_int(self.shard_size, "shard_size", low=1)
        check_real(self.festival_share, "festival_share", low=0.0, high=1.0)
        check_real(self.held_out_names, "held_out_names", low=0.0, high=1.0)
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine == "festival" and self.languages != ("en",):
            raise ValueError(
                f"engine 'festival' speaks English only: languages must be ('en',), got {self.languages}"
            )

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorpusConfig:
        """Inverse of `to_dict()` (JSON lists become tuples)."""

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
    # en-quick's training size with larger held-out splits (≈ 420 training, ≈ 125 dev and ≈ 290 test
    # utterances): the quick benchmark claims tune on dev and decide on a few hundred test utterances.
    "en-quick-eval": CorpusConfig(
        name="en-quick-eval",
        n_utterances=840,
        languages=("en",),
        split_weights=(0.5, 0.0, 0.15, 0.35),
        shard_size=60,
    ),
    # All six languages with ASR and X→en translation targets (Objective Soups): ≈ 100 labelled, ≈ 35
    # unlabelled, ≈ 20 dev and ≈ 20 test utterances per language.
    "multi-quick": CorpusConfig(
        name="multi-quick", n_utterances=1050, split_weights=(0.56, 0.2, 0.12, 0.12), shard_size=50
    ),
    # en's training size with larger held-out splits (≈ 2 000 training, ≈ 210 dev, ≈ 360 test utterances):
    # the benchmark claims' --full budgets.
    "en-eval": CorpusConfig(
        name="en-eval",
        n_utterances=2600,
        languages=("en",),
        split_weights=(0.78, 0.0, 0.08, 0.14),
        shard_size=100,
    ),
    # A test set from another engine: the en-quick texts (names included) spoken by Festival's voices,
    # which no eSpeak corpus trains on (cross-engine robustness); needs Festival installed.
    "en-festival-test": CorpusConfig(
        name="en-festival-test",
        n_utterances=120,
        languages=("en",),
        split_weights=(0.0, 0.0, 0.0, 1.0),
        shard_size=30,
        engine="festival",
    ),
    # ≈ 1 h of English audio (≈ 2 000 training utterances); ≈ 1–2 min on two cores.
    "en": CorpusConfig(
        name="en", n_utterances=2400, languages=("en",), split_weights=(0.84, 0.0, 0.08, 0.08), shard_size=100
    ),
    # Heterogeneous sources for multi-source pre-training (equilibrium constraints): English on a clean
    # and on a telephone channel, German and Spanish, all spoken numbers below 100; ≈ 430 unlabelled,
    # ≈ 190 labelled, ≈ 100 dev and ≈ 240 test utterances. (Festival is left out: with one Festival voice
    # installed it speaks no held-out utterance.)
    "sources": CorpusConfig(
        name="sources",
        n_utterances=960,
        languages=("en", "de", "es"),
        kind_weights=(1.0, 0.0, 0.0, 0.0),
        max_number=99,
        channel_weights=(0.5, 0.0, 0.5, 0.0),
        split_weights=(0.2, 0.45, 0.1, 0.25),
        shard_size=60,
    ),
    # The same sources at three times the size and numbers up to 999.
    "sources-large": CorpusConfig(
        name="sources-large",
        n_utterances=3000,
        languages=("en", "de", "es"),
        kind_weights=(1.0, 0.0, 0.0, 0.0),
        channel_weights=(0.5, 0.0, 0.5, 0.0),
        split_weights=(0.2, 0.45, 0.1, 0.25),
        shard_size=100,
    ),
}


def get_config(preset: str | CorpusConfig) -> CorpusConfig:
    """The `CorpusConfig` of a preset (``"tiny"``, ``"small"``, ``"medium"``, ``"en-quick"``,
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
    if config.engine == "festival":
        if not voices:
            raise RuntimeError("the corpus's engine is Festival, but no Festival voice is installed")
        vs = sorted(voices)
        return vs[int(np.random.default_rng([seed, index, 0xFE57]).integers(len(vs)))]
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
    novel = split == "test" and np.random.default_rng([seed, index, 0x0BE5]).random() < config.held_out_names
    phrase = random_phrase(
        language,
        rng,
        kind_weights=config.kind_weights,
        max_number=config.max_number,
        names="held_out" if novel else "seen",
    )
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


def render(
    plan: dict[str, Any],
    sample_rate: int,
    festival_exe: str | None = None,
    timings: dict[str, float] | None = None,
    festival_wav: np.ndarray | None = None,
) -> np.ndarray:
    """Synthesise and perturb one planned utterance in this process (see `plan_utterance()`);
    ``festival_exe`` overrides the ``text2wave`` found on ``PATH``. With ``timings``, the CPU seconds
    (``time.process_time``) of the stages ``synthesis``, ``resampling`` and ``augmentation`` are added to
    it (Festival's resampling counts as synthesis). ``festival_wav`` is the Festival rendering of a
    Festival utterance when it was synthesised already (`zoo.data.festival.synthesize_festival_batch()`)."""
    from zoo.data.synth import ESPEAK_SAMPLE_RATE, resample, synthesize_native

    clock = time.process_time
    t0 = clock()
    if plan.get("festival_voice"):
        from zoo.data.festival import synthesize_festival

        wav = festival_wav
        if wav is None:
            wav = synthesize_festival(
                plan["phrase"].spoken,
                plan["festival_voice"],
                sample_rate,
                stretch=_stretch(plan),
                exe=festival_exe,
            )
        t1 = clock()
    else:
        native = synthesize_native(plan["phrase"].spoken, plan["voice"], plan["espeak_seed"])
        t1 = clock()
        wav = resample(native, ESPEAK_SAMPLE_RATE, sample_rate)
    t2 = clock()
    wav = perturb(plan, wav, sample_rate)
    if timings is not None:
        for stage, secs in (("synthesis", t1 - t0), ("resampling", t2 - t1), ("augmentation", clock() - t2)):
            timings[stage] = timings.get(stage, 0.0) + secs
    return wav


def perturb(plan: dict[str, Any], wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """The perturbations of a planned utterance (`render()` after synthesis and resampling): peak
    normalisation, padding, speed, VTLP, the channel, gain and noise floor, drawn from the plan's
    ``dsp_seed``."""
    from zoo.data import augment as A

    aug = plan["augment"]
    rng = np.random.default_rng(plan["dsp_seed"])
    wav = A.normalize_peak(wav, 0.5)
    wav = A.pad(wav, aug["pad_start_s"], aug["pad_end_s"], sample_rate)
    wav = A.speed_perturb(wav, aug["speed"], sample_rate)
    wav = A.vtlp(wav, aug["vtlp_alpha"], sample_rate)
    wav = A.apply_channel(wav, plan["channel"], aug, sample_rate, rng)
    wav = A.apply_gain(wav, aug["gain_db"])
    wav = A.noise_floor(wav, aug["noise_floor_db"], rng)
    return A.apply_gain(wav, 0.0)  # peak protection after the floor


def _stretch(plan: dict[str, Any]) -> float:
    """Festival's duration stretch for a plan's rate (175 words per minute = 1)."""
    return 175.0 / plan["voice"].rate


def _festival_batch(
    plans: Sequence[dict[str, Any]], sample_rate: int, exe: str | None, stages: dict[str, float]
) -> dict[int, np.ndarray]:
    """Festival renderings of the Festival plans among ``plans`` (one Festival process per voice);
    adds the wall seconds to ``stages["synthesis"]`` (Festival runs in a child process)."""
    from zoo.data.festival import synthesize_festival_batch

    out: dict[int, np.ndarray] = {}
    t0 = time.perf_counter()
    for v in sorted({p["festival_voice"] for p in plans if p.get("festival_voice")}):
        mine = [p for p in plans if p.get("festival_voice") == v]
        wavs = synthesize_festival_batch(
            [p["phrase"].spoken for p in mine], v, sample_rate, [_stretch(p) for p in mine], exe=exe
        )
        out.update({p["index"]: w for p, w in zip(mine, wavs)})
    stages["synthesis"] = stages.get("synthesis", 0.0) + time.perf_counter() - t0
    return out


def _utterance(
    plan: dict[str, Any], path: Path, num_samples: int, sample_rate: int, digest: tuple[int, str]
) -> Utterance:
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
        file_size=digest[0],
        sha256=digest[1],
    )


@dataclass(frozen=True)
class _ShardJob:
    """One unit of work: render shard ``k`` (``only`` is None), or re-render the utterances ``only`` of it."""

    root: str
    k: int
    config: CorpusConfig
    seed: int
    indices: tuple[int, ...]
    festival: tuple[str, ...]
    festival_exe: str | None
    only: tuple[int, ...] | None = None


def _shard_paths(root: Path, k: int) -> tuple[Path, Path]:
    return root / "shards" / f"{k:05d}", root / "shards" / f"{k:05d}.jsonl"


#: FLAC compression level of the corpus files (0 = fastest; the decoded samples do not depend on it).
FLAC_LEVEL = 0.0


def _build_shard(job: _ShardJob) -> tuple[int, int, float, float, dict[str, float]]:
    """Render one shard in this (fresh) process; returns (shard, n rendered, audio seconds, cpu seconds,
    cpu seconds per stage).

    With ``job.only``, re-render just those utterances: the ones before them in the shard are replayed
    through eSpeak NG only ([`zoo.data.synth.advance_state()`][zoo.data.synth.advance_state]), so that the
    vocoder state, hence every
    sample, is the one of the original build; each file must then hash to what the shard manifest records.
    """
    import torch

    from zoo.data.audio import write_audio

    torch.set_num_threads(1)
    root, config = Path(job.root), job.config
    sdir, jsonl = _shard_paths(root, job.k)
    sdir.mkdir(parents=True, exist_ok=True)
    t0 = time.process_time()
    recorded = {u.id: u for u in read_manifest(jsonl)} if job.only is not None else {}
    todo = set(job.indices if job.only is None else job.only)
    last = max(todo)
    utts, secs = [], 0.0
    stages: dict[str, float] = {}
    plans = [plan_utterance(config, job.seed, i, job.festival) for i in job.indices if i <= last]
    fest = _festival_batch(
        [p for p in plans if p["index"] in todo], config.sample_rate, job.festival_exe, stages
    )
    for plan in plans:
        i = plan["index"]
        if i not in todo:
            if not plan.get("festival_voice"):
                advance_state(plan["phrase"].spoken, plan["voice"], plan["espeak_seed"])
            continue
        wav = render(plan, config.sample_rate, job.festival_exe, timings=stages, festival_wav=fest.get(i))
        final = sdir / f"{plan['id']}.flac"
        t_enc = time.process_time()
        if job.only is None:
            path = write_audio(final, wav, config.sample_rate, compression_level=FLAC_LEVEL)
            utts.append(_utterance(plan, path, len(wav), config.sample_rate, file_digest(path)))
        else:
            old = recorded[plan["id"]]
            tmp = write_audio(
                sdir / f"{plan['id']}.repair-{os.getpid()}.flac",
                wav,
                config.sample_rate,
                compression_level=FLAC_LEVEL,
            )
            if file_digest(tmp) != (old.file_size, old.sha256) or len(wav) != old.num_samples:
                tmp.unlink()
                raise RuntimeError(
                    f"re-rendering utterance {plan['id']!r} of {root} gives another file than the one "
                    "recorded: the numerical libraries differ from the build's (see 'environment' in "
                    "config.json); rebuild the corpus (python -m zoo.data build --rebuild)"
                )
            os.replace(tmp, final)
        stages["encoding"] = stages.get("encoding", 0.0) + time.process_time() - t_enc
        secs += len(wav) / config.sample_rate
    if job.only is None:
        write_manifest(utts, jsonl)
    return job.k, len(todo), secs, time.process_time() - t0, stages


def _index_of(u: Utterance) -> int:
    return int(u.id.rsplit("-", 1)[-1])


def _shard_damage(root: Path, k: int, indices: Sequence[int], full: bool) -> tuple[int, ...] | None:
    """The damaged utterances of shard ``k``: ``None`` when the whole shard must be (re-)rendered (its
    manifest is missing, unreadable, or does not list exactly the shard's utterances), else the indices
    whose audio file is missing or has the wrong size (and, with ``full``, the wrong content hash)."""
    _, jsonl = _shard_paths(root, k)
    if not jsonl.is_file():
        return None
    try:
        utts = read_manifest(jsonl)
        if [_index_of(u) for u in utts] != list(indices) or not all(u.sha256 for u in utts):
            return None
    except (ValueError, OSError):
        return None
    bad = damaged(utts, full)
    return tuple(_index_of(u) for u in utts if u.id in bad)


def _same_build(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a cached ``config.json`` describes the corpus ``new`` describes (generator aside); fields
    added to `CorpusConfig` since the cache was written count as equal when they hold their default."""
    defaults = CorpusConfig().to_dict()
    oc, nc = dict(old.get("config", {})), dict(new.get("config", {}))
    for k, v in nc.items():
        if k not in oc and v == defaults.get(k):
            oc[k] = v
    skip = ("config", "format", "generator", "environment")
    rest = lambda d: {k: v for k, v in d.items() if k not in skip}  # noqa: E731
    return oc == nc and rest(old) == rest(new)


@dataclass
class BuildStats:
    """What a build did: utterances and audio rendered now, wall and worker CPU seconds (in total and per
    stage: ``synthesis``, ``resampling``, ``augmentation``, ``encoding``)."""

    rendered: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    shards: list[int] = field(default_factory=list)
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class CorpusCheck:
    """What `verify_corpus()` (or a repairing `build_corpus()`) found and did.

    Attributes:
        root: the corpus directory.
        utterances: utterances the corpus should hold.
        damaged: ``{utterance id: problem}`` for each damaged audio file found.
        shards_rendered: shards rendered whole (their manifest was missing or damaged).
        repaired: ids of the utterances re-rendered (empty when ``repair=False``).
        manifest_rewritten: whether ``manifest.jsonl`` was missing or damaged and written again.
    """

    root: Path
    utterances: int = 0
    damaged: dict[str, str] = field(default_factory=dict)
    shards_rendered: list[int] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    manifest_rewritten: bool = False

    @property
    def ok(self) -> bool:
        """Whether the corpus was intact."""
        return not self.damaged and not self.shards_rendered and not self.manifest_rewritten


_CORPUS_FILES = ("config.json", MANIFEST_NAME, "stats.json")
_CORPUS_DIRS = ("shards", "tokenizers")


def _meta(config: CorpusConfig, seed: int) -> tuple[dict[str, Any], tuple[str, ...], str | None]:
    """The ``config.json`` of a build, the Festival voices and the ``text2wave`` it uses."""
    meta: dict[str, Any] = {"format": FORMAT_VERSION, "seed": int(seed), "config": config.to_dict()}
    fest: tuple[str, ...] = ()
    fest_exe: str | None = None
    uses_festival = config.festival_share > 0 or config.engine == "festival"
    if uses_festival:
        from zoo.data.festival import festival_voices, text2wave

        fest_exe = text2wave()
        fest = festival_voices() if fest_exe else ()
        if config.engine == "festival" and not fest:
            raise RuntimeError(
                f"corpus {config.name!r} is rendered by Festival, which is not installed here (no "
                "text2wave on PATH, or no voice): install it (e.g. apt-get install festival)"
            )
        meta["festival_voices"] = list(fest)
    meta["generator"] = generator_versions(uses_festival=uses_festival)
    meta["environment"] = environment_versions()
    return meta, fest, fest_exe


def _wipe(root: Path) -> None:
    """Remove a corpus's own files from ``root`` (nothing else there)."""
    for name in _CORPUS_FILES:
        (root / name).unlink(missing_ok=True)
    for name in _CORPUS_DIRS:
        if (root / name).is_dir():
            shutil.rmtree(root / name)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _open_cache(root: Path, meta: dict[str, Any], rebuild: bool) -> None:
    """Check ``root/config.json`` against ``meta`` (refuse another configuration or a stale generator,
    unless ``rebuild``, which discards the cached corpus); write it when there is none."""
    cfg_path = root / "config.json"
    if cfg_path.is_file():
        try:
            old = json.loads(cfg_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = None
        if not isinstance(old, dict):
            if not rebuild:
                raise ValueError(
                    f"{cfg_path} is damaged; rebuild the corpus (python -m zoo.data build --rebuild)"
                )
        elif not _same_build(old, meta):
            if not rebuild:
                raise ValueError(
                    f"{root} holds a corpus built with another configuration or seed "
                    f"(seed {old.get('seed')}, preset {old.get('config', {}).get('name')}); "
                    "choose another output directory, or rebuild it (rebuild=True, or --rebuild)"
                )
        else:
            diff = version_differences(old.get("generator"), meta["generator"])
            if diff and not rebuild:
                raise StaleCorpusError(
                    f"{root} was built by another corpus generator ({'; '.join(diff)}), so its audio may "
                    "differ from what this version generates; rebuild it with build_corpus(..., "
                    "rebuild=True) or python -m zoo.data build --rebuild (or use another directory)"
                )
            if not diff:
                if code_changed(old.get("generator"), meta["generator"]):
                    warnings.warn(
                        f"{root} was built by other corpus-generation code under the same "
                        f"SYNTHESIS_VERSION ({SYNTHESIS_VERSION}): if that change alters the audio or the "
                        "manifest, bump zoo.data.integrity.SYNTHESIS_VERSION; to be sure, rebuild it "
                        "(rebuild=True, or --rebuild)",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                return
        _wipe(root)
    _write_json(cfg_path, meta)


def _quick_check(root: Path, config: CorpusConfig) -> bool:
    """The cheap check on load: the manifest lists every utterance once, in order, and every audio file
    has the size the manifest records; ``stats.json`` and the tokenizer are there."""
    if not (root / "stats.json").is_file() or not (root / "tokenizers" / "char.json").is_file():
        return False
    try:
        utts = read_manifest(root)
        if load_stats(root).get("utterances") != config.n_utterances:
            return False
        if [_index_of(u) for u in utts] != list(range(config.n_utterances)):
            return False
    except (ValueError, OSError, AttributeError):
        return False
    return not damaged(utts, full=False)


def _manifest_matches(root: Path, utts: Sequence[Utterance]) -> bool:
    """Whether ``manifest.jsonl`` is exactly the merge of the shard manifests ``utts``."""
    merged = "".join(u.to_json(root) + "\n" for u in utts)
    try:
        return (root / MANIFEST_NAME).read_text(encoding="utf-8") == merged
    except (OSError, UnicodeDecodeError):
        return False


def _complete(
    root: Path,
    config: CorpusConfig,
    seed: int,
    fest: tuple[str, ...],
    fest_exe: str | None,
    workers: int | None,
    progress: bool,
    full: bool,
    repair: bool = True,
) -> CorpusCheck:
    """Render every missing or damaged shard or utterance, then (re)write the manifest, stats and
    tokenizer when anything changed or was missing."""
    n, size = config.n_utterances, config.shard_size
    shards = [(k, tuple(range(k * size, min(n, (k + 1) * size)))) for k in range((n + size - 1) // size)]
    report = CorpusCheck(root=root, utterances=n)
    jobs = []
    for k, idx in shards:
        bad = _shard_damage(root, k, idx, full)
        if bad is None:
            report.shards_rendered.append(k)
            jobs.append(_ShardJob(str(root), k, config, seed, idx, fest, fest_exe))
        elif bad:
            recs = {_index_of(u): u for u in read_manifest(_shard_paths(root, k)[1])}
            for i in bad:
                report.damaged[recs[i].id] = file_problem(recs[i], full) or "damaged"
            jobs.append(_ShardJob(str(root), k, config, seed, idx, fest, fest_exe, only=bad))
    if not repair:
        if not report.shards_rendered:
            listed = [u for k, _ in shards for u in read_manifest(_shard_paths(root, k)[1])]
            report.manifest_rewritten = not _manifest_matches(root, listed)
        return report
    stats = BuildStats()
    t0 = time.perf_counter()
    if jobs:
        from tqdm.auto import tqdm

        from zoo.data.synth import fresh_pool

        if config.kind_weights[KINDS.index("name")] > 0:
            for lang in config.languages:  # built once here, inherited by forked workers
                name_lists(lang)
        nw = min(workers or default_workers(), len(jobs))
        bar = tqdm(
            total=sum(len(j.only or j.indices) for j in jobs),
            desc=f"corpus {config.name}",
            unit="utt",
            disable=not progress,
        )
        with fresh_pool(nw) as pool:
            for k, cnt, secs, cpu, stages in pool.imap_unordered(_build_shard, jobs):
                stats.rendered += cnt
                stats.audio_seconds += secs
                stats.cpu_seconds += cpu
                for stage, t in stages.items():
                    stats.stage_cpu_seconds[stage] = stats.stage_cpu_seconds.get(stage, 0.0) + t
                stats.shards.append(k)
                bar.update(cnt)
                bar.set_postfix_str(f"{stats.audio_seconds / 3600:.2f} h audio")
        bar.close()
        report.repaired = sorted(report.damaged)
    stats.wall_seconds = time.perf_counter() - t0
    utts: list[Utterance] = []
    for k, _ in shards:
        utts += read_manifest(_shard_paths(root, k)[1])
    report.manifest_rewritten = not _manifest_matches(root, utts)
    if report.manifest_rewritten:
        write_manifest(utts, root / MANIFEST_NAME)
    from zoo.data.tokenizers import CharTokenizer

    tok_path = root / "tokenizers" / "char.json"
    if report.shards_rendered or not tok_path.is_file():  # it depends on the languages only
        tok = CharTokenizer.for_languages(config.languages)
        tok_path.parent.mkdir(exist_ok=True)
        tok.save(tok_path)
    try:
        previous = load_stats(root)
    except (ValueError, OSError):
        previous = {}
    if not isinstance(previous, dict):
        previous = {}
    summary = corpus_stats(utts)
    summary["build"] = asdict(stats)
    if stats.wall_seconds > 0 and stats.audio_seconds > 0:
        summary["build"]["audio_hours_per_wall_second"] = stats.audio_seconds / 3600 / stats.wall_seconds
        summary["build"]["realtime_factor_per_core"] = stats.audio_seconds / max(stats.cpu_seconds, 1e-9)
    if previous.get("build") and not report.shards_rendered:  # a repair: keep the build's own numbers
        summary["build"] = previous["build"]
        if stats.rendered:
            summary["last_repair"] = asdict(stats)
    if summary != previous:
        _write_json(root / "stats.json", summary)
    return report


def _check_build_args(seed: Any, workers: Any, progress: Any, rebuild: Any) -> None:
    check_int(seed, "seed", low=0)
    if workers is not None:
        check_int(workers, "workers", low=1)
    for name, v in (("progress", progress), ("rebuild", rebuild)):
        if not isinstance(v, bool):
            raise TypeError(f"{name} must be a bool, got {type(v).__name__}")


def build_corpus(
    preset: str | CorpusConfig = "small",
    out: str | Path | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    rebuild: bool = False,
) -> Path:
    """Build the corpus (or reuse the cached one) and return its directory.

    Args:
        preset: ``"tiny"`` (≈ 4 min of audio), ``"small"`` (≈ 1 h), ``"medium"`` (≈ 10 h) or a
            `CorpusConfig`.
        out: target directory; default `default_dir()`.
        seed: the corpus is a pure function of ``(preset, seed)``; a non-negative int.
        workers: parallel worker processes (default: the CPUs available); the output does not depend on it.
        progress: show a tqdm progress bar.
        rebuild: discard a corpus cached in ``out`` by another generator version or configuration and
            build it again (only the corpus's own files are removed).

    Idempotent: a finished corpus is checked cheaply (utterance count, file sizes, generator versions) and
    returned; an interrupted build resumes from its complete shards; missing or truncated audio files and
    a damaged manifest are repaired (re-rendered bit-exactly, with a ``RuntimeWarning``). Use
    `verify_corpus()` for the full content-hash check.

    Raises:
        ValueError: a bad argument, or ``out`` holds a corpus built from another configuration or seed.
        StaleCorpusError: ``out`` holds a corpus built by another generator version (a ``ValueError``).
    """
    _check_build_args(seed, workers, progress, rebuild)
    config = get_config(preset)
    root = Path(out) if out is not None else default_dir(config, seed)
    root.mkdir(parents=True, exist_ok=True)
    meta, fest, fest_exe = _meta(config, seed)
    _open_cache(root, meta, rebuild)
    if (root / MANIFEST_NAME).is_file() and _quick_check(root, config):
        return root
    resumed = (root / MANIFEST_NAME).is_file()
    report = _complete(root, config, int(seed), fest, fest_exe, workers, progress, full=False)
    if resumed and not report.ok:
        warnings.warn(
            f"corpus {root} was damaged and has been repaired: {_summary(report)}",
            RuntimeWarning,
            stacklevel=2,
        )
    return root


def _summary(report: CorpusCheck) -> str:
    parts = []
    if report.damaged:
        first = ", ".join(f"{k} ({v})" for k, v in list(report.damaged.items())[:3])
        more = f" and {len(report.damaged) - 3} more" if len(report.damaged) > 3 else ""
        parts.append(f"{len(report.damaged)} damaged audio file(s): {first}{more}")
    if report.shards_rendered:
        parts.append(f"{len(report.shards_rendered)} shard(s) rendered whole")
    if report.manifest_rewritten:
        parts.append("manifest.jsonl rewritten")
    return "; ".join(parts) or "intact"


def verify_corpus(
    corpus_dir: str | Path, repair: bool = True, workers: int | None = None, progress: bool = False
) -> CorpusCheck:
    """Full check of a built corpus: generator versions, every shard manifest, the merged manifest, and the
    size and SHA-256 of every audio file; with ``repair``, re-render exactly the damaged utterances
    (bit-exactly: each repaired file must hash to what its manifest records) and rewrite what is missing.

    Raises:
        FileNotFoundError: ``corpus_dir`` holds no ``config.json``.
        StaleCorpusError: the corpus was built by another generator version (rebuild it instead).
        ValueError: ``config.json`` is damaged.
    """
    root = Path(corpus_dir)
    cfg_path = root / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no config.json in {root}: is it a generated corpus?")
    try:
        old = json.loads(cfg_path.read_text())
        config, seed = CorpusConfig.from_dict(old["config"]), int(old["seed"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{cfg_path} is damaged ({e}); rebuild the corpus") from None
    meta, fest, fest_exe = _meta(config, seed)
    diff = version_differences(old.get("generator"), meta["generator"])
    if diff:
        raise StaleCorpusError(
            f"{root} was built by another corpus generator ({'; '.join(diff)}); it cannot be repaired "
            "bit-exactly: rebuild it (python -m zoo.data build --rebuild)"
        )
    if workers is not None:
        check_int(workers, "workers", low=1)
    return _complete(root, config, seed, fest, fest_exe, workers, progress, full=True, repair=repair)


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
    "ENGINES",
    "FLAC_LEVEL",
    "PRESETS",
    "BuildStats",
    "CorpusCheck",
    "CorpusConfig",
    "build_corpus",
    "corpus_stats",
    "default_dir",
    "get_config",
    "load_stats",
    "perturb",
    "plan_utterance",
    "render",
    "verify_corpus",
    "voice_splits",
]
