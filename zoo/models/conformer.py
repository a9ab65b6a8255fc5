"""Conformer-CTC encoder with frame stacking, block attention and self-conditioning.

This is Granite-speech's acoustic encoder (Saon et al., arXiv:2505.08699; layer definitions follow the
released ``modeling_granite_speech.py``):

```text
log-mel (B, T, F) ─ stack k frames ─► (B, T/k, k·F) ─ LN ─ Linear ─► (B, T', d)
  └─ N × ConformerBlock:  h += ½·FF(h);  h += BlockAttn(LN h);  h += Conv(h);  h += ½·FF(h);  h = LN(h)
       at layer N/2 (self-conditioning):  z = W_out h  (mid CTC logits),  h ← h + W_mid softmax(z)
  └─ CTC head W_out (shared with the mid layer)  ─►  logits (B, T', C)
```

Loss (self-conditioned CTC, Nozaki & Komatsu 2021, weights from Granite):
$\\mathcal{L} = w\\,\\mathrm{CTC}(z_{N/2}, y) + (1 - w)\\,\\mathrm{CTC}(z_N, y)$
with $w_{\\mathrm{mid}} = 0.2$.

Block attention: frames attend only inside their block of ``block_size`` frames (Granite: 200 = 4 s);
relative positions (Shaw) are clipped to ``±max_distance``. `ConformerCTC.encode()` returns the hidden
states before the CTC head, the input a contrastive lower-level loss (BL-JUST) needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.data import stack_frames, stacked_length
from zoo.models.attention import RelPositionMultiHeadAttention
from zoo.models.masks import lengths_to_mask
from zoo.models.presets import preset_config

__all__ = [
    "CONFORMER_PRESETS",
    "ConformerBlock",
    "ConformerCTC",
    "ConformerConfig",
    "ConformerEncoder",
    "ConvModule",
    "EncoderOutput",
    "FeedForward",
    "ModelOutput",
    "conformer_config",
    "ctc_loss",
]


@dataclass(frozen=True)
class ConformerConfig:
    """Configuration of `ConformerCTC` (defaults: the tiny CPU model).

    Attributes:
        n_mels: log-mel bins per input frame.
        stack: frames stacked into one encoder frame (Granite: 2, i.e. 100 → 50 frames/s).
        d_model: width; num_heads: heads; ff_mult: FF expansion; num_layers: conformer blocks.
        conv_kernel: depthwise kernel; conv_expansion: channels of the conv module = expansion · d.
        block_size: block-attention size in encoder frames (``None`` = full attention).
        max_distance: largest clipped relative distance (Granite: clipped to the block size).
        vocab_size: CTC outputs including the blank (id 0).
        self_conditioning: feed mid-layer CTC posteriors back into the hidden stream.
        mid_weight: weight of the mid-layer CTC loss (0 disables it; Granite 0.2).
        dropout: dropout in FF, conv and attention.
        conv_norm: ``"batch"`` (Granite) or ``"layer"`` (padding-independent also in training).
    """

    n_mels: int = 80
    stack: int = 2
    d_model: int = 144
    num_heads: int = 4
    ff_mult: int = 4
    num_layers: int = 4
    conv_kernel: int = 15
    conv_expansion: int = 2
    block_size: int | None = 50
    max_distance: int = 50
    vocab_size: int = 32
    self_conditioning: bool = True
    mid_weight: float = 0.2
    dropout: float = 0.1
    conv_norm: str = "batch"

    def __post_init__(self) -> None:
        for name in ("n_mels", "stack", "d_model", "num_heads", "ff_mult", "num_layers", "conv_kernel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd, got {self.conv_kernel}")
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(f"block_size must be >= 1 or None, got {self.block_size}")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (blank + one label), got {self.vocab_size}")
        if not 0.0 <= self.mid_weight < 1.0:
            raise ValueError(f"mid_weight must lie in [0, 1), got {self.mid_weight}")
        if self.conv_norm not in ("batch", "layer"):
            raise ValueError(f"conv_norm must be 'batch' or 'layer', got {self.conv_norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")


#: Named configurations: tiny/small CPU models and the paper-scale Granite encoders.
CONFORMER_PRESETS: dict[str, ConformerConfig] = {
    # CPU models stack 4 frames (25 encoder frames/s, still above the corpus' fastest ≈ 24 chars/s that CTC
    # needs): half the frames of stack 2, and on en-quick they learn faster per step too. The tiny model
    # trains for a few hundred steps only, where dropout just slows learning down.
    "tiny": ConformerConfig(
        d_model=96, num_heads=4, num_layers=4, stack=4, block_size=50, max_distance=50, dropout=0.0
    ),
    "small": ConformerConfig(d_model=144, num_heads=4, num_layers=4, stack=4, block_size=50, max_distance=50),
    # Granite-speech 3.3 as in the paper: 10 layers, 1024 wide, 8 × 128 heads, blocks of 200 frames.
    "granite-3.3": ConformerConfig(
        n_mels=80,
        stack=2,
        d_model=1024,
        num_heads=8,
        num_layers=10,
        block_size=200,
        max_distance=200,
        vocab_size=42,
        dropout=0.1,
    ),
    # Revision 3.3.2 of the released checkpoint: 16 layers, 256 character outputs.
    "granite-3.3.2": ConformerConfig(
        n_mels=80,
        stack=2,
        d_model=1024,
        num_heads=8,
        num_layers=16,
        block_size=200,
        max_distance=200,
        vocab_size=256,
        dropout=0.1,
    ),
}


def conformer_config(preset: str = "tiny", **overrides: Any) -> ConformerConfig:
    """The named preset with ``overrides`` applied (e.g. ``vocab_size=tokenizer.vocab_size``)."""
    return preset_config(CONFORMER_PRESETS, preset, **overrides)


def ctc_loss(logits: Tensor, lengths: Tensor, tokens: Tensor, token_lens: Tensor, blank: int = 0) -> Tensor:
    """Mean CTC loss per target token, averaged over the batch (``zero_infinity=True``).

    Args:
        logits: ``(B, T, C)`` unnormalised scores; lengths ``(B,)``; tokens ``(B, U)``; token_lens ``(B,)``.
    """
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)
    return F.ctc_loss(
        log_probs, tokens, lengths, token_lens, blank=blank, reduction="mean", zero_infinity=True
    )


class FeedForward(nn.Module):
    """``LN → Linear(d, m·d) → SiLU → Dropout → Linear(m·d, d) → Dropout``."""

    def __init__(self, d: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d),
            nn.Linear(d, mult * d),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(mult * d, d),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvModule(nn.Module):
    """``LN → pointwise(d → 2e·d) → GLU → depthwise(k) → Norm → SiLU → pointwise(e·d → d) → Dropout``.

    Padded frames are zeroed before the depthwise convolution, so they never leak into valid frames.
    ``causal=True`` pads only on the left (no look-ahead; used by the streaming encoder).
    """

    def __init__(
        self,
        d: int,
        kernel: int = 15,
        expansion: int = 2,
        dropout: float = 0.0,
        norm: str = "batch",
        causal: bool = False,
    ):
        super().__init__()
        inner = expansion * d
        self.ln = nn.LayerNorm(d)
        self.pw1 = nn.Conv1d(d, 2 * inner, 1)
        self.causal = causal
        self.dw = nn.Conv1d(
            inner, inner, kernel, groups=inner, bias=False, padding=0 if causal else (kernel - 1) // 2
        )
        self.norm_kind = norm
        self.norm: nn.Module = nn.BatchNorm1d(inner) if norm == "batch" else nn.LayerNorm(inner)
        self.pw2 = nn.Conv1d(inner, d, 1)
        self.drop = nn.Dropout(dropout)
        self.pad = (kernel - 1, 0)

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        y = F.glu(self.pw1(self.ln(x).transpose(1, 2)), dim=1)  # (B, inner, T)
        if valid is not None:
            y = y.masked_fill(~valid[:, None, :], 0.0)
        y = self.dw(F.pad(y, self.pad) if self.causal else y)
        y = self.norm(y) if self.norm_kind == "batch" else self.norm(y.transpose(1, 2)).transpose(1, 2)
        y = self.pw2(F.silu(y))
        return self.drop(y.transpose(1, 2))


class ConformerBlock(nn.Module):
    """Granite's conformer block: ``h += ½FF(h); h += Attn(LN h); h += Conv(h); h += ½FF(h); h = LN(h)``.

    ``forward(x, valid=None, mask=None, block=None)``: see `RelPositionMultiHeadAttention`.
    """

    def __init__(
        self,
        d: int,
        num_heads: int,
        *,
        ff_mult: int = 4,
        conv_kernel: int = 15,
        conv_expansion: int = 2,
        max_distance: int = 64,
        dropout: float = 0.0,
        conv_norm: str = "batch",
        causal_conv: bool = False,
    ):
        super().__init__()
        self.ff1 = FeedForward(d, ff_mult, dropout)
        self.attn_ln = nn.LayerNorm(d)
        # as in Granite, dropout acts on the attention output, not on the attention weights
        self.attn = RelPositionMultiHeadAttention(d, num_heads, max_distance)
        self.attn_drop = nn.Dropout(dropout)
        self.conv = ConvModule(d, conv_kernel, conv_expansion, dropout, conv_norm, causal_conv)
        self.ff2 = FeedForward(d, ff_mult, dropout)
        self.out_ln = nn.LayerNorm(d)

    def forward(
        self, x: Tensor, valid: Tensor | None = None, mask: Tensor | None = None, block: int | None = None
    ) -> Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn_drop(self.attn(self.attn_ln(x), valid=valid, mask=mask, block=block))
        x = x + self.conv(x, valid)
        x = x + 0.5 * self.ff2(x)
        return self.out_ln(x)


@dataclass
class EncoderOutput:
    """What `ConformerEncoder.forward()` returns.

    Attributes:
        hidden: ``(B, T', d)`` hidden states after the last block (before the CTC head).
        lengths: ``(B,)`` valid encoder frames.
        logits: ``(B, T', C)`` final CTC logits.
        mid_logits: ``(B, T', C)`` mid-layer CTC logits, or ``None`` when no mid CTC is used.
    """

    hidden: Tensor
    lengths: Tensor
    logits: Tensor
    mid_logits: Tensor | None


@dataclass
class ModelOutput:
    """What every zoo ASR model's ``forward`` returns.

    Attributes:
        loss: the training loss (``None`` without targets).
        losses: named loss terms (detached floats are fine for logging).
        logits: ``(B, T, C)`` output scores (CTC logits, or next-token logits for DOTA).
        lengths: ``(B,)`` valid positions of ``logits``.
        hidden: hidden states before the output head.
        extra: model-specific outputs.
    """

    loss: Tensor | None
    losses: dict[str, Tensor]
    logits: Tensor
    lengths: Tensor
    hidden: Tensor
    extra: dict[str, Any]


class ConformerEncoder(nn.Module):
    """Frame stacking → input projection → conformer blocks with self-conditioning; CTC head ``W_out``."""

    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        self.cfg = cfg
        self.input = nn.Sequential(
            nn.LayerNorm(cfg.stack * cfg.n_mels), nn.Linear(cfg.stack * cfg.n_mels, cfg.d_model)
        )
        self.layers = nn.ModuleList(
            ConformerBlock(
                cfg.d_model,
                cfg.num_heads,
                ff_mult=cfg.ff_mult,
                conv_kernel=cfg.conv_kernel,
                conv_expansion=cfg.conv_expansion,
                max_distance=cfg.max_distance,
                dropout=cfg.dropout,
                conv_norm=cfg.conv_norm,
            )
            for _ in range(cfg.num_layers)
        )
        self.out = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.mid = nn.Linear(cfg.vocab_size, cfg.d_model) if cfg.self_conditioning else None
        self.mid_layer = max(1, cfg.num_layers // 2)  # 1-based index of the self-conditioning layer

    def forward(self, feats: Tensor, feat_lens: Tensor) -> EncoderOutput:
        if feats.dim() != 3 or feats.shape[-1] != self.cfg.n_mels:
            raise ValueError(f"feats must be (B, T, {self.cfg.n_mels}), got {tuple(feats.shape)}")
        if feat_lens.shape != feats.shape[:1]:
            raise ValueError(f"feat_lens must be ({feats.shape[0]},), got {tuple(feat_lens.shape)}")
        x = stack_frames(feats, self.cfg.stack, drop_last=True)
        lengths = stacked_length(feat_lens, self.cfg.stack, drop_last=True)
        valid = lengths_to_mask(lengths, x.shape[1])
        h = self.input(x)
        # without padding the masks are no-ops: skip them (cheaper, identical result)
        layer_valid = None if bool(valid.all()) else valid
        mid_logits = None
        use_mid = self.mid is not None or self.cfg.mid_weight > 0
        for i, layer in enumerate(self.layers, start=1):
            h = layer(h, valid=layer_valid, block=self.cfg.block_size)
            if i == self.mid_layer and use_mid and i < len(self.layers):
                mid_logits = self.out(h)
                if self.mid is not None:
                    h = h + self.mid(mid_logits.softmax(-1))
        h = h.masked_fill(~valid[..., None], 0.0)
        return EncoderOutput(h, lengths, self.out(h), mid_logits)


class ConformerCTC(nn.Module):
    """Conformer-CTC ASR model (Granite-speech's acoustic encoder, arXiv:2505.08699).

    ``forward(feats, feat_lens, tokens=None, token_lens=None) -> ModelOutput`` with loss
    $w\\,\\mathrm{CTC}_{\\mathrm{mid}} + (1-w)\\,\\mathrm{CTC}_{\\mathrm{top}}$ (``w = mid_weight``);
    ``encode`` gives the hidden states before the CTC head; ``transcribe`` decodes token ids.
    """

    def __init__(self, cfg: ConformerConfig | None = None):
        super().__init__()
        self.cfg = cfg or ConformerConfig()
        self.encoder = ConformerEncoder(self.cfg)

    def encode(self, feats: Tensor, feat_lens: Tensor) -> EncoderOutput:
        """Encoder output: hidden states ``(B, T', d)`` before the CTC head, lengths and logits."""
        return self.encoder(feats, feat_lens)

    def forward(
        self, feats: Tensor, feat_lens: Tensor, tokens: Tensor | None = None, token_lens: Tensor | None = None
    ) -> ModelOutput:
        enc = self.encode(feats, feat_lens)
        losses: dict[str, Tensor] = {}
        loss = None
        if tokens is not None:
            if token_lens is None:
                raise ValueError("token_lens is required with tokens")
            top = ctc_loss(enc.logits, enc.lengths, tokens, token_lens)
            losses["ctc"] = top
            loss = top
            if enc.mid_logits is not None and self.cfg.mid_weight > 0:
                mid = ctc_loss(enc.mid_logits, enc.lengths, tokens, token_lens)
                losses["ctc_mid"] = mid
                loss = self.cfg.mid_weight * mid + (1 - self.cfg.mid_weight) * top
        return ModelOutput(loss, losses, enc.logits, enc.lengths, enc.hidden, {"mid_logits": enc.mid_logits})

    @torch.no_grad()
    def transcribe(self, feats: Tensor, feat_lens: Tensor, beam_size: int = 1) -> list[list[int]]:
        """Token ids per utterance: CTC greedy (``beam_size=1``) or prefix beam search."""
        from zoo.decoding import ctc_greedy, ctc_prefix_beam_search

        was = self.training
        self.eval()
        try:
            enc = self.encode(feats, feat_lens)
        finally:
            self.train(was)
        logp = enc.logits.float().log_softmax(-1)
        if beam_size == 1:
            return ctc_greedy(logp, enc.lengths)
        return [hyps[0][0] for hyps in ctc_prefix_beam_search(logp, enc.lengths, beam_size=beam_size)]

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)
