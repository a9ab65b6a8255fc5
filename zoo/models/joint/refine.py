"""Iterative refinement at inference: confidence-guided STT and progressive-unmasking TTS.

STT with $K$ steps: step 0 reads the speech with the text stream missing and gives CTC posteriors
$p_t$. Each further step takes the greedy frame path $\\pi_t = \\arg\\max_k p_t(k)$ and its confidence
$c_t = \\max_k p_t(k)$, replaces the labels of frames with $c_t < \\theta$ by MASK, feeds the path back as
the text stream (its runs as blank-interleaved states with their durations: a CTC path *is* an alignment)
and re-reads. The output is the collapsed final path; $K = 0$ is plain CTC greedy decoding.

TTS with $K$ steps: step 0 reads the text (predicted durations) with the speech stream missing and
predicts log-mels $\\hat m_0$. Step $k = 1..K$ feeds $\\hat m_{k-1}$ back as the speech stream with a
random share $1 - k/(K+1)$ of its frames masked and predicts $\\hat m_k$; the output is $\\hat m_K$.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.checks import check_int, check_real
from zoo.decoding import ctc_greedy
from zoo.models.joint.durations import path_to_alignment
from zoo.models.joint.masking import random_frame_mask
from zoo.models.joint.model import JointOutput, JointSTTTTS

__all__ = ["refine_stt", "refine_tts"]


def _feedback(
    path: Tensor, conf: Tensor, lengths: Tensor, threshold: float, mask_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    rows = []
    for b, n in enumerate(lengths.tolist()):
        p = path[b, :n].masked_fill(conf[b, :n] < threshold, mask_id)
        rows.append(path_to_alignment(p.tolist()))
    N = max(len(s) for s, _ in rows)
    states = torch.zeros(len(rows), N, dtype=torch.long)
    durs = torch.zeros(len(rows), N, dtype=torch.long)
    for b, (s, d) in enumerate(rows):
        states[b, : len(s)] = torch.tensor(s)
        durs[b, : len(d)] = torch.tensor(d)
    return states, torch.tensor([len(s) for s, _ in rows]), durs


@torch.no_grad()
def refine_stt(
    model: JointSTTTTS, feats: Tensor, feat_lens: Tensor, steps: int = 0, threshold: float = 0.9
) -> tuple[list[list[int]], list[JointOutput]]:
    """Confidence-guided STT refinement with ``steps`` = $K$ feedback steps and confidence threshold
    ``threshold`` = $\\theta$; returns the token ids per utterance and every step's output."""
    check_int(steps, "steps", low=0)
    check_real(threshold, "threshold", low=0.0, high=1.0)
    out = model(feats=feats, feat_lens=feat_lens)
    if out.ctc_logits is None:
        raise ValueError("model has no STT head (tasks lacks 'stt')")
    outs = [out]
    for _ in range(steps):
        assert out.ctc_logits is not None
        conf, path = out.ctc_logits.float().softmax(-1).max(-1)
        states, lens, durs = _feedback(path, conf, out.lengths, threshold, model.cfg.mask_id)
        out = model(feats=feats, feat_lens=feat_lens, states=states, state_lens=lens, durations=durs)
        outs.append(out)
    assert out.ctc_logits is not None
    return ctc_greedy(out.ctc_logits.float().log_softmax(-1), out.lengths), outs


@torch.no_grad()
def refine_tts(
    model: JointSTTTTS,
    tokens: Tensor,
    token_lens: Tensor,
    steps: int = 0,
    generator: torch.Generator | None = None,
    durations: Tensor | None = None,
) -> tuple[Tensor, Tensor, list[JointOutput]]:
    """Progressive-unmasking TTS with ``steps`` = $K$ steps (``durations``: given, else predicted);
    returns the log-mels ``(B, T, F)``, their lengths and every step's output."""
    check_int(steps, "steps", low=0)
    out = model(tokens=tokens, token_lens=token_lens, durations=durations)
    if out.mel_post is None:
        raise ValueError("model has no TTS head (tasks lacks 'tts')")
    outs = [out]
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    for k in range(1, steps + 1):
        assert out.mel_post is not None
        share = torch.full((tokens.shape[0],), 1.0 - k / (steps + 1))
        mask = random_frame_mask(out.lengths, int(out.lengths.max()), share, gen)
        out = model(
            tokens=tokens,
            token_lens=token_lens,
            durations=out.durations,
            feats=out.mel_post,
            feat_lens=out.mel_lens,
            speech_mask=mask,
        )
        outs.append(out)
    assert out.mel_post is not None
    return out.mel_post, out.mel_lens, outs
