"""What a :class:`~bilevel.PenaltyBGD` step reports, materialised lazily so that a step need not wait for
the device."""

from __future__ import annotations

from typing import Any

from torch import Tensor

_LAZY = ("f", "g", "gap", "upper_grad_norm", "lower_grad_norm")


class PenaltyStats:
    r"""What :meth:`PenaltyBGD.step` returns, measured before the update (floats, on the calling rank).

    Attributes:
        step: index of this step (0 for the first call).
        f: upper loss :math:`f(x, y)`.
        g: lower loss :math:`g(x, y)`.
        gap: the penalty term: :math:`g(x, y) - g(x, \omega)` (value penalty with ``inner_steps > 0``),
            :math:`\lVert\nabla_y g\rVert^2` (gradient penalty), else ``None`` (v unknown).
        gamma: the penalty constant γ used at this step.
        scale: the step scaling c (``min(1, 1/γ)`` or 1) that multiplied both gradients.
        upper_grad_norm: :math:`\lVert\nabla_x F_\gamma\rVert` (0 without upper parameters).
        lower_grad_norm: :math:`\lVert\nabla_y F_\gamma\rVert`.
        skipped: the GradScaler found non-finite gradients and the update was skipped.

    ``f``, ``g``, ``gap`` and the norms live on the device until first read; with
    ``PenaltyBGD(check_finite=True)`` (the default) they were already read to validate the step.
    """

    __slots__ = ("_has_gap", "_tensor", "_values", "gamma", "scale", "skipped", "step")

    def __init__(
        self,
        *,
        step: int,
        gamma: float,
        scale: float,
        skipped: bool,
        values: Tensor | list[float],
        has_gap: bool,
    ) -> None:
        self.step = step
        self.gamma = gamma
        self.scale = scale
        self.skipped = skipped
        self._has_gap = has_gap
        self._tensor: Tensor | None = values if isinstance(values, Tensor) else None
        self._values: list[float] | None = None if isinstance(values, Tensor) else list(values)

    def _get(self, i: int) -> float:
        if self._values is None:
            assert self._tensor is not None
            self._values = [float(v) for v in self._tensor.tolist()]
            self._tensor = None
        return self._values[i]

    @property
    def f(self) -> float:
        return self._get(0)

    @property
    def g(self) -> float:
        return self._get(1)

    @property
    def gap(self) -> float | None:
        return self._get(2) if self._has_gap else None

    @property
    def upper_grad_norm(self) -> float:
        return self._get(3)

    @property
    def lower_grad_norm(self) -> float:
        return self._get(4)

    def as_dict(self) -> dict[str, Any]:
        """The stats as a plain dict (for loggers)."""
        return {
            "step": self.step,
            **{name: getattr(self, name) for name in _LAZY},
            "gamma": self.gamma,
            "scale": self.scale,
            "skipped": self.skipped,
        }

    def __repr__(self) -> str:
        return "PenaltyStats(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items()) + ")"
