"""Masking for self-supervision: text characters, speech spans (wav2vec 2.0) and time/frequency masks.

* `mask_text()`: exactly $\\lfloor p\\,u \\rceil$ of the $u$ characters of each utterance (chosen by a
  ``torch.Generator``) are replaced by the MASK id before the alignment is built;
* `span_mask()`: wav2vec 2.0's span masking (Baevski et al., 2020): every valid frame starts a span of
  ``span`` frames with probability ``p``; the union is masked (boolean ``(B, T)``);
* `time_freq_mask()`: SpecAugment's frequency and time masks (Park et al., 2019) on a padded batch of
  features ([`zoo.data.spec_augment_batch()`][zoo.data.spec_augment_batch]).
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.checks import check_int, check_real
from zoo.data import spec_augment_batch

__all__ = ["mask_text", "random_frame_mask", "span_mask", "time_freq_mask"]


def mask_text(
    tokens: Tensor, token_lens: Tensor, share: float, mask_id: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Replace ``round(share · u)`` characters of each row (``u`` = its length) by ``mask_id``.

    Returns the masked tokens and the boolean mask of replaced positions.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> t, m = mask_text(torch.tensor([[2, 3, 4, 5]]), torch.tensor([4]), 0.5, 9, g)
        >>> int(m.sum()), int((t == 9).sum())
        (2, 2)
    """
    check_real(share, "share", low=0.0, high=1.0)
    if tokens.dim() != 2 or token_lens.shape != tokens.shape[:1]:
        raise ValueError(
            "tokens must be (B, U) with token_lens (B,), got "
            f"{tuple(tokens.shape)}, {tuple(token_lens.shape)}"
        )
    masked = torch.zeros_like(tokens, dtype=torch.bool)
    for b, u in enumerate(token_lens.tolist()):
        k = round(share * u)
        if k:
            idx = torch.randperm(u, generator=generator)[:k]
            masked[b, idx] = True
    return tokens.masked_fill(masked, mask_id), masked


def span_mask(lengths: Tensor, max_len: int, p: float, span: int, generator: torch.Generator) -> Tensor:
    """wav2vec 2.0 span mask ``(B, max_len)``: each valid frame starts a ``span``-frame span with
    probability ``p`` (spans clipped at the utterance's end; padded frames never masked)."""
    check_real(p, "p", low=0.0, high=1.0)
    check_int(span, "span", low=1)
    B = lengths.shape[0]
    starts = torch.rand(B, max_len, generator=generator) < p
    valid = torch.arange(max_len)[None] < lengths[:, None]
    starts &= valid
    out = torch.zeros(B, max_len, dtype=torch.bool)
    for k in range(span):
        out[:, k:] |= starts[:, : max_len - k]
    return out & valid


def random_frame_mask(lengths: Tensor, max_len: int, share: Tensor, generator: torch.Generator) -> Tensor:
    """Mask exactly ``round(share[b] · lengths[b])`` random valid frames of each row ``(B, max_len)``
    (progressive unmasking in training and in TTS refinement)."""
    out = torch.zeros(lengths.shape[0], max_len, dtype=torch.bool)
    for b, (n, s) in enumerate(zip(lengths.tolist(), share.tolist())):
        k = round(float(s) * n)
        if k:
            out[b, torch.randperm(n, generator=generator)[:k]] = True
    return out


def time_freq_mask(feats: Tensor, feat_lens: Tensor, generator: torch.Generator, **kwargs: object) -> Tensor:
    """SpecAugment time and frequency masks on the valid frames of a padded ``(B, T, F)`` batch
    (keyword arguments go to [`zoo.data.spec_augment()`][zoo.data.spec_augment])."""
    return spec_augment_batch(feats, feat_lens, generator, **kwargs)
