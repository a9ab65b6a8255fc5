"""BucketBatchSampler: batches reorder the epoch draw, respect the bounds, and cut padding."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bilevel.sampling import BucketBatchSampler, FreshSubsetSampler, SoftRandomSampler


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 200),
    ratio=st.floats(0.05, 2.0),
    seed=st.integers(0, 2**31),
    batch_size=st.one_of(st.none(), st.integers(1, 17)),
    max_tokens=st.one_of(st.none(), st.integers(1, 400)),
    pool_size=st.integers(1, 64),
    drop_last=st.booleans(),
)
def test_bucket_batches_reorder_the_draw_within_bounds(
    n, ratio, seed, batch_size, max_tokens, pool_size, drop_last
) -> None:
    if batch_size is None and max_tokens is None:
        batch_size = 4
    if batch_size is None:
        drop_last = False
    lengths = torch.randint(1, 60, (n,), generator=torch.Generator().manual_seed(seed))
    inner = SoftRandomSampler(n, ratio, generator=seed)
    bs = BucketBatchSampler(
        inner, lengths, batch_size=batch_size, max_tokens=max_tokens, pool_size=pool_size, drop_last=drop_last
    )
    draw = inner.indices(0)
    upcoming = len(bs)  # the length of the epoch about to be drawn
    batches = list(bs)
    assert len(batches) == upcoming == len(bs.batches(0))
    flat = sorted(i for b in batches for i in b)
    if not drop_last:
        assert flat == sorted(draw.tolist())  # exactly the SRS draw, duplicates included
    else:
        assert all(len(b) == batch_size for b in batches)
        assert len(flat) <= len(draw)
    for b in batches:
        assert len(b) >= 1
        if batch_size is not None:
            assert len(b) <= batch_size
        if max_tokens is not None and len(b) > 1:
            assert len(b) * int(lengths[b].max()) <= max_tokens
    assert inner.epoch == 1  # iterating advanced the inner sampler


def test_bucketing_cuts_padding_and_is_reproducible() -> None:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(50, 1600, (2000,), generator=g)

    def padded(batches):
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    bucketed = BucketBatchSampler(SoftRandomSampler(2000, 0.5, generator=1), lengths, batch_size=16)
    draw = SoftRandomSampler(2000, 0.5, generator=1).indices(0).tolist()
    plain = [draw[i : i + 16] for i in range(0, len(draw), 16)]  # unsorted batches of the same draw
    useful = int(lengths[SoftRandomSampler(2000, 0.5, generator=1).indices(0)].sum())
    # sorting pools of 1024 draws leaves < 5 % padding; unsorted batches of 16 pad ~ 60 %
    assert padded(bucketed.batches(0)) < 1.05 * useful
    assert padded(plain) > 1.4 * useful
    again = BucketBatchSampler(SoftRandomSampler(2000, 0.5, generator=1), lengths, batch_size=16)
    again.set_epoch(3)
    bucketed.set_epoch(3)
    assert list(again) == list(bucketed)
    state = bucketed.state_dict()
    assert state == {"seed": bucketed.sampler.seed, "epoch": 4, "position": 0}


def test_works_on_any_epoch_sampler_and_an_overlong_item_is_alone() -> None:
    lengths = [5, 5, 5, 100]
    bs = BucketBatchSampler(FreshSubsetSampler(4, 1.0, generator=0), lengths, max_tokens=20, shuffle=False)
    batches = bs.batches(0)
    assert sorted(map(sorted, batches)) == [[0, 1, 2], [3]]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"lengths": [1.5, 2.0, 3.0]}, TypeError, "lengths must be integers"),
        ({"lengths": ["a", "b", "c"]}, TypeError, "lengths must be integers"),
        ({"lengths": torch.tensor([1.0, 2.0, 3.0])}, TypeError, "lengths must be integers"),
        ({"lengths": [1, 2]}, ValueError, "one entry per item"),
        ({"lengths": [1, -2, 3]}, ValueError, "non-negative"),
        ({"lengths": [1, 2, 3], "batch_size": None}, ValueError, "needs batch_size=, max_tokens= or both"),
        ({"lengths": [1, 2, 3], "batch_size": 0}, ValueError, "batch_size must be >= 1"),
        (
            {"lengths": [1, 2, 3], "batch_size": None, "max_tokens": 9, "drop_last": True},
            ValueError,
            "drop_last",
        ),
    ],
)
def test_bad_bucketing_input(kwargs, exc, match) -> None:
    kwargs = {"batch_size": 2, **kwargs}
    with pytest.raises(exc, match=match):
        BucketBatchSampler(SoftRandomSampler(3, 1.0, generator=0), **kwargs)
    with pytest.raises(TypeError, match="EpochSampler"):
        BucketBatchSampler(range(3), [1, 2, 3], batch_size=2)  # type: ignore[arg-type]
