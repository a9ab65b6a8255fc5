"""Flatten per-parameter tensors into one vector and back."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate ``tensors`` into one 1-D vector."""
    if not tensors:
        raise ValueError("flatten: expected at least one tensor")
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten_like(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split ``vector`` into views shaped like ``like`` (inverse of :func:`flatten`)."""
    total = sum(t.numel() for t in like)
    if vector.dim() != 1 or vector.numel() != total:
        raise ValueError(
            f"unflatten_like: expected a vector of {total} elements, got shape {tuple(vector.shape)}"
        )
    out, offset = [], 0
    for t in like:
        out.append(vector[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
    return out
