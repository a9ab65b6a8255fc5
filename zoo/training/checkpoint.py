"""Atomic checkpoints with a clear error for a damaged file or a checkpoint of another run.

`save_checkpoint()` writes to a temporary file in the same folder, flushes it to disk and renames it
over the target with `os.replace()` (atomic on POSIX and Windows), so a crash mid-write never leaves a
truncated checkpoint. A checkpoint stores ``meta`` (the model name, preset and configuration of the run):
`load_checkpoint()` compares it with the current run's before touching any tensor, so that resuming a
``tiny`` run as ``small`` says so instead of failing with a raw size mismatch.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from zoo.training.state import TrainState

__all__ = ["FORMAT", "CheckpointError", "load_checkpoint", "read_checkpoint", "save_checkpoint"]

#: Format tag stored in every checkpoint.
FORMAT = "zoo.training/1"


class CheckpointError(ValueError):
    """A checkpoint or run folder that is missing, cannot be read, or belongs to another model, preset or
    recipe than expected; the message names the file. Raised by `load_checkpoint()` and by
    [`zoo.transcribe.load_recognizer()`][zoo.transcribe.load_recognizer] alike."""


def save_checkpoint(path: str | Path, state: TrainState, meta: dict[str, Any] | None = None) -> Path:
    """Write ``state`` (and ``meta``) to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    payload = {"format": FORMAT, "meta": dict(meta or {}), "state": state.state_dict()}
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw ``{"format", "meta", "state"}`` of a checkpoint; `CheckpointError` names the file
    when it is missing, damaged or not a zoo checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is damaged or not a torch file ({e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "state" not in payload:
        raise CheckpointError(f"{path} is not a zoo training checkpoint (expected format {FORMAT!r})")
    return payload


def load_checkpoint(
    path: str | Path, state: TrainState, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Restore ``state`` from ``path``; returns the saved ``meta``.

    Every key of ``meta`` (e.g. ``model``, ``preset``) must equal the saved one: a difference raises
    `CheckpointError` naming the key and both values.
    """
    payload = read_checkpoint(path)
    saved = payload["meta"]
    for key, value in (meta or {}).items():
        if key in saved and saved[key] != value:
            raise CheckpointError(
                f"checkpoint {path} was written with {key}={saved[key]!r}, this run has {key}={value!r}; "
                "resume with the same settings or use another run folder"
            )
    try:
        state.load_state_dict(payload["state"])
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} does not fit this run: {e}") from None
    return saved
