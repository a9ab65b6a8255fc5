r"""Objective Soups recipes (Saif et al., arXiv 2508.09228) as step functions of
[`zoo.training.Trainer`][zoo.training.Trainer].

Levels of objectives, top first, are joined by per-epoch penalties $\eta_j(e)$ and aggregated inside a
level by a multi-objective solver (MoDo by default; MGDA or CAGrad), as a
[`bilevel.moo.Recipe`][bilevel.moo.Recipe]:

$$
d = \sum_{\ell} \Big(\prod_{j<\ell}\eta_j(e)\Big)\sum_{i\in\ell} w^{(\ell)}_i \bar g_i ,\qquad
\bar g_i = \tfrac12\big(\nabla_\theta L_i(z_1) + \nabla_\theta L_i(z_2)\big).
$$

| method | levels (top first) |
|---|---|
| ``flat`` | all objectives |
| ``bilevel`` | recognition + translation; SSL |
| ``bilevel_split`` | recognition; translation + SSL (recognition and translation separated) |
| ``multilevel_asr_first`` | recognition; translation; SSL ("UAS") |
| ``multilevel_st_first`` | translation; recognition; SSL ("USA") |
| ``weighted_sum`` | fixed weights per task family, one backward |

One step (`SoupsStep`): every optimizer's gradients are cleared, the objectives are computed on two
independent draws, [`bilevel.moo.backward()`][bilevel.moo.backward] writes the shared direction $d$ into
the encoder's ``.grad`` (nothing clears it afterwards) and every head's own loss gradient into that
head's ``.grad``; then the encoder's optimizer steps on θ only and every head's optimizer on its head
only. The authors' code cleared the gradients *after* writing $d$ (a silent no-op under PyTorch ≥ 2)
and used one AdamW over everything, whose momentum and weight decay kept moving the encoder during the
head updates; neither happens here. Penalties advance once per epoch (``steps_per_epoch`` steps), not
per batch.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bilevel import LinearRamp
from bilevel.moo import MGDA, Aggregator, CAGrad, LayerSelection, MoDo, Recipe, backward, group_by_module
from zoo.checks import check_choice, check_int, check_real
from zoo.metrics import bleu, wer
from zoo.recipes.objective_soups.data import SoupBatches, SoupsData, collate_soup
from zoo.recipes.objective_soups.model import SoupsModel, SoupsModelConfig
from zoo.training import Budget, Trainer, TrainState

__all__ = [
    "LEVELS",
    "METHODS",
    "SOLVERS",
    "SoupsConfig",
    "SoupsController",
    "SoupsStep",
    "build_recipe",
    "evaluate_soups",
    "resolve_levels",
    "soups_trainer",
]

LEVELS: dict[str, tuple[tuple[str, ...], ...]] = {
    "flat": (("asr_*", "st_*", "ssl"),),
    "bilevel": (("asr_*", "st_*"), ("ssl",)),
    "bilevel_split": (("asr_*",), ("st_*", "ssl")),
    "multilevel_asr_first": (("asr_*",), ("st_*",), ("ssl",)),
    "multilevel_st_first": (("st_*",), ("asr_*",), ("ssl",)),
}
"""The level patterns of every MOO method (``fnmatch`` patterns over the objective names)."""

METHODS = (*LEVELS, "weighted_sum")
SOLVERS = ("modo", "mgda", "cagrad")
SELECTIONS = ("none", "threshold", "topk")


@dataclass(frozen=True)
class SoupsConfig:
    """Hyper-parameters of one training run.

    Attributes:
        method: one of `METHODS`; levels: custom level patterns (``"asr_*|st_*,ssl"``: levels split by
            ``|``, patterns by ``,``) overriding the method's.
        solver: the MOO solver inside a level (``modo``, ``mgda``, ``cagrad``).
        steps, steps_per_epoch: training steps; steps per epoch (the penalty counter's unit).
        batch_size: utterances per language per draw (two draws per step).
        lr_encoder, lr_heads, weight_decay: AdamW of the encoder and of every head.
        modo_gamma, modo_rho: MoDo's λ step size and regulariser (the authors' config: 0.01, 0.001).
        cagrad_c: CAGrad's c.
        penalty_start, penalty_max, penalty_epochs: every penalty ramps linearly from start to max over
            this many epochs (VM-MSP: 0.1 → 1.5 by 0.02 per epoch).
        weights: weighted-sum weights of (recognition, translation, SSL), all > 0.
        selection: layer selection (``none``, ``threshold`` τ, ``topk`` k) on the encoder's tensors.
        threshold, top_k, apply_to, others, rescore_every, layer_groups: its settings (``apply_to``
            ``all`` or ``selected``; what unselected tensors get with ``selected``: ``mean``, ``sum`` or
            ``none``, the VM-MSP code; ``layer_groups`` ``tensor`` or ``module``).
        batched: vmapped per-objective gradients (falls back to one backward per objective when an op
            has no batching rule).
        seed: model, heads and batch order.
    """

    method: str = "bilevel_split"
    levels: str = ""
    solver: str = "modo"
    steps: int = 60
    steps_per_epoch: int = 10
    batch_size: int = 4
    lr_encoder: float = 2e-3
    lr_heads: float = 2e-3
    weight_decay: float = 0.01
    modo_gamma: float = 0.1
    modo_rho: float = 0.01
    cagrad_c: float = 0.4
    penalty_start: float = 0.1
    penalty_max: float = 1.5
    penalty_epochs: int = 5
    weights: tuple[float, float, float] = (1.0, 1.0, 0.3)
    selection: str = "none"
    threshold: float = 0.0
    top_k: int = 10
    apply_to: str = "all"
    others: str = "mean"
    rescore_every: int = 10
    layer_groups: str = "tensor"
    batched: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice(self.method, "method", METHODS)
        check_choice(self.solver, "solver", SOLVERS)
        check_int(self.steps, "steps", low=1)
        check_int(self.steps_per_epoch, "steps_per_epoch", low=1)
        check_int(self.batch_size, "batch_size", low=1)
        for name in ("lr_encoder", "lr_heads", "modo_gamma"):
            check_real(getattr(self, name), name, low=0.0, low_open=True)
        for name in ("weight_decay", "modo_rho", "cagrad_c", "penalty_start"):
            check_real(getattr(self, name), name, low=0.0)
        check_real(self.penalty_max, "penalty_max", low=float(self.penalty_start))
        check_int(self.penalty_epochs, "penalty_epochs", low=1)
        if len(self.weights) != 3:
            raise ValueError(f"weights must be (recognition, translation, ssl), got {self.weights}")
        for i, w in enumerate(self.weights):
            check_real(w, f"weights[{i}]", low=0.0, low_open=True)
        check_choice(self.selection, "selection", SELECTIONS)
        check_real(self.threshold, "threshold", low=-1.0, high=1.0)
        check_int(self.top_k, "top_k", low=1)
        check_choice(self.apply_to, "apply_to", ("all", "selected"))
        check_choice(self.others, "others", ("mean", "sum", "none"))
        check_int(self.rescore_every, "rescore_every", low=1)
        check_choice(self.layer_groups, "layer_groups", ("tensor", "module"))

    def level_patterns(self) -> list[list[str]]:
        """The level patterns: ``levels`` if given, else the method's."""
        if self.levels:
            return [[p.strip() for p in lv.split(",") if p.strip()] for lv in self.levels.split("|")]
        if self.method == "weighted_sum":
            return [["*"]]
        return [list(lv) for lv in LEVELS[self.method]]

    def penalty(self) -> LinearRamp:
        """The penalty schedule of every level below the top, by epoch."""
        return LinearRamp(self.penalty_start, self.penalty_max, self.penalty_epochs)


