"""Every `>>>` example in a `bilevel` or `zoo` docstring runs as a test.

The modules are found with `pkgutil.walk_packages` (and from the files, for folders without an
`__init__.py`), so that a new module's examples are checked
without registering it here; the examples are collected with the standard library's
`doctest.DocTestFinder` (one test per docstring, named by its dotted path) and run with
`NORMALIZE_WHITESPACE` and `ELLIPSIS`. An example prints numbers with a stated rounding
(`round(x, 4)`, `f"{x:.3f}"`), never a float's full repr. A module whose optional dependency is
missing is skipped with the missing package named.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest
import torch

import bilevel
import zoo

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _module_names() -> list[str]:
    """Every module of both packages: `pkgutil.walk_packages`, plus the files of folders that have no
    `__init__.py` yet (namespace packages, which `walk_packages` does not enter)."""
    names: set[str] = set()
    for pkg in (bilevel, zoo):
        root = Path(pkg.__path__[0])
        names.add(pkg.__name__)
        names.update(i.name for i in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."))
        for path in root.rglob("*.py"):
            parts = path.relative_to(root.parent).with_suffix("").parts
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(n for n in names if n.rsplit(".", 1)[-1] != "__main__")


def _import(name: str) -> ModuleType | str:
    """The module, or the reason it cannot be imported here (a missing optional dependency)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] not in ("bilevel", "zoo"):
            return f"{name} needs the optional package {e.name!r}"
        raise


def _collect() -> list:
    finder = doctest.DocTestFinder(exclude_empty=True)
    params = []
    for name in _module_names():
        mod = _import(name)
        if isinstance(mod, str):
            params.append(pytest.param(None, id=name, marks=pytest.mark.skip(reason=mod)))
            continue
        for test in finder.find(mod, name):
            # DocTestFinder also walks objects that a module imports from elsewhere; each docstring is
            # tested once, in the module that defines it.
            owner = getattr(test, "filename", None)
            if owner and getattr(mod, "__file__", None) and owner != mod.__file__:
                continue
            if test.examples:
                params.append(pytest.param(test, id=test.name))
    return params


@pytest.mark.parametrize("test", _collect())
def test_docstring_example(test: doctest.DocTest | None, tmp_path, monkeypatch) -> None:
    assert test is not None
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    torch.manual_seed(0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    test.globs = dict(test.globs)  # the module's namespace, copied: examples do not leak into it
    out: list[str] = []
    result = runner.run(test, out=out.append, clear_globs=True)
    assert result.failed == 0, f"{test.name} ({test.filename}:{test.lineno}):\n" + "".join(out)


def test_examples_were_found() -> None:
    """Every source file with a `>>>` line yields a collected example (a broken finder cannot pass)."""
    found = {p.values[0].filename for p in _collect() if p.values[0] is not None}
    for pkg in (bilevel, zoo):
        for path in Path(pkg.__path__[0]).rglob("*.py"):
            text = path.read_text()
            if path.name != "__main__.py" and ">>> " in text:
                assert str(path) in found, f"the examples of {path} were not collected"
                assert "doctest: +SKIP" not in text, f"{path}: every example runs; remove +SKIP"
