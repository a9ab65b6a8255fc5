"""bilevel.hypergrad: solvers in float32 against the closed form, and every entry point's bad-input table."""

from __future__ import annotations

import pytest
import torch

from bilevel.hypergrad import cg, cg_info, implicit, neumann, unrolled
from tests.bilevel._asserts import NON_FINITE, BadInput, assert_finite, assert_rejects

NAN = float("nan")


def _mv(a: torch.Tensor):
    return lambda v: [a @ v[0]]


def test_cg_float32_stops_on_the_residual_instead_of_dividing_by_zero_curvature() -> None:
    """Random 2×2 SPD systems in float32: CG once hit pAp = 0 after the residual reached round-off.

    Against ``torch.linalg.solve`` with a float32 tolerance (the systems have κ ≤ ~10^3)."""
    g = torch.Generator().manual_seed(0)
    for i in range(300):
        m = torch.randn(2, 2, generator=g)
        a = m @ m.T + 0.1 * torch.eye(2) if i % 3 else torch.diag(torch.rand(2, generator=g) + 0.5)
        b = torch.randn(2, generator=g)
        info = cg_info(_mv(a), [b], steps=10)
        assert not info.hit_indefinite and info.iterations < 10  # stopped on the residual
        exact = torch.linalg.solve(a.double(), b.double()).float()
        torch.testing.assert_close(info.x[0], exact, rtol=1e-4, atol=1e-5 * float(exact.norm()))


def test_cg_reports_convergence_in_float32_on_a_larger_system() -> None:
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=torch.float64))
    a = (q @ torch.diag(torch.linspace(1.0, 10.0, 20, dtype=torch.float64)) @ q.T).float()
    b = torch.randn(20, generator=g)
    info = cg_info(_mv(a), [b], steps=200)
    assert info.iterations < 200  # stopped on the residual, not on curvature
    exact = torch.linalg.solve(a.double(), b.double()).float()
    torch.testing.assert_close(info.x[0], exact, rtol=1e-4, atol=1e-5)


def test_neumann_with_alpha_just_below_two_over_l_converges() -> None:
    """alpha = 1.9/L is inside the convergence region: no false alarm, closed form reached."""
    a = torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64))
    b = torch.ones(2, dtype=torch.float64)
    (x,) = neumann(_mv(a), [b], steps=400, alpha=1.9 / 3.0)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=0, atol=1e-10)


def _ridge():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = torch.randn(30, generator=g, dtype=torch.float64)

    def inner(w, lam):
        return 0.5 * ((x @ w[0] - y) ** 2).mean() + 0.5 * (lam[0].exp() * w[0] ** 2).sum()

    def outer(w, lam):
        return 0.5 * ((x @ w[0]) ** 2).mean()

    return inner, outer, torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)


A = torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64))
B = torch.ones(2, dtype=torch.float64)
INNER, OUTER, W, LAM = _ridge()

CASES = [
    *[
        BadInput(f"cg b={v}", lambda v=v: cg(_mv(A), [B * v], steps=3), ValueError, "b contains non-finite")
        for v in NON_FINITE
    ],
    BadInput("cg NaN matvec", lambda: cg(lambda v: [v[0] * NAN], [B], steps=3), ValueError, "matvec"),
    BadInput("cg indefinite", lambda: cg(lambda v: [-v[0]], [B], steps=3), ValueError, "positive definite"),
    BadInput("cg steps<0", lambda: cg(_mv(A), [B], steps=-1), ValueError, "steps"),
    BadInput("cg tol<0", lambda: cg(_mv(A), [B], steps=1, tol=-1.0), ValueError, "tol"),
    BadInput("cg tol=nan", lambda: cg(_mv(A), [B], steps=1, tol=NAN), ValueError, "tol"),
    BadInput(
        "cg indefinite option", lambda: cg(_mv(A), [B], steps=1, indefinite="x"), ValueError, "indefinite"
    ),
    BadInput("cg empty b", lambda: cg(_mv(A), [], steps=1), ValueError, "b must be"),
    BadInput(
        "cg int b", lambda: cg(_mv(A), [torch.ones(2, dtype=torch.long)], steps=1), ValueError, "b must"
    ),
    BadInput("cg wrong shape", lambda: cg(lambda v: [torch.ones(3)], [B], steps=1), ValueError, "shaped"),
    *[
        BadInput(
            f"neumann b={v}",
            lambda v=v: neumann(_mv(A), [B * v], steps=3, alpha=0.1),
            ValueError,
            "b contains non-finite",
        )
        for v in NON_FINITE
    ],
    BadInput("neumann alpha > 2/L", lambda: neumann(_mv(A), [B], steps=50, alpha=0.7), ValueError, "alpha"),
    BadInput(
        "neumann alpha >> 2/L", lambda: neumann(_mv(A), [B], steps=500, alpha=50.0), ValueError, "alpha"
    ),
    BadInput(
        "neumann indefinite",
        lambda: neumann(lambda v: [-v[0]], [B], steps=50, alpha=0.5),
        ValueError,
        "positive definite",
    ),
    BadInput(
        "neumann NaN matvec",
        lambda: neumann(lambda v: [v[0] * NAN], [B], steps=3, alpha=0.1),
        ValueError,
        "matvec",
    ),
    BadInput("neumann alpha=0", lambda: neumann(_mv(A), [B], steps=3, alpha=0.0), ValueError, "alpha"),
    BadInput("neumann alpha=nan", lambda: neumann(_mv(A), [B], steps=3, alpha=NAN), ValueError, "alpha"),
    BadInput(
        "implicit method", lambda: implicit(INNER, OUTER, [W], [LAM], method="lu"), ValueError, "method"
    ),
    BadInput(
        "implicit no alpha", lambda: implicit(INNER, OUTER, [W], [LAM], method="neumann"), ValueError, "alpha"
    ),
    BadInput("implicit empty inner", lambda: implicit(INNER, OUTER, [], [LAM]), ValueError, "inner"),
    BadInput("implicit NaN inner", lambda: implicit(INNER, OUTER, [W * NAN], [LAM]), ValueError, "inner"),
    BadInput(
        "implicit inf outer", lambda: implicit(INNER, OUTER, [W], [LAM + float("inf")]), ValueError, "outer"
    ),
    BadInput(
        "implicit non-scalar loss",
        lambda: implicit(lambda a, b: a[0], OUTER, [W], [LAM]),
        ValueError,
        "scalar",
    ),
    BadInput(
        "implicit neumann diverges",
        lambda: implicit(INNER, OUTER, [W], [LAM], method="neumann", alpha=100.0, steps=50),
        ValueError,
        "alpha",
    ),
    BadInput("unrolled lr<0", lambda: unrolled(INNER, OUTER, [W], [LAM], lr=-1.0, steps=1), ValueError, "lr"),
    BadInput(
        "unrolled NaN inner",
        lambda: unrolled(INNER, OUTER, [W * NAN], [LAM], lr=0.1, steps=1),
        ValueError,
        "inner",
    ),
    BadInput(
        "unrolled steps", lambda: unrolled(INNER, OUTER, [W], [LAM], lr=0.1, steps=-1), ValueError, "steps"
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hypergrad_rejects_bad_input(case: BadInput) -> None:
    assert_rejects(case)


def test_implicit_on_a_zero_outer_gradient_is_finite_zero() -> None:
    """b = 0 (the outer loss does not depend on w) is not an error: the hypergradient is ∇_λ f = 0."""
    (h,) = implicit(INNER, lambda w, lam: (lam[0] * 0).sum() + 1.0, [W], [LAM], steps=5)
    assert_finite(h)
    assert float(h.abs().max()) == 0.0
