"""The benchmark harness: verdicts, records, report, selection and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.harness import (
    REGISTRY,
    Context,
    Outcome,
    claim,
    run_claim,
    select,
    write_record,
    write_report,
)


@pytest.fixture
def temp_claims():
    from benchmarks.claims import load_all

    load_all()  # import every claim module first, so restoring the snapshot keeps them registered
    before = dict(REGISTRY)

    @claim("zz_test.ok", title="ok", statement="1 + 1 = 2", issue=2)
    def ok(ctx: Context) -> Outcome:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        ctx.save_figure(fig, "line")
        return Outcome(holds=1 + 1 == 2, measured="2", tolerance="== 2", details={"x": [1.0, float("nan")]})

    @claim("zz_test.short", title="short", statement="1 + 1 = 3")
    def short(ctx: Context) -> Outcome:
        return Outcome(holds=False, measured="2", tolerance="== 3")

    @claim("zz_test.boom", title="boom", statement="raises")
    def boom(ctx: Context) -> Outcome:
        raise RuntimeError("kaput")

    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def test_verdicts_records_and_report(temp_claims, tmp_path: Path) -> None:
    recs = [
        run_claim(c, full=False, seed=0, out_dir=tmp_path, show_progress=False) for c in select(["zz_test"])
    ]
    by = {r.name: r for r in recs}
    assert by["zz_test.ok"].verdict == "holds"
    assert by["zz_test.short"].verdict == "falls short"
    assert by["zz_test.boom"].verdict == "error" and "kaput" in (by["zz_test.boom"].error or "")
    assert (tmp_path / "figures" / "zz_test_ok__line.png").stat().st_size > 0
    path = write_record(by["zz_test.ok"], tmp_path)
    data = json.loads(path.read_text())
    assert data["verdict"] == "holds" and data["details"]["x"] == [1.0, "nan"]
    report = write_report(recs, tmp_path, full=False, env={"torch": "x"}).read_text()
    assert "1 hold, 1 fall short, 1 errors" in report
    assert "figures/zz_test_ok__line.png" in report


def test_select_by_prefix_and_unknown(temp_claims) -> None:
    assert [c.name for c in select(["zz_test.ok"])] == ["zz_test.ok"]
    assert len(select(["zz_test"])) == 3
    with pytest.raises(KeyError, match="unknown claim"):
        select(["no_such_claim"])


def test_duplicate_registration_rejected(temp_claims) -> None:
    with pytest.raises(ValueError, match="registered twice"):

        @claim("zz_test.ok", title="dup", statement="dup")
        def other(ctx: Context) -> Outcome:  # pragma: no cover
            return Outcome(True, "", "")


def test_cli_exit_codes(temp_claims, tmp_path: Path, capsys) -> None:
    from benchmarks.__main__ import main

    assert main(["--list", "--only", "zz_test"]) == 0
    assert "zz_test.ok" in capsys.readouterr().out
    assert main(["--only", "zz_test.ok", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "report.md").exists()
    assert main(["--only", "zz_test.short", "--out", str(tmp_path), "--quiet"]) == 0
    assert main(["--only", "zz_test.short", "--out", str(tmp_path), "--quiet", "--strict"]) == 1
    assert main(["--only", "zz_test.boom", "--out", str(tmp_path), "--quiet"]) == 1


def test_every_registered_claim_is_well_formed() -> None:
    from benchmarks.claims import load_all

    load_all()
    for c in REGISTRY.values():
        if c.name.startswith("zz_test"):
            continue
        assert c.statement and c.title, c.name
        assert c.name == c.name.lower() and " " not in c.name, c.name
