"""Shared fixtures of the zoo's training tests: random speech-like items and a tiny Conformer-CTC.

Items are batched with :func:`zoo.data.collate`, the zoo's own collate function.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.models.conformer import ConformerConfig, ConformerCTC


def random_items(
    n: int, seed: int = 0, *, dim: int, frames: tuple[int, int] = (10, 20), vocab_size: int = 5
) -> list[dict[str, Any]]:
    """``n`` items with ``T ~ U[frames)`` frames of ``dim`` Gaussian features and 1-3 tokens in
    ``[1, vocab_size)`` (0 is the CTC blank), all drawn from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        T = int(torch.randint(frames[0], frames[1], (1,), generator=g))
        U = int(torch.randint(1, 4, (1,), generator=g))
        out.append(
            {
                "id": str(i),
                "feats": torch.randn(T, dim, generator=g),
                "tokens": torch.randint(1, vocab_size, (U,), generator=g),
                "text": "x",
            }
        )
    return out


def tiny_conformer(n_mels: int, vocab_size: int, **overrides: Any) -> ConformerCTC:
    """A 2-layer, 16-wide Conformer-CTC (stack 2, blocks of 4) for fast loop tests."""
    kw: dict[str, Any] = {
        "n_mels": n_mels,
        "stack": 2,
        "d_model": 16,
        "num_heads": 2,
        "num_layers": 2,
        "conv_kernel": 3,
        "block_size": 4,
        "max_distance": 4,
        "vocab_size": vocab_size,
    }
    return ConformerCTC(ConformerConfig(**{**kw, **overrides}))
