"""Inner-loop adaptation on any ``nn.Module`` through ``torch.func.functional_call`` (no monkeypatching)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from bilevel._checks import check_int, check_loss, check_real

Params = dict[str, Tensor]
"""Parameters by name, as ``torch.func.functional_call`` takes them."""

LossFn = Callable[[Params], Tensor]
"""``loss_fn(params) -> scalar``, usually ``F.mse_loss(functional_call(model, params, (x,)), y)``."""

LearningRate = float | Mapping[str, Tensor] | nn.ParameterDict
"""A scalar step, or per-parameter steps by name (Meta-SGD: tensors broadcastable to the parameter)."""


def select_names(model: nn.Module, names: Iterable[str] | None) -> list[str]:
    """The names of ``model``'s parameters to adapt: all of them, or the validated subset ``names``."""
    all_names = [n for n, _ in model.named_parameters()]
    if not all_names:
        raise ValueError("model has no parameters to adapt")
    if names is None:
        return all_names
    if isinstance(names, str):
        raise TypeError("names must be an iterable of parameter names, not a single string")
    chosen = list(names)
    unknown = [n for n in chosen if n not in all_names]
    if unknown:
        raise ValueError(f"names contains unknown parameter names {unknown}; model has {all_names}")
    if not chosen:
        raise ValueError("names is empty: expected at least one parameter name to adapt")
    if len(set(chosen)) != len(chosen):
        raise ValueError("names lists a parameter more than once")
    return [n for n in all_names if n in set(chosen)]  # model order


def check_lr(
    inner_lr: LearningRate, keys: list[str], params: Mapping[str, Tensor]
) -> Mapping[str, Tensor | float]:
    """Validate a scalar or per-parameter inner learning rate; return it as a per-name mapping."""
    if isinstance(inner_lr, (Mapping, nn.ParameterDict)):
        missing = [k for k in keys if k not in inner_lr]
        if missing:
            raise ValueError(f"inner_lr has no learning rate for parameters {missing}")
        for k in keys:
            lr = inner_lr[k]
            if not isinstance(lr, Tensor):
                raise TypeError(f"inner_lr[{k!r}] must be a Tensor, got {type(lr).__name__}")
            try:
                torch.broadcast_shapes(lr.shape, params[k].shape)
            except RuntimeError as e:
                raise ValueError(
                    f"inner_lr[{k!r}] of shape {tuple(lr.shape)} does not broadcast to the parameter's "
                    f"shape {tuple(params[k].shape)}"
                ) from e
        return {k: inner_lr[k] for k in keys}
    v = check_real(inner_lr, "inner_lr", low=0.0)
    return dict.fromkeys(keys, v)


def sgd_steps(
    loss_fn: LossFn,
    start: Params,
    keys: list[str],
    lrs: Mapping[str, Tensor | float],
    steps: int,
    *,
    first_order: bool,
    losses: list[float] | None = None,
) -> Params:
    """``steps`` gradient steps on the entries ``keys`` of ``start``; differentiable unless first order."""
    fast = dict(start)
    for k in range(steps):
        loss = check_loss(loss_fn(fast), "loss_fn")
        if not loss.requires_grad:
            raise ValueError(
                "loss_fn's value does not depend on the adapted parameters; evaluate the model with "
                "torch.func.functional_call(model, params, inputs)"
            )
        if losses is not None:
            losses.append(float(loss.detach()))
        grads = torch.autograd.grad(
            loss, [fast[n] for n in keys], create_graph=not first_order, allow_unused=True
        )
        for n, g in zip(keys, grads):
            if g is None:
                continue  # the loss does not depend on this parameter: its gradient is zero
            if first_order:
                g = g.detach()
            fast[n] = fast[n] - lrs[n] * g
        del k
    return fast


