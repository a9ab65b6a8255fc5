"""Encoders and CTC heads for the recipes: any module mapping ``(feats, lens) → (hidden, hidden_lens)``.

* `TinyEncoder` — frame stacking, a linear projection and residual 1-D convolutions: tens of
  thousands of parameters, fast enough for the CPU test suite and the quick benchmarks.
* `ConformerAdapter` — wraps the zoo's Conformer encoder
  ([`zoo.models.conformer.ConformerEncoder`][zoo.models.conformer.ConformerEncoder],
  self-conditioning off) so that it returns ``(hidden, lens)``; its CTC head is the encoder's ``out`` layer.
* `build_parts()` — one of the above plus a CTC head, as a `ModelParts`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.checks import check_choice, check_int
from zoo.decoding import ctc_greedy
from zoo.models.conformer import ConformerEncoder, conformer_config

ENCODERS = ("tiny", "conformer")

__all__ = ["ENCODERS", "ConformerAdapter", "ModelParts", "TinyEncoder", "build_parts"]


class TinyEncoder(nn.Module):
    """``stack s frames → Linear(s·F, d) → L × (x + Conv1d_k(ReLU(LN x)))``; output ``(B, ⌊T/s⌋, d)``.

    A small convolutional encoder (receptive field ``s·(1 + L(k − 1))`` input frames) that is fast on one
    CPU thread; padded frames are zeroed before every convolution, so they never leak into valid ones.

    Args:
        n_feats: input features per frame; dim: width; stride: frames stacked (subsampling);
        layers: residual conv blocks; kernel: odd kernel size.
    """

    def __init__(
        self, n_feats: int, dim: int = 64, stride: int = 2, layers: int = 3, kernel: int = 5
    ) -> None:
        super().__init__()
        self.n_feats = check_int(n_feats, "n_feats", low=1)
        self.dim = check_int(dim, "dim", low=1)
        self.stride = check_int(stride, "stride", low=1)
        check_int(layers, "layers", low=0)
        if check_int(kernel, "kernel", low=1) % 2 == 0:
            raise ValueError(f"kernel must be odd, got {kernel}")
        self.proj = nn.Linear(stride * n_feats, dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel, padding=kernel // 2) for _ in range(layers))

    def forward(self, feats: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        if feats.dim() != 3 or feats.shape[2] != self.n_feats:
            raise ValueError(f"feats must be (B, T, {self.n_feats}), got {tuple(feats.shape)}")
        if lens.shape != feats.shape[:1]:
            raise ValueError(f"lens must be ({feats.shape[0]},), got {tuple(lens.shape)}")
        B, T, F = feats.shape
        s = self.stride
        n = T // s
        if n < 1:
            raise ValueError(f"need at least stride={s} frames, got {T}")
        out_lens = torch.div(lens, s, rounding_mode="floor").clamp(min=1, max=n)
        valid = (torch.arange(n, device=feats.device)[None, :] < out_lens[:, None].to(feats.device))[
            ..., None
        ]
        h = self.proj(feats[:, : n * s].reshape(B, n, s * F)).masked_fill(~valid, 0.0)
        for norm, conv in zip(self.norms, self.convs):
            y = torch.relu(norm(h)).masked_fill(~valid, 0.0)
            h = (h + conv(y.transpose(1, 2)).transpose(1, 2)).masked_fill(~valid, 0.0)
        return h, out_lens


class ConformerAdapter(nn.Module):
    """The zoo Conformer encoder as ``(feats, lens) → (hidden, lens)`` (its ``out`` layer is the CTC head)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, feats: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        out = self.encoder(feats, lens)
        return out.hidden, out.lengths


class ModelParts(nn.Module):
    """A recipe model: the shared encoder θ and the CTC head φ (the SSL head η belongs to the loss).

    Args:
        encoder: ``(feats, lens) → (hidden (B, T', dim), lens)``.
        ctc_head: ``hidden → logits (B, T', vocab)`` (it may live inside ``encoder``).
        dim: hidden width; stride: input frames per hidden frame.
        blank: the CTC blank id (greedy decoding in `transcribe()`).
    """

    def __init__(
        self, encoder: nn.Module, ctc_head: nn.Module, dim: int, stride: int, blank: int = 0
    ) -> None:
        super().__init__()
        self.encoder, self.ctc_head = encoder, ctc_head
        self.dim, self.stride, self.blank = dim, stride, blank

    def forward(self, feats: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """CTC logits ``(B, T', vocab)`` and their lengths."""
        hidden, out_lens = self.encoder(feats, lens)
        return self.ctc_head(hidden), out_lens

    @torch.no_grad()
    def transcribe(self, feats: Tensor, feat_lens: Tensor) -> list[list[int]]:
        """Greedy CTC decoding (token ids per utterance)."""
        logits, lens = self(feats, feat_lens)
        return ctc_greedy(logits, lens, blank=self.blank)

    def encoder_params(self) -> list[nn.Parameter]:
        """θ: the encoder's parameters that are not the CTC head's (a head may live inside the encoder)."""
        head = {id(p) for p in self.ctc_head.parameters()}
        return [p for p in self.encoder.parameters() if id(p) not in head and p.requires_grad]

    def head_params(self) -> list[nn.Parameter]:
        """φ: the CTC head's parameters."""
        return [p for p in self.ctc_head.parameters() if p.requires_grad]


def build_parts(
    kind: str, n_feats: int, vocab_size: int, *, seed: int = 0, dim: int = 64, stride: int = 2
) -> ModelParts:
    """A fresh encoder + CTC head, initialised from ``seed``.

    ``kind="tiny"``: `TinyEncoder` (``dim``, ``stride``) and a ``Linear(dim, vocab)`` head;
    ``kind="conformer"``: the zoo's ``"tiny"`` Conformer preset (``n_mels=n_feats``, self-conditioning
    and the mid-layer CTC off, so the encoder and the CTC head are separate), head = its ``out`` layer.
    """
    check_choice(kind, "kind", ENCODERS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "tiny":
            enc = TinyEncoder(n_feats, dim, stride)
            return ModelParts(enc, nn.Linear(dim, vocab_size), dim, stride)
        cfg = conformer_config(
            "tiny", n_mels=n_feats, vocab_size=vocab_size, self_conditioning=False, mid_weight=0.0
        )
        conf = ConformerEncoder(cfg)
        return ModelParts(ConformerAdapter(conf), conf.out, cfg.d_model, cfg.stack)
