r"""BL-JUST: bilevel joint unsupervised and supervised training (Saif et al., arXiv 2401.06980, 2412.08548).

The recipe trains a shared encoder $\theta$, a CTC head $\phi$ and a self-supervised head
$\eta$ on

$$
\min_{\theta,\phi} f(\theta,\phi) \quad\text{s.t.}\quad
\theta \in \arg\min_{\theta',\eta} g(\theta',\eta),
$$

with $f$ = CTC on the small labelled set and $g$ = a self-supervised loss on the unlabelled
pool ([`zoo.losses.CPCLoss`][zoo.losses.CPCLoss], or
[`zoo.losses.MaskedPredictionLoss`][zoo.losses.MaskedPredictionLoss]). Its penalty form
$F_\gamma = f + \gamma\,(g - v)$, with $v = \min g$ a constant, is minimised with
[`bilevel.PenaltyBGD`][bilevel.PenaltyBGD] (``upper_params`` = φ, ``lower_params`` = θ and η,
``inner_steps=0``): each joint
step moves θ along $\nabla_\theta(f + \gamma g)$, φ along $\nabla_\phi f$ and η along
$\gamma\nabla_\eta g$ (the authors' code drops the γ on η; with AdamW, which is invariant to the
scale of a block's gradient, both give the same step up to Adam's ε).

Phases (the authors' schedule; every length is a parameter of `BLJustConfig`):

1. **exploration** — ``exploration_steps`` AdamW steps (lr ρ) on $g$ over θ and η;
2. **joint** — ``joint_steps`` PenaltyBGD steps (lr α), γ growing linearly from ``gamma_start`` to
   ``gamma_max`` ([`bilevel.LinearRamp`][bilevel.LinearRamp]); phases 1–2 repeat ``cycles`` times (the code
   runs SSL
   epochs inside every outer epoch) and γ keeps ramping across cycles;
3. **fine-tuning** — ``finetune_steps`` AdamW steps (lr τ) on $f$ over θ and φ.

Compute is counted in *gradient evaluations*: one forward + backward pass of one loss on one mini-batch.
A joint step costs two (one of f, one of g), an exploration or fine-tuning step one. The baselines of
`phase_plan()` spend exactly the same number of each kind (see `BLJustConfig.gradient_evaluations()`).

The recipe runs on the zoo's one loop ([`zoo.training.Trainer`][zoo.training.Trainer]): `BLJustStep` is its
step
function (the phase of each step follows from the step count, `phase_at()`), `PlanBatches` its
batch source (a [`bilevel.sampling`][bilevel.sampling] stream of labelled and one of unlabelled batches), and
`bl_just_trainer()` assembles both with every optimizer into a resumable
[`zoo.training.TrainState`][zoo.training.TrainState].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bilevel import LinearRamp, PenaltyBGD
from zoo.checks import check_choice, check_int, check_real
from zoo.recipes.encoders import ModelParts
from zoo.training import Batches, Budget, Trainer, TrainState, average_gradients

METHODS = ("bl_just", "supervised", "pt_ft")
"""``bl_just``: the recipe; ``supervised``: CTC only; ``pt_ft``: self-supervised pre-training, then
fine-tuning."""

ABLATIONS = ("full", "no_exploration", "no_finetune", "constant_gamma")
"""The journal paper's ablations of BL-JUST (see `ablate()`)."""

PHASES = ("ssl", "joint", "sup")

