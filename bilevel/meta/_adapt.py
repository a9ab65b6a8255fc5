"""Inner-loop adaptation on any ``nn.Module`` through ``torch.func.functional_call`` (no monkeypatching)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from bilevel._autograd import grads
from bilevel.checks import check_int, check_loss, check_real

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


def common_scalar(lrs: Mapping[str, Tensor | float], keys: list[str]) -> float | None:
    """The learning rate if every key has the same scalar one, else ``None`` (per-parameter tensors)."""
    values = [lrs[n] for n in keys]
    if any(isinstance(v, Tensor) for v in values) or len(set(values)) != 1:
        return None
    return float(values[0])  # type: ignore[arg-type]


def sgd_steps(
    loss_fn: LossFn,
    start: Params,
    keys: list[str],
    lrs: Mapping[str, Tensor | float],
    steps: int,
    *,
    first_order: bool,
    losses: list[float] | None = None,
    name: str = "loss_fn",
) -> Params:
    r"""``steps`` gradient steps on the entries ``keys`` of ``start``; differentiable unless first order.

    With one scalar step for every key, the step is folded into the loss before differentiating
    ($\nabla(-\beta\mathcal L) = -\beta\nabla\mathcal L$), so each update is a single addition whose
    backward passes the gradient through unchanged: one pass over the parameters per step instead of a
    multiplication and a subtraction, forward and in the meta-backward.
    """
    fast = dict(start)
    if steps == 0:
        return fast
    lr = common_scalar(lrs, keys)
    neg_lr = None if lr is None else -lr
    for _ in range(steps):
        loss = loss_fn(fast)
        # the fast path of check_loss (one scalar read, no extra kernel); check_loss raises the message
        if not (
            isinstance(loss, Tensor) and loss.numel() == 1 and math.isfinite(value := float(loss.detach()))
        ):
            check_loss(loss, name)
        loss = loss.reshape(())
        if not loss.requires_grad:
            raise ValueError(
                f"{name}'s value does not depend on the adapted parameters; evaluate the model with "
                "torch.func.functional_call(model, params, inputs)"
            )
        if losses is not None:
            losses.append(value)
        inputs = [fast[n] for n in keys]
        if neg_lr is not None:
            steps_ = grads(loss * neg_lr, inputs, create_graph=not first_order, name=name)
            for n, x, d in zip(keys, inputs, steps_):
                if d is not None:  # None: the loss does not reach this parameter, its step is zero
                    fast[n] = x + (d.detach() if first_order else d)
        else:
            gs = grads(loss, inputs, create_graph=not first_order, name=name)
            for n, x, g in zip(keys, inputs, gs):
                if g is None:
                    continue
                if first_order:
                    g = g.detach()
                fast[n] = x - lrs[n] * g
    return fast


def adapt(
    model: nn.Module,
    loss_fn: LossFn,
    inner_lr: LearningRate,
    inner_steps: int,
    *,
    first_order: bool = False,
    names: Iterable[str] | None = None,
    params: Mapping[str, Tensor] | None = None,
) -> Params:
    r"""Adapt ``model``'s parameters by ``inner_steps`` steps of gradient descent on ``loss_fn``.

    $$
    \phi^{(0)} = \theta,\qquad \phi^{(k+1)} = \phi^{(k)} - \beta\,\nabla\mathcal L^{tr}(\phi^{(k)}),
    $$

    returned as a dict of parameters by name. The model is never modified. With
    ``first_order=False`` (MAML, Finn, Abbeel & Levine, ICML 2017) the result is a differentiable
    function of $\theta$, so ``query_loss(adapted).backward()`` puts the exact meta-gradient
    $\prod_k (I-\beta\nabla^2\mathcal L^{tr}(\phi^{(k)}))\,\nabla\mathcal L^{val}(\phi^{(K)})$
    into the model's ``.grad``. With ``first_order=True`` (FOMAML) the inner gradients are
    detached, $d\phi^{(K)}/d\theta = I$, and the same backward yields
    $\nabla\mathcal L^{val}(\phi^{(K)})$.

    Args:
        model: any ``nn.Module``; its parameters are $\theta$ (they must require grad).
        loss_fn: ``loss_fn(params)`` returns the support (inner) loss, computed with
            ``torch.func.functional_call(model, params, inputs)``. A loss that ignores ``params`` (e.g.
            ``model(x)``, which stops adapting after the first step) raises a ``ValueError``.
        inner_lr: $\beta \ge 0$, or per-parameter learning rates by name (Meta-SGD, Li et al.
            2017: tensors broadcastable to each parameter, typically learnable; see
            [`learnable_lrs()`][bilevel.meta.learnable_lrs]).
        inner_steps: $K \ge 0$.
        first_order: drop the second-order terms (FOMAML).
        names: adapt only these parameters (ANIL, Raghu et al., ICLR 2020: e.g. the head); the
            others stay at $\theta$ and still receive the outer gradient through the query loss.
        params: start from these values instead of the model's parameters (by name; missing names
            are taken from the model).

    Returns:
        Every parameter of the model by name, the adapted ones replaced by $\phi^{(K)}$.

    Raises:
        ValueError: a non-finite or non-scalar loss, a loss that does not depend on the parameters it
            is given, an out-of-range ``inner_lr``/``inner_steps``, or unknown ``names``/``params``.

    Examples:
        ``adapt(model, loss_fn, 0.01, 5)`` is ``adapt(model, loss_fn, inner_lr=0.01, inner_steps=5)``.
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
    shape (``per_element=True``, Meta-SGD's $\alpha \circ \nabla$) or a scalar per tensor.
    Pass it as ``inner_lr`` to `adapt()` and give it to the outer optimizer. Keys are the
    parameter names with ``"."`` replaced by ``"__"`` (``ParameterDict`` forbids dots); `adapt()`
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
