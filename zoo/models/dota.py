"""DOTA: a decoder-only Transformer for ASR (Gupta, Saon & Kingsbury, arXiv:2402.00235).

No encoder: stacked log-mel frames are projected into the decoder's width and prepended to the text
token embeddings; one causal Transformer stack predicts the transcript token by token.

```text
log-mel (B, T, F) ─ stack k ─► (B, La, k·F) ─ LN ─ Linear(k·F → d, no bias) ─► audio prefix
[SEP] t1 … tn      ─ Embedding(V, e) ─ Linear(e → d, no bias)          ─► text
x = [audio ; text] + sinusoidal positions     (audio at 0…La−1, text at P, P+1, … with P = max_audio)
  └─ L × pre-LN block: x += Attn(LN x) ; x += FF(LN x)        (no biases, GELU)
  └─ LN(x_text) · W (d → e) · e^{-1/2} · Embeddingᵀ  ─►  next-token logits (tied output)
```

The attention mask is causal, except that with ``bidirectional_prefix`` the audio frames see each other
(a prefix LM; the paper's best setting). Text positions start at a fixed offset ``max_audio`` (DOTA pads
every utterance to 30 s, so its text also starts at a fixed position), which makes the outputs at real
positions independent of the padding. Loss: cross-entropy on ``t1 … tn [SEP]``. Decoding: greedy or beam
search with a key-value cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.data import stack_frames, stacked_length
from zoo.models.conformer import ModelOutput
from zoo.models.masks import lengths_to_mask
from zoo.models.presets import preset_config

__all__ = ["DOTA", "DOTA_PRESETS", "DOTAConfig", "dota_config", "sinusoidal_positions"]

Cache = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class DOTAConfig:
    """Configuration of `DOTA` (defaults: tiny CPU model).

    Attributes:
        n_mels, stack: input bins and frames stacked per audio position (paper 4 or 8).
        d_model, num_layers, num_heads: decoder width, depth and heads (paper: head dim 64).
        emb_dim: token-embedding width (paper 128), tied with the output layer.
        vocab_size: tokens including ``sep_id``.
        sep_id: the separator that starts and ends each transcript.
        max_audio: position where text starts (≥ the longest audio prefix in stacked frames).
        max_text: longest transcript (tokens) the model decodes.
        bidirectional_prefix: audio frames attend to each other in both directions.
        dropout: residual and attention dropout.
    """

    n_mels: int = 80
    stack: int = 4
    d_model: int = 144
    num_layers: int = 4
    num_heads: int = 4
    ff_mult: int = 4
    emb_dim: int = 64
    vocab_size: int = 32
    sep_id: int = 0
    max_audio: int = 512
    max_text: int = 200
    bidirectional_prefix: bool = True
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in (
            "n_mels",
            "stack",
            "d_model",
            "num_layers",
            "num_heads",
            "emb_dim",
            "max_audio",
            "max_text",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        if not 0 <= self.sep_id < self.vocab_size:
            raise ValueError(f"sep_id must lie in [0, vocab_size={self.vocab_size}), got {self.sep_id}")


DOTA_PRESETS: dict[str, DOTAConfig] = {
    "tiny": DOTAConfig(d_model=128, num_layers=5, num_heads=4),
    "small": DOTAConfig(d_model=192, num_layers=5, num_heads=3),
    # Paper-scale: the training script's default (≈118 M) and the 634 M model of the README.
    "dota-base": DOTAConfig(
        d_model=768,
        num_layers=16,
        num_heads=12,
        stack=4,
        emb_dim=128,
        max_audio=750,
        max_text=146,
        vocab_size=30522,
    ),
    "dota-634m": DOTAConfig(
        d_model=1280,
        num_layers=32,
        num_heads=20,
        stack=8,
        emb_dim=128,
        max_audio=375,
        max_text=146,
        vocab_size=30522,
    ),
}


def dota_config(preset: str = "tiny", **overrides: Any) -> DOTAConfig:
    """The named preset with ``overrides`` applied."""
    return preset_config(DOTA_PRESETS, preset, **overrides)


def sinusoidal_positions(positions: Tensor, dim: int) -> Tensor:
    """``(…, dim)`` sinusoidal encodings (Vaswani et al., 2017) of integer ``positions``."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / max(half, 1))
    ang = positions.to(torch.float32)[..., None] * freq
    out = torch.cat([ang.sin(), ang.cos()], dim=-1)
    return F.pad(out, (0, dim - 2 * half))


