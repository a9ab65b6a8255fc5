"""Shared plumbing: argument checks, param groups, swaps, flattening, schedules, rank averaging."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bilevel import Constant, LinearRamp
from bilevel._autograd import (
    add_optional,
    exchanged,
    flatten,
    grads,
    grads_or_zeros,
    needs_safe_norm,
    norm,
    safe_norm,
    total_norm,
    unflatten_like,
)
from bilevel._distributed import all_reduce_mean_, is_distributed
from bilevel._params import check_disjoint, param_groups
from bilevel.checks import check_choice, check_int, check_loss, check_ratio, check_real
from bilevel.schedules import as_schedule
from tests.bilevel._asserts import BadInput, assert_rejects


def test_check_loss_accepts_scalars_and_names_bad_input() -> None:
    assert check_loss(torch.tensor([2.0]), "f").shape == ()
    with pytest.raises(TypeError, match="upper_loss must return a scalar torch.Tensor"):
        check_loss(1.0, "upper_loss")
    with pytest.raises(ValueError, match=r"g must return a scalar tensor, got shape \(2,\)"):
        check_loss(torch.ones(2), "g")
    with pytest.raises(ValueError, match="g returned a non-finite loss"):
        check_loss(torch.tensor(float("nan")), "g")


def test_numeric_checks() -> None:
    assert check_ratio(1.0, "ratio") == 1.0
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="ratio"):
            check_ratio(bad, "ratio")
    with pytest.raises(TypeError, match="gamma must be a real number"):
        check_real("1", "gamma")
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        check_real(-1, "gamma", low=0)
    with pytest.raises(ValueError, match="finite"):
        check_real(math.inf, "gamma")
    with pytest.raises(TypeError, match="steps must be an int"):
        check_int(True, "steps")
    with pytest.raises(ValueError, match="steps must be >= 0"):
        check_int(-1, "steps", low=0)
    with pytest.raises(ValueError, match="mode must be one of 'a', 'b'; got 'c'"):
        check_choice("c", "mode", ("a", "b"))


def test_param_groups_normalise_and_validate() -> None:
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    assert param_groups([a, b], name="p") == [{"params": [a, b]}]
    groups = param_groups([{"params": a, "lr": 0.1}, {"params": [b]}], name="p")
    assert groups[0]["params"] == [a] and groups[0]["lr"] == 0.1
    assert param_groups([], name="upper", allow_empty=True) == []
    with pytest.raises(ValueError, match="lower_params is empty"):
        param_groups([], name="lower_params")
    with pytest.raises(ValueError, match="does not require grad"):
        param_groups([torch.ones(2)], name="p")
    with pytest.raises(ValueError, match="more than once"):
        param_groups([a, a], name="p")
    with pytest.raises(ValueError, match="non-leaf"):
        param_groups([a * 2], name="p")
    with pytest.raises(TypeError, match="single Tensor"):
        param_groups(a, name="p")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in both upper_params and lower_params"):
        check_disjoint([a], [b, a], "upper_params", "lower_params")


def test_exchanged_restores_bitwise_even_on_error() -> None:
    p = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
    before = p.detach().clone()
    other = torch.zeros(4, dtype=torch.float64)
    with exchanged([p], [other]):
        assert torch.equal(p.detach(), other)
        with torch.no_grad():
            p.add_(1.0)  # writes into `other`, never into p's own storage
    assert torch.equal(p.detach(), before) and torch.equal(other, torch.ones(4, dtype=torch.float64))
    with pytest.raises(RuntimeError), exchanged([p], [torch.ones(4, dtype=torch.float64)]):
        raise RuntimeError
    assert torch.equal(p.detach(), before)
    with pytest.raises(ValueError, match="exchanged: value"), exchanged([p], [torch.ones(3)]):
        pass
    with pytest.raises(ValueError, match="1 parameters but 2 values"), exchanged([p], [other, other]):
        pass


def test_flatten_roundtrip() -> None:
    ts = [torch.randn(2, 3), torch.randn(4), torch.randn(1, 1, 2)]
    back = unflatten_like(flatten(ts), ts)
    assert all(torch.equal(x, y) for x, y in zip(ts, back))
    with pytest.raises(ValueError, match="expected a vector of 12 elements"):
        unflatten_like(torch.zeros(11), ts)


def test_schedules() -> None:
    ramp = LinearRamp(0.0, 1.0, 4)
    assert [ramp(k) for k in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert Constant(3.0)(10) == 3.0
    assert as_schedule(2.0)(5) == 2.0 and as_schedule(ramp) is ramp
    with pytest.raises(ValueError, match="stop must be >= 1.0"):
        LinearRamp(1.0, 0.5, 3)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        LinearRamp(0.0, 1.0, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        t = [torch.full((2, 2), float(rank)), None, torch.tensor([10.0 * rank])]
        all_reduce_mean_(t)
        u = [torch.tensor([1.0 + rank, 4.0 * rank])]
        all_reduce_mean_(u, weight=3.0 if rank == 0 else 1.0)  # e.g. local batch sizes 3 and 1
        out[rank] = (is_distributed(), t[0].tolist(), t[2].tolist(), u[0].tolist())
    finally:
        dist.destroy_process_group()


def test_all_reduce_mean_two_processes() -> None:
    assert not is_distributed()
    t = torch.ones(3)
    all_reduce_mean_([t])  # no-op without a process group
    assert torch.equal(t, torch.ones(3))
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(_free_port(), out), nprocs=2, join=True)
    for rank in (0, 1):
        assert out[rank][:3] == (True, [[0.5, 0.5], [0.5, 0.5]], [5.0])
        # weighted: (3·[1, 0] + 1·[2, 4]) / 4, exactly representable
        assert out[rank][3] == [1.25, 1.0]


# -- the gradient plumbing --------------------------------------------------------------------------------


def test_grads_one_convention_for_unused_inputs_and_graphless_outputs() -> None:
    a, b = torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)
    loss = (a * 3).sum()
    assert grads(loss, [a, b], retain_graph=True)[1] is None
    ga, gb = grads_or_zeros(loss, [a, b])
    assert torch.equal(ga, torch.full((2,), 3.0)) and torch.equal(gb, torch.zeros(3))
    assert grads(torch.ones(()), [a]) == [None]  # no graph: nothing depends on the inputs
    assert grads(loss, []) == []
    # several outputs with grad_outputs; an output without a graph is dropped with its grad_output
    outs = [a * 2, torch.zeros(2)]
    (g,) = grads_or_zeros(outs, [a], grad_outputs=[torch.ones(2), torch.full((2,), 7.0)])
    assert torch.equal(g, torch.full((2,), 2.0))
    with pytest.raises(ValueError, match="2 outputs but 1 grad_outputs"):
        grads(outs, [a], grad_outputs=[torch.ones(2)])
    assert add_optional(None, None) is None and torch.equal(add_optional(None, ga, alpha=2.0), 2 * ga)


BAD_GRADS = [
    BadInput(
        "loss without the inputs",
        lambda: grads(
            torch.ones((), requires_grad=True) * 2, [torch.ones(2, requires_grad=True)], name="loss_fn"
        ),
        ValueError,
        "loss_fn returned a loss that does not depend on the parameters",
    ),
    BadInput(
        "loss without a graph",
        lambda: grads_or_zeros(torch.ones(()), [torch.ones(2, requires_grad=True)], name="inner_loss"),
        ValueError,
        "inner_loss",
    ),
    BadInput("flatten nothing", lambda: flatten([]), ValueError, "at least one tensor"),
    BadInput(
        "unflatten wrong size",
        lambda: unflatten_like(torch.zeros(3), [torch.zeros(2)]),
        ValueError,
        "2 elements",
    ),
]


@pytest.mark.parametrize("case", BAD_GRADS, ids=lambda c: c.name)
def test_plumbing_rejects_bad_input(case: BadInput) -> None:
    assert_rejects(case)


def test_the_no_grad_hint() -> None:
    a = torch.ones(2, requires_grad=True)
    with torch.no_grad(), pytest.raises(ValueError, match="no_grad"):
        grads((a * 2).sum(), [a], name="f")


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e19, 3e30, 1e38])
def test_norms_match_a_float64_reference_and_never_overflow_for_finite_float32(scale: float) -> None:
    gen = torch.Generator().manual_seed(0)
    ts = [
        (torch.randn(5, 7, generator=gen) * scale).float(),
        (torch.randn(11, generator=gen) * scale).float(),
    ]
    ref = math.sqrt(sum(float(t.double().pow(2).sum()) for t in ts))  # float64 holds these squares
    assert math.isfinite(ref)
    got_safe = float(safe_norm(ts, ts[0]))
    got = total_norm(ts, ts[0])
    assert math.isclose(got_safe, ref, rel_tol=1e-6), (got_safe, ref)
    assert math.isclose(got, ref, rel_tol=1e-6), (got, ref)
    fast = float(norm(ts, ts[0]))
    if scale == 1.0:
        assert math.isclose(fast, ref, rel_tol=1e-6)  # the fast path is exact in range
    else:  # out of range, the fast path under- or overflows and total_norm knows to re-measure
        assert needs_safe_norm(fast, ts), fast
    # float64 beyond its own square range: only the scaled norm survives
    big = [torch.full((3,), 1e200, dtype=torch.float64)]
    assert math.isclose(total_norm(big, big[0]), math.sqrt(3) * 1e200, rel_tol=1e-12)


def test_norms_of_non_finite_values_are_not_finite() -> None:
    like = torch.zeros(())
    assert safe_norm([torch.tensor([1.0, math.inf])], like) == math.inf
    assert math.isnan(total_norm([torch.tensor([1.0, math.nan])], like))
    assert float(safe_norm([torch.zeros(3), None], like)) == 0.0 and float(norm([None], like)) == 0.0
