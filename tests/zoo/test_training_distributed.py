"""Data parallelism: one step on 2 gloo ranks equals one single-process step on the same global batch,
for supervised CTC (gradients averaged by the loop's step function) and for BL-JUST's joint step
(:class:`bilevel.PenaltyBGD` averages its own gradients)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from tests.zoo._fixtures import random_items, tiny_conformer
from zoo.data import collate
from zoo.recipes import (
    BLJustConfig,
    SupervisedConfig,
    SupervisedStep,
    bl_just_trainer,
    build_parts,
    supervised_state,
)
from zoo.training import Batches, Budget, Trainer

F = 6


def _items(n: int, seed: int) -> list[dict[str, Any]]:
    return random_items(n, seed, dim=F, frames=(10, 20), vocab_size=5)


class _NextFrame(nn.Module):
    """A lower-level loss that decomposes over utterances (unlike CPC's in-batch negatives): the mean over
    utterances of the squared error of predicting each next hidden frame from the current one (η: linear)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pred = nn.Linear(dim, dim)

    def forward(self, encoder: nn.Module, feats: Tensor, lens: Tensor) -> Tensor:
        h, hl = encoder(feats, lens)
        err = (self.pred(h[:, :-1]) - h[:, 1:]).pow(2).mean(-1)
        valid = torch.arange(h.shape[1] - 1)[None] < (hl[:, None] - 1)
        return ((err * valid).sum(1) / valid.sum(1).clamp(min=1)).mean()


def _supervised(shard: tuple[int, int] | None) -> Trainer:
    torch.manual_seed(0)
    model = tiny_conformer(F, 5, dropout=0.0, conv_norm="layer")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    state = supervised_state(
        model, _items(10, 0), collate, SupervisedConfig(batch_size=5), optimizer=opt, shard=shard
    )
    return Trainer(state, SupervisedStep(grad_clip=None), Budget(steps=1), progress=False)


def _bl_just(shard: tuple[int, int] | None) -> Trainer:
    parts = build_parts("tiny", F, 5, seed=0, dim=8)
    torch.manual_seed(1)
    ssl = _NextFrame(8)
    lab = Batches.shuffled(_items(8, 1), 4, collate, seed=0, pool_batches=1, drop_last=True)
    unl = Batches.shuffled(_items(8, 2), 4, collate, seed=1, pool_batches=1, drop_last=True)
    if shard is not None:
        lab.shard(*shard)
        unl.shard(*shard)
    cfg = BLJustConfig(exploration_steps=0, joint_steps=1, finetune_steps=0, gamma_start=0.5, gamma_max=0.5)
    return bl_just_trainer(parts, ssl, lab, unl, cfg)


def _grads_and_params(tr: Trainer) -> dict[str, list[Tensor]]:
    ps = [p for m in tr.state.modules.values() for p in m.parameters()]
    return {
        "grads": [p.grad.detach().clone() if p.grad is not None else torch.zeros(0) for p in ps],
        "params": [p.detach().clone() for p in ps],
    }


BUILD = {"supervised": _supervised, "bl_just": _bl_just}


def _worker(rank: int, world: int, init: str, recipe: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        tr = BUILD[recipe]((rank, world))
        tr.run()
        if rank == 0:
            torch.save(_grads_and_params(tr), out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes import torch and the zoo: minutes on a loaded 2-core machine
@pytest.mark.parametrize("recipe", ["supervised", "bl_just"])
def test_one_step_on_two_ranks_equals_one_step_on_the_global_batch(recipe: str, tmp_path: Path) -> None:
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'pg'}", recipe, str(out)), nprocs=2, join=True)
    two = torch.load(out)
    one = BUILD[recipe](None)
    one.run()
    ref = _grads_and_params(one)
    # the same sums in another order: float32 rounding only (batch shards 3 + 2 and 2 + 2 items)
    for key in ("grads", "params"):
        assert len(two[key]) == len(ref[key])
        for a, b in zip(two[key], ref[key]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert any(float(g.abs().max()) > 1e-3 for g in ref["grads"] if g.numel())  # a real step was compared
