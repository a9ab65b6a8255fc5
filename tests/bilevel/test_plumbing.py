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
from bilevel._checks import check_choice, check_int, check_loss, check_ratio, check_real
from bilevel._distributed import all_reduce_mean_, is_distributed
from bilevel._flat import flatten, unflatten_like
from bilevel._params import check_disjoint, param_groups
from bilevel._swap import swapped
from bilevel.schedules import as_schedule


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


def test_swapped_restores_bitwise_even_on_error() -> None:
    p = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
    before = p.detach().clone()
    with swapped([p], [torch.zeros(4, dtype=torch.float64)]):
        assert torch.equal(p.detach(), torch.zeros(4, dtype=torch.float64))
    assert torch.equal(p.detach(), before)
    with pytest.raises(RuntimeError), swapped([p], [torch.ones(4, dtype=torch.float64)]):
        raise RuntimeError
    assert torch.equal(p.detach(), before)
    with pytest.raises(ValueError, match="shape"), swapped([p], [torch.ones(3)]):
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
        out[rank] = (is_distributed(), t[0].tolist(), t[2].tolist())
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
        assert out[rank] == (True, [[0.5, 0.5], [0.5, 0.5]], [5.0])
