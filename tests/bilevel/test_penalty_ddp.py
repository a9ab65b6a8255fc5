"""PenaltyBGD under torch.distributed: 2 gloo processes on half batches == 1 process on the whole batch."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bilevel import PenaltyBGD

D = torch.float64
CASES = [{"penalty": "value", "inner_steps": 2}, {"penalty": "gradient", "inner_steps": 0}]


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return (
        torch.randn(16, 3, generator=gen, dtype=D),
        torch.randn(16, 1, generator=gen, dtype=D),
        torch.randn(3, 4, generator=gen, dtype=D),
    )


def _train(xs: torch.Tensor, ys: torch.Tensor, case: dict) -> list[torch.Tensor]:
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
        opt.step(upper_loss=f, lower_loss=g)
    return [p.detach().clone() for p in (*head.parameters(), *body.parameters())]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        xs, ys, _ = _data()
        half = slice(8 * rank, 8 * (rank + 1))
        torch.save([_train(xs[half], ys[half], c) for c in CASES], f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_match_one_process_on_the_concatenated_batch(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    xs, ys, _ = _data()
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for i, case in enumerate(CASES):
        single = _train(xs, ys, case)
        for a, b, s in zip(r0[i], r1[i], single):
            assert torch.equal(a, b), f"ranks diverged ({case})"
            torch.testing.assert_close(a, s, rtol=1e-12, atol=1e-12, msg=f"{case}")
        # and the test is not vacuous: a single process on half the batch differs
        half = _train(xs[:8], ys[:8], case)
        assert max((h - s).abs().max().item() for h, s in zip(half, single)) > 1e-6
