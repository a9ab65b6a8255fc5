"""Packaging metadata: one version, py.typed shipped, an SPDX licence the build backend understands.

The wheel itself is built, installed into a fresh venv and imported by ``.ci/wheel_smoke.sh``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bilevel
import zoo

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_is_single_sourced() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bilevel.__version__"}
    assert zoo.__version__ is bilevel.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*", bilevel.__version__)


def test_py_typed_is_shipped() -> None:
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for pkg in ("bilevel", "zoo"):
        assert (ROOT / pkg / "py.typed").is_file()
        assert "py.typed" in data[pkg]


def test_licence_is_an_spdx_expression_the_backend_supports() -> None:
    import setuptools

    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").is_file()
    (req,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    floor = tuple(int(x) for x in req.split(">=")[1].split("."))
    assert floor >= (77,), "PEP 639 licence expressions need setuptools >= 77"
    installed = tuple(int(x) for x in setuptools.__version__.split(".")[:1])
    assert installed >= floor[:1], f"the venv's setuptools {setuptools.__version__} is older than {req}"


def test_changelog_states_the_breaking_change_policy() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## Breaking changes: the policy" in text and "## [Unreleased]" in text
