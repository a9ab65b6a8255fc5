"""``Equilibrium``: the stateful optimizer around
[`equilibrium_direction()`][bilevel.equilibrium.equilibrium_direction]."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from bilevel._autograd import total_norm
from bilevel._distributed import all_reduce_mean_, check_weight
from bilevel._levels import (
    OptimizerFactory,
    build,
    check_factory,
    check_group_values,
    check_max_norm,
    clip_,
    deprecated_alias,
    warn_inner_lr_default,
)
from bilevel._params import ParamsT, param_groups
from bilevel.checks import check_choice, check_int, check_real
from bilevel.equilibrium.functional import MODES, SourceLoss, equilibrium_direction
from bilevel.equilibrium.stats import EquilibriumStats


class Equilibrium(torch.optim.Optimizer):
    r"""Equilibrium-constrained multi-source training (Cui, Saif, Kingsbury & Chen, arXiv 2508.19990).

    With $M$ data sources and per-source losses $\ell_i$, instead of the averaged loss
    $\frac1M\sum_i\ell_i(\theta)$ it minimises the loss each source reaches after $K$
    of its own gradient steps from $\theta$:

    $$
    \min_\theta \frac1M\sum_{i=1}^M \ell_i(\phi_i^K(\theta)) + \lambda_g\frac1M\sum_i\ell_i(\theta),
    \qquad \phi_i^0=\theta,\quad \phi_i^{k+1}=\phi_i^k-\beta\nabla\ell_i(\phi_i^k).
    $$

    Each `step()` forms the outer direction (see
    [`equilibrium_direction()`][bilevel.equilibrium.equilibrium_direction])
    by ``mode``:

    - ``"first_order"``: $\frac1M\sum_i\nabla\ell_i(\phi_i^K)$, dropping $d\phi/d\theta$
      (the paper's first-order solver; first-order MAML with support = query = source $i$);
    - ``"second_order"``: the exact gradient $\frac1M\sum_i\prod_k(I-\beta\nabla^2\ell_i(\phi_i^k))
      \nabla\ell_i(\phi_i^K)$ through ``torch.autograd`` (closures must be functional, see below);
    - ``"reptile"``: $\frac1M\sum_i(\theta-\phi_i^K)/(\beta K)$, the mean gradient along each
      path; a step of size ``lr`` is Reptile's interpolation with $\epsilon = \text{lr}/(\beta K)$.

    The direction is checked to be finite (else a ``ValueError``, parameters unchanged), written into
    ``.grad`` (averaged across ranks under ``torch.distributed``; pass ``step(..., batch_size=n)`` with
    unequal shards) and applied by plain SGD of size ``lr``, or by ``optimizer`` (any ``torch.optim``
    class or factory). Inner steps never change the parameters: without ``functional`` the closures are
    evaluated at $\phi$ by backing the parameters with $\phi$'s storage, so their own values
    are never written. It is a `torch.optim.Optimizer` whose ``param_groups``, ``state`` and
    ``defaults`` are those of the outer optimizer, so every ``torch.optim.lr_scheduler`` scheduler works.

    Args:
        params: the parameters $\theta$ (tensors or param-group dicts; groups may set ``lr``
            and ``inner_lr``).
        lr: outer learning rate (default ``1e-2``, as [`PenaltyBGD`][bilevel.PenaltyBGD]).
        inner_lr: $\beta \ge 0$, the step size of the plain gradient inner steps (default ``lr``;
            a warning is given when ``optimizer`` is not plain SGD, whose ``lr`` is no plain step size).
        inner_steps: $K \ge 0$, default 1 (``>= 1`` for ``"reptile"``); ``K = 0`` is averaged-loss
            training.
        mode: ``"first_order"``, ``"second_order"`` or ``"reptile"``.
        global_weight: $\lambda_g \ge 0$, weight of the plain averaged-loss gradient.
        sources_per_step: use a random subset of this many sources per step (``None``: all).
        seed: seed of the source sampler (its state is in `state_dict()`).
        functional: closures take one argument, the list of parameter values (in the order of
            ``params``), and must compute the loss from it (e.g. ``torch.func.functional_call``);
            required for ``"second_order"``.
        max_grad_norm: clip the outer direction to this norm before the outer optimizer steps (as
            ``torch.nn.utils.clip_grad_norm_``; ``None``: no clipping).
        optimizer: the torch optimizer that drives the outer update: a ``torch.optim.Optimizer`` class or
            a factory such as ``functools.partial(torch.optim.AdamW, weight_decay=0.01)``, called as
            ``optimizer(param_groups, lr=lr, **optimizer_kwargs)`` (default ``torch.optim.SGD``); the same
            two arguments as [`PenaltyBGD`][bilevel.PenaltyBGD].
        optimizer_kwargs: extra keyword arguments for ``optimizer`` (e.g. ``betas``).
        outer_optimizer: deprecated name of ``optimizer`` (works, with a ``DeprecationWarning``).
        outer_kwargs: deprecated name of ``optimizer_kwargs`` (works, with a ``DeprecationWarning``).

    Each source's closure is called $K+1$ times per step, and should draw a fresh batch each
    time.

    Examples:
        >>> import torch, bilevel
        >>> w = torch.nn.Parameter(torch.zeros(2))
        >>> targets = [torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 2.0])]
        >>> opt = bilevel.Equilibrium([w], lr=0.1, inner_lr=0.1, inner_steps=3)
        >>> stats = opt.step(source_losses=[lambda t=t: ((w - t) ** 2).sum() for t in targets])
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        *,
        inner_lr: float | None = None,
        inner_steps: int = 1,
        mode: str = "first_order",
        global_weight: float = 0.0,
        sources_per_step: int | None = None,
        seed: int = 0,
        functional: bool = False,
        max_grad_norm: float | None = None,
        optimizer: OptimizerFactory | None = None,
        optimizer_kwargs: dict[str, Any] | None = None,
        outer_optimizer: OptimizerFactory | None = None,
        outer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        lr = check_real(lr, "lr", low=0.0)
        inner_lr_given = inner_lr is not None
        inner_lr = lr if inner_lr is None else check_real(inner_lr, "inner_lr", low=0.0)
        self.mode = check_choice(mode, "mode", MODES)
        self.inner_steps = check_int(inner_steps, "inner_steps", low=1 if mode == "reptile" else 0)
        self.global_weight = check_real(global_weight, "global_weight", low=0.0)
        if sources_per_step is not None:
            check_int(sources_per_step, "sources_per_step", low=1)
        self.sources_per_step = sources_per_step
        if mode == "second_order" and not functional:
            raise ValueError(
                "mode='second_order' needs functional=True: closures that take the list of parameter "
                "values, so the inner steps can be differentiated"
            )
        self.functional = bool(functional)
        self.max_grad_norm = check_max_norm(max_grad_norm, "max_grad_norm", ("outer",))["outer"]
        factory = deprecated_alias(optimizer, outer_optimizer, "optimizer", "outer_optimizer", "Equilibrium")
        kwargs = deprecated_alias(
            optimizer_kwargs, outer_kwargs, "optimizer_kwargs", "outer_kwargs", "Equilibrium"
        )
        if kwargs is not None and not isinstance(kwargs, dict):
            raise TypeError(f"optimizer_kwargs must be a dict, got {type(kwargs).__name__}")
        groups = param_groups(params, name="params")
        check_group_values(groups, ("lr", "inner_lr"), "params")
        super().__init__(groups, {"lr": lr, "inner_lr": inner_lr})
        self.outer = build(
            check_factory(factory, "optimizer") or torch.optim.SGD,
            self.param_groups,
            {"lr": lr, **(kwargs or {})},
            "optimizer",
        )
        self._inner_lr = inner_lr
        self._share()
        if not inner_lr_given and self.inner_steps > 0:
            warn_inner_lr_default([self.outer], lr, "Equilibrium")
        self._generator = torch.Generator().manual_seed(check_int(seed, "seed"))
        self._steps = 0

    def _share(self) -> None:
        # The outer optimizer owns the param groups and state; share them so LR schedulers, zero_grad
        # and user code that edits ``param_groups`` act on the update that is applied. torch's
        # schedulers read ``defaults`` (OneCycleLR/CyclicLR look for momentum or betas there).
        self.param_groups = self.outer.param_groups
        self.state = self.outer.state
        self.defaults = {**self.outer.defaults, "inner_lr": self._inner_lr}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group, as ``torch.optim.Optimizer.add_param_group`` does: missing options come
        from this optimizer (``lr``, ``inner_lr``) and the outer optimizer's defaults."""
        if not hasattr(self, "outer"):  # during torch.optim.Optimizer.__init__
            super().add_param_group(param_group)
            return
        (group,) = param_groups([param_group], name="param_group")
        mine = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in mine for p in group["params"]):
            raise ValueError("param_group contains parameters that are already optimized")
        group.setdefault("inner_lr", self._inner_lr)
        check_group_values([group], ("lr", "inner_lr"), "param_group")
        self.outer.add_param_group(group)
        self._share()

    def _choose(self, m: int) -> list[int]:
        if self.sources_per_step is None or self.sources_per_step >= m:
            return list(range(m))
        perm = torch.randperm(m, generator=self._generator)[: self.sources_per_step]
        return sorted(int(i) for i in perm)

    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def step(  # type: ignore[override]
        self,
        closure: Callable[[], Any] | None = None,
        *,
        source_losses: Sequence[SourceLoss],
        batch_size: float | None = None,
    ) -> EquilibriumStats:
        """One outer step; ``source_losses[i]`` returns source ``i``'s loss on a fresh batch.

        ``batch_size``: under ``torch.distributed``, this rank's local batch size; the direction is
        averaged across ranks weighted by it (exact for unequal shards; ``None``: equal weights).
        A non-finite direction raises a ``ValueError`` and leaves the parameters unchanged.
        """
        if closure is not None:
            raise TypeError("Equilibrium.step takes source_losses=[...], not a single closure")
        if isinstance(source_losses, Callable):  # type: ignore[arg-type]
            raise TypeError("source_losses must be a sequence of closures, one per source")
        weight = check_weight(batch_size, "batch_size")
        closures = list(source_losses)
        if not closures:
            raise ValueError("source_losses is empty: expected one loss closure per source")
        for i, c in enumerate(closures):
            if not callable(c):
                raise TypeError(f"source_losses[{i}] must be callable, got {type(c).__name__}")
        check_group_values(self.param_groups, ("lr", "inner_lr"), "param_groups")
        chosen = self._choose(len(closures))
        params = self._params()
        lrs = [float(g["inner_lr"]) for g in self.param_groups for _ in g["params"]]
        res = equilibrium_direction(
            params,
            [closures[i] for i in chosen],
            inner_lr=lrs,
            inner_steps=self.inner_steps,
            mode=self.mode,
            global_weight=self.global_weight,
            functional=self.functional,
            source_ids=chosen,
        )
        all_reduce_mean_(res.direction, weight)
        norm = total_norm(res.direction, res.direction[0])
        if not math.isfinite(norm):
            raise ValueError(
                f"the outer direction is not finite (norm {norm}); parameters left unchanged "
                "(is a source's gradient infinite, or inner_lr too large?)"
            )
        clip_(res.direction, norm, self.max_grad_norm)
        for p, d in zip(params, res.direction):
            p.grad = d
        self.outer.step()
        self._steps += 1
        return EquilibriumStats(chosen, res.loss_before, res.loss_after, self._steps, norm)

    def state_dict(self) -> dict[str, Any]:
        """The outer optimizer's state, the step counter and the source sampler's RNG state.

        As ``torch.optim.Optimizer.state_dict``, the outer optimizer's state tensors are *references* to
        the live state, not copies: ``torch.save`` the result or ``copy.deepcopy`` it before stepping again
        if it is kept in memory. Loading a saved (or deep-copied) state dict continues the run bit for bit.
        """
        return {
            "outer": self.outer.state_dict(),
            "steps": self._steps,
            "generator": self._generator.get_state(),
            "config": {
                "mode": self.mode,
                "inner_steps": self.inner_steps,
                "global_weight": self.global_weight,
                "sources_per_step": self.sources_per_step,
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output (the configuration must match)."""
        missing = {"outer", "steps", "generator", "config"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict is missing {sorted(missing)}; was it saved by Equilibrium?")
        cfg = state_dict["config"]
        mine = self.state_dict()["config"]
        if cfg != mine:
            raise ValueError(f"state_dict was saved with configuration {cfg}, but this optimizer has {mine}")
        self.outer.load_state_dict(state_dict["outer"])
        self._share()
        self._steps = int(state_dict["steps"])
        self._generator.set_state(state_dict["generator"])
