"""Argument contract of every public function of `bilevel.theory.srs`, stated from the docstrings.

Domains: counts (``n_data``, ``epochs``, ``steps``, ``batch_size``, ``draws``, ``n``) are integers in
``[low, 2**53]`` with ``low`` the documented minimum (``n_data >= 1``, or ``>= 2`` for the non-convex
stability bound; ``epochs >= 0`` for the coverage laws, ``>= 1`` for the convergence bound; ``steps >= 1``
for the SGD bounds, ``>= 0`` for stability); ``ratio`` is finite and > 0; ``initial_gap``, ``variance`` and
``lipschitz`` are finite and >= 0 (``initial_gap > 0`` for `optimal_lr`); ``smoothness``, ``lr`` and ``c`` are
finite and > 0. For each function and argument the lowest valid value is accepted (finite result) and the
first invalid value, NaN, inf and a bool are refused with a ValueError/TypeError whose message names the
argument (whole word, case-sensitive). Omitted arguments equal their documented defaults; the bounds'
closed forms are checked at non-unit values; overflow is an error naming the function, not a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import pytest

from bilevel.theory import srs
from tests.bilevel._asserts import BadInput, assert_finite, assert_rejects

NAN, INF = float("nan"), float("inf")
MAX = srs.MAX_COUNT

# documented domains: (lowest valid values, first invalid value and other refused values)
COUNT0 = ([0, 1], [-1, NAN, INF, 2.5, True, MAX + 1])
COUNT1 = ([1, 2], [0, NAN, INF, 2.5, True, MAX + 1])
COUNT2 = ([2, 3], [1, NAN, INF, 2.5, True])
NONNEG = ([0.0, 1e-12], [-1e-9, NAN, INF, True, "1"])
POSITIVE = ([1e-6], [0.0, -1e-9, NAN, INF, True])
RATIO = ([1e-6, 1.0, 2.5], [0.0, -1e-9, NAN, INF, True])
INT1 = ([1], [0, 1.0, True, None])  # plain Python int (check_int)
INT0 = ([0, 1], [-1, 1.0, True, None])

# function -> (base keyword arguments, {argument: domain})
TABLE: dict[str, tuple[dict[str, Any], dict[str, tuple[list[Any], list[Any]]]]] = {
    "num_draws": ({"n_data": 10, "ratio": 0.3}, {"n_data": COUNT1, "ratio": RATIO}),
    "expected_unique_fraction": ({"n_data": 10, "ratio": 0.3}, {"n_data": COUNT1, "ratio": RATIO}),
    "expected_unique": ({"n_data": 10, "ratio": 0.3}, {"n_data": COUNT1, "ratio": RATIO}),
    "duplicate_rate": ({"n_data": 10, "ratio": 0.3}, {"n_data": COUNT1, "ratio": RATIO}),
    "unique_variance": (
        {"n_data": 10, "ratio": 0.3, "epochs": 2},
        {"n_data": COUNT1, "ratio": RATIO, "epochs": COUNT0},
    ),
    "unique_skewness": (
        {"n_data": 10, "ratio": 0.3, "epochs": 2},
        {"n_data": COUNT1, "ratio": RATIO, "epochs": COUNT0},
    ),
    "occupancy_pmf_exact": ({"n_data": 10, "draws": 4}, {"n_data": INT1, "draws": INT0}),
    "occupancy_pmf_approx": ({"n_data": 10, "draws": 4}, {"n_data": INT1, "draws": INT0}),
    "occupancy_pmf": ({"n_data": 10, "draws": 4}, {"n_data": INT1, "draws": INT0}),
    "prob_unseen": (
        {"n_data": 10, "ratio": 0.3, "epochs": 2},
        {"n_data": COUNT1, "ratio": RATIO, "epochs": COUNT0},
    ),
    "expected_coverage": (
        {"n_data": 10, "ratio": 0.3, "epochs": 2},
        {"n_data": COUNT1, "ratio": RATIO, "epochs": COUNT0},
    ),
    "harmonic_number": ({"n": 10}, {"n": COUNT0}),
    "expected_draws_to_cover": ({"n_data": 10}, {"n_data": COUNT1}),
    "prob_not_covered": (
        {"n_data": 10, "ratio": 0.3, "epochs": 2},
        {"n_data": COUNT1, "ratio": RATIO, "epochs": COUNT0},
    ),
    "expected_epochs_to_cover": ({"n_data": 10, "ratio": 0.3}, {"n_data": COUNT1, "ratio": RATIO}),
    "cover_tail_limit": ({"c": 0.5}, {"c": ([-1e3, 0.0, 1e3], [NAN, INF, -INF, True, "1"])}),
    "steps_per_epoch": (
        {"n_data": 10, "ratio": 0.7, "batch_size": 2},
        {"n_data": COUNT1, "ratio": RATIO, "batch_size": COUNT1},
    ),
    "nonconvex_sgd_bound": (
        {"initial_gap": 1.5, "smoothness": 2.0, "variance": 0.7, "lr": 0.25, "steps": 7, "batch_size": 3},
        {
            "initial_gap": NONNEG,
            "smoothness": POSITIVE,
            "variance": NONNEG,
            "lr": POSITIVE,
            "steps": COUNT1,
            "batch_size": COUNT1,
        },
    ),
    "srs_convergence_bound": (
        {
            "initial_gap": 1.5,
            "smoothness": 2.0,
            "variance": 0.7,
            "lr": 0.25,
            "n_data": 10,
            "ratio": 0.7,
            "epochs": 3,
            "batch_size": 3,
        },
        {
            "initial_gap": NONNEG,
            "smoothness": POSITIVE,
            "variance": NONNEG,
            "lr": POSITIVE,
            "n_data": COUNT1,
            "ratio": RATIO,
            "epochs": COUNT1,
            "batch_size": COUNT1,
        },
    ),
    "optimal_lr": (
        {"initial_gap": 1.5, "smoothness": 2.0, "variance": 7.0, "steps": 7, "batch_size": 3},
        {
            "initial_gap": ([1e-6], [0.0, -1e-9, NAN, INF, True]),
            "smoothness": POSITIVE,
            "variance": NONNEG,
            "steps": COUNT1,
            "batch_size": COUNT1,
        },
    ),
    "stability_bound_convex": (
        {"lipschitz": 3.0, "smoothness": 2.0, "lr": 0.5, "steps": 7, "n_data": 11},
        {"lipschitz": NONNEG, "smoothness": POSITIVE, "lr": POSITIVE, "steps": COUNT0, "n_data": COUNT1},
    ),
    "stability_bound_nonconvex": (
        {"lipschitz": 3.0, "smoothness": 2.0, "c": 0.5, "steps": 7, "n_data": 11},
        {"lipschitz": NONNEG, "smoothness": POSITIVE, "c": POSITIVE, "steps": COUNT0, "n_data": COUNT2},
    ),
    "srs_generalization_bound": (
        {
            "n_data": 10,
            "ratio": 0.7,
            "epochs": 3,
            "lipschitz": 3.0,
            "smoothness": 2.0,
            "lr": 0.5,
            "batch_size": 2,
        },
        {
            "n_data": COUNT1,
            "ratio": RATIO,
            "epochs": COUNT0,
            "lipschitz": NONNEG,
            "smoothness": POSITIVE,
            "lr": POSITIVE,
            "batch_size": INT1,
        },
    ),
}


def call(name: str, **kw: Any) -> Any:
    return getattr(srs, name)(**kw)


def _cases(valid: bool) -> list[tuple[str, str, Any]]:
    return [
        (name, arg, v)
        for name, (_, domains) in TABLE.items()
        for arg, (good, bad) in domains.items()
        for v in (good if valid else bad)
    ]


def _id(x: Any) -> str:
    return repr(x) if not isinstance(x, str) else x


@pytest.mark.parametrize(("name", "arg", "value"), _cases(valid=True), ids=_id)
def test_lowest_valid_value_is_accepted(name: str, arg: str, value: Any) -> None:
    base, _ = TABLE[name]
    out = np.asarray(call(name, **{**base, arg: value}), dtype=np.float64)
    assert np.all(np.isfinite(out)), out


@pytest.mark.parametrize(("name", "arg", "value"), _cases(valid=False), ids=_id)
def test_invalid_value_is_refused_naming_the_argument(name: str, arg: str, value: Any) -> None:
    base, _ = TABLE[name]
    assert_rejects(
        BadInput(f"{name}({arg}={value!r})", lambda: call(name, **{**base, arg: value}), match=arg)
    )


ARRAY_BAD = [
    (name, arg, v)
    for name, arg, v in _cases(valid=False)
    if arg == "n_data" and not name.startswith("occupancy_pmf") and v in (0, 1, NAN, 2.5) and v is not True
]


@pytest.mark.parametrize(("name", "arg", "value"), ARRAY_BAD, ids=_id)
def test_invalid_n_data_in_an_array_is_refused(name: str, arg: str, value: Any) -> None:
    base, _ = TABLE[name]
    bad = np.array([base["n_data"], value])
    assert_rejects(
        BadInput(f"{name}(n_data=[.., {value!r}])", lambda: call(name, **{**base, arg: bad}), match=arg)
    )


# ------------------------------------------------------------------------------------- defaults
DEFAULTS = [
    ("unique_variance", {"epochs": 1}),
    ("unique_skewness", {"epochs": 1}),
    ("prob_unseen", {"scheme": "srs"}),
    ("expected_coverage", {"scheme": "srs"}),
    ("occupancy_pmf", {"method": "auto"}),
    ("steps_per_epoch", {"batch_size": 1}),
    ("nonconvex_sgd_bound", {"batch_size": 1}),
    ("srs_convergence_bound", {"batch_size": 1}),
    ("optimal_lr", {"batch_size": 1}),
    ("srs_generalization_bound", {"batch_size": 1}),
    ("srs_generalization_bound", {"convex": True}),
]


@pytest.mark.parametrize(("name", "kw"), DEFAULTS, ids=_id)
def test_omitted_argument_is_its_documented_default(name: str, kw: dict[str, Any]) -> None:
    # batch_size left at its default too where the non-convex bound (stated for batch_size=1) is compared
    drop = {*kw, "batch_size"} if "convex" in kw else set(kw)
    base = {k: v for k, v in TABLE[name][0].items() if k not in drop}
    if name.startswith("occupancy_pmf"):
        base = {"n_data": 40, "ratio": 0.5}
    np.testing.assert_allclose(call(name, **base), call(name, **base, **kw), rtol=1e-12, atol=0)
    # and the default is a real choice: another value of the argument changes the result
    other = {
        "epochs": 3,
        "scheme": "without_replacement",
        "method": "approx",
        "batch_size": 4,
        "convex": False,
    }
    alt = {k: other[k] for k in kw}
    assert not np.allclose(call(name, **base), call(name, **base, **alt), rtol=1e-9, atol=0)


def test_occupancy_pmf_needs_exactly_one_of_ratio_or_draws() -> None:
    both: dict[str, Any] = {"ratio": 0.5, "draws": 5}
    for kw in ({}, both):
        assert_rejects(
            BadInput(
                f"occupancy_pmf({kw})", partial(srs.occupancy_pmf, 10, **kw), ValueError, "occupancy_pmf"
            )
        )


@pytest.mark.parametrize("ratio", [0.0, -1.0, NAN, INF, True])
def test_occupancy_pmf_rejects_bad_ratio(ratio: Any) -> None:
    assert_rejects(BadInput(f"ratio={ratio}", lambda: srs.occupancy_pmf(10, ratio), match="ratio"))


@pytest.mark.parametrize("method", ["Exact", "", "APPROX", None])
def test_occupancy_pmf_rejects_unknown_method(method: Any) -> None:
    assert_rejects(
        BadInput(f"method={method}", lambda: srs.occupancy_pmf(10, 0.5, method=method), ValueError, "method")
    )


@pytest.mark.parametrize("method", ["auto", "exact", "approx"])
def test_occupancy_pmf_accepts_every_method(method: str) -> None:
    pmf = srs.occupancy_pmf(40, 0.5, method=method)
    assert pmf.shape == (41,)
    assert abs(pmf.sum() - 1) < 1e-12


def test_auto_method_is_exact_up_to_the_documented_budget() -> None:
    """``method="auto"`` is exact while n·min(n, N) <= 2·10^8: here exactly at the budget, then above."""
    N, n = 10**4, 2 * 10**4
    np.testing.assert_array_equal(srs.occupancy_pmf(N, draws=n), srs.occupancy_pmf_exact(N, n))
    np.testing.assert_array_equal(srs.occupancy_pmf(N, draws=n + 1), srs.occupancy_pmf_approx(N, n + 1))


@pytest.mark.parametrize("scheme", ["SRS", "", "full_", None])
@pytest.mark.parametrize("name", ["prob_unseen", "expected_coverage"])
def test_rejects_unknown_scheme(name: str, scheme: Any) -> None:
    base, _ = TABLE[name]
    assert_rejects(
        BadInput(f"scheme={scheme}", lambda: call(name, **base, scheme=scheme), ValueError, "scheme")
    )


@pytest.mark.parametrize("scheme", ["without_replacement", "fixed_subset"])
@pytest.mark.parametrize("name", ["prob_unseen", "expected_coverage"])
def test_ratio_above_one_refused_for_subset_schemes(name: str, scheme: str) -> None:
    base, _ = TABLE[name]
    assert_rejects(
        BadInput(scheme, lambda: call(name, **{**base, "ratio": 1.5}, scheme=scheme), ValueError, "ratio")
    )


def test_non_convex_generalization_bound_needs_batch_size_one() -> None:
    base, _ = TABLE["srs_generalization_bound"]
    assert_rejects(
        BadInput("B=2", lambda: srs.srs_generalization_bound(**base, convex=False), ValueError, "batch_size")
    )


# ---------------------------------------------------------------------------------- result types
@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("num_draws", {"n_data": [10, 20], "ratio": 0.5}),
        ("steps_per_epoch", {"n_data": [10, 20], "ratio": 0.5, "batch_size": 3}),
    ],
)
def test_counts_of_arrays_are_int64_arrays(name: str, kw: dict[str, Any]) -> None:
    out = call(name, **kw)
    assert isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == (2,)
    scalar = call(name, **{**kw, "n_data": 10})
    assert type(scalar) is int


@pytest.mark.parametrize(
    ("n_data", "ratio", "batch_size", "steps"),
    [(10, 0.7, 2, 4), (10, 0.6, 2, 3), (10, 0.6, 1, 6), (10, 0.3, 5, 1)],
)
def test_steps_per_epoch_is_ceil_of_draws_over_batch(
    n_data: int, ratio: float, batch_size: int, steps: int
) -> None:
    assert srs.steps_per_epoch(n_data, ratio, batch_size) == steps


# ------------------------------------------------------------------------------ documented formulas
def test_stability_bound_convex_closed_form() -> None:
    """2 G² α K / N."""
    G, beta, a, K, N = 3.0, 0.5, 0.75, 7, 11
    expected = 2 * G**2 * a * K / N
    assert srs.stability_bound_convex(G, beta, a, K, N) == pytest.approx(expected, rel=1e-14, abs=0)


def test_stability_bound_nonconvex_closed_form() -> None:
    G, beta, c, K, N = 3.0, 0.5, 0.75, 7, 11
    bc = beta * c
    expected = (1 + 1 / bc) / (N - 1) * (2 * c * G**2) ** (1 / (bc + 1)) * K ** (bc / (bc + 1))
    assert srs.stability_bound_nonconvex(G, beta, c, K, N) == pytest.approx(expected, rel=1e-14, abs=0)


@pytest.mark.parametrize(
    ("ratio", "batch_size"), [(0.6, 3), (0.7, 3), (0.8, 3), (0.7, 1), (0.5, 5), (1.0, 4)]
)
def test_srs_convergence_bound_closed_form(ratio: float, batch_size: int) -> None:
    """2Δ/(ηT⌈n/B⌉) + Lησ² · mean over an epoch's batches of 1/B_k (the last batch may be short)."""
    D, L, s2, eta, N, T = 1.5, 2.0, 0.7, 0.25, 10, 3
    n = srs.num_draws(N, ratio)
    sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
    expected = 2 * D / (eta * T * len(sizes)) + L * eta * s2 * sum(1 / b for b in sizes) / len(sizes)
    got = srs.srs_convergence_bound(D, L, s2, eta, N, ratio, T, batch_size)
    assert got == pytest.approx(expected, rel=1e-14, abs=0)


