"""Argument contract of `cagrad_weights`/`CAGrad` and `mgda_weights`/`MGDA`, stated from their docstrings.

For every argument: the lowest documented valid value is accepted, the first invalid value and NaN are
refused with an error naming the argument (whole word, case-sensitive); omitted arguments behave as their
documented defaults (CAGrad: c = 0.5, rescale = 1 as in the official code; MGDA: normalization "none");
the weights come back in the Gramian's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytest
import torch

from bilevel.moo.cagrad import CAGrad, cagrad_weights
from bilevel.moo.mgda import MGDA, mgda_weights
from tests.bilevel._asserts import BadInput, assert_finite, assert_rejects

NAN = float("nan")
# two conflicting gradients (g1·g2 < 0): every choice of c, rescale and normalization changes the weights
G = torch.tensor([[1.0, 0.0], [-0.5, 2.0]], dtype=torch.float64)
Q = G @ G.T
LOSSES = torch.tensor([0.5, 2.0], dtype=torch.float64)


def cagrad_class(q: torch.Tensor, **kw: object) -> torch.Tensor:
    return CAGrad(**kw).weights_from_gramian(q)  # type: ignore[arg-type]


def mgda_class(q: torch.Tensor, **kw: object) -> torch.Tensor:
    normalization = kw.pop("normalization", "none")
    losses = kw.pop("losses", None)
    return MGDA(normalization, **kw).weights_from_gramian(q, losses=losses)  # type: ignore[arg-type]


CAGRADS: list[Callable[..., torch.Tensor]] = [cagrad_weights, cagrad_class]
MGDAS: list[Callable[..., torch.Tensor]] = [mgda_weights, mgda_class]
ALL = [*CAGRADS, *MGDAS]


# ------------------------------------------------------------------------------------- bad input
def _bad(fn: Callable[..., torch.Tensor], arg: str, value: object, match: str) -> BadInput:
    return BadInput(f"{fn.__name__}({arg}={value!r})", lambda: fn(Q, **{arg: value}), match=match)


BAD = [
    # c >= 0 (documented); the first invalid value just below 0, and NaN
    *[_bad(fn, "c", v, "c") for fn in CAGRADS for v in (-1e-9, -1.0, NAN, math.inf)],
    # rescale in {0, 1, 2}
    *[_bad(fn, "rescale", v, "rescale") for fn in CAGRADS for v in (3, -1, True, 1.5)],
    # tol > 0 (open at 0)
    *[_bad(fn, "tol", v, "tol") for fn in ALL for v in (0.0, -1e-12, NAN, math.inf)],
    # normalization in {"none", "l2", "loss", "loss+"}, case-sensitive
    *[_bad(fn, "normalization", v, "normalization") for fn in MGDAS for v in ("L2", "", "NONE")],
    # the loss-based normalizations need positive losses
    *[
        BadInput(
            f"{fn.__name__}({norm}, {what})",
            partial(fn, Q, normalization=norm, losses=lv),
            match="losses",
        )
        for fn in MGDAS
        for norm in ("loss", "loss+")
        for what, lv in (
            ("no losses", None),
            ("zero loss", torch.tensor([0.0, 1.0])),
            ("nan", torch.tensor([NAN, 1.0])),
        )
    ],
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_rejects_bad_argument(case: BadInput) -> None:
    assert_rejects(case)


def test_missing_losses_message_names_normalization() -> None:
    assert_rejects(
        BadInput(
            "loss without losses", lambda: mgda_weights(Q, normalization="loss"), ValueError, "normalization"
        )
    )


# --------------------------------------------------------------------------- lowest valid values
LOWEST = [
    *[(fn, {"c": 0.0}) for fn in CAGRADS],
    *[(fn, {"rescale": r}) for fn in CAGRADS for r in (0, 1, 2)],
    *[(fn, {"tol": 1e-300}) for fn in ALL],
    *[(fn, {"normalization": n, "losses": LOSSES}) for fn in MGDAS for n in ("none", "l2", "loss", "loss+")],
]


@pytest.mark.parametrize(("fn", "kw"), LOWEST, ids=lambda x: getattr(x, "__name__", repr(x)))
def test_accepts_lowest_valid_value(fn: Callable[..., torch.Tensor], kw: dict[str, object]) -> None:
    w = fn(Q, **kw)
    assert w.shape == (2,)
    assert_finite(w)


# ------------------------------------------------------------------------------------- defaults
DEFAULTS = [
    *[(fn, {"c": 0.5}) for fn in CAGRADS],  # the official default c = 0.5
    *[(fn, {"rescale": 1}) for fn in CAGRADS],  # official default d / (1 + c²)
    *[(fn, {"c": 0.5, "rescale": 1, "tol": 1e-12}) for fn in CAGRADS],
    *[(fn, {"normalization": "none"}) for fn in MGDAS],
    *[(fn, {"tol": 1e-12}) for fn in ALL],
]


@pytest.mark.parametrize(("fn", "kw"), DEFAULTS, ids=lambda x: getattr(x, "__name__", repr(x)))
def test_omitted_argument_is_its_documented_default(
    fn: Callable[..., torch.Tensor], kw: dict[str, object]
) -> None:
    torch.testing.assert_close(fn(Q), fn(Q, **kw), rtol=0, atol=1e-12)


@pytest.mark.parametrize("fn", CAGRADS, ids=lambda f: f.__name__)
def test_default_c_is_neither_mean_nor_another_radius(fn: Callable[..., torch.Tensor]) -> None:
    """The default radius matters on conflicting gradients: it is 0.5, not 0 (mean) or 1.5."""
    w = fn(Q)
    for c in (0.0, 0.4, 1.0, 1.5):
        assert not torch.allclose(w, fn(Q, c=c), rtol=0, atol=1e-9), c


@pytest.mark.parametrize("fn", CAGRADS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("c", [0.0, 0.5, 1.5])
def test_rescale_divides_the_direction(fn: Callable[..., torch.Tensor], c: float) -> None:
    """rescale: 0 → d, 1 → d / (1 + c²), 2 → d / (1 + c)."""
    d = fn(Q, c=c, rescale=0)
    torch.testing.assert_close(fn(Q, c=c, rescale=1) * (1 + c * c), d, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fn(Q, c=c, rescale=2) * (1 + c), d, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fn", CAGRADS, ids=lambda f: f.__name__)
def test_c_zero_is_the_mean_gradient(fn: Callable[..., torch.Tensor]) -> None:
    torch.testing.assert_close(fn(Q, c=0.0, rescale=0), torch.full((2,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("fn", CAGRADS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("scale", [1e-4, 1e-2, 1.0])
@pytest.mark.parametrize("c", [1.0, 1.5])
def test_large_radius_still_decreases_every_objective(
    fn: Callable[..., torch.Tensor], scale: float, c: float
) -> None:
    """0 is not in the hull of two orthogonal gradients, so CAGrad's d (any c) has ⟨g_i, d⟩ > 0 for all i,
    whatever the gradients' scale."""
    q = scale * torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    w = fn(q, c=c)
    assert float((q @ w).min()) > 0


# ---------------------------------------------------------------------------------------- dtype
@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weights_in_the_gramians_dtype(fn: Callable[..., torch.Tensor], dtype: torch.dtype) -> None:
    q = Q.to(dtype)
    kw = {"losses": LOSSES.to(dtype), "normalization": "loss+"} if fn in MGDAS else {}
    w = fn(q, **kw)
    assert w.dtype == dtype and w.device == q.device
    w0 = fn(q)
    assert w0.dtype == dtype
