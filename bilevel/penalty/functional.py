r"""Functional core of penalty-based bilevel gradient descent (PBGD; Shen & Chen, ICML 2023).

The bilevel problem is

$$
\min_{x,\,y} f(x, y) \quad\text{s.t.}\quad y \in \arg\min_{y'} g(x, y'),
$$

with ``x`` the *upper* parameters and ``y`` the *lower* parameters. Its value-function penalty is

$$
F_\gamma(x, y) = f(x, y) + \gamma\,\bigl(g(x, y) - v(x)\bigr), \qquad v(x) = \min_{y'} g(x, y'),
$$

and the gradient-norm penalty (G-PBGD) replaces $g - v$ by $\lVert\nabla_y g(x, y)\rVert^2$.
$v(x)$ is estimated by $g(x, \omega)$ where $\omega$ is a warm-started copy of ``y``
advanced by a few gradient steps on $g(x, \cdot)$; by Danskin's theorem
$\nabla v(x) = \nabla_x g(x, y^*(x))$, so the upper gradient gains $-\gamma\nabla_x g(x, \omega)$.

Every function here is stateless: parameters are plain leaf tensors, losses are closures that take no
arguments and read those tensors (so they may be written for an ``nn.Module``), and ``ω`` is a list of
tensors shaped like the lower parameters. The stateful [`bilevel.PenaltyBGD`][bilevel.PenaltyBGD] wraps them.
When ``torch.distributed`` is initialised every gradient computed here is averaged across ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from bilevel._autograd import add_optional, exchanged, grads
from bilevel._distributed import all_reduce_mean_
from bilevel.checks import check_loss, check_real

Closure = Callable[[], Tensor]
"""A loss closure: takes no arguments, returns a scalar tensor."""

PENALTIES = ("value", "gradient")
"""``"value"``: g − v (V-PBGD); ``"gradient"``: ‖∇_y g‖² (G-PBGD)."""


def step_scale(gamma: float) -> float:
    r"""The official PBGD code's step scaling $\min(1, 1/\gamma)$ (1 for $\gamma \le 1$).

    The smoothness constant of $F_\gamma$ grows like $L_\gamma = L_f + \gamma L_g$, so a
    step $\alpha$ that is stable at $\gamma = 1$ stays stable for every $\gamma$ once it
    is multiplied by this factor (see ``theory/penalty_step_coupling.md``).
    """
    gamma = check_real(gamma, "gamma", low=0.0)
    return 1.0 if gamma <= 1.0 else 1.0 / gamma


def _scalar(loss: object, name: str, check_finite: bool) -> Tensor:
    """``check_loss`` without its device sync when ``check_finite`` is false (the caller checks later)."""
    if check_finite:
        return check_loss(loss, name)
    if not isinstance(loss, Tensor):
        raise TypeError(f"{name} must return a scalar torch.Tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"{name} must return a scalar tensor, got shape {tuple(loss.shape)}")
    return loss.reshape(())


def inner_steps_(
    omega: Sequence[Tensor],
    lower: Sequence[Tensor],
    lower_loss: Closure,
    *,
    steps: int,
    lr: float,
    loss_scale: float = 1.0,
    check_finite: bool = True,
    weight: float | None = None,
) -> int:
    r"""Advance ``omega`` in place by ``steps`` gradient steps on $g(x, \cdot)$ of size ``lr``.

    ``lower_loss`` is evaluated with the lower parameters temporarily backed by ``omega``.
    ``loss_scale`` (a GradScaler's scale) multiplies the loss before differentiation and divides the
    gradient after; a step whose gradient is not finite is skipped. Returns the number of skipped steps.
    ``check_finite=False`` skips the per-step finiteness check of the loss (one device sync each).
    ``weight`` is this rank's weight in the cross-rank average of the gradients (its local batch size
    when the shards are unequal; ``None``: equal weights). A ``lower_loss`` that does not depend on the
    lower parameters raises a ``ValueError``.
    """
    skipped = 0
    with exchanged(lower, omega):
        for _ in range(steps):
            g = _scalar(lower_loss(), "lower_loss", check_finite)
            gs = grads(g * loss_scale if loss_scale != 1.0 else g, lower, name="lower_loss")
            all_reduce_mean_(gs, weight)
            present = [(w, gr) for w, gr in zip(omega, gs) if gr is not None]
            if loss_scale != 1.0:
                if not all(bool(torch.isfinite(gr).all()) for _, gr in present):
                    skipped += 1
                    continue
            with torch.no_grad():
                for w, gr in present:
                    w.add_(gr.to(w.dtype), alpha=-lr / loss_scale)
    return skipped


def value_function(
    upper: Sequence[Tensor],
    lower: Sequence[Tensor],
    lower_loss: Closure,
    omega: Sequence[Tensor],
    *,
    check_finite: bool = True,
) -> tuple[Tensor, list[Tensor | None]]:
    r"""The estimate $v(x) \approx g(x, \omega)$ and its Danskin gradient $\nabla_x g(x, \omega)$.

    Returns the detached value and the gradient with respect to each upper parameter (``None`` where
    ``g`` does not depend on it). With no upper parameters the value is computed without a graph.
    """
    with exchanged(lower, omega):
        if not upper:
            with torch.no_grad():
                return _scalar(lower_loss(), "lower_loss", check_finite).detach(), []
        v = _scalar(lower_loss(), "lower_loss", check_finite)
        return v.detach(), grads(v, upper)


@contextmanager
def _as_constants(lower: Sequence[Tensor], omega: Sequence[Tensor]) -> Iterator[None]:
    """Lower parameters backed by ω *as constants*: no gradient flows to them, and every tensor autograd
    saves from ω's storage is pinned to it, so the graph built inside stays valid after the block."""
    ptrs = {w.untyped_storage().data_ptr() for w in omega}

    def pack(t: Tensor) -> Tensor:
        try:
            pinned = t.untyped_storage().data_ptr() in ptrs
        except (RuntimeError, NotImplementedError):  # tensors without a plain storage
            pinned = False
        # a leaf parameter's own TensorImpl follows `.data` back to y on exit; a detached alias does not
        return t.detach() if pinned else t

    flags = [p.requires_grad for p in lower]
    with exchanged(lower, omega), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        try:
            for p in lower:
                p.requires_grad_(False)
            yield
        finally:
            for p, flag in zip(lower, flags):
                p.requires_grad_(flag)


