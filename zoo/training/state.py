"""The resumable state of a training run: modules, optimizers, schedulers, batch source, RNGs, progress.

``TrainState.state_dict()`` holds everything that decides what the next step does, so that
``load_state_dict`` followed by more steps equals the uninterrupted run bit for bit: the parameters and
buffers of every module, the state of every optimizer and LR scheduler (the built-in one or a user's),
the batch source's position ([`zoo.training.Batches`][zoo.training.Batches]), the global Python, NumPy and
torch RNGs (and
CUDA's when present), the run's own ``torch.Generator`` (augmentation), the step count, the training time
and the logged history.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.training.batches import BatchSource

__all__ = ["TrainState", "capture_rng", "restore_rng"]


def capture_rng() -> dict[str, Any]:
    """The global Python, NumPy, torch CPU (and CUDA, when available) RNG states."""
    out: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - the legacy global RNG is what user code seeds
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict[str, Any]) -> None:
    """Restore `capture_rng()` output."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    """Everything a step function reads and writes, and everything a checkpoint holds.

    Attributes:
        modules: the trained modules by name (``"model"`` for a single model).
        optimizers: every optimizer by name (``torch.optim`` or `bilevel` optimizers).
        data: the batch source ([`zoo.training.Batches`][zoo.training.Batches], or a recipe's source of
            several streams).
        schedulers: LR schedulers by name, stepped once after every training step.
        generator: the run's own torch generator (augmentation), seeded from the run's seed.
        step: optimizer steps done; seconds: training time spent (over resumed runs).
        history: one dict of stats per logged step.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, Any]
    data: BatchSource
    schedulers: dict[str, Any] = field(default_factory=dict)
    generator: torch.Generator = field(default_factory=torch.Generator)
    step: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model(self) -> nn.Module:
        """``modules["model"]``."""
        return self.modules["model"]

    def train(self, mode: bool = True) -> None:
        """Put every module in training (or evaluation) mode."""
        for m in self.modules.values():
            m.train(mode)

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "data": self.data.state_dict(),
            "rng": capture_rng(),
            "generator": self.generator.get_state(),
            "step": self.step,
            "seconds": self.seconds,
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` output; the names of modules, optimizers and schedulers must match."""
        for key, own in (("modules", self.modules), ("optimizers", self.optimizers)):
            if set(state[key]) != set(own):
                raise ValueError(f"the saved {key} are {sorted(state[key])}, this run has {sorted(own)}")
        saved_sched = set(state.get("schedulers", {}))
        if saved_sched != set(self.schedulers):
            raise ValueError(
                f"the saved schedulers are {sorted(saved_sched)}, this run has {sorted(self.schedulers)}"
            )
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        self.data.load_state_dict(state["data"])
        restore_rng(state["rng"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
        self.seconds = float(state["seconds"])
        self.history = list(state["history"])
