"""ASR models of the zoo: Conformer-CTC (Granite-speech encoder), SAR streaming ASR and DOTA.

Every model has a frozen config dataclass with named presets (``tiny``/``small`` CPU models and the
paper-scale configurations), ``forward(feats, feat_lens, tokens, token_lens) -> ModelOutput`` and
``transcribe(feats, feat_lens) -> list[list[int]]``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoo.models.attention import RelPositionMultiHeadAttention, block_relative_attention, relative_attention
from zoo.models.conformer import (
    CONFORMER_PRESETS,
    ConformerBlock,
    ConformerConfig,
    ConformerCTC,
    EncoderOutput,
    ModelOutput,
    conformer_config,
    ctc_loss,
)
from zoo.models.dota import DOTA, DOTA_PRESETS, DOTAConfig, dota_config
from zoo.models.granite import (
    GRANITE_PRESETS,
    GraniteConfig,
    GraniteSpeech,
    audio_token_count,
    expand_audio_token,
    granite_config,
)
from zoo.models.masks import block_mask, causal_mask, lengths_to_mask, prefix_lm_mask
from zoo.models.presets import preset_config
from zoo.models.sar import SAR, SAR_PRESETS, SARConfig, SARStreamer, align_to_blocks, sar_config

__all__ = [
    "CONFORMER_PRESETS",
    "DOTA",
    "DOTA_PRESETS",
    "GRANITE_PRESETS",
    "MODEL_NAMES",
    "SAR",
    "SAR_PRESETS",
    "ConformerBlock",
    "ConformerCTC",
    "ConformerConfig",
    "DOTAConfig",
    "EncoderOutput",
    "GraniteConfig",
    "GraniteSpeech",
    "ModelOutput",
    "RelPositionMultiHeadAttention",
    "SARConfig",
    "SARStreamer",
    "align_to_blocks",
    "audio_token_count",
    "block_mask",
    "block_relative_attention",
    "build_model",
    "causal_mask",
    "conformer_config",
    "ctc_loss",
    "dota_config",
    "expand_audio_token",
    "granite_config",
    "lengths_to_mask",
    "model_presets",
    "prefix_lm_mask",
    "preset_config",
    "relative_attention",
    "sar_config",
]

#: Names accepted by `build_model()` and ``python -m zoo.train``.
MODEL_NAMES = ("conformer", "conformer-plain", "sar", "sar-ctc", "dota")


def build_model(name: str, preset: str = "tiny", **overrides: Any) -> nn.Module:
    """A model by name: ``conformer`` (self-conditioned CTC), ``conformer-plain`` (top CTC only),
    ``sar``, ``sar-ctc`` (the same blockwise encoder with plain CTC) or ``dota``; ``overrides`` go to the
    preset's config (e.g. ``vocab_size``)."""
    if name == "conformer":
        return ConformerCTC(conformer_config(preset, **overrides))
    if name == "conformer-plain":
        return ConformerCTC(
            conformer_config(preset, **{"self_conditioning": False, "mid_weight": 0.0, **overrides})
        )
    if name == "sar":
        return SAR(sar_config(preset, **overrides))
    if name == "sar-ctc":
        return SAR(sar_config(preset, **{"sar": False, "lm_layers": 0, **overrides}))
    if name == "dota":
        return DOTA(dota_config(preset, **overrides))
    raise ValueError(f"model name must be one of {', '.join(MODEL_NAMES)}; got {name!r}")


def model_presets(name: str) -> list[str]:
    """The preset names of model ``name`` (one of `MODEL_NAMES`)."""
    if name.startswith("conformer"):
        return sorted(CONFORMER_PRESETS)
    if name.startswith("sar"):
        return sorted(SAR_PRESETS)
    if name == "dota":
        return sorted(DOTA_PRESETS)
    raise ValueError(f"model name must be one of {', '.join(MODEL_NAMES)}; got {name!r}")
