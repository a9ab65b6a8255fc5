"""iMAML (Rajeswaran, Finn, Kakade & Levine, NeurIPS 2019): implicit meta-gradients by conjugate gradient."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bilevel._autograd import grads_or_zeros
from bilevel._distributed import all_reduce_mean_
from bilevel.checks import check_int, check_loss, check_real
from bilevel.hypergrad._solvers import cg_info
from bilevel.meta._adapt import LossFn, Params, select_names
from bilevel.meta._proximal import controlled_descent, proximal_objective


@dataclass
class IMAMLResult:
    """What `imaml_grad()` computed for one task.

    Attributes:
        adapted: $\\phi$ by name (detached), the approximate proximal solution.
        meta_grad: the implicit meta-gradient by name (detached).
        train_loss: support loss at $\\phi$.
        val_loss: query loss at $\\phi$.
        cg_iterations: conjugate-gradient iterations run.
        hit_indefinite: CG met non-positive curvature ($I + H/\\lambda$ not positive definite at
            $\\phi$) and was truncated there (only with ``indefinite="stop"``).
        inner_residual: $\\|\\nabla\\mathcal L^{tr}(\\phi) + \\lambda(\\phi-\\theta)\\|_2$, the
            stationarity of the proximal problem at $\\phi$. The implicit gradient assumes it is
            zero; a large value (compared with $\\|\\nabla\\mathcal L^{tr}(\\theta)\\|$) means
            ``inner_steps`` or ``inner_lr`` are too small (or the inner descent is diverging).
    """

    adapted: Params
    meta_grad: Params
    train_loss: float
    val_loss: float
    cg_iterations: int
    hit_indefinite: bool
    inner_residual: float


def imaml_grad(
    model: nn.Module,
    train_loss: LossFn,
    val_loss: LossFn,
    *,
    reg: float,
    inner_lr: float,
    inner_steps: int,
    cg_steps: int = 5,
    cg_tol: float = 0.0,
    names: Iterable[str] | None = None,
    accumulate: bool = True,
    indefinite: str = "stop",
) -> IMAMLResult:
    r"""One task's implicit MAML meta-gradient, added to the model's ``.grad``.

    Inner problem (solved by ``inner_steps`` of gradient descent from $\theta$, with steps of at
    most ``inner_lr`` that never increase the objective: a step that would is halved, see
    [`imaml_adapt_batched()`][bilevel.meta.imaml_adapt_batched]):

    $$
    \phi = \arg\min_\phi \mathcal L^{tr}(\phi) + \tfrac{\lambda}{2}\|\phi-\theta\|^2 .
    $$

    At the exact minimiser $d\phi/d\theta = (I + \lambda^{-1}\nabla^2\mathcal L^{tr}(\phi))^{-1}$, so
    the meta-gradient is $g = (I + \lambda^{-1}\nabla^2\mathcal L^{tr}(\phi))^{-1}
    \nabla\mathcal L^{val}(\phi)$, computed by ``cg_steps`` of conjugate gradient on Hessian-vector
    products. Its memory does not grow with ``inner_steps``. The system is positive definite when
    $\lambda > -\lambda_{\min}(\nabla^2\mathcal L^{tr})$; the error of $g$ comes from the
    inner solve ($\phi$ not exactly optimal) and CG truncation (see
    [`cg()`][bilevel.hypergrad.cg]).

    Args:
        model: the module; $\theta$ are its parameters.
        train_loss: ``loss_fn(params)`` on the support set.
        val_loss: ``loss_fn(params)`` on the query set.
        reg: $\lambda > 0$ (the paper reports $\lambda = 2$ on Omniglot).
        inner_lr: gradient-descent step on the regularised inner objective.
        inner_steps: number of inner steps (``>= 0``).
        cg_steps: conjugate-gradient iterations (the paper uses 5).
        cg_tol: relative residual tolerance for stopping CG early.
        names: the parameters to adapt (the others are held at $\theta$ and get no gradient).
        accumulate: add the meta-gradient into ``.grad`` (averaged over ranks under
            ``torch.distributed``, so every rank must call this the same number of times).
        indefinite: ``"stop"`` (default) truncates CG where $I + H/\lambda$ shows non-positive
            curvature (the Hessian of a non-convex support loss can make it indefinite; the result
            records it) or ``"raise"`` (see [`cg()`][bilevel.hypergrad.cg]).
    """
    lam = check_real(reg, "reg", low=0.0, low_open=True)
    lr = check_real(inner_lr, "inner_lr", low=0.0)
    check_int(inner_steps, "inner_steps", low=0)
    keys = select_names(model, names)
    theta = dict(model.named_parameters())
    anchor = {n: theta[n].detach() for n in keys}
    fixed = {n: p.detach() for n, p in theta.items() if n not in keys}
    objective = proximal_objective(lambda p: train_loss({**fixed, **p}), anchor, lam)
    first = [True]

    def value_and_grad(at: Params) -> tuple[Tensor, Params]:
        cur = {n: t.detach().requires_grad_(True) for n, t in at.items()}
        f = objective(cur)
        if first[0]:  # at θ a non-finite loss is bad input; later, a rejected step
            check_loss(f, "train_loss")
            first[0] = False
        elif not bool(torch.isfinite(f.detach())):
            return f.detach(), {n: torch.zeros_like(t) for n, t in cur.items()}
        gs = grads_or_zeros(f, list(cur.values()))
        return f.detach(), {n: g.detach() for n, g in zip(keys, gs)}

    with torch.enable_grad():
        phi = (
            controlled_descent(value_and_grad, {n: anchor[n].clone() for n in keys}, lr, inner_steps)
            if inner_steps > 0
            else {n: anchor[n].clone() for n in keys}
        )
        leaves = [phi[n].requires_grad_(True) for n in keys]
        p_all = {**fixed, **dict(zip(keys, leaves))}
        lv = check_loss(val_loss(p_all), "val_loss")
        v = grads_or_zeros(lv, leaves)
        lt = check_loss(train_loss(p_all), "train_loss")
        gt = grads_or_zeros(lt, leaves, create_graph=True)

        def matvec(x: Sequence[Tensor]) -> list[Tensor]:
            hx = grads_or_zeros(gt, leaves, grad_outputs=x, retain_graph=True)
            return [xi + hi / lam for xi, hi in zip(x, hx)]

        info = cg_info(matvec, v, steps=cg_steps, tol=cg_tol, indefinite=indefinite)
        with torch.no_grad():
            sq = [((g + lam * (phi[n] - anchor[n])) ** 2).sum() for n, g in zip(keys, gt)]
            residual = torch.stack(sq).sum().sqrt() if sq else torch.zeros(())
    meta = dict(zip(keys, info.x))
    all_reduce_mean_(list(meta.values()))  # under torch.distributed: average over ranks
    if accumulate:
        for n in keys:
            p = theta[n]
            p.grad = meta[n].clone() if p.grad is None else p.grad + meta[n]
    return IMAMLResult(
        {n: t.detach() for n, t in zip(keys, leaves)},
        meta,
        float(lt.detach()),
        float(lv.detach()),
        info.iterations,
        info.hit_indefinite,
        float(residual),
    )
