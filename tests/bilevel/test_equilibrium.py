"""bilevel.Equilibrium and its functional core: reductions (C19), exactness, state, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bilevel
from bilevel.equilibrium import equilibrium_direction, source_direction
from tests.bilevel._asserts import BadInput, assert_params_unchanged, assert_rejects, snapshot

D = 4
F64 = torch.float64


def _spd(seed: int, low: float = 0.5, high: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=F64))
    return q @ torch.diag(torch.linspace(low, high, D, dtype=F64)) @ q.T


def _sources(m: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(_spd(seed + i), torch.randn(D, generator=g, dtype=F64) * 2) for i in range(m)]


def _closures(w: torch.Tensor, srcs):
    return [lambda a=a, c=c: 0.5 * (w - c) @ a @ (w - c) for a, c in srcs]


def _fclosures(srcs):
    return [lambda v, a=a, c=c: 0.5 * (v[0] - c) @ a @ (v[0] - c) for a, c in srcs]


def _nonquad(srcs):
    """Non-quadratic sources (so Hessians vary along the path) as functions of a vector."""
    return [lambda x, a=a, c=c: 0.5 * (x - c) @ a @ (x - c) + 0.1 * torch.cos(x).sum() ** 2 for a, c in srcs]


def _param(seed: int = 9) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.randn(D, generator=torch.Generator().manual_seed(seed), dtype=F64))


def test_k0_is_averaged_loss_gradient() -> None:
    """C19: K = 0 gives (1/M) Σ ∇ℓ_i(θ)."""
    w, srcs = _param(), _sources()
    r = equilibrium_direction([w], _closures(w, srcs), inner_lr=0.3, inner_steps=0)
    expected = sum(a @ (w.detach() - c) for a, c in srcs) / len(srcs)
    torch.testing.assert_close(r.direction[0], expected, rtol=0, atol=1e-14)
    assert r.loss_before == r.loss_after


def test_k1_first_order_closed_form() -> None:
    """K = 1 first order: (1/M) Σ ∇ℓ_i(θ - β∇ℓ_i(θ)) — note the 1/M."""
    w, srcs, beta = _param(), _sources(), 0.2
    r = equilibrium_direction([w], _closures(w, srcs), inner_lr=beta, inner_steps=1)
    th = w.detach()
    expected = 0
    for a, c in srcs:
        phi = th - beta * a @ (th - c)
        expected = expected + a @ (phi - c)
    torch.testing.assert_close(r.direction[0], expected / len(srcs), rtol=0, atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), beta=st.floats(1e-4, 1e-2))
def test_k1_small_beta_deviation_from_averaged_gradient(seed: int, beta: float) -> None:
    """C19: K = 1 first order differs from CSSL by -β(1/M)Σ∇²ℓ_i∇ℓ_i (exactly, for quadratics)."""
    w, srcs = _param(seed), _sources(2, seed)
    d1 = equilibrium_direction([w], _closures(w, srcs), inner_lr=beta, inner_steps=1).direction[0]
    d0 = equilibrium_direction([w], _closures(w, srcs), inner_lr=beta, inner_steps=0).direction[0]
    th = w.detach()
    corr = -beta * sum(a @ a @ (th - c) for a, c in srcs) / 2
    torch.testing.assert_close(d1 - d0, corr, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_second_order_matches_exact_meta_gradient(steps: int) -> None:
    """Π_k (I - β∇²ℓ_i(φ^k)) ∇ℓ_i(φ^K), averaged over sources, to float64 precision."""
    w, srcs, beta = _param(), _sources(), 0.15
    fns = _nonquad(srcs)
    r = equilibrium_direction(
        [w],
        [lambda v, f=f: f(v[0]) for f in fns],
        inner_lr=beta,
        inner_steps=steps,
        mode="second_order",
        functional=True,
    )
    th = w.detach()
    expected = torch.zeros(D, dtype=F64)
    for f in fns:
        phis = [th]
        for _ in range(steps):
            phis.append(phis[-1] - beta * torch.func.grad(f)(phis[-1]))
        v = torch.func.grad(f)(phis[-1])
        for phi in reversed(phis[:-1]):
            v = (torch.eye(D, dtype=F64) - beta * torch.func.hessian(f)(phi)) @ v
        expected += v
    torch.testing.assert_close(r.direction[0], expected / len(fns), rtol=0, atol=1e-13)


def test_reptile_is_scaled_mean_of_adapted_weights() -> None:
    """reptile: d = (θ - mean_i φ_i^K)/(βK)."""
    w, srcs, beta, k = _param(), _sources(), 0.1, 3
    fns = _nonquad(srcs)
    r = equilibrium_direction(
        [w], [lambda f=f: f(w) for f in fns], inner_lr=beta, inner_steps=k, mode="reptile"
    )
    th = w.detach()
    phis = []
    for f in fns:
        p = th
        for _ in range(k):
            p = p - beta * torch.func.grad(f)(p)
        phis.append(p)
    expected = (th - torch.stack(phis).mean(0)) / (beta * k)
    torch.testing.assert_close(r.direction[0], expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("mode", ["first_order", "reptile"])
def test_functional_and_swap_closures_agree_bitwise_and_params_are_restored(mode: str) -> None:
    lin = torch.nn.Linear(3, 2).double()
    params = list(lin.parameters())
    before = [p.detach().clone() for p in params]
    xs = [torch.randn(5, 3, dtype=F64) for _ in range(3)]

    def swap_closure(x):
        return lambda: torch.tanh(lin(x)).pow(2).sum()

    def func_closure(x):
        return lambda v: (
            torch.tanh(torch.func.functional_call(lin, {"weight": v[0], "bias": v[1]}, (x,))).pow(2).sum()
        )

    a = equilibrium_direction(params, [swap_closure(x) for x in xs], inner_lr=0.3, inner_steps=2, mode=mode)
    for p, b in zip(params, before):
        assert torch.equal(p, b) and p.grad is None
    b_ = equilibrium_direction(
        params, [func_closure(x) for x in xs], inner_lr=0.3, inner_steps=2, mode=mode, functional=True
    )
    for x, y in zip(a.direction, b_.direction):
        assert torch.equal(x, y)
    assert a.loss_before == b_.loss_before and a.loss_after == b_.loss_after


def test_params_restored_even_if_a_closure_raises() -> None:
    w = _param()
    before = w.detach().clone()
    calls = []

    def bad():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return (w**2).sum()

    with pytest.raises(RuntimeError, match="boom"):
        source_direction([w], bad, inner_lr=0.5, inner_steps=3)
    assert torch.equal(w.detach(), before)


def test_global_weight_adds_averaged_gradient() -> None:
    w, srcs = _param(), _sources()
    d = equilibrium_direction([w], _closures(w, srcs), inner_lr=0.2, inner_steps=2).direction[0]
    dg = equilibrium_direction(
        [w], _closures(w, srcs), inner_lr=0.2, inner_steps=2, global_weight=0.5
    ).direction[0]
    avg = equilibrium_direction([w], _closures(w, srcs), inner_lr=0.2, inner_steps=0).direction[0]
    torch.testing.assert_close(dg, d + 0.5 * avg, rtol=0, atol=1e-14)


def test_optimizer_step_is_plain_sgd_and_reports_losses() -> None:
    w, srcs = _param(), _sources()
    th = w.detach().clone()
    d = equilibrium_direction([w], _closures(w, srcs), inner_lr=0.2, inner_steps=2)
    opt = bilevel.Equilibrium([w], lr=0.1, inner_lr=0.2, inner_steps=2)
    stats = opt.step(source_losses=_closures(w, srcs))
    # SGD updates with one fused multiply-add on AVX2/AVX-512 kernels (one rounding) where the formula
    # rounds twice: the same operations agree bit for bit, the formula to a few ulp
    assert torch.equal(w.detach(), th.clone().add_(d.direction[0], alpha=-0.1))
    torch.testing.assert_close(w.detach(), th - 0.1 * d.direction[0], rtol=0, atol=1e-15)
    assert stats.sources == [0, 1, 2] and stats.step == 1
    assert stats.loss_before == d.loss_before and stats.loss_after == d.loss_after
    expected_before = [float(0.5 * (th - c) @ a @ (th - c)) for a, c in srcs]
    assert stats.loss_before == pytest.approx(expected_before, rel=1e-14)
    assert all(a < b for a, b in zip(stats.loss_after, stats.loss_before))  # K descent steps, small β
    assert stats.mean_after < stats.mean_before


def test_named_outer_optimizer_matches_torch_optim_on_the_direction() -> None:
    w, w2, srcs = _param(), _param(), _sources()
    opt = bilevel.Equilibrium(
        [w],
        lr=0.05,
        inner_lr=0.2,
        inner_steps=1,
        optimizer=torch.optim.Adam,
        optimizer_kwargs={"betas": (0.8, 0.9)},
    )
    ref = torch.optim.Adam([w2], lr=0.05, betas=(0.8, 0.9))
    for _ in range(3):
        opt.step(source_losses=_closures(w, srcs))
        w2.grad = equilibrium_direction([w2], _closures(w2, srcs), inner_lr=0.2, inner_steps=1).direction[0]
        ref.step()
    assert torch.equal(w.detach(), w2.detach())


def test_lr_scheduler_drives_the_outer_step() -> None:
    w, srcs = _param(), _sources()
    opt = bilevel.Equilibrium([w], lr=0.1, inner_lr=0.2, inner_steps=1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.0)
    opt.step(source_losses=_closures(w, srcs))
    sched.step()
    th = w.detach().clone()
    opt.step(source_losses=_closures(w, srcs))
    assert torch.equal(w.detach(), th)


def _run(opt, w, srcs, steps):
    return [opt.step(source_losses=_closures(w, srcs)).sources for _ in range(steps)]


def test_source_sampling_is_seeded_and_state_dict_resumes_bitwise() -> None:
    srcs = _sources(5)

    def make(w):
        return bilevel.Equilibrium(
            [w],
            lr=0.05,
            inner_lr=0.1,
            inner_steps=2,
            sources_per_step=2,
            seed=3,
            optimizer=torch.optim.Adam,
        )

    wa = _param()
    a = make(wa)
    picked = _run(a, wa, srcs, 6)
    assert all(len(s) == 2 for s in picked) and len({tuple(s) for s in picked}) > 1

    wb = _param()
    b = make(wb)
    first = _run(b, wb, srcs, 3)
    sd = b.state_dict()
    wc = torch.nn.Parameter(wb.detach().clone())
    c = make(wc)
    c.load_state_dict(sd)
    rest = _run(c, wc, srcs, 3)
    assert first + rest == picked
    assert torch.equal(wc.detach(), wa.detach())
    assert c.state_dict()["steps"] == 6


def test_load_state_dict_rejects_mismatched_configuration() -> None:
    w = _param()
    sd = bilevel.Equilibrium([w], lr=0.1, inner_lr=0.1, inner_steps=2).state_dict()
    with pytest.raises(ValueError, match="configuration"):
        bilevel.Equilibrium([w], lr=0.1, inner_lr=0.1, inner_steps=3).load_state_dict(sd)
    with pytest.raises(ValueError, match="missing"):
        bilevel.Equilibrium([w], lr=0.1, inner_lr=0.1, inner_steps=3).load_state_dict({})


class _InfGrad(torch.autograd.Function):
    """A finite loss (0) whose gradient is +inf everywhere."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.sum() * 0.0

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return torch.full_like(x, float("inf"))


