"""The one training loop of the zoo: step functions plugged into a budgeted, logged, resumable loop.

A *step function* ``step_fn(state, batch) -> stats`` does one optimizer step of a recipe (supervised CTC,
one of BL-JUST's phases, ...) on the batch the loop drew from ``state.data`` and returns its stats (losses,
lr, γ, ...). `Trainer` runs it until the [`Budget`][zoo.training.Budget] is spent::

    batch = state.data.batch(state.step)      # a bilevel.sampling sampler's batch
    stats = step_fn(state, batch)             # forward, a bilevel or torch optimizer's step
    scheduler.step() for every scheduler      # the built-in warm-up/cosine or a user's
    log row (JSONL / TensorBoard), progress bar, periodic evaluate, atomic checkpoint
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from zoo.training.budget import Budget
from zoo.training.checkpoint import load_checkpoint, save_checkpoint
from zoo.training.distributed import any_rank, is_main_process
from zoo.training.logging import RunLog
from zoo.training.state import TrainState

__all__ = ["StepFn", "Trainer"]

Stats = dict[str, Any]


class StepFn(Protocol):
    """One training step of a recipe: reads the state's modules and optimizers, returns its stats."""

    def __call__(self, state: TrainState, batch: Any) -> Stats: ...


class Trainer:
    """Runs ``step_fn`` on ``state`` until ``budget`` is spent.

    Args:
        state: the [`TrainState`][zoo.training.TrainState] (modules, optimizers, schedulers, batch source,
            RNGs).
        step_fn: the recipe's `StepFn`.
        budget: steps and/or seconds of training time (counted over resumed runs).
        run_dir: folder of ``log.jsonl``, TensorBoard events and checkpoints (``None``: nothing written).
        meta: what identifies the run (model, preset, recipe config); stored in checkpoints and checked
            on resume.
        on_eval: ``on_eval(state) -> stats`` every ``eval_every`` steps (e.g. dev WER with
            [`zoo.training.evaluate()`][zoo.training.evaluate]); modules are put back in training mode
            afterwards.
        checkpoint_every: steps between checkpoints to ``run_dir/checkpoint.pt`` (0: only at the end).
        log_every: steps between JSON lines (every step is kept in ``state.history``).
        progress: show a tqdm bar; tensorboard: see [`RunLog`][zoo.training.RunLog].
    """

    def __init__(
        self,
        state: TrainState,
        step_fn: StepFn,
        budget: Budget,
        *,
        run_dir: str | Path | None = None,
        meta: dict[str, Any] | None = None,
        on_eval: Callable[[TrainState], Stats] | None = None,
        eval_every: int = 0,
        checkpoint_every: int = 0,
        log_every: int = 1,
        progress: bool = True,
        tensorboard: bool | None = None,
        desc: str = "train",
    ) -> None:
        self.state, self.step_fn, self.budget = state, step_fn, budget
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.meta = dict(meta or {})
        self.on_eval, self.eval_every = on_eval, int(eval_every)
        self.checkpoint_every, self.log_every = int(checkpoint_every), max(1, int(log_every))
        self.progress, self.tensorboard, self.desc = progress, tensorboard, desc

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoint.pt"

    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint (default ``run_dir/checkpoint.pt``) atomically."""
        target = path if path is not None else self.checkpoint_path
        if target is None:
            raise ValueError("save needs a path when the Trainer has no run_dir")
        return save_checkpoint(target, self.state, self.meta)

    def load(self, path: str | Path | None = None) -> None:
        """Restore a checkpoint (default ``run_dir/checkpoint.pt``; see `load_checkpoint()`)."""
        target = path if path is not None else self.checkpoint_path
        if target is None:
            raise ValueError("load needs a path when the Trainer has no run_dir")
        load_checkpoint(target, self.state, self.meta)

    def spent(self) -> float:
        """The fraction of the budget spent (drives the built-in schedule under a time budget)."""
        return self.budget.fraction(self.state.step, self.state.seconds)

    def step(self) -> Stats:
        """One step: draw the batch, run the step function, step the schedulers, evaluate when due.
        Returns the step's row (also appended to ``state.history``)."""
        st = self.state
        t0 = time.perf_counter()
        batch = st.data.batch(st.step)
        stats = self.step_fn(st, batch)
        for sched in st.schedulers.values():
            sched.step()
        st.step += 1
        dt = time.perf_counter() - t0
        st.seconds += dt
        row: Stats = {"step": st.step, **stats, "step_seconds": dt}
        if isinstance(batch, dict) and "feat_lens" in batch:
            row["utterances_per_second"] = len(batch["feat_lens"]) / max(dt, 1e-9)
        if self.on_eval is not None and self.eval_every and st.step % self.eval_every == 0:
            row.update(self.on_eval(st))
            st.train()
        st.history.append(row)
        return row

    def run(self) -> list[Stats]:
        """Train until the budget is spent (checkpointing and logging when there is a ``run_dir``);
        returns ``state.history``."""
        st = self.state
        writes = self.run_dir is not None and is_main_process()  # under torchrun, rank 0 writes
        log = RunLog(self.run_dir, self.tensorboard, resume_step=st.step) if writes else None  # type: ignore[arg-type]
        st.train()
        bar = tqdm(
            total=self.budget.steps,
            initial=st.step,
            desc=self.desc,
            disable=not (self.progress and is_main_process()),
            leave=False,
        )
        try:
            while not any_rank(self.budget.exhausted(st.step, st.seconds)):
                row = self.step()
                if log is not None and (st.step % self.log_every == 0 or "dev_wer" in row):
                    log.log({**row, "seconds": st.seconds})
                bar.update(1)
                shown = {k: row[k] for k in ("loss", "f", "g", "dev_wer") if isinstance(row.get(k), float)}
                bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
                if writes and self.checkpoint_every and st.step % self.checkpoint_every == 0:
                    self.save()
        finally:
            bar.close()
            if log is not None:
                log.close()
        if writes:
            self.save()
        return st.history
