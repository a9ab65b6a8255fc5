"""Matrix-free linear solvers on lists of tensors: conjugate gradient and the Neumann series.

Both solve $A x = b$ given only the map $v \\mapsto A v$ (in bilevel problems a
Hessian-vector product), with ``b`` and ``x`` lists of tensors shaped like the parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from bilevel._autograd import total_norm
from bilevel.checks import check_choice, check_int, check_real

_GROWTH = 2.0
"""A Neumann term this many times ||b|| means the series diverges (alpha above 2/L, or A indefinite)."""

_DIVERGED = 1e8
"""A residual this many times ||b|| means CG broke down (it cannot happen on an SPD operator)."""

MatVec = Callable[[Sequence[Tensor]], Sequence[Tensor]]
"""A linear map on lists of tensors, e.g. a Hessian-vector product."""


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    return sum(
        (torch.sum(x * y) for x, y in zip(a, b)), torch.zeros((), dtype=a[0].dtype, device=a[0].device)
    )


def _norm(a: Sequence[Tensor]) -> float:
    """Euclidean norm of a list of tensors (no overflow for finite entries; NaN or inf if any entry is)."""
    return total_norm(a, a[0])


def _check_rhs(b: Sequence[Tensor]) -> list[Tensor]:
    b = list(b)
    if not b or not all(isinstance(t, Tensor) for t in b):
        raise ValueError("b must be a non-empty sequence of tensors")
    if not all(t.is_floating_point() for t in b):
        raise ValueError("b must hold floating-point tensors")
    b = [t.detach() for t in b]
    if not math.isfinite(_norm(b)):
        raise ValueError("b contains non-finite values (NaN or inf): expected a finite right-hand side")
    return b


def _apply(matvec: MatVec, v: Sequence[Tensor], like: Sequence[Tensor]) -> list[Tensor]:
    out = [t.detach() for t in matvec(v)]
    if len(out) != len(like) or any(o.shape != t.shape for o, t in zip(out, like)):
        raise ValueError("matvec must return tensors shaped like its input")
    return out


def cg(
    matvec: MatVec, b: Sequence[Tensor], *, steps: int, tol: float = 0.0, indefinite: str = "raise"
) -> list[Tensor]:
    r"""Conjugate gradient for $A x = b$ with $A$ symmetric positive definite.

    Starts at $x_0 = 0$. After $k$ steps the error in the $A$-norm is at most
    $2\left(\frac{\sqrt\kappa-1}{\sqrt\kappa+1}\right)^k \|x^*\|_A$ (κ = condition number of
    $A$); in exact arithmetic CG terminates in at most ``dim`` steps (Hestenes & Stiefel, 1952).

    Args:
        matvec: $v \mapsto A v$ on lists of tensors shaped like ``b``.
        b: the right-hand side.
        steps: maximum number of iterations (each costs one ``matvec``), ``>= 0``.
        tol: stop early once $\|r_k\|_2 \le$ ``tol`` $\cdot\|b\|_2$. CG always stops once
            the residual is at round-off level ($4\varepsilon\|b\|_2$, $\varepsilon$ the dtype's
            machine epsilon), before it would divide by a vanishing $p^\top A p$.
        indefinite: what to do when a search direction has non-positive curvature
            $p^\top A p \le 0$ (the operator is not positive definite, e.g. a Hessian away from a
            minimum): ``"raise"`` a ``ValueError``, or ``"stop"`` and return the current iterate
            (truncated CG as in Steihaug 1983; if it happens on the first step, ``b`` itself is
            returned, i.e. $A$ is replaced by $I$).

    Returns:
        The approximate solution, detached, shaped like ``b``.

    Raises:
        ValueError: ``b`` or a ``matvec`` result is not finite, or the residual blows up (the operator
            is not symmetric positive definite).
    """
    return cg_info(matvec, b, steps=steps, tol=tol, indefinite=indefinite).x


@dataclass
class CGInfo:
    """`cg_info()`'s result: the solution, iterations run, and whether negative curvature stopped it."""

    x: list[Tensor]
    iterations: int
    hit_indefinite: bool


