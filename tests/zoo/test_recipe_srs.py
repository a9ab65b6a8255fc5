"""The SRS recipe in the real loop: the loop consumes exactly the sampler's draws, compute is counted in
samples (the coreset's selection included), k-center greedy against a brute-force reference, and
DistributedSoftRandomSampler on two gloo ranks inside the loop."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bilevel.sampling import (
    BucketBatchSampler,
    DistributedSoftRandomSampler,
    SoftRandomSampler,
    k_center_greedy,
)
from tests.bilevel._asserts import BadInput, assert_rejects
from tests.zoo._fixtures import random_items
from zoo.data import collate
from zoo.recipes.encoders import build_parts
from zoo.recipes.equilibrium import CTCStep, Source, SourceCorpus
from zoo.recipes.srs import SRSRun, asr_data, epoch_sampler, in_loop_sampling, main, train_one
from zoo.training import Batches, Budget, Trainer, TrainState, item_lengths

F, V = 6, 5


def _data(n: int = 30) -> Any:
    items = random_items(n + 8, seed=0, dim=F, vocab_size=V)
    src = Source("a", items[: n // 2], items[n // 2 : n], items[n : n + 4], items[n + 4 :])
    return asr_data(SourceCorpus([src], collate, lambda ids: " ".join(map(str, ids)), F, V))


@pytest.mark.parametrize("method", ["srs", "subset", "full"])
def test_the_loop_consumes_exactly_the_samplers_draws(method: str) -> None:
    data = _data()
    n, ratio, seed = len(data.train), 0.5, 3
    res = train_one(
        data, method, ratio, epochs=3, lr=1e-3, seed=seed, split="dev", dim=8, batch_size=4, eval_points=1
    )
    ref = epoch_sampler(method, n, ratio, seed)
    assert len(res["epochs_drawn"]) == 3
    for e, drawn in enumerate(res["epochs_drawn"]):
        assert sorted(drawn) == sorted(ref.indices(e).tolist())  # as a multiset: duplicates kept
    per_epoch = n if method == "full" else math.ceil(ratio * n)
    assert res["samples"] == 3 * per_epoch


def test_coreset_cost_is_counted_and_the_subset_is_the_greedy_one() -> None:
    data = _data()
    res = train_one(
        data, "kcenter", 0.3, epochs=2, lr=1e-3, seed=1, split="dev", dim=8, batch_size=4, eval_points=1
    )
    m = math.ceil(0.3 * len(data.train))
    assert res["samples"] == pytest.approx(2 * m + len(data.train) / 3)
    assert res["selection"]["samples"] == pytest.approx(len(data.train) / 3)
    assert len(set(res["epochs_drawn"][0])) == m and set(res["epochs_drawn"][0]) == set(
        res["epochs_drawn"][1]
    )


def _k_center_reference(x: torch.Tensor, m: int, first: int) -> list[int]:
    """Brute force: recompute every row's distance to its nearest chosen row each round (float64)."""
    x = x.double()
    chosen = [first]
    while len(chosen) < m:
        d = torch.cdist(x, x[chosen]).min(1).values
        chosen.append(int(d.argmax()))
    return chosen


def test_k_center_greedy_against_brute_force() -> None:
    x = torch.randn(60, 5, generator=torch.Generator().manual_seed(0))
    idx, macs = k_center_greedy(x, 12, generator=torch.Generator().manual_seed(4))
    first = int(torch.randint(60, (1,), generator=torch.Generator().manual_seed(4)))
    assert idx == _k_center_reference(x, 12, first)
    assert macs == 12 * 60 * 5
    # the 2-approximation's witness: no row is farther from the set than the last chosen one was
    radius = float(torch.cdist(x, x[idx]).min(1).values.max())
    assert radius <= float(torch.cdist(x[idx[-1:]], x[idx[:-1]]).min()) + 1e-6


def test_in_loop_sampling_summary_against_theory() -> None:
    data = _data(60)
    runs = [
        {
            "method": "srs",
            "ratio": 0.5,
            **train_one(
                data, "srs", 0.5, epochs=4, lr=1e-3, seed=s, split="dev", dim=8, batch_size=8, eval_points=1
            ),
        }
        for s in range(2)
    ]
    (row,) = in_loop_sampling({"n_train": len(data.train), "runs": runs})
    assert row["unique_expected"] == pytest.approx(1 - (1 - 1 / 60) ** 30, rel=1e-12)
    assert row["coverage_expected"][0] == pytest.approx(row["unique_expected"], rel=1e-12)
    assert abs(row["unique_measured"] - row["unique_expected"]) < 6 * row["unique_sd"]


