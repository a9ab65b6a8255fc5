"""Shared test configuration: one intra-op thread (tests run two at a time on 2 cores), seeded RNGs."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

# Hypothesis runs derandomized (same examples every run); HYPOTHESIS_PROFILE=explore searches anew.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
