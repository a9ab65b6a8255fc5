r"""BL-JUST: bilevel joint unsupervised and supervised training (Saif et al., arXiv 2401.06980, 2412.08548).

The recipe trains a shared encoder :math:`\theta`, a CTC head :math:`\phi` and a self-supervised head
:math:`\eta` on

.. math::

    \min_{\theta,\phi} f(\theta,\phi) \quad\text{s.t.}\quad
    \theta \in \arg\min_{\theta',\eta} g(\theta',\eta),

with :math:`f` = CTC on the small labelled set and :math:`g` = a self-supervised loss on the unlabelled
pool (:class:`zoo.losses.CPCLoss`, or :class:`zoo.losses.MaskedPredictionLoss`). Its penalty form
:math:`F_\gamma = f + \gamma\,(g - v)`, with :math:`v = \min g` a constant, is minimised with
:class:`bilevel.PenaltyBGD` (``upper_params`` = φ, ``lower_params`` = θ and η, ``inner_steps=0``): each joint
step moves θ along :math:`\nabla_\theta(f + \gamma g)`, φ along :math:`\nabla_\phi f` and η along
:math:`\gamma\nabla_\eta g` (the authors' code drops the γ on η; with AdamW, which is invariant to the
scale of a block's gradient, both give the same step up to Adam's ε).

Phases (the authors' schedule; every length is a parameter of :class:`BLJustConfig`):

1. **exploration** — ``exploration_steps`` AdamW steps (lr ρ) on :math:`g` over θ and η;
2. **joint** — ``joint_steps`` PenaltyBGD steps (lr α), γ growing linearly from ``gamma_start`` to
   ``gamma_max`` (:class:`bilevel.LinearRamp`); phases 1–2 repeat ``cycles`` times (the code runs SSL
   epochs inside every outer epoch) and γ keeps ramping across cycles;
3. **fine-tuning** — ``finetune_steps`` AdamW steps (lr τ) on :math:`f` over θ and φ.

Compute is counted in *gradient evaluations*: one forward + backward pass of one loss on one mini-batch.
A joint step costs two (one of f, one of g), an exploration or fine-tuning step one. The baselines of
:func:`phase_plan` spend exactly the same number of each kind (see :meth:`BLJustConfig.budget`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from bilevel import LinearRamp, PenaltyBGD
from zoo.losses._checks import check_choice, check_int, check_real
from zoo.recipes._streams import BatchStream
from zoo.recipes.encoders import ModelParts

METHODS = ("bl_just", "supervised", "pt_ft")
"""``bl_just``: the recipe; ``supervised``: CTC only; ``pt_ft``: self-supervised pre-training, then
fine-tuning."""

ABLATIONS = ("full", "no_exploration", "no_finetune", "constant_gamma")
"""The journal paper's ablations of BL-JUST (see :func:`ablate`)."""

PHASES = ("ssl", "joint", "sup")

