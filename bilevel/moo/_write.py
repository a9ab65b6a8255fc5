"""Step (c) of [`bilevel.moo.backward()`][bilevel.moo.backward]: write (accumulate) gradients into
``.grad``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from bilevel._autograd import grads_or_zeros
from bilevel._distributed import all_reduce_mean_


def accumulate_(p: Tensor, g: Tensor) -> None:
    """Add ``g`` (a fresh tensor nobody else holds) into ``p.grad``, like ``Tensor.backward``."""
    g = g.detach().to(p.dtype)
    if p.grad is None:
        p.grad = g
    else:
        p.grad.add_(g)


@torch.no_grad()
def write_combination_(p: Tensor, jacobian: Tensor, w: Tensor) -> None:
    """``p.grad += Σ_i w_i J_i`` for the per-objective gradients ``jacobian`` (m, *p.shape)."""
    accumulate_(p, torch.tensordot(w.to(jacobian.dtype), jacobian, dims=1))


def backward_combination_(losses: Tensor, w: Tensor, params: Sequence[Tensor], *, retain: bool) -> None:
    """``.grad += ∇_p Σ_i w_i L_i`` for ``params``, in one backward pass (averaged across ranks)."""
    if not params:
        return
    gs = grads_or_zeros((w.detach() * losses).sum(), list(params), retain_graph=retain)
    all_reduce_mean_(gs)
    for p, g in zip(params, gs):
        accumulate_(p, g)
