"""bilevel.meta.adapt / adapt_batched / learnable_lrs: MAML, FOMAML, ANIL and Meta-SGD meta-gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from bilevel.meta import adapt, adapt_batched, learnable_lrs


@pytest.fixture(autouse=True)
def _float64():
    """Exactness claims are made in float64; the default dtype is restored afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).double()


def _data(seed: int, n: int = 10):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=torch.float64), torch.randn(
        n, 2, generator=g, dtype=torch.float64
    )


def _loss(model, x, y):
    return lambda p: F.mse_loss(functional_call(model, p, (x,)), y)


def _meta_grad_reference(model, xs, ys, xq, yq, lr, steps, first_order=False):
    """Independent reference: torch.func.grad of the whole inner loop, built with torch.func.grad."""
    names = [n for n, _ in model.named_parameters()]

    def inner_loss(p):
        return F.mse_loss(functional_call(model, p, (xs,)), ys)

    def outer(theta):
        p = dict(theta)
        for _ in range(steps):
            g = torch.func.grad(inner_loss)(p)
            if first_order:
                g = {k: v.detach() for k, v in g.items()}
            p = {k: p[k] - lr * g[k] for k in names}
        return F.mse_loss(functional_call(model, p, (xq,)), yq)

    theta = {n: p.detach() for n, p in model.named_parameters()}
    return torch.func.grad(outer)(theta)


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_maml_meta_gradient_matches_torch_func_reference(steps: int) -> None:
    model = _mlp()
    xs, ys = _data(1)
    xq, yq = _data(2)
    adapted = adapt(model, _loss(model, xs, ys), inner_lr=0.3, inner_steps=steps)
    _loss(model, xq, yq)(adapted).backward()
    ref = _meta_grad_reference(model, xs, ys, xq, yq, 0.3, steps)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=0, atol=1e-12)


def test_maml_one_step_equals_hessian_closed_form() -> None:
    """K = 1: d/dθ L_val(θ - β∇L_tr(θ)) = (I - β∇²L_tr(θ)) ∇L_val(φ) (Finn et al. 2017)."""
    w = nn.Linear(4, 1, bias=False).double()
    x, y = torch.randn(12, 4), torch.randn(12, 1)
    xq, yq = torch.randn(7, 4), torch.randn(7, 1)

    def tr(v):
        return torch.tanh(x @ v.reshape(4, 1) - y).pow(2).mean()

    def val(v):
        return (xq @ v.reshape(4, 1) - yq).pow(2).mean()

    beta = 0.2
    adapted = adapt(w, lambda p: tr(p["weight"]), inner_lr=beta, inner_steps=1)
    val(adapted["weight"]).backward()
    theta = w.weight.detach().reshape(-1)
    h = torch.func.hessian(tr)(theta)
    phi = theta - beta * torch.func.grad(tr)(theta)
    expected = (torch.eye(4) - beta * h) @ torch.func.grad(val)(phi)
    torch.testing.assert_close(w.weight.grad.reshape(-1), expected, rtol=0, atol=1e-13)


def test_first_order_gives_query_gradient_at_adapted_weights() -> None:
    model = _mlp()
    xs, ys = _data(1)
    xq, yq = _data(2)
    adapted = adapt(model, _loss(model, xs, ys), inner_lr=0.3, inner_steps=3, first_order=True)
    _loss(model, xq, yq)(adapted).backward()
    at = {k: v.detach().requires_grad_(True) for k, v in adapted.items()}
    expected = torch.autograd.grad(_loss(model, xq, yq)(at), list(at.values()))
    # bit-exact: the same forward values and backward kernels (the detached inner steps pass the
    # query gradient through an addition unchanged), a path against itself
    for (_, p), e in zip(model.named_parameters(), expected):
        torch.testing.assert_close(p.grad, e, rtol=0, atol=0)
    ref = _meta_grad_reference(model, xs, ys, xq, yq, 0.3, 3, first_order=True)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=0, atol=1e-12)


def test_adapt_leaves_model_untouched_and_grad_empty() -> None:
    model = _mlp()
    before = [p.detach().clone() for p in model.parameters()]
    xs, ys = _data(1)
    adapt(model, _loss(model, xs, ys), inner_lr=0.5, inner_steps=4)
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b) and p.grad is None  # untouched: bit-exact by construction