@pytest.mark.parametrize(
    ("D", "L", "s2", "K", "B"), [(1.5, 2.0, 0.7, 7, 3), (1.5, 4.0, 1e-3, 7, 3), (0.01, 0.5, 2.0, 100, 1)]
)
def test_optimal_lr_closed_form(D: float, L: float, s2: float, K: int, B: int) -> None:
    assert srs.optimal_lr(D, L, s2, K, B) == pytest.approx(
        min(1 / L, math.sqrt(2 * D * B / (L * s2 * K))), rel=1e-14
    )


def test_optimal_lr_underflow_is_an_error_naming_it() -> None:
    assert_rejects(
        BadInput("underflow", lambda: srs.optimal_lr(5e-324, 1.0, 1e300, 10**6), ValueError, "optimal_lr")
    )


@pytest.mark.parametrize(
    ("name", "lr_factor"),
    [("nonconvex_sgd_bound", 1.0), ("srs_convergence_bound", 1.0), ("stability_bound_convex", 2.0)],
)
@pytest.mark.parametrize("smoothness", [0.3, 2.0, 7.0, 49.0])
def test_step_size_limit(name: str, lr_factor: float, smoothness: float) -> None:
    """lr <= 1/smoothness (SGD bounds), 2/smoothness (convex stability): accepted at the edge, not above."""
    base, _ = TABLE[name]
    assert_finite(call(name, **{**base, "smoothness": smoothness, "lr": lr_factor / smoothness}))
    over = {**base, "smoothness": smoothness, "lr": 1.25 * lr_factor / smoothness}
    assert_rejects(BadInput(f"{name} lr above limit", lambda: call(name, **over), ValueError, r"^lr\b"))


