"""What determines a generated audio-visual corpus: `AVCorpusConfig`, its presets and the class table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from zoo.checks import check_int, check_real

__all__ = ["AV_PRESETS", "AV_VERSION", "CLASSES", "AVClass", "AVCorpusConfig", "av_config"]

#: Version of the audio-visual generator (scene plans, rendering, storage). Bump it with every change that
#: alters one stored sample of a corpus built from an unchanged `AVCorpusConfig`: caches built by other
#: values are then refused instead of reused.
AV_VERSION = 1


@dataclass(frozen=True)
class AVClass:
    """One object class: what it looks like and what it sounds like.

    Attributes:
        name: the class name.
        shape: the drawn shape (``square``, ``disc``, ``triangle``, ``cross``, ``ring``, ``diamond``).
        rgb: the base colour (shades of it are drawn per event).
        sound: ``harmonic`` (a tone family with a random fundamental in ``band``), ``chirp`` (a rising
            sweep starting in ``band``), ``noise`` (band-pass noise in ``band``) or ``word`` (``word``
            spoken by the eSpeak NG synthesiser).
        band: frequency range in Hz of the tone or noise family.
        word: the spoken word of a ``word`` class.
    """

    name: str
    shape: str
    rgb: tuple[int, int, int]
    sound: str
    band: tuple[float, float] = (0.0, 0.0)
    word: str = ""


#: The object classes, in label order.
CLASSES: tuple[AVClass, ...] = (
    AVClass("hum", "square", (220, 40, 40), "harmonic", (180.0, 300.0)),
    AVClass("whistle", "disc", (40, 200, 60), "chirp", (700.0, 1100.0)),
    AVClass("hiss", "triangle", (50, 80, 230), "noise", (1500.0, 2600.0)),
    AVClass("rain", "cross", (230, 210, 40), "noise", (4200.0, 6500.0)),
    AVClass("yes", "ring", (210, 50, 210), "word", word="yes"),
    AVClass("seven", "diamond", (40, 210, 210), "word", word="seven"),
)


@dataclass(frozen=True)
class AVCorpusConfig:
    """Everything that determines a generated audio-visual corpus (together with the seed).

    A clip lasts ``frames / fps`` seconds and is cut into ``frames`` slots; slot $k$ holds one event (an
    object of one class appears, possibly moving, and its sound plays) or a silent stretch, and video
    frame $k$ is the picture at the slot's centre.

    Attributes:
        name: preset name (the cache folder's name).
        n_train, n_val, n_test: clips per split.
        frames: video frames per clip (one per slot).
        fps: video frames per second.
        image_size: frame height and width in pixels.
        classes: how many of `CLASSES` are used.
        sample_rate: audio rate in Hz.
        n_mels, n_fft, hop_length: log-mel features.
        silent_prob: probability that a slot is a silent stretch.
        moving_prob: probability that an event's object moves.
        max_distractors: silent distractor objects per clip (0 to this many).
        size: object radius range in pixels.
        noise_db: background-noise level range in dBFS.

    Examples:
        >>> from zoo.data.av import AVCorpusConfig
        >>> cfg = AVCorpusConfig(n_train=8, n_val=2, n_test=2)
        >>> cfg.duration, cfg.num_samples, cfg.num_feature_frames
        (2.0, 32000, 126)
    """

    name: str = "av-custom"
    n_train: int = 400
    n_val: int = 100
    n_test: int = 200
    frames: int = 4
    fps: float = 2.0
    image_size: int = 32
    classes: int = 6
    sample_rate: int = 16000
    n_mels: int = 32
    n_fft: int = 512
    hop_length: int = 256
    silent_prob: float = 0.15
    moving_prob: float = 0.5
    max_distractors: int = 2
    size: tuple[int, int] = (4, 7)
    noise_db: tuple[float, float] = (-42.0, -30.0)

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_test"):
            check_int(getattr(self, name), name, low=1)
        check_int(self.frames, "frames", low=1)
        check_real(self.fps, "fps", low=0.0, low_open=True)
        check_int(self.image_size, "image_size", low=16)
        check_int(self.classes, "classes", low=2)
        if self.classes > len(CLASSES):
            raise ValueError(f"classes must be <= {len(CLASSES)}, got {self.classes}")
        check_int(self.sample_rate, "sample_rate", low=4000)
        check_int(self.n_mels, "n_mels", low=1)
        check_int(self.hop_length, "hop_length", low=1)
        check_int(self.n_fft, "n_fft", low=2)
        check_real(self.silent_prob, "silent_prob", low=0.0, high=1.0, high_open=True)
        check_real(self.moving_prob, "moving_prob", low=0.0, high=1.0)
        check_int(self.max_distractors, "max_distractors", low=0)
        lo, hi = self.size
        if not (isinstance(lo, int) and isinstance(hi, int) and 2 <= lo <= hi <= self.image_size // 3):
            raise ValueError(
                f"size must be (lo, hi) integers with 2 <= lo <= hi <= image_size/3, got {self.size}"
            )
        if not self.noise_db[0] <= self.noise_db[1] < 0:
            raise ValueError(f"noise_db must be (lo, hi) with lo <= hi < 0 dBFS, got {self.noise_db}")

    @property
    def duration(self) -> float:
        """Clip length in seconds."""
        return self.frames / self.fps

    @property
    def num_samples(self) -> int:
        """Audio samples per clip."""
        return round(self.duration * self.sample_rate)

    @property
    def num_feature_frames(self) -> int:
        """Log-mel frames per clip."""
        return self.num_samples // self.hop_length + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AVCorpusConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown AVCorpusConfig fields {unknown}")
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kwargs)


#: Named corpora: ``av-tiny`` (tests, seconds), ``av-quick`` (the quick recipe and claims) and
#: ``av-standard``.
AV_PRESETS: dict[str, AVCorpusConfig] = {
    "av-tiny": AVCorpusConfig(name="av-tiny", n_train=24, n_val=8, n_test=12),
    "av-quick": AVCorpusConfig(name="av-quick", n_train=400, n_val=100, n_test=150),
    "av-standard": AVCorpusConfig(name="av-standard", n_train=4000, n_val=500, n_test=1000),
}


def av_config(preset: str | AVCorpusConfig) -> AVCorpusConfig:
    """The `AVCorpusConfig` of a preset name, or ``preset`` itself."""
    if isinstance(preset, AVCorpusConfig):
        return preset
    if preset not in AV_PRESETS:
        raise ValueError(
            f"unknown audio-visual corpus preset {preset!r}; expected one of {', '.join(AV_PRESETS)}"
        )
    return AV_PRESETS[preset]
