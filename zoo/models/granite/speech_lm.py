"""Granite-speech (Saon et al., arXiv:2505.08699): Conformer-CTC encoder → windowed Q-Former → text LM + LoRA.

```text
log-mel (B, T_m, F) ─ Conformer-CTC encoder ─► hidden (B, T, D)       (and a CTC readout of its own)
  └─ projector (windowed Q-Former, K = 15, N = 3) ─► audio (B, ceil(T/15)·3, d_LM), counts (B,)
       └─ scattered into the LM's input embeddings at the audio placeholder positions
          (the prompt's one placeholder expanded to the utterance's count; padded embeddings dropped)
            └─ decoder-only LM with LoRA on q_proj / v_proj ─► next-token logits
```

Two modes: **speech mode** (audio given: encoder, projector and LoRA on; every prompt must hold its
audio placeholders) and **text mode** (no audio: the base LM alone, LoRA off; a placeholder in the
prompt is an error). Text mode runs exactly the base LM's operations, so its logits are bit-identical
to the LM's before the speech training (which trains only the projector and the LoRA).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from zoo.models.conformer import ConformerCTC
from zoo.models.granite.lm import DecoderLM, KVCache, next_token_loss
from zoo.models.granite.lora import apply_lora, lora_enabled, lora_parameters
from zoo.models.granite.presets import GraniteConfig
from zoo.models.granite.qformer import MLPProjector, WindowedQFormer, mlp_hidden_for

__all__ = ["GraniteSpeech", "SpeechLMOutput", "expand_audio_token", "scatter_audio"]


def expand_audio_token(ids: Sequence[int], count: int, audio_id: int) -> list[int]:
    """``ids`` with its single audio placeholder repeated ``count`` times (the processor's expansion).

    ``ValueError`` when ``ids`` holds no placeholder or more than one.

    Examples:
        >>> expand_audio_token([5, 9, 6], 3, audio_id=9)
        [5, 9, 9, 9, 6]
    """
    ids = [int(i) for i in ids]
    n = ids.count(audio_id)
    if n != 1:
        raise ValueError(
            f"a speech-mode prompt must hold the audio token ({audio_id}) once, it holds it {n} times"
        )
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    at = ids.index(audio_id)
    return ids[:at] + [audio_id] * count + ids[at + 1 :]


def scatter_audio(embeds: Tensor, is_audio: Tensor, audio: Tensor, counts: Tensor) -> Tensor:
    """Write the valid audio embeddings into ``embeds`` at the placeholder positions.

    Args:
        embeds: ``(B, S, d)`` token embeddings.
        is_audio: ``(B, S)`` placeholder positions.
        audio: ``(B, M, d)`` projector output (padded for shorter utterances).
        counts: ``(B,)`` valid embeddings per utterance; row ``b`` must hold ``counts[b]`` placeholders.

    Returns ``(B, S, d)``: the embeddings of row ``b``'s placeholders, in order, are ``audio[b, :counts[b]]``;
    the padded ``audio[b, counts[b]:]`` are dropped.
    """
    per_row = is_audio.sum(1)
    if not torch.equal(per_row, counts.to(per_row)):
        raise ValueError(
            f"the prompts hold {per_row.tolist()} audio tokens, the audio gives {counts.tolist()} embeddings"
        )
    valid = torch.arange(audio.shape[1], device=audio.device)[None, :] < counts[:, None]
    return embeds.masked_scatter(is_audio[..., None], audio[valid].to(embeds.dtype))


@dataclass
class SpeechLMOutput:
    """What `GraniteSpeech.forward()` returns.

    Attributes:
        loss: next-token cross-entropy on the labelled positions (``None`` without labels).
        logits: ``(B, S, V)``.
        audio_counts: ``(B,)`` audio embeddings per utterance (``None`` in text mode).
    """

    loss: Tensor | None
    logits: Tensor
    audio_counts: Tensor | None


class GraniteSpeech(nn.Module):
    """The speech LM of Granite-speech: encoder, projector, LM with LoRA; speech and text modes.

    Args:
        cfg: a [`GraniteConfig`][zoo.models.granite.GraniteConfig] (see ``GRANITE_PRESETS``).

    Examples:
        >>> from zoo.models import granite_config
        >>> model = GraniteSpeech(granite_config("tiny")).eval()
        >>> a = model.cfg.audio_id
        >>> feats, lens = torch.randn(1, 120, 40), torch.tensor([120])
        >>> counts = model.audio_embeddings(feats, lens)[1]  # 120 mel → 30 frames → 2 windows
        >>> counts.tolist()
        [6]
        >>> ids = torch.tensor([expand_audio_token([2, a, 5], 6, a)])
        >>> tuple(model(ids, feats=feats, feat_lens=lens).logits.shape)
        (1, 8, 40)
    """

    def __init__(self, cfg: GraniteConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio_id = cfg.audio_id
        self.encoder = ConformerCTC(cfg.encoder)
        D, L = cfg.encoder.d_model, cfg.lm.d_model
        qformer = WindowedQFormer(D, L, cfg.projector)
        self.projector: WindowedQFormer | MLPProjector
        if cfg.projector_kind == "qformer":
            self.projector = qformer
        else:
            stack = cfg.projector.window // cfg.projector.num_queries
            hidden = cfg.mlp_hidden or mlp_hidden_for(
                sum(p.numel() for p in qformer.parameters()), D, L, stack
            )
            self.projector = MLPProjector(D, L, cfg.projector, hidden)
        self.lm = DecoderLM(cfg.lm)
        apply_lora(self.lm, cfg.lora)

    def speech_parameters(self) -> list[nn.Parameter]:
        """What the speech training (stage 3) trains: the projector and the LoRA adapters."""
        return [*self.projector.parameters(), *lora_parameters(self.lm)]

    def audio_embeddings(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, M, d_LM)`` projector output and ``(B,)`` valid embeddings per utterance."""
        if any(p.requires_grad for p in self.encoder.parameters()):
            enc = self.encoder.encode(feats, feat_lens)
        else:  # a frozen encoder (the speech stage): no graph through it
            with torch.no_grad():
                enc = self.encoder.encode(feats, feat_lens)
        return self.projector(enc.hidden, enc.lengths)

    def _check_ids(self, input_ids: Tensor) -> None:
        if input_ids.dim() != 2 or input_ids.dtype != torch.long:
            raise ValueError(
                f"input_ids must be a (B, S) long tensor, got {tuple(input_ids.shape)} {input_ids.dtype}"
            )

    def speech_embeds(self, input_ids: Tensor, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """The LM input of speech mode: token embeddings with the audio scattered in, and the counts."""
        self._check_ids(input_ids)
        if feats.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"feats hold {feats.shape[0]} utterances, input_ids {input_ids.shape[0]} prompts"
            )
        is_audio = input_ids == self.audio_id
        if not bool(is_audio.any(1).all()):
            raise ValueError(f"speech mode: every prompt must hold the audio token ({self.audio_id})")
        audio, counts = self.audio_embeddings(feats, feat_lens)
        if int(counts.max()) > self.cfg.lm.max_len:
            raise ValueError(
                f"the audio gives {int(counts.max())} embeddings, more than the LM's context "
                f"(max_len={self.cfg.lm.max_len}); cut the audio into shorter pieces"
            )
        embeds = self.lm.embed(torch.where(is_audio, 0, input_ids))
        return scatter_audio(embeds, is_audio, audio, counts), counts

    def forward(
        self,
        input_ids: Tensor,
        labels: Tensor | None = None,
        feats: Tensor | None = None,
        feat_lens: Tensor | None = None,
    ) -> SpeechLMOutput:
        """Speech mode when ``feats`` are given, else text mode; ``labels`` ``(B, S)`` with ``-100`` at the
        positions that are not predicted (prompt, audio, padding)."""
        self._check_ids(input_ids)
        if feats is None:
            logits = self.text_logits(input_ids)
            counts = None
        else:
            if feat_lens is None:
                raise ValueError("feat_lens is required with feats")
            embeds, counts = self.speech_embeds(input_ids, feats, feat_lens)
            with lora_enabled(self.lm, True):
                logits = self.lm(inputs_embeds=embeds).logits
        loss = None if labels is None else next_token_loss(logits, labels)
        return SpeechLMOutput(loss, logits, counts)

    def text_logits(self, input_ids: Tensor) -> Tensor:
        """Text mode: the base LM's logits with every adapter off (an audio token is an error)."""
        self._check_ids(input_ids)
        if bool((input_ids == self.audio_id).any()):
            raise ValueError(
                f"text mode: the prompt holds the audio token ({self.audio_id}) but no audio is given"
            )
        with lora_enabled(self.lm, False):
            return self.lm(input_ids).logits

    @torch.no_grad()
    def ctc_transcribe(self, feats: Tensor, feat_lens: Tensor) -> list[list[int]]:
        """The encoder's own CTC greedy readout (a second ASR output, in the encoder's character ids)."""
        return self.encoder.transcribe(feats, feat_lens)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        feats: Tensor | None = None,
        feat_lens: Tensor | None = None,
        max_new_tokens: int = 64,
        eos_id: int = 3,
        beam_size: int = 1,
        use_cache: bool = True,
    ) -> list[list[int]]:
        """Decode a response per prompt (greedy for ``beam_size=1``, else beam search), without the EOS.

        Speech mode when ``feats`` are given: each prompt holds the audio token once and is expanded to its
        utterance's count here. ``use_cache=False`` re-encodes the whole prefix at every step (same result,
        for timing the cache).
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        speech = feats is not None
        if feats is not None and (feat_lens is None or len(prompts) != feats.shape[0]):
            raise ValueError("speech mode needs feat_lens and one prompt per utterance")
        was = self.training
        self.eval()
        try:
            embeds: list[Tensor] = []
            if speech:
                assert feats is not None and feat_lens is not None
                audio, counts = self.audio_embeddings(feats, feat_lens)
                for b, p in enumerate(prompts):
                    ids = torch.tensor([expand_audio_token(p, int(counts[b]), self.audio_id)])
                    e = self.lm.embed(torch.where(ids == self.audio_id, 0, ids))
                    embeds.append(scatter_audio(e, ids == self.audio_id, audio[b : b + 1], counts[b : b + 1]))
            else:
                for p in prompts:
                    ids = torch.tensor([list(p)], dtype=torch.long)
                    if bool((ids == self.audio_id).any()):
                        raise ValueError(
                            f"text mode: prompt holds the audio token ({self.audio_id}) but no audio is given"
                        )
                    embeds.append(self.lm.embed(ids))
            with lora_enabled(self.lm, speech):
                if beam_size == 1:
                    return [self._greedy(e, max_new_tokens, eos_id, use_cache) for e in embeds]
                return [self._beam(e, max_new_tokens, eos_id, beam_size) for e in embeds]
        finally:
            self.train(was)

    def _room(self, embeds: Tensor, max_new: int) -> int:
        room = self.cfg.lm.max_len - embeds.shape[1]
        if room < 1:
            raise ValueError(
                f"the prompt ({embeds.shape[1]} positions with its audio) fills the LM's context "
                f"(max_len={self.cfg.lm.max_len})"
            )
        return min(max_new, room)

    def _greedy(self, embeds: Tensor, max_new: int, eos: int, use_cache: bool) -> list[int]:
        out: list[int] = []
        steps = self._room(embeds, max_new)
        res = self.lm(inputs_embeds=embeds, use_cache=use_cache)
        for _ in range(steps):
            tok = int(res.logits[0, -1].argmax())
            if tok == eos:
                break
            out.append(tok)
            if len(out) == steps:
                break
            nxt = torch.tensor([[tok]])
            if use_cache:
                res = self.lm(nxt, cache=res.cache, use_cache=True)
            else:
                embeds = torch.cat([embeds, self.lm.embed(nxt)], dim=1)
                res = self.lm(inputs_embeds=embeds)
        return out

    def _beam(self, embeds: Tensor, max_new: int, eos: int, beam: int) -> list[int]:
        steps = self._room(embeds, max_new)
        res = self.lm(inputs_embeds=embeds, use_cache=True)
        cache: KVCache = res.cache or []
        logp = res.logits[:, -1].float().log_softmax(-1)
        seqs: list[list[int]] = [[]]
        scores = torch.zeros(1)
        done: list[tuple[float, list[int]]] = []
        V = logp.shape[-1]
        for t in range(steps):
            cand = (scores[:, None] + logp).reshape(-1)
            top = cand.topk(min(2 * beam, cand.numel()))
            keep_seqs, keep_scores, parents, toks = [], [], [], []
            for s, idx in zip(top.values.tolist(), top.indices.tolist()):
                parent, tok = divmod(idx, V)
                if tok == eos:
                    done.append((s / (len(seqs[parent]) + 1), seqs[parent]))
                    continue
                keep_seqs.append([*seqs[parent], tok])
                keep_scores.append(s)
                parents.append(parent)
                toks.append(tok)
                if len(keep_seqs) == beam:
                    break
            best_live = max(keep_scores, default=float("-inf"))
            if not keep_seqs or t == steps - 1 or (len(done) >= beam and max(d[0] for d in done) > best_live):
                done += [(s / (len(q) + 1), q) for s, q in zip(keep_scores, keep_seqs)]
                break
            idx_t = torch.tensor(parents)
            cache = [(k[idx_t], v[idx_t]) for k, v in cache]
            res = self.lm(torch.tensor(toks)[:, None], cache=cache, use_cache=True)
            cache = res.cache or []
            logp = res.logits[:, -1].float().log_softmax(-1)
            seqs, scores = keep_seqs, torch.tensor(keep_scores)
        return max(done, key=lambda d: d[0])[1] if done else []