# -------------------------------------------------------------------- overflow and floating-point state
@contextmanager
def no_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="warn"):
            yield


OVERFLOW: list[tuple[str, dict[str, Any]]] = [
    ("nonconvex_sgd_bound", {**TABLE["nonconvex_sgd_bound"][0], "initial_gap": 1e308, "lr": 1e-10}),
    ("srs_convergence_bound", {**TABLE["srs_convergence_bound"][0], "initial_gap": 1e308, "lr": 1e-10}),
    ("stability_bound_convex", {**TABLE["stability_bound_convex"][0], "lipschitz": 1e200}),
    ("stability_bound_nonconvex", {**TABLE["stability_bound_nonconvex"][0], "lipschitz": 1e300, "c": 1e-3}),
]


@pytest.mark.parametrize(("name", "kw"), OVERFLOW, ids=_id)
def test_overflow_is_an_error_naming_the_function_not_a_warning(name: str, kw: dict[str, Any]) -> None:
    with no_warnings():
        assert_rejects(BadInput(name, lambda: call(name, **kw), ValueError, name))


CLEAN: list[tuple[Callable[[], Any], float]] = [
    (lambda: srs.optimal_lr(1.5, 2.0, 0.0, 7), 0.5),  # variance 0: 1/L (a division by zero inside)
    (lambda: srs.optimal_lr(1e300, 2.0, 1e-300, 7), 0.5),  # sqrt argument overflows: 1/L
    (lambda: srs.cover_tail_limit(-1e3), 1.0),  # exp(1000) overflows: the limit is 1
    (lambda: srs.prob_unseen(10, 1.0, 0, "without_replacement"), 1.0),
    (lambda: srs.prob_unseen(10, 1.0, 2, "without_replacement"), 0.0),
    (lambda: srs.expected_coverage(10, 1.0, 0, "without_replacement"), 0.0),
    (lambda: srs.expected_coverage(10, 1.0, 2, "without_replacement"), 1.0),
    (lambda: srs.prob_unseen(10, 0.5, 0, "fixed_subset"), 1.0),
    (lambda: srs.stability_bound_convex(0.0, 2.0, 0.5, 0, 11), 0.0),
]