def test_anil_adapts_only_the_head_and_body_still_gets_the_outer_gradient() -> None:
    model = _mlp()
    xs, ys = _data(1)
    xq, yq = _data(2)
    head = ["2.weight", "2.bias"]
    adapted = adapt(model, _loss(model, xs, ys), inner_lr=0.3, inner_steps=2, names=head)
    for n, p in model.named_parameters():
        assert (adapted[n] is p) == (n not in head)
    _loss(model, xq, yq)(adapted).backward()

    # reference: the same loop with torch.func, only the head moves
    def outer(theta):
        p = dict(theta)
        for _ in range(2):
            g = torch.func.grad(lambda q: _loss(model, xs, ys)(q))(p)
            p = {k: (p[k] - 0.3 * g[k]) if k in head else p[k] for k in p}
        return _loss(model, xq, yq)(p)

    ref = torch.func.grad(outer)({n: p.detach() for n, p in model.named_parameters()})
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=0, atol=1e-12)
        assert p.grad.abs().sum() > 0


def test_meta_sgd_learnable_rates_get_their_closed_form_gradient() -> None:
    """K = 1: ∂/∂α L_val(θ - α∘g) = -∇L_val(φ) ∘ g with g = ∇L_tr(θ) (Li et al. 2017)."""
    model = _mlp()
    xs, ys = _data(1)
    xq, yq = _data(2)
    lrs = learnable_lrs(model, 0.1)
    assert set(dict(lrs.named_parameters())) == {"0__weight", "0__bias", "2__weight", "2__bias"}
    adapted = adapt(model, _loss(model, xs, ys), inner_lr=lrs, inner_steps=1)
    _loss(model, xq, yq)(adapted).backward()
    theta = {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}
    g = torch.autograd.grad(_loss(model, xs, ys)(theta), list(theta.values()))
    phi = {n: (t - 0.1 * gi).detach().requires_grad_(True) for (n, t), gi in zip(theta.items(), g)}
    gv = torch.autograd.grad(_loss(model, xq, yq)(phi), list(phi.values()))
    for n, gi, gvi in zip(theta, g, gv):
        torch.testing.assert_close(lrs[n].grad, -gvi * gi, rtol=0, atol=1e-13)


def test_scalar_learnable_rates_broadcast() -> None:
    model = _mlp()
    lrs = learnable_lrs(model, 0.1, per_element=False)
    xs, ys = _data(1)
    a1 = adapt(model, _loss(model, xs, ys), inner_lr=lrs, inner_steps=2)
    a2 = adapt(model, _loss(model, xs, ys), inner_lr=0.1, inner_steps=2)
    for n in a1:
        torch.testing.assert_close(a1[n], a2[n], rtol=0, atol=1e-15)


@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_task_batching_equals_python_loop(first_order: bool) -> None:
    model = _mlp()
    T = 4
    xs, ys = torch.randn(T, 6, 3), torch.randn(T, 6, 2)
    xq, yq = torch.randn(T, 5, 3), torch.randn(T, 5, 2)

    def loss(p, d):
        return F.mse_loss(functional_call(model, p, (d[0],)), d[1])

    adapted = adapt_batched(model, loss, (xs, ys), inner_lr=0.2, inner_steps=3, first_order=first_order)
    torch.func.vmap(loss)(adapted, (xq, yq)).sum().backward()
    batched = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for t in range(T):
        a = adapt(model, _loss(model, xs[t], ys[t]), inner_lr=0.2, inner_steps=3, first_order=first_order)
        _loss(model, xq[t], yq[t])(a).backward()
    for b, p in zip(batched, model.parameters()):
        torch.testing.assert_close(b, p.grad, rtol=0, atol=1e-12)


def test_vmap_batching_with_a_frozen_subset() -> None:
    model = _mlp()
    xs, ys = torch.randn(3, 6, 3), torch.randn(3, 6, 2)

    def loss(p, d):
        return F.mse_loss(functional_call(model, p, (d[0],)), d[1])

    out = adapt_batched(model, loss, (xs, ys), inner_lr=0.2, inner_steps=1, names=["2.bias"])
    assert all(v.shape[0] == 3 for v in out.values())
    assert torch.equal(out["0.weight"][1], model.get_parameter("0.weight"))  # an expanded view, no arithmetic
    a = adapt(model, _loss(model, xs[1], ys[1]), inner_lr=0.2, inner_steps=1, names=["2.bias"])
    torch.testing.assert_close(out["2.bias"][1], a["2.bias"], rtol=0, atol=1e-14)


