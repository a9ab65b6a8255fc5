"""Argument contract of `soft_random_indices` and `SoftRandomSampler`, stated from their docstrings.

``length`` >= 1 and ``num_samples`` >= 0 (ints, not bools); ``ratio`` > 0 (above 1 allowed, with
replacement); ``generator`` an int seed, a ``torch.Generator`` or ``None``. Every refusal names the argument
(whole word, case-sensitive); the lowest valid values are accepted; the draws are int64 in ``[0, length)``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import pytest
import torch

from bilevel.sampling import SoftRandomSampler
from bilevel.sampling.soft_random import soft_random_indices
from tests.bilevel._asserts import BadInput, assert_rejects

NAN = float("nan")

BAD_LENGTH: tuple[Any, ...] = (0, -1, True, 2.0, None)
BAD_NUM_SAMPLES: tuple[Any, ...] = (-1, False, 1.0, None)
BAD_RATIO: tuple[Any, ...] = (0.0, -1e-9, NAN, math.inf, "0.5", True)
BAD_SOURCE: tuple[Any, ...] = (0, -3, [], True, 2.5)
BAD_GENERATOR: tuple[Any, ...] = (True, 1.5, "0")
BAD: list[BadInput] = [
    *[BadInput(f"length={v!r}", partial(soft_random_indices, v, 3), match="length") for v in BAD_LENGTH],
    *[
        BadInput(f"num_samples={v!r}", partial(soft_random_indices, 5, v), match="num_samples")
        for v in BAD_NUM_SAMPLES
    ],
    *[BadInput(f"ratio={v!r}", partial(SoftRandomSampler, 10, v), match="ratio") for v in BAD_RATIO],
    *[
        BadInput(
            f"data_source_or_length={v!r}",
            partial(SoftRandomSampler, v, 0.5),
            match="data_source_or_length",
        )
        for v in BAD_SOURCE
    ],
    *[
        BadInput(f"generator={v!r}", partial(SoftRandomSampler, 10, 0.5, generator=v), match="generator")
        for v in BAD_GENERATOR
    ],
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_rejects_bad_argument(case: BadInput) -> None:
    assert_rejects(case)


@pytest.mark.parametrize(("length", "num_samples"), [(1, 0), (1, 1), (1, 7), (3, 0), (3, 50)])
def test_soft_random_indices_lowest_valid_values(length: int, num_samples: int) -> None:
    idx = soft_random_indices(length, num_samples, torch.Generator().manual_seed(0))
    assert idx.dtype == torch.int64 and idx.shape == (num_samples,)
    assert bool(((idx >= 0) & (idx < length)).all())


@pytest.mark.parametrize(
    ("length", "ratio", "n"), [(1, 1e-9, 1), (1, 1.0, 1), (10, 1e-12, 1), (10, 0.3, 3), (10, 2.5, 25)]
)
def test_sampler_accepts_small_and_above_one_ratios(length: int, ratio: float, n: int) -> None:
    s = SoftRandomSampler(length, ratio, generator=0)
    assert len(s) == n
    idx = s.indices(0)
    assert idx.dtype == torch.int64 and idx.shape == (n,)
    assert bool(((idx >= 0) & (idx < length)).all())


@pytest.mark.parametrize("generator", [0, 2**63, torch.Generator().manual_seed(5), None])
def test_sampler_accepts_every_generator_kind(generator: object) -> None:
    s = SoftRandomSampler(range(4), 0.5, generator=generator)  # type: ignore[arg-type]
    drawn = [int(i) for i in s]
    assert len(drawn) == 2 and all(0 <= i < 4 for i in drawn)


def test_default_generator_is_none() -> None:
    torch.manual_seed(123)
    a = SoftRandomSampler(50, 0.5).indices(0)
    torch.manual_seed(123)
    b = SoftRandomSampler(50, 0.5, generator=None).indices(0)
    assert torch.equal(a, b)


def test_default_generator_of_indices_is_torchs_global_rng() -> None:
    torch.manual_seed(7)
    a = soft_random_indices(100, 20)
    torch.manual_seed(7)
    b = soft_random_indices(100, 20, None)
    assert torch.equal(a, b)


def test_a_given_generator_alone_determines_the_draw() -> None:
    """The same seeded generator gives the same draw, whatever the state of torch's global RNG."""
    draws = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        draws.append(soft_random_indices(1000, 50, torch.Generator().manual_seed(3)))
    assert torch.equal(draws[0], draws[1])
    samplers = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        samplers.append(SoftRandomSampler(1000, 0.05, generator=3).indices(4))
    assert torch.equal(samplers[0], samplers[1])
