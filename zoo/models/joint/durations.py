"""The duration model's bookkeeping: blank-interleaved text, length regulation, CTC forced alignment.

A character sequence $c_1 \\dots c_U$ becomes the blank-interleaved sequence
$\\varnothing\\, c_1\\, \\varnothing\\, c_2 \\dots c_U\\, \\varnothing$ of $2U+1$ positions, the states of a
CTC
alignment. Each position $n$ has a duration $\\delta_n \\ge 0$ in speech frames with
$\\sum_n \\delta_n = T$; repeating position $n$ $\\delta_n$ times (the length regulator of FastSpeech,
Ren et al., 2019) puts the text stream at the speech frame rate. Training durations come from the
CTC forced alignment of the transcript to the speech (``torchaudio.functional.forced_align``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torchaudio.functional as taf
from torch import Tensor

__all__ = [
    "alignment_durations",
    "check_durations",
    "encode_text",
    "interleave_blanks",
    "length_regulate",
    "path_to_alignment",
]


def encode_text(tokenizer: object, text: str, name: str = "text") -> list[int]:
    """Character ids of ``text`` with a [`zoo.data.CharTokenizer`][zoo.data.CharTokenizer]-like tokenizer;
    ``ValueError`` naming ``name`` for empty text or characters outside the vocabulary."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError(f"{name} must not be empty")
    ids = tokenizer.encode(text)  # type: ignore[attr-defined]
    unk = getattr(tokenizer, "unk_id", None)
    bad = sorted({c for c, i in zip(text, ids) if i == unk})
    if bad:
        raise ValueError(f"{name} has characters outside the vocabulary: {bad!r}")
    return [int(i) for i in ids]


def interleave_blanks(tokens: Tensor, token_lens: Tensor, blank: int = 0) -> tuple[Tensor, Tensor]:
    """``(B, U)`` padded tokens → ``(B, 2U+1)`` blank-interleaved states and their lengths ``2u+1``.

    Padding positions are ``blank``.

    Examples:
        >>> s, n = interleave_blanks(torch.tensor([[5, 6]]), torch.tensor([2]))
        >>> s.tolist(), n.tolist()
        ([[0, 5, 0, 6, 0]], [5])
    """
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be (B, U), got shape {tuple(tokens.shape)}")
    if token_lens.shape != tokens.shape[:1]:
        raise ValueError(f"token_lens must be ({tokens.shape[0]},), got {tuple(token_lens.shape)}")
    if bool((token_lens < 0).any()) or bool((token_lens > tokens.shape[1]).any()):
        raise ValueError(f"token_lens must lie in [0, {tokens.shape[1]}], got {token_lens.tolist()}")
    B, U = tokens.shape
    out = tokens.new_full((B, 2 * U + 1), blank)
    keep = torch.arange(U, device=tokens.device)[None] < token_lens[:, None]
    out[:, 1::2] = tokens.masked_fill(~keep, blank)
    return out, 2 * token_lens + 1


def check_durations(durations: Tensor, lengths: Tensor, frames: Tensor | None = None) -> Tensor:
    """Validate ``(B, N)`` integer durations (non-negative; zero beyond ``lengths``) and, when given, that
    each row sums to ``frames``; returns the row sums."""
    if durations.dim() != 2:
        raise ValueError(f"durations must be (B, N), got shape {tuple(durations.shape)}")
    if durations.is_floating_point() or durations.is_complex():
        raise TypeError(f"durations must be an integer tensor, got {durations.dtype}")
    if lengths.shape != durations.shape[:1]:
        raise ValueError(f"lengths must be ({durations.shape[0]},), got {tuple(lengths.shape)}")
    if bool((durations < 0).any()):
        raise ValueError("durations must be >= 0")
    pad = torch.arange(durations.shape[1], device=durations.device)[None] >= lengths[:, None]
    if bool((durations.masked_fill(~pad, 0) != 0).any()):
        raise ValueError("durations must be 0 beyond each row's length")
    sums = durations.sum(1)
    if frames is not None and not torch.equal(sums, frames.to(sums)):
        raise ValueError(
            f"durations must sum to the frame count of each utterance: sums {sums.tolist()}, "
            f"frames {frames.tolist()}"
        )
    return sums


