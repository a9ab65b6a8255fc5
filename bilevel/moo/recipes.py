"""Objective Soups recipes: objectives in levels, MOO within a level, levels joined by growing penalties.

Saif et al., "Objective Soups: Multilingual Multi-Task Modeling for Speech Processing", arXiv 2508.09228.
A recipe is configuration: a list of levels (objective names), one aggregator per level, and one penalty
schedule per level below the top. It is itself an [`Aggregator`][bilevel.moo.Aggregator] over all objectives,
so [`bilevel.moo.backward()`][bilevel.moo.backward] applies any recipe unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bilevel.checks import check_choice, check_int, check_real
from bilevel.moo._base import Aggregator, check_state_keys
from bilevel.schedules import Schedule, as_schedule


@dataclass(frozen=True)
class Product:
    """η_k = Π_j s_j(k): the product of several schedules (nested penalties, e.g. η₁·η₂ in VM-MSP)."""

    schedules: tuple[Schedule, ...]

    def __post_init__(self) -> None:
        if not self.schedules:
            raise ValueError("Product needs at least one schedule")

    def __call__(self, k: int) -> float:
        out = 1.0
        for s in self.schedules:
            out *= float(s(k))
        return out


class Recipe(Aggregator):
    r"""Hierarchical multi-objective direction over levels $\ell = 1..L$ of objectives:

    $$
    d = \sum_{\ell=1}^{L} \Big(\prod_{j<\ell} \eta_j(k)\Big) \sum_{i \in \ell} w^{(\ell)}_i g_i,
    $$

    where $w^{(\ell)}$ are the weights of level ℓ's aggregator computed on that level's Gramian
    block (a level with one objective has weight 1; a level without an aggregator averages), and
    $\eta_j(k)$ is the penalty joining level j + 1 to level j, a schedule of the counter k.

    - flat (R1): ``Recipe([["asr", "st", "ssl"]], [MoDo()])``
    - bi-level (R2, SSL below):
      ``Recipe([["asr", "st"], ["ssl"]], [MGDA(), None], penalties=[LinearRamp(0, 1, 500)])``
    - multi-level (R3, "UAS": ASR, then translation, then SSL), with the VM-MSP nested penalties
      η₁ = min(0.1 + 0.02u, 1.5), η₂ = min(0.02u, 1.5) and SSL weight η₁η₂:
      ``Recipe([["asr"], ["st"], ["ssl"]], penalties=[LinearRamp(0.1, 1.5, 70), LinearRamp(0.0, 1.5, 75)])``

    The counter k advances once per call (``per="step"``) or by `end_epoch()` (``per="epoch"``, the
    intent of the VM-MSP README; its code advanced per batch).

    Args:
        levels: objective names per level, top level first; names must be unique.
        aggregators: one per level (``None``: mean of the level's gradients); default all ``None``.
        penalties: L − 1 schedules (or floats ≥ 0) joining consecutive levels. A penalty weights the
            levels below it, so it must be non-negative (a negative one would ascend them): floats are
            checked here, schedules whenever they are evaluated.
        per: ``"step"`` or ``"epoch"``.
    """

    def __init__(
        self,
        levels: Sequence[Sequence[str]],
        aggregators: Sequence[Aggregator | None] | None = None,
        *,
        penalties: Sequence[Schedule | float] = (),
        per: str = "step",
    ) -> None:
        super().__init__()
        if isinstance(levels, str) or not levels:
            raise ValueError("levels must be a non-empty list of lists of objective names")
        self.levels = [list(lv) for lv in levels]
        if any(len(lv) == 0 for lv in self.levels):
            raise ValueError("every level needs at least one objective")
        self.objectives = [n for lv in self.levels for n in lv]
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objective names must be unique, got {self.objectives}")
        aggs = [None] * len(self.levels) if aggregators is None else list(aggregators)
        if len(aggs) != len(self.levels):
            raise ValueError(f"aggregators has {len(aggs)} entries for {len(self.levels)} levels")
        for a, lv in zip(aggs, self.levels):
            if a is not None and not isinstance(a, Aggregator):
                raise TypeError(f"aggregators must be Aggregator or None, got {type(a).__name__}")
            if a is not None and len(lv) < 2:
                raise ValueError(f"level {lv} has one objective; its aggregator must be None")
        self.aggregators = aggs
        if len(penalties) != len(self.levels) - 1:
            raise ValueError(
                f"penalties needs {len(self.levels) - 1} schedules (one per level below the top)"
            )
        for i, p in enumerate(penalties):
            if isinstance(p, (int, float)):
                check_real(p, f"penalties[{i}]", low=0.0)
        self.penalties: list[Schedule] = [as_schedule(p, f"penalties[{i}]") for i, p in enumerate(penalties)]
        self.per = check_choice(per, "per", ("step", "epoch"))
        self.counter = 0

    @property
    def double_sampling(self) -> bool:  # type: ignore[override]
        return any(a is not None and a.double_sampling for a in self.aggregators)

    def level_weights(self, k: int | None = None) -> list[float]:
        """The penalty product in front of each level at counter k (default: the current counter)."""
        k = self.counter if k is None else check_int(k, "k", low=0)
        out, acc = [1.0], 1.0
        for i, s in enumerate(self.penalties):
            value = s(k)
            acc *= check_real(value, f"penalties[{i}] at k={k}", low=0.0)
            out.append(acc)
        return out

    def compute_weights(self, gramian: Tensor, cross_gramian: Tensor | None, losses: Tensor | None) -> Tensor:
        m = len(self.objectives)
        Q = gramian
        if Q.shape[0] != m:
            raise ValueError(f"the recipe has {m} objectives but the Gramian is {Q.shape[0]}×{Q.shape[0]}")
        w = torch.zeros(m, dtype=Q.dtype, device=Q.device)
        start = 0
        for lw, lv, agg in zip(self.level_weights(), self.levels, self.aggregators):
            sl = slice(start, start + len(lv))
            if agg is None:
                sub = torch.full((len(lv),), 1.0 / len(lv), dtype=Q.dtype, device=Q.device)
            else:
                sub = agg.weights_from_gramian(
                    Q[sl, sl],
                    None if cross_gramian is None else cross_gramian[sl, sl],
                    losses=None if losses is None else losses[sl],
                ).to(Q)
            w[sl] = lw * sub
            start += len(lv)
        if self.per == "step":
            self.counter += 1
        return w

    def end_epoch(self) -> None:
        """Advance the penalty counter (``per="epoch"``)."""
        self.counter += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "counter": self.counter,
            "aggregators": [None if a is None else a.state_dict() for a in self.aggregators],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = check_state_keys(state, {"counter", "aggregators"}, "Recipe")
        counter = check_int(state["counter"], "Recipe state 'counter'", low=0)
        subs = state["aggregators"]
        if not isinstance(subs, (list, tuple)) or len(subs) != len(self.aggregators):
            raise ValueError(f"Recipe state 'aggregators' must be a list of {len(self.aggregators)} entries")
        for i, (a, s) in enumerate(zip(self.aggregators, subs)):
            if (a is None) != (s is None):
                raise ValueError(f"Recipe state 'aggregators'[{i}] does not match level {self.levels[i]}")
        for a, s in zip(self.aggregators, subs):
            if a is not None:
                a.load_state_dict(s)
        self.counter = counter

    def __repr__(self) -> str:
        return f"Recipe(levels={self.levels}, aggregators={self.aggregators}, per={self.per!r})"


def flat_recipe(objectives: Sequence[str], aggregator: Aggregator) -> Recipe:
    """R1: one MOO over every objective."""
    return Recipe([list(objectives)], [aggregator])


def bilevel_recipe(
    upper: Sequence[str],
    lower: Sequence[str],
    *,
    penalty: Schedule | float,
    upper_aggregator: Aggregator | None = None,
    lower_aggregator: Aggregator | None = None,
    per: str = "step",
) -> Recipe:
    """R2: MOO over ``upper`` subject to the ``lower`` level, joined by a growing ``penalty``."""
    return Recipe(
        [list(upper), list(lower)], [upper_aggregator, lower_aggregator], penalties=[penalty], per=per
    )


def multilevel_recipe(
    levels: Sequence[Sequence[str]],
    *,
    penalties: Sequence[Schedule | float],
    aggregator: Callable[[], Aggregator] | None = None,
    per: str = "step",
) -> Recipe:
    """R3: nested levels (e.g. ASR, then translation, then SSL); ``aggregator()`` builds one per level with
    at least two objectives."""
    aggs = [aggregator() if aggregator is not None and len(lv) > 1 else None for lv in levels]
    return Recipe(levels, aggs, penalties=penalties, per=per)
