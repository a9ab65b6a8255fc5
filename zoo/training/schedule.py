r"""The built-in learning-rate schedule: linear warm-up, then cosine decay, as a ``torch`` LR scheduler.

$$
\eta_k = \eta_0 \cdot \begin{cases} (k + 1)/w & k < w \\
r + (1 - r)\,\tfrac12\bigl(1 + \cos(\pi \min(1, (k - w)/(K - w)))\bigr) & k \ge w \end{cases}
$$

with warm-up length $w$, total steps $K$ and final ratio $r$ (Loshchilov & Hutter, SGDR,
arXiv 1608.03983; warm-up as in Goyal et al., arXiv 1706.02677). Under a time budget the decay follows the
spent fraction of the budget whenever that is ahead of the step count, so a run stopped by time still ends
at a decayed learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from zoo.checks import check_int, check_real

__all__ = ["WarmupCosine", "warmup_cosine"]


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warm-up to 1 over ``warmup`` steps, then cosine decay to ``min_ratio``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


class WarmupCosine(LRScheduler):
    """Warm-up + cosine decay of every parameter group's initial lr (see the module docstring).

    Args:
        optimizer: a ``torch.optim`` optimizer.
        total_steps: $K$, the step at which the decay reaches ``min_ratio``.
        warmup: $w$, linear warm-up steps.
        min_ratio: $r$, the final lr as a fraction of the initial one.
        progress: optional ``progress() -> fraction of the budget spent`` (e.g. of a time budget); the
            decay then runs at ``max(step, w + fraction · (K − w))``. Not saved in ``state_dict``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        warmup: int = 0,
        min_ratio: float = 0.0,
        progress: Callable[[], float] | None = None,
    ) -> None:
        self.total_steps = check_int(total_steps, "total_steps", low=0)
        self.warmup = check_int(warmup, "warmup", low=0)
        self.min_ratio = check_real(min_ratio, "min_ratio", low=0.0, high=1.0)
        self.progress = progress
        super().__init__(optimizer)

    def position(self, step: int) -> int:
        """The step the schedule is evaluated at (ahead of ``step`` when a time budget runs ahead)."""
        if self.progress is None or step < self.warmup:
            return step
        frac = min(1.0, max(0.0, float(self.progress())))
        return max(step, self.warmup + int(frac * (self.total_steps - self.warmup)))

    def get_lr(self) -> list[float]:  # type: ignore[override]
        f = warmup_cosine(self.position(self.last_epoch), self.total_steps, self.warmup, self.min_ratio)
        return [float(base) * f for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "progress")}