_W = _param()
_OK = [lambda: (_W**2).sum()]


def _eq(**kw):
    return bilevel.Equilibrium([_W], **{"lr": 0.1, "inner_lr": 0.1, "inner_steps": 1, **kw})


def _step(*losses, **kw):
    return _eq(**kw).step(source_losses=list(losses))


BAD_INPUT = [
    BadInput("negative inner_steps", lambda: _eq(inner_steps=-1), ValueError, "inner_steps"),
    BadInput("reptile with K=0", lambda: _eq(inner_steps=0, mode="reptile"), ValueError, "inner_steps"),
    BadInput("unknown mode", lambda: _eq(mode="exact"), ValueError, "mode"),
    BadInput("second order without functional", lambda: _eq(mode="second_order"), ValueError, "functional"),
    BadInput(
        "tensor without grad",
        lambda: bilevel.Equilibrium([torch.zeros(2)], lr=0.1, inner_lr=0.1),
        ValueError,
        "does not require grad",
    ),
    BadInput("empty params", lambda: bilevel.Equilibrium([], lr=0.1), ValueError, "empty"),
    BadInput("negative lr", lambda: _eq(lr=-1.0), ValueError, "lr"),
    BadInput("nan lr", lambda: _eq(lr=float("nan")), ValueError, "lr"),
    BadInput("negative inner_lr", lambda: _eq(inner_lr=-0.1), ValueError, "inner_lr"),
    BadInput("not an optimizer class", lambda: _eq(optimizer=dict), TypeError, "optimizer"),
    BadInput(
        "an optimizer instance", lambda: _eq(optimizer=torch.optim.SGD([_param()])), TypeError, "instance"
    ),
    BadInput("sources_per_step 0", lambda: _eq(sources_per_step=0), ValueError, "sources_per_step"),
    BadInput("max_grad_norm 0", lambda: _eq(max_grad_norm=0.0), ValueError, "max_grad_norm"),
    BadInput(
        "negative group lr", lambda: bilevel.Equilibrium([{"params": [_W], "lr": -0.1}]), ValueError, "lr"
    ),
    BadInput(
        "negative group inner_lr",
        lambda: bilevel.Equilibrium([{"params": [_W], "inner_lr": -0.1}]),
        ValueError,
        "inner_lr",
    ),
    BadInput("empty source_losses", lambda: _step(), ValueError, "source_losses is empty"),
    BadInput("vector loss", lambda: _step(*_OK, lambda: _W * 2), ValueError, r"source_losses\[1\].*scalar"),
    BadInput(
        "infinite loss", lambda: _step(lambda: (_W**2).sum() * float("inf")), ValueError, r"\[0\].*non-finite"
    ),
    BadInput("float loss", lambda: _step(lambda: 1.0), TypeError, "Tensor"),
    BadInput("loss not callable", lambda: _step(1.0), TypeError, "callable"),
    BadInput("one closure", lambda: _eq().step(source_losses=_OK[0]), TypeError, "sequence"),
    BadInput(
        "single closure positional", lambda: _eq().step(_OK[0], source_losses=_OK), TypeError, "closure"
    ),
    BadInput(
        "loss without the parameters",
        lambda: _step(lambda: torch.ones((), requires_grad=True) * 2.0),
        ValueError,
        "does not depend on the parameters",
    ),
    BadInput(
        "loss without the parameters, K=0",
        lambda: _step(lambda: torch.ones((), requires_grad=True) * 2.0, inner_steps=0),
        ValueError,
        "does not depend on the parameters",
    ),
    BadInput(
        "infinite gradient, K=0",
        lambda: _step(lambda: (_W**2).sum() + _InfGrad.apply(_W), inner_steps=0),
        ValueError,
        "direction is not finite",
    ),
    BadInput(
        "non-positive batch_size",
        lambda: _eq().step(source_losses=_OK, batch_size=0),
        ValueError,
        "batch_size",
    ),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=lambda c: c.name)