def cg_info(
    matvec: MatVec, b: Sequence[Tensor], *, steps: int, tol: float = 0.0, indefinite: str = "raise"
) -> CGInfo:
    """`cg()`, also reporting the iterations run and whether non-positive curvature was met."""
    check_int(steps, "steps", low=0)
    check_real(tol, "tol", low=0.0)
    check_choice(indefinite, "indefinite", ("raise", "stop"))
    b = _check_rhs(b)
    x = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = [t.clone() for t in b]
    b_norm = _norm(b)
    # Stop on the residual before looking at the curvature: once ||r|| is at round-off level
    # (or below tol·||b||), p is round-off too and pAp may underflow to 0 on a definite operator.
    floor = max(tol, 4 * torch.finfo(b[0].dtype).eps) * b_norm
    r_norm = b_norm
    for k in range(steps):
        if r_norm <= floor or r_norm == 0.0:
            return CGInfo(x, k, False)
        ap = _apply(matvec, p, b)
        pap = float(_dot(p, ap))
        if not math.isfinite(pap):
            raise ValueError(f"cg: pAp = {pap} is not finite (matvec returned NaN or inf, or overflowed)")
        if pap <= 0:
            if indefinite == "raise":
                raise ValueError(
                    "cg: the operator is not positive definite along a search direction "
                    f"(pAp = {pap}); "
                    "regularise it, or pass indefinite='stop'"
                )
            return CGInfo(x if k > 0 else [t.clone() for t in b], k, True)
        rr = r_norm**2
        alpha = rr / pap
        x = [xi + alpha * pi for xi, pi in zip(x, p)]
        r = [ri - alpha * api for ri, api in zip(r, ap)]
        r_new = _norm(r)
        if not math.isfinite(r_new) or r_new > _DIVERGED * b_norm:
            raise ValueError(
                f"cg diverged: the residual grew to {r_new:.3g} × ||b|| = {b_norm:.3g} after {k + 1} "
                "steps; the operator is not symmetric positive definite or is badly conditioned"
            )
        beta = r_new**2 / rr
        p = [ri + beta * pi for ri, pi in zip(r, p)]
        r_norm = r_new
    return CGInfo(x, steps, False)


def neumann(matvec: MatVec, b: Sequence[Tensor], *, steps: int, alpha: float) -> list[Tensor]:
    r"""Truncated Neumann series $x_n = \alpha\sum_{j=0}^{n}(I-\alpha A)^j b \approx A^{-1}b$.

    Converges when the spectrum of $A$ lies in $(0, 2/\alpha)$; for symmetric positive
    definite $A$ with eigenvalues in $[\mu, L]$ and $\alpha \le 1/L$ the error is
    $\|x_n - x^*\| \le (1-\alpha\mu)^{n+1}\|x^*\|$ (Lorraine, Vicol & Duvenaud, AISTATS 2020).

    Args:
        matvec: $v \mapsto A v$.
        b: the right-hand side.
        steps: number of series terms after the first (``n`` above; each costs one ``matvec``).
        alpha: the step $\alpha > 0$.

    Returns:
        The approximate solution, detached, shaped like ``b``.

    Raises:
        ValueError: ``b`` or a ``matvec`` result is not finite, or the series diverges (a term's norm
            exceeds twice $\|b\|$, which cannot happen for a symmetric $A$ with spectrum
            in $[0, 2/\alpha]$): ``alpha`` is too large or $A$ is not positive definite.
    """
    check_int(steps, "steps", low=0)
    alpha = check_real(alpha, "alpha", low=0.0, low_open=True)
    b = _check_rhs(b)
    b_norm = _norm(b)
    term = [t.clone() for t in b]
    acc = [t.clone() for t in b]
    for k in range(steps):
        at = _apply(matvec, term, b)
        term = [t - alpha * a for t, a in zip(term, at)]
        t_norm = _norm(term)
        # For a symmetric A with spectrum in [0, 2/alpha], ||(I - alpha A)^j b|| never exceeds ||b||.
        if not math.isfinite(t_norm):
            raise ValueError(
                f"neumann: the series term is not finite after {k + 1} steps (matvec returned NaN or "
                f"inf, or alpha = {alpha:g} is far above 2/L and the series overflowed)"
            )
        if t_norm > _GROWTH * b_norm:
            raise ValueError(
                f"neumann diverged: the series term grew to {t_norm:.3g} (||b|| = {b_norm:.3g}) after "
                f"{k + 1} steps; alpha = {alpha:g} must be below 2/L (L the largest eigenvalue of the "
                "operator, which must be positive definite)"
            )
        acc = [s + t for s, t in zip(acc, term)]
    return [alpha * s for s in acc]
