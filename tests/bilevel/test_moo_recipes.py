"""Objective Soups recipes: level weights, nested penalty schedules (C11), state round-trips."""

from __future__ import annotations

import pytest
import torch

from bilevel.moo import MGDA, CAGrad, MoDo, Product, Recipe, bilevel_recipe, flat_recipe, multilevel_recipe
from bilevel.schedules import LinearRamp


def vmmsp_recipe(per: str) -> Recipe:
    """VM-MSP: η₁ = min(0.1 + 0.02u, 1.5), η₂ = min(0.02u, 1.5), SSL weight η₁η₂."""
    return multilevel_recipe(
        [["asr"], ["st"], ["ssl"]],
        penalties=[LinearRamp(0.1, 1.5, 70), LinearRamp(0.0, 1.5, 75)],
        per=per,
    )


def test_vmmsp_nested_penalties_c11() -> None:
    rec = vmmsp_recipe("epoch")
    assert rec.level_weights(0) == pytest.approx([1.0, 0.1, 0.0])
    assert rec.level_weights(70) == pytest.approx([1.0, 1.5, 2.1])
    assert rec.level_weights(75) == pytest.approx([1.0, 1.5, 2.25])
    assert rec.level_weights(1000) == pytest.approx([1.0, 1.5, 2.25])
    eta = Product((LinearRamp(0.1, 1.5, 70), LinearRamp(0.0, 1.5, 75)))
    assert eta(70) == pytest.approx(2.1) and eta(75) == pytest.approx(2.25)


@pytest.mark.parametrize("per", ["step", "epoch"])
def test_counter_granularity(per: str) -> None:
    rec = vmmsp_recipe(per)
    Q = torch.eye(3, dtype=torch.float64)
    for _epoch in range(3):
        for _batch in range(5):
            w = rec.weights_from_gramian(Q)
        if per == "epoch":
            rec.end_epoch()
    # per step: counter advanced once per call (15); per epoch: 3
    assert rec.counter == (15 if per == "step" else 3)
    k_last = 14 if per == "step" else 2
    assert torch.allclose(w, torch.tensor(rec.level_weights(k_last), dtype=torch.float64))


def test_recipe_levels_use_their_own_gramian_block() -> None:
    g = torch.Generator().manual_seed(0)
    G = torch.randn(5, 7, generator=g, dtype=torch.float64)
    rec = Recipe([["a", "b"], ["c", "d"], ["e"]], [MGDA(), CAGrad(0.4), None], penalties=[0.5, 2.0])
    w = rec.weights(G)
    assert torch.allclose(w[:2], MGDA().weights(G[:2]))
    assert torch.allclose(w[2:4], 0.5 * CAGrad(0.4).weights(G[2:4]))
    assert torch.allclose(w[4], torch.tensor(1.0, dtype=torch.float64))
    # a level without aggregator averages
    rec2 = Recipe([["a", "b", "c"], ["d", "e"]], penalties=[3.0])
    assert torch.allclose(rec2.weights(G), torch.tensor([1 / 3] * 3 + [1.5] * 2, dtype=torch.float64))


def test_flat_and_bilevel_are_configuration() -> None:
    g = torch.Generator().manual_seed(1)
    G = torch.randn(3, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(flat_recipe(["a", "b", "c"], MGDA())(G), MGDA()(G))
    rec = bilevel_recipe(["a", "b"], ["c"], penalty=LinearRamp(0.0, 1.0, 10), upper_aggregator=MGDA())
    assert rec.levels == [["a", "b"], ["c"]] and rec.objectives == ["a", "b", "c"]


def test_recipe_state_dict_resume_bitwise() -> None:
    g = torch.Generator().manual_seed(2)
    Gs = [(torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)) for _ in range(6)]

    def make() -> Recipe:
        return Recipe([["a", "b"], ["c"]], [MoDo(0.2), None], penalties=[LinearRamp(0.0, 1.0, 4)])

    a = make()
    full = [a(*p) for p in Gs]
    b = make()
    for p in Gs[:3]:
        b(*p)
    c = make()
    c.load_state_dict(b.state_dict())
    assert all(torch.equal(x, c(*p)) for x, p in zip(full[3:], Gs[3:]))  # resume against itself: exact


def test_recipe_errors() -> None:
    with pytest.raises(ValueError, match="unique"):
        Recipe([["a"], ["a"]], penalties=[1.0])
    with pytest.raises(ValueError, match="penalties needs 1"):
        Recipe([["a", "b"], ["c"]])
    with pytest.raises(ValueError, match="aggregator must be None"):
        Recipe([["a", "b"], ["c"]], [MGDA(), MGDA()], penalties=[1.0])
    with pytest.raises(ValueError, match="non-empty"):
        Recipe([])
    with pytest.raises(ValueError, match="per"):
        Recipe([["a", "b"]], per="batch")
    with pytest.raises(ValueError, match="3 objectives"):
        Recipe([["a", "b", "c"]]).weights(torch.randn(2, 3))
