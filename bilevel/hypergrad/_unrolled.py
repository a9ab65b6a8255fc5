"""Hypergradients by differentiating through an unrolled inner gradient-descent loop."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from bilevel.checks import check_int, check_loss, check_real
from bilevel.hypergrad._implicit import LossFn, _grad, _leaves


def unrolled(
    inner_loss: LossFn,
    outer_loss: LossFn,
    inner: Sequence[Tensor],
    outer: Sequence[Tensor],
    *,
    lr: float,
    steps: int,
) -> tuple[list[Tensor], list[Tensor]]:
    r"""Hypergradient of $f(w_K(\lambda), \lambda)$ through $K$ steps of gradient descent.

    $w_0$ = ``inner`` (treated as a constant), $w_{k+1} = w_k - \eta\nabla_w g(w_k,\lambda)$;
    reverse-mode differentiation through the loop gives the exact derivative of the *truncated*
    problem. For a $\mu$-strongly convex, $L$-smooth inner loss and
    $\eta \le 1/L$, its distance to the implicit hypergradient decays like
    $O((1-\eta\mu)^K)$ (Franceschi et al., ICML 2017/2018; Grazzi et al., ICML 2020).
    Memory and time grow linearly in $K$.

    Args:
        inner_loss: $g(w, \lambda)$.
        outer_loss: $f(w, \lambda)$.
        inner: the starting point $w_0$.
        outer: $\lambda$.
        lr: inner step $\eta \ge 0$.
        steps: $K \ge 0$.

    Returns:
        ``(hypergradient, w_K)``, both detached.
    """
    lr = check_real(lr, "lr", low=0.0)
    check_int(steps, "steps", low=0)
    w: list[Tensor] = [t.detach() for t in _leaves(inner, "inner")]
    lam = _leaves(outer, "outer")
    with torch.enable_grad():
        for _ in range(steps):
            wk = [t if t.requires_grad else t.requires_grad_(True) for t in w]
            g = check_loss(inner_loss(wk, lam), "inner_loss")
            gw = _grad(g, wk, create_graph=True)
            w = [t - lr * gi for t, gi in zip(wk, gw)]
        f = check_loss(outer_loss(w, lam), "outer_loss")
        hyper = _grad(f, lam)
    return hyper, [t.detach() for t in w]
