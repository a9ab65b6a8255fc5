"""What a [`PenaltyBGD`][bilevel.PenaltyBGD] step reports, materialised lazily so that a step need not wait
for
the device."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

MEASURED = ("f", "g", "gap", "upper_grad_norm", "lower_grad_norm", "v")
"""The named quantities a step measures on the device (moved to the host together, in one transfer)."""


class Measured:
    """Named 0-d device tensors packed into one vector, read back by name in one transfer.

    ``Measured({"f": f, "g": g, ...})`` stacks the values (no sync); `values()` (or indexing by name)
    moves them to the host once and returns a ``dict`` name -> float.
    """

    __slots__ = ("_names", "_tensor", "_values")

    def __init__(self, values: Mapping[str, Tensor], dtype: torch.dtype) -> None:
        self._names = tuple(values)
        self._tensor: Tensor | None = torch.stack([v.detach().reshape(()).to(dtype) for v in values.values()])
        self._values: dict[str, float] | None = None

    def values(self) -> dict[str, float]:
        """Every quantity as a Python float (the first call waits for the device)."""
        if self._values is None:
            assert self._tensor is not None
            self._values = dict(zip(self._names, (float(v) for v in self._tensor.tolist()), strict=True))
            self._tensor = None
        return self._values

    def __getitem__(self, name: str) -> float:
        return self.values()[name]

    def set(self, name: str, value: float) -> None:
        """Replace one value (after it was re-measured on the host)."""
        self.values()[name] = float(value)


class PenaltyStats:
    r"""What `PenaltyBGD.step()` returns, measured before the update (floats, on the calling rank).

    Attributes:
        step: index of this step (0 for the first call).
        f: upper loss $f(x, y)$.
        g: lower loss $g(x, y)$.
        gap: the penalty term: $g(x, y) - g(x, \omega)$ (value penalty with ``inner_steps > 0``),
            $\lVert\nabla_y g\rVert^2$ (gradient penalty), else ``None`` (v unknown).
        gamma: the penalty constant γ used at this step.
        scale: the step scaling c (``min(1, 1/γ)`` or 1) that multiplied both gradients.
        upper_grad_norm: $\lVert\nabla_x F_\gamma\rVert$ (0 without upper parameters), before clipping.
        lower_grad_norm: $\lVert\nabla_y F_\gamma\rVert$, before clipping.
        skipped: the GradScaler found non-finite gradients and the update was skipped.

    ``f``, ``g``, ``gap`` and the norms live on the device until first read; with
    ``PenaltyBGD(check_finite=True)`` (the default) they were already read to validate the step.
    `as_dict()` gives them all as a plain dict, as
    [`bilevel.EquilibriumStats.as_dict()`][bilevel.EquilibriumStats.as_dict] does.
    """

    __slots__ = ("_has_gap", "_measured", "gamma", "scale", "skipped", "step")

    def __init__(
        self, *, step: int, gamma: float, scale: float, skipped: bool, measured: Measured, has_gap: bool
    ) -> None:
        self.step = step
        self.gamma = gamma
        self.scale = scale
        self.skipped = skipped
        self._has_gap = has_gap
        self._measured = measured

    @property
    def f(self) -> float:
        return self._measured["f"]

    @property
    def g(self) -> float:
        return self._measured["g"]

    @property
    def gap(self) -> float | None:
        return self._measured["gap"] if self._has_gap else None

    @property
    def upper_grad_norm(self) -> float:
        return self._measured["upper_grad_norm"]

    @property
    def lower_grad_norm(self) -> float:
        return self._measured["lower_grad_norm"]

    def as_dict(self) -> dict[str, Any]:
        """The stats as a plain dict (for loggers)."""
        return {
            "step": self.step,
            "f": self.f,
            "g": self.g,
            "gap": self.gap,
            "upper_grad_norm": self.upper_grad_norm,
            "lower_grad_norm": self.lower_grad_norm,
            "gamma": self.gamma,
            "scale": self.scale,
            "skipped": self.skipped,
        }

    def __repr__(self) -> str:
        return "PenaltyStats(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items()) + ")"
