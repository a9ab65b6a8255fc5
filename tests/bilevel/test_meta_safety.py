"""bilevel.meta: losses that ignore the given parameters, NaN task data, positional arguments, and the
bad-input table shared by every entry point of the package."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from bilevel.meta import adapt, adapt_batched, imaml_grad, imaml_grad_batched, learnable_lrs, reptile_grad
from tests.bilevel._asserts import NON_FINITE, BadInput, assert_rejects

NAN = float("nan")


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).double()


def _data(seed: int, n: int = 10, tasks: int | None = None):
    g = torch.Generator().manual_seed(seed)
    lead = () if tasks is None else (tasks,)
    return (
        torch.randn(*lead, n, 3, generator=g, dtype=torch.float64),
        torch.randn(*lead, n, 2, generator=g, dtype=torch.float64),
    )


def _loss(model, x, y):
    return lambda p: F.mse_loss(functional_call(model, p, (x,)), y)


def _batched(model):
    return lambda p, d: F.mse_loss(functional_call(model, p, (d[0],)), d[1])


@pytest.mark.parametrize("steps", [2, 5])
def test_a_loss_that_ignores_the_given_parameters_is_rejected(steps: int) -> None:
    """``model(x)`` instead of ``functional_call(model, params, x)``: after the first step the adapted
    values are new tensors the loss never sees, so the old code silently stopped adapting."""
    model = _mlp()
    xs, ys = _data(1)
    with pytest.raises(ValueError, match="loss_fn.*does not depend on the parameters"):
        adapt(model, lambda p: F.mse_loss(model(xs), ys), 0.1, steps)


def test_a_model_call_loss_with_one_step_is_still_exact() -> None:
    """With K = 1 the step is taken at θ itself, where ``model(x)`` is the same function: not an error,
    and equal to the functional form (same operations, so bit-exact)."""
    model = _mlp()
    xs, ys = _data(1)
    a = adapt(model, lambda p: F.mse_loss(model(xs), ys), 0.1, 1)
    b = adapt(model, _loss(model, xs, ys), 0.1, 1)
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=0, atol=0)


def test_a_loss_that_ignores_params_given_to_start_from_is_rejected_at_once() -> None:
    model = _mlp()
    xs, ys = _data(1)
    start = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="does not depend"):
        adapt(model, lambda p: F.mse_loss(model(xs), ys), 0.1, 1, params=start)


def test_inner_lr_and_inner_steps_may_be_positional() -> None:
    """``adapt(model, loss, 0.01, 1)`` as a user types it; the same call path as the keywords (bit-exact)."""
    model = _mlp()
    xs, ys = _data(1)
    pos = adapt(model, _loss(model, xs, ys), 0.01, 3)
    kw = adapt(model, _loss(model, xs, ys), inner_lr=0.01, inner_steps=3)
    for n in pos:
        torch.testing.assert_close(pos[n], kw[n], rtol=0, atol=0)
    xb, yb = _data(2, tasks=3)
    pos_b = adapt_batched(model, _batched(model), (xb, yb), 0.01, 2)
    kw_b = adapt_batched(model, _batched(model), (xb, yb), inner_lr=0.01, inner_steps=2)
    for n in pos_b:
        torch.testing.assert_close(pos_b[n], kw_b[n], rtol=0, atol=0)
    d1 = reptile_grad(model, [_loss(model, xs, ys)], 0.01, 2, accumulate=False)
    d2 = reptile_grad(model, [_loss(model, xs, ys)], inner_lr=0.01, inner_steps=2, accumulate=False)
    for n in d1:
        torch.testing.assert_close(d1[n], d2[n], rtol=0, atol=0)


def test_scalar_step_fold_equals_the_textbook_update() -> None:
    """The scalar step is folded into the loss (∇(-βL) = -β∇L); against φ ← φ - β∇L written out with
    torch.func (other operations: a stated float64 tolerance), including the second-order meta-gradient."""
    model = _mlp()
    xs, ys = _data(1)
    xq, yq = _data(2)
    beta, k = 0.3, 4
    adapted = adapt(model, _loss(model, xs, ys), beta, k)
    _loss(model, xq, yq)(adapted).backward()

    def outer(theta):
        p = dict(theta)
        for _ in range(k):
            g = torch.func.grad(_loss(model, xs, ys))(p)
            p = {n: p[n] - beta * g[n] for n in p}
        return _loss(model, xq, yq)(p), p

    theta = {n: p.detach() for n, p in model.named_parameters()}
    ref, phi = torch.func.grad(outer, has_aux=True)(theta)
    for n, p in model.named_parameters():
        torch.testing.assert_close(adapted[n].detach(), phi[n], rtol=0, atol=1e-13)
        torch.testing.assert_close(p.grad, ref[n], rtol=0, atol=1e-12)


@pytest.mark.parametrize("value", NON_FINITE)
def test_adapt_batched_rejects_non_finite_task_data(value: float) -> None:
    model = _mlp()
    xb, yb = _data(3, tasks=4)
    yb[2, 0, 1] = value
    with pytest.raises(ValueError, match=r"non-finite values in data for tasks \[2\]"):
        adapt_batched(model, _batched(model), (xb, yb), 0.1, 1)


def test_adapt_batched_names_the_tasks_whose_inner_descent_diverges() -> None:
    """Task 1's curvature 1e3 makes steps of 0.1 expand by 99× each: its adapted values overflow."""
    model = nn.Linear(4, 1, bias=False).double()
    scale = torch.tensor([1.0, 1e3], dtype=torch.float64)

    def loss(p, s):
        return 0.5 * s * (p["weight"] ** 2).sum() + p["weight"].sum()

    with pytest.raises(ValueError, match=r"adapted parameters.*tasks \[1\]"):
        adapt_batched(model, loss, scale, 0.1, 200)
    ok = adapt_batched(model, loss, scale[:1], 0.1, 200)  # the stable task alone: w → -1/s
    torch.testing.assert_close(
        ok["weight"][0], torch.full((1, 4), -1.0, dtype=torch.float64), rtol=0, atol=1e-8
    )


