"""Documentation examples are executed: every ```python block in README.md and docs/ runs.

Blocks of one file run in order in one namespace. A block right after a line
``<!-- no-test -->`` is skipped (use it only for snippets that need data the tests do not have).
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from benchmarks.harness import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(<!-- no-test -->\s*\n)?```python\n(.*?)```", re.S)


def _blocks(path: Path) -> list[str]:
    return [m.group(2) for m in BLOCK.finditer(path.read_text()) if not m.group(1)]


@pytest.mark.parametrize("path", [p for p in FILES if _blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_python_blocks_run(path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    # the blocks run as a module of their own, so that dataclasses and pickling can look it up
    module = types.ModuleType("__doc_example__")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    ns: dict[str, object] = module.__dict__
    registered = dict(REGISTRY)  # a page may register an example claim: other tests must not see it
    try:
        _run_blocks(path, ns)
    finally:
        REGISTRY.clear()
        REGISTRY.update(registered)


def _run_blocks(path: Path, ns: dict[str, object]) -> None:
    for i, code in enumerate(_blocks(path)):
        try:
            exec(compile(code, f"{path.name}[block {i}]", "exec"), ns)
        except Exception as e:  # pragma: no cover - the message is the point
            raise AssertionError(f"{path.relative_to(ROOT)} block {i} failed: {e!r}\n{code}") from e
