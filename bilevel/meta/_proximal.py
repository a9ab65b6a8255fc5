"""iMAML's inner problem, min_φ L(φ) + (λ/2)||φ - θ||², by gradient descent with monotone step control."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import grad_and_value, vmap

from bilevel.checks import check_int, check_real
from bilevel.meta._adapt import Params, select_names
from bilevel.meta._batched import BatchedLossFn, check_depends_on_params, check_finite_tasks, check_task_data

_ROUND = 64 * torch.finfo(torch.float32).eps
"""Relative slack of the acceptance test, f(φ') ≤ f(φ)(1 + slack): round-off, not an increase."""

ValueAndGrad = Callable[[Params], tuple[Tensor, Params]]
"""``phi -> (objective(phi), ∇objective(phi))`` for one task."""


def controlled_descent(value_and_grad: ValueAndGrad, start: Params, lr: float, steps: int) -> Params:
    r"""``steps`` gradient steps of size at most ``lr`` that never increase the objective.

    From $(f_0, g_0)$ at ``start``, each step tries $\phi' = \phi - s\,g$; it is accepted when
    $f(\phi')$ is finite and $\le f(\phi)$ (up to a relative round-off slack of
    $64\,\varepsilon_{32} \approx 8\cdot10^{-6}$), otherwise $\phi$ stays and the step halves
    (a backtracking line search spread over the iterations). Where plain descent decreases the objective
    (a step below $2/L$ on a locally quadratic objective) the iterates are exactly plain gradient
    descent's; where it would overshoot (a sharp region, or a diverging inner loop) the step shrinks
    instead. Written with ``torch.where`` so that it runs under ``torch.func.vmap`` (one step per task).
    Costs one gradient evaluation more than plain descent (at ``start``).
    """
    phi = dict(start)
    f, g = value_and_grad(phi)
    step = torch.full_like(f, lr)
    for _ in range(steps):
        cand = {n: phi[n] - step * g[n] for n in phi}
        f_new, g_new = value_and_grad(cand)
        # accept within round-off of f (near the optimum f's changes fall below its resolution)
        ok = torch.isfinite(f_new) & (f_new <= f + _ROUND * torch.abs(f))
        phi = {n: torch.where(ok, cand[n], phi[n]) for n in phi}
        g = {n: torch.where(ok, g_new[n], g[n]) for n in g}
        f = torch.where(ok, f_new, f)
        step = torch.where(ok, step, step / 2)
    return phi


def proximal_objective(
    loss: Callable[[Params], Tensor], anchor: Params, lam: float
) -> Callable[[Params], Tensor]:
    r"""The proximal objective $\mathcal L(\phi) + \frac\lambda2\|\phi - \theta\|^2$ (``anchor``: θ)."""

    def objective(phi: Params) -> Tensor:
        prox = sum(torch.sum((phi[n] - anchor[n]) ** 2) for n in phi)
        return loss(phi) + 0.5 * lam * prox

    return objective


def imaml_adapt_batched(
    model: nn.Module,
    loss_fn: BatchedLossFn,
    data: Any,
    *,
    reg: float,
    inner_lr: float,
    inner_steps: int,
    names: Iterable[str] | None = None,
) -> Params:
    r"""iMAML's task adaptation for a batch of tasks: the proximal problem of every task, in one vmap call.

    Each task $t$ runs ``inner_steps`` of step-controlled gradient descent (steps of at most
    ``inner_lr`` that never increase the objective, halving where they would) from $\theta$ on

    $$
    \min_\phi\ \mathcal L^{tr}_t(\phi) + \tfrac{\lambda}{2}\|\phi-\theta\|^2
    $$

    (Rajeswaran, Finn, Kakade & Levine, NeurIPS 2019). It is the inner loop of
    [`imaml_grad_batched()`][bilevel.meta.imaml_grad_batched], so a model meta-trained with iMAML is adapted
    to new tasks
    by the same procedure. ``data`` and ``loss_fn`` are as in [`adapt_batched()`][bilevel.meta.adapt_batched].

    Returns:
        Every parameter by name with a leading task dimension, detached (the adapted ones are
        $\phi_t$, the others $\theta$ expanded).
    """
    lam = check_real(reg, "reg", low=0.0, low_open=True)
    lr = check_real(inner_lr, "inner_lr", low=0.0)
    check_int(inner_steps, "inner_steps", low=0)
    keys = select_names(model, names)
    n_tasks = check_task_data(data, "data")
    check_finite_tasks(torch.utils._pytree.tree_leaves(data), n_tasks, "data")
    theta = dict(model.named_parameters())
    anchor = {n: theta[n].detach() for n in keys}
    fixed = {n: p.detach() for n, p in theta.items() if n not in keys}
    if inner_steps > 0:
        check_depends_on_params(loss_fn, fixed, anchor, data, "data")
    with torch.no_grad():
        phi = proximal_solve_batched(loss_fn, fixed, anchor, data, n_tasks, lam=lam, lr=lr, steps=inner_steps)
    check_finite_tasks(phi.values(), n_tasks, "the adapted parameters")
    out = {n: p.expand(n_tasks, *p.shape) for n, p in fixed.items()}
    out.update(phi)
    return {n: out[n] for n in theta}


def proximal_solve_batched(
    loss_fn: BatchedLossFn,
    fixed: Params,
    anchor: Params,
    data: Any,
    n_tasks: int,
    *,
    lam: float,
    lr: float,
    steps: int,
) -> Params:
    """The vmapped step-controlled proximal descent (validated arguments; the adapted entries only)."""
    if steps == 0:
        return {n: a.expand(n_tasks, *a.shape) for n, a in anchor.items()}

    def one_task(d: Any) -> Params:
        objective = proximal_objective(lambda p: loss_fn({**fixed, **p}, d), anchor, lam)
        vg = grad_and_value(objective)

        def value_and_grad(p: Params) -> tuple[Tensor, Params]:
            g, f = vg(p)
            return f, g

        return controlled_descent(value_and_grad, dict(anchor), lr, steps)

    return vmap(one_task)(data)


__all__ = ["controlled_descent", "imaml_adapt_batched", "proximal_objective", "proximal_solve_batched"]
