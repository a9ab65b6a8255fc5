"""Implicit hypergradients of a general inner problem, by implicit differentiation of its optimality."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from bilevel._autograd import grads_or_zeros as _grad
from bilevel.checks import check_choice, check_loss, check_real
from bilevel.hypergrad._solvers import cg, neumann

LossFn = Callable[[Sequence[Tensor], Sequence[Tensor]], Tensor]
"""``loss(inner, outer) -> scalar``: a loss of the inner variables and the outer (hyper)parameters."""


def _leaves(ts: Sequence[Tensor], name: str) -> list[Tensor]:
    ts = list(ts)
    if not ts or not all(isinstance(t, Tensor) for t in ts):
        raise ValueError(f"{name} must be a non-empty sequence of tensors")
    if not all(t.is_floating_point() for t in ts):
        raise ValueError(f"{name} must hold floating-point tensors")
    if not all(bool(torch.isfinite(t).all()) for t in ts):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return [t.detach().requires_grad_(True) for t in ts]


def implicit(
    inner_loss: LossFn,
    outer_loss: LossFn,
    inner: Sequence[Tensor],
    outer: Sequence[Tensor],
    *,
    method: str = "cg",
    steps: int = 10,
    alpha: float | None = None,
    tol: float = 0.0,
) -> list[Tensor]:
    r"""Hypergradient $\frac{d}{d\lambda} f(w^*(\lambda), \lambda)$ by the implicit function theorem.

    With $w^*(\lambda) = \arg\min_w g(w, \lambda)$ and $\nabla_w g(w^*, \lambda) = 0$,

    $$
    \frac{dF}{d\lambda} = \nabla_\lambda f - \nabla^2_{\lambda w} g\;
    \big[\nabla^2_{ww} g\big]^{-1}\nabla_w f ,
    $$

    all evaluated at $(w^*, \lambda)$. The linear system is solved matrix-free with
    Hessian-vector products, by conjugate gradient (``method="cg"``) or the truncated Neumann series
    (``method="neumann"``, step ``alpha``). The result is only as good as ``inner`` is close to
    $w^*$: the error is $O(\|\nabla_w g(w, \lambda)\|)$ plus the solver's error (see
    [`cg()`][bilevel.hypergrad.cg], [`neumann()`][bilevel.hypergrad.neumann]).

    Args:
        inner_loss: $g(w, \lambda)$, called with lists of tensors.
        outer_loss: $f(w, \lambda)$.
        inner: the (approximate) inner solution $w^*$.
        outer: the outer parameters $\lambda$.
        method: ``"cg"`` or ``"neumann"``.
        steps: solver iterations (Hessian-vector products).
        alpha: Neumann step (required for ``"neumann"``; choose ``alpha <= 1/L`` with $L$ the
            largest eigenvalue of $\nabla^2_{ww} g$).
        tol: CG relative residual tolerance for early stopping.

    Returns:
        Detached hypergradients shaped like ``outer``.

    References:
        Pedregosa, "Hyperparameter optimization with approximate gradient", ICML 2016;
        Lorraine, Vicol & Duvenaud, AISTATS 2020; Rajeswaran et al., "Meta-learning with implicit
        gradients", NeurIPS 2019.
    """
    method = check_choice(method, "method", ("cg", "neumann"))
    if method == "neumann":
        if alpha is None:
            raise ValueError("alpha is required for method='neumann' (choose alpha <= 1/L)")
        check_real(alpha, "alpha", low=0.0, low_open=True)
    w = _leaves(inner, "inner")
    lam = _leaves(outer, "outer")
    with torch.enable_grad():
        g = check_loss(inner_loss(w, lam), "inner_loss")
        gw = _grad(g, w, create_graph=True)
        f = check_loss(outer_loss(w, lam), "outer_loss")
        fw_and_fl = _grad(f, [*w, *lam])
        fw, fl = fw_and_fl[: len(w)], fw_and_fl[len(w) :]

        def hvp(v: Sequence[Tensor]) -> list[Tensor]:
            return _grad(gw, w, grad_outputs=list(v), retain_graph=True)

        if method == "cg":
            x = cg(hvp, fw, steps=steps, tol=tol)
        else:
            assert alpha is not None
            x = neumann(hvp, fw, steps=steps, alpha=alpha)
        mixed = _grad(gw, lam, grad_outputs=x, retain_graph=False)
    return [a - b for a, b in zip(fl, mixed)]
