"""LoRA (Hu et al., 2021, arXiv:2106.09685) on linear layers, with merge / unmerge and an on/off switch.

A frozen linear map $y = W x + b$ gets a low-rank update
$y = W x + b + \\tfrac{\\alpha}{r} B A x$ with $A \\in \\mathbb{R}^{r \\times d_{in}}$ (Kaiming-uniform) and
$B \\in \\mathbb{R}^{d_{out} \\times r}$ (zeros, so training starts from the base model). Granite-speech puts
it on the LM's query and value projections and switches it on only in speech mode (arXiv:2505.08699).

With the adapter off, `LoRALinear` runs exactly the base layer's operations, so text mode is
bit-identical to the base LM. `LoRALinear.merge()` folds $\\tfrac{\\alpha}{r}BA$ into $W$ (one matrix at
inference); `LoRALinear.unmerge()` subtracts it again (equal up to rounding).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from zoo.models.granite.presets import LoRAConfig

__all__ = [
    "LoRALinear",
    "apply_lora",
    "lora_enabled",
    "lora_layers",
    "lora_parameters",
    "merge_lora",
    "set_lora",
    "unmerge_lora",
]


class LoRALinear(nn.Module):
    """A linear layer with a LoRA adapter.

    Args:
        base: the wrapped ``nn.Linear`` (kept as ``self.base``; its parameters are not touched unless merged).
        rank: ``r``; alpha: ``α``; dropout: dropout on the adapter's input.

    Attributes:
        enabled: whether the adapter is applied (speech mode).
        merged: whether the update is folded into ``base.weight``.

    Examples:
        >>> layer = LoRALinear(nn.Linear(4, 3), rank=2, alpha=4.0)
        >>> x = torch.randn(5, 4)
        >>> torch.equal(layer(x), layer.base(x))  # B = 0 at the start
        True
        >>> layer.merge(); layer.unmerge()
    """

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        cfg = LoRAConfig(rank=rank, alpha=alpha, dropout=dropout)  # validates
        self.base = base
        self.rank, self.alpha = cfg.rank, cfg.alpha
        self.scaling = cfg.alpha / cfg.rank
        self.lora_A = nn.Parameter(torch.empty(cfg.rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, cfg.rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.drop = nn.Dropout(cfg.dropout)
        self.enabled = True
        self.merged = False

    def delta(self) -> Tensor:
        """The weight update $\\tfrac{\\alpha}{r} B A$ ``(d_out, d_in)``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: Tensor) -> Tensor:
        if self.merged:
            if not self.enabled:
                raise RuntimeError(
                    "the LoRA is merged into the base weight: unmerge() it before disabling it"
                )
            return self.base(x)
        y = self.base(x)
        if not self.enabled:
            return y
        return y + (self.drop(x) @ self.lora_A.t()) @ self.lora_B.t() * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into ``base.weight`` (``RuntimeError`` when it is merged already)."""
        if self.merged:
            raise RuntimeError("the LoRA is already merged; unmerge() it before merging again")
        self.base.weight += self.delta()
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update from ``base.weight`` again (``RuntimeError`` when it is not merged)."""
        if not self.merged:
            raise RuntimeError("the LoRA is not merged; there is nothing to unmerge")
        self.base.weight -= self.delta()
        self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, enabled={self.enabled}, merged={self.merged}"


def apply_lora(module: nn.Module, cfg: LoRAConfig) -> list[str]:
    """Replace every ``nn.Linear`` whose attribute name is in ``cfg.targets`` by a `LoRALinear`.

    Returns the dotted names replaced; ``ValueError`` when none matches."""
    done: list[str] = []
    for name, parent in list(module.named_modules()):
        for child_name, child in list(parent.named_children()):
            if child_name in cfg.targets and isinstance(child, nn.Linear):
                setattr(parent, child_name, LoRALinear(child, cfg.rank, cfg.alpha, cfg.dropout))
                done.append(f"{name}.{child_name}" if name else child_name)
    if not done:
        raise ValueError(f"no nn.Linear named {list(cfg.targets)} in the module (targets)")
    return done


def lora_layers(module: nn.Module) -> list[LoRALinear]:
    """Every `LoRALinear` inside ``module``."""
    return [m for m in module.modules() if isinstance(m, LoRALinear)]


def lora_parameters(module: nn.Module) -> Iterator[nn.Parameter]:
    """The adapter parameters (``lora_A``, ``lora_B``) of every `LoRALinear` in ``module``."""
    for layer in lora_layers(module):
        yield layer.lora_A
        yield layer.lora_B


def set_lora(module: nn.Module, enabled: bool) -> None:
    """Switch every adapter of ``module`` on or off."""
    for layer in lora_layers(module):
        layer.enabled = bool(enabled)


@contextmanager
def lora_enabled(module: nn.Module, enabled: bool) -> Iterator[None]:
    """Run a block with every adapter on (speech mode) or off (text mode), then restore each one's state."""
    layers = lora_layers(module)
    before = [layer.enabled for layer in layers]
    try:
        for layer in layers:
            layer.enabled = bool(enabled)
        yield
    finally:
        for layer, was in zip(layers, before):
            layer.enabled = was


def merge_lora(module: nn.Module) -> None:
    """`LoRALinear.merge()` every adapter (a ``RuntimeError`` if one is merged already)."""
    layers = lora_layers(module)
    if any(layer.merged for layer in layers):
        raise RuntimeError("a LoRA of this module is already merged; unmerge_lora() it first")
    for layer in layers:
        layer.merge()


def unmerge_lora(module: nn.Module) -> None:
    """`LoRALinear.unmerge()` every adapter (a ``RuntimeError`` if one is not merged)."""
    layers = lora_layers(module)
    if not all(layer.merged for layer in layers):
        raise RuntimeError("the LoRA of this module is not merged; there is nothing to unmerge")
    for layer in layers:
        layer.unmerge()
