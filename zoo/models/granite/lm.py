"""A small pre-LN decoder-only transformer LM with a key-value cache (the text LM of the speech LM).

Each block is ``h += Attn(LN h); h += FF(LN h)`` with causal multi-head attention whose query, key,
value and output projections are separate linear layers named ``q_proj``, ``k_proj``, ``v_proj``,
``o_proj`` (where Granite-speech's LoRA attaches), learned absolute positions (Granite's LM uses rotary
positions; a CPU model with a few hundred positions does not need them) and an output head tied to the
token embedding.

Incremental decoding: `DecoderLM.forward()` takes a ``cache`` (one ``(K, V)`` pair of shape
``(B, H, T_past, d_h)`` per block) and returns the extended one; a step then costs $O(T)$ instead of
re-encoding the whole prefix in $O(T^2)$.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models.granite.presets import LMConfig

__all__ = ["DecoderLM", "KVCache", "LMOutput", "next_token_loss"]

#: One ``(keys, values)`` pair of ``(B, H, T, d_h)`` per block.
KVCache = list[tuple[Tensor, Tensor]]


@dataclass
class LMOutput:
    """What `DecoderLM.forward()` returns.

    Attributes:
        logits: ``(B, T, V)`` next-token scores.
        cache: the key-value cache including these positions (``None`` unless ``use_cache``).
    """

    logits: Tensor
    cache: KVCache | None


class _Attention(nn.Module):
    def __init__(self, d: int, num_heads: int) -> None:
        super().__init__()
        self.h, self.dh = num_heads, d // num_heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.o_proj = nn.Linear(d, d)

    def _split(self, t: Tensor) -> Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.h, self.dh).transpose(1, 2)

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None, key_valid: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, T, d = x.shape
        q, k, v = self._split(self.q_proj(x)), self._split(self.k_proj(x)), self._split(self.v_proj(x))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        Tk = k.shape[2]
        offset = Tk - T
        i = torch.arange(T, device=x.device)[:, None] + offset
        allowed = torch.arange(Tk, device=x.device)[None, :] <= i  # (T, Tk) causal
        if key_valid is not None:
            allowed = allowed[None, None] & key_valid[:, None, None, :]
        scores = (q @ k.transpose(-1, -2)) * self.dh**-0.5
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        out = torch.softmax(scores, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(B, T, d)), (k, v)


class _Block(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.ln1 = nn.LayerNorm(d)
        self.attn = _Attention(d, cfg.num_heads)
        self.ln2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, cfg.ff_mult * d), nn.GELU(), nn.Linear(cfg.ff_mult * d, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None, key_valid: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        a, kv = self.attn(self.ln1(x), past, key_valid)
        x = x + self.drop(a)
        return x + self.drop(self.ff(self.ln2(x))), kv


class DecoderLM(nn.Module):
    """Decoder-only transformer LM (causal), with a key-value cache for decoding.

    Args:
        cfg: sizes and context length.

    ``forward(input_ids=None, inputs_embeds=None, cache=None, use_cache=False, key_valid=None)``: exactly one
    of ``input_ids`` ``(B, T)`` and ``inputs_embeds`` ``(B, T, d)``; ``key_valid`` ``(B, T_past + T)`` marks
    real positions (``False``: padding nobody attends to). Positions continue after the cache.

    Examples:
        >>> lm = DecoderLM(LMConfig(vocab_size=11, d_model=8, num_heads=2, num_layers=1, max_len=16))
        >>> ids = torch.tensor([[1, 2, 3, 4]])
        >>> full = lm(ids).logits
        >>> step = lm(ids[:, :3], use_cache=True)
        >>> last = lm(ids[:, 3:], cache=step.cache).logits
        >>> bool(torch.allclose(full[:, 3], last[:, 0], atol=1e-5))
        True
    """

    def __init__(self, cfg: LMConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or LMConfig()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(
        self,
        input_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        cache: KVCache | None = None,
        use_cache: bool = False,
        key_valid: Tensor | None = None,
    ) -> LMOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must be (B, T), got {tuple(input_ids.shape)}")
            if input_ids.numel() and (
                int(input_ids.min()) < 0 or int(input_ids.max()) >= self.cfg.vocab_size
            ):
                raise ValueError(f"input_ids must lie in [0, {self.cfg.vocab_size})")
            x = self.embed(input_ids)
        else:
            assert inputs_embeds is not None
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.cfg.d_model:
                raise ValueError(
                    f"inputs_embeds must be (B, T, {self.cfg.d_model}), got {tuple(inputs_embeds.shape)}"
                )
            x = inputs_embeds
        B, T, _ = x.shape
        past_len = 0 if not cache else cache[0][0].shape[2]
        if past_len + T > self.cfg.max_len:
            raise ValueError(
                f"the sequence ({past_len + T} positions) is longer than the LM's context "
                f"(max_len={self.cfg.max_len})"
            )
        if cache is not None and cache and len(cache) != len(self.blocks):
            raise ValueError(f"cache must hold {len(self.blocks)} (K, V) pairs, got {len(cache)}")
        if key_valid is not None and key_valid.shape != (B, past_len + T):
            raise ValueError(f"key_valid must be ({B}, {past_len + T}), got {tuple(key_valid.shape)}")
        x = x + self.pos(torch.arange(past_len, past_len + T, device=x.device))
        new: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cache[i] if cache else None, key_valid)
            new.append(kv)
        logits = F.linear(self.ln_f(x), self.embed.weight)
        return LMOutput(logits, new if use_cache else None)

    def loss(self, input_ids: Tensor, labels: Tensor) -> Tensor:
        """Next-token cross-entropy: ``logits[:, t]`` predicts ``labels[:, t + 1]`` (``-100`` ignored)."""
        return next_token_loss(self(input_ids).logits, labels)


def next_token_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits[:, :-1]`` against ``labels[:, 1:]``; positions labelled ``-100``
    (prompt, audio, padding) are ignored; ``ValueError`` when no position is labelled."""
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"labels must be {tuple(logits.shape[:2])}, got {tuple(labels.shape)}")
    target = labels[:, 1:]
    if not bool((target != -100).any()):
        raise ValueError("labels mark no position to predict (all -100)")
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=-100
    )
