"""The docs show what a suite run measured, and their images exist.

- every image a docs page (or the README) links to is a file of the repository;
- the benchmarks table and the inline claim blocks are what `benchmarks.publish` generates from the
  committed records (`docs/figures/records.json`), so a number typed by hand, a record changed without
  republishing, or a registered claim missing from the table fails here;
- every figure a record lists was copied next to it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks import publish
from benchmarks.claims import load_all
from benchmarks.harness import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<img\s[^>]*src=\"([^\"]+)\"")


def _images(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # code blocks are not rendered as images
    return [a or b for a, b in IMAGE.findall(text)]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_image_links_point_to_files(path: Path) -> None:
    for link in _images(path):
        if re.match(r"[a-z]+://", link):
            continue  # an external image (none today)
        target = (path.parent / link.split("#")[0]).resolve()
        assert target.is_file(), f"{path.relative_to(ROOT)} shows {link}, which does not exist"


def test_the_image_finder_finds_images(tmp_path: Path) -> None:
    assert _images(ROOT / "docs" / "index.md"), "docs/index.md shows no figure"
    page = tmp_path / "page.md"
    page.write_text('![a](x.png) ![b](<y.png> "title") <img src="w.png">\n```\n![c](code.png)\n```\n')
    assert _images(page) == ["x.png", "y.png", "w.png"]


def test_benchmarks_page_is_generated_from_the_committed_records() -> None:
    stale = publish.check()
    assert stale == [], f"regenerate with `python -m benchmarks.publish` (or from a suite run): {stale}"


def test_benchmarks_table_lists_every_registered_claim() -> None:
    load_all()
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    table = text.split(publish.TABLE_START, 1)[1].split(publish.TABLE_END, 1)[0]
    suite = [n for n, c in REGISTRY.items() if c.module.startswith("benchmarks.claims.")]
    assert len(suite) > 50, "the suite's claim modules registered too few claims"
    missing = [n for n in suite if f"| `{n}` |" not in table]
    assert missing == []


def test_recorded_figures_were_copied() -> None:
    records = publish.read_records()
    assert records["claims"], "docs/figures/records.json holds no claim"
    fig_dir = ROOT / "docs" / publish.FIGURES
    for name, rec in records["claims"].items():
        for f in rec.get("figures") or []:
            assert (fig_dir / f).is_file(), f"{name}: {f} was not copied to docs/figures/"


def test_render_table_marks_claims_without_a_record() -> None:
    records = {
        "run": {"mode": "quick", "date": "d"},
        "claims": {
            "a.x": {"verdict": "holds", "measured": "|Δ| 1e-9", "tolerance": "≤ 1e-6", "figures": ["f.png"]}
        },
    }
    table = publish.render_table(records, ["a.x", "b.y"])
    assert "| `a.x` |  | ✅ holds | \\|Δ\\| 1e-9 | ≤ 1e-6 | 0.0 s | [1](figures/f.png) |" in table
    assert "| `b.y` |  | ⏳ not yet run |" in table
    assert "1 hold, 0 fall short, 1 not yet run out of 2" in table
