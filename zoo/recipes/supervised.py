"""Supervised training of any zoo ASR model: its typed config, its step function and its state.

* `SupervisedConfig` — AdamW, linear warm-up and cosine decay
([`zoo.training.WarmupCosine`][zoo.training.WarmupCosine]),
  gradient clipping, SpecAugment ([`zoo.data.spec_augment_batch()`][zoo.data.spec_augment_batch]), batch size,
  budget;
* `SupervisedStep` — the step function: forward (the model's own loss: CTC, SAR, DOTA's
  cross-entropy), backward, clip, ``optimizer.step()``;
* `supervised_state()` — the [`zoo.training.TrainState`][zoo.training.TrainState] of a run: the model, an
optimizer (the
  built-in AdamW or the user's), a scheduler (the built-in schedule for the built-in optimizer, or the
  user's), length-bucketed batches from [`bilevel.sampling`][bilevel.sampling] and the run's generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from zoo.checks import check_int, check_real
from zoo.data import AUGMENT_PRESETS, AugmentedCopies, SpeechDataset, spec_augment_batch
from zoo.training import Batches, Budget, TrainState, WarmupCosine, average_gradients

__all__ = ["SupervisedConfig", "SupervisedStep", "model_inputs", "supervised_state"]

Batch = dict[str, Any]


@dataclass(frozen=True)
class SupervisedConfig:
    """Optimisation settings of supervised training.

    Attributes:
        steps: optimizer steps in total.
        batch_size: utterances per batch.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup: linear warm-up steps before the cosine decay.
        min_lr_ratio: final lr of the cosine decay as a fraction of lr.
        grad_clip: max global gradient norm ('none': no clipping).
        max_seconds: training time budget in seconds ('none': steps only); the decay then follows the
            spent fraction of the budget when that is ahead of the steps.
        spec_augment: SpecAugment masks on the training features.
        augment: waveform augmentation of the training set, 'none' or 'robust' (zoo.data.AUGMENT_PRESETS:
            speed and pitch perturbation, rooms, noise at random SNR, band limits): augment_copies
            perturbed copies of every training utterance join the clean ones (zoo.data.AugmentedCopies;
            the dataset must be a zoo.data.SpeechDataset).
        augment_copies: augmented copies per training utterance when augment is on.
        seed: seeds the batch order and the augmentation.
    """

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    warmup: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float | None = 1.0
    max_seconds: float | None = None
    spec_augment: bool = False
    augment: str = "none"
    augment_copies: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.steps, "steps", low=0)
        check_int(self.batch_size, "batch_size", low=1)
        check_real(self.lr, "lr", low=0.0, low_open=True)
        check_int(self.warmup, "warmup", low=0)
        check_real(self.min_lr_ratio, "min_lr_ratio", low=0.0, high=1.0)
        if self.grad_clip is not None:
            check_real(self.grad_clip, "grad_clip", low=0.0, low_open=True)
        if self.max_seconds is not None:
            check_real(self.max_seconds, "max_seconds", low=0.0)
        if self.augment not in AUGMENT_PRESETS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENT_PRESETS)}, got {self.augment!r}")
        check_int(self.augment_copies, "augment_copies", low=1)

    def budget(self) -> Budget:
        """``steps`` and ``max_seconds`` as a [`zoo.training.Budget`][zoo.training.Budget]."""
        return Budget(steps=self.steps, seconds=self.max_seconds)


def model_inputs(batch: Batch) -> dict[str, Tensor]:
    """The tensors a zoo model's ``forward`` takes, from a collated batch."""
    return {k: batch[k] for k in ("feats", "feat_lens", "tokens", "token_lens")}


