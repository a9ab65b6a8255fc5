"""Bad input to every public entry point of bilevel.moo: a clear error naming the argument, never a NaN or a
silent wrong answer. One table; a new entry point gets the battery by adding rows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bilevel.moo import (
    MGDA,
    CAGrad,
    LayerSelection,
    MoDo,
    PCGrad,
    Recipe,
    backward,
    cagrad_weights,
    layer_scores,
    mgda_weights,
    min_norm_weights,
    modo_step,
    pcgrad_weights,
    project_simplex,
    select_layers,
)
from bilevel.schedules import LinearRamp
from tests.bilevel._asserts import BadInput, assert_rejects

NAN = float("nan")
F64 = torch.float64
Q_OK = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
Q_NOT_PSD = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64)  # eigenvalues 3 and −1
Q_NEG_DIAG = torch.tensor([[-1.0, 0.0], [0.0, 1.0]], dtype=F64)
Q_NAN = torch.tensor([[1.0, NAN], [NAN, 1.0]], dtype=F64)
Q_ASYM = torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=F64)
LAM = torch.tensor([0.5, 0.5], dtype=F64)


def _gramian_battery(fn, label: str) -> list[BadInput]:
    """What every function of a Gramian must reject."""
    return [
        BadInput(f"{label}: not PSD", lambda: fn(Q_NOT_PSD), ValueError, "positive semidefinite"),
        BadInput(f"{label}: negative diagonal", lambda: fn(Q_NEG_DIAG), ValueError, "positive semidefinite"),
        BadInput(f"{label}: NaN", lambda: fn(Q_NAN), ValueError, "non-finite"),
        BadInput(f"{label}: not symmetric", lambda: fn(Q_ASYM), ValueError, "symmetric"),
        BadInput(f"{label}: not square", lambda: fn(torch.ones(2, 3, dtype=F64)), ValueError, "square"),
        BadInput(f"{label}: 1×1", lambda: fn(torch.ones(1, 1, dtype=F64)), ValueError, "at least 2"),
        BadInput(f"{label}: integer", lambda: fn(torch.eye(2, dtype=torch.int64)), TypeError, "floating"),
        BadInput(f"{label}: a list", lambda: fn([[1.0, 0.0], [0.0, 1.0]]), TypeError, "torch.Tensor"),
    ]


def _losses():
    torch.manual_seed(0)
    trunk = nn.Linear(3, 4).double()
    heads = nn.ModuleList([nn.Linear(4, 1) for _ in range(2)]).double()
    x = torch.randn(5, 3, dtype=F64)
    f = trunk(x)
    return trunk, heads, [h(f).pow(2).mean() for h in heads]


def _backward(**kw):
    trunk, _, L = _losses()
    args = {"losses": L, "shared_params": trunk.parameters(), "aggregator": MGDA(), **kw}
    return backward(**args)


def _overlap():
    trunk, _, L = _losses()
    backward(L, trunk.parameters(), MGDA(), task_params=[trunk.weight])


def _modo_state(**kw):
    state = {"lam": torch.tensor([0.5, 0.5], dtype=F64), "steps": 3, **kw}
    MoDo().load_state_dict(state)


CASES: list[BadInput] = [
    # ---- functions of a Gramian: the checks the classes make
    *_gramian_battery(lambda q: mgda_weights(q), "mgda_weights"),
    *_gramian_battery(lambda q: min_norm_weights(q), "min_norm_weights"),
    *_gramian_battery(lambda q: cagrad_weights(q), "cagrad_weights"),
    *_gramian_battery(lambda q: pcgrad_weights(q), "pcgrad_weights"),
    *_gramian_battery(lambda q: MGDA().weights_from_gramian(q), "MGDA.weights_from_gramian"),
    *_gramian_battery(lambda q: MoDo().weights_from_gramian(q), "MoDo.weights_from_gramian"),
    BadInput(
        "mgda_weights: unknown normalization",
        lambda: mgda_weights(Q_OK, normalization="max"),
        ValueError,
        "normalization",
    ),
    BadInput(
        "mgda_weights: loss normalization without losses",
        lambda: mgda_weights(Q_OK, normalization="loss"),
        ValueError,
        "losses",
    ),
    BadInput(
        "mgda_weights: NaN losses",
        lambda: mgda_weights(Q_OK, normalization="loss", losses=torch.tensor([1.0, NAN])),
        ValueError,
        "non-finite",
    ),
    BadInput(
        "mgda_weights: negative losses",
        lambda: mgda_weights(Q_OK, normalization="loss", losses=torch.tensor([1.0, -1.0])),
        ValueError,
        "positive",
    ),
    BadInput(
        "mgda_weights: losses of wrong length",
        lambda: mgda_weights(Q_OK, normalization="loss", losses=torch.ones(3)),
        ValueError,
        "3 values",
    ),
    BadInput("mgda_weights: tol = 0", lambda: mgda_weights(Q_OK, tol=0.0), ValueError, "tol"),
    BadInput("min_norm_weights: tol NaN", lambda: min_norm_weights(Q_OK, tol=NAN), ValueError, "tol"),
    BadInput(
        "min_norm_weights: max_iter 0", lambda: min_norm_weights(Q_OK, max_iter=0), ValueError, "max_iter"
    ),
    BadInput("cagrad_weights: negative c", lambda: cagrad_weights(Q_OK, -0.5), ValueError, "c must be"),
    BadInput("cagrad_weights: NaN c", lambda: cagrad_weights(Q_OK, NAN), ValueError, "c must be"),
    BadInput("cagrad_weights: rescale 3", lambda: cagrad_weights(Q_OK, rescale=3), ValueError, "rescale"),
    BadInput("cagrad_weights: tol < 0", lambda: cagrad_weights(Q_OK, tol=-1.0), ValueError, "tol"),
    BadInput(
        "pcgrad_weights: unknown reduction",
        lambda: pcgrad_weights(Q_OK, reduction="max"),
        ValueError,
        "reduction",
    ),
    BadInput(
        "pcgrad_weights: generator is a seed",
        lambda: pcgrad_weights(Q_OK, generator=3),
        TypeError,
        "generator",
    ),
    # ---- projection and MoDo's step
    BadInput(
        "project_simplex: NaN", lambda: project_simplex(torch.tensor([0.5, NAN])), ValueError, "non-finite"
    ),
    BadInput(
        "project_simplex: inf",
        lambda: project_simplex(torch.tensor([float("inf"), 0.0])),
        ValueError,
        "non-finite",
    ),
    BadInput("project_simplex: empty", lambda: project_simplex(torch.zeros(0)), ValueError, "non-empty"),
    BadInput("project_simplex: 0-d", lambda: project_simplex(torch.tensor(1.0)), ValueError, "non-empty"),
    BadInput(
        "project_simplex: integer", lambda: project_simplex(torch.tensor([1, 2])), TypeError, "floating"
    ),
    BadInput("project_simplex: a list", lambda: project_simplex([0.2, 0.8]), TypeError, "torch.Tensor"),
    BadInput("modo_step: negative gamma", lambda: modo_step(LAM, Q_OK, gamma=-0.1), ValueError, "gamma"),
    BadInput("modo_step: gamma = 0", lambda: modo_step(LAM, Q_OK, gamma=0.0), ValueError, "gamma"),
    BadInput("modo_step: negative rho", lambda: modo_step(LAM, Q_OK, rho=-1.0), ValueError, "rho"),
    BadInput("modo_step: NaN rho", lambda: modo_step(LAM, Q_OK, rho=NAN), ValueError, "rho"),
    BadInput(
        "modo_step: NaN lam", lambda: modo_step(torch.tensor([NAN, 0.5], dtype=F64), Q_OK), ValueError, "lam"
    ),
    BadInput(
        "modo_step: lam off the simplex",
        lambda: modo_step(torch.tensor([2.0, -1.0], dtype=F64), Q_OK),
        ValueError,
        "simplex",
    ),
    BadInput(
        "modo_step: lam of wrong size",
        lambda: modo_step(torch.ones(3, dtype=F64) / 3, Q_OK),
        ValueError,
        "lam",
    ),
    BadInput("modo_step: NaN cross-Gramian", lambda: modo_step(LAM, Q_NAN), ValueError, "cross_gramian"),
    BadInput("modo_step: unknown center", lambda: modo_step(LAM, Q_OK, center="mean"), ValueError, "center"),
    # ---- constructors
    BadInput("MGDA: tol = 0", lambda: MGDA(tol=0.0), ValueError, "tol"),
    BadInput("CAGrad: c = -0.1", lambda: CAGrad(-0.1), ValueError, "c must be"),
    BadInput("CAGrad: rescale True", lambda: CAGrad(rescale=True), ValueError, "rescale"),
    BadInput("PCGrad: negative seed", lambda: PCGrad(-1), ValueError, "seed"),
    BadInput("MoDo: gamma = 0", lambda: MoDo(gamma=0.0), ValueError, "gamma"),
    BadInput("MoDo: rho = -1", lambda: MoDo(rho=-1.0), ValueError, "rho"),
    BadInput("LayerSelection: threshold 2", lambda: LayerSelection(threshold=2.0), ValueError, "threshold"),
    BadInput("LayerSelection: k = 0", lambda: LayerSelection(k=0), ValueError, "k must be"),
    BadInput(
        "LayerSelection: rescore_every 0",
        lambda: LayerSelection(rescore_every=0),
        ValueError,
        "rescore_every",
    ),
    BadInput(
        "LayerSelection: unknown scoring", lambda: LayerSelection(scoring="fast"), ValueError, "scoring"
    ),
    BadInput(
        "Recipe: negative penalty",
        lambda: Recipe([["a", "b"], ["c"]], penalties=[-1.0]),
        ValueError,
        r"penalties\[0\]",
    ),
    BadInput(
        "Recipe: NaN penalty",
        lambda: Recipe([["a", "b"], ["c"]], penalties=[NAN]),
        ValueError,
        r"penalties\[0\]",
    ),
    BadInput(
        "Recipe: schedule turning negative",
        lambda: Recipe([["a"], ["b"]], penalties=[LinearRamp(-1.0, 0.0, 4)]).weights(torch.eye(2, dtype=F64)),
        ValueError,
        r"penalties\[0\] at k=0",
    ),
    BadInput(
        "Recipe: level_weights at k = -1",
        lambda: Recipe([["a"], ["b"]], penalties=[1.0]).level_weights(-1),
        ValueError,
        "k must be",
    ),
    # ---- state dicts (damaged checkpoints)
    BadInput(
        "MoDo state: NaN weights",
        lambda: _modo_state(lam=torch.tensor([NAN, 0.5], dtype=F64)),
        ValueError,
        "lam",
    ),
    BadInput(
        "MoDo state: weights off the simplex",
        lambda: _modo_state(lam=torch.tensor([0.9, 0.9], dtype=F64)),
        ValueError,
        "simplex",
    ),
    BadInput("MoDo state: negative steps", lambda: _modo_state(steps=-1), ValueError, "steps"),
    BadInput("MoDo state: missing key", lambda: MoDo().load_state_dict({"lam": None}), ValueError, "keys"),
    BadInput("MoDo state: not a dict", lambda: MoDo().load_state_dict([0.5, 0.5]), TypeError, "dict"),
    BadInput(
        "PCGrad state: not a generator state",
        lambda: PCGrad().load_state_dict({"generator": torch.zeros(3)}),
        ValueError,
        "generator",
    ),
    BadInput(
        "MGDA state: unexpected keys", lambda: MGDA().load_state_dict({"lam": 1}), ValueError, "stateless"
    ),
    BadInput(
        "Recipe state: negative counter",
        lambda: Recipe([["a", "b"]]).load_state_dict({"counter": -1, "aggregators": [None]}),
        ValueError,
        "counter",
    ),
    BadInput(
        "Recipe state: wrong number of levels",
        lambda: Recipe([["a", "b"]]).load_state_dict({"counter": 0, "aggregators": []}),
        ValueError,
        "aggregators",
    ),
    BadInput(
        "LayerSelection state: NaN scores",
        lambda: LayerSelection().load_state_dict(
            {"steps": 1, "selected": [0], "scores": torch.tensor([NAN])}
        ),
        ValueError,
        "scores",
    ),
    BadInput(
        "LayerSelection state: negative steps",
        lambda: LayerSelection().load_state_dict({"steps": -2, "selected": None, "scores": None}),
        ValueError,
        "steps",
    ),
    # ---- layer scores
    BadInput("layer_scores: NaN", lambda: layer_scores(torch.full((1, 2, 2), NAN)), ValueError, "non-finite"),
    BadInput("layer_scores: wrong shape", lambda: layer_scores(torch.ones(2, 2)), ValueError, "shape"),
    BadInput("select_layers: NaN scores", lambda: select_layers(torch.tensor([NAN, 0.0])), ValueError, "NaN"),
    BadInput("select_layers: k = 0", lambda: select_layers(torch.zeros(3), k=0), ValueError, "k must be"),
    # ---- aggregators on gradient matrices
    BadInput(
        "MGDA: NaN gradient", lambda: MGDA()(torch.tensor([[1.0, NAN], [0.0, 1.0]])), ValueError, "non-finite"
    ),
    BadInput("CAGrad: one objective", lambda: CAGrad()(torch.ones(1, 3)), ValueError, "at least 2"),
    BadInput("PCGrad: a vector", lambda: PCGrad()(torch.ones(3)), ValueError, "matrix"),
    BadInput(
        "MoDo: G2 of another shape",
        lambda: MoDo()(torch.ones(2, 3), torch.ones(2, 4)),
        ValueError,
        "shape of G",
    ),
    BadInput(
        "MGDA: cross-Gramian of another shape",
        lambda: MGDA().weights_from_gramian(Q_OK, torch.eye(3, dtype=F64)),
        ValueError,
        "cross_gramian",
    ),
    BadInput(
        "MGDA: NaN losses",
        lambda: MGDA("loss").weights(torch.eye(2), losses=[1.0, NAN]),
        ValueError,
        "non-finite",
    ),
    # ---- backward
    BadInput("backward: one loss", lambda: _backward(losses=_losses()[2][:1]), ValueError, "at least 2"),
    BadInput(
        "backward: NaN loss",
        lambda: _backward(losses=[_losses()[2][0], _losses()[2][1] * NAN]),
        ValueError,
        "non-finite",
    ),
    BadInput(
        "backward: a loss without graph",
        lambda: _backward(losses=[_losses()[2][0], torch.tensor(1.0, dtype=F64)]),
        ValueError,
        "does not require grad",
    ),
    BadInput("backward: empty shared_params", lambda: _backward(shared_params=[]), ValueError, "empty"),
    BadInput("backward: shared and task overlap", _overlap, ValueError, "both"),
    BadInput(
        "backward: second_losses of another length",
        lambda: _backward(second_losses=_losses()[2][:1]),
        ValueError,
        "second_losses",
    ),
    BadInput("backward: losses not a list", lambda: _backward(losses=_losses()[2][0]), TypeError, "losses"),
    BadInput(
        "backward: dict names unknown to the recipe",
        lambda: _backward(
            losses={"x": _losses()[2][0], "y": _losses()[2][1]}, aggregator=Recipe([["a", "b"]])
        ),
        ValueError,
        "objectives",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rejects_bad_input(case: BadInput) -> None:
    assert_rejects(case)


def test_valid_inputs_next_to_the_bad_ones_are_accepted() -> None:
    """The rows above fail for the stated reason: the same calls with valid values succeed."""
    for fn in (mgda_weights, min_norm_weights, cagrad_weights, pcgrad_weights):
        w = fn(Q_OK)
        assert w.shape == (2,) and bool(torch.isfinite(w).all())
    # a Gramian rounded in float32 from real gradients passes the PSD check (tolerance ≫ rounding)
    G = torch.randn(4, 10_000, generator=torch.Generator().manual_seed(0))
    G = torch.cat([G, G[:1] + 1e-4 * G[1:2]])  # nearly dependent rows: a smallest eigenvalue ≈ 0
    assert bool(torch.isfinite(mgda_weights(G @ G.T)).all())
    assert modo_step(LAM, Q_OK, gamma=0.1, rho=0.0).shape == (2,)
    assert project_simplex(torch.tensor([3.0, -1.0])).tolist() == [1.0, 0.0]
    rec = Recipe([["a"], ["b"]], penalties=[LinearRamp(0.0, 1.0, 4)])
    assert rec.level_weights(0) == [1.0, 0.0]
    MoDo().load_state_dict({"lam": [0.25, 0.75], "steps": 2})
    _backward()