def test_bad_input_gets_clear_errors_and_leaves_the_parameters(case: BadInput) -> None:
    before = snapshot([_W])
    assert_rejects(case)
    assert_params_unchanged([_W], before)


def test_param_groups_with_their_own_rates_and_add_param_group() -> None:
    w1, w2, srcs = _param(1), _param(2), _sources()
    th1, th2 = w1.detach().clone(), w2.detach().clone()
    opt = bilevel.Equilibrium([{"params": [w1], "inner_lr": 0.0}], lr=0.1, inner_lr=0.2, inner_steps=2)
    opt.add_param_group({"params": [w2], "lr": 0.05})
    assert opt.param_groups[1]["inner_lr"] == 0.2 and opt.param_groups[1]["lr"] == 0.05
    closures = [
        lambda a=a, c=c: 0.5 * (w1 - c) @ a @ (w1 - c) + 0.5 * (w2 - c) @ a @ (w2 - c) for a, c in srcs
    ]
    opt.step(source_losses=closures)
    # w1 has inner_lr 0, so its direction is the averaged gradient at θ; w2 moved with lr 0.05
    avg1 = sum(a @ (th1 - c) for a, c in srcs) / len(srcs)
    torch.testing.assert_close(w1.detach(), th1 - 0.1 * avg1, rtol=0, atol=1e-14)
    assert not torch.equal(w2.detach(), th2)
    with pytest.raises(ValueError, match="already optimized"):
        opt.add_param_group({"params": [w1]})


def test_errors_name_the_original_source_index_when_sampling() -> None:
    w = _param()
    closures = [lambda: (w**2).sum() for _ in range(4)]
    closures[2] = lambda: (w**2).sum() * float("nan")
    opt = bilevel.Equilibrium([w], lr=0.1, inner_lr=0.1, inner_steps=1, sources_per_step=4, seed=0)
    with pytest.raises(ValueError, match=r"source_losses\[2\]"):
        opt.step(source_losses=closures)