def adapt(
    model: nn.Module,
    loss_fn: LossFn,
    *,
    inner_lr: LearningRate,
    inner_steps: int,
    first_order: bool = False,
    names: Iterable[str] | None = None,
    params: Mapping[str, Tensor] | None = None,
) -> Params:
    r"""Adapt ``model``'s parameters by ``inner_steps`` steps of gradient descent on ``loss_fn``.

    .. math::

        \phi^{(0)} = \theta,\qquad \phi^{(k+1)} = \phi^{(k)} - \beta\,\nabla\mathcal L^{tr}(\phi^{(k)}),

    returned as a dict of parameters by name. The model is never modified. With
    ``first_order=False`` (MAML, Finn, Abbeel & Levine, ICML 2017) the result is a differentiable
    function of :math:`\theta`, so ``query_loss(adapted).backward()`` puts the exact meta-gradient
    :math:`\prod_k (I-\beta\nabla^2\mathcal L^{tr}(\phi^{(k)}))\,\nabla\mathcal L^{val}(\phi^{(K)})`
    into the model's ``.grad``. With ``first_order=True`` (FOMAML) the inner gradients are
    detached, :math:`d\phi^{(K)}/d\theta = I`, and the same backward yields
    :math:`\nabla\mathcal L^{val}(\phi^{(K)})`.

    Args:
        model: any ``nn.Module``; its parameters are :math:`\theta` (they must require grad).
        loss_fn: ``loss_fn(params)`` returns the support (inner) loss, computed with
            ``torch.func.functional_call(model, params, inputs)``.
        inner_lr: :math:`\beta \ge 0`, or per-parameter learning rates by name (Meta-SGD, Li et al.
            2017: tensors broadcastable to each parameter, typically learnable; see
            :func:`~bilevel.meta.learnable_lrs`).
        inner_steps: :math:`K \ge 0`.
        first_order: drop the second-order terms (FOMAML).
        names: adapt only these parameters (ANIL, Raghu et al., ICLR 2020: e.g. the head); the
            others stay at :math:`\theta` and still receive the outer gradient through the query loss.
        params: start from these values instead of the model's parameters (by name; missing names
            are taken from the model).

    Returns:
        Every parameter of the model by name, the adapted ones replaced by :math:`\phi^{(K)}`.
    """
    check_int(inner_steps, "inner_steps", low=0)
    keys = select_names(model, names)
    start: Params = dict(model.named_parameters())
    if params is not None:
        extra = [n for n in params if n not in start]
        if extra:
            raise ValueError(f"params contains names the model does not have: {extra}")
        start.update(params)
    lrs = check_lr(inner_lr, keys, start)
    frozen = [n for n in keys if not start[n].requires_grad]
    if frozen and inner_steps > 0:
        raise ValueError(f"parameters {frozen} do not require grad; pass names= to adapt only the others")
    return sgd_steps(loss_fn, start, keys, lrs, inner_steps, first_order=first_order)


def learnable_lrs(
    model: nn.Module, init: float, *, names: Iterable[str] | None = None, per_element: bool = True
) -> nn.ParameterDict:
    r"""Learnable inner learning rates for Meta-SGD (Li, Zhou, Chen & Li, arXiv 1707.09835).

    Returns one ``nn.Parameter`` per adapted parameter, filled with ``init``: of the parameter's
    shape (``per_element=True``, Meta-SGD's :math:`\alpha \circ \nabla`) or a scalar per tensor.
    Pass it as ``inner_lr`` to :func:`adapt` and give it to the outer optimizer. Keys are the
    parameter names with ``"."`` replaced by ``"__"`` (``ParameterDict`` forbids dots); :func:`adapt`
    accepts it directly.
    """
    check_real(init, "init", low=0.0)
    keys = select_names(model, names)
    named = dict(model.named_parameters())
    return _LRDict(
        {
            k: nn.Parameter(
                torch.full_like(named[k].detach(), init) if per_element else named[k].new_tensor(init)
            )
            for k in keys
        }
    )


class _LRDict(nn.ParameterDict):
    """A ``ParameterDict`` keyed by parameter names (dots are escaped internally)."""

    def __init__(self, lrs: dict[str, nn.Parameter]) -> None:
        super().__init__({k.replace(".", "__"): v for k, v in lrs.items()})

    def __getitem__(self, key: str) -> nn.Parameter:
        return super().__getitem__(key.replace(".", "__"))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.replace(".", "__"))
