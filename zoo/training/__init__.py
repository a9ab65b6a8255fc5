"""The zoo's one training stack: a loop that runs any recipe's step function.

* `Trainer` — the loop: budget, step function, schedulers, progress bar, periodic evaluation,
  JSON-lines / TensorBoard logs, atomic checkpoints;
* `TrainState` — the resumable state (modules, optimizers, schedulers, batch source, every RNG);
* `Batches` — batches from a [`bilevel.sampling`][bilevel.sampling] sampler (length bucketing, SRS, subsets);
* `Budget`, `WarmupCosine`, `evaluate()`, `RunLog`, `write_report()`;
* `save_checkpoint()` / `load_checkpoint()` (`CheckpointError` for a damaged file or a
  checkpoint of another run);
* `dataclass_arguments()` / `dataclass_from_args()` — command lines generated from typed configs;
  `recipe_parser()` / `parse_recipe()` — a recipe's command line (``--preset`` picks the defaults);
* `init_distributed()`, `average_gradients()`, `Batches.shard()` — data parallelism under
  ``torchrun`` (gloo on CPU, NCCL on GPUs).
"""

from zoo.training.batches import Batches, BatchSource, item_lengths
from zoo.training.budget import Budget
from zoo.training.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from zoo.training.cli import (
    dataclass_arguments,
    dataclass_from_args,
    default_threads,
    parse_recipe,
    preset_in,
    recipe_parser,
)
from zoo.training.distributed import (
    any_rank,
    average_gradients,
    init_distributed,
    is_distributed,
    is_main_process,
)
from zoo.training.evaluate import evaluate
from zoo.training.logging import RunLog, read_log, write_report
from zoo.training.loop import StepFn, Trainer
from zoo.training.schedule import WarmupCosine, warmup_cosine
from zoo.training.state import TrainState, capture_rng, restore_rng

__all__ = [
    "BatchSource",
    "Batches",
    "Budget",
    "CheckpointError",
    "RunLog",
    "StepFn",
    "TrainState",
    "Trainer",
    "WarmupCosine",
    "any_rank",
    "average_gradients",
    "capture_rng",
    "dataclass_arguments",
    "dataclass_from_args",
    "default_threads",
    "evaluate",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "item_lengths",
    "load_checkpoint",
    "parse_recipe",
    "preset_in",
    "read_checkpoint",
    "read_log",
    "recipe_parser",
    "restore_rng",
    "save_checkpoint",
    "warmup_cosine",
    "write_report",
]
