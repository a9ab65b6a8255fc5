"""iMAML for a batch of tasks at once: vmapped proximal inner loop and a batched conjugate gradient."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from bilevel._distributed import all_reduce_mean_
from bilevel.checks import check_int, check_real
from bilevel.meta._adapt import Params, select_names
from bilevel.meta._batched import BatchedLossFn, check_depends_on_params, check_finite_tasks, check_task_data
from bilevel.meta._proximal import proximal_solve_batched


def _tdot(a: dict[str, Tensor], b: dict[str, Tensor]) -> Tensor:
    """Per-task inner product of two batched parameter dicts (task dimension first)."""
    return sum(torch.sum((a[k] * b[k]).reshape(a[k].shape[0], -1), dim=1) for k in a)  # type: ignore[return-value]


def _check_finite(batched: dict[str, Tensor], what: str) -> None:
    check_finite_tasks(batched.values(), next(iter(batched.values())).shape[0], what)


def _bc(s: Tensor, like: Tensor) -> Tensor:
    return s.reshape(-1, *([1] * (like.dim() - 1)))


def imaml_grad_batched(
    model: nn.Module,
    loss_fn: BatchedLossFn,
    support: Any,
    query: Any,
    *,
    reg: float,
    inner_lr: float,
    inner_steps: int,
    cg_steps: int = 5,
    names: Iterable[str] | None = None,
    accumulate: bool = True,
    max_norm: float | None = None,
) -> Params:
    r"""[`imaml_grad()`][bilevel.meta.imaml_grad] for a batch of tasks, vectorised with ``torch.func.vmap``.

    ``support`` and ``query`` are pytrees of tensors with the tasks along dimension 0 and
    ``loss_fn(params, task_data)`` is one task's loss. Every task runs ``inner_steps`` of step-controlled
    gradient descent (steps of at most ``inner_lr`` that never increase the objective; see
    [`imaml_adapt_batched()`][bilevel.meta.imaml_adapt_batched], which adapts new tasks the same way) on
    $\mathcal L^{tr}(\phi) + \frac\lambda2\|\phi-\theta\|^2$ and ``cg_steps`` of conjugate
    gradient on $(I + \nabla^2\mathcal L^{tr}(\phi)/\lambda)\,x = \nabla\mathcal L^{val}(\phi)$
    (Hessian-vector products by double reverse-mode differentiation). A task whose CG meets
    non-positive curvature stops there (its current iterate, or $\nabla\mathcal L^{val}$ if that
    happens at the first step), as with ``indefinite="stop"``. The **sum** of the tasks'
    meta-gradients is added to ``.grad`` (as calling [`imaml_grad()`][bilevel.meta.imaml_grad] once per task
    would) and returned by name; under ``torch.distributed`` it is averaged over ranks first.

    ``max_norm`` (optional) rescales each task's meta-gradient to Euclidean norm at most ``max_norm``
    before summing (per-task clipping): a task whose proximal problem is far from solved, or whose
    $I + H/\lambda$ is nearly singular, then cannot dominate the batch.
    """
    lam = check_real(reg, "reg", low=0.0, low_open=True)
    lr = check_real(inner_lr, "inner_lr", low=0.0)
    check_int(inner_steps, "inner_steps", low=0)
    check_int(cg_steps, "cg_steps", low=0)
    clip = None if max_norm is None else check_real(max_norm, "max_norm", low=0.0, low_open=True)
    keys = select_names(model, names)
    n_tasks = check_task_data(support, "support")
    if check_task_data(query, "query") != n_tasks:
        raise ValueError("support and query must hold the same number of tasks")
    check_finite_tasks(torch.utils._pytree.tree_leaves(support), n_tasks, "support")
    check_finite_tasks(torch.utils._pytree.tree_leaves(query), n_tasks, "query")
    theta = dict(model.named_parameters())
    anchor = {n: theta[n].detach() for n in keys}
    fixed = {n: p.detach() for n, p in theta.items() if n not in keys}
    check_depends_on_params(loss_fn, fixed, anchor, support, "support")
    check_depends_on_params(loss_fn, fixed, anchor, query, "query")

    def loss(p: Params, d: Any) -> Tensor:
        return loss_fn({**fixed, **p}, d)

    g_loss = grad(loss)

    def hvp(p: Params, d: Any, x: Params) -> Params:
        # reverse over reverse: d/dp <∇L(p), x> = ∇²L(p) x
        return grad(lambda q: sum(torch.sum(gq * x[n]) for n, gq in g_loss(q, d).items()))(p)

    with torch.no_grad():
        phi = proximal_solve_batched(
            loss_fn, fixed, anchor, support, n_tasks, lam=lam, lr=lr, steps=inner_steps
        )
        _check_finite(phi, "the inner solution (inner gradient descent diverged; lower inner_lr)")
        b = vmap(g_loss)(phi, query)
        x = {n: torch.zeros_like(b[n]) for n in keys}
        r = {n: b[n].clone() for n in keys}
        p = {n: b[n].clone() for n in keys}
        rr = _tdot(r, r)
        # as in bilevel.hypergrad.cg: a task stops once its residual is at round-off level, before its
        # curvature p·Ap (round-off too by then) is tested
        stop = (4 * torch.finfo(rr.dtype).eps) ** 2 * rr
        active = torch.ones(n_tasks, dtype=torch.bool, device=rr.device)
        fallback = torch.zeros(n_tasks, dtype=torch.bool, device=rr.device)
        for k in range(cg_steps):
            active = active & (rr > stop) & (rr > 0)
            hp = vmap(hvp)(phi, support, p)
            ap = {n: p[n] + hp[n] / lam for n in keys}
            pap = _tdot(p, ap)
            bad = active & (pap <= 0)
            if k == 0:
                fallback |= bad
            active = active & ~bad
            alpha = torch.where(
                active, rr / torch.where(active, pap, torch.ones_like(pap)), torch.zeros_like(rr)
            )
            x = {n: x[n] + _bc(alpha, x[n]) * p[n] for n in keys}
            r = {n: r[n] - _bc(alpha, r[n]) * ap[n] for n in keys}
            rr_new = _tdot(r, r)
            beta = torch.where(
                active, rr_new / torch.where(active, rr, torch.ones_like(rr)), torch.zeros_like(rr)
            )
            p = {n: r[n] + _bc(beta, p[n]) * p[n] for n in keys}
            rr = torch.where(active, rr_new, rr)
        x = {n: torch.where(_bc(fallback, x[n]), b[n], x[n]) for n in keys}
        _check_finite(x, "the meta-gradient")
        if clip is not None:
            scale = torch.clamp(clip / _tdot(x, x).sqrt().clamp_min(1e-30), max=1.0)
            x = {n: _bc(scale, x[n]) * x[n] for n in keys}
        meta = {n: x[n].sum(0) for n in keys}
    all_reduce_mean_(list(meta.values()))  # under torch.distributed: average over ranks
    if accumulate:
        for n in keys:
            q = theta[n]
            q.grad = meta[n].clone() if q.grad is None else q.grad + meta[n]
    return meta