@pytest.mark.parametrize(
    "case",
    [
        BadInput("unknown method", lambda: epoch_sampler("craig", 10, 0.5, 0), ValueError, "method"),
        BadInput(
            "kcenter without indices", lambda: epoch_sampler("kcenter", 10, 0.5, 0), ValueError, "coreset"
        ),
        BadInput("no full reference", lambda: SRSRun(methods=("srs",)), ValueError, "full"),
        BadInput("no ratios", lambda: SRSRun(ratios=()), ValueError, "ratios"),
        BadInput(
            "zero epochs", lambda: train_one(_data(), "srs", 0.5, epochs=0, lr=1e-3), ValueError, "epochs"
        ),
        BadInput("coreset too large", lambda: k_center_greedy(torch.zeros(3, 2), 4), ValueError, "size"),
        BadInput("features not 2-D", lambda: k_center_greedy(torch.zeros(3), 1), ValueError, "features"),
    ],
    ids=lambda c: c.name,
)
def test_bad_input(case: BadInput) -> None:
    assert_rejects(case)


# -- two ranks ---------------------------------------------------------------------------------------------
N, RATIO, SEED, EPOCHS, BATCH = 21, 0.5, 5, 3, 2


class _Record:
    def __init__(self) -> None:
        self.step, self.epochs = CTCStep(), {}  # type: ignore[var-annotated]

    def __call__(self, state: TrainState, batch: dict[str, Any]) -> dict[str, Any]:
        self.epochs.setdefault(state.data.epoch, []).extend(int(i) for i in batch["ids"])  # type: ignore[attr-defined]
        return self.step(state, batch)


def _ddp_worker(rank: int, world: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        items = random_items(N, seed=0, dim=F, vocab_size=V)
        smp = DistributedSoftRandomSampler(N, RATIO, seed=SEED)  # world size and rank from the process group
        stream = Batches(
            items, BucketBatchSampler(smp, item_lengths(items), batch_size=BATCH, pool_size=BATCH), collate
        )
        parts = build_parts("tiny", F, V, seed=0, dim=8)
        opt = torch.optim.SGD(parts.parameters(), lr=0.1)
        state = TrainState(modules={"model": parts}, optimizers={"model": opt}, data=stream)
        rec = _Record()
        Trainer(state, rec, Budget(steps=EPOCHS * math.ceil(len(smp) / BATCH)), progress=False).run()
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, rec.epochs)
        params = [p.detach().clone() for p in parts.parameters()]
        all_params: list[Any] = [None] * world
        dist.all_gather_object(all_params, params)
        if rank == 0:
            torch.save({"epochs": gathered, "params": all_params}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes import torch and the zoo: minutes on a loaded 2-core machine
def test_distributed_srs_in_the_loop_on_two_ranks(tmp_path: Path) -> None:
    out = tmp_path / "ranks.pt"
    mp.spawn(_ddp_worker, args=(2, f"file://{tmp_path / 'pg'}", str(out)), nprocs=2, join=True)
    got = torch.load(out)
    ranks = got["epochs"]
    draws = math.ceil(RATIO * N)
    ref = SoftRandomSampler(N, RATIO, generator=SEED)
    for e in range(EPOCHS):
        full = (
            DistributedSoftRandomSampler(N, RATIO, num_replicas=2, rank=0, seed=SEED)
            .global_indices(e)
            .tolist()
        )
        # a proper SRS draw over the whole data set: the single-process draw, extended by i.i.d. draws
        assert full[:draws] == ref.indices(e).tolist() and len(full) == 2 * math.ceil(draws / 2)
        for r in range(2):  # each rank trained on exactly its positions r, r + 2, ... of that draw
            assert sorted(ranks[r][e]) == sorted(full[r::2])
        # the ranks' shares partition the epoch's draw (disjoint positions; together the whole multiset)
        assert sorted(ranks[0][e] + ranks[1][e]) == sorted(full)
    assert ranks[0][0] != ranks[0][1]  # a fresh draw every epoch
    for a, b in zip(*got["params"]):  # gradients were averaged: the ranks stay in sync
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.slow  # builds (or reuses) the "sources" corpus and trains every setting once
def test_command_line_writes_tables_and_figures(tmp_path: Path) -> None:
    argv = [
        "--quiet",
        "--sources",
        "en",
        "--epochs",
        "1",
        "--lrs",
        "0.003",
        "--seeds",
        "0",
        "--ratios",
        "0.3",
        "--eval-points",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    for name in ("results.json", "table.md", "tradeoff.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 0
