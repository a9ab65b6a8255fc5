"""`mgda_weights` with its normalizations, against the two-gradient closed form.

For m = 2 the min-norm point of $\\{\\hat g_1, \\hat g_2\\}$ has
$\\alpha_1 = \\mathrm{clip}(\\langle \\hat g_2 - \\hat g_1, \\hat g_2\\rangle
/ \\|\\hat g_1 - \\hat g_2\\|^2, 0, 1)$,
with $\\hat g_i = g_i / s_i$: $s_i = \\|g_i\\|$ (``"l2"``: unit vectors, so $\\alpha = (1/2, 1/2)$),
$s_i = L_i$ (``"loss"``), $s_i = L_i\\|g_i\\|$ (``"loss+"``).
"""

from __future__ import annotations

import pytest
import torch

from bilevel.moo import mgda_weights

D = torch.float64
G = torch.tensor([[3.0, 0.5, -1.0], [-0.5, 1.0, 0.2]], dtype=D)  # norms 3.2 and 1.1: unequal
LOSSES = torch.tensor([2.0, 0.25], dtype=D)


def _closed_form(g: torch.Tensor) -> torch.Tensor:
    a = float(((g[1] - g[0]) @ g[1]) / (g[0] - g[1]).pow(2).sum())
    a = min(max(a, 0.0), 1.0)
    return torch.tensor([a, 1 - a], dtype=D)


@pytest.mark.parametrize(
    ("normalization", "scale"),
    [
        ("none", torch.ones(2, dtype=D)),
        ("l2", G.norm(dim=1)),
        ("loss", LOSSES),
        ("loss+", LOSSES * G.norm(dim=1)),
    ],
)
def test_mgda_weights_match_the_closed_form(normalization: str, scale: torch.Tensor) -> None:
    w = mgda_weights(G @ G.T, normalization=normalization, losses=LOSSES)
    torch.testing.assert_close(w, _closed_form(G / scale[:, None]), rtol=0, atol=1e-12)


def test_l2_normalization_gives_equal_weights_and_differs_from_none() -> None:
    w = mgda_weights(G @ G.T, normalization="l2")
    torch.testing.assert_close(w, torch.full((2,), 0.5, dtype=D), rtol=0, atol=1e-12)
    assert float((mgda_weights(G @ G.T) - w).abs().max()) > 0.1
