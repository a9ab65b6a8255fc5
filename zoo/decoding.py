"""CTC decoding: greedy (best path) and prefix beam search.

For frame posteriors $p_t(c)$ over labels plus a blank, CTC assigns a label sequence $y$ the
probability $P(y) = \\sum_{\\pi \\in \\mathcal{B}^{-1}(y)} \\prod_t p_t(\\pi_t)$, where
$\\mathcal{B}$
merges repeats and then drops blanks (Graves et al., 2006).

* `ctc_greedy()` — $\\mathcal{B}(\\arg\\max_c p_t(c))$, the best *path*;
* `ctc_prefix_beam_search()` — keeps the ``beam_size`` most probable *prefixes*, each with the
  probability of ending in a blank and in a non-blank (Hannun et al., 2014); with an unbounded beam it
  returns the exact $P(y)$ of every label sequence.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import Tensor

__all__ = ["collapse", "ctc_greedy", "ctc_prefix_beam_search"]

_NEG_INF = -math.inf


def _check(log_probs: Tensor, lengths: Tensor | None) -> Tensor:
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, C), got {tuple(log_probs.shape)}")
    B, T, _ = log_probs.shape
    if lengths is None:
        return torch.full((B,), T, dtype=torch.long, device=log_probs.device)
    if lengths.shape != (B,):
        raise ValueError(f"lengths must be ({B},), got {tuple(lengths.shape)}")
    if B and (int(lengths.max()) > T or int(lengths.min()) < 0):
        raise ValueError(f"lengths must lie in [0, {T}]")
    return lengths


def collapse(path: list[int], blank: int = 0) -> list[int]:
    """$\\mathcal{B}$: merge repeated labels, then drop blanks."""
    out: list[int] = []
    prev = None
    for c in path:
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return out


def ctc_greedy(log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0) -> list[list[int]]:
    """Best-path decoding of ``(B, T, C)`` scores (log-probabilities or logits); returns token ids."""
    lengths = _check(log_probs, lengths)
    best = log_probs.argmax(-1).tolist()
    return [collapse(row[: int(n)], blank) for row, n in zip(best, lengths.tolist())]


def _logadd(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def _beam_one(
    lp: list[list[float]], beam_size: int, blank: int, top_k: int | None
) -> list[tuple[list[int], float]]:
    # prefix -> (log P(prefix, ends in blank), log P(prefix, ends in non-blank))
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, _NEG_INF)}
    C = len(lp[0]) if lp else 0
    for row in lp:
        cand = range(C) if top_k is None or top_k >= C else sorted(range(C), key=row.__getitem__)[-top_k:]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [_NEG_INF, _NEG_INF])
        for prefix, (pb, pnb) in beams.items():
            total = _logadd(pb, pnb)
            for c in cand:
                p = row[c]
                if c == blank:
                    e = nxt[prefix]
                    e[0] = _logadd(e[0], total + p)
                    continue
                last = prefix[-1] if prefix else None
                ext = (*prefix, c)
                e = nxt[ext]
                if c == last:
                    # a repeat extends the prefix only after a blank; otherwise it stays the same prefix
                    e[1] = _logadd(e[1], pb + p)
                    same = nxt[prefix]
                    same[1] = _logadd(same[1], pnb + p)
                else:
                    e[1] = _logadd(e[1], total + p)
        scored = [(k, v, _logadd(v[0], v[1])) for k, v in nxt.items()]
        ranked = sorted((x for x in scored if x[2] > _NEG_INF), key=lambda x: x[2], reverse=True)
        beams = {k: (v[0], v[1]) for k, v, _ in ranked[:beam_size]}
    out = [(list(k), _logadd(*v)) for k, v in beams.items()]
    out.sort(key=lambda kv: kv[1], reverse=True)
    return out


def ctc_prefix_beam_search(
    log_probs: Tensor,
    lengths: Tensor | None = None,
    beam_size: int = 8,
    blank: int = 0,
    top_k: int | None = None,
) -> list[list[tuple[list[int], float]]]:
    """CTC prefix beam search over ``(B, T, C)`` log-probabilities.

    Args:
        log_probs: log-softmax outputs.
        lengths: ``(B,)`` valid frames (default: all).
        beam_size: prefixes kept after each frame (``>= 1``).
        blank: blank id.
        top_k: consider only the ``top_k`` most probable labels per frame (``None``: all).

    Returns:
        For each utterance, up to ``beam_size`` ``(token ids, log P(y))`` pairs, best first.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    lengths = _check(log_probs, lengths)
    lp = log_probs.detach().double().cpu()
    return [
        _beam_one(lp[b, : int(n)].tolist(), beam_size, blank, top_k) for b, n in enumerate(lengths.tolist())
    ]
