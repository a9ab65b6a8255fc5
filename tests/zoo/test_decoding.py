"""CTC decoding: greedy = argmax path collapsed; prefix beam search = exact P(y) with an unbounded beam."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.decoding import collapse, ctc_greedy, ctc_prefix_beam_search


def _brute_force(lp: torch.Tensor) -> dict[tuple[int, ...], float]:
    T, C = lp.shape
    probs: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(C), repeat=T):
        y = tuple(collapse(list(path)))
        probs[y] = probs.get(y, 0.0) + math.exp(sum(float(lp[t, c]) for t, c in enumerate(path)))
    return probs


def test_collapse() -> None:
    assert collapse([0, 1, 1, 0, 1, 2, 2, 0]) == [1, 1, 2]
    assert collapse([3, 3, 3], blank=3) == []


def test_greedy_with_lengths() -> None:
    lp = torch.full((2, 5, 3), -10.0)
    path = [[1, 1, 0, 1, 2], [2, 0, 2, 1, 1]]
    for b in range(2):
        for t, c in enumerate(path[b]):
            lp[b, t, c] = 0.0
    assert ctc_greedy(lp, torch.tensor([5, 3])) == [[1, 1, 2], [2, 2]]
    with pytest.raises(ValueError, match="lengths"):
        ctc_greedy(lp, torch.tensor([6, 3]))


@settings(max_examples=15, deadline=None)
@given(T=st.integers(1, 5), C=st.integers(2, 3), seed=st.integers(0, 1000))
def test_unbounded_beam_is_exact(T: int, C: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(T, C, generator=g, dtype=torch.float64).log_softmax(-1)
    exact = _brute_force(lp)
    res = ctc_prefix_beam_search(lp[None], beam_size=10_000)[0]
    assert len(res) == len(exact)
    for y, score in res:
        assert math.isclose(score, math.log(exact[tuple(y)]), rel_tol=0, abs_tol=1e-9)
    assert tuple(res[0][0]) == max(exact, key=exact.get)


def test_beam_finds_better_than_greedy_when_paths_split() -> None:
    # Best path is "blank blank" (0.36) but label 1 wins as a sequence: 1-paths sum to 0.64.
    p = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64)
    lp = p.log()[None]
    assert ctc_greedy(lp) == [[]]
    best, score = ctc_prefix_beam_search(lp, beam_size=4)[0][0]
    assert best == [1] and math.isclose(math.exp(score), 0.4 * 0.4 + 0.4 * 0.6 + 0.6 * 0.4)


def test_top_k_pruning_and_errors() -> None:
    lp = torch.randn(1, 6, 5).log_softmax(-1)
    a = ctc_prefix_beam_search(lp, beam_size=3, top_k=5)
    b = ctc_prefix_beam_search(lp, beam_size=3)
    assert a == b
    with pytest.raises(ValueError, match="beam_size"):
        ctc_prefix_beam_search(lp, beam_size=0)
    with pytest.raises(ValueError, match="log_probs"):
        ctc_prefix_beam_search(lp[0])
