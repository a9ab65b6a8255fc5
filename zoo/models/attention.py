"""Multi-head self-attention with Shaw relative positions and block (chunked) masks.

For queries $q_i$ and keys $k_j$ of one head (dimension $d_h$) and a learned table
$E \\in \\mathbb{R}^{(2R+1) \\times d_h}$ of relative-position embeddings (Shaw et al., 2018, as in
Granite-speech's encoder, arXiv:2505.08699):

$$
a_{ij} = \\frac{q_i \\cdot k_j + q_i \\cdot E_{\\mathrm{clip}(i-j,\\,-R,\\,R)}}{\\sqrt{d_h}},
\\qquad y_i = \\sum_{j \\in \\mathcal{M}(i)} \\operatorname{softmax}_j(a_{ij})\\, v_j
$$

where $\\mathcal{M}(i)$ is the set of keys the mask lets query $i$ see.

Two paths compute the same thing:

* `relative_attention()` — any boolean mask, $O(T^2)$;
* `block_relative_attention()` — Granite's block attention (no context across blocks): the sequence is
  padded to a multiple of ``block`` and reshaped to ``(B, H, n_blocks, block, d_h)``, so cost grows
  linearly with length.

torchaudio's ``Conformer`` uses ``nn.MultiheadAttention`` with no positions and only a key-padding mask,
which cannot express either.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.masks import relative_positions

__all__ = ["RelPositionMultiHeadAttention", "block_relative_attention", "relative_attention"]


def _bias(q: Tensor, table: Tensor, index: Tensor, scale: float) -> Tensor:
    """``(…, Tq, Tk)`` relative-position logits ``(q_i · E[index[i, j]]) · scale``."""
    qe = q @ table.t()  # (..., Tq, 2R+1)
    idx = index.expand(*qe.shape[:-1], index.shape[-1])
    return torch.gather(qe, -1, idx) * scale


def _masked(bias: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return bias
    # A large finite negative keeps fully masked rows (padding queries) finite instead of NaN.
    return bias.masked_fill(~mask, torch.finfo(bias.dtype).min / 4)


class _RelAttention(torch.autograd.Function):
    """Fused forward/backward of ``softmax((q kᵀ + G(q Eᵀ)) s + B) v`` (G: gather by relative distance).

    Saves only ``P`` and the output instead of every intermediate, and uses the softmax gradient identity
    ``dS = P ⊙ (dP − rowsum(dO ⊙ O))``.
    """

    @staticmethod
    def forward(
        ctx: Any, q: Tensor, k: Tensor, v: Tensor, table: Tensor, index: Tensor, bias: Tensor | None
    ) -> Tensor:
        scale = q.shape[-1] ** -0.5
        ix = index.expand(*q.shape[:-1], index.shape[-1])
        S = torch.gather(q @ table.t(), -1, ix)
        T, Tk, dh = q.shape[-2], k.shape[-2], q.shape[-1]
        # S ← scale·S + scale·q kᵀ in place (one pass over the T×T scores)
        S.view(-1, T, Tk).baddbmm_(
            q.reshape(-1, T, dh), k.reshape(-1, Tk, dh).transpose(1, 2), beta=scale, alpha=scale
        )
        if bias is not None:
            S.add_(bias)
        P = torch.softmax(S, -1)
        out = P @ v
        ctx.save_for_backward(q, k, v, table, ix, P, out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx: Any, d_out: Tensor) -> tuple[Tensor | None, ...]:
        q, k, v, table, ix, P, out = ctx.saved_tensors
        dv = P.transpose(-1, -2) @ d_out
        # out of place, so that batched backward passes (vmap over grad_outputs, as multi-objective
        # aggregation uses them) work; the same operations in the same order as the in-place form
        dS = (d_out @ v.transpose(-1, -2) - (d_out * out).sum(-1, keepdim=True)) * P * ctx.scale
        dq = dS @ k
        dk = dS.transpose(-1, -2) @ q
        dqe = torch.zeros(*dS.shape[:-1], table.shape[0], dtype=dS.dtype, device=dS.device).scatter_add(
            -1, ix, dS
        )
        dq = dq + dqe @ table
        dtable = dqe.reshape(-1, table.shape[0]).t() @ q.reshape(-1, q.shape[-1])
        return dq, dk, dv, dtable, None, None


def relative_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    table: Tensor,
    *,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
) -> Tensor:
    """Attention with Shaw relative positions under an arbitrary boolean mask.

    Args:
        q: queries ``(B, H, T, d_h)``.
        k: keys ``(B, H, T, d_h)``.
        v: values ``(B, H, T, d_h)``.
        table: ``(2R+1, d_h)`` relative-position embeddings (``R`` = max distance).
        mask: boolean, ``True`` = may attend; broadcastable to ``(B, H, T, T)``.
        dropout_p: attention dropout probability.

    Returns:
        ``(B, H, T, d_h)``.
    """
    if q.dim() != 4 or k.shape != q.shape or v.shape[:-1] != q.shape[:-1]:
        raise ValueError(f"q, k, v must be (B, H, T, d_h) alike, got {tuple(q.shape)}, {tuple(k.shape)}")
    R = (table.shape[0] - 1) // 2
    T = q.shape[-2]
    scale = q.shape[-1] ** -0.5
    index = relative_positions(T, T, R, device=q.device)
    if dropout_p == 0.0:
        bias = (
            None if mask is None else _masked(torch.zeros(mask.shape, dtype=q.dtype, device=q.device), mask)
        )
        out: Tensor = _RelAttention.apply(q, k, v, table, index, bias)
        return out
    bias = _masked(_bias(q, table, index, scale), mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)


def block_relative_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    table: Tensor,
    block: int,
    *,
    valid: Tensor | None = None,
    dropout_p: float = 0.0,
) -> Tensor:
    """Block attention (each block of ``block`` frames attends only within itself), in linear time.

    Equal to `relative_attention()` with ``mask = block_mask(T, block) & valid[:, None, None, :]``.

    Args:
        q: queries ``(B, H, T, d_h)``.
        k: keys ``(B, H, T, d_h)``.
        v: values ``(B, H, T, d_h)``.
        table: ``(2R+1, d_h)``.
        block: block size in frames.
        valid: ``(B, T)`` boolean frame validity (padding = ``False``).
        dropout_p: attention dropout probability.
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    B, H, T, dh = q.shape
    n = -(-T // block)
    pad = n * block - T
    if valid is None:
        valid = torch.ones(B, T, dtype=torch.bool, device=q.device)
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        valid = F.pad(valid, (0, pad), value=False)
    q, k, v = (t.reshape(B, H, n, block, dh) for t in (q, k, v))
    R = (table.shape[0] - 1) // 2
    scale = dh**-0.5
    index = relative_positions(block, block, R, device=q.device)
    keys = valid.reshape(B, 1, n, 1, block)
    if dropout_p == 0.0:
        zero = _masked(torch.zeros(keys.shape, dtype=q.dtype, device=q.device), keys)
        out = _RelAttention.apply(q, k, v, table, index, zero)
    else:
        bias = _masked(_bias(q, table, index, scale), keys)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    return out.reshape(B, H, n * block, dh)[:, :, :T]


class RelPositionMultiHeadAttention(nn.Module):
    """Multi-head self-attention with Shaw relative positions (Granite-speech's encoder attention).

    ``[Q, K, V] = W_{qkv} x`` (no bias), output projection with bias; relative distances are
    clipped to ``±max_distance`` (Granite: ``max_pos_emb = 512`` rows each side, distances clipped to
    the block size).

    Args:
        d_model: model width.
        num_heads: heads; must divide ``d_model``.
        max_distance: ``R``, the largest relative distance with its own embedding.
        dropout: attention-weight dropout.

    ``forward(x, valid=None, mask=None, block=None)``: ``x`` ``(B, T, d_model)``; ``valid`` ``(B, T)``
    frame validity; ``mask`` a ``(T, T)`` / ``(B, T, T)`` boolean mask; ``block`` selects the linear-time
    block path (then ``mask`` must be ``None``).
    """

    def __init__(self, d_model: int, num_heads: int, max_distance: int = 64, dropout: float = 0.0):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide d_model ({d_model})")
        if max_distance < 0:
            raise ValueError(f"max_distance must be >= 0, got {max_distance}")
        self.d_model, self.num_heads, self.max_distance = d_model, num_heads, max_distance
        self.d_head = d_model // num_heads
        self.dropout = dropout
        self.to_qkv = nn.Linear(d_model, 3 * d_model, bias=False)  # Granite's W_q and W_kv in one matrix
        self.to_out = nn.Linear(d_model, d_model)
        self.rel_table = nn.Parameter(torch.randn(2 * max_distance + 1, self.d_head) * self.d_head**-0.5)

    def _heads(self, t: Tensor) -> Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.num_heads, self.d_head).transpose(1, 2)

    def forward(
        self, x: Tensor, valid: Tensor | None = None, mask: Tensor | None = None, block: int | None = None
    ) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (B, T, {self.d_model}), got {tuple(x.shape)}")
        B, T, _ = x.shape
        q, k, v = (self._heads(t) for t in self.to_qkv(x).chunk(3, dim=-1))
        p = self.dropout if self.training else 0.0
        if block is not None:
            if mask is not None:
                raise ValueError("pass either mask or block, not both")
            out = block_relative_attention(q, k, v, self.rel_table, block, valid=valid, dropout_p=p)
        else:
            full: Tensor | None = mask
            if full is not None and full.dim() == 3:
                full = full[:, None]
            if valid is not None:
                keys = valid[:, None, None, :]
                full = keys if full is None else full & keys
            out = relative_attention(q, k, v, self.rel_table, mask=full, dropout_p=p)
        return self.to_out(out.transpose(1, 2).reshape(B, T, self.d_model))