MODEL = _mlp()
XS, YS = _data(1)
XB, YB = _data(2, tasks=3)
GOOD = _loss(MODEL, XS, YS)
GOOD_B = _batched(MODEL)
FROZEN = _mlp()
FROZEN[0].weight.requires_grad_(False)
IM = dict(reg=1.0, inner_lr=0.05, inner_steps=2)

CASES = [
    BadInput("adapt inner_steps<0", lambda: adapt(MODEL, GOOD, 0.1, -1), ValueError, "inner_steps"),
    BadInput("adapt inner_steps float", lambda: adapt(MODEL, GOOD, 0.1, 1.0), TypeError, "inner_steps"),  # type: ignore[arg-type]
    BadInput("adapt inner_lr<0", lambda: adapt(MODEL, GOOD, -0.1, 1), ValueError, "inner_lr"),
    *[
        BadInput(f"adapt inner_lr={v}", lambda v=v: adapt(MODEL, GOOD, v, 1), ValueError, "inner_lr")
        for v in NON_FINITE
    ],
    BadInput("adapt unknown names", lambda: adapt(MODEL, GOOD, 0.1, 1, names=["x"]), ValueError, "names"),
    BadInput("adapt empty names", lambda: adapt(MODEL, GOOD, 0.1, 1, names=[]), ValueError, "names"),
    BadInput("adapt str names", lambda: adapt(MODEL, GOOD, 0.1, 1, names="0.weight"), TypeError, "names"),
    BadInput(
        "adapt non-scalar loss",
        lambda: adapt(MODEL, lambda p: functional_call(MODEL, p, (XS,)), 0.1, 1),
        ValueError,
        "loss_fn.*scalar",
    ),
    BadInput(
        "adapt NaN loss",
        lambda: adapt(MODEL, lambda p: GOOD(p) * NAN, 0.1, 1),
        ValueError,
        "loss_fn.*non-finite",
    ),
    BadInput(
        "adapt NaN data",
        lambda: adapt(MODEL, _loss(MODEL, XS * NAN, YS), 0.1, 1),
        ValueError,
        "loss_fn.*non-finite",
    ),
    BadInput(
        "adapt constant loss",
        lambda: adapt(MODEL, lambda p: torch.tensor(1.0), 0.1, 1),
        ValueError,
        "loss_fn.*does not depend",
    ),
    BadInput(
        "adapt model-call loss",
        lambda: adapt(MODEL, lambda p: F.mse_loss(MODEL(XS), YS), 0.1, 3),
        ValueError,
        "loss_fn.*does not depend",
    ),
    BadInput(
        "adapt lr shape",
        lambda: adapt(MODEL, GOOD, {n: torch.ones(7) for n, _ in MODEL.named_parameters()}, 1),
        ValueError,
        "inner_lr.*broadcast",
    ),
    BadInput(
        "adapt lr missing",
        lambda: adapt(MODEL, GOOD, {"0.weight": torch.ones(())}, 1),
        ValueError,
        "inner_lr",
    ),
    BadInput(
        "adapt frozen", lambda: adapt(FROZEN, _loss(FROZEN, XS, YS), 0.1, 1), ValueError, "require grad"
    ),
    BadInput("adapt no params", lambda: adapt(nn.ReLU(), GOOD, 0.1, 1), ValueError, "no parameters"),
    BadInput(
        "adapt params unknown",
        lambda: adapt(MODEL, GOOD, 0.1, 1, params={"x": torch.zeros(1)}),
        ValueError,
        "params",
    ),
    BadInput(
        "batched scalar data",
        lambda: adapt_batched(MODEL, GOOD_B, torch.tensor(1.0), 0.1, 1),
        ValueError,
        "data",
    ),
    BadInput(
        "batched ragged data", lambda: adapt_batched(MODEL, GOOD_B, (XB, YB[:2]), 0.1, 1), ValueError, "data"
    ),
    BadInput(
        "batched NaN data", lambda: adapt_batched(MODEL, GOOD_B, (XB * NAN, YB), 0.1, 1), ValueError, "data"
    ),
    BadInput(
        "batched inner_lr<0", lambda: adapt_batched(MODEL, GOOD_B, (XB, YB), -1.0, 1), ValueError, "inner_lr"
    ),
    BadInput(
        "batched inner_steps<0",
        lambda: adapt_batched(MODEL, GOOD_B, (XB, YB), 0.1, -1),
        ValueError,
        "inner_steps",
    ),
    BadInput("reptile inner_steps=0", lambda: reptile_grad(MODEL, [GOOD], 0.1, 0), ValueError, "inner_steps"),
    BadInput("reptile no tasks", lambda: reptile_grad(MODEL, [], 0.1, 1), ValueError, "task_losses"),
    BadInput(
        "reptile NaN loss",
        lambda: reptile_grad(MODEL, [lambda p: GOOD(p) * NAN], 0.1, 1),
        ValueError,
        "non-finite",
    ),
    BadInput(
        "imaml reg=0",
        lambda: imaml_grad(MODEL, GOOD, GOOD, reg=0.0, inner_lr=0.1, inner_steps=1),
        ValueError,
        "reg",
    ),
    BadInput(
        "imaml inner_lr=nan",
        lambda: imaml_grad(MODEL, GOOD, GOOD, reg=1.0, inner_lr=NAN, inner_steps=1),
        ValueError,
        "inner_lr",
    ),
    BadInput(
        "imaml NaN train loss",
        lambda: imaml_grad(MODEL, lambda p: GOOD(p) * NAN, GOOD, **IM),
        ValueError,
        "train_loss",
    ),
    BadInput(
        "imaml NaN val loss",
        lambda: imaml_grad(MODEL, GOOD, lambda p: GOOD(p) * NAN, **IM),
        ValueError,
        "val_loss",
    ),
    BadInput(
        "imaml indefinite option",
        lambda: imaml_grad(MODEL, GOOD, GOOD, indefinite="x", **IM),
        ValueError,
        "indefinite",
    ),
    BadInput(
        "imaml batched task mismatch",
        lambda: imaml_grad_batched(MODEL, GOOD_B, (XB, YB), (XB[:2], YB[:2]), **IM),
        ValueError,
        "tasks",
    ),
    BadInput(
        "imaml batched NaN support",
        lambda: imaml_grad_batched(MODEL, GOOD_B, (XB * NAN, YB), (XB, YB), **IM),
        ValueError,
        "in support",
    ),
    BadInput(
        "imaml batched max_norm=0",
        lambda: imaml_grad_batched(MODEL, GOOD_B, (XB, YB), (XB, YB), max_norm=0.0, **IM),
        ValueError,
        "max_norm",
    ),
    BadInput("learnable_lrs init<0", lambda: learnable_lrs(MODEL, -1.0), ValueError, "init"),
    BadInput("learnable_lrs init=nan", lambda: learnable_lrs(MODEL, NAN), ValueError, "init"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_meta_rejects_bad_input(case: BadInput) -> None:
    assert_rejects(case)


def _ignores_params(model: nn.Module):
    """A loss written without functional_call: it evaluates the module's own parameters, so
    torch.func.grad with respect to the ``params`` it is given would be zero."""

    def loss(p, d):
        return model(d[0]).pow(2).mean()

    return loss


@pytest.mark.parametrize("entry", ["adapt_batched", "imaml_adapt_batched", "imaml_grad_batched"])
def test_batched_entry_points_reject_a_loss_that_ignores_the_parameters(entry: str) -> None:
    from bilevel.meta import imaml_adapt_batched

    model = _mlp()
    xb, yb = _data(3, tasks=2)
    call = {
        "adapt_batched": lambda f: adapt_batched(model, f, (xb, yb), 0.1, 1),
        "imaml_adapt_batched": lambda f: imaml_adapt_batched(
            model, f, (xb, yb), reg=1.0, inner_lr=0.1, inner_steps=1
        ),
        "imaml_grad_batched": lambda f: imaml_grad_batched(
            model, f, (xb, yb), (xb, yb), reg=1.0, inner_lr=0.1, inner_steps=1
        ),
    }[entry]
    with pytest.raises(ValueError, match="does not depend on the parameters"):
        call(_ignores_params(model))
    assert all(p.grad is None for p in model.parameters())
    call(_batched(model))  # the same call with a functional loss runs