SSLLoss = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""``ssl_loss(encoder, feats, lens) -> scalar``; an ``nn.Module`` that owns its head (η)."""

__all__ = [
    "ABLATIONS",
    "METHODS",
    "BLJustConfig",
    "BLJustTrainer",
    "PhaseSpec",
    "StepRecord",
    "ablate",
    "ctc_objective",
    "evaluate",
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
        scale_steps: PenaltyBGD's :math:`\\min(1, 1/\\gamma)` step scaling (a no-op for γ ≤ 1).
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
        """The γ schedule over joint steps: :math:`\\gamma_k = \\min(\\gamma_m, \\gamma_0 + k\\Delta)`."""
        steps = self.gamma_ramp_steps or max(1, self.cycles * self.joint_steps - 1)
        return LinearRamp(self.gamma_start, self.gamma_max, steps)

    def budget(self) -> dict[str, int]:
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


@dataclass
class StepRecord:
    """One training step: global step, phase, the losses evaluated (``None`` if not) and γ."""

    step: int
    phase: str
    f: float | None
    g: float | None
    gamma: float | None


@dataclass
class _Progress:
    phase: int = 0
    in_phase: int = 0
    step: int = 0
    evaluations: dict[str, int] = field(default_factory=lambda: {"sup": 0, "unsup": 0})
    history: list[StepRecord] = field(default_factory=list)


class BLJustTrainer:
    r"""Runs a :func:`phase_plan` (BL-JUST or a baseline) step by step; resumable bit for bit.

    Args:
        parts: the encoder θ and CTC head φ (:class:`zoo.recipes.encoders.ModelParts`).
        ssl_loss: the lower-level loss module, owning η (e.g. :class:`zoo.losses.CPCLoss`).
        labelled: stream of labelled batches (``feats``, ``feat_lens``, ``tokens``, ``token_lens``).
        unlabelled: stream of unlabelled batches (``feats``, ``feat_lens``).
        cfg: hyper-parameters; method: one of :data:`METHODS`.

    ``step()`` runs one step of the current phase and returns its :class:`StepRecord`; ``run()`` runs the
    rest of the plan. ``state_dict()`` holds the modules, every optimizer created so far, both streams,
    the progress counters, the loss history and the global torch RNG (dropout), so that
    ``load_state_dict`` + ``run`` equals an uninterrupted run exactly.
    """

    def __init__(
        self,
        parts: ModelParts,
        ssl_loss: nn.Module,
        labelled: BatchStream,
        unlabelled: BatchStream,
        cfg: BLJustConfig,
        method: str = "bl_just",
        blank: int = 0,
    ) -> None:
        self.parts = parts
        self.ssl_loss = ssl_loss
        self.labelled = labelled
        self.unlabelled = unlabelled
        self.cfg = cfg
        self.method = check_choice(method, "method", METHODS)
        self.blank = blank
        self.plan = phase_plan(method, cfg)
        self.progress = _Progress()
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self.seconds: dict[str, float] = {k: 0.0 for k in PHASES}
        theta = parts.encoder_params()
        if not theta:
            raise ValueError("the encoder has no trainable parameters outside the CTC head")
        self._theta, self._phi = theta, parts.head_params()
        self._eta = [p for p in ssl_loss.parameters() if p.requires_grad]

    # -- optimizers ------------------------------------------------------------------------------
    def _key(self, spec: PhaseSpec) -> str:
        return spec.kind if spec.kind != "sup" else f"sup@{spec.lr:g}"

    def _optimizer(self, spec: PhaseSpec) -> torch.optim.Optimizer:
        key = self._key(spec)
        if key not in self._optimizers:
            adamw = partial(torch.optim.AdamW, weight_decay=self.cfg.weight_decay)
            opt: torch.optim.Optimizer
            if spec.kind == "ssl":
                opt = adamw([*self._theta, *self._eta], lr=spec.lr)
            elif spec.kind == "sup":
                opt = adamw([*self._theta, *self._phi], lr=spec.lr)
            else:
                opt = PenaltyBGD(
                    self._phi,
                    [*self._theta, *self._eta],
                    lr=spec.lr,
                    gamma=self.cfg.gamma(),
                    inner_steps=0,
                    scale_steps=self.cfg.scale_steps,
                    optimizer=torch.optim.AdamW,
                    optimizer_kwargs={"weight_decay": self.cfg.weight_decay},
                )
            self._optimizers[key] = opt
        return self._optimizers[key]

    # -- stepping --------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.progress.phase >= len(self.plan)

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.plan)

    def _f(self, batch: dict[str, Any]) -> Tensor:
        return ctc_objective(self.parts, batch, self.blank)

    def _g(self, batch: dict[str, Any]) -> Tensor:
        return self.ssl_loss(self.parts.encoder, batch["feats"], batch["feat_lens"])

    def step(self) -> StepRecord:
        """One step of the current phase."""
        if self.done:
            raise RuntimeError("the plan is finished")
        spec = self.plan[self.progress.phase]
        opt = self._optimizer(spec)
        self.parts.encoder.train()
        self.parts.ctc_head.train()
        self.ssl_loss.train()
        t0 = time.perf_counter()
        ev = self.progress.evaluations
        f = g = gamma = None
        if spec.kind == "joint":
            assert isinstance(opt, PenaltyBGD)
            lab, unl = next(self.labelled), next(self.unlabelled)
            stats = opt.step(upper_loss=lambda: self._f(lab), lower_loss=lambda: self._g(unl))
            f, g, gamma = stats.f, stats.g, stats.gamma
            ev["sup"] += 1
            ev["unsup"] += 1
        else:
            opt.zero_grad(set_to_none=True)
            if spec.kind == "ssl":
                loss = self._g(next(self.unlabelled))
                ev["unsup"] += 1
            else:
                loss = self._f(next(self.labelled))
                ev["sup"] += 1
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(f"{spec.kind} loss is not finite at step {self.progress.step}")
            loss.backward()
            opt.step()
            if spec.kind == "ssl":
                g = float(loss.detach())
            else:
                f = float(loss.detach())
        self.seconds[spec.kind] += time.perf_counter() - t0
        rec = StepRecord(self.progress.step, spec.kind, f, g, gamma)
        self.progress.history.append(rec)
        self.progress.step += 1
        self.progress.in_phase += 1
        if self.progress.in_phase >= spec.steps:
            self.progress.phase += 1
            self.progress.in_phase = 0
        return rec

    def run(self, progress: bool = False, desc: str = "") -> list[StepRecord]:
        """Run the rest of the plan (tqdm bar when ``progress``); returns the whole history."""
        from tqdm.auto import tqdm

        with tqdm(
            total=self.total_steps, initial=self.progress.step, disable=not progress, desc=desc, leave=False
        ) as bar:
            while not self.done:
                rec = self.step()
                bar.update(1)
                if rec.step % 25 == 0:
                    bar.set_postfix_str(rec.phase)
        return self.progress.history

    # -- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        p = self.progress
        return {
            "method": self.method,
            "cfg": asdict(self.cfg),
            "encoder": self.parts.encoder.state_dict(),
            "ctc_head": self.parts.ctc_head.state_dict(),
            "ssl_loss": self.ssl_loss.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self._optimizers.items()},
            "labelled": self.labelled.state_dict(),
            "unlabelled": self.unlabelled.state_dict(),
            "progress": {
                "phase": p.phase,
                "in_phase": p.in_phase,
                "step": p.step,
                "evaluations": dict(p.evaluations),
                "history": [asdict(r) for r in p.history],
            },
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.method or state.get("cfg") != asdict(self.cfg):
            raise ValueError("state_dict was saved by a trainer with another method or config")
        self.parts.encoder.load_state_dict(state["encoder"])
        self.parts.ctc_head.load_state_dict(state["ctc_head"])
        self.ssl_loss.load_state_dict(state["ssl_loss"])
        for key, sd in state["optimizers"].items():
            spec = next(s for s in self.plan if self._key(s) == key)
            self._optimizer(spec).load_state_dict(sd)
        self.labelled.load_state_dict(state["labelled"])
        self.unlabelled.load_state_dict(state["unlabelled"])
        pr = state["progress"]
        self.progress = _Progress(
            pr["phase"],
            pr["in_phase"],
            pr["step"],
            dict(pr["evaluations"]),
            [StepRecord(**r) for r in pr["history"]],
        )
        torch.set_rng_state(state["torch_rng"])

    def evaluations(self) -> dict[str, int]:
        """Gradient evaluations spent so far, by loss and in all."""
        ev = self.progress.evaluations
        return {"sup": ev["sup"], "unsup": ev["unsup"], "total": ev["sup"] + ev["unsup"]}


@torch.no_grad()
def evaluate(
    parts: ModelParts,
    items: Sequence[Any],
    collate: Callable[[list[Any]], dict[str, Any]],
    decode: Callable[[list[int]], str],
    batch_size: int = 16,
    blank: int = 0,
) -> dict[str, Any]:
    """Greedy CTC decoding of ``items``; returns ``{"wer", "cer", "refs", "hyps"}`` (rates in [0, ∞))."""
    from zoo.decoding import ctc_greedy
    from zoo.metrics import cer, wer

    parts.encoder.eval()
    parts.ctc_head.eval()
    refs: list[str] = []
    hyps: list[str] = []
    for i in range(0, len(items), batch_size):
        batch = collate(list(items[i : i + batch_size]))
        hidden, lens = parts.encoder(batch["feats"], batch["feat_lens"])
        ids = ctc_greedy(parts.ctc_head(hidden), lens, blank=blank)
        hyps += [decode(x) for x in ids]
        refs += list(batch["texts"])
    return {"wer": wer(refs, hyps), "cer": cer(refs, hyps), "refs": refs, "hyps": hyps}
