"""DistributedSoftRandomSampler: shards of one epoch draw, single-process and with 2 gloo processes."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st

from bilevel.sampling import DistributedSoftRandomSampler, SoftRandomSampler, draw_count


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 300),
    ratio=st.floats(0.01, 2.0),
    world=st.integers(1, 5),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 20),
    drop_last=st.booleans(),
)
def test_ranks_partition_one_srs_draw(
    n: int, ratio: float, world: int, seed: int, epoch: int, drop_last: bool
) -> None:
    draws = draw_count(n, ratio)
    if drop_last and draws < world:
        return
    ranks = [
        DistributedSoftRandomSampler(n, ratio, world, r, seed=seed, drop_last=drop_last) for r in range(world)
    ]
    shares = [r.indices(epoch) for r in ranks]
    lengths = {len(s) for s in shares}
    assert lengths == {len(ranks[0])}  # equal shares, as DDP needs
    total = ranks[0].total_size
    assert total == (draws // world * world if drop_last else -(-draws // world) * world)
    # interleaving the shares gives back the common draw (disjoint positions, nothing lost or repeated)
    glued = torch.stack(shares, dim=1).reshape(-1)
    assert torch.equal(glued, ranks[0].global_indices(epoch))
    # ...whose first min(total, n) entries are the single-process SRS draw with the same seed
    single = SoftRandomSampler(n, ratio, generator=seed).indices(epoch)
    k = min(total, draws)
    assert torch.equal(glued[:k], single[:k])
    assert int(glued.min()) >= 0 and int(glued.max()) < n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        sampler = DistributedSoftRandomSampler(101, 0.3, seed=42)  # world size and rank from the group
        epochs = []
        for epoch in (0, 1, 5):
            sampler.set_epoch(epoch)
            mine = torch.tensor(list(sampler))
            gathered = [torch.empty_like(mine) for _ in range(2)]
            dist.all_gather(gathered, mine)
            epochs.append((mine.tolist(), [g.tolist() for g in gathered]))
        out[rank] = (sampler.num_replicas, sampler.rank, len(sampler), epochs)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_share_one_draw() -> None:
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(_free_port(), out), nprocs=2, join=True)
    n = draw_count(101, 0.3)  # 31 draws -> 16 per rank, one extra i.i.d. draw
    for rank in (0, 1):
        world, r, length, _ = out[rank]
        assert (world, r, length) == (2, rank, 16)
    for i, epoch in enumerate((0, 1, 5)):
        shares = [out[0][3][i][0], out[1][3][i][0]]
        assert out[0][3][i][1] == out[1][3][i][1] == shares  # both ranks gathered the same shares
        glued = [x for pair in zip(*shares) for x in pair]
        single = SoftRandomSampler(101, 0.3, generator=42).indices(epoch).tolist()
        assert glued[:n] == single
    assert out[0][3][0][0] != out[0][3][1][0]  # a fresh draw every epoch
