"""A generated multilingual speech corpus, real-corpus readers, features, tokenizers and batching.

Quick start::

    from zoo.data import build_corpus, read_manifest, CharTokenizer, LogMel, SpeechDataset, collate

    root = build_corpus("tiny")                       # ≈ 4 min of eSpeak NG speech, cached
    tok = CharTokenizer.from_corpus(root)
    ds = SpeechDataset(root, "labelled", tok, LogMel(n_mels=40), languages=["en"])
    batch = collate([ds[0], ds[1]])
"""

from zoo.data.audio import AudioClip, AudioError, audio_info, load_audio, read_audio, write_audio
from zoo.data.augment import AUGMENT_PRESETS, Augment
from zoo.data.augmented import AugmentedCopies
from zoo.data.corpus import (
    PRESETS,
    CorpusCheck,
    CorpusConfig,
    build_corpus,
    corpus_stats,
    default_dir,
    load_stats,
    verify_corpus,
)
from zoo.data.dataset import SpeechDataset, collate, select
from zoo.data.features import (
    Fbank,
    Features,
    FeatureSpec,
    GlobalCMVN,
    LogMel,
    SpecAugment,
    spec_augment,
    spec_augment_batch,
    stack_frames,
    stacked_length,
    utterance_cmvn,
)
from zoo.data.integrity import StaleCorpusError
from zoo.data.manifest import SPLITS, Utterance, read_manifest, write_manifest
from zoo.data.readers import read_covost_tsv, read_librispeech
from zoo.data.synth import VoiceSpec, synthesize, synthesize_here
from zoo.data.text import LANGUAGES, Phrase, normalize, random_phrase
from zoo.data.tokenizers import CharTokenizer, SentencePieceTokenizer, corpus_tokenizer

__all__ = [
    "AUGMENT_PRESETS",
    "LANGUAGES",
    "PRESETS",
    "SPLITS",
    "AudioClip",
    "AudioError",
    "Augment",
    "AugmentedCopies",
    "CharTokenizer",
    "CorpusCheck",
    "CorpusConfig",
    "Fbank",
    "FeatureSpec",
    "Features",
    "GlobalCMVN",
    "LogMel",
    "Phrase",
    "SentencePieceTokenizer",
    "SpecAugment",
    "SpeechDataset",
    "StaleCorpusError",
    "Utterance",
    "VoiceSpec",
    "audio_info",
    "build_corpus",
    "collate",
    "corpus_stats",
    "corpus_tokenizer",
    "default_dir",
    "load_audio",
    "load_stats",
    "normalize",
    "random_phrase",
    "read_audio",
    "read_covost_tsv",
    "read_librispeech",
    "read_manifest",
    "select",
    "spec_augment",
    "spec_augment_batch",
    "stack_frames",
    "stacked_length",
    "synthesize",
    "synthesize_here",
    "utterance_cmvn",
    "verify_corpus",
    "write_audio",
    "write_manifest",
]
