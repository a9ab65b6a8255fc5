"""Task batching: adapt to many tasks at once with ``torch.func.vmap``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from bilevel.checks import check_int
from bilevel.meta._adapt import LearningRate, Params, check_lr, common_scalar, select_names

BatchedLossFn = Callable[[Params, Any], Tensor]
"""``loss_fn(params, data) -> scalar`` for one task; ``data`` is a pytree of tensors."""


def check_task_data(data: Any, name: str) -> int:
    """Number of tasks in a pytree of tensors batched along dimension 0 (validated)."""
    leaves = torch.utils._pytree.tree_leaves(data)
    if not leaves or not all(isinstance(t, Tensor) and t.dim() >= 1 for t in leaves):
        raise ValueError(f"{name} must be a pytree of tensors with the tasks along dimension 0")
    n_tasks = int(leaves[0].shape[0])
    if any(t.shape[0] != n_tasks for t in leaves):
        raise ValueError(f"every tensor in {name} must have the same number of tasks along dimension 0")
    return n_tasks


def bad_tasks(batched: Iterable[Tensor], n_tasks: int) -> list[int]:
    """The tasks (indices along dimension 0) whose entries in any of ``batched`` are not all finite."""
    bad: Tensor | None = None
    for t in batched:
        if not t.is_floating_point() and not t.is_complex():
            continue
        b = ~torch.isfinite(t.detach().reshape(n_tasks, -1)).all(dim=1)
        bad = b if bad is None else bad | b
    return [] if bad is None else bad.nonzero().flatten().tolist()


def check_finite_tasks(batched: Iterable[Tensor], n_tasks: int, what: str) -> None:
    """Raise a ``ValueError`` naming ``what`` and the tasks with NaN or inf entries."""
    bad = bad_tasks(batched, n_tasks)
    if bad:
        raise ValueError(f"non-finite values in {what} for tasks {bad}")


def check_depends_on_params(
    loss_fn: BatchedLossFn, fixed: Params, params: Params, data: Any, name: str
) -> None:
    """Raise a ``ValueError`` when ``loss_fn`` on the first task of ``data`` does not reach ``params``.

    ``torch.func.grad`` returns zeros for a loss that ignores its inputs, so a loss written without
    ``functional_call`` (evaluating the module's own parameters) would otherwise train nothing, silently.
    The probe costs one forward and one backward pass of one task.
    """
    first = torch.utils._pytree.tree_map(lambda t: t[0], data)
    probe = {n: p.detach().requires_grad_() for n, p in params.items()}
    with torch.enable_grad():
        value = loss_fn({**{n: p.detach() for n, p in fixed.items()}, **probe}, first)
        reached = (
            isinstance(value, Tensor)
            and value.requires_grad
            and any(
                g is not None for g in torch.autograd.grad(value, list(probe.values()), allow_unused=True)
            )
        )
    if not reached:
        raise ValueError(
            f"loss_fn on {name} returned a loss that does not depend on the parameters it is given: "
            "evaluate the model with torch.func.functional_call(model, params, ...)"
        )


def adapt_batched(
    model: nn.Module,
    loss_fn: BatchedLossFn,
    data: Any,
    inner_lr: LearningRate,
    inner_steps: int,
    *,
    first_order: bool = False,
    names: Iterable[str] | None = None,
) -> Params:
    r"""[`adapt()`][bilevel.meta.adapt] for a batch of tasks in one vectorised call (``torch.func.vmap``).

    ``data`` is a pytree (tensor, tuple, dict) whose tensors all carry the tasks along dimension 0;
    task $t$ adapts on ``loss_fn(params, data[t])``. The returned parameters carry the task
    dimension first (parameters that are not adapted are expanded without copying), ready for
    ``torch.func.vmap(loss_fn)(adapted, query_data)``. The result equals a Python loop over
    [`adapt()`][bilevel.meta.adapt] up to floating-point reassociation; it needs a model that vmap
    supports (no in-place updates of buffers, e.g. batch-norm in training mode, and no
    data-dependent control flow).

    Args:
        model: the module; its parameters are $\theta$.
        loss_fn: one task's support loss, ``loss_fn(params, task_data)``, using ``functional_call``.
        data: the support data of all tasks, batched along dimension 0.
        inner_lr: as in [`adapt()`][bilevel.meta.adapt].
        inner_steps: as in [`adapt()`][bilevel.meta.adapt].
        first_order: as in [`adapt()`][bilevel.meta.adapt].
        names: as in [`adapt()`][bilevel.meta.adapt].

    Returns:
        Every parameter by name, with a leading task dimension.
    """
    check_int(inner_steps, "inner_steps", low=0)
    keys = select_names(model, names)
    theta: Params = dict(model.named_parameters())
    lrs = check_lr(inner_lr, keys, theta)
    n_tasks = check_task_data(data, "data")
    check_finite_tasks(torch.utils._pytree.tree_leaves(data), n_tasks, "data")
    fixed = {n: p for n, p in theta.items() if n not in keys}
    lr = common_scalar(lrs, keys)
    neg_lr = 0.0 if lr is None else -lr
    if inner_steps > 0:
        check_depends_on_params(loss_fn, fixed, {n: theta[n] for n in keys}, data, "data")

    def task_loss(adapted: Params, d: Any) -> Tensor:
        return loss_fn({**fixed, **adapted}, d)

    def scaled_loss(adapted: Params, d: Any) -> Tensor:  # ∇(-βL) = -β∇L: one addition per update
        return task_loss(adapted, d) * neg_lr

    def one_task(start: Params, d: Any) -> Params:
        fast = dict(start)
        for _ in range(inner_steps):
            if lr is not None:
                s = grad(scaled_loss)(fast, d)
                fast = {n: fast[n] + (s[n].detach() if first_order else s[n]) for n in keys}
            else:
                g = grad(task_loss)(fast, d)
                fast = {n: fast[n] - lrs[n] * (g[n].detach() if first_order else g[n]) for n in keys}
        return fast

    adapted = vmap(one_task, in_dims=(None, 0))({n: theta[n] for n in keys}, data)
    if inner_steps > 0:
        check_finite_tasks(
            adapted.values(),
            n_tasks,
            "the adapted parameters (the inner gradient descent diverged; lower inner_lr)",
        )
    out = {n: p.expand(n_tasks, *p.shape) for n, p in fixed.items()}
    out.update(adapted)
    return {n: out[n] for n in theta}
