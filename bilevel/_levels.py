"""Plumbing shared by the optimizers that drive one ``torch.optim`` optimizer per level
([`PenaltyBGD`][bilevel.PenaltyBGD], [`Equilibrium`][bilevel.Equilibrium]): one argument convention for the
level
optimizers, param-group learning rates, deprecated argument names and per-level gradient clipping."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from bilevel.checks import check_real

OptimizerFactory = Callable[..., torch.optim.Optimizer]
"""Builds a ``torch.optim`` optimizer from param groups and keyword arguments: a class such as
``torch.optim.Adam`` or a ``functools.partial(torch.optim.AdamW, weight_decay=0.01)``."""


def check_factory(factory: Any, name: str) -> OptimizerFactory | None:
    """``None`` or a callable (a ``torch.optim.Optimizer`` class or a ``functools.partial`` of one)."""
    if factory is None:
        return None
    if isinstance(factory, torch.optim.Optimizer):
        raise TypeError(
            f"{name} must be an optimizer class or factory (e.g. torch.optim.Adam), not an optimizer instance"
        )
    if not callable(factory):
        raise TypeError(f"{name} must be an optimizer class or factory, got {type(factory).__name__}")
    base = factory.func if isinstance(factory, functools.partial) else factory
    if isinstance(base, type) and not issubclass(base, torch.optim.Optimizer):
        raise TypeError(f"{name} must be a torch.optim.Optimizer class or factory, got class {base.__name__}")
    return factory


def factory_name(factory: OptimizerFactory) -> str:
    """A readable name for messages (``Adam`` for ``torch.optim.Adam`` and partials of it)."""
    base = factory.func if isinstance(factory, functools.partial) else factory
    return getattr(base, "__name__", type(base).__name__)


def build(
    factory: OptimizerFactory, groups: list[dict[str, Any]], kwargs: dict[str, Any], name: str
) -> torch.optim.Optimizer:
    """``factory(groups, **kwargs)``, checked to be a ``torch.optim.Optimizer``."""
    try:
        opt = factory(groups, **kwargs)
    except TypeError as e:
        what = f"{name}={factory_name(factory)}"
        raise TypeError(f"{what} could not be built with keyword arguments {sorted(kwargs)}: {e}") from e
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"{name} factory returned {type(opt).__name__}, expected a torch.optim.Optimizer")
    return opt


def deprecated_alias(new: Any, old: Any, new_name: str, old_name: str, owner: str) -> Any:
    """Resolve a renamed argument: the old name still works, with a ``DeprecationWarning``."""
    if old is None:
        return new
    if new is not None:
        raise TypeError(f"{owner} got both {new_name}= and its deprecated name {old_name}=; pass {new_name}=")
    warnings.warn(
        f"{owner}({old_name}=...) is deprecated; use {new_name}=...", DeprecationWarning, stacklevel=3
    )
    return old


def _real(value: Any) -> Any:
    if isinstance(value, Tensor) and value.numel() == 1:  # torch.optim accepts tensor learning rates
        return float(value.detach())
    return value


def check_group_values(groups: Sequence[Mapping[str, Any]], keys: Sequence[str], where: str) -> None:
    """Every group's ``keys`` (e.g. ``lr``, ``inner_lr``) are finite and >= 0 (a negative step ascends)."""
    for i, g in enumerate(groups):
        for k in keys:
            if k in g:
                check_real(_real(g[k]), f"{where}[{i}]['{k}']", low=0.0)


def warn_inner_lr_default(opts: Sequence[torch.optim.Optimizer], lr: float, owner: str) -> None:
    """Warn when ``inner_lr`` falls back to ``lr`` although a level optimizer is not plain SGD.

    The inner steps are plain gradient steps; an Adam learning rate (e.g. 1e-3) is a step size per
    normalised coordinate, not per raw gradient, so using it for them leaves the inner copy far from the
    inner minimiser (with a value penalty, ``g(x, y) - g(x, ω)`` then goes negative).
    """
    kinds = sorted({type(o).__name__ for o in opts if type(o) is not torch.optim.SGD})
    if kinds:
        warnings.warn(
            f"{owner}: inner_lr defaults to lr={lr:g}, the learning rate of {', '.join(kinds)}, but the "
            "inner steps are plain gradient steps; pass inner_lr explicitly (a step size for plain gradient "
            "descent on the inner loss)",
            UserWarning,
            stacklevel=3,
        )


def check_max_norm(value: Any, name: str, levels: Sequence[str]) -> dict[str, float | None]:
    """Normalise a clipping option: ``None``, a float (every level) or a mapping level -> float/None."""
    if value is None:
        return dict.fromkeys(levels)
    if isinstance(value, Mapping):
        unknown = set(value) - set(levels)
        if unknown:
            raise ValueError(f"{name} has unknown levels {sorted(unknown)}; expected some of {list(levels)}")
        out: dict[str, float | None] = {}
        for lv in levels:
            v = value.get(lv)
            out[lv] = None if v is None else check_real(v, f"{name}['{lv}']", low=0.0, low_open=True)
        return out
    return dict.fromkeys(levels, check_real(value, name, low=0.0, low_open=True))


@torch.no_grad()
def clip_(grads: Sequence[Tensor | None], total_norm: Tensor | float, max_norm: float | None) -> None:
    """Scale ``grads`` in place so that their norm is at most ``max_norm`` (as
    ``torch.nn.utils.clip_grad_norm_``, with the norm given: factor ``min(1, max_norm / (norm + 1e-6))``)."""
    if max_norm is None:
        return
    present = [g for g in grads if g is not None]
    if not present:
        return
    if isinstance(total_norm, Tensor):
        coef = (max_norm / (total_norm + 1e-6)).clamp(max=1.0)
        for g in present:
            g.mul_(coef.to(device=g.device, dtype=g.dtype))
    else:
        coef_f = min(1.0, max_norm / (total_norm + 1e-6)) if math.isfinite(total_norm) else 0.0
        if coef_f < 1.0:
            for g in present:
                g.mul_(coef_f)