class SupervisedStep:
    """Step function of supervised training: (SpecAugment,) forward, backward, clip, ``optimizer.step()``.

    Uses ``state.model`` and ``state.optimizers["model"]``; SpecAugment draws from ``state.generator``.
    Under ``torch.distributed`` the gradients are averaged across ranks, weighted by the local batch sizes
    ([`zoo.training.average_gradients()`][zoo.training.average_gradients]).
    Returns the model's named losses, ``loss``, ``grad_norm`` (when clipping) and the step's ``lr``.
    """

    def __init__(self, grad_clip: float | None = 1.0, augment: bool = False) -> None:
        self.grad_clip, self.augment = grad_clip, augment

    def __call__(self, state: TrainState, batch: Batch) -> dict[str, Any]:
        model, optimizer = state.model, state.optimizers["model"]
        if self.augment:
            batch = {
                **batch,
                "feats": spec_augment_batch(batch["feats"], batch["feat_lens"], state.generator),
            }
        optimizer.zero_grad(set_to_none=True)
        out = model(**model_inputs(batch))
        loss = out.loss
        if loss is None or not bool(torch.isfinite(loss.detach())):
            raise FloatingPointError(
                f"the model returned a non-finite or missing loss ({loss}) at step {state.step}"
            )
        loss.backward()
        average_gradients(
            model, weight=len(batch["feat_lens"])
        )  # under torchrun: the global batch's gradient
        stats: dict[str, Any] = {k: float(v.detach()) for k, v in out.losses.items()}
        if self.grad_clip is not None:
            stats["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip))
        groups = getattr(optimizer, "param_groups", None)
        if groups:
            stats["lr"] = float(groups[0]["lr"])
        optimizer.step()
        stats["loss"] = float(loss.detach())
        return stats


def supervised_state(
    model: nn.Module,
    dataset: Sequence[Any],
    collate: Callable[[list[Any]], Batch],
    cfg: SupervisedConfig,
    *,
    optimizer: Any | None = None,
    scheduler: Any | Callable[[Any], Any] | None = None,
    lengths: Sequence[int] | None = None,
    ratio: float | None = None,
    shard: tuple[int, int] | None = None,
) -> TrainState:
    """The state of a supervised run.

    Args:
        optimizer: a user's optimizer (default: AdamW per ``cfg``). Its learning rate is left alone unless
            ``scheduler`` is given.
        scheduler: a user's LR scheduler, or a function ``optimizer -> scheduler``; saved in the state.
            Default: [`zoo.training.WarmupCosine`][zoo.training.WarmupCosine] per ``cfg`` for the built-in
                optimizer, none for a
            user's optimizer.
        lengths: per-item lengths for bucketing (default ``dataset.lengths`` or the feature lengths).
        ratio: draw each epoch with SRS
            ([`bilevel.sampling.SoftRandomSampler`][bilevel.sampling.SoftRandomSampler]) at this ratio.
        shard: ``(rank, world_size)``: keep this rank's shard of every batch (data parallelism).
    """
    if len(dataset) == 0:
        raise ValueError("dataset must not be empty")
    if cfg.augment != "none":
        if not isinstance(dataset, SpeechDataset):
            raise TypeError(
                f"augment={cfg.augment!r} needs a zoo.data.SpeechDataset (waveforms), "
                f"got {type(dataset).__name__}"
            )
        copies = AugmentedCopies(dataset, AUGMENT_PRESETS[cfg.augment], cfg.augment_copies, seed=cfg.seed)
        dataset, lengths = cast(Sequence[Any], copies), copies.lengths
    opt = optimizer or torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )
    schedulers: dict[str, Any] = {}
    if scheduler is not None:
        is_factory = callable(scheduler) and not hasattr(scheduler, "step")
        schedulers["model"] = scheduler(opt) if is_factory else scheduler
    elif optimizer is None:
        schedulers["model"] = WarmupCosine(opt, cfg.steps, cfg.warmup, cfg.min_lr_ratio)
    data = Batches.shuffled(dataset, cfg.batch_size, collate, seed=cfg.seed, lengths=lengths, ratio=ratio)
    if shard is not None:
        data.shard(*shard)
    state = TrainState(
        modules={"model": model},
        optimizers={"model": opt},
        data=data,
        schedulers=schedulers,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    builtin = schedulers.get("model")
    if isinstance(builtin, WarmupCosine) and cfg.max_seconds:
        seconds = cfg.max_seconds
        builtin.progress = lambda: state.seconds / seconds
    return state
