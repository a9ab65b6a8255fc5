"""Granite-speech's windowed Q-Former projector, the MLP projector of its ablation, and the audio-token count.

The encoder's frames $h \\in \\mathbb{R}^{B \\times T \\times D}$ are cut into $n_w = \\lceil T / K \\rceil$
windows of $K$ frames (the last one zero-padded). $N$ learned queries $Q \\in \\mathbb{R}^{N \\times H}$,
shared by every window, pass a BLIP-2 Q-Former (Li et al., 2023) whose layers are post-LN

$$
x \\leftarrow \\mathrm{LN}(x + \\mathrm{SelfAttn}(x)),\\quad
x \\leftarrow \\mathrm{LN}(x + \\mathrm{CrossAttn}(x, h_w)),\\quad
x \\leftarrow \\mathrm{LN}(x + W_2\\,\\mathrm{GELU}(W_1 x))
$$

and a linear map takes the ``(B, n_w·N, H)`` result to the LM's width: $\\lceil T/K \\rceil \\cdot N$ audio
embeddings, a $K/N = 5\\times$ downsampling (Saon et al., arXiv:2505.08699). As in the released model, the
zero-padded frames of the last window are not masked in the cross-attention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_int
from zoo.models.granite.presets import QFormerConfig

__all__ = [
    "MLPProjector",
    "QFormerLayer",
    "WindowedQFormer",
    "audio_token_count",
    "mlp_hidden_for",
    "projector_lengths",
]


def audio_token_count(
    num_samples: int, *, hop: int = 160, stack: int = 2, window: int = 15, num_queries: int = 3
) -> int:
    """Audio embeddings for ``num_samples`` of audio:
    ``ceil(((N // hop + 1) // stack) / window) · num_queries``.

    ``N // hop + 1`` log-mel frames, ``stack`` of them per encoder frame (the last odd one dropped), then
    ``num_queries`` embeddings per window of ``window`` encoder frames.

    Examples:
        >>> audio_token_count(16000)  # one second: 101 mel frames, 50 encoder frames, 4 windows
        12
    """
    check_int(num_samples, "num_samples", low=0)
    frames = (num_samples // hop + 1) // stack
    return math.ceil(frames / window) * num_queries


def projector_lengths(lengths: Tensor, window: int, num_queries: int) -> Tensor:
    """``(B,)`` valid audio embeddings of utterances with ``lengths`` encoder frames:
    ``ceil(lengths / window) · num_queries``."""
    return torch.div(lengths + window - 1, window, rounding_mode="floor") * num_queries


def _windows(hidden: Tensor, window: int) -> tuple[Tensor, int]:
    """``(B·n_w, window, D)`` zero-padded windows and ``n_w``."""
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be (B, T, D), got {tuple(hidden.shape)}")
    B, T, D = hidden.shape
    if T == 0:
        raise ValueError("hidden must have at least one frame")
    n = -(-T // window)
    padded = F.pad(hidden, (0, 0, 0, n * window - T))
    return padded.reshape(B * n, window, D), n


class _Attention(nn.Module):
    """BLIP-2 attention sub-layer: multi-head attention with biased q/k/v, then ``LN(x + Dropout(W o))``."""

    def __init__(self, hidden: int, kv_dim: int, num_heads: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.num_heads, self.d_head = num_heads, hidden // num_heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(kv_dim, hidden)
        self.value = nn.Linear(kv_dim, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def _split(self, t: Tensor) -> Tensor:
        return t.reshape(*t.shape[:-1], self.num_heads, self.d_head).transpose(-2, -3)

    def forward(self, x: Tensor, kv: Tensor | None = None) -> Tensor:
        src = x if kv is None else kv
        q, k, v = self._split(self.query(x)), self._split(self.key(src)), self._split(self.value(src))
        att = torch.softmax((q @ k.transpose(-1, -2)) * self.d_head**-0.5, dim=-1)
        if self.training and self.drop.p > 0:
            att = self.drop(att)
        out = (att @ v).transpose(-2, -3)
        out = out.reshape(*out.shape[:-2], -1)
        return self.norm(self.drop(self.dense(out)) + x)


class QFormerLayer(nn.Module):
    """One BLIP-2 Q-Former layer: self-attention over the queries, cross-attention to the window's
    frames, GELU feed-forward; each sub-layer post-LN with a residual.

    Args:
        hidden: query width; kv_dim: width of the frames; num_heads: heads; ffn: feed-forward width;
        dropout: sub-layer dropout; eps: LayerNorm epsilon.
    """

    def __init__(
        self, hidden: int, kv_dim: int, num_heads: int, ffn: int, dropout: float = 0.0, eps: float = 1e-12
    ) -> None:
        super().__init__()
        self.self_attn = _Attention(hidden, hidden, num_heads, dropout, eps)
        self.cross_attn = _Attention(hidden, kv_dim, num_heads, dropout, eps)
        self.ff_in = nn.Linear(hidden, ffn)
        self.ff_out = nn.Linear(ffn, hidden)
        self.ff_norm = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, queries: Tensor, frames: Tensor) -> Tensor:
        x = self.self_attn(queries)
        x = self.cross_attn(x, frames)
        return self.ff_norm(self.drop(self.ff_out(F.gelu(self.ff_in(x)))) + x)


class WindowedQFormer(nn.Module):
    """The windowed Q-Former projector of Granite-speech (arXiv:2505.08699).

    Args:
        encoder_dim: width ``D`` of the encoder frames.
        lm_dim: width of the LM's embeddings.
        cfg: window ``K``, queries ``N``, Q-Former sizes.

    ``forward(hidden (B, T, D), lengths (B,) | None) -> (embeds (B, ceil(T/K)·N, lm_dim), counts (B,))``
    with ``counts = ceil(lengths / K)·N`` (the valid embeddings of each utterance).

    Examples:
        >>> proj = WindowedQFormer(16, 24, QFormerConfig(hidden=8, num_heads=2, ffn=16))
        >>> embeds, counts = proj(torch.zeros(2, 31, 16), torch.tensor([31, 10]))
        >>> tuple(embeds.shape), counts.tolist()
        ((2, 9, 24), [9, 3])
    """

    def __init__(self, encoder_dim: int, lm_dim: int, cfg: QFormerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or QFormerConfig()
        check_int(encoder_dim, "encoder_dim", low=1)
        check_int(lm_dim, "lm_dim", low=1)
        self.encoder_dim = encoder_dim
        self.query = nn.Parameter(torch.randn(1, cfg.num_queries, cfg.hidden))
        self.query_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.query_drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            QFormerLayer(cfg.hidden, encoder_dim, cfg.num_heads, cfg.ffn, cfg.dropout, cfg.layer_norm_eps)
            for _ in range(cfg.num_layers)
        )
        self.linear = nn.Linear(cfg.hidden, lm_dim)

    def forward(self, hidden: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if hidden.dim() != 3 or hidden.shape[-1] != self.encoder_dim:
            raise ValueError(f"hidden must be (B, T, {self.encoder_dim}), got {tuple(hidden.shape)}")
        B, T, _ = hidden.shape
        frames, n = _windows(hidden, self.cfg.window)
        x = self.query_drop(self.query_norm(self.query)).expand(frames.shape[0], -1, -1)
        for layer in self.layers:
            x = layer(x, frames)
        out = self.linear(x.reshape(B, n * self.cfg.num_queries, -1))
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=hidden.device)
        return out, projector_lengths(lengths, self.cfg.window, self.cfg.num_queries)


def mlp_hidden_for(params: int, encoder_dim: int, lm_dim: int, stack: int) -> int:
    """The hidden width ``h`` of an `MLPProjector` whose parameter count
    ``(stack·D + 1)·h + (h + 1)·lm_dim`` is closest to ``params`` (at least 1)."""
    per = stack * encoder_dim + 1 + lm_dim
    return max(1, round((params - lm_dim) / per))


class MLPProjector(nn.Module):
    """The ablation's projector: ``K/N`` consecutive frames stacked, then ``Linear → GELU → Linear``.

    It pads the frames to whole windows like `WindowedQFormer`, so both give ``ceil(T/K)·N`` embeddings.

    Args:
        encoder_dim: ``D``; lm_dim: LM width; cfg: window and queries; hidden: the MLP's hidden width.

    Examples:
        >>> mlp = MLPProjector(16, 24, QFormerConfig(), hidden=32)
        >>> tuple(mlp(torch.zeros(1, 16, 16))[0].shape)
        (1, 6, 24)
    """

    def __init__(self, encoder_dim: int, lm_dim: int, cfg: QFormerConfig | None = None, hidden: int = 256):
        super().__init__()
        self.cfg = cfg = cfg or QFormerConfig()
        check_int(hidden, "hidden", low=1)
        if cfg.window % cfg.num_queries:
            raise ValueError(f"num_queries ({cfg.num_queries}) must divide window ({cfg.window})")
        self.encoder_dim, self.stack = encoder_dim, cfg.window // cfg.num_queries
        self.net = nn.Sequential(
            nn.Linear(self.stack * encoder_dim, hidden), nn.GELU(), nn.Linear(hidden, lm_dim)
        )

    def forward(self, hidden: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if hidden.dim() != 3 or hidden.shape[-1] != self.encoder_dim:
            raise ValueError(f"hidden must be (B, T, {self.encoder_dim}), got {tuple(hidden.shape)}")
        B, T, D = hidden.shape
        frames, n = _windows(hidden, self.cfg.window)
        out = self.net(frames.reshape(B, n * self.cfg.num_queries, self.stack * D))
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=hidden.device)
        return out, projector_lengths(lengths, self.cfg.window, self.cfg.num_queries)
