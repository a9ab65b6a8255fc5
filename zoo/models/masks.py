"""Attention masks as boolean tensors where ``True`` means *may attend* (the convention of
`torch.nn.functional.scaled_dot_product_attention()`).

Plain functions, so tests and models share one definition:

* `lengths_to_mask()` — ``(B, T)`` validity of each frame from the sequence lengths;
* `block_mask()` — query ``i`` in block ``b = i // block`` sees keys ``j`` with
  ``b·block − left ≤ j < (b+1)·block + right`` (``left = right = 0``: Granite's block attention;
  ``right > 0``: a look-ahead; ``left > 0``: past context);
* `causal_mask()` and `prefix_lm_mask()` — decoder-only masks (DOTA's prefix-LM);
* `combine()` — intersect a ``(T, T)`` or ``(B, T, T)`` mask with key validity.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["block_mask", "causal_mask", "combine", "lengths_to_mask", "prefix_lm_mask", "relative_positions"]


def _check_nonneg(value: int, name: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """``(B, T)`` boolean mask, ``True`` at frames ``t < lengths[b]``.

    Args:
        lengths: ``(B,)`` integer lengths.
        max_len: ``T`` (default ``lengths.max()``); must be ``>= lengths.max()``.
    """
    if lengths.dim() != 1:
        raise ValueError(f"lengths must have shape (B,), got {tuple(lengths.shape)}")
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError("lengths must be non-negative")
    longest = int(lengths.max()) if lengths.numel() else 0
    T = longest if max_len is None else max_len
    if T < longest:
        raise ValueError(f"max_len={T} is shorter than the longest sequence ({longest})")
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def block_mask(
    T: int, block: int, *, left: int = 0, right: int = 0, device: torch.device | None = None
) -> Tensor:
    """``(T, T)`` blockwise mask: query ``i`` sees key ``j`` iff
    ``(i // block)·block − left ≤ j < (i // block + 1)·block + right``.

    Args:
        T: sequence length.
        block: block size in frames (``>= 1``).
        left: frames of past context before the block (``>= 0``).
        right: frames of look-ahead after the block (``>= 0``).
    """
    _check_nonneg(T, "T")
    _check_nonneg(block, "block", 1)
    _check_nonneg(left, "left")
    _check_nonneg(right, "right")
    i = torch.arange(T, device=device)
    start = (i // block) * block
    j = i[None, :]
    return (j >= (start - left)[:, None]) & (j < (start + block + right)[:, None])


def causal_mask(T: int, device: torch.device | None = None) -> Tensor:
    """``(T, T)`` lower-triangular mask: position ``i`` sees ``j <= i``."""
    _check_nonneg(T, "T")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def prefix_lm_mask(
    prefix: int, T: int, *, bidirectional: bool = True, device: torch.device | None = None
) -> Tensor:
    """``(T, T)`` mask of a decoder with a ``prefix``-long audio prefix.

    Causal everywhere, except that (when ``bidirectional``) prefix positions see the whole prefix:
    ``mask[i, j] = j <= i or (j < prefix and i < prefix)``; text positions always see the whole prefix
    (they come after it, so this already follows from causality).
    """
    _check_nonneg(prefix, "prefix")
    if prefix > T:
        raise ValueError(f"prefix ({prefix}) must be <= T ({T})")
    m = causal_mask(T, device)
    if bidirectional:
        m[:prefix, :prefix] = True
    return m


def combine(mask: Tensor | None, valid: Tensor | None) -> Tensor | None:
    """Intersect an attention mask (``(T, T)`` or ``(B, Tq, Tk)``) with key validity ``(B, Tk)``.

    Returns ``(B, Tq, Tk)`` (or ``mask`` / ``valid[:, None, :]`` when the other is ``None``).
    """
    if valid is None:
        return mask
    keys = valid[:, None, :]
    if mask is None:
        return keys
    if mask.dim() == 2:
        mask = mask[None]
    return mask & keys


def relative_positions(
    Tq: int, Tk: int, max_distance: int, *, offset: int = 0, device: torch.device | None = None
) -> Tensor:
    """``(Tq, Tk)`` indices into a Shaw relative-position table of ``2·max_distance + 1`` rows:
    ``clamp(i + offset − j, −max_distance, max_distance) + max_distance``.

    ``offset`` is the position of query 0 relative to key 0 (non-zero when queries are a window inside
    a longer key range).
    """
    _check_nonneg(max_distance, "max_distance")
    i = torch.arange(Tq, device=device)[:, None] + offset
    j = torch.arange(Tk, device=device)[None, :]
    return (i - j).clamp(-max_distance, max_distance) + max_distance
