"""A generated audio-visual corpus: clips of events in which something is seen and heard together.

Each clip is a few seconds of 16 kHz audio and a few video frames per second at a small resolution. In
every slot an object of one class (its own shape and colour family) appears at a random position and size,
still or moving, over a textured background with silent distractors, while its class's sound plays (a tone
family, a noise band, or a word spoken by eSpeak NG) over background noise; some slots are silent. Every
frame carries its ground truth: the sounding class and the object's mask and box. The splits draw from
disjoint seeds and the test split holds only (class, quadrant, background, shade) combinations never seen in
training.

```python
from zoo.data.av import build_av_corpus

corpus = build_av_corpus("av-quick")            # cached in $ZOO_DATA_DIR, verified on load
frames = corpus.splits["train"].images()        # (N, T, 3, H, W)
feats = corpus.features("train")                # (N, frames, n_mels) normalised log-mels
```
"""

from zoo.data.av.config import AV_PRESETS, AV_VERSION, CLASSES, AVClass, AVCorpusConfig, av_config
from zoo.data.av.scene import BACKGROUNDS, SHADES, SPLIT_IDS, held_out, plan_clip, render_frames, shape_mask
from zoo.data.av.sound import WORD_VOICES, event_sound, render_audio, word_bank
from zoo.data.av.store import (
    SPLITS,
    AVCorpus,
    AVSplit,
    DamagedCorpusError,
    av_corpus_dir,
    build_av_corpus,
    generate_split,
    load_av_corpus,
    verify_av_corpus,
)

__all__ = [
    "AV_PRESETS",
    "AV_VERSION",
    "BACKGROUNDS",
    "CLASSES",
    "SHADES",
    "SPLITS",
    "SPLIT_IDS",
    "WORD_VOICES",
    "AVClass",
    "AVCorpus",
    "AVCorpusConfig",
    "AVSplit",
    "DamagedCorpusError",
    "av_config",
    "av_corpus_dir",
    "build_av_corpus",
    "event_sound",
    "generate_split",
    "held_out",
    "load_av_corpus",
    "plan_clip",
    "render_audio",
    "render_frames",
    "shape_mask",
    "verify_av_corpus",
    "word_bank",
]
