"""The stateful `PenaltyBGD` optimizer: a thin wrapper over
[`bilevel.penalty.functional`][bilevel.penalty.functional]."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from bilevel._autograd import needs_safe_norm, norm, safe_norm, stat_dtype
from bilevel._distributed import check_weight
from bilevel._levels import (
    OptimizerFactory,
    build,
    check_factory,
    check_group_values,
    check_max_norm,
    clip_,
    warn_inner_lr_default,
)
from bilevel._params import ParamsT, check_disjoint, copy_values, flat_params, param_groups
from bilevel.checks import check_choice, check_int, check_real
from bilevel.penalty.functional import (
    PENALTIES,
    Closure,
    PenaltyGrads,
    inner_steps_,
    penalty_grads,
    step_scale,
    value_estimate,
)
from bilevel.penalty.stats import Measured, PenaltyStats
from bilevel.schedules import Schedule, as_schedule

GAMMA_UNITS = ("step", "epoch")
LEVELS = ("upper", "lower")


class PenaltyBGD(torch.optim.Optimizer):
    r"""Penalty-based bilevel gradient descent (PBGD; Shen & Chen, ICML 2023), the solver of BL-JUST
    (Saif et al., arXiv 2401.06980, 2412.08548).

    Solves $\min_{x,y} f(x,y)$ s.t. $y \in \arg\min_{y'} g(x,y')$ through the penalty

    $$
    F_\gamma(x, y) = f(x, y) + \gamma\,\bigl(g(x, y) - v(x)\bigr),\qquad v(x) = \min_{y'} g(x, y'),
    $$

    where ``x`` are the ``upper_params`` and ``y`` the ``lower_params`` (a parameter used by both losses
    belongs to ``y``). Each `step()`:

    1. if ``inner_steps > 0``: advances a persistent, warm-started copy $\omega$ of ``y`` by
       ``inner_steps`` plain gradient steps of size ``inner_lr`` on $g(x, \cdot)$ and estimates
       $v(x) \approx g(x, \omega)$, Danskin gradient $\nabla_x v \approx \nabla_x g(x, \omega)$;
       with ``inner_steps=0`` v is a constant (BL-JUST's case: nothing to estimate);
    2. computes $c\,\nabla_x F_\gamma$ and $c\,\nabla_y F_\gamma$ with
       $c = \min(1, 1/\gamma)$ (``scale_steps=True``, the official code's step scaling) or 1;
    3. writes them into ``.grad`` (replacing what was there: no ``zero_grad`` is needed) and lets one
       ``torch.optim`` optimizer per level step.

    With ``penalty="gradient"`` (G-PBGD) the penalty is $\lVert\nabla_y g(x, y)\rVert^2$, differentiated
    through by double backward; no $\omega$ is kept.

    It is a `torch.optim.Optimizer`: ``param_groups`` lists the upper groups then the lower groups
    (shared with the per-level optimizers, so every ``torch.optim.lr_scheduler`` scheduler works;
    ``defaults`` are the level optimizers' defaults, so ``OneCycleLR``/``CyclicLR`` find ``momentum`` or
    ``betas``), `add_param_group()` adds a group to one level, ``zero_grad`` and
    ``state_dict``/``load_state_dict`` round-trip exactly (the step and epoch counters,
    $\omega$ and both levels' optimizer states). When ``torch.distributed`` is initialised every
    gradient it computes is averaged across ranks (do not wrap the model in DDP, or call ``step`` under
    ``no_sync()``); with unequal shards pass ``step(..., batch_size=local_batch_size)`` so that the
    average is the gradient of the global-batch mean.

    Args:
        upper_params: ``x``: tensors or param-group dicts; may be empty (pure BL-JUST on one model).
        lower_params: ``y``: tensors or param-group dicts; must not be empty nor overlap ``upper_params``.
        lr: default learning rate of both levels (param groups may override it).
        gamma: γ ≥ 0, a float or a schedule ``k -> γ_k`` such as [`bilevel.LinearRamp`][bilevel.LinearRamp]
            (the official code ramps γ linearly from 0).
        inner_steps: gradient steps on $\omega$ per step (0: v treated as constant).
        inner_lr: step size of the inner steps, which are plain gradient steps (default ``lr``; a warning
            is given when the level optimizers are not plain SGD, as an Adam ``lr`` is no plain step size).
        penalty: ``"value"`` (g − v, V-PBGD) or ``"gradient"`` (‖∇_y g‖², G-PBGD).
        scale_steps: multiply both gradients by $\min(1, 1/\gamma)$ (keeps a step tuned at γ ≤ 1 stable
            for large γ, since the smoothness constant grows like $L_f + \gamma L_g$).
        gamma_per: ``"step"``: the schedule's counter is the number of steps taken; ``"epoch"``: the number
            of `end_epoch()` calls (BL-JUST ramps γ per epoch).
        check_finite: validate every step (one device sync): a non-finite loss or gradient raises a
            ``ValueError`` and leaves the parameters unchanged. ``False`` never waits for the device (useful
            on GPUs with small models); the stats are then read lazily and non-finite values propagate.
        max_grad_norm: clip each level's gradient $c\nabla F_\gamma$ to this norm before its optimizer
            steps (as ``torch.nn.utils.clip_grad_norm_`` per level): a float for both levels, or a mapping
            such as ``{"lower": 1.0}`` for one (``None``: no clipping). The stats report the norms before
            clipping.
        optimizer: the torch optimizer that drives both levels: a ``torch.optim.Optimizer`` class or a
            factory such as ``functools.partial(torch.optim.AdamW, weight_decay=0.01)``, called as
            ``optimizer(groups, lr=lr, **optimizer_kwargs)`` (default ``torch.optim.SGD``: plain gradient
            steps of size ``lr``). [`Equilibrium`][bilevel.Equilibrium] takes the same two arguments.
        optimizer_kwargs: extra keyword arguments for ``optimizer``.
        upper_optimizer: the upper level's factory, overriding ``optimizer`` (called the same way).
        lower_optimizer: the lower level's factory, overriding ``optimizer`` (called the same way).

    Examples:
        The lower level puts $y$ at $x$; the upper level wants $y$ near 1 and $x$ near 0, so the
        bilevel solution is $x = y = 1/2$, which the penalty method approaches as γ grows:

        >>> import torch, bilevel
        >>> x, y = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
        >>> opt = bilevel.PenaltyBGD([x], [y], lr=0.1, gamma=bilevel.LinearRamp(0.0, 10.0, 100),
        ...                          inner_steps=1)
        >>> for _ in range(200):
        ...     stats = opt.step(upper_loss=lambda: ((y - 1) ** 2 + x**2).sum(),
        ...                      lower_loss=lambda: ((y - x) ** 2).sum())
        >>> stats.gamma, round(x.item(), 2), round(y.item(), 2)
        (10.0, 0.48, 0.52)
    """

    def __init__(
        self,
        upper_params: ParamsT | None,
        lower_params: ParamsT,
        lr: float = 1e-2,
        *,
        gamma: float | Schedule = 1.0,
        inner_steps: int = 0,
        inner_lr: float | None = None,
        penalty: str = "value",
        scale_steps: bool = True,
        gamma_per: str = "step",
        check_finite: bool = True,
        max_grad_norm: float | Mapping[str, float | None] | None = None,
        optimizer: OptimizerFactory | None = None,
        optimizer_kwargs: dict[str, Any] | None = None,
        upper_optimizer: OptimizerFactory | None = None,
        lower_optimizer: OptimizerFactory | None = None,
    ) -> None:
        lr = check_real(lr, "lr", low=0.0)
        upper_groups = param_groups(upper_params, name="upper_params", allow_empty=True)
        lower_groups = param_groups(lower_params, name="lower_params")
        check_group_values(upper_groups, ("lr",), "upper_params")
        check_group_values(lower_groups, ("lr",), "lower_params")
        check_disjoint(flat_params(upper_groups), flat_params(lower_groups), "upper_params", "lower_params")
        self.gamma = as_schedule(gamma, "gamma")
        check_real(self.gamma(0), "gamma", low=0.0)
        self.inner_steps = check_int(inner_steps, "inner_steps", low=0)
        self.inner_lr = lr if inner_lr is None else check_real(inner_lr, "inner_lr", low=0.0, low_open=True)
        self.penalty = check_choice(penalty, "penalty", PENALTIES)
        if not isinstance(scale_steps, bool):
            raise TypeError(f"scale_steps must be a bool, got {type(scale_steps).__name__}")
        self.scale_steps = scale_steps
        self.gamma_per = check_choice(gamma_per, "gamma_per", GAMMA_UNITS)
        if not isinstance(check_finite, bool):
            raise TypeError(f"check_finite must be a bool, got {type(check_finite).__name__}")
        self.check_finite = check_finite
        self.max_grad_norm = check_max_norm(max_grad_norm, "max_grad_norm", LEVELS)
        if optimizer_kwargs is not None and not isinstance(optimizer_kwargs, Mapping):
            raise TypeError(f"optimizer_kwargs must be a dict, got {type(optimizer_kwargs).__name__}")
        self._kwargs: dict[str, Any] = {"lr": lr, **(optimizer_kwargs or {})}
        base = check_factory(optimizer, "optimizer") or torch.optim.SGD
        self._factories: dict[str, OptimizerFactory] = {
            "upper": check_factory(upper_optimizer, "upper_optimizer") or base,
            "lower": check_factory(lower_optimizer, "lower_optimizer") or base,
        }
        self.upper_optimizer: torch.optim.Optimizer | None = (
            build(self._factories["upper"], upper_groups, self._kwargs, "upper_optimizer")
            if upper_groups
            else None
        )
        self.lower_optimizer: torch.optim.Optimizer = build(
            self._factories["lower"], lower_groups, self._kwargs, "lower_optimizer"
        )
        if inner_lr is None and self.penalty == "value" and self.inner_steps > 0:
            warn_inner_lr_default(self._levels(), lr, "PenaltyBGD")
        self._ready = False
        super().__init__([*flat_params(upper_groups), *flat_params(lower_groups)], {"lr": lr})
        self._ready = True
        self._link_groups()
        self._step = 0
        self._epoch = 0
        self._omega: list[Tensor] | None = None

    # -- torch.optim.Optimizer plumbing -------------------------------------------------------------
    def _levels(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.upper_optimizer, self.lower_optimizer) if o is not None]

    def _link_groups(self) -> None:
        self.param_groups = [grp for o in self._levels() for grp in o.param_groups]
        self._upper = [] if self.upper_optimizer is None else flat_params(self.upper_optimizer.param_groups)
        self._lower = flat_params(self.lower_optimizer.param_groups)
        # torch's schedulers read `defaults` (OneCycleLR/CyclicLR look for momentum or betas there)
        self.defaults = dict(self.upper_optimizer.defaults) if self.upper_optimizer is not None else {}
        self.defaults.update(self.lower_optimizer.defaults)

    def add_param_group(self, param_group: dict[str, Any], level: str | None = None) -> None:
        """Add a param group to one level, as ``torch.optim.Optimizer.add_param_group`` does.

        The group's missing options come from that level's optimizer (built with this optimizer's
        ``lr``), so a group without ``lr`` steps with ``lr``. ``level`` (``"upper"`` or ``"lower"``) may
        also be given as a ``"level"`` entry of the group; it may be omitted only when there are no upper
        parameters. New lower parameters join ω at their current values.
        """
        if not getattr(self, "_ready", False):  # during torch.optim.Optimizer.__init__
            super().add_param_group(param_group)
            return
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        entry = group.pop("level", None)
        if level is not None and entry is not None and level != entry:
            raise ValueError(f"level={level!r} contradicts the group's 'level' entry {entry!r}")
        level = level if level is not None else entry
        if level is None:
            if self.upper_optimizer is not None:
                raise ValueError(
                    "add_param_group needs level='upper' or level='lower' (this PenaltyBGD has both levels)"
                )
            level = "lower"
        level = check_choice(level, "level", LEVELS)
        (group,) = param_groups([group], name="param_group")
        check_group_values([group], ("lr",), "param_group")
        check_disjoint([*self._upper, *self._lower], group["params"], "this optimizer", "param_group")
        if level == "upper":
            if self.upper_optimizer is None:
                fac = self._factories["upper"]
                self.upper_optimizer = build(fac, [group], self._kwargs, "upper_optimizer")
            else:
                self.upper_optimizer.add_param_group(group)
        else:
            self.lower_optimizer.add_param_group(group)
            if self._omega is not None:
                self._omega.extend(copy_values(group["params"]))
        self._link_groups()

    @property
    def step_count(self) -> int:
        """Number of `step()` calls so far (restored by `load_state_dict()`)."""
        return self._step

    @property
    def epoch(self) -> int:
        """Number of `end_epoch()` calls so far."""
        return self._epoch

    @property
    def omega(self) -> list[Tensor] | None:
        """The inner copy ω of the lower parameters (``None`` before a step with ``inner_steps > 0``)."""
        return self._omega

    def current_gamma(self) -> float:
        """γ that the next `step()` will use."""
        k = self._epoch if self.gamma_per == "epoch" else self._step
        return check_real(self.gamma(k), "gamma", low=0.0)

    def end_epoch(self) -> None:
        """Advance the epoch counter (γ's counter when ``gamma_per="epoch"``)."""
        self._epoch += 1

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """Counters, ω and both levels' optimizer states (LR schedulers keep their own).

        As ``torch.optim.Optimizer.state_dict``, the levels' state tensors (momentum buffers, Adam
        moments) are *references* to the live state, not copies: ``torch.save`` the result or
        ``copy.deepcopy`` it before stepping again if it is kept in memory. ω is copied. Loading a saved
        (or deep-copied) state dict continues the run bit for bit.
        """
        return {
            "step": self._step,
            "epoch": self._epoch,
            "omega": None if self._omega is None else [w.clone() for w in self._omega],
            "upper": None if self.upper_optimizer is None else self.upper_optimizer.state_dict(),
            "lower": self.lower_optimizer.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore a `state_dict()`; the run then continues bit for bit as if never stopped."""
        missing = {"step", "epoch", "omega", "upper", "lower"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict is missing {sorted(missing)}; was it saved by PenaltyBGD?")
        if (state_dict["upper"] is None) != (self.upper_optimizer is None):
            raise ValueError("state_dict was saved with a different (empty vs non-empty) set of upper_params")
        omega = state_dict["omega"]
        if omega is not None:
            if len(omega) != len(self._lower) or any(w.shape != p.shape for w, p in zip(omega, self._lower)):
                raise ValueError("state_dict['omega'] does not match the shapes of lower_params")
            omega = [w.detach().to(p.device, p.dtype).clone() for w, p in zip(omega, self._lower)]
        if self.upper_optimizer is not None:
            self.upper_optimizer.load_state_dict(state_dict["upper"])
        self.lower_optimizer.load_state_dict(state_dict["lower"])
        self._step = check_int(state_dict["step"], "state_dict['step']", low=0)
        self._epoch = check_int(state_dict["epoch"], "state_dict['epoch']", low=0)
        self._omega = omega
        self._link_groups()

    # -- the step -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _write_grads(self, params: list[Tensor], grads: list[Tensor | None]) -> None:
        for p, g in zip(params, grads):
            p.grad = None if g is None else g.detach().to(p.dtype)

    def _validate(
        self, vals: Measured, pg: PenaltyGrads, denom: float, *, has_v: bool, use_scaler: bool
    ) -> None:
        """Raise before anything changes if a loss or the gradient is not finite (reads ``vals`` by name)."""
        for key, name in (("f", "upper_loss"), ("g", "lower_loss")):
            if not math.isfinite(vals[key]):
                raise ValueError(f"{name} returned a non-finite loss ({vals[key]}); parameters unchanged")
        if has_v and not math.isfinite(vals["v"]):
            self._omega = None  # restart the inner copy from the lower parameters next time
            raise ValueError(
                f"lower_loss returned a non-finite loss ({vals['v']}) at the inner copy ω (is inner_lr too "
                "large?); ω was reset to the lower parameters, which are left unchanged"
            )
        for key, grads in (("upper_grad_norm", pg.upper), ("lower_grad_norm", pg.lower)):
            if needs_safe_norm(vals[key] * denom, grads):  # float32 squares over/underflow: re-measure
                vals.set(key, float(safe_norm(grads, pg.f)) / denom)
        if not use_scaler and not (
            math.isfinite(vals["upper_grad_norm"]) and math.isfinite(vals["lower_grad_norm"])
        ):
            raise ValueError("the penalised gradient is not finite; parameters left unchanged")

    @torch.enable_grad()  # the closures are differentiated, also when called under torch.no_grad()
    def step(  # type: ignore[override]
        self,
        upper_loss: Closure | None = None,
        lower_loss: Closure | None = None,
        *,
        grad_scaler: torch.amp.GradScaler | None = None,
        batch_size: float | None = None,
    ) -> PenaltyStats:
        """Take one penalised step; returns `PenaltyStats` measured before the update.

        Args:
            upper_loss: closure returning f(x, y) (a finite scalar tensor).
            lower_loss: closure returning g(x, y); it reads the lower parameters, which are temporarily
                backed by ω while the inner steps run.
            grad_scaler: an enabled ``torch.amp.GradScaler`` scales the losses, unscales the gradients,
                skips the update when they are not finite and is updated (``grad_scaler.update()``) here.
            batch_size: under ``torch.distributed``, this rank's local batch size: gradients are averaged
                across ranks weighted by it, which makes a step on unequal shards (losses that are means
                over the local batch) equal to a step on the whole batch in one process. ``None``: equal
                weights (exact only when every rank holds the same number of examples).
        """
        if not callable(upper_loss) or not callable(lower_loss):
            raise TypeError("PenaltyBGD.step needs two closures: step(upper_loss=..., lower_loss=...)")
        weight = check_weight(batch_size, "batch_size")
        check_group_values(self.param_groups, ("lr",), "param_groups")
        gamma = self.current_gamma()
        c = step_scale(gamma) if self.scale_steps else 1.0
        for p in (*self._upper, *self._lower):  # overwritten below; freeing them first lets memory be reused
            p.grad = None
        use_scaler = grad_scaler is not None and grad_scaler.is_enabled()
        loss_scale = 1.0
        if use_scaler and grad_scaler is not None:  # scale() also initialises a fresh scaler's state
            loss_scale = float(grad_scaler.scale(torch.ones((), device=self._lower[0].device)).item())
        v: Tensor | None = None
        if self.penalty == "value" and self.inner_steps > 0:
            if self._omega is None:
                self._omega = copy_values(self._lower)
            inner_steps_(
                self._omega,
                self._lower,
                lower_loss,
                steps=self.inner_steps,
                lr=self.inner_lr,
                loss_scale=loss_scale,
                check_finite=False,
                weight=weight,
            )
            v = value_estimate(self._upper, self._lower, lower_loss, self._omega, check_finite=False)
        pg = penalty_grads(
            self._upper,
            self._lower,
            upper_loss,
            lower_loss,
            gamma,
            penalty=self.penalty,
            v=v,
            scale=c,
            loss_scale=loss_scale,
            check_finite=False,
            weight=weight,
        )
        denom = c * loss_scale
        ldt = torch.promote_types(pg.f.dtype, pg.g.dtype)  # same-dtype casts below are free (no kernel)
        f_l, g_l = pg.f.to(ldt), pg.g.to(ldt)
        gap = f_l.new_zeros(()) if pg.gap is None else pg.gap.to(ldt)
        upper_norm, lower_norm = norm(pg.upper, pg.f), norm(pg.lower, pg.f)
        vals = Measured(
            {
                "f": f_l,
                "g": g_l,
                "gap": gap,
                "upper_grad_norm": upper_norm / denom,
                "lower_grad_norm": lower_norm / denom,
                "v": g_l - gap if (pg.gap is not None and v is not None) else f_l.new_zeros(()),
            },
            stat_dtype(pg.f.device),
        )
        if self.check_finite:  # the one device sync of a step: validate before anything changes
            self._validate(vals, pg, denom, has_v=v is not None, use_scaler=use_scaler)
        for level, grads, dev_norm in (("upper", pg.upper, upper_norm), ("lower", pg.lower, lower_norm)):
            max_norm = self.max_grad_norm[level]
            if max_norm is not None:  # clip c·∇F (what the level optimizer sees after unscaling)
                applied = vals[f"{level}_grad_norm"] * c if self.check_finite else dev_norm / loss_scale
                clip_(grads, applied, max_norm)
        self._write_grads(self._upper, pg.upper)
        self._write_grads(self._lower, pg.lower)
        skipped = False
        if use_scaler and grad_scaler is not None:
            for o in self._levels():
                grad_scaler.step(o)
            before = grad_scaler.get_scale()
            grad_scaler.update()
            skipped = grad_scaler.get_scale() < before
        else:
            for o in self._levels():
                o.step()
        stats = PenaltyStats(
            step=self._step, gamma=gamma, scale=c, skipped=skipped, measured=vals, has_gap=pg.gap is not None
        )
        self._step += 1
        return stats
