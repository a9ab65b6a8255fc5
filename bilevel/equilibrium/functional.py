r"""Functional core of equilibrium-constrained multi-source training (PTEC, arXiv 2508.19990).

Problem: $\min_\theta \frac1M\sum_i \ell_i(\phi_i^K(\theta))$ with
$\phi_i^0 = \theta$, $\phi_i^{k+1} = \phi_i^k - \beta\nabla\ell_i(\phi_i^k)$.
These functions compute the outer direction; the stateful [`bilevel.Equilibrium`][bilevel.Equilibrium]
([`bilevel.equilibrium.optimizer`][bilevel.equilibrium.optimizer]) applies it. Gradients and parameter swaps
go through the shared
plumbing of [`bilevel._autograd`][bilevel._autograd], as in
[`bilevel.penalty.functional`][bilevel.penalty.functional].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

from bilevel._autograd import exchanged, grads_or_zeros
from bilevel.checks import check_choice, check_int, check_loss, check_real

MODES = ("first_order", "second_order", "reptile")

SourceLoss = Callable[..., Tensor]
"""Source ``i``'s loss on a fresh batch: ``closure()`` reading the parameters (default), or
``closure(values)`` on a list of parameter values (``functional=True``, required by
``"second_order"``)."""


@dataclass
class SourceResult:
    """One source's contribution.

    Attributes:
        direction: this source's outer direction (detached, one tensor per parameter).
        grad_at_start: $\\nabla\\ell_i(\\theta)$ on the first batch (detached).
        loss_before: $\\ell_i(\\theta)$ on the first batch.
        loss_after: $\\ell_i(\\phi_i^K)$ on the last batch.
    """

    direction: list[Tensor]
    grad_at_start: list[Tensor]
    loss_before: float
    loss_after: float


def _grads(loss: Tensor, ins: Sequence[Tensor], name: str, *, create_graph: bool = False) -> list[Tensor]:
    """Gradients (zeros for unused parameters); a loss reaching none of ``ins`` raises, naming ``name``."""
    return grads_or_zeros(loss, ins, create_graph=create_graph, name=name)


def _lrs(inner_lr: float | Sequence[float], n: int) -> list[float]:
    if isinstance(inner_lr, Sequence):
        lrs = [check_real(v, "inner_lr", low=0.0) for v in inner_lr]
        if len(lrs) != n:
            raise ValueError(f"inner_lr has {len(lrs)} entries for {n} parameters")
        return lrs
    return [check_real(inner_lr, "inner_lr", low=0.0)] * n


def _call(closure: SourceLoss, values: list[Tensor] | None, name: str) -> Tensor:
    return check_loss(closure() if values is None else closure(values), name)


def source_direction(
    params: Sequence[Tensor],
    closure: SourceLoss,
    *,
    inner_lr: float | Sequence[float],
    inner_steps: int,
    mode: str = "first_order",
    functional: bool = False,
    name: str = "closure",
) -> SourceResult:
    r"""The outer direction contributed by one source.

    - ``"first_order"``: $\nabla\ell_i(\phi_i^K)$ (the Jacobian $d\phi/d\theta$ replaced
      by $I$, as in first-order MAML).
    - ``"second_order"``: the exact $\frac{d}{d\theta}\ell_i(\phi_i^K(\theta)) =
      \prod_{k=0}^{K-1}(I-\beta\nabla^2\ell_i(\phi_i^k))\,\nabla\ell_i(\phi_i^K)$; needs ``functional``.
    - ``"reptile"``: the mean gradient along the path, $\frac1K\sum_{k<K}\nabla\ell_i(\phi_i^k)
      = (\theta-\phi_i^K)/(\beta K)$; needs $K \ge 1$.

    The closure is called $K+1$ times (one fresh batch per call). Without ``functional`` it
    is evaluated at $\phi$ by backing ``params`` with $\phi$'s storage
    ([`bilevel._autograd.exchanged()`][bilevel._autograd.exchanged]); the parameters' own values are never
    written, so they are
    exactly as before on return (also on error). A closure whose loss does not depend on the parameters
    raises a ``ValueError`` (it would otherwise contribute a silent zero direction).
    """
    mode = check_choice(mode, "mode", MODES)
    check_int(inner_steps, "inner_steps", low=1 if mode == "reptile" else 0)
    params = list(params)
    lrs = _lrs(inner_lr, len(params))
    if mode == "second_order":
        if not functional:
            raise ValueError(
                "mode='second_order' needs differentiable inner steps: pass functional=True and closures "
                "that take the list of parameter values (e.g. via torch.func.functional_call)"
            )
        return _second_order(params, closure, lrs, inner_steps, name)
    return _first_order(params, closure, lrs, inner_steps, mode, name, functional)


def _finish(
    mode: str,
    path_sum: list[Tensor],
    last: list[Tensor] | None,
    g0: list[Tensor],
    before: float,
    after: float,
    k: int,
) -> SourceResult:
    if mode == "reptile":
        return SourceResult([s / k for s in path_sum], g0, before, after)
    assert last is not None
    return SourceResult(last, g0, before, after)


def _first_order(
    params: list[Tensor],
    closure: SourceLoss,
    lrs: list[float],
    steps: int,
    mode: str,
    name: str,
    functional: bool,
) -> SourceResult:
    # φ is updated in place. A closure that reads the module's parameters sees φ through an exchange of
    # storage (the parameters' own storage is never written); a functional closure gets φ itself.
    phi = [p.detach().clone() for p in params]
    path_sum = [torch.zeros_like(p) for p in phi]
    g0: list[Tensor] = []
    before = after = float("nan")
    last: list[Tensor] | None = None

    def value_and_grads() -> tuple[Tensor, list[Tensor]]:
        if not functional:
            loss = _call(closure, None, name)
            return loss, _grads(loss, params, name)
        cur = [t.detach().requires_grad_(True) for t in phi]
        loss = _call(closure, cur, name)
        return loss, _grads(loss, cur, name)

    with exchanged(params, phi) if not functional else nullcontext(), torch.enable_grad():
        for k in range(steps):
            loss, g = value_and_grads()
            if k == 0:
                before, g0 = float(loss.detach()), g
            if mode == "reptile":
                path_sum = [s + gi for s, gi in zip(path_sum, g)]
            with torch.no_grad():
                for w, gi, lr in zip(phi, g, lrs):
                    w.copy_(w - lr * gi)
        if mode == "reptile":
            with torch.no_grad():
                after = float(_call(closure, phi if functional else None, name))
        else:
            loss, last = value_and_grads()
            after = float(loss.detach())
            if steps == 0:
                before, g0 = after, last
    return _finish(mode, path_sum, last, g0, before, after, steps)


def _second_order(
    params: list[Tensor], closure: SourceLoss, lrs: list[float], steps: int, name: str
) -> SourceResult:
    phi: list[Tensor] = list(params)
    g0: list[Tensor] = []
    before = float("nan")
    with torch.enable_grad():
        for k in range(steps):
            loss = _call(closure, phi, name)
            g = _grads(loss, phi, name, create_graph=True)
            if k == 0:
                before, g0 = float(loss.detach()), [gi.detach() for gi in g]
            phi = [t - lr * gi for t, gi, lr in zip(phi, g, lrs)]
        loss = _call(closure, phi, name)
        meta = [t.detach() for t in _grads(loss, params, name)]
    after = float(loss.detach())
    if steps == 0:
        before, g0 = after, meta
    return SourceResult(meta, g0, before, after)


@dataclass
class EquilibriumDirection:
    """The combined outer direction and per-source losses (in the order of the sources given)."""

    direction: list[Tensor]
    loss_before: list[float]
    loss_after: list[float]


def equilibrium_direction(
    params: Sequence[Tensor],
    source_losses: Sequence[SourceLoss],
    *,
    inner_lr: float | Sequence[float],
    inner_steps: int,
    mode: str = "first_order",
    global_weight: float = 0.0,
    functional: bool = False,
    source_ids: Sequence[int] | None = None,
) -> EquilibriumDirection:
    r"""Outer direction $d = \frac1M\sum_i \big(h_i + \lambda_g\nabla\ell_i(\theta)\big)$.

    $h_i$ is `source_direction()`'s result for source $i$ and $\lambda_g$ =
    ``global_weight`` keeps a share of the plain averaged (global) loss. Note the $\frac1M$: the
    direction is the gradient of the *mean* post-adaptation loss. With ``inner_steps=0`` and
    ``global_weight=0`` it is the averaged-loss gradient $\frac1M\sum_i\nabla\ell_i(\theta)$.
    ``source_ids`` (default ``0..M-1``) only label the sources in error messages.
    """
    params = list(params)
    if not params:
        raise ValueError("params is empty: expected at least one parameter")
    gw = check_real(global_weight, "global_weight", low=0.0)
    closures = list(source_losses)
    if not closures:
        raise ValueError("source_losses is empty: expected one loss closure per source")
    ids = list(range(len(closures))) if source_ids is None else list(source_ids)
    if len(ids) != len(closures):
        raise ValueError(f"source_ids has {len(ids)} entries for {len(closures)} sources")
    for i, c in zip(ids, closures):
        if not callable(c):
            raise TypeError(f"source_losses[{i}] must be callable, got {type(c).__name__}")
    total = [torch.zeros_like(p, memory_format=torch.preserve_format).detach() for p in params]
    before, after = [], []
    for i, c in zip(ids, closures):
        r = source_direction(
            params,
            c,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            mode=mode,
            functional=functional,
            name=f"source_losses[{i}]",
        )
        total = [t + h for t, h in zip(total, r.direction)]
        if gw:
            total = [t + gw * g for t, g in zip(total, r.grad_at_start)]
        before.append(r.loss_before)
        after.append(r.loss_after)
    m = len(closures)
    return EquilibriumDirection([t / m for t in total], before, after)
