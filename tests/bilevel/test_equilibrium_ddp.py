"""Equilibrium under torch.distributed (2 gloo processes): the outer direction is averaged over ranks."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bilevel import Equilibrium
from bilevel.equilibrium import equilibrium_direction


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _targets(rank: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(3, generator=g, dtype=torch.float64) for _ in range(2)]


def _closures(w: torch.Tensor, targets: list[torch.Tensor]):
    return [lambda t=t: ((w - t) ** 4).sum() for t in targets]


# -- unequal shards: batch_size= weights the cross-rank average ------------------------------------------

SPLIT = (15, 9)


def _shards() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    return [
        (
            torch.randn(24, 3, generator=g, dtype=torch.float64),
            torch.randn(24, generator=g, dtype=torch.float64),
        )
        for _ in range(2)
    ]


def _mse_closures(w: torch.Tensor, part: slice):
    return [lambda x=x, y=y: (torch.tanh(x[part] @ w) - y[part]).pow(2).mean() for x, y in _shards()]


def _worker(rank: int, port: int, out: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
        opt = Equilibrium([w], lr=0.1, inner_lr=0.05, inner_steps=2)
        opt.step(source_losses=_closures(w, _targets(rank)))
        out[rank] = w.detach().clone()
        part = slice(0, SPLIT[0]) if rank == 0 else slice(SPLIT[0], sum(SPLIT))
        for weighted in (True, False):
            w = torch.nn.Parameter(torch.full((3,), 0.1, dtype=torch.float64))
            opt = Equilibrium([w], lr=0.3, inner_steps=0)
            for _ in range(3):
                opt.step(source_losses=_mse_closures(w, part), batch_size=SPLIT[rank] if weighted else None)
            out[rank, weighted] = w.detach().clone()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def out() -> dict:
    manager = mp.Manager()
    shared = manager.dict()
    mp.spawn(_worker, args=(_free_port(), shared), nprocs=2, join=True)
    return dict(shared)


def test_ranks_apply_the_rank_averaged_direction(out: dict) -> None:
    dirs = []
    for rank in range(2):
        w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
        dirs.append(
            equilibrium_direction([w], _closures(w, _targets(rank)), inner_lr=0.05, inner_steps=2).direction[
                0
            ]
        )
    expected = -0.1 * (dirs[0] + dirs[1]) / 2
    assert not torch.allclose(dirs[0], dirs[1])
    for rank in range(2):
        torch.testing.assert_close(out[rank], expected, rtol=0, atol=1e-15)


def test_unequal_shards_weighted_by_batch_size_match_one_process(out: dict) -> None:
    w = torch.nn.Parameter(torch.full((3,), 0.1, dtype=torch.float64))
    opt = Equilibrium([w], lr=0.3, inner_steps=0)
    for _ in range(3):
        opt.step(source_losses=_mse_closures(w, slice(0, 24)))
    for rank in range(2):
        torch.testing.assert_close(out[rank, True], w.detach(), rtol=1e-12, atol=1e-14)
    assert (out[0, False] - w.detach()).abs().max() > 1e-4  # the unweighted mean of means is off
