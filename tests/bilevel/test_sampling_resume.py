"""Exact resume of every sampler at any position: a state taken after k elements of epoch e, loaded into a
fresh sampler, yields exactly the rest of epoch e and then the same later epochs as the uninterrupted run.

The comparisons are bit-exact: both sides are the same sampler code replaying the same seeded draws."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from bilevel.sampling import (
    BucketBatchSampler,
    DistributedSoftRandomSampler,
    FixedSubsetSampler,
    FreshSubsetSampler,
    ShuffledSampler,
    SoftRandomSampler,
)
from tests.bilevel._asserts import BadInput, assert_rejects

N = 53
LENGTHS = torch.randint(1, 40, (N,), generator=torch.Generator().manual_seed(3))
EPOCHS = 4

MAKERS: dict[str, Callable[[], Any]] = {
    "srs": lambda: SoftRandomSampler(N, 0.3, generator=5),
    "srs_above_one": lambda: SoftRandomSampler(N, 1.7, generator=5),
    "fresh_subset": lambda: FreshSubsetSampler(N, 0.4, generator=5),
    "fixed_subset": lambda: FixedSubsetSampler(N, 0.4, generator=5),
    "fixed_subset_in_order": lambda: FixedSubsetSampler(N, indices=[4, 1, 9, 7], shuffle=False, generator=5),
    "shuffled": lambda: ShuffledSampler(N, generator=5),
    "distributed_rank0": lambda: DistributedSoftRandomSampler(N, 0.5, num_replicas=3, rank=0, seed=5),
    "distributed_rank2_drop_last": lambda: DistributedSoftRandomSampler(
        N, 0.5, num_replicas=3, rank=2, seed=5, drop_last=True
    ),
    "bucket_batch_size": lambda: BucketBatchSampler(
        SoftRandomSampler(N, 0.9, generator=5), LENGTHS, batch_size=4, pool_size=16
    ),
    "bucket_max_tokens": lambda: BucketBatchSampler(
        FreshSubsetSampler(N, 1.0, generator=5), LENGTHS, max_tokens=60, pool_size=20
    ),
}


def _epochs(sampler: Any, count: int) -> list[list[Any]]:
    return [list(sampler) for _ in range(count)]


def _positions(epoch_len: int) -> list[tuple[int, int]]:
    """(epoch, elements consumed in it): the start, mid-epoch, the last element, across epochs."""
    return [
        (0, 0),
        (0, 1),
        (0, epoch_len // 2),
        (0, epoch_len - 1),
        (0, epoch_len),
        (1, 0),
        (2, epoch_len // 3),
    ]


@pytest.mark.parametrize("name", list(MAKERS))
def test_resume_at_any_position_replays_the_uninterrupted_run(name: str) -> None:
    make = MAKERS[name]
    reference = _epochs(make(), EPOCHS)
    for epoch, k in _positions(len(reference[0])):
        run = make()
        for _ in range(epoch):
            list(run)
        it = iter(run)
        consumed = [next(it) for _ in range(k)]
        assert consumed == reference[epoch][:k]
        state = run.state_dict()
        resumed = make()
        resumed.load_state_dict(state)
        rest = list(resumed)  # the rest of the interrupted epoch
        later = _epochs(resumed, EPOCHS - epoch - 1)
        if k == len(reference[epoch]):  # a complete epoch: the resumed run starts the next one
            assert state["epoch"] == epoch + 1 and state["position"] == 0
            assert [rest, *later[:-1]] == reference[epoch + 1 :]
        else:
            assert state == {"seed": state["seed"], "epoch": epoch, "position": k}
            assert rest == reference[epoch][k:], f"{name}: epoch {epoch} after {k}"
            assert later == reference[epoch + 1 :]
        # the interrupted sampler itself continues the same way
        assert (
            list(it) + list(itertools.chain.from_iterable(_epochs(run, EPOCHS - epoch - 1)))
            == [x for ep in reference[epoch:] for x in ep][k:]
        )


@pytest.mark.parametrize("name", list(MAKERS))
def test_set_epoch_after_load_keeps_the_restored_position(name: str) -> None:
    # the DistributedSampler convention: the loop calls set_epoch(e) at the top of every epoch
    make = MAKERS[name]
    reference = _epochs(make(), 3)
    run = make()
    list(run)
    it = iter(run)
    k = max(1, len(reference[1]) // 2)
    for _ in range(k):
        next(it)
    resumed = make()
    resumed.load_state_dict(run.state_dict())
    got = []
    for epoch in range(resumed.epoch, 3):
        resumed.set_epoch(epoch)
        got.append(list(resumed))
    assert got == [reference[1][k:], reference[2]]
    # without a pending restore, set_epoch starts the epoch from its first element
    resumed.set_epoch(1)
    assert list(resumed) == reference[1]


def test_resume_through_a_dataloader_after_k_batches() -> None:
    ds = TensorDataset(torch.arange(N))
    batches = []
    for k in (0, 2, 5):
        sampler = SoftRandomSampler(ds, 0.8, generator=11)
        ref_loader = DataLoader(ds, batch_size=4, sampler=SoftRandomSampler(ds, 0.8, generator=11))
        reference = [b[0].tolist() for _ in range(2) for b in ref_loader]
        loader = DataLoader(ds, batch_size=4, sampler=sampler)
        it = iter(loader)
        first = [next(it)[0].tolist() for _ in range(k)]
        state = sampler.state_dict()
        fresh = SoftRandomSampler(ds, 0.8, generator=11)
        fresh.load_state_dict(state)
        resumed_loader = DataLoader(ds, batch_size=4, sampler=fresh)
        rest = [b[0].tolist() for b in resumed_loader] + [b[0].tolist() for b in resumed_loader]
        assert first + rest == reference
        batches.append(len(rest))
    assert batches[0] > batches[1] > batches[2]


def test_legacy_state_without_position_starts_the_epoch() -> None:
    a = SoftRandomSampler(N, 0.3, generator=2)
    a.load_state_dict({"seed": a.seed, "epoch": 3})
    assert list(a) == a.indices(3).tolist() and a.epoch == 4


def _loaded(state: dict[str, Any]) -> Any:
    return SoftRandomSampler(N, 0.3, generator=0).load_state_dict(state)


BAD = [
    BadInput(
        "position past the epoch",
        lambda: _loaded({"seed": 0, "epoch": 0, "position": 17}),
        ValueError,
        r"state\['position'\] must be <= 16",
    ),
    BadInput(
        "negative position",
        lambda: _loaded({"seed": 0, "epoch": 0, "position": -1}),
        ValueError,
        r"state\['position'\] must be >= 0",
    ),
    BadInput(
        "float position",
        lambda: _loaded({"seed": 0, "epoch": 0, "position": 1.0}),
        TypeError,
        r"state\['position'\] must be an int",
    ),
    BadInput("negative epoch", lambda: _loaded({"seed": 0, "epoch": -2}), ValueError, r"state\['epoch'\]"),
    BadInput("missing seed", lambda: _loaded({"epoch": 0}), KeyError, "seed"),
    BadInput("not a dict", lambda: _loaded([0, 0]), TypeError, "state must be a dict"),  # type: ignore[arg-type]
    BadInput(
        "bucket position past the epoch",
        lambda: MAKERS["bucket_batch_size"]().load_state_dict({"seed": 5, "epoch": 0, "position": 10**6}),
        ValueError,
        r"state\['position'\]",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_bad_state_is_refused(case: BadInput) -> None:
    assert_rejects(case)