def resolve_levels(patterns: Sequence[Sequence[str]], objectives: Sequence[str]) -> list[list[str]]:
    """Objective names per level from ``fnmatch`` patterns.

    Raises:
        ValueError: a level whose patterns match no objective, an objective matched by two levels, or an
            objective matched by none.

    Examples:
        >>> resolve_levels([["asr_*"], ["st_*", "ssl"]], ["asr_en", "asr_fr", "st_fr", "ssl"])
        [['asr_en', 'asr_fr'], ['st_fr', 'ssl']]
    """
    if not patterns:
        raise ValueError("levels: give at least one level")
    levels: list[list[str]] = []
    seen: dict[str, int] = {}
    for k, pats in enumerate(patterns):
        names = [o for o in objectives if any(fnmatch.fnmatchcase(o, p) for p in pats)]
        if not names:
            raise ValueError(f"levels[{k}] {list(pats)} matches no objective of {list(objectives)}")
        for o in names:
            if o in seen:
                raise ValueError(f"objective {o!r} is matched by levels[{seen[o]}] and levels[{k}]")
            seen[o] = k
        levels.append(names)
    missing = [o for o in objectives if o not in seen]
    if missing:
        raise ValueError(f"objectives {missing} belong to no level; levels are {[list(p) for p in patterns]}")
    return levels


