"""Layer selection (Objective Soups, arXiv 2508.09228): aggregate only where the objectives conflict.

Each layer (a parameter tensor, or a group of tensors such as one module) is scored by the mean pairwise
cosine of the objectives' gradients on that layer; layers scoring below τ (or the k lowest) are
"conflicting". The aggregator's weights are computed from those layers' gradients only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from bilevel.checks import check_choice, check_int, check_real
from bilevel.moo._base import check_state_keys

APPLY_TO = ("all", "selected")
OTHERS = ("mean", "sum", "none")
SCORING = ("full", "lean")


def layer_scores(gramians: Tensor) -> Tensor:
    r"""Mean pairwise cosine $\frac{2}{m(m-1)}\sum_{i<j}\cos(g_i^\ell, g_j^\ell)$ per layer.

    Args:
        gramians: (L, m, m) per-layer Gramians $Q^\ell = G^\ell G^{\ell\top}$.

    A pair where either gradient is zero on that layer contributes a cosine of 0 (no information).
    """
    if not isinstance(gramians, Tensor) or not gramians.is_floating_point():
        raise TypeError(f"gramians must be a floating-point torch.Tensor, got {gramians!r:.80}")
    if gramians.dim() != 3 or gramians.shape[1] != gramians.shape[2] or gramians.shape[1] < 2:
        raise ValueError(f"gramians must have shape (layers, m, m) with m >= 2, got {tuple(gramians.shape)}")
    if not bool(torch.isfinite(gramians).all()):
        raise ValueError("gramians has non-finite entries (NaN or inf)")
    q = gramians.detach().to(torch.float64)
    n = q.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt()
    den = n[:, :, None] * n[:, None, :]
    cos = torch.where(den > 0, q / den.clamp_min(1e-300), torch.zeros_like(q))
    m = q.shape[1]
    iu = torch.triu_indices(m, m, offset=1)
    return cos[:, iu[0], iu[1]].mean(dim=1)


def select_layers(scores: Tensor, *, threshold: float = 0.0, k: int | None = None) -> list[int]:
    """Indices of the conflicting layers: ``scores < threshold``, or the ``k`` lowest scores when k is set
    (ties broken by the lower index)."""
    if not isinstance(scores, Tensor) or not scores.is_floating_point():
        raise TypeError(f"scores must be a floating-point torch.Tensor, got {scores!r:.80}")
    if scores.dim() != 1:
        raise ValueError(f"scores must be a vector, got shape {tuple(scores.shape)}")
    if bool(torch.isnan(scores).any()):
        raise ValueError("scores has NaN entries")
    threshold = check_real(threshold, "threshold")
    if k is not None:
        k = min(check_int(k, "k", low=1), scores.numel())
        order = torch.argsort(scores.detach().cpu(), stable=True)
        return sorted(order[:k].tolist())
    return (scores.detach().cpu() < threshold).nonzero().flatten().tolist()


def group_by_module(module: nn.Module, *, prefix: str = "") -> list[list[Tensor]]:
    """One layer per submodule that owns parameters directly (e.g. a Linear's weight and bias together).

    ``prefix`` keeps only submodules whose qualified name starts with it (e.g. ``"encoder"``).
    """
    groups = []
    for name, mod in module.named_modules():
        if prefix and not name.startswith(prefix):
            continue
        ps = [p for p in mod.parameters(recurse=False) if p.requires_grad]
        if ps:
            groups.append(ps)
    if not groups:
        raise ValueError(f"group_by_module: no trainable parameters under prefix {prefix!r}")
    return groups


@dataclass(frozen=True)
class SelectionPlan:
    """What one [`backward()`][bilevel.moo.backward] step needs from a `LayerSelection`.

    Attributes:
        layer_of: the layer of every shared tensor.
        n_layers: the number of layers.
        scoring: whether this step re-scores the layers (it then needs every layer's per-objective
            gradients).
        tensors: indices of the shared tensors whose per-objective gradients this step needs.
    """

    layer_of: list[int]
    n_layers: int
    scoring: bool
    tensors: list[int]


class LayerSelection:
    r"""Configuration and state of layer selection for [`bilevel.moo.backward()`][bilevel.moo.backward].

    On a *scoring* step (the first one, then every ``rescore_every`` steps) the objectives' gradients of
    every shared layer are computed, each layer is scored with `layer_scores()`, and the conflicting
    set S is chosen (`select_layers()`). The aggregator's weights w are computed from the Gramian
    $\sum_{\ell\in S} Q^\ell$ of the selected layers only. On the other steps, per-objective
    gradients are computed **for the layers in S only** — the memory and time saving — and the rest of
    the model gets one ordinary backward pass.

    Two ways to apply the weights (``apply_to``):

    - ``"all"``: every shared layer receives $\sum_i w_i g_i^\ell$ (the weights are estimated on
      the conflicting layers and used everywhere; one extra weighted backward for the unselected layers).
    - ``"selected"``: layers in S receive $\sum_i w_i g_i^\ell$; the others receive the gradient of
      the mean (``others="mean"``) or sum of the losses, or nothing (``others="none"``, the VM-MSP code,
      where an optimizer then skips them).

    If no layer conflicts, S is empty and the weights are uniform (1/m): the mean gradient (the aggregator
    is then not called, so its ``last_weights`` and state do not change).

    The object owns the policy and its state: `plan()` says what a step needs, `update()` scores
    and selects, `weights_elsewhere()` says what unselected layers receive, and `advance()` counts
    the step (``steps``; set ``steps = 0`` to force a re-scoring at the next step).

    Args:
        threshold: τ; layers with score < τ are selected (default 0: negative mean cosine).
        k: select the k lowest-scoring layers instead of thresholding.
        apply_to: ``"all"`` or ``"selected"``.
        others: what unselected layers receive when ``apply_to="selected"``.
        rescore_every: re-score the layers every this many steps (1 = every step, no time saving).
        scoring: ``"full"`` computes every layer's per-objective gradients in one batched backward on a
            scoring step (fast; peak memory of a full step); ``"lean"`` computes them layer by layer and
            keeps only the layers that can still be selected (peak memory of the selected layers plus one
            layer, at the cost of one batched backward per layer on scoring steps).
        layers: how shared parameters group into layers (lists of tensors; see `group_by_module()`);
            default: every parameter tensor is its own layer (as in the Objective Soups code).
    """

    def __init__(
        self,
        threshold: float = 0.0,
        k: int | None = None,
        *,
        apply_to: str = "all",
        others: str = "mean",
        rescore_every: int = 10,
        layers: Sequence[Sequence[Tensor]] | None = None,
        scoring: str = "full",
    ) -> None:
        self.threshold = check_real(threshold, "threshold", low=-1.0, high=1.0)
        self.k = None if k is None else check_int(k, "k", low=1)
        self.apply_to = check_choice(apply_to, "apply_to", APPLY_TO)
        self.others = check_choice(others, "others", OTHERS)
        self.rescore_every = check_int(rescore_every, "rescore_every", low=1)
        self.scoring = check_choice(scoring, "scoring", SCORING)
        self.layers = None if layers is None else [list(g) for g in layers]
        if self.layers is not None and any(len(g) == 0 for g in self.layers):
            raise ValueError("layers contains an empty group")
        self.steps = 0
        self.selected: list[int] | None = None
        self.scores: Tensor | None = None

    def needs_scoring(self) -> bool:
        """Whether the next step re-scores the layers."""
        return self.selected is None or self.steps % self.rescore_every == 0

    def plan(self, params: Sequence[Tensor]) -> SelectionPlan:
        """What the next step needs: the layers of ``params`` and which tensors' per-objective gradients."""
        layer_of = self.layer_index(params)
        scoring = self.needs_scoring()
        chosen = set(self.selected or [])
        tensors = [i for i, li in enumerate(layer_of) if scoring or li in chosen]
        return SelectionPlan(layer_of, self.n_layers(params), scoring, tensors)

    def still_selectable(self, scores: Mapping[int, float]) -> set[int]:
        """Layers among those scored so far (``layer → score``) that the final selection may contain.

        With a threshold, a layer's own score decides; with k, the k lowest so far (scoring more layers
        only removes candidates), so streaming the layers through this keeps a superset of S.
        """
        ids = sorted(scores)
        vec = torch.tensor([float(scores[i]) for i in ids], dtype=torch.float64)
        return {ids[j] for j in select_layers(vec, threshold=self.threshold, k=self.k)} if ids else set()

    def weights_elsewhere(self, w: Tensor) -> Tensor | None:
        """The weights of the objectives' gradients on an unselected layer (``None``: no gradient)."""
        if self.apply_to == "all":
            return w
        m = w.shape[0]
        if self.others == "mean":
            return torch.full_like(w, 1.0 / m)
        if self.others == "sum":
            return torch.ones_like(w)
        return None

    @property
    def writes_elsewhere(self) -> bool:
        """Whether unselected layers receive a gradient (see `weights_elsewhere()`)."""
        return self.apply_to == "all" or self.others != "none"

    def advance(self) -> None:
        """Count one step (the re-scoring period is measured in steps)."""
        self.steps += 1

    def layer_index(self, params: Sequence[Tensor]) -> list[int]:
        """The layer of every tensor in ``params`` (validating that ``layers`` partitions them)."""
        if self.layers is None:
            return list(range(len(params)))
        where: dict[int, int] = {}
        for li, g in enumerate(self.layers):
            for p in g:
                if id(p) in where:
                    raise ValueError("layers lists the same tensor in two groups")
                where[id(p)] = li
        missing = [tuple(p.shape) for p in params if id(p) not in where]
        if missing:
            raise ValueError(f"layers does not cover shared parameters of shapes {missing}")
        if len(where) != len(params):
            raise ValueError("layers contains tensors that are not among the shared parameters")
        return [where[id(p)] for p in params]

    def n_layers(self, params: Sequence[Tensor]) -> int:
        return len(params) if self.layers is None else len(self.layers)

    def update(self, layer_gramians: Tensor) -> list[int]:
        """Score the layers from their (L, m, m) Gramians and choose S."""
        if self.layers is not None and layer_gramians.shape[0] != len(self.layers):
            raise ValueError(
                f"layer_gramians has {layer_gramians.shape[0]} layers, the selection {len(self.layers)}"
            )
        self.scores = layer_scores(layer_gramians)
        self.selected = select_layers(self.scores, threshold=self.threshold, k=self.k)
        return self.selected

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "selected": None if self.selected is None else list(self.selected),
            "scores": None if self.scores is None else self.scores.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = check_state_keys(state, {"steps", "selected", "scores"}, "LayerSelection")
        steps = check_int(state["steps"], "LayerSelection state 'steps'", low=0)
        selected, scores = state["selected"], state["scores"]
        if selected is not None:
            selected = [check_int(i, "LayerSelection state 'selected'", low=0) for i in selected]
        if scores is not None:
            if not isinstance(scores, Tensor) or scores.dim() != 1 or not bool(torch.isfinite(scores).all()):
                raise ValueError("LayerSelection state 'scores' must be a finite vector or None")
            scores = scores.clone()
        self.steps, self.selected, self.scores = steps, selected, scores

    def __repr__(self) -> str:
        sel = f"k={self.k}" if self.k is not None else f"threshold={self.threshold}"
        return (
            f"LayerSelection({sel}, apply_to={self.apply_to!r}, others={self.others!r}, "
            f"rescore_every={self.rescore_every}, scoring={self.scoring!r})"
        )
