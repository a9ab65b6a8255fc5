"""Semi-autoregressive (SAR) streaming ASR with label context (Arora, Saon, Watanabe & Kingsbury,
arXiv:2309.10926).

A blockwise encoder emits CTC labels block by block (non-autoregressive inside a block); an LM
subnetwork encodes the labels emitted in earlier blocks and conditions the current block on them
(autoregressive across blocks).

```text
log-mel (B, T, F) ─ stack k ─► (B, T', k·F) ─ LN ─ Linear ─► x
block b = frames [b·S, (b+1)·S):  window [b·S − P, (b+1)·S + A) of x  ─ conformer layers ─► H_b (S, d)
    (each window is encoded on its own: H_b depends on no frame past (b+1)·S + A)
labels of blocks < b: [BOS, y_1 … y_m] ─ causal Transformer (LM subnetwork) ─► C (m+1, d)
H'_b = H_b + CrossAttn(Q = LN H_b, K = V = C)  ─ W_sar ─► per-block CTC logits
plain CTC head W_ctc on H (the streaming NAR baseline and an auxiliary loss)
```

Training (teacher forcing): a CTC forced alignment of the plain head (``torchaudio.functional.forced_align``)
assigns each label to the block holding its first frame; block ``b`` is trained with CTC on its own
labels, seeing the ground-truth labels of earlier blocks. Loss
$\\lambda\\,\\mathrm{CTC}_{\\mathrm{full}} + (1-\\lambda)\\,\\overline{\\mathrm{CTC}_b}
+ \\mu\\,\\mathrm{CE}_{\\mathrm{LM}}$ (the bar: mean over blocks).

Greedy decoding handles the block boundaries: a spike that straddles a boundary is emitted once
(insertion fix: collapse repeats across the boundary), and a label whose spike the context-free head sees
at the first frame of a block, but which the label-conditioned head skipped, is restored (deletion fix).
`SARStreamer` takes features or audio chunk by chunk and returns partial hypotheses.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.data import stack_frames, stacked_length
from zoo.models.conformer import ConformerBlock, ModelOutput, ctc_loss
from zoo.models.masks import lengths_to_mask
from zoo.models.presets import preset_config

__all__ = ["SAR", "SAR_PRESETS", "SARConfig", "SARStreamer", "align_to_blocks", "sar_config"]


@dataclass(frozen=True)
class SARConfig:
    """Configuration of `SAR` (defaults: tiny CPU model).

    Attributes:
        n_mels, stack: input bins and frames stacked per encoder frame (4 → 40 ms frames).
        d_model, num_heads, num_layers, ff_mult, conv_kernel: blockwise conformer encoder.
        max_distance: largest relative distance with its own embedding (independent of the block size,
            so trained weights can be run with other block sizes).
        block: frames emitted per block ``S``; past: left context ``P``; lookahead: ``A`` frames.
        lm_layers: layers of the LM subnetwork (0 with ``sar=False``).
        vocab_size: labels including the blank (0; also the LM's BOS).
        sar: use the label context (``False``: the plain blockwise CTC baseline).
        ctc_weight: ``λ``, weight of the full-utterance CTC of the plain head.
        lm_weight: ``μ``, weight of the LM subnetwork's next-label cross-entropy.
        dropout: dropout of the encoder, the LM subnetwork and the fusion.
        sar_loss: ``"block"`` (the paper): CTC of each block on the labels its forced alignment assigns it;
            ``"utterance"``: one CTC over all fused frames of the utterance (the label context of each block
            still comes from the forced alignment; the split of the labels among blocks is left to CTC).
        tie_heads: the label-conditioned head is the plain CTC head and the fusion's output projection
            starts at zero, so an untrained SAR model decodes exactly like the blockwise CTC baseline.
    """

    n_mels: int = 80
    stack: int = 4
    d_model: int = 144
    num_heads: int = 4
    num_layers: int = 4
    ff_mult: int = 4
    conv_kernel: int = 7
    max_distance: int = 24
    block: int = 8
    past: int = 8
    lookahead: int = 4
    lm_layers: int = 2
    vocab_size: int = 32
    sar: bool = True
    ctc_weight: float = 0.3
    lm_weight: float = 0.1
    dropout: float = 0.1
    sar_loss: str = "block"
    tie_heads: bool = True

    def __post_init__(self) -> None:
        for name in ("n_mels", "stack", "d_model", "num_heads", "num_layers", "block", "conv_kernel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("past", "lookahead", "lm_layers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must lie in [0, 1], got {self.ctc_weight}")
        if self.sar and self.lm_layers < 1:
            raise ValueError("lm_layers must be >= 1 when sar=True")
        if self.sar_loss not in ("block", "utterance"):
            raise ValueError(f"sar_loss must be 'block' or 'utterance', got {self.sar_loss!r}")

    @property
    def window(self) -> int:
        return self.past + self.block + self.lookahead


SAR_PRESETS: dict[str, SARConfig] = {
    "tiny": SARConfig(d_model=96, num_layers=3, lm_layers=1),
    "small": SARConfig(d_model=144, num_layers=4, lm_layers=2),
    # Paper-scale: ESPnet contextual-block conformer defaults (after ×4 subsampling, 40 ms frames).
    "paper": SARConfig(
        d_model=256,
        num_heads=4,
        num_layers=12,
        ff_mult=8,
        conv_kernel=31,
        block=16,
        past=8,
        lookahead=16,
        lm_layers=4,
        vocab_size=5000,
    ),
}


def sar_config(preset: str = "tiny", **overrides: Any) -> SARConfig:
    """The named preset with ``overrides`` applied."""
    return preset_config(SAR_PRESETS, preset, **overrides)


def align_to_blocks(log_probs: Tensor, tokens: Tensor, block: int, blank: int = 0) -> Tensor:
    """Block index of each label: the block holding the first frame of its CTC forced alignment.

    Args:
        log_probs: ``(T, C)`` CTC log-posteriors of one utterance; tokens ``(U,)``; ``block`` frames.

    Falls back to spreading the labels uniformly over the blocks when no alignment exists (too few frames).
    """
    T, U = log_probs.shape[0], tokens.shape[0]
    if U == 0:
        return torch.zeros(0, dtype=torch.long, device=log_probs.device)
    repeats = int((tokens[1:] == tokens[:-1]).sum()) if U > 1 else 0
    if T >= U + repeats:
        try:
            import torchaudio.functional as taf

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path, _ = taf.forced_align(log_probs[None].float(), tokens[None].int(), blank=blank)
            p = path[0]
            prev = torch.cat([torch.tensor([blank], dtype=p.dtype, device=p.device), p[:-1]])
            starts = torch.nonzero((p != blank) & (p != prev)).flatten()
            # a repeated label needs a blank between its spikes, so every start is a new label
            if starts.numel() == U:
                return torch.div(starts, block, rounding_mode="floor").long().to(log_probs.device)
        except (RuntimeError, ValueError):
            pass
    n_blocks = max(1, -(-T // block))
    idx = torch.arange(U, device=log_probs.device)
    return torch.div(idx * n_blocks, U, rounding_mode="floor").long()


class _CrossAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.ln = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.o = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, ctx: Tensor, allowed: Tensor) -> Tensor:
        B, T, d = x.shape
        q = self.q(self.ln(x)).view(B, T, self.h, self.dh).transpose(1, 2)
        k, v = (t.view(B, -1, self.h, self.dh).transpose(1, 2) for t in self.kv(ctx).chunk(2, -1))
        bias = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(
            ~allowed, torch.finfo(x.dtype).min / 4
        )
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[:, None])
        return x + self.drop(self.o(a.transpose(1, 2).reshape(B, T, d)))


class SAR(nn.Module):
    """Semi-autoregressive streaming ASR (arXiv:2309.10926); ``sar=False`` gives the blockwise CTC baseline.

    ``forward(feats, feat_lens, tokens=None, token_lens=None) -> ModelOutput``;
    ``transcribe(feats, feat_lens, fix_boundaries=True)`` greedy block-by-block decoding;
    ``encode_block`` / `SARStreamer` for streaming.
    """

    def __init__(self, cfg: SARConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SARConfig()
        self.input = nn.Sequential(
            nn.LayerNorm(cfg.stack * cfg.n_mels), nn.Linear(cfg.stack * cfg.n_mels, cfg.d_model)
        )
        self.layers = nn.ModuleList(
            ConformerBlock(
                cfg.d_model,
                cfg.num_heads,
                ff_mult=cfg.ff_mult,
                conv_kernel=cfg.conv_kernel,
                max_distance=cfg.max_distance,
                dropout=cfg.dropout,
                conv_norm="layer",
            )
            for _ in range(cfg.num_layers)
        )
        self.ctc_head = nn.Linear(cfg.d_model, cfg.vocab_size)
        if cfg.sar:
            self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
            layer = nn.TransformerEncoderLayer(
                cfg.d_model,
                cfg.num_heads,
                cfg.ff_mult * cfg.d_model,
                cfg.dropout,
                batch_first=True,
                norm_first=True,
            )
            self.lm = nn.TransformerEncoder(layer, cfg.lm_layers, enable_nested_tensor=False)
            self.lm_ln = nn.LayerNorm(cfg.d_model)
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size)
            self.fuse = _CrossAttention(cfg.d_model, cfg.num_heads, cfg.dropout)
            self.sar_head = self.ctc_head if cfg.tie_heads else nn.Linear(cfg.d_model, cfg.vocab_size)
            if cfg.tie_heads:
                nn.init.zeros_(self.fuse.o.weight)
                nn.init.zeros_(self.fuse.o.bias)

    # -- encoder ------------------------------------------------------------------------------------
    def _windows(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, int]:
        """``(B, T', D) → (B·n, W, D)`` windows and their ``(B·n, W)`` validity."""
        cfg = self.cfg
        B, T, D = x.shape
        n = max(1, -(-T // cfg.block))
        right = n * cfg.block - T + cfg.lookahead
        xp = F.pad(x, (0, 0, cfg.past, right))
        w = xp.unfold(1, cfg.window, cfg.block)[:, :n]  # (B, n, D, W)
        i, j = torch.arange(n, device=x.device), torch.arange(cfg.window, device=x.device)
        pos = i[:, None] * cfg.block - cfg.past + j[None, :]
        valid = (pos[None] >= 0) & (pos[None] < lengths[:, None, None])
        return w.permute(0, 1, 3, 2).reshape(B * n, cfg.window, D), valid.reshape(B * n, cfg.window), n

    def encode_windows(self, w: Tensor, valid: Tensor) -> Tensor:
        """Hidden states of the ``block`` centre frames of each window (``(B·n, window, D)`` inputs, with
        ``valid`` marking real frames); the streaming decoder calls it one window at a time."""
        h = self.input(w)
        for layer in self.layers:
            h = layer(h, valid=valid)
        return h[:, self.cfg.past : self.cfg.past + self.cfg.block]

    def encode(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Blockwise encoder: ``(B, T', d)`` hidden states (block ``b`` sees frames < ``(b+1)S + A`` only)."""
        if feats.dim() != 3 or feats.shape[-1] != self.cfg.n_mels:
            raise ValueError(f"feats must be (B, T, {self.cfg.n_mels}), got {tuple(feats.shape)}")
        x = stack_frames(feats, self.cfg.stack, drop_last=True)
        lengths = stacked_length(feat_lens, self.cfg.stack, drop_last=True)
        B, T, _ = x.shape
        w, valid, n = self._windows(x, lengths)
        h = self.encode_windows(w, valid).reshape(B, n * self.cfg.block, -1)[:, :T]
        return h.masked_fill(~lengths_to_mask(lengths, T)[..., None], 0.0), lengths

    # -- label context ------------------------------------------------------------------------------
    def label_context(self, labels: Tensor) -> Tensor:
        """LM subnetwork: ``(B, m)`` labels → ``(B, m+1, d)`` states of ``[BOS, y_1 … y_m]`` (causal)."""
        inp = F.pad(labels, (1, 0), value=0)
        L = inp.shape[1]
        mask = torch.ones(L, L, dtype=torch.bool, device=labels.device).triu(1)
        return self.lm_ln(self.lm(self.embed(inp), mask=mask, is_causal=True))

    def _fused_logits(self, h: Tensor, ctx: Tensor, allowed: Tensor) -> Tensor:
        return self.sar_head(self.fuse(h, ctx, allowed))

    # -- training -----------------------------------------------------------------------------------
    def forward(
        self, feats: Tensor, feat_lens: Tensor, tokens: Tensor | None = None, token_lens: Tensor | None = None
    ) -> ModelOutput:
        cfg = self.cfg
        h, lengths = self.encode(feats, feat_lens)
        logits = self.ctc_head(h)
        losses: dict[str, Tensor] = {}
        extra: dict[str, Any] = {}
        if tokens is None:
            return ModelOutput(None, losses, logits, lengths, h, extra)
        if token_lens is None:
            raise ValueError("token_lens is required with tokens")
        loss = losses["ctc"] = ctc_loss(logits, lengths, tokens, token_lens)
        if not cfg.sar:
            return ModelOutput(loss, losses, logits, lengths, h, extra)
        B, T, _ = h.shape
        n = max(1, -(-T // cfg.block))
        U = tokens.shape[1]
        logp = logits.detach().float().log_softmax(-1)
        # padding labels sit past the last block
        blocks = torch.full((B, U), n, dtype=torch.long, device=h.device)
        for b in range(B):
            u = int(token_lens[b])
            blocks[b, :u] = align_to_blocks(logp[b, : int(lengths[b])], tokens[b, :u], cfg.block).clamp(
                max=n - 1
            )
        ctx = self.label_context(tokens)  # (B, U+1, d)
        frame_block = torch.arange(T, device=h.device) // cfg.block
        # labels emitted before the block of frame t: m = #{u : block_u < block(t)}
        m = (blocks[:, None, :] < frame_block[None, :, None]).sum(-1)  # (B, T)
        allowed = torch.arange(U + 1, device=h.device)[None, None, :] <= m[..., None]
        fused = self._fused_logits(h, ctx, allowed)  # (B, T, C)
        if cfg.sar_loss == "utterance":
            lsar = ctc_loss(fused, lengths, tokens, token_lens)
        else:
            lsar = self._block_ctc(fused, lengths, tokens, blocks, n)
        losses["sar"] = lsar
        loss = cfg.ctc_weight * losses["ctc"] + (1 - cfg.ctc_weight) * lsar
        if cfg.lm_weight > 0 and U > 0:
            lm_logits = self.lm_head(ctx[:, :-1])
            tgt = tokens.masked_fill(~lengths_to_mask(token_lens, U), -100)
            losses["lm"] = F.cross_entropy(
                lm_logits.reshape(-1, cfg.vocab_size), tgt.reshape(-1), ignore_index=-100
            )
            loss = loss + cfg.lm_weight * losses["lm"]
        extra["sar_logits"] = fused
        extra["label_blocks"] = blocks
        return ModelOutput(loss, losses, logits, lengths, h, extra)

    def _block_ctc(self, fused: Tensor, lengths: Tensor, tokens: Tensor, blocks: Tensor, n: int) -> Tensor:
        """Mean over blocks of the CTC of block ``b``'s fused logits on the labels aligned to block ``b``."""
        cfg = self.cfg
        B, T, _ = fused.shape
        U = tokens.shape[1]
        dev = fused.device
        pad = n * cfg.block - T
        fb = F.pad(fused, (0, 0, 0, pad)).reshape(B * n, cfg.block, -1)
        blens = (
            (lengths[:, None] - torch.arange(n, device=dev)[None, :] * cfg.block)
            .clamp(0, cfg.block)
            .reshape(-1)
        )
        tb = torch.zeros(B * n, max(U, 1), dtype=torch.long, device=dev)
        tl = torch.zeros(B * n, dtype=torch.long, device=dev)
        for b in range(B):
            for j in range(n):
                sel = tokens[b][blocks[b] == j]
                tb[b * n + j, : sel.numel()] = sel
                tl[b * n + j] = sel.numel()
        keep = blens > 0
        # the mean per block (the sum over an utterance's blocks would scale with its length)
        return ctc_loss(fb[keep], blens[keep], tb[keep], tl[keep])

    # -- decoding -----------------------------------------------------------------------------------
    def decode_block(
        self, h_b: Tensor, n_valid: int, state: _DecodeState, fix_boundaries: bool = True
    ) -> list[int]:
        """Greedy decoding of one encoded block ``h_b`` ``(S, d)`` (first ``n_valid`` frames real);
        updates ``state`` and returns the labels it emitted."""
        h_b = h_b[:n_valid]
        if n_valid == 0:
            return []
        plain = self.ctc_head(h_b).argmax(-1).tolist()
        if self.cfg.sar:
            ctx = self.label_context(torch.tensor([state.hyp], dtype=torch.long, device=h_b.device))
            allowed = torch.ones(1, n_valid, ctx.shape[1], dtype=torch.bool, device=h_b.device)
            labels = self._fused_logits(h_b[None], ctx, allowed)[0].argmax(-1).tolist()
        else:
            labels = plain
        prev = state.last_label if fix_boundaries else 0
        emitted: list[int] = []
        if fix_boundaries and self.cfg.sar:
            # deletion fix: the context-free head starts a new spike on this block's first frame, the
            # label-conditioned head did not emit it here, and it was not the last label emitted.
            p0 = plain[0]
            if (
                p0 != 0
                and p0 != state.last_plain
                and labels[0] != p0
                and (not state.hyp or state.hyp[-1] != p0)
            ):
                if p0 not in labels[:2]:
                    emitted.append(p0)
                    prev = p0
        for c in labels:
            if c != prev and c != 0:
                emitted.append(c)
            prev = c
        state.last_label = labels[-1]
        state.last_plain = plain[-1]
        state.hyp.extend(emitted)
        return emitted

    @torch.no_grad()
    def transcribe(self, feats: Tensor, feat_lens: Tensor, fix_boundaries: bool = True) -> list[list[int]]:
        """Greedy block-by-block decoding (equal to what `SARStreamer` returns)."""
        was = self.training
        self.eval()
        try:
            h, lengths = self.encode(feats, feat_lens)
            out = []
            for b in range(h.shape[0]):
                state = _DecodeState()
                n = int(lengths[b])
                for s in range(0, n, self.cfg.block):
                    self.decode_block(
                        h[b, s : s + self.cfg.block], min(self.cfg.block, n - s), state, fix_boundaries
                    )
                out.append(state.hyp)
            return out
        finally:
            self.train(was)


@dataclass
class _DecodeState:
    hyp: list[int] = field(default_factory=list)
    last_label: int = 0
    last_plain: int = 0


class SARStreamer:
    """Streaming inference: push features (or audio) chunk by chunk, get partial hypotheses.

    A block of ``S`` encoder frames is decoded as soon as its look-ahead has arrived, so the algorithmic
    latency is ``(S + A) · stack · hop`` of audio; ``block_seconds`` records the compute time per block.

    Args:
        model: a `SAR` model (put in eval mode).
        features: optional callable ``wave (N,) → (T, n_mels)`` used by `push_audio()`; it is re-run on
            all audio received so far and only frames that later audio cannot change are used
            (``hop``/``win`` give the frame geometry of a centred STFT).
            The audio buffer stays on the device of the pushed audio (where ``features`` runs); feature
            frames are moved to the model's device.
        fix_boundaries: use the boundary-aware greedy decoder.
    """

    def __init__(
        self, model: SAR, features: Any = None, *, fix_boundaries: bool = True, hop: int = 160, win: int = 400
    ):
        self.model = model.eval()
        self.features = features
        self.fix = fix_boundaries
        self.hop, self.win = hop, win
        cfg = model.cfg
        device = next(model.parameters()).device
        self._frames = torch.zeros(0, cfg.n_mels, device=device)
        self._audio = torch.zeros(0, device=device)
        self._next_block = 0
        self.state = _DecodeState()
        self.block_seconds: list[float] = []

    @property
    def hypothesis(self) -> list[int]:
        return list(self.state.hyp)

    def _stacked(self) -> int:
        return self._frames.shape[0] // self.model.cfg.stack

    @torch.no_grad()
    def _run_block(self, final: bool) -> None:
        cfg = self.model.cfg
        T = self._stacked()
        b = self._next_block
        t0 = time.perf_counter()
        x = stack_frames(self._frames[None], cfg.stack, drop_last=True)
        start = b * cfg.block - cfg.past
        stop = (b + 1) * cfg.block + cfg.lookahead
        seg = x[:, max(0, start) : min(T, stop)]
        w = F.pad(seg, (0, 0, max(0, -start), stop - min(T, stop)))
        pos = torch.arange(start, stop, device=x.device)
        valid = ((pos >= 0) & (pos < T))[None]
        h_b = self.model.encode_windows(w, valid)[0]
        n_valid = min(cfg.block, T - b * cfg.block)
        self.model.decode_block(h_b, n_valid, self.state, self.fix)
        self.block_seconds.append(time.perf_counter() - t0)
        self._next_block += 1

    def push_features(self, frames: Tensor) -> list[int]:
        """Append ``(t, n_mels)`` feature frames; decode every block whose look-ahead is complete."""
        cfg = self.model.cfg
        if frames.dim() != 2 or frames.shape[1] != cfg.n_mels:
            raise ValueError(f"frames must be (t, {cfg.n_mels}), got {tuple(frames.shape)}")
        self._frames = torch.cat([self._frames, frames.float().to(self._frames.device)])
        while (self._next_block + 1) * cfg.block + cfg.lookahead <= self._stacked():
            self._run_block(final=False)
        return self.hypothesis

    def push_audio(self, wave: Tensor) -> list[int]:
        """Append audio samples; features are recomputed and only the stable frames are consumed."""
        if self.features is None:
            raise ValueError("push_audio needs a features callable (e.g. zoo.data.LogMel())")
        self._audio = torch.cat([self._audio.to(wave.device), wave.reshape(-1).float()])
        feats = self.features(self._audio)
        stable = max(0, (self._audio.numel() - self.win // 2) // self.hop + 1)
        stable = min(stable, feats.shape[0])
        have = self._frames.shape[0]
        if stable > have:
            return self.push_features(feats[have:stable])
        return self.hypothesis

    def finish(self) -> list[int]:
        """Flush: decode the remaining (partial) blocks; returns the final hypothesis."""
        if self.features is not None and self._audio.numel():
            feats = self.features(self._audio)
            have = self._frames.shape[0]
            if feats.shape[0] > have:
                self._frames = torch.cat([self._frames, feats[have:].float().to(self._frames.device)])
        cfg = self.model.cfg
        while self._next_block * cfg.block < self._stacked():
            self._run_block(final=True)
        return self.hypothesis
