"""Temporarily swap parameter values, so closures written for a model can be evaluated elsewhere."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor


@contextmanager
def swapped(params: Sequence[Tensor], values: Sequence[Tensor]) -> Iterator[None]:
    """Within the block, ``params[i]`` holds ``values[i]``; the original values are restored on exit.

    The swap is done in place on ``.data`` under ``no_grad`` so autograd sees the same leaf tensors,
    and the original storage is restored exactly (bit for bit) even if the block raises.
    """
    if len(params) != len(values):
        raise ValueError(f"swapped: got {len(params)} parameters but {len(values)} values")
    saved = []
    with torch.no_grad():
        for p, v in zip(params, values):
            if p.shape != v.shape:
                raise ValueError(
                    f"swapped: value of shape {tuple(v.shape)} for a parameter of shape {tuple(p.shape)}"
                )
            saved.append(p.detach().clone())
            p.copy_(v)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