def test_bad_input_is_rejected_with_clear_errors() -> None:
    model = _mlp()
    xs, ys = _data(1)
    good = _loss(model, xs, ys)
    with pytest.raises(ValueError, match="inner_steps"):
        adapt(model, good, inner_lr=0.1, inner_steps=-1)
    with pytest.raises(TypeError, match="inner_steps"):
        adapt(model, good, inner_lr=0.1, inner_steps=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inner_lr"):
        adapt(model, good, inner_lr=-0.1, inner_steps=1)
    with pytest.raises(ValueError, match="unknown parameter names"):
        adapt(model, good, inner_lr=0.1, inner_steps=1, names=["nope"])
    with pytest.raises(ValueError, match="scalar"):
        adapt(model, lambda p: functional_call(model, p, (xs,)), inner_lr=0.1, inner_steps=1)
    with pytest.raises(ValueError, match="non-finite"):
        adapt(model, lambda p: good(p) * float("nan"), inner_lr=0.1, inner_steps=1)
    with pytest.raises(ValueError, match="does not depend"):
        adapt(model, lambda p: torch.tensor(1.0), inner_lr=0.1, inner_steps=1)
    with pytest.raises(ValueError, match="does not broadcast"):
        lrs = {n: torch.ones(7) for n, _ in model.named_parameters()}
        adapt(model, good, inner_lr=lrs, inner_steps=1)
    with pytest.raises(ValueError, match="no learning rate"):
        adapt(model, good, inner_lr={"0.weight": torch.ones(())}, inner_steps=1)
    frozen = _mlp()
    frozen[0].weight.requires_grad_(False)
    with pytest.raises(ValueError, match="do not require grad"):
        adapt(frozen, _loss(frozen, xs, ys), inner_lr=0.1, inner_steps=1)
    with pytest.raises(ValueError, match="no parameters"):
        adapt(nn.ReLU(), good, inner_lr=0.1, inner_steps=1)
    with pytest.raises(ValueError, match="dimension 0"):
        adapt_batched(model, lambda p, d: good(p), torch.tensor(1.0), inner_lr=0.1, inner_steps=1)


@pytest.mark.peers
@pytest.mark.parametrize("steps", [1, 3])
def test_maml_equals_higher_and_torchopt(steps: int) -> None:
    higher = pytest.importorskip("higher")
    torchopt = pytest.importorskip("torchopt")
    model = _mlp()
    xs, ys = _data(1)
    xq, yq = _data(2)
    adapted = adapt(model, _loss(model, xs, ys), inner_lr=0.4, inner_steps=steps)
    _loss(model, xq, yq)(adapted).backward()
    ours = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    with higher.innerloop_ctx(
        model, torch.optim.SGD(model.parameters(), lr=0.4), copy_initial_weights=False
    ) as (
        fnet,
        diffopt,
    ):
        for _ in range(steps):
            diffopt.step(F.mse_loss(fnet(xs), ys))
        F.mse_loss(fnet(xq), yq).backward()
    for a, p in zip(ours, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=0, atol=1e-10)

    model.zero_grad()
    saved = torchopt.extract_state_dict(model)
    inner = torchopt.MetaSGD(model, lr=0.4)
    for _ in range(steps):
        inner.step(F.mse_loss(model(xs), ys))
    F.mse_loss(model(xq), yq).backward()
    torchopt.recover_state_dict(model, saved)
    for a, p in zip(ours, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=0, atol=1e-10)


def test_adapt_can_continue_from_given_parameters() -> None:
    model = _mlp()
    xs, ys = _data(1)
    two = adapt(model, _loss(model, xs, ys), inner_lr=0.3, inner_steps=2)
    one = adapt(model, _loss(model, xs, ys), inner_lr=0.3, inner_steps=1)
    again = adapt(model, _loss(model, xs, ys), inner_lr=0.3, inner_steps=1, params=one)
    for n in two:  # the same operations in the same order: bit-exact
        torch.testing.assert_close(again[n], two[n], rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not have"):
        adapt(model, _loss(model, xs, ys), inner_lr=0.3, inner_steps=1, params={"x": torch.zeros(1)})
