"""Per-step speed benchmarks (pytest-benchmark): one thread, seeded, kept out of ``make test``.

``make speed`` runs them with ``--benchmark-autosave`` so that every run is kept under ``.benchmarks/``;
``make speed-compare`` compares a new run with the last saved one and fails on a median regression.
These files are not collected by ``make test`` (its test paths are ``tests/``); with
``--benchmark-disable`` each benchmark runs once, as a smoke test (the slow test
``tests/benchmarks/test_speed_suite.py`` does that).
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _one_thread_and_seed() -> None:
    # One intra-op thread: per-step times comparable between runs and machines with other jobs.
    torch.set_num_threads(1)
    torch.manual_seed(0)