SSLLoss = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""``ssl_loss(encoder, feats, lens) -> scalar``; an ``nn.Module`` that owns its head (η)."""

__all__ = [
    "ABLATIONS",
    "METHODS",
    "BLJustConfig",
    "BLJustStep",
    "PhaseSpec",
    "PlanBatches",
    "ablate",
    "bl_just_trainer",
    "build_optimizers",
    "ctc_objective",
    "evaluations_done",
    "optimizer_key",
    "phase_at",
    "phase_plan",
    "plan_evaluations",
]


@dataclass(frozen=True)
class BLJustConfig:
    """Hyper-parameters of BL-JUST and its baselines (symbols of the paper's Algorithm 1).

    Attributes:
        exploration_steps: N1, self-supervised steps per cycle (≥ 0).
        joint_steps: N2, penalty-based joint steps per cycle (≥ 0).
        finetune_steps: N3, supervised fine-tuning steps at the end (≥ 0).
        cycles: K, repetitions of (exploration, joint).
        lr_exploration: ρ. lr_joint: α (also the supervised and PT+FT fine-tuning lr of the baselines).
        lr_finetune: τ (the final low-lr phase every method ends with).
        gamma_start, gamma_max: ends of the linear γ ramp (``gamma_start == gamma_max``: constant γ).
        gamma_ramp_steps: joint steps to reach ``gamma_max`` (default: all joint steps, cycles included).
        weight_decay: AdamW weight decay of every optimizer.
        scale_steps: PenaltyBGD's $\\min(1, 1/\\gamma)$ step scaling (a no-op for γ ≤ 1).
    """

    exploration_steps: int = 100
    joint_steps: int = 200
    finetune_steps: int = 50
    cycles: int = 1
    lr_exploration: float = 1e-3
    lr_joint: float = 1e-3
    lr_finetune: float = 3e-4
    gamma_start: float = 0.0
    gamma_max: float = 1.0
    gamma_ramp_steps: int | None = None
    weight_decay: float = 0.01
    scale_steps: bool = True

    def __post_init__(self) -> None:
        check_int(self.exploration_steps, "exploration_steps", low=0)
        check_int(self.joint_steps, "joint_steps", low=0)
        check_int(self.finetune_steps, "finetune_steps", low=0)
        check_int(self.cycles, "cycles", low=1)
        for name in ("lr_exploration", "lr_joint", "lr_finetune"):
            check_real(getattr(self, name), name, low=0.0, low_open=True)
        check_real(self.gamma_start, "gamma_start", low=0.0)
        check_real(self.gamma_max, "gamma_max", low=float(self.gamma_start))
        if self.gamma_ramp_steps is not None:
            check_int(self.gamma_ramp_steps, "gamma_ramp_steps", low=1)
        check_real(self.weight_decay, "weight_decay", low=0.0)

    def gamma(self) -> LinearRamp:
        """The γ schedule over joint steps: $\\gamma_k = \\min(\\gamma_m, \\gamma_0 + k\\Delta)$."""
        steps = self.gamma_ramp_steps or max(1, self.cycles * self.joint_steps - 1)
        return LinearRamp(self.gamma_start, self.gamma_max, steps)

    def gradient_evaluations(self) -> dict[str, int]:
        """Gradient evaluations of BL-JUST: ``{"sup": ..., "unsup": ..., "total": ...}``."""
        sup = self.cycles * self.joint_steps + self.finetune_steps
        unsup = self.cycles * (self.exploration_steps + self.joint_steps)
        return {"sup": sup, "unsup": unsup, "total": sup + unsup}


@dataclass(frozen=True)
class PhaseSpec:
    """One phase: ``kind`` in ``("ssl", "joint", "sup")``, its length in steps and its learning rate."""

    kind: str
    steps: int
    lr: float

    def evaluations(self) -> dict[str, int]:
        """Gradient evaluations this phase spends, by loss."""
        return {
            "sup": self.steps * (self.kind in ("joint", "sup")),
            "unsup": self.steps * (self.kind in ("joint", "ssl")),
        }


def phase_plan(method: str, cfg: BLJustConfig) -> list[PhaseSpec]:
    """The phases of ``method`` at the compute of BL-JUST under ``cfg``.

    * ``bl_just``: ``[ssl N1 @ρ, joint N2 @α] × K, sup N3 @τ``;
    * ``supervised``: ``sup (K(N1 + 2 N2)) @α, sup N3 @τ`` — every evaluation on the labelled set;
    * ``pt_ft``: ``ssl K(N1 + N2) @ρ, sup K N2 @α, sup N3 @τ`` — the same number of supervised and of
      self-supervised evaluations as BL-JUST, run one after the other instead of jointly.

    Zero-length phases are dropped. Every method ends with the same low-lr fine-tuning.
    """
    check_choice(method, "method", METHODS)
    K, n1, n2, n3 = cfg.cycles, cfg.exploration_steps, cfg.joint_steps, cfg.finetune_steps
    if method == "bl_just":
        plan = [PhaseSpec("ssl", n1, cfg.lr_exploration), PhaseSpec("joint", n2, cfg.lr_joint)] * K
    elif method == "supervised":
        plan = [PhaseSpec("sup", K * (n1 + 2 * n2), cfg.lr_joint)]
    else:
        plan = [PhaseSpec("ssl", K * (n1 + n2), cfg.lr_exploration), PhaseSpec("sup", K * n2, cfg.lr_joint)]
    plan.append(PhaseSpec("sup", n3, cfg.lr_finetune))
    return [p for p in plan if p.steps > 0]


def plan_evaluations(plan: Sequence[PhaseSpec]) -> dict[str, int]:
    """Total gradient evaluations of a plan, by loss and in all."""
    sup = sum(p.evaluations()["sup"] for p in plan)
    unsup = sum(p.evaluations()["unsup"] for p in plan)
    return {"sup": sup, "unsup": unsup, "total": sup + unsup}


def ablate(cfg: BLJustConfig, ablation: str) -> BLJustConfig:
    """``cfg`` with one ablation of the journal paper applied, at the same total compute.

    * ``no_exploration``: N1 = 0; its N1 evaluations go to N1 // 2 more joint steps (N1 odd: one more
      fine-tuning step);
    * ``no_finetune``: N3 = 0; its N3 evaluations go to N3 // (2K) more joint steps per cycle, and the
      remainder to exploration steps where it divides by K (choose N3 a multiple of 2K for exact parity);
    * ``constant_gamma``: γ = ``gamma_max`` from the first joint step;
    * ``full``: ``cfg`` unchanged.
    """
    check_choice(ablation, "ablation", ABLATIONS)
    if ablation == "no_exploration":
        n1 = cfg.exploration_steps
        return replace(
            cfg,
            exploration_steps=0,
            joint_steps=cfg.joint_steps + n1 // 2,
            finetune_steps=cfg.finetune_steps + cfg.cycles * (n1 % 2),
        )
    if ablation == "no_finetune":
        n3 = cfg.finetune_steps
        extra, rem = divmod(n3, 2 * cfg.cycles)
        return replace(
            cfg,
            finetune_steps=0,
            joint_steps=cfg.joint_steps + extra,
            exploration_steps=cfg.exploration_steps + rem // cfg.cycles,
        )
    if ablation == "constant_gamma":
        return replace(cfg, gamma_start=cfg.gamma_max)
    return cfg


def ctc_objective(parts: ModelParts, batch: dict[str, Any], blank: int = 0) -> Tensor:
    """Mean CTC loss per target token (``zero_infinity=True``, as the authors' code) of one batch."""
    hidden, lens = parts.encoder(batch["feats"], batch["feat_lens"])
    log_probs = parts.ctc_head(hidden).float().log_softmax(-1).transpose(0, 1)
    return torch.nn.functional.ctc_loss(
        log_probs,
        batch["tokens"],
        lens,
        batch["token_lens"],
        blank=blank,
        reduction="mean",
        zero_infinity=True,
    )


def phase_at(plan: Sequence[PhaseSpec], step: int) -> PhaseSpec:
    """The phase that global step ``step`` (0-based) belongs to."""
    check_int(step, "step", low=0)
    for spec in plan:
        if step < spec.steps:
            return spec
        step -= spec.steps
    raise ValueError("the plan is finished")


def evaluations_done(plan: Sequence[PhaseSpec], steps: int) -> dict[str, int]:
    """Gradient evaluations spent by the first ``steps`` steps of ``plan``, by loss and in all."""
    done, left = [], steps
    for spec in plan:
        done.append(replace(spec, steps=min(spec.steps, max(0, left))))
        left -= spec.steps
    return plan_evaluations(done)


def optimizer_key(spec: PhaseSpec) -> str:
    """The optimizer a phase uses: one per kind, and one per learning rate for supervised phases."""
    return spec.kind if spec.kind != "sup" else f"sup@{spec.lr:g}"


def build_optimizers(
    plan: Sequence[PhaseSpec], cfg: BLJustConfig, parts: ModelParts, ssl_loss: nn.Module
) -> dict[str, Any]:
    """Every optimizer of ``plan``: AdamW on θ, η (exploration), [`bilevel.PenaltyBGD`][bilevel.PenaltyBGD]
    with φ as the
    upper and θ, η as the lower block (joint), AdamW on θ, φ (fine-tuning, one per learning rate)."""
    theta, phi = parts.encoder_params(), parts.head_params()
    if not theta:
        raise ValueError("the encoder has no trainable parameters outside the CTC head")
    eta = [p for p in ssl_loss.parameters() if p.requires_grad]
    adamw = partial(torch.optim.AdamW, weight_decay=cfg.weight_decay)
    out: dict[str, Any] = {}
    for spec in plan:
        key = optimizer_key(spec)
        if key in out:
            continue
        if spec.kind == "ssl":
            out[key] = adamw([*theta, *eta], lr=spec.lr)
        elif spec.kind == "sup":
            out[key] = adamw([*theta, *phi], lr=spec.lr)
        else:
            out[key] = PenaltyBGD(
                phi,
                [*theta, *eta],
                lr=spec.lr,
                gamma=cfg.gamma(),
                inner_steps=0,
                scale_steps=cfg.scale_steps,
                optimizer=torch.optim.AdamW,
                optimizer_kwargs={"weight_decay": cfg.weight_decay},
            )
    return out


class PlanBatches:
    """The batch source of a phase plan: the labelled batch for a fine-tuning step, the unlabelled one for
    an exploration step, both for a joint step (``{"labelled": ..., "unlabelled": ...}``).

    A stream advances only when its batch is used, so each stream's batch sequence does not depend on the
    phase lengths before it.
    """

    def __init__(self, plan: Sequence[PhaseSpec], labelled: Batches, unlabelled: Batches) -> None:
        self.plan, self.labelled, self.unlabelled = list(plan), labelled, unlabelled

    def batch(self, step: int) -> dict[str, Any]:
        kind = phase_at(self.plan, step).kind
        out: dict[str, Any] = {}
        if kind in ("joint", "sup"):
            out["labelled"] = next(self.labelled)
        if kind in ("joint", "ssl"):
            out["unlabelled"] = next(self.unlabelled)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"labelled": self.labelled.state_dict(), "unlabelled": self.unlabelled.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.labelled.load_state_dict(state["labelled"])
        self.unlabelled.load_state_dict(state["unlabelled"])


class BLJustStep:
    r"""The step function of BL-JUST and its baselines: one step of the phase that ``state.step`` is in.

    * exploration (``ssl``): AdamW on $g$ over θ and η;
    * joint: [`bilevel.PenaltyBGD.step()`][bilevel.PenaltyBGD.step] with ``upper_loss`` = f on the labelled
        batch and
      ``lower_loss`` = g on the unlabelled batch;
    * fine-tuning (``sup``): AdamW on $f$ over θ and φ.

    Returns ``{"phase", "f", "g", "gamma", "lr"}`` (``None`` for a loss the step did not evaluate).
    """

    def __init__(self, plan: Sequence[PhaseSpec], parts: ModelParts, ssl_loss: nn.Module) -> None:
        self.plan, self.parts, self.ssl_loss = list(plan), parts, ssl_loss

    def f(self, batch: dict[str, Any]) -> Tensor:
        return ctc_objective(self.parts, batch, self.parts.blank)

    def g(self, batch: dict[str, Any]) -> Tensor:
        return self.ssl_loss(self.parts.encoder, batch["feats"], batch["feat_lens"])  # type: ignore[no-any-return]

    def __call__(self, state: TrainState, batch: dict[str, Any]) -> dict[str, Any]:
        spec = phase_at(self.plan, state.step)
        opt = state.optimizers[optimizer_key(spec)]
        f = g = gamma = None
        if spec.kind == "joint":
            lab, unl = batch["labelled"], batch["unlabelled"]
            stats = opt.step(
                upper_loss=lambda: self.f(lab),
                lower_loss=lambda: self.g(unl),
                batch_size=len(lab["feat_lens"]),  # averages its gradients across ranks under torchrun
            )
            f, g, gamma = float(stats.f), float(stats.g), float(stats.gamma)
        else:
            opt.zero_grad(set_to_none=True)
            loss = self.g(batch["unlabelled"]) if spec.kind == "ssl" else self.f(batch["labelled"])
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(f"{spec.kind} loss is not finite at step {state.step}")
            loss.backward()
            used = batch["unlabelled" if spec.kind == "ssl" else "labelled"]
            average_gradients(
                [p for group in opt.param_groups for p in group["params"]], weight=len(used["feat_lens"])
            )
            opt.step()
            if spec.kind == "ssl":
                g = float(loss.detach())
            else:
                f = float(loss.detach())
        return {"phase": spec.kind, "f": f, "g": g, "gamma": gamma, "lr": spec.lr}


def bl_just_trainer(
    parts: ModelParts,
    ssl_loss: nn.Module,
    labelled: Batches,
    unlabelled: Batches,
    cfg: BLJustConfig,
    method: str = "bl_just",
    *,
    run_dir: str | Path | None = None,
    progress: bool = False,
    desc: str = "",
) -> Trainer:
    """The [`zoo.training.Trainer`][zoo.training.Trainer] of ``method``'s `phase_plan()` under ``cfg``:
    modules θ+φ
    (``"model"``) and η (``"ssl_loss"``), every optimizer, both batch streams, a step budget of the plan's
    length. ``trainer.run()`` trains; ``trainer.state.history`` holds one row per step."""
    check_choice(method, "method", METHODS)
    plan = phase_plan(method, cfg)
    state = TrainState(
        modules={"model": parts, "ssl_loss": ssl_loss},
        optimizers=build_optimizers(plan, cfg, parts, ssl_loss),
        data=PlanBatches(plan, labelled, unlabelled),
    )
    return Trainer(
        state,
        BLJustStep(plan, parts, ssl_loss),
        Budget(steps=sum(p.steps for p in plan)),
        run_dir=run_dir,
        meta={"recipe": "bl_just", "method": method, "config": asdict(cfg)},
        progress=progress,
        desc=desc or method,
    )
