"""The corpus claims' statements describe their quick and full budgets; the two robustness claims share one
training run."""

from __future__ import annotations

from benchmarks.claims.zoo_data import EnglishBudget, RobustBudget
from benchmarks.harness import REGISTRY


def _statement(name: str) -> str:
    return " ".join(REGISTRY[name].statement.split())


def test_english_ctc_statement_names_the_quick_and_full_steps() -> None:
    c = REGISTRY["zoo_data.english_ctc"]
    quick, full = c.quick, c.full
    assert isinstance(quick, EnglishBudget) and isinstance(full, EnglishBudget)
    s = _statement("zoo_data.english_ctc")
    assert f"{quick.steps} steps of 8 utterances" in s
    assert f"{full.steps} steps" in s and full.steps > quick.steps


def test_open_vocabulary_statement_names_the_quick_steps_and_shares_the_cross_engine_run() -> None:
    c, other = REGISTRY["zoo_data.open_vocabulary"], REGISTRY["zoo_data.cross_engine"]
    assert isinstance(c.quick, RobustBudget)
    s = _statement("zoo_data.open_vocabulary")
    assert f"the {c.quick.preset} preset, {c.quick.steps} steps" in s
    assert c.quick == other.quick and c.full == other.full
