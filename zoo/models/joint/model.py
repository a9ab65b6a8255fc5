"""The joint non-autoregressive STT + TTS model (Sunder et al., arXiv:2501.09104) and its same-size baselines.

```text
text y (B,U) ─ interleave blanks ─► (B,2U+1) ─ [MASK share] ─ Embed ─ TextEncoder (bi, conformer) ─► e
   durations δ: training = CTC forced alignment; inference = DurationPredictor(e) (log(1+δ))
   length regulation: repeat e_n δ_n times ─► text stream t (B,T',d)        (missing: learned MASK stream)
log-mel x (B,T,F) ─ [span / time-freq masks] ─ stack k ─ LN ─ Linear ─► speech stream s (B,T',d)
   masked frames = learned speech-MASK vector                                (missing: all MASK)
h0 = LN(t + s + P_text[has text] + P_speech[has speech])     (modality-presence embeddings)
MultimodalEncoder: L × ConformerBlock ─► h (B,T',d)
heads: STT = Linear(d → |V|) (CTC, blank 0);  TTS = Linear(d → k·F) ─ unstack ─► mel (B,k·T',F) (+ post-net)
```

The baselines are the same class at the same size with one task: ``tasks=("stt",)`` (the same encoder,
speech in, CTC only) and ``tasks=("tts",)`` (a FastSpeech-style TTS: text encoder, the same duration
source, the same encoder, the mel head).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_int, check_real
from zoo.data import stack_frames, stacked_length
from zoo.decoding import ctc_greedy
from zoo.models.conformer import ConformerBlock, ctc_loss
from zoo.models.joint.durations import interleave_blanks, length_regulate
from zoo.models.masks import lengths_to_mask
from zoo.models.presets import preset_config

__all__ = [
    "JOINT_PRESETS",
    "DurationPredictor",
    "JointConfig",
    "JointOutput",
    "JointSTTTTS",
    "PostNet",
    "TextEncoder",
    "joint_config",
    "masked_l1",
]

TASKS = ("stt", "tts")


@dataclass(frozen=True)
class JointConfig:
    """Configuration of `JointSTTTTS` (defaults: the tiny CPU model).

    Attributes:
        vocab_size: character ids including the CTC blank 0 (the text MASK id is ``vocab_size``).
        n_mels: log-mel bins; stack: frames per encoder frame (4: 25 frames/s, the zoo CTC aligner's rate).
        d_model, num_heads, ff_mult: widths; num_layers: multimodal encoder blocks; text_layers: text
            encoder blocks; conv_kernel: depthwise kernel of the blocks; max_distance: relative positions.
        duration_channels: width of the duration predictor's 2 convolutions (kernel 3).
        postnet_layers: 1-D conv layers of the residual mel post-net (0: none).
        dropout: dropout of the blocks.
        tasks: ``("stt", "tts")`` joint; ``("stt",)`` STT-only; ``("tts",)`` TTS-only baseline.
    """

    vocab_size: int = 32
    n_mels: int = 80
    stack: int = 4
    d_model: int = 96
    num_heads: int = 4
    ff_mult: int = 4
    num_layers: int = 4
    text_layers: int = 2
    conv_kernel: int = 15
    max_distance: int = 64
    duration_channels: int = 96
    postnet_layers: int = 0
    dropout: float = 0.0
    tasks: tuple[str, ...] = field(default=TASKS)

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "n_mels",
            "stack",
            "d_model",
            "num_heads",
            "ff_mult",
            "num_layers",
            "text_layers",
            "conv_kernel",
            "max_distance",
            "duration_channels",
        ):
            check_int(getattr(self, name), name, low=1)
        check_int(self.postnet_layers, "postnet_layers", low=0)
        check_real(self.dropout, "dropout", low=0.0, high=1.0)
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must be >= 3 (blank, unk, a character), got {self.vocab_size}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by num_heads {self.num_heads}")
        if (
            not self.tasks
            or any(t not in TASKS for t in self.tasks)
            or len(set(self.tasks)) != len(self.tasks)
        ):
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks!r}")

    @property
    def mask_id(self) -> int:
        """The text MASK id (one past the vocabulary)."""
        return self.vocab_size


#: Named configurations: ``micro`` (tests), ``mini`` (the quick benchmark), ``tiny`` (quick CPU runs),
#: ``small`` (about the size of the paper reconstruction's CPU model).
JOINT_PRESETS: dict[str, JointConfig] = {
    "micro": JointConfig(
        d_model=16,
        num_heads=2,
        ff_mult=2,
        num_layers=1,
        text_layers=1,
        conv_kernel=3,
        duration_channels=8,
        n_mels=8,
        stack=2,
        max_distance=16,
    ),
    "mini": JointConfig(
        d_model=32, num_heads=2, ff_mult=2, num_layers=2, text_layers=1, conv_kernel=5, duration_channels=32
    ),
    "tiny": JointConfig(
        d_model=64, num_heads=4, ff_mult=4, num_layers=3, text_layers=2, conv_kernel=7, duration_channels=64
    ),
    "small": JointConfig(
        d_model=144,
        num_heads=4,
        ff_mult=4,
        num_layers=4,
        text_layers=2,
        conv_kernel=15,
        duration_channels=144,
        postnet_layers=5,
    ),
}


def joint_config(preset: str = "tiny", **overrides: Any) -> JointConfig:
    """The named preset of `JOINT_PRESETS` with ``overrides`` applied."""
    return preset_config(JOINT_PRESETS, preset, **overrides)


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error over the ``(B, T)`` frames where ``mask`` is true (all features); 0 when none."""
    if pred.shape != target.shape or mask.shape != pred.shape[:2]:
        raise ValueError(
            f"pred, target must match and mask be (B, T): {tuple(pred.shape)}, "
            f"{tuple(target.shape)}, {tuple(mask.shape)}"
        )
    m = mask[..., None].to(pred.dtype)
    return ((pred - target).abs() * m).sum() / (m.sum() * pred.shape[-1]).clamp_min(1.0)


class TextEncoder(nn.Module):
    """Bidirectional text encoder: embedding of the blank-interleaved states (+ MASK) and conformer blocks."""

    def __init__(self, cfg: JointConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size + 1, cfg.d_model)
        self.blocks = nn.ModuleList(
            ConformerBlock(
                cfg.d_model,
                cfg.num_heads,
                ff_mult=cfg.ff_mult,
                conv_kernel=min(cfg.conv_kernel, 5),
                max_distance=cfg.max_distance,
                dropout=cfg.dropout,
                conv_norm="layer",
            )
            for _ in range(cfg.text_layers)
        )

    def forward(self, states: Tensor, lengths: Tensor) -> Tensor:
        valid = lengths_to_mask(lengths, states.shape[1])
        h = self.embed(states)
        for blk in self.blocks:
            h = blk(h, valid=valid)
        return h.masked_fill(~valid[..., None], 0.0)


class DurationPredictor(nn.Module):
    """FastSpeech's duration predictor: 2 × (Conv1d k=3 → ReLU → LN) → Linear, predicting
    $\\log(1+\\delta)$."""

    def __init__(self, d: int, channels: int) -> None:
        super().__init__()
        self.c1, self.n1 = nn.Conv1d(d, channels, 3, padding=1), nn.LayerNorm(channels)
        self.c2, self.n2 = nn.Conv1d(channels, channels, 3, padding=1), nn.LayerNorm(channels)
        self.out = nn.Linear(channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.n1(F.relu(self.c1(x.transpose(1, 2))).transpose(1, 2))
        h = self.n2(F.relu(self.c2(h.transpose(1, 2))).transpose(1, 2))
        return self.out(h).squeeze(-1)


class PostNet(nn.Module):
    """Residual 1-D conv post-net over mel frames (Tacotron 2 style): ``mel + convs(mel)``."""

    def __init__(self, n_mels: int, layers: int, channels: int = 64, kernel: int = 5) -> None:
        super().__init__()
        dims = [n_mels] + [channels] * (layers - 1) + [n_mels]
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, kernel, padding=kernel // 2) for a, b in itertools.pairwise(dims)
        )

    def forward(self, mel: Tensor) -> Tensor:
        h = mel.transpose(1, 2)
        for i, c in enumerate(self.convs):
            h = c(h)
            if i < len(self.convs) - 1:
                h = torch.tanh(h)
        return mel + h.transpose(1, 2)


@dataclass
class JointOutput:
    """What `JointSTTTTS.forward()` returns.

    Attributes:
        hidden: ``(B, T', d)`` encoder output; lengths: ``(B,)`` valid encoder frames.
        ctc_logits: ``(B, T', V)`` STT head (``None`` without the STT task).
        mel: ``(B, k·T', F)`` TTS head before the post-net; mel_post: after it (``None`` without
            the TTS task); mel_lens: ``(B,)`` = ``k · lengths``.
        log_durations: ``(B, 2U+1)`` predicted $\\log(1+\\delta)$ (``None`` without text).
        state_lens: ``(B,)`` lengths of the interleaved states (``None`` without text).
        durations: ``(B, 2U+1)`` the durations used (given or predicted; ``None`` without text).
    """

    hidden: Tensor
    lengths: Tensor
    ctc_logits: Tensor | None
    mel: Tensor | None
    mel_post: Tensor | None
    mel_lens: Tensor
    log_durations: Tensor | None
    state_lens: Tensor | None
    durations: Tensor | None = None


class JointSTTTTS(nn.Module):
    """One multimodal encoder over fused text and speech streams with an STT (CTC) and a TTS (log-mel) head.

    ``forward(tokens=, token_lens=, durations=, feats=, feat_lens=, speech_mask=, text_mask=)``:
    give text (``tokens`` ``(B, U)`` character ids without blanks, ``durations`` ``(B, 2U+1)`` of the
    interleaved states summing to the encoder frames), speech (``feats`` ``(B, T, F)``), or both; a missing
    stream is the learned MASK stream with its modality-presence embedding. ``speech_mask`` ``(B, T')``
    replaces encoder frames of the speech stream by the speech-MASK vector; ``text_mask`` ``(B, U)``
    replaces characters by the MASK id (before interleaving). Without ``durations`` the text stream uses
    the duration predictor (`predict_durations()`).

    Examples:
        >>> m = JointSTTTTS(joint_config("micro", vocab_size=6))
        >>> out = m(feats=torch.zeros(1, 8, 8), feat_lens=torch.tensor([8]))
        >>> tuple(out.ctc_logits.shape), tuple(out.mel.shape)
        ((1, 4, 6), (1, 8, 8))
    """

    def __init__(self, cfg: JointConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or JointConfig()
        d = cfg.d_model
        self.text_encoder = TextEncoder(cfg)  # built for every task list: the baselines keep the same size
        self.duration = DurationPredictor(d, cfg.duration_channels)
        self.speech_in = nn.Sequential(
            nn.LayerNorm(cfg.stack * cfg.n_mels), nn.Linear(cfg.stack * cfg.n_mels, d)
        )
        self.text_missing = nn.Parameter(torch.randn(d) * 0.02)  # the MASK stream of absent text
        self.speech_missing = nn.Parameter(torch.randn(d) * 0.02)  # the MASK stream of absent speech
        self.speech_mask_vec = nn.Parameter(torch.randn(d) * 0.02)  # masked frames of present speech
        self.presence = nn.Embedding(4, d)  # [text absent, text present, speech absent, speech present]
        self.fuse_ln = nn.LayerNorm(d)
        self.blocks = nn.ModuleList(
            ConformerBlock(
                d,
                cfg.num_heads,
                ff_mult=cfg.ff_mult,
                conv_kernel=cfg.conv_kernel,
                max_distance=cfg.max_distance,
                dropout=cfg.dropout,
                conv_norm="layer",
            )
            for _ in range(cfg.num_layers)
        )
        self.stt_head = nn.Linear(d, cfg.vocab_size) if "stt" in cfg.tasks else None
        self.tts_head = nn.Linear(d, cfg.stack * cfg.n_mels) if "tts" in cfg.tasks else None
        self.postnet = (
            PostNet(cfg.n_mels, cfg.postnet_layers) if cfg.postnet_layers and self.tts_head else None
        )

    # -- streams ------------------------------------------------------------------------------------------

    def encoder_frames(self, feat_lens: Tensor) -> Tensor:
        """Encoder frames of ``feat_lens`` feature frames (stacking drops an incomplete last window)."""
        return stacked_length(feat_lens, self.cfg.stack, drop_last=True)

    def encode_text(
        self, tokens: Tensor, token_lens: Tensor, text_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Interleaved states ``(B, 2U+1)``, their lengths and the text encoder output ``(B, 2U+1, d)``."""
        self._check_tokens(tokens, token_lens)
        if text_mask is not None:
            if text_mask.shape != tokens.shape:
                raise ValueError(f"text_mask must be {tuple(tokens.shape)}, got {tuple(text_mask.shape)}")
            tokens = tokens.masked_fill(text_mask, self.cfg.mask_id)
        states, lens = interleave_blanks(tokens, token_lens)
        return states, lens, self.encode_states(states, lens)

    def encode_states(self, states: Tensor, lens: Tensor) -> Tensor:
        """Text encoder output of blank-interleaved states (ids may include the MASK id)."""
        return self.text_encoder(states, lens)

    def predict_durations(self, log_durations: Tensor, states: Tensor, lens: Tensor) -> Tensor:
        """Integer durations from predicted $\\log(1+\\delta)$: $\\mathrm{round}(e^{x}-1)$, at least 1 frame
        for every character and for the blank between two equal characters (so that CTC can read the text
        back), 0 beyond ``lens``."""
        d = torch.round(log_durations.detach().float().exp() - 1).clamp_min(0).long()
        is_char = states != 0
        need = is_char.clone()
        need[:, 1:-1] |= (states[:, :-2] == states[:, 2:]) & is_char[:, :-2] & ~is_char[:, 1:-1]
        d = torch.where(need, d.clamp_min(1), d)
        return d.masked_fill(~lengths_to_mask(lens, states.shape[1]), 0)

    def _check_tokens(self, tokens: Tensor, token_lens: Tensor) -> None:
        if tokens.dim() != 2 or token_lens.shape != tokens.shape[:1]:
            raise ValueError(
                "tokens must be (B, U) and token_lens (B,), got "
                f"{tuple(tokens.shape)}, {tuple(token_lens.shape)}"
            )
        if bool((token_lens < 1).any()):
            raise ValueError(f"token_lens must be >= 1 (empty text), got {token_lens.tolist()}")
        valid = lengths_to_mask(token_lens, tokens.shape[1])
        bad = valid & ((tokens < 2) | (tokens >= self.cfg.vocab_size))
        if bool(bad.any()):
            raise ValueError(
                f"tokens must be character ids in [2, {self.cfg.vocab_size}) (no blank, unknown or MASK), "
                f"got {sorted(set(tokens[bad].tolist()))}"
            )

    # -- forward ------------------------------------------------------------------------------------------

    def forward(
        self,
        tokens: Tensor | None = None,
        token_lens: Tensor | None = None,
        durations: Tensor | None = None,
        feats: Tensor | None = None,
        feat_lens: Tensor | None = None,
        speech_mask: Tensor | None = None,
        text_mask: Tensor | None = None,
        states: Tensor | None = None,
        state_lens: Tensor | None = None,
    ) -> JointOutput:
        """Fuse the given streams and run the encoder and heads (see the class docstring). ``states`` /
        ``state_lens`` give blank-interleaved states directly (STT refinement feeds its path back so)."""
        has_text = tokens is not None or states is not None
        if not has_text and feats is None:
            raise ValueError(
                "give text (tokens=, token_lens=), speech (feats=, feat_lens=) or both; got neither"
            )
        if tokens is not None and states is not None:
            raise ValueError("give tokens= or states=, not both")
        device = self.text_missing.device
        s = frames = None
        if feats is not None:
            if feat_lens is None:
                raise ValueError("feat_lens is required with feats")
            if feats.dim() != 3 or feats.shape[-1] != self.cfg.n_mels or feat_lens.shape != feats.shape[:1]:
                raise ValueError(
                    f"feats must be (B, T, {self.cfg.n_mels}) with feat_lens (B,), got "
                    f"{tuple(feats.shape)}, {tuple(feat_lens.shape)}"
                )
            frames = self.encoder_frames(feat_lens)
            if bool((frames < 1).any()):
                raise ValueError(
                    f"feat_lens must give >= 1 encoder frame (>= {self.cfg.stack} frames), "
                    f"got {feat_lens.tolist()}"
                )
            x = stack_frames(feats, self.cfg.stack, drop_last=True)
            s = self.speech_in(x)
            if speech_mask is not None:
                if speech_mask.shape != s.shape[:2]:
                    raise ValueError(
                        f"speech_mask must be {tuple(s.shape[:2])}, got {tuple(speech_mask.shape)}"
                    )
                s = torch.where(speech_mask[..., None], self.speech_mask_vec.to(s.dtype), s)
        t = log_dur = lens = None
        if has_text:
            if tokens is not None:
                if token_lens is None:
                    raise ValueError("token_lens is required with tokens")
                states, lens, e = self.encode_text(tokens, token_lens, text_mask)
            else:
                if state_lens is None:
                    raise ValueError("state_lens is required with states")
                lens = state_lens
                assert states is not None
                e = self.encode_states(states, lens)
            log_dur = self.duration(e).masked_fill(~lengths_to_mask(lens, e.shape[1]), 0.0)
            if durations is None:
                durations = self.predict_durations(log_dur, states, lens)
            if durations.shape != states.shape:
                raise ValueError(
                    f"durations must be (B, 2U+1) = {tuple(states.shape)}, got {tuple(durations.shape)}"
                )
            t, sums = length_regulate(e, durations, lens, frames)
            frames = sums if frames is None else frames
        assert frames is not None
        B, T = frames.shape[0], int(frames.max())
        d = self.cfg.d_model
        if t is None:
            t = self.text_missing.expand(B, T, d)
        else:
            t = t[:, :T] if t.shape[1] >= T else F.pad(t, (0, 0, 0, T - t.shape[1]))
        if s is None:
            s = self.speech_missing.expand(B, T, d)
        else:
            s = s[:, :T]
        flags = torch.tensor([1 if has_text else 0, 3 if feats is not None else 2], device=device)
        h = self.fuse_ln(t + s + self.presence(flags).sum(0))
        valid = lengths_to_mask(frames, T)
        layer_valid = None if bool(valid.all()) else valid
        for blk in self.blocks:
            h = blk(h, valid=layer_valid)
        h = h.masked_fill(~valid[..., None], 0.0)
        logits = self.stt_head(h) if self.stt_head is not None else None
        mel = mel_post = None
        if self.tts_head is not None:
            mel = self.tts_head(h).reshape(B, T * self.cfg.stack, self.cfg.n_mels)
            mel_post = self.postnet(mel) if self.postnet is not None else mel
        return JointOutput(
            h, frames, logits, mel, mel_post, frames * self.cfg.stack, log_dur, lens, durations
        )

    # -- losses -------------------------------------------------------------------------------------------

    @staticmethod
    def ctc(out: JointOutput, tokens: Tensor, token_lens: Tensor) -> Tensor:
        """CTC loss of the STT head against ``tokens``."""
        if out.ctc_logits is None:
            raise ValueError("this model has no STT head (tasks lacks 'stt')")
        return ctc_loss(out.ctc_logits, out.lengths, tokens, token_lens)

    def mel_loss(self, out: JointOutput, feats: Tensor, frame_mask: Tensor | None = None) -> Tensor:
        """L1 of the TTS head (and of the post-net output) against ``feats`` over the frames of ``frame_mask``
        ``(B, T')`` (encoder frames; all valid frames by default)."""
        if out.mel is None or out.mel_post is None:
            raise ValueError("this model has no TTS head (tasks lacks 'tts')")
        k, T = self.cfg.stack, out.lengths.max()
        target = feats[:, : int(T) * k]
        m = (
            lengths_to_mask(out.lengths, int(T))
            if frame_mask is None
            else frame_mask & lengths_to_mask(out.lengths, int(T))
        )
        fm = m.repeat_interleave(k, dim=1)
        loss = masked_l1(out.mel, target, fm)
        if self.postnet is not None:
            loss = loss + masked_l1(out.mel_post, target, fm)
        return loss

    @staticmethod
    def duration_loss(out: JointOutput, durations: Tensor) -> Tensor:
        """$\\mathrm{MSE}(\\log(1+\\hat\\delta), \\log(1+\\delta))$ over the valid interleaved states."""
        if out.log_durations is None or out.state_lens is None:
            raise ValueError("duration_loss needs a forward pass with text")
        m = lengths_to_mask(out.state_lens, durations.shape[1]).float()
        err = (out.log_durations - torch.log1p(durations.float())) ** 2
        return (err * m).sum() / m.sum().clamp_min(1.0)

    @torch.no_grad()
    def transcribe(self, feats: Tensor, feat_lens: Tensor) -> list[list[int]]:
        """Plain STT: CTC greedy decoding of the speech with the text stream missing (eval mode)."""
        was = self.training
        self.eval()
        try:
            out = self(feats=feats, feat_lens=feat_lens)
        finally:
            self.train(was)
        if out.ctc_logits is None:
            raise ValueError("this model has no STT head (tasks lacks 'stt')")
        return ctc_greedy(out.ctc_logits.float().log_softmax(-1), out.lengths)

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)