def _solver(cfg: SoupsConfig) -> Aggregator:
    if cfg.solver == "modo":
        return MoDo(cfg.modo_gamma, cfg.modo_rho, center="uniform")
    if cfg.solver == "mgda":
        return MGDA()
    return CAGrad(cfg.cagrad_c)


def build_recipe(cfg: SoupsConfig, objectives: Sequence[str]) -> Recipe:
    """The [`bilevel.moo.Recipe`][bilevel.moo.Recipe] of ``cfg`` over ``objectives`` (per-epoch penalties)."""
    levels = resolve_levels(cfg.level_patterns(), objectives)
    aggs = [_solver(cfg) if len(lv) > 1 else None for lv in levels]
    return Recipe(levels, aggs, penalties=[cfg.penalty()] * (len(levels) - 1), per="epoch")


def _family(name: str) -> int:
    return 0 if name.startswith("asr_") else 1 if name.startswith("st_") else 2


class SoupsController(nn.Module):
    """The recipe's non-module state (the [`bilevel.moo.Recipe`][bilevel.moo.Recipe]'s penalty counter and
    MoDo λ, the [`bilevel.moo.LayerSelection`][bilevel.moo.LayerSelection]'s scores), kept in a module so
    that [`zoo.training.TrainState`][zoo.training.TrainState] checkpoints it."""

    def __init__(self, recipe: Recipe | None, selection: LayerSelection | None) -> None:
        super().__init__()
        self.recipe, self.selection = recipe, selection

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "recipe": None if self.recipe is None else self.recipe.state_dict(),
            "selection": None if self.selection is None else self.selection.state_dict(),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if self.recipe is not None:
            self.recipe.load_state_dict(state["recipe"])
        if self.selection is not None:
            self.selection.load_state_dict(state["selection"])


class SoupsStep:
    """The step function of every method of `METHODS` (see the module docstring).

    Returns the losses of the first draw (``loss_<name>``), their sum (``loss``), the weights of the
    shared direction (``w_<name>``, the penalties included), the selected layers' count and whether the
    step re-scored them.
    """

    def __init__(self, cfg: SoupsConfig, model: SoupsModel, controller: SoupsController) -> None:
        self.cfg, self.model, self.controller = cfg, model, controller
        self.names = model.objectives
        self.shared = model.shared_parameters()
        heads = model.heads()
        self.head_params = [p for n in self.names for p in heads[n].parameters() if p.requires_grad]

    def losses(self, draw: dict[str, Any]) -> dict[str, Tensor]:
        out = self.model.objective_losses(draw, self.names)
        for k, v in out.items():
            if not bool(torch.isfinite(v)):
                raise FloatingPointError(f"objective {k} is not finite ({float(v)})")
        return out

    def __call__(self, state: TrainState, batch: dict[str, Any]) -> dict[str, Any]:
        for opt in state.optimizers.values():
            opt.zero_grad(set_to_none=True)  # before anything is written, never after
        L1, L2 = self.losses(batch["first"]), self.losses(batch["second"])
        recipe, sel = self.controller.recipe, self.controller.selection
        stats: dict[str, Any] = {}
        if recipe is None:  # weighted sum: one backward of Σ w_i L̄_i; heads get their own loss gradient
            w = torch.tensor([self.cfg.weights[_family(n)] for n in self.names])
            total = sum(w[i] * 0.5 * (L1[n] + L2[n]) for i, n in enumerate(self.names))
            total.backward()  # type: ignore[union-attr]
            heads = self.model.heads()
            with torch.no_grad():
                for i, n in enumerate(self.names):
                    for p in heads[n].parameters():
                        if p.grad is not None:
                            p.grad.div_(w[i])
        else:
            res = backward(
                L1,
                self.shared,
                recipe,
                task_params=self.head_params,
                second_losses=L2,
                selection=sel,
                batched=self.cfg.batched,
            )
            w = res.weights.detach().cpu()
            if res.selected is not None:
                stats["selected"] = len(res.selected)
                stats["scored"] = res.scored
        for opt in state.optimizers.values():
            opt.step()
        if recipe is not None and (state.step + 1) % self.cfg.steps_per_epoch == 0:
            recipe.end_epoch()  # penalties grow per epoch
        stats.update({f"loss_{n}": float(v.detach()) for n, v in L1.items()})
        stats["loss"] = float(sum(float(v.detach()) for v in L1.values()))
        stats.update({f"w_{n}": float(w[i]) for i, n in enumerate(self.names)})
        return stats


