"""The documentation's API reference covers every public name, and docstrings use the Markdown it renders."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "bilevel",
    "bilevel.moo",
    "bilevel.hypergrad",
    "bilevel.meta",
    "bilevel.sampling",
    "bilevel.schedules",
    "bilevel.checks",
    "zoo.data",
    "zoo.models",
    "zoo.losses",
    "zoo.training",
    "zoo.recipes",
    "zoo.transcribe",
]
# Reading docstrings as Markdown, mkdocstrings shows Sphinx roles and directives literally.
REST = re.compile(
    r":(?:math|func|class|meth|attr|mod|data|obj|exc|ref):`|^\s*\.\. (?:math|code-block)::", re.M
)


def _resolve(path: str) -> object | None:
    """The object a ``::: a.b.c`` directive renders (None when it does not import)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


def _documented() -> list[object]:
    """Every object a directive renders, with the public members of the modules rendered whole."""
    objs: list[object] = []
    for page in (ROOT / "docs").rglob("*.md"):
        for path in re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.M):
            obj = _resolve(path)
            objs.append(obj)
            if type(obj).__name__ == "module":
                names = getattr(obj, "__all__", [n for n in vars(obj) if not n.startswith("_")])
                objs.extend(getattr(obj, n, None) for n in names)
    return objs


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_in_the_api_reference(package: str) -> None:
    mod = importlib.import_module(package)
    documented = _documented()
    missing = []
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)) or name == "main":
            continue  # sub-packages, constants, type aliases and command-line entry points have their pages
        if not any(obj is d for d in documented):
            missing.append(name)
    assert not missing, f"{package}: public names missing from the docs' API reference: {missing}"


def test_docstrings_use_markdown_not_rest() -> None:
    bad = []
    for folder in ("bilevel", "zoo", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if REST.search(line):
                    bad.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not bad, "reST markup (use $…$, $$…$$ and [`name`][path] links):\n" + "\n".join(bad[:20])
