"""Typed configurations of Granite-speech's projector, text LM and LoRA, with named presets.

The speech LM of Granite-speech (Saon et al., arXiv:2505.08699) composes the zoo's Conformer-CTC encoder
([`zoo.models.ConformerConfig`][zoo.models.ConformerConfig]), a windowed Q-Former projector
(`QFormerConfig`), a decoder-only text LM (`LMConfig`) and a LoRA on the LM's query and value projections
(`LoRAConfig`). `GraniteConfig` holds all four; `granite_config()` looks a preset up.

Presets: ``tiny`` (tests, CPU seconds), ``quick`` and ``standard`` (the recipe's CPU scales), and the
paper's ``granite-3.3-2b`` / ``granite-3.3-8b`` sizes (for reference: far too large for CPU training).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from zoo.checks import check_choice, check_int, check_real
from zoo.models.conformer import CONFORMER_PRESETS, ConformerConfig
from zoo.models.presets import preset_config

__all__ = ["GRANITE_PRESETS", "GraniteConfig", "LMConfig", "LoRAConfig", "QFormerConfig", "granite_config"]

PROJECTORS = ("qformer", "mlp")


@dataclass(frozen=True)
class QFormerConfig:
    """The windowed Q-Former projector (BLIP-2 layers; Granite: hidden 1024, 16 heads, FFN 4096).

    Attributes:
        hidden: Q-Former width.
        num_heads: attention heads (must divide ``hidden``).
        ffn: feed-forward width.
        num_layers: Q-Former layers (each: self-attention, cross-attention, feed-forward).
        window: encoder frames per window, ``K`` (Granite 15).
        num_queries: learned queries per window, ``N`` (Granite 3 = 15 / 5).
        dropout: dropout after every sub-layer and on the queries.
        layer_norm_eps: LayerNorm epsilon (BLIP-2: 1e-12).
    """

    hidden: int = 128
    num_heads: int = 4
    ffn: int = 256
    num_layers: int = 2
    window: int = 15
    num_queries: int = 3
    dropout: float = 0.0
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        for name in ("hidden", "num_heads", "ffn", "num_layers", "window", "num_queries"):
            check_int(getattr(self, name), name, low=1)
        if self.hidden % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden ({self.hidden})")
        check_real(self.dropout, "dropout", low=0.0, high=1.0)
        check_real(self.layer_norm_eps, "layer_norm_eps", low=0.0, low_open=True)


@dataclass(frozen=True)
class LMConfig:
    """A pre-LN decoder-only transformer LM (Granite: granite-3.3-{2b,8b}-instruct).

    Attributes:
        vocab_size: token ids, the audio placeholder included.
        d_model: width; num_heads: heads; num_layers: blocks; ff_mult: feed-forward expansion.
        max_len: longest sequence (learned absolute positions): the LM's context.
        dropout: dropout on the residual branches.
    """

    vocab_size: int = 260
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 2
    ff_mult: int = 4
    max_len: int = 256
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_heads", "num_layers", "ff_mult", "max_len"):
            check_int(getattr(self, name), name, low=1)
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        check_real(self.dropout, "dropout", low=0.0, high=1.0)


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA (Hu et al., 2021) on the LM's attention projections (Granite: rank 64 on ``q_proj``, ``v_proj``).

    Attributes:
        rank: ``r``; alpha: ``α`` (the update is scaled by ``α / r``); dropout: on the adapter's input.
        targets: names of the LM's linear layers that get an adapter.
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("q_proj", "v_proj")

    def __post_init__(self) -> None:
        check_int(self.rank, "rank", low=1)
        check_real(self.alpha, "alpha", low=0.0, low_open=True)
        check_real(self.dropout, "dropout", low=0.0, high=1.0)
        if not self.targets:
            raise ValueError("targets must name at least one linear layer")


@dataclass(frozen=True)
class GraniteConfig:
    """The whole speech LM: encoder, projector, LM, LoRA.

    Attributes:
        encoder: the Conformer-CTC encoder.
        projector: the windowed Q-Former.
        lm: the text LM (``vocab_size`` includes the audio placeholder).
        lora: the speech-mode adapter.
        projector_kind: ``"qformer"`` or ``"mlp"`` (the ablation: 5 stacked frames through a 2-layer MLP,
            the same number of audio embeddings).
        mlp_hidden: hidden width of the MLP projector (``None``: chosen to match the Q-Former's parameters).
        audio_token_id: the placeholder id (``None``: the last id of the LM vocabulary).
    """

    encoder: ConformerConfig = field(default_factory=lambda: CONFORMER_PRESETS["tiny"])
    projector: QFormerConfig = field(default_factory=QFormerConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    projector_kind: str = "qformer"
    mlp_hidden: int | None = None
    audio_token_id: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.projector_kind, "projector_kind", PROJECTORS)
        if self.mlp_hidden is not None:
            check_int(self.mlp_hidden, "mlp_hidden", low=1)
        if self.projector.window % self.projector.num_queries:
            raise ValueError(
                f"num_queries ({self.projector.num_queries}) must divide window ({self.projector.window}) "
                "(the MLP projector stacks window / num_queries frames per embedding)"
            )
        if self.audio_token_id is not None and not 0 <= self.audio_token_id < self.lm.vocab_size:
            raise ValueError(
                f"audio_token_id must lie in [0, {self.lm.vocab_size}), got {self.audio_token_id}"
            )

    @property
    def audio_id(self) -> int:
        """The audio placeholder's token id."""
        return self.lm.vocab_size - 1 if self.audio_token_id is None else self.audio_token_id


_TINY_ENCODER = replace(CONFORMER_PRESETS["tiny"], d_model=48, num_heads=4, num_layers=2, n_mels=40)

#: Named configurations (the LM vocabulary is set from the tokenizer with ``lm=...`` overrides).
GRANITE_PRESETS: dict[str, GraniteConfig] = {
    # tests: a 2-layer 48-wide encoder, a 32-wide Q-Former and a 32-wide 2-layer LM
    "tiny": GraniteConfig(
        encoder=_TINY_ENCODER,
        projector=QFormerConfig(hidden=32, num_heads=4, ffn=64),
        lm=LMConfig(vocab_size=40, d_model=32, num_heads=4, num_layers=2, max_len=128),
        lora=LoRAConfig(rank=4, alpha=8.0),
    ),
    # the recipe's CPU scales (reference spec: encoder ≈ 1.3 M, Q-Former ≈ 0.4 M, LM ≈ 0.45 M)
    "quick": GraniteConfig(
        encoder=replace(CONFORMER_PRESETS["tiny"], n_mels=40, d_model=96, num_layers=4),
        projector=QFormerConfig(hidden=96, num_heads=4, ffn=192),
        lm=LMConfig(vocab_size=513, d_model=96, num_heads=4, num_layers=2, max_len=192),
        lora=LoRAConfig(rank=8, alpha=16.0),
    ),
    "standard": GraniteConfig(
        encoder=replace(CONFORMER_PRESETS["small"], n_mels=40),
        projector=QFormerConfig(hidden=128, num_heads=4, ffn=256),
        lm=LMConfig(vocab_size=1025, d_model=128, num_heads=4, num_layers=4, max_len=256),
        lora=LoRAConfig(rank=8, alpha=16.0),
    ),
    # The paper's sizes: encoder 10 × 1024, Q-Former 1024 / 16 heads / FFN 4096, LoRA r = 64 on q, v,
    # granite-3.3-2b-instruct (40 layers, d 2048, 32 heads) / -8b (40 layers, d 4096, 32 heads),
    # vocabulary 49 160 with the audio token 49 155, context 128 k (here: learned positions, 4 k).
    "granite-3.3-2b": GraniteConfig(
        encoder=CONFORMER_PRESETS["granite-3.3"],
        projector=QFormerConfig(hidden=1024, num_heads=16, ffn=4096, dropout=0.1),
        lm=LMConfig(vocab_size=49160, d_model=2048, num_heads=32, num_layers=40, ff_mult=4, max_len=4096),
        lora=LoRAConfig(rank=64, alpha=32.0),
        audio_token_id=49155,
    ),
    "granite-3.3-8b": GraniteConfig(
        encoder=CONFORMER_PRESETS["granite-3.3"],
        projector=QFormerConfig(hidden=1024, num_heads=16, ffn=4096, dropout=0.1),
        lm=LMConfig(vocab_size=49160, d_model=4096, num_heads=32, num_layers=40, ff_mult=4, max_len=4096),
        lora=LoRAConfig(rank=64, alpha=32.0),
        audio_token_id=49155,
    ),
}


def granite_config(preset: str = "tiny", **overrides: Any) -> GraniteConfig:
    """The named preset with ``overrides`` applied (e.g. ``projector_kind="mlp"``).

    Examples:
        >>> granite_config("tiny").projector.window
        15
        >>> granite_config("tiny", projector_kind="mlp").projector_kind
        'mlp'
    """
    return preset_config(GRANITE_PRESETS, preset, **overrides)
