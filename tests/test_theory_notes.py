"""Every theory note names the benchmark claims that check it, and those claims exist."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.claims import load_all
from benchmarks.harness import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def test_theory_notes_name_existing_claims() -> None:
    load_all()
    notes = [p for p in (ROOT / "theory").glob("*.md") if p.name != "README.md"]
    for note in notes:
        names = re.findall(r"^Benchmark:\s*`([^`]+)`", note.read_text(), flags=re.M)
        assert names, f"{note.name} names no benchmark (expected a line 'Benchmark: `claim.name`')"
        missing = [n for n in names if n not in REGISTRY]
        assert not missing, f"{note.name} names unknown claims {missing}"