@pytest.mark.parametrize(("fn", "expected"), CLEAN)
def test_edge_values_without_floating_point_warnings(fn: Callable[[], Any], expected: float) -> None:
    with no_warnings():
        assert fn() == expected


def test_small_coverage_keeps_relative_accuracy() -> None:
    """One item out of 10^12 per epoch (without replacement): the coverage 10^-12 to 1e-9 relative."""
    for scheme in ("without_replacement", "srs"):
        assert srs.expected_coverage(10**12, 1e-12, 1, scheme) == pytest.approx(1e-12, rel=1e-9, abs=0)
        assert srs.expected_coverage(10**12, 1e-12, 3, scheme) == pytest.approx(3e-12, rel=1e-9, abs=0)


@pytest.mark.parametrize("method", ["exact", "approx"])
@pytest.mark.parametrize(("n_data", "draws"), [(1, 0), (10, 0), (1, 5), (10, 4), (40, 20), (1000, 300)])
def test_occupancy_pmf_is_a_probability_law(method: str, n_data: int, draws: int) -> None:
    """A length n_data + 1 array of non-negative values summing to 1; no mass above min(draws, n_data)."""
    pmf = srs.occupancy_pmf(n_data, draws=draws, method=method)
    assert pmf.shape == (n_data + 1,)
    assert bool(np.all(pmf >= 0))
    assert abs(math.fsum(pmf) - 1) < 1e-12
    if method == "exact":
        assert not pmf[min(draws, n_data) + 1 :].any()
    if draws == 0:
        assert pmf[0] == 1.0