def length_regulate(
    x: Tensor, durations: Tensor, lengths: Tensor, frames: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Repeat position $n$ of ``x`` ``durations[:, n]`` times: ``(B, N, d)`` → ``(B, T, d)`` zero-padded,
    with $T$ the largest row sum; returns it and the per-row frame counts. With ``frames`` the durations
    must sum to it (``ValueError`` otherwise).

    Examples:
        >>> x = torch.tensor([[[1.0], [2.0], [3.0]]])
        >>> y, n = length_regulate(x, torch.tensor([[2, 0, 1]]), torch.tensor([3]))
        >>> y[0, :, 0].tolist(), n.tolist()
        ([1.0, 1.0, 3.0], [3])
    """
    if x.dim() != 3 or x.shape[:2] != durations.shape:
        raise ValueError(
            f"x must be (B, N, d) with (B, N) = durations' {tuple(durations.shape)}, got {tuple(x.shape)}"
        )
    sums = check_durations(durations, lengths, frames)
    B, _, d = x.shape
    T = int(sums.max()) if B else 0
    out = x.new_zeros(B, T, d)
    for b in range(B):
        rep = torch.repeat_interleave(x[b], durations[b], dim=0)
        out[b, : rep.shape[0]] = rep
    return out, sums


def alignment_durations(log_probs: Tensor, length: int, tokens: Sequence[int], blank: int = 0) -> Tensor:
    """Durations of the $2U+1$ blank-interleaved states from the CTC forced alignment of ``tokens`` to
    ``log_probs`` ``(T, C)`` (the first ``length`` frames), via ``torchaudio.functional.forced_align`` and
    ``merge_tokens``: character $i$ lasts its span, the blank before it the gap since the previous span,
    the final blank the rest. They sum to ``length``.

    ``ValueError`` when ``tokens`` is empty or the alignment is impossible (fewer frames than the
    transcript needs).
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be (T, C), got shape {tuple(log_probs.shape)}")
    toks = [int(t) for t in tokens]
    if not toks:
        raise ValueError("tokens must not be empty")
    if blank in toks:
        raise ValueError(f"tokens must not contain the blank id {blank}")
    need = len(toks) + sum(a == b for a, b in itertools.pairwise(toks))
    if not need <= length <= log_probs.shape[0]:
        raise ValueError(
            f"length must be in [{need}, {log_probs.shape[0]}] to align {len(toks)} tokens, got {length}"
        )
    lp = log_probs[:length].float().log_softmax(-1)[None]
    path, scores = taf.forced_align(lp, torch.tensor([toks], dtype=torch.int32), blank=blank)
    spans = taf.merge_tokens(path[0], scores[0].exp(), blank=blank)
    if len(spans) != len(toks):  # pragma: no cover - forced_align's path always holds every token
        raise RuntimeError(f"forced alignment gave {len(spans)} spans for {len(toks)} tokens")
    dur = torch.zeros(2 * len(toks) + 1, dtype=torch.long)
    prev = 0
    for i, s in enumerate(spans):
        dur[2 * i] = s.start - prev
        dur[2 * i + 1] = s.end - s.start
        prev = s.end
    dur[-1] = length - prev
    return dur


def path_to_alignment(path: Sequence[int], blank: int = 0) -> tuple[list[int], list[int]]:
    """A frame-level label path (a CTC path: labels and blanks, one per frame) as blank-interleaved states
    and durations: runs of one label become one state, with a zero-length blank between consecutive
    non-blank runs. Inverse of `length_regulate()` on the states.

    Examples:
        >>> path_to_alignment([0, 5, 5, 6, 0])
        ([0, 5, 0, 6, 0], [1, 2, 0, 1, 1])
    """
    states: list[int] = [blank]
    durs: list[int] = [0]
    for lab in (int(p) for p in path):
        if lab == states[-1]:
            durs[-1] += 1
        elif lab == blank:
            states.append(blank)
            durs.append(1)
        else:
            if states[-1] != blank:
                states.append(blank)
                durs.append(0)
            states.append(lab)
            durs.append(1)
    if states[-1] != blank:
        states.append(blank)
        durs.append(0)
    return states, durs
