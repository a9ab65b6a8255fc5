"""Granite-speech (Saon et al., arXiv:2505.08699): the speech LM around the zoo's Conformer-CTC encoder.

* `WindowedQFormer` / `MLPProjector` — the projector and its ablation; `audio_token_count()`;
* `LoRALinear` and `apply_lora()` / `merge_lora()` / `unmerge_lora()` / `lora_enabled()`;
* `DecoderLM` — the text LM with a key-value cache;
* `GraniteSpeech` — the composed model: speech mode and text mode, greedy and beam decoding;
* `GraniteConfig` and its parts, `GRANITE_PRESETS`, `granite_config()`.
"""

from zoo.models.granite.lm import DecoderLM, KVCache, LMOutput, next_token_loss
from zoo.models.granite.lora import (
    LoRALinear,
    apply_lora,
    lora_enabled,
    lora_layers,
    lora_parameters,
    merge_lora,
    set_lora,
    unmerge_lora,
)
from zoo.models.granite.presets import (
    GRANITE_PRESETS,
    GraniteConfig,
    LMConfig,
    LoRAConfig,
    QFormerConfig,
    granite_config,
)
from zoo.models.granite.qformer import (
    MLPProjector,
    QFormerLayer,
    WindowedQFormer,
    audio_token_count,
    mlp_hidden_for,
    projector_lengths,
)
from zoo.models.granite.speech_lm import GraniteSpeech, SpeechLMOutput, expand_audio_token, scatter_audio

__all__ = [
    "GRANITE_PRESETS",
    "DecoderLM",
    "GraniteConfig",
    "GraniteSpeech",
    "KVCache",
    "LMConfig",
    "LMOutput",
    "LoRAConfig",
    "LoRALinear",
    "MLPProjector",
    "QFormerConfig",
    "QFormerLayer",
    "SpeechLMOutput",
    "WindowedQFormer",
    "apply_lora",
    "audio_token_count",
    "expand_audio_token",
    "granite_config",
    "lora_enabled",
    "lora_layers",
    "lora_parameters",
    "merge_lora",
    "mlp_hidden_for",
    "next_token_loss",
    "projector_lengths",
    "scatter_audio",
    "set_lora",
    "unmerge_lora",
]