def value_estimate(
    upper: Sequence[Tensor],
    lower: Sequence[Tensor],
    lower_loss: Closure,
    omega: Sequence[Tensor],
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""$v(x) \approx g(x, \omega)$ as a tensor whose graph reaches the upper parameters only.

    Differentiating it gives the Danskin term $\nabla_x g(x, \omega)$ (ω is a constant), so it can
    be folded into the penalised loss and differentiated in the same backward pass as f and g
    (`penalty_grads()` with ``v=`` this tensor), which saves one backward pass per step over
    `value_function()`. Without upper parameters the value is computed without a graph.
    """
    if not upper:
        with exchanged(lower, omega), torch.no_grad():
            return _scalar(lower_loss(), "lower_loss", check_finite).detach()
    with _as_constants(lower, omega):
        return _scalar(lower_loss(), "lower_loss", check_finite)


@dataclass
class PenaltyGrads:
    """What `penalty_grads()` returns: the gradients of c·F_γ and the loss values.

    Attributes:
        upper: gradients for the upper parameters (``None`` where nothing depends on one).
        lower: gradients for the lower parameters.
        f: upper loss value (detached).
        g: lower loss value at (x, y) (detached).
        gap: the penalty value p (g − v or ‖∇_y g‖²), or ``None`` for ``"value"`` without an estimate of v.
    """

    upper: list[Tensor | None]
    lower: list[Tensor | None]
    f: Tensor
    g: Tensor
    gap: Tensor | None


def penalty_grads(
    upper: Sequence[Tensor],
    lower: Sequence[Tensor],
    upper_loss: Closure,
    lower_loss: Closure,
    gamma: float,
    *,
    penalty: str = "value",
    v: Tensor | None = None,
    v_grads: Sequence[Tensor | None] | None = None,
    scale: float = 1.0,
    loss_scale: float = 1.0,
    check_finite: bool = True,
    weight: float | None = None,
) -> PenaltyGrads:
    r"""Gradients of $c\,F_\gamma$ with respect to the upper and lower parameters.

    For ``penalty="value"``:

    $$
    \nabla_x = c\,(\nabla_x f + \gamma\nabla_x g(x,y) - \gamma\nabla_x v(x)),\qquad
    \nabla_y = c\,(\nabla_y f + \gamma\nabla_y g(x,y)),
    $$

    where $\nabla_x v$ comes either from ``v`` itself when it carries a graph (from
    `value_estimate()`; one backward pass for everything) or from ``v_grads`` (from
    `value_function()`); with neither, ``v`` is a constant (BL-JUST's case). For
    ``penalty="gradient"`` the penalty is $p = \lVert\nabla_y g\rVert^2$, differentiated through
    (double backward). ``c`` is ``scale`` (e.g. `step_scale()`). The gradients are multiplied by
    ``loss_scale`` (a GradScaler's scale; the caller unscales) and averaged across ranks when
    ``torch.distributed`` is initialised (weighted by ``weight``, this rank's local batch size, when the
    shards are unequal; see `inner_steps_()`).
    ``check_finite=False`` leaves the finiteness check of the losses to the caller (saves device syncs).
    """
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}; got {penalty!r}")
    params = [*upper, *lower]
    f = _scalar(upper_loss(), "upper_loss", check_finite)
    g = _scalar(lower_loss(), "lower_loss", check_finite)
    k = scale * loss_scale
    gap: Tensor | None
    if penalty == "value":
        if v is not None and v.requires_grad:  # v from value_estimate: its graph carries ∇_x v
            total = f + (g - v) * gamma
            v = v.detach()
        else:
            total = f + g * gamma
        gs = grads(total * k if k != 1.0 else total, params, name="upper_loss + gamma * lower_loss")
        if v_grads is not None:
            for i, vg in enumerate(v_grads):
                gs[i] = add_optional(gs[i], vg, alpha=-gamma * k)
        gap = None if v is None else (g.detach() - v)
    else:
        gy = [t for t in grads(g, lower, create_graph=True) if t is not None]
        # ‖mean_r ∇_y g_r‖² has gradient 2·mean_r(H_r)ᵀ ḡ: differentiate ⟨∇_y g, 2ḡ⟩ with ḡ the
        # (rank-averaged) detached gradient, then average -- exact under data parallelism too.
        gbar = [t.detach().clone() for t in gy]
        all_reduce_mean_(gbar, weight)
        p_val = sum((t * t).sum() for t in gbar) if gbar else torch.zeros((), dtype=g.dtype, device=g.device)
        zero = torch.zeros((), dtype=f.dtype, device=f.device)
        surrogate = sum((2.0 * (t * b).sum() for t, b in zip(gy, gbar)), zero)
        total = f + surrogate * gamma
        gs = grads(total * k if k != 1.0 else total, params, name="upper_loss + gamma * penalty")
        gap = torch.as_tensor(p_val).detach()
    all_reduce_mean_(gs, weight)
    n_up = len(upper)
    return PenaltyGrads(gs[:n_up], gs[n_up:], f.detach(), g.detach(), gap)
