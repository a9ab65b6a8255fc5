"""PCGrad: gradient surgery (Yu, Kumar, Gupta, Levine, Hausman, Finn, NeurIPS 2020)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from bilevel.checks import check_choice, check_int
from bilevel.moo._base import Aggregator, check_gramian, check_state_keys

REDUCTIONS = ("sum", "mean")


def pcgrad_weights(
    gramian: Tensor, *, generator: torch.Generator | None = None, reduction: str = "sum"
) -> Tensor:
    r"""Weights c with $d = \sum_i c_i g_i$ equal to PCGrad's direction, computed on the Gramian.

    For every i, in a random order over j ≠ i: if $\langle g_i^{PC}, g_j\rangle < 0$ then
    $g_i^{PC} \leftarrow g_i^{PC} - \frac{\langle g_i^{PC}, g_j\rangle}{\|g_j\|^2} g_j$; then
    $d = \sum_i g_i^{PC}$ (``reduction="sum"``, as in the paper) or the mean. Every
    $g_i^{PC}$ stays in the span of the gradients, so tracking its coefficients is exact.
    One permutation per i is drawn from ``generator`` (CPU).

    Raises:
        ValueError: the Gramian is not a finite symmetric positive semidefinite (m, m) matrix with m ≥ 2,
            or an unknown ``reduction``.
        TypeError: ``generator`` is not a CPU ``torch.Generator``.
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    if generator is not None and (
        not isinstance(generator, torch.Generator) or generator.device.type != "cpu"
    ):
        raise TypeError(f"generator must be a CPU torch.Generator or None, got {generator!r}")
    check_gramian(gramian)
    return _pcgrad_weights(gramian, generator, reduction)


def _pcgrad_weights(gramian: Tensor, generator: torch.Generator | None, reduction: str) -> Tensor:
    """`pcgrad_weights()` on checked inputs."""
    q = gramian.detach().to(device="cpu", dtype=torch.float64)
    m = q.shape[0]
    Q = q.tolist()
    total = [0.0] * m
    for i in range(m):
        coef = [0.0] * m
        coef[i] = 1.0
        for j in torch.randperm(m, generator=generator).tolist():
            if j == i or Q[j][j] <= 0:
                continue
            ip = sum(Q[j][k] * coef[k] for k in range(m))
            if ip < 0:
                coef[j] -= ip / Q[j][j]
        total = [t + c for t, c in zip(total, coef)]
    w = torch.tensor(total, dtype=torch.float64)
    if reduction == "mean":
        w = w / m
    return w.to(device=gramian.device, dtype=gramian.dtype)


class PCGrad(Aggregator):
    r"""Projecting conflicting gradients: each $g_i$ is projected onto the normal plane of every
    $g_j$ it conflicts with ($\langle g_i, g_j\rangle < 0$), in a random order, and the
    projected gradients are summed.

    Reference: T. Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020 (Algorithm 1).

    Args:
        seed: seed of the random order (a CPU ``torch.Generator``); the generator's state is part of
            `state_dict()`, so a resumed run draws the same orders.
        reduction: ``"sum"`` (paper) or ``"mean"`` of the projected gradients.
    """

    def __init__(self, seed: int = 0, *, reduction: str = "sum") -> None:
        super().__init__()
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self.generator = torch.Generator().manual_seed(check_int(seed, "seed", low=0))

    def compute_weights(self, gramian: Tensor, cross_gramian: Tensor | None, losses: Tensor | None) -> Tensor:
        return _pcgrad_weights(gramian, self.generator, self.reduction)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        gen = check_state_keys(state, {"generator"}, "PCGrad")["generator"]
        if not isinstance(gen, Tensor) or gen.dtype != torch.uint8:
            raise ValueError("PCGrad state 'generator' must be a uint8 tensor from Generator.get_state()")
        try:
            self.generator.set_state(gen)
        except RuntimeError as e:
            raise ValueError(f"PCGrad state 'generator' is not a valid CPU generator state ({e})") from e

    def __repr__(self) -> str:
        return f"PCGrad(reduction={self.reduction!r})"
