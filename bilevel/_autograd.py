"""The one gradient plumbing every algorithm in `bilevel` uses.

- `grads()` / `grads_or_zeros()`: ``torch.autograd.grad`` with one convention for parameters a loss
  does not reach (``None`` or zeros, chosen by the caller), outputs that carry no graph, and an optional
  check that the loss depends on the inputs at all (a loss written without them is an error, not a zero
  step);
- `exchanged()`: evaluate closures written for a model at other parameter values, by exchanging the
  parameters' storage (no copies; the original storage is untouched, so restoring is exact);
- `flatten()` / `unflatten_like()`: per-parameter tensors to one vector and back;
- `norm()` / `safe_norm()` / `total_norm()`: Euclidean norms of tensor lists that do not
  overflow for finite inputs (a float32 sum of squares overflows above about 1.8e19).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

# -- gradients ----------------------------------------------------------------------------------------


def _pairs(
    outputs: Tensor | Sequence[Tensor], grad_outputs: Tensor | Sequence[Tensor] | None
) -> tuple[list[Tensor], list[Tensor] | None]:
    """Outputs that carry a graph, with their ``grad_outputs`` (the others contribute nothing)."""
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    if grad_outputs is None:
        return [o for o in outs if o.requires_grad], None
    gos = [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
    if len(gos) != len(outs):
        raise ValueError(f"grads: {len(outs)} outputs but {len(gos)} grad_outputs")
    kept = [(o, g) for o, g in zip(outs, gos) if o.requires_grad]
    return [o for o, _ in kept], [g for _, g in kept]


def grads(
    outputs: Tensor | Sequence[Tensor],
    inputs: Sequence[Tensor],
    *,
    grad_outputs: Tensor | Sequence[Tensor] | None = None,
    create_graph: bool = False,
    retain_graph: bool | None = None,
    name: str | None = None,
) -> list[Tensor | None]:
    """Gradients of ``outputs`` with respect to ``inputs``; ``None`` for an input nothing depends on.

    Outputs without a graph contribute nothing (instead of autograd's "does not require grad" error).
    With ``name`` (the closure's argument name, e.g. ``"lower_loss"``), a loss that reaches none of the
    ``inputs`` raises a ``ValueError`` naming it: a loss written without the parameters it is given (for
    example through ``model(x)`` instead of the supplied values) would otherwise give a silent zero step.
    """
    ins = list(inputs)
    if not ins:
        return []
    outs, gos = _pairs(outputs, grad_outputs)
    if outs:
        out: list[Tensor | None] = list(
            torch.autograd.grad(
                outs,
                ins,
                grad_outputs=gos,
                create_graph=create_graph,
                retain_graph=retain_graph,
                allow_unused=True,
            )
        )
    else:
        out = [None] * len(ins)
    if name is not None and all(g is None for g in out):
        hint = (
            "gradients are disabled here (torch.no_grad()?)"
            if not torch.is_grad_enabled()
            else "compute it from those parameters, e.g. through torch.func.functional_call"
        )
        raise ValueError(f"{name} returned a loss that does not depend on the parameters it is given: {hint}")
    return out


def grads_or_zeros(
    outputs: Tensor | Sequence[Tensor],
    inputs: Sequence[Tensor],
    *,
    grad_outputs: Tensor | Sequence[Tensor] | None = None,
    create_graph: bool = False,
    retain_graph: bool | None = None,
    name: str | None = None,
) -> list[Tensor]:
    """`grads()` with zeros (shaped like the input) where an input gets no gradient."""
    gs = grads(
        outputs,
        inputs,
        grad_outputs=grad_outputs,
        create_graph=create_graph,
        retain_graph=retain_graph,
        name=name,
    )
    return zeros_for_none(gs, inputs)


def zeros_for_none(gs: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor]:
    """Replace ``None`` entries by zeros shaped like the matching tensor of ``like``."""
    return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, like, strict=True)]


def add_optional(a: Tensor | None, b: Tensor | None, alpha: float = 1.0) -> Tensor | None:
    """``a + alpha * b`` where ``None`` stands for zero (so ``None + None`` stays ``None``)."""
    if b is None:
        return a
    if a is None:
        return b if alpha == 1.0 else b * alpha
    return a.add(b, alpha=alpha)


# -- parameter swapping -------------------------------------------------------------------------------


@contextmanager
def exchanged(params: Sequence[Tensor], values: Sequence[Tensor]) -> Iterator[None]:
    """Within the block ``params[i]`` *is backed by the storage of* ``values[i]`` (no copies).

    This is the one way `bilevel` evaluates closures written for a model at other parameter values:
    the ``.data`` pointers are exchanged and restored on exit (also when the block raises), so the
    parameters' own storage is never written and comes back bit for bit, and in-place updates of a
    parameter inside the block update ``values[i]``. Any autograd graph built inside the block must be
    differentiated inside the block.
    """
    if len(params) != len(values):
        raise ValueError(f"exchanged: got {len(params)} parameters but {len(values)} values")
    for p, v in zip(params, values):
        if p.shape != v.shape or p.dtype != v.dtype or p.device != v.device:
            raise ValueError(
                f"exchanged: value {tuple(v.shape)}/{v.dtype}/{v.device} for a parameter "
                f"{tuple(p.shape)}/{p.dtype}/{p.device}"
            )
    saved = [p.data for p in params]
    try:
        for p, v in zip(params, values):
            p.data = v
        yield
    finally:
        for p, s in zip(params, saved):
            p.data = s


# -- flattening ---------------------------------------------------------------------------------------


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate ``tensors`` into one 1-D vector."""
    if not tensors:
        raise ValueError("flatten: expected at least one tensor")
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten_like(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split ``vector`` into views shaped like ``like`` (inverse of `flatten()`)."""
    total = sum(t.numel() for t in like)
    if vector.dim() != 1 or vector.numel() != total:
        raise ValueError(
            f"unflatten_like: expected a vector of {total} elements, got shape {tuple(vector.shape)}"
        )
    out, offset = [], 0
    for t in like:
        out.append(vector[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


# -- norms --------------------------------------------------------------------------------------------


def stat_dtype(device: torch.device) -> torch.dtype:
    """The dtype statistics are combined in: float64 (float32 on MPS, which has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _present(tensors: Sequence[Tensor | None]) -> list[Tensor]:
    ts = [t.detach() for t in tensors if t is not None]
    return [t if t.dtype in (torch.float32, torch.float64) else t.float() for t in ts]


def norm(tensors: Sequence[Tensor | None], like: Tensor) -> Tensor:
    """‖tensors‖₂ as a 0-d tensor on ``like``'s device, without a device sync (``None`` entries skipped).

    The fast path: per-tensor norms in the tensors' own precision (one batched kernel where torch offers
    it), combined in `stat_dtype()`. A float32 tensor whose sum of squares exceeds float32's range
    (entries above about 1.8e19) gives ``inf``; callers that may see such values re-measure with
    `safe_norm()` when the result is not finite (see `total_norm()`).
    """
    dt = stat_dtype(like.device)
    present = _present(tensors)
    if not present:
        return torch.zeros((), device=like.device, dtype=dt)
    if len(present) == 1:
        return torch.linalg.vector_norm(present[0]).to(dt)
    foreach_norm = getattr(torch, "_foreach_norm", None)
    if foreach_norm is not None and len({(t.device, t.dtype) for t in present}) == 1:
        norms = list(foreach_norm(present))
    else:
        norms = [torch.linalg.vector_norm(t) for t in present]
    return torch.linalg.vector_norm(torch.stack([n.to(dt) for n in norms]))


def safe_norm(tensors: Sequence[Tensor | None], like: Tensor) -> Tensor:
    """`norm()` that cannot overflow for finite inputs: each tensor is scaled by its max-abs first.

    ``‖t‖ = m·‖t/m‖`` with ``m = max|t|``; the scaled entries lie in [-1, 1], so the sum of squares is at
    most the number of entries. The per-tensor results are combined the same way in `stat_dtype()`.
    Non-finite entries give a non-finite norm (NaN or inf), as they should. One extra pass per tensor.
    """
    dt = stat_dtype(like.device)
    present = _present(tensors)
    if not present:
        return torch.zeros((), device=like.device, dtype=dt)
    norms = []
    for t in present:
        m = torch.linalg.vector_norm(t, ord=float("inf"))
        scaled = torch.linalg.vector_norm(t / torch.where(m > 0, m, torch.ones_like(m)))
        m64 = m.to(dt)
        norms.append(torch.where(torch.isinf(m64), m64, m64 * scaled.to(dt)))  # an inf entry: inf, not NaN
    stacked = torch.stack(norms)
    top = torch.linalg.vector_norm(stacked, ord=float("inf"))
    combined = top * torch.linalg.vector_norm(stacked / torch.where(top > 0, top, torch.ones_like(top)))
    return torch.where(torch.isinf(top), top, combined)


def needs_safe_norm(value: float, tensors: Sequence[Tensor | None]) -> bool:
    """Whether a fast `norm()` ``value`` may be wrong: not finite (the sum of squares overflowed), or so
    small that the squares underflowed (entries below about 1e-19 in float32)."""
    if not math.isfinite(value):
        return True
    dtypes = {t.dtype for t in _present(tensors)}
    return bool(dtypes) and value < max(1e4 * math.sqrt(torch.finfo(dt).tiny) for dt in dtypes)


def total_norm(tensors: Sequence[Tensor | None], like: Tensor) -> float:
    """‖tensors‖₂ as a Python float (one device sync): the fast `norm()`, re-measured with
    `safe_norm()` when it may have overflowed or underflowed (`needs_safe_norm()`), so a finite
    gradient is never reported as infinite and a tiny one never as zero."""
    value = float(norm(tensors, like))
    return float(safe_norm(tensors, like)) if needs_safe_norm(value, tensors) else value


__all__ = [
    "add_optional",
    "exchanged",
    "flatten",
    "grads",
    "grads_or_zeros",
    "needs_safe_norm",
    "norm",
    "safe_norm",
    "stat_dtype",
    "total_norm",
    "unflatten_like",
    "zeros_for_none",
]
