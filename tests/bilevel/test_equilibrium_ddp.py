"""Equilibrium under torch.distributed (2 gloo processes): the outer direction is averaged over ranks."""

from __future__ import annotations

import socket

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


def _worker(rank: int, port: int, out: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
        opt = Equilibrium([w], lr=0.1, inner_lr=0.05, inner_steps=2)
        opt.step(source_losses=_closures(w, _targets(rank)))
        out[rank] = w.detach().clone()
    finally:
        dist.destroy_process_group()


def test_ranks_apply_the_rank_averaged_direction() -> None:
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(_free_port(), out), nprocs=2, join=True)
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
