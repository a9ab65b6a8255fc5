"""PenaltyBGD under torch.distributed: 2 gloo processes on shards of a batch == 1 process on the whole batch.

Equal halves need nothing; unequal shards (15/9) need ``step(..., batch_size=n_local)``, since a mean of
per-rank means is not the global mean. One spawn runs every case (spawning is the expensive part).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bilevel import PenaltyBGD

D = torch.float64
CASES = [{"penalty": "value", "inner_steps": 2}, {"penalty": "gradient", "inner_steps": 0}]
SPLIT = (15, 9)


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return (
        torch.randn(24, 3, generator=gen, dtype=D),
        torch.randn(24, 1, generator=gen, dtype=D),
        torch.randn(3, 4, generator=gen, dtype=D),
    )


def _train(
    xs: torch.Tensor, ys: torch.Tensor, case: dict, batch_size: int | None = None
) -> list[torch.Tensor]:
    torch.manual_seed(0)
    body = torch.nn.Linear(3, 4).double()
    head = torch.nn.Linear(4, 1).double()
    W = _data()[2]

    def f() -> torch.Tensor:
        return (head(torch.tanh(body(xs))) - ys).pow(2).mean()

    def g() -> torch.Tensor:  # a non-quadratic lower loss that also depends on the head (upper) weights
        return (torch.tanh(body(xs)) - xs @ W * head.weight.sum()).pow(2).mean()

    opt = PenaltyBGD(head.parameters(), body.parameters(), lr=0.1, gamma=2.0, inner_lr=0.2, **case)
    for _ in range(3):
        opt.step(upper_loss=f, lower_loss=g, batch_size=batch_size)
    return [p.detach().clone() for p in (*head.parameters(), *body.parameters())]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        xs, ys, _ = _data()
        half = slice(8 * rank, 8 * (rank + 1))
        part = slice(0, SPLIT[0]) if rank == 0 else slice(SPLIT[0], sum(SPLIT))
        runs: dict[Any, list[torch.Tensor]] = {}
        for i, c in enumerate(CASES):
            runs["halves", i] = _train(xs[:16][half], ys[:16][half], c)
            runs["unequal", i] = _train(xs[part], ys[part], c)
            runs["weighted", i] = _train(xs[part], ys[part], c, batch_size=SPLIT[rank])
        torch.save(runs, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    out: Path = tmp_path_factory.mktemp("penalty_ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    return torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")


@pytest.mark.parametrize("i", range(len(CASES)), ids=lambda i: CASES[i]["penalty"])
def test_two_gloo_ranks_match_one_process_on_the_concatenated_batch(ranks: tuple[dict, dict], i: int) -> None:
    xs, ys, _ = _data()
    xs, ys = xs[:16], ys[:16]
    r0, r1 = ranks
    single = _train(xs, ys, CASES[i])
    for a, b, s in zip(r0["halves", i], r1["halves", i], single):
        assert torch.equal(a, b), "ranks diverged"  # the same operations on the same averaged gradients
        torch.testing.assert_close(a, s, rtol=1e-12, atol=1e-12)
    # and the test is not vacuous: a single process on half the batch differs
    half = _train(xs[:8], ys[:8], CASES[i])
    assert max((h - s).abs().max().item() for h, s in zip(half, single)) > 1e-6


@pytest.mark.parametrize("i", range(len(CASES)), ids=lambda i: CASES[i]["penalty"])
def test_unequal_shards_weighted_by_batch_size_match_one_process(ranks: tuple[dict, dict], i: int) -> None:
    xs, ys, _ = _data()
    r0, r1 = ranks
    single = _train(xs, ys, CASES[i])
    for a, b, s in zip(r0["weighted", i], r1["weighted", i], single):
        assert torch.equal(a, b), "ranks diverged"
        torch.testing.assert_close(a, s, rtol=1e-12, atol=1e-12)
    # without the weights the mean of per-rank means is measurably off
    off = max((a - s).abs().max().item() for a, s in zip(r0["unequal", i], single))
    assert off > 1e-4, off