def _bias(mask: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        ~mask, torch.finfo(dtype).min / 4
    )


class _Block(nn.Module):
    def __init__(self, cfg: DOTAConfig):
        super().__init__()
        d = cfg.d_model
        self.h, self.dh = cfg.num_heads, d // cfg.num_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.ff = nn.Sequential(
            nn.Linear(d, cfg.ff_mult * d, bias=False), nn.GELU(), nn.Linear(cfg.ff_mult * d, d, bias=False)
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.p = cfg.dropout

    def forward(
        self, x: Tensor, bias: Tensor, cache: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, L, d = x.shape
        q, k, v = (t.view(B, L, self.h, self.dh).transpose(1, 2) for t in self.qkv(self.ln1(x)).chunk(3, -1))
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias[:, None], dropout_p=self.p if self.training else 0.0
        )
        x = x + self.drop(self.o(a.transpose(1, 2).reshape(B, L, d)))
        x = x + self.drop(self.ff(self.ln2(x)))
        return x, (k, v)


class DOTA(nn.Module):
    """Decoder-only ASR (DOTA, arXiv:2402.00235): audio prefix + causal text decoder.

    ``forward(feats, feat_lens, tokens=None, token_lens=None) -> ModelOutput``: ``tokens`` ``(B, U)``
    padded transcripts (without separators); the loss is the mean next-token cross-entropy over
    ``t1 … tn [SEP]``. ``transcribe(feats, feat_lens, beam_size=1)`` decodes with a key-value cache.
    """

    def __init__(self, cfg: DOTAConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DOTAConfig()
        self.audio_in = nn.Sequential(
            nn.LayerNorm(cfg.stack * cfg.n_mels), nn.Linear(cfg.stack * cfg.n_mels, cfg.d_model, bias=False)
        )
        self.embed = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.emb_in = nn.Linear(cfg.emb_dim, cfg.d_model, bias=False)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.emb_out = nn.Linear(cfg.d_model, cfg.emb_dim, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    # -- pieces -------------------------------------------------------------------------------------
    def _audio(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        if feats.dim() != 3 or feats.shape[-1] != self.cfg.n_mels:
            raise ValueError(f"feats must be (B, T, {self.cfg.n_mels}), got {tuple(feats.shape)}")
        x = stack_frames(feats, self.cfg.stack, drop_last=True)
        la = stacked_length(feat_lens, self.cfg.stack, drop_last=True)
        if x.shape[1] > self.cfg.max_audio:
            raise ValueError(f"audio prefix of {x.shape[1]} positions exceeds max_audio={self.cfg.max_audio}")
        pos = sinusoidal_positions(torch.arange(x.shape[1], device=x.device), self.cfg.d_model)
        return self.audio_in(x) + pos, la

    def _text(self, ids: Tensor, start: int) -> Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        pos = sinusoidal_positions(self.cfg.max_audio + start + pos, self.cfg.d_model)
        return self.emb_in(self.embed(ids)) + pos

    def _logits(self, h: Tensor) -> Tensor:
        e = self.emb_out(self.ln_f(h)) * self.cfg.emb_dim**-0.5
        return e @ self.embed.weight.t()

    def _run(self, x: Tensor, bias: Tensor, cache: Cache | None = None) -> tuple[Tensor, Cache]:
        x = self.drop(x)
        new: Cache = []
        for i, blk in enumerate(self.blocks):
            x, kv = blk(x, bias, None if cache is None else cache[i])
            new.append(kv)
        return x, new

    def _prefix_mask(self, la: Tensor, La: int) -> Tensor:
        valid = lengths_to_mask(la, La)
        m = valid[:, None, :].expand(-1, La, La).clone()
        if not self.cfg.bidirectional_prefix:
            m &= torch.ones(La, La, dtype=torch.bool, device=la.device).tril()
        return m

    # -- training -----------------------------------------------------------------------------------
    def forward(
        self, feats: Tensor, feat_lens: Tensor, tokens: Tensor | None = None, token_lens: Tensor | None = None
    ) -> ModelOutput:
        cfg = self.cfg
        audio, la = self._audio(feats, feat_lens)
        B, La, _ = audio.shape
        has_targets = tokens is not None
        if tokens is None:
            tokens = torch.zeros(B, 0, dtype=torch.long, device=audio.device)
            token_lens = torch.zeros(B, dtype=torch.long, device=audio.device)
        if token_lens is None:
            raise ValueError("token_lens is required with tokens")
        U = tokens.shape[1]
        if U + 1 > cfg.max_text:
            raise ValueError(f"transcripts of {U} tokens exceed max_text={cfg.max_text} - 1")
        sep = torch.full((B, 1), cfg.sep_id, dtype=torch.long, device=tokens.device)
        inp = torch.cat([sep, tokens], 1)
        inp = inp.masked_fill(~lengths_to_mask(token_lens + 1, U + 1), cfg.sep_id)
        x = torch.cat([audio, self._text(inp, 0)], 1)
        L = La + U + 1
        a_valid = lengths_to_mask(la, La)
        t_valid = lengths_to_mask(token_lens + 1, U + 1)
        keys = torch.cat([a_valid, t_valid], 1)
        mask = torch.ones(L, L, dtype=torch.bool, device=keys.device).tril()[None] & keys[:, None, :]
        mask = mask.clone()
        mask[:, :, :La] = a_valid[:, None, :]
        if not cfg.bidirectional_prefix:
            mask[:, :La, :La] &= torch.ones(La, La, dtype=torch.bool, device=mask.device).tril()
        else:
            mask[:, :La, La:] = False
        h, _ = self._run(x, _bias(mask, x.dtype))
        logits = self._logits(h[:, La:])
        tgt = torch.cat([tokens, torch.full((B, 1), -100, dtype=torch.long, device=tokens.device)], 1)
        tgt = tgt.scatter(1, token_lens[:, None], cfg.sep_id)
        tgt = tgt.masked_fill(~t_valid, -100)
        losses: dict[str, Tensor] = {}
        loss = None
        if has_targets:
            loss = F.cross_entropy(
                logits.reshape(-1, cfg.vocab_size).float(), tgt.reshape(-1), ignore_index=-100
            )
            losses["ce"] = loss
        return ModelOutput(loss, losses, logits, token_lens + 1, h[:, La:], {"audio_lengths": la})

    # -- decoding -----------------------------------------------------------------------------------
    def _prime(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Cache, Tensor, int]:
        """Run the audio prefix and the first [SEP]; returns first logits, cache, key validity, La."""
        audio, la = self._audio(feats, feat_lens)
        B, La, _ = audio.shape
        sep = self._text(torch.full((B, 1), self.cfg.sep_id, dtype=torch.long, device=audio.device), 0)
        x = torch.cat([audio, sep], 1)
        a_valid = lengths_to_mask(la, La)
        keys = torch.cat([a_valid, torch.ones(B, 1, dtype=torch.bool, device=a_valid.device)], 1)
        mask = torch.zeros(B, La + 1, La + 1, dtype=torch.bool, device=a_valid.device)
        mask[:, :La, :La] = self._prefix_mask(la, La)
        mask[:, La] = keys
        h, cache = self._run(x, _bias(mask, x.dtype))
        return self._logits(h[:, -1]), cache, keys, La

    def _step(self, ids: Tensor, cache: Cache, keys: Tensor, t: int) -> tuple[Tensor, Cache, Tensor]:
        keys = torch.cat([keys, torch.ones(ids.shape[0], 1, dtype=torch.bool, device=keys.device)], 1)
        h, cache = self._run(self._text(ids[:, None], t), _bias(keys[:, None, :], torch.float32), cache)
        return self._logits(h[:, -1]), cache, keys

    @torch.no_grad()
    def transcribe(
        self, feats: Tensor, feat_lens: Tensor, beam_size: int = 1, max_len: int | None = None
    ) -> list[list[int]]:
        """Token ids per utterance by greedy (``beam_size=1``) or beam search, with a key-value cache.

        ``max_len`` caps the transcript length (default: audio positions + 8, at most ``max_text - 1``).
        """
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        was = self.training
        self.eval()
        try:
            if beam_size == 1:
                return self._greedy(feats, feat_lens, max_len)
            return [
                self._beam(feats[b : b + 1, : int(feat_lens[b])], feat_lens[b : b + 1], beam_size, max_len)
                for b in range(feats.shape[0])
            ]
        finally:
            self.train(was)

    def _limit(self, max_len: int | None, La: int) -> int:
        # default: at most one token per audio position (plus a margin), never past max_text
        return max(1, min(max_len or La + 8, self.cfg.max_text - 1))

    def _greedy(self, feats: Tensor, feat_lens: Tensor, max_len: int | None) -> list[list[int]]:
        logits, cache, keys, La = self._prime(feats, feat_lens)
        limit = self._limit(max_len, La)
        B = feats.shape[0]
        out: list[list[int]] = [[] for _ in range(B)]
        done = torch.zeros(B, dtype=torch.bool, device=logits.device)
        for t in range(1, limit + 1):
            nxt = logits.argmax(-1)
            for b in range(B):
                if not done[b] and int(nxt[b]) != self.cfg.sep_id:
                    out[b].append(int(nxt[b]))
            done |= nxt == self.cfg.sep_id
            if bool(done.all()) or t == limit:
                break
            logits, cache, keys = self._step(nxt, cache, keys, t)
        return out

    def _beam(self, feats: Tensor, feat_lens: Tensor, beam: int, max_len: int | None) -> list[int]:
        sep = self.cfg.sep_id
        logits, cache, keys, La = self._prime(feats, feat_lens)
        limit = self._limit(max_len, La)
        scores = torch.zeros(1, device=logits.device)
        seqs: list[list[int]] = [[]]
        finished: list[tuple[float, list[int]]] = []
        for t in range(1, limit + 2):
            logp = logits.float().log_softmax(-1) + scores[:, None]
            if t == limit + 1:  # length limit: every live hypothesis must end here
                logp = torch.full_like(logp, -math.inf)
                logp[:, sep] = logits.float().log_softmax(-1)[:, sep] + scores
            flat = logp.reshape(-1)
            top = flat.topk(min(2 * beam, flat.numel()))
            keep_rows: list[int] = []
            keep_ids: list[int] = []
            keep_scores: list[float] = []
            for s, idx in zip(top.values.tolist(), top.indices.tolist()):
                r, c = divmod(idx, logp.shape[1])
                if c == sep:
                    finished.append((s, seqs[r]))
                elif len(keep_rows) < beam:
                    keep_rows.append(r)
                    keep_ids.append(c)
                    keep_scores.append(s)
            best_done = max((f[0] for f in finished), default=-math.inf)
            if not keep_rows or (len(finished) >= beam and best_done >= max(keep_scores)):
                break
            rows = torch.tensor(keep_rows, device=keys.device)
            cache = [(k[rows], v[rows]) for k, v in cache]
            keys = keys[rows]
            seqs = [[*seqs[r], c] for r, c in zip(keep_rows, keep_ids)]
            scores = torch.tensor(keep_scores, device=logits.device)
            logits, cache, keys = self._step(torch.tensor(keep_ids, device=keys.device), cache, keys, t)
        if not finished:
            return seqs[0]
        return max(finished, key=lambda f: f[0])[1]
