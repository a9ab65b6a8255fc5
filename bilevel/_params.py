"""Parameter plumbing: normalise ``torch.optim``-style parameter arguments into param groups."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]
"""What every optimizer accepts: tensors, or param-group dicts with ``"params"`` (as ``torch.optim``)."""


def param_groups(params: ParamsT | None, *, name: str, allow_empty: bool = False) -> list[dict[str, Any]]:
    """Normalise ``params`` into a list of param-group dicts, validating every tensor.

    Args:
        params: an iterable of tensors, or of dicts with a ``"params"`` entry, or ``None`` (empty).
        name: the argument's name, used in error messages.
        allow_empty: accept an empty collection (e.g. no upper-level parameters).

    Raises:
        TypeError: an element is neither a tensor nor a dict with ``"params"``.
        ValueError: empty (when not allowed), a tensor that does not require grad, a non-leaf
            tensor, or the same tensor listed twice.
    """
    if params is None:
        items: list[Any] = []
    elif isinstance(params, Tensor):
        raise TypeError(f"{name} must be an iterable of tensors or param-group dicts, got a single Tensor")
    else:
        items = list(params)
    if items and all(isinstance(p, dict) for p in items):
        groups = []
        for i, g in enumerate(items):
            if "params" not in g:
                raise ValueError(f"{name}[{i}] is a param group without a 'params' entry")
            ps = g["params"]
            ps = [ps] if isinstance(ps, Tensor) else list(ps)
            groups.append({**g, "params": ps})
    elif all(isinstance(p, Tensor) for p in items):
        groups = [{"params": items}] if items else []
    else:
        raise TypeError(f"{name} must contain only tensors or only param-group dicts")
    seen: set[int] = set()
    for g in groups:
        for p in g["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name} contains a {type(p).__name__}, expected torch.Tensor")
            if not p.requires_grad:
                raise ValueError(
                    f"{name} contains a tensor of shape {tuple(p.shape)} that does not require grad"
                )
            if not p.is_leaf:
                raise ValueError(
                    f"{name} contains a non-leaf tensor of shape {tuple(p.shape)}; pass leaf parameters"
                )
            if id(p) in seen:
                raise ValueError(f"{name} lists the same tensor (shape {tuple(p.shape)}) more than once")
            seen.add(id(p))
    n = sum(len(g["params"]) for g in groups)
    if n == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: expected at least one parameter")
    return [g for g in groups if g["params"]]


def flat_params(groups: Sequence[dict[str, Any]]) -> list[Tensor]:
    """All tensors of ``groups`` in order."""
    return [p for g in groups for p in g["params"]]


def check_disjoint(a: Sequence[Tensor], b: Sequence[Tensor], name_a: str, name_b: str) -> None:
    """Raise if a tensor appears in both ``a`` and ``b``."""
    ids = {id(p) for p in a}
    for p in b:
        if id(p) in ids:
            raise ValueError(
                f"a parameter of shape {tuple(p.shape)} is in both {name_a} and {name_b}; "
                "each parameter belongs to exactly one group"
            )


@torch.no_grad()
def copy_values(params: Sequence[Tensor]) -> list[Tensor]:
    """Detached clones of ``params``' current values."""
    return [p.detach().clone() for p in params]
