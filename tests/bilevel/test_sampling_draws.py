"""The epoch samplers' draws are fixed functions of (seed, epoch): a fingerprint of many draws, iterations,
resumptions and batchings recorded before the samplers' iteration was made faster must not change, and
every draw equals an independent construction from torch's generator."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import torch

from bilevel.sampling import (
    BucketBatchSampler,
    DistributedSoftRandomSampler,
    FixedSubsetSampler,
    FreshSubsetSampler,
    ShuffledSampler,
    SoftRandomSampler,
    epoch_generator,
)

# sha256 of _fingerprint()'s text with the samplers as they were before iteration used a plain list
# iterator (the per-element Python loop): the draws, their order and the resumed states are unchanged.
BEFORE = "6e251b74e0bb93e6785d34f28cd2725905f7ca796149da18bb4166347ea789fc"


def _fingerprint() -> str:
    h = hashlib.sha256()

    def add(xs: Any) -> None:
        h.update(str(list(xs)).encode())

    for seed in (0, 1, 7):
        samplers = [
            SoftRandomSampler(1000, 0.3, generator=seed),
            ShuffledSampler(500, generator=seed),
            FreshSubsetSampler(700, 0.4, generator=seed),
            DistributedSoftRandomSampler(999, 0.5, num_replicas=3, rank=1, seed=seed),
            FixedSubsetSampler(900, ratio=0.2, generator=seed),
        ]
        for smp in samplers:
            for _ in range(3):
                add(itertools.islice(iter(smp), 10**6))
            smp.set_epoch(5)
            it = iter(smp)
            add([next(it) for _ in range(7)])
            st = smp.state_dict()
            add(st.items())
            add(it)
            smp.load_state_dict(st)
            smp.set_epoch(st["epoch"])
            add(iter(smp))
        b = BucketBatchSampler(
            SoftRandomSampler(300, 0.5, generator=seed),
            [i % 37 + 1 for i in range(300)],
            batch_size=8,
            pool_size=64,
        )
        for _ in range(3):
            add(map(tuple, iter(b)))
        add(b.state_dict().items())
    return h.hexdigest()


def test_draws_unchanged_for_fixed_seeds() -> None:
    assert _fingerprint() == BEFORE


def test_iteration_equals_the_independent_draw() -> None:
    """Epoch e of SRS is torch.randint(N, (⌈sN⌉,)) from the epoch's generator, and iterating gives exactly it,
    epoch after epoch; a stale iterator stops when the epoch is pinned again."""
    smp = SoftRandomSampler(1000, 0.3, generator=3)
    for e in range(3):
        ref = torch.randint(1000, (300,), generator=epoch_generator(smp.seed, e), dtype=torch.int64).tolist()
        assert list(smp) == ref
        assert smp.state_dict()["epoch"] == e + 1
    it = iter(smp)
    first = [next(it) for _ in range(5)]
    assert smp.position == 5 and first == smp.indices(3).tolist()[:5]
    smp.set_epoch(3)  # the cursor moved: the running iterator is stale
    assert list(it) == []
    assert list(smp) == smp.indices(3).tolist()