@pytest.mark.parametrize(("n_data", "draws"), [(5, 3), (10, 2), (10, 4), (40, 20), (1000, 300)])
def test_occupancy_pmf_approx_within_its_documented_accuracy(n_data: int, draws: int) -> None:
    """Total variation to the exact law below 0.05/σ² when σ >= 2, and at most 0.06 when σ < 2."""
    exact = srs.occupancy_pmf_exact(n_data, draws)
    k = np.arange(n_data + 1)
    var = float((exact * k**2).sum() - (exact * k).sum() ** 2)
    tv = 0.5 * float(np.abs(srs.occupancy_pmf_approx(n_data, draws) - exact).sum())
    assert tv <= (0.05 / var if var >= 4 else 0.06)


def test_optimal_lr_overflow_is_an_error_naming_it() -> None:
    """A subnormal smoothness makes 1/L overflow: an error naming the function, not an infinite step
    (and no floating-point warning before it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        call = partial(srs.optimal_lr, 1.5, 1e-310, 0.0, 7)
        assert_rejects(BadInput("1/L overflows", call, ValueError, "optimal_lr"))


@pytest.mark.parametrize(("ratio", "batch_size"), [(0.7, 1), (0.7, 2), (0.8, 3)])
def test_srs_generalization_bound_counts_minibatch_steps(ratio: float, batch_size: int) -> None:
    """Convex: 2G²α K/N with K = T⌈n/B⌉ minibatch steps."""
    N, T, G, beta, a = 10, 3, 3.0, 2.0, 0.5
    K = T * -(-srs.num_draws(N, ratio) // batch_size)
    got = srs.srs_generalization_bound(N, ratio, T, G, beta, a, batch_size=batch_size)
    assert got == pytest.approx(2 * G**2 * a * K / N, rel=1e-14, abs=0)
