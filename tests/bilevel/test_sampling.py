"""SRS and comparison samplers: sizes, laws, reproducibility, resume, DataLoader use, errors.

``torch.equal`` here compares integer index tensors produced by the same seeded draws (a path against
itself), which are exact on every CPU; the laws are checked with stated statistical tolerances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from bilevel.sampling import (
    DistributedSoftRandomSampler,
    FixedSubsetSampler,
    FreshSubsetSampler,
    ShuffledSampler,
    SoftRandomSampler,
    draw_count,
)

SETTINGS = settings(max_examples=40, deadline=None)


def test_draw_count_is_the_ceiling_without_binary_rounding_surprises() -> None:
    assert draw_count(10, 0.3) == 3  # 0.3 * 10 == 3.0000000000000004 in float64
    assert draw_count(10, 0.31) == 4
    assert draw_count(7, 1.0) == 7
    assert draw_count(1000, 0.001) == 1
    assert draw_count(5, 2.5) == 13
    assert draw_count(10**6, 1e-9) == 1  # never zero


@SETTINGS
@given(
    n=st.integers(1, 400), ratio=st.floats(0.005, 3.0), seed=st.integers(0, 2**40), epoch=st.integers(0, 50)
)
def test_srs_epoch_invariants(n: int, ratio: float, seed: int, epoch: int) -> None:
    s = SoftRandomSampler(n, ratio, generator=seed)
    idx = s.indices(epoch)
    assert len(s) == len(idx) == draw_count(n, ratio)
    assert len(idx) == math.ceil(round(ratio * n, 9))
    assert idx.dtype == torch.int64 and int(idx.min()) >= 0 and int(idx.max()) < n
    # a pure function of (seed, epoch): a second sampler replays it, set_epoch + iteration gives it
    assert torch.equal(SoftRandomSampler(n, ratio, generator=seed).indices(epoch), idx)
    s.set_epoch(epoch)
    assert list(s) == idx.tolist()
    assert s.epoch == epoch + 1


@SETTINGS
@given(n=st.integers(1, 300), ratio=st.floats(0.01, 1.0), seed=st.integers(0, 2**40))
def test_without_replacement_samplers_invariants(n: int, ratio: float, seed: int) -> None:
    m = draw_count(n, ratio)
    fresh = FreshSubsetSampler(n, ratio, generator=seed)
    fixed = FixedSubsetSampler(n, ratio, generator=seed)
    full = ShuffledSampler(n, generator=seed)
    sets = []
    for e in range(3):
        a, b, c = fresh.indices(e), fixed.indices(e), full.indices(e)
        assert len(a) == len(b) == m and a.unique().numel() == m and b.unique().numel() == m
        assert sorted(c.tolist()) == list(range(n))
        sets.append(set(b.tolist()))
    assert sets[0] == sets[1] == sets[2] == set(fixed.subset.tolist())


def test_srs_draws_are_uniform_and_with_replacement() -> None:
    # Pooled counts over 200 epochs of N = 50, s = 1: chi-square with 49 dof; the 0.999 quantile is 85.4.
    N, E = 50, 200
    s = SoftRandomSampler(N, 1.0, generator=123)
    counts = torch.bincount(torch.cat([s.indices(e) for e in range(E)]), minlength=N).double()
    expected = N * E / N
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 85.4
    # with replacement: an epoch of N draws almost surely repeats some item (P(no repeat) = N!/N^N)
    assert all(s.indices(e).unique().numel() < N for e in range(20))


def test_epochs_differ_and_iteration_advances_the_epoch() -> None:
    s = SoftRandomSampler(1000, 0.1, generator=0)
    first, second = list(s), list(s)
    assert first != second and s.epoch == 2
    assert first == s.indices(0).tolist() and second == s.indices(1).tolist()


def test_generator_and_global_seed_make_samplers_reproducible() -> None:
    a = SoftRandomSampler(100, 0.5, generator=torch.Generator().manual_seed(7))
    b = SoftRandomSampler(100, 0.5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.indices(3), b.indices(3))
    torch.manual_seed(11)
    c = SoftRandomSampler(100, 0.5)
    torch.manual_seed(11)
    d = SoftRandomSampler(100, 0.5)
    assert torch.equal(c.indices(0), d.indices(0))
    assert not torch.equal(a.indices(0), SoftRandomSampler(100, 0.5, generator=8).indices(0))


@pytest.mark.parametrize(
    "make",
    [
        lambda: SoftRandomSampler(97, 0.3, generator=5),
        lambda: FreshSubsetSampler(97, 0.3, generator=5),
        lambda: FixedSubsetSampler(97, 0.3, generator=5),
        lambda: ShuffledSampler(97, generator=5),
        lambda: DistributedSoftRandomSampler(97, 0.3, num_replicas=3, rank=1, seed=5),
    ],
)
def test_state_dict_resume_equals_uninterrupted_run(make) -> None:
    ref = make()
    uninterrupted = [list(ref) for _ in range(6)]
    run = make()
    got = [list(run) for _ in range(3)]
    state = run.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    got += [list(resumed) for _ in range(3)]
    assert got == uninterrupted
    with pytest.raises(KeyError, match="epoch"):
        resumed.load_state_dict({"seed": 1})


def test_srs_in_a_dataloader_and_as_a_batch_sampler() -> None:
    ds = TensorDataset(torch.arange(100).double())
    sampler = SoftRandomSampler(ds, ratio=0.25, generator=0)
    loader = DataLoader(ds, batch_size=8, sampler=sampler)
    assert len(loader) == math.ceil(25 / 8)
    seen = torch.cat([b[0] for b in loader]).long()
    assert seen.tolist() == sampler.indices(0).tolist()  # draw order, duplicates kept
    batches = BatchSampler(SoftRandomSampler(ds, 0.25, generator=0), batch_size=8, drop_last=True)
    assert [len(b) for b in batches] == [8, 8, 8]
    loader2 = DataLoader(ds, batch_sampler=BatchSampler(SoftRandomSampler(ds, 0.25, generator=0), 8, False))
    assert torch.equal(torch.cat([b[0] for b in loader2]).long(), sampler.indices(0))


def test_srs_matches_torch_random_sampler_in_law() -> None:
    # Same law as RandomSampler(replacement=True, num_samples=n): compare the mean number of distinct items
    # per epoch over 300 epochs (N = 400, n = 120); the two means must agree within 5 combined SEs.
    N, n, E = 400, 120, 300
    ours = SoftRandomSampler(N, n / N, generator=1)
    g = torch.Generator().manual_seed(2)
    torch_rs = RandomSampler(range(N), replacement=True, num_samples=n, generator=g)
    a = np.array([len(set(ours.indices(e).tolist())) for e in range(E)], dtype=float)
    b = np.array([len(set(torch_rs)) for _ in range(E)], dtype=float)
    se = math.sqrt(a.var(ddof=1) / E + b.var(ddof=1) / E)
    assert abs(a.mean() - b.mean()) < 5 * se


def test_lengths_may_be_numpy_integers_or_sized_objects() -> None:
    assert len(SoftRandomSampler(np.int64(40), 0.5, generator=0)) == 20
    assert len(SoftRandomSampler(range(40), 0.25, generator=0)) == 10


def test_fixed_subset_from_explicit_indices() -> None:
    s = FixedSubsetSampler(10, indices=[3, 1, 7], generator=0, shuffle=False)
    assert list(s) == [3, 1, 7] and len(s) == 3 and s.ratio == pytest.approx(0.3)
    shuffled = FixedSubsetSampler(10, indices=torch.tensor([3, 1, 7]), generator=0)
    assert sorted(shuffled.indices(4).tolist()) == [1, 3, 7]


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: SoftRandomSampler(10, 0.0), ValueError, "ratio must be > 0"),
        (lambda: SoftRandomSampler(10, -0.5), ValueError, "ratio must be > 0"),
        (lambda: SoftRandomSampler(10, float("nan")), ValueError, "ratio must be finite"),
        (lambda: SoftRandomSampler(10, "0.5"), TypeError, "ratio must be a real number"),
        (lambda: FreshSubsetSampler(10, 1.5), ValueError, "ratio must be <= 1"),
        (lambda: FixedSubsetSampler(10, 1.01), ValueError, "ratio must be <= 1"),
        (lambda: SoftRandomSampler([], 0.5), ValueError, "empty"),
        (lambda: SoftRandomSampler(0, 0.5), ValueError, "empty"),
        (lambda: SoftRandomSampler(10.0, 0.5), TypeError, "data set .with len... or a positive int"),
        (lambda: SoftRandomSampler(True, 0.5), TypeError, "got bool"),
        (lambda: SoftRandomSampler(10, 0.5, generator="x"), TypeError, "generator must be"),
        (lambda: SoftRandomSampler(10, 0.5).set_epoch(-1), ValueError, "epoch must be >= 0"),
        (lambda: SoftRandomSampler(10, 0.5).set_epoch(1.0), TypeError, "epoch must be an int"),
        (lambda: FixedSubsetSampler(10), ValueError, "exactly one of ratio= or indices="),
        (lambda: FixedSubsetSampler(10, 0.5, indices=[1]), ValueError, "exactly one"),
        (lambda: FixedSubsetSampler(10, indices=[1, 10]), ValueError, r"lie in \[0, 10\)"),
        (lambda: FixedSubsetSampler(10, indices=[1, 1]), ValueError, "distinct"),
        (lambda: FixedSubsetSampler(10, indices=[1.5]), TypeError, "integers"),
        (lambda: FixedSubsetSampler(10, indices=[]), ValueError, "empty"),
        (lambda: DistributedSoftRandomSampler(10, 0.5), RuntimeError, "num_replicas and rank are required"),
        (lambda: DistributedSoftRandomSampler(10, 0.5, 2, 2), ValueError, r"rank must be in \[0, 1\]"),
        (
            lambda: DistributedSoftRandomSampler(10, 0.1, 4, 0, drop_last=True),
            ValueError,
            "no sample per rank",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()
