r"""Gradient conflict on the shared encoder, layer by layer (as the authors'
``plot_top_conflicts_by_task_pair`` shows it).

For objectives $i, j$ and a shared tensor $\ell$ (a "layer"), the cosine
$\cos(g_i^\ell, g_j^\ell)$ of their gradients; a layer's score is the mean over pairs
([`bilevel.moo.layer_scores`][bilevel.moo.layer_scores]) and it *conflicts* when the score is below
τ = 0, the criterion of Objective Soups' layer selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bilevel.moo import layer_scores
from zoo.recipes.objective_soups.model import SoupsModel

__all__ = ["conflict_profile"]


def conflict_profile(
    model: SoupsModel, draw: dict[str, Any], names: Sequence[str], *, threshold: float = 0.0, top: int = 10
) -> dict[str, Any]:
    """Per-layer pairwise cosines of the objectives ``names`` on one draw.

    Returns ``{"pair_cosines": all layer-wise pairwise cosines (list), "whole": pairwise cosines of the
    whole encoder's gradients, "scores": {layer: mean pairwise cosine}, "conflicting_fraction": share of
    layers scoring below ``threshold``, "top": the ``top`` lowest-scoring layers as (name, score)}``.
    """
    if len(names) < 2:
        raise ValueError(f"names must list at least two objectives, got {list(names)}")
    named = model.shared_named_parameters()
    params = [p for _, p in named]
    losses = model.objective_losses(draw, names)
    grads = [
        torch.autograd.grad(losses[n], params, retain_graph=True, allow_unused=True, materialize_grads=True)
        for n in names
    ]
    m = len(names)
    gram = torch.stack(
        [
            torch.stack(
                [torch.stack([(grads[i][k] * grads[j][k]).sum() for j in range(m)]) for i in range(m)]
            )
            for k in range(len(params))
        ]
    ).double()
    scores = layer_scores(gram)
    d = gram.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt()
    cos = gram / (d[:, :, None] * d[:, None, :]).clamp_min(1e-30)
    iu = torch.triu_indices(m, m, 1)
    pair = cos[:, iu[0], iu[1]]
    whole = gram.sum(0)
    wd = whole.diagonal().clamp_min(0).sqrt()
    wcos = (whole / (wd[:, None] * wd[None, :]).clamp_min(1e-30))[iu[0], iu[1]]
    order = torch.argsort(scores, stable=True)[:top].tolist()
    return {
        "names": list(names),
        "pair_cosines": pair.flatten().tolist(),
        "whole": wcos.tolist(),
        "scores": {named[k][0]: float(scores[k]) for k in range(len(params))},
        "conflicting_fraction": float((scores < threshold).double().mean()),
        "top": [(named[k][0], float(scores[k])) for k in order],
    }