def _selection(cfg: SoupsConfig, model: SoupsModel) -> LayerSelection | None:
    if cfg.selection == "none" or cfg.method == "weighted_sum":
        return None
    layers = None
    if cfg.layer_groups == "module":
        keep = {id(p) for p in model.shared_parameters()}
        layers = [[p for p in g if id(p) in keep] for g in group_by_module(model.encoder)]
        layers = [g for g in layers if g]
    return LayerSelection(
        cfg.threshold,
        cfg.top_k if cfg.selection == "topk" else None,
        apply_to=cfg.apply_to,
        others=cfg.others,
        rescore_every=cfg.rescore_every,
        layers=layers,
    )


def soups_trainer(
    data: SoupsData,
    cfg: SoupsConfig,
    model_cfg: SoupsModelConfig | None = None,
    *,
    run_dir: str | Path | None = None,
    progress: bool = False,
    desc: str = "",
) -> Trainer:
    """A [`zoo.training.Trainer`][zoo.training.Trainer] of ``cfg``: model, controller, one AdamW on the
    encoder and one per head, the double-draw batch source and a step budget.

    Everything is checked before the first step: the levels resolve against the objectives (no empty
    level, none left out) and the first batch carries every objective's data.
    """
    model = SoupsModel(
        data.n_mels,
        data.tokenizer.vocab_size,
        data.vocab.vocab_size,
        data.languages,
        data.translate,
        model_cfg,
        seed=cfg.seed,
    )
    recipe = None if cfg.method == "weighted_sum" and not cfg.levels else build_recipe(cfg, model.objectives)
    controller = SoupsController(recipe, _selection(cfg, model) if recipe is not None else None)
    opts: dict[str, Any] = {
        "encoder": torch.optim.AdamW(
            model.shared_parameters(), lr=cfg.lr_encoder, weight_decay=cfg.weight_decay
        )
    }
    for name, head in model.heads().items():
        ps = [p for p in head.parameters() if p.requires_grad]
        opts[name] = torch.optim.AdamW(ps, lr=cfg.lr_heads, weight_decay=cfg.weight_decay)
    source = SoupBatches(data, cfg.batch_size, seed=cfg.seed)
    probe = {k: s.dataset[0] for k, s in source.streams.items()}
    for name in model.objectives:
        if name.startswith("st_") and "trans" not in probe[name[3:]]:
            raise ValueError(f"objective {name} has no translation data for language {name[3:]!r}")
    state = TrainState(modules={"model": model, "controller": controller}, optimizers=opts, data=source)
    return Trainer(
        state,
        SoupsStep(cfg, model, controller),
        Budget(steps=cfg.steps),
        run_dir=run_dir,
        meta={"recipe": "objective_soups", "config": asdict(cfg), "model": asdict(model.cfg)},
        progress=progress,
        desc=desc or cfg.method,
    )


def _batches(items: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@torch.no_grad()
def evaluate_soups(
    model: SoupsModel, data: SoupsData, split: str = "dev", *, batch_size: int = 16
) -> dict[str, Any]:
    """Greedy decoding of ``split`` per language: WER (CTC head) and sacrebleu BLEU (decoder, X→en).

    Returns ``{"wer": {lang: ...}, "bleu": {lang: ...}, "avg_wer", "avg_bleu"}`` (WER in [0, ∞), BLEU 0–100).
    """
    check_choice(split, "split", ("dev", "test"))
    part = data.dev if split == "dev" else data.test
    was = model.training
    model.eval()
    out: dict[str, Any] = {"wer": {}, "bleu": {}}
    try:
        for lang in model.languages:
            refs, hyps, trefs, thyps = [], [], [], []
            for chunk in _batches(part[lang], batch_size):
                b = collate_soup(chunk)
                hyps += [data.tokenizer.decode(h) for h in model.transcribe(lang, b["feats"], b["feat_lens"])]
                refs += b["texts"]
                if lang in model.translate:
                    ids = model.translate_ids(lang, b["feats"], b["feat_lens"])
                    thyps += [data.vocab.decode(h) for h in ids]
                    trefs += b["translations"]
            out["wer"][lang] = wer(refs, hyps)
            if trefs:
                out["bleu"][lang] = bleu(trefs, thyps)
    finally:
        model.train(was)
    out["avg_wer"] = sum(out["wer"].values()) / len(out["wer"])
    out["avg_bleu"] = sum(out["bleu"].values()) / max(1, len(out["bleu"]))
    return out
