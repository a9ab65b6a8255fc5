"""The floors of the house: bilevel never imports zoo or benchmarks, and imports no heavy dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module.split(".")[0])
    return mods


def test_bilevel_never_imports_zoo_or_benchmarks() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & {"zoo", "benchmarks"})
        for p in (ROOT / "bilevel").rglob("*.py")
        if _imports(p) & {"zoo", "benchmarks"}
    }
    assert offenders == {}


def test_zoo_never_imports_benchmarks() -> None:
    offenders = [str(p) for p in (ROOT / "zoo").rglob("*.py") if "benchmarks" in _imports(p)]
    assert offenders == []


def test_importing_bilevel_pulls_no_optional_dependency() -> None:
    code = (
        "import sys, bilevel; "
        "bad = [m for m in ('zoo', 'scipy', 'matplotlib', 'higher', 'torchopt', 'torchjd', 'sklearn', "
        "'torchaudio') if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
