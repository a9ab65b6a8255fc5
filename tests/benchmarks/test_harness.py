"""The benchmark harness: verdicts, records, report, selection and the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from benchmarks.harness import (
    REGISTRY,
    Budget,
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

    @claim("zz_test.ok", title="ok", statement="1 + 1 = 2", paper="a paper")
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


# ------------------------------------------------------------------------ three-function claims
@dataclass(frozen=True)
class _SumBudget(Budget):
    terms: int = 10


def _sum_measure(b: _SumBudget) -> dict:
    x = torch.rand(b.terms, generator=b.generator(), dtype=torch.float64)
    return {"terms": b.terms, "seed": b.seed, "full": b.full, "sum": float(x.sum()), "mean": float(x.mean())}


def _sum_verdict(d: dict) -> Outcome:
    err = abs(d["sum"] / d["terms"] - d["mean"])
    return Outcome(holds=err <= 1e-12, measured=f"{err:.1e}", tolerance="≤ 1e-12", details=d)


def _sum_figure(d: dict) -> dict:
    from benchmarks.plotting import pyplot

    fig, ax = pyplot().subplots()
    ax.bar([0], [d["sum"]])
    return {"bar": fig}


@pytest.fixture
def staged_claims():
    from benchmarks.claims import load_all

    load_all()
    before = dict(REGISTRY)
    claim(
        "zz_staged.sum",
        title="sum",
        statement="mean = sum / n",
        measure=_sum_measure,
        verdict=_sum_verdict,
        figure=_sum_figure,
        quick=_SumBudget(),
        full=_SumBudget(terms=1000),
    )

    def bad_figure(d: dict) -> dict:
        raise RuntimeError("cannot draw")

    claim(
        "zz_staged.badfig",
        title="bad",
        statement="x",
        measure=_sum_measure,
        verdict=_sum_verdict,
        figure=bad_figure,
        quick=_SumBudget(),
    )
    claim(
        "zz_staged.nobudget",
        title="no budget",
        statement="x",
        measure=lambda b: {"budget": type(b).__name__, "full": b.full},
        verdict=lambda d: Outcome(holds=d["budget"] == "Budget", measured=d["budget"], tolerance="Budget"),
    )
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def test_three_function_claim_runs_measure_verdict_figure(staged_claims, tmp_path: Path) -> None:
    c = REGISTRY["zz_staged.sum"]
    quick = run_claim(c, full=False, seed=3, out_dir=tmp_path, show_progress=False)
    full = run_claim(c, full=True, seed=3, out_dir=tmp_path, show_progress=False)
    assert quick.verdict == full.verdict == "holds"
    # the harness fills the preset with the run's mode and seed
    assert quick.details["terms"] == 10 and full.details["terms"] == 1000
    assert quick.details["seed"] == 3 and quick.details["full"] is False and full.details["full"] is True
    # the same budget gives the same data: measure depends on the budget only
    assert quick.details == _sum_measure(c.budget(full=False, seed=3))
    assert quick.figures == ["zz_staged_sum__bar.png"]
    assert (tmp_path / "figures" / "zz_staged_sum__bar.png").stat().st_size > 0
    # verdict and figure are callable without measuring
    assert c.verdict is not None and not c.verdict({"terms": 2, "sum": 1.0, "mean": 0.4}).holds


def test_three_function_claim_errors_are_reported(staged_claims, tmp_path: Path) -> None:
    rec = run_claim(REGISTRY["zz_staged.badfig"], full=False, seed=0, out_dir=tmp_path, show_progress=False)
    assert rec.verdict == "error" and "cannot draw" in (rec.error or "")
    # without presets the claim's measure gets the base Budget (and the full preset falls back to quick)
    rec = run_claim(REGISTRY["zz_staged.nobudget"], full=True, seed=0, out_dir=tmp_path, show_progress=False)
    assert rec.verdict == "holds" and rec.measured == "Budget"
    assert type(REGISTRY["zz_staged.badfig"].budget(full=True)) is _SumBudget


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"measure": _sum_measure}, "both measure= and verdict="),
        ({"verdict": _sum_verdict}, "both measure= and verdict="),
        ({"figure": _sum_figure}, "need measure= and verdict="),
        ({"measure": _sum_measure, "verdict": _sum_verdict, "quick": {"terms": 3}}, "quick must be a Budget"),
        ({"measure": _sum_measure, "verdict": _sum_verdict, "full": 5}, "full must be a Budget"),
    ],
)
def test_bad_claim_registrations_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        claim("zz_bad.claim", title="t", statement="s", **kwargs)
    assert "zz_bad.claim" not in REGISTRY


def test_split_claims_have_matching_budgets() -> None:
    from benchmarks.claims import load_all

    load_all()
    staged = [c for c in REGISTRY.values() if c.measure is not None and not c.name.startswith("zz_")]
    assert staged, "no claim is written as measure/verdict/figure"
    for c in staged:
        assert c.verdict is not None, c.name
        if c.quick is not None and c.full is not None:
            assert type(c.quick) is type(c.full), c.name
        b = c.budget(full=True, seed=7)
        assert (b.full, b.seed, b.name) == (True, 7, c.name)
