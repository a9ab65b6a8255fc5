"""The ``cav_mae`` recipe: every arm trains on the one loop, the command writes its tables and figures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from zoo.data.av import AV_PRESETS, build_av_corpus
from zoo.models.cav_mae import CAVMAE
from zoo.recipes.cav_mae import ARMS, CAVMAERun, CAVMAEStep, arm_config, cav_mae_state, main, run_arm

CFG = replace(AV_PRESETS["av-tiny"], name="av-recipe-test", n_train=12, n_val=8, n_test=8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return build_av_corpus(CFG, root=tmp_path_factory.mktemp("avr"), progress=False)


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_trains_and_evaluates(corpus, arm: str) -> None:  # type: ignore[no-untyped-def]
    run = CAVMAERun(steps=3, batch_size=4, cosine_every=1, probe_clips=12, warmup=1)
    r, _ = run_arm(corpus, arm, 0, run)
    assert len(r.history) == 3 and all(torch.isfinite(torch.tensor(h["loss"])) for h in r.history)
    assert set(r.retrieval) == {f"{d}_r{k}" for d in ("a2v", "v2a") for k in (1, 5, 10)}
    assert 0.0 <= r.localisation["auc"] <= 1.0 and 0.0 <= r.probe_accuracy <= 1.0
    # one cosine per encoder layer per measured step, each a cosine
    assert len(r.cosines) == 3 and all(len(row) == len(r.layer_names) for row in r.cosines)
    assert all(-1.0 - 1e-9 <= c <= 1.0 + 1e-9 for row in r.cosines for c in row)
    if arm == "moo":
        assert "moo_weight_contrastive" in r.history[-1]


def test_resumed_run_equals_uninterrupted(corpus) -> None:  # type: ignore[no-untyped-def]
    run = CAVMAERun(steps=4, batch_size=4, warmup=1, cosine_every=0)
    train = corpus.splits["train"]

    def fresh() -> tuple:
        torch.manual_seed(0)
        m = CAVMAE(arm_config("sync"))
        return m, cav_mae_state(m, len(train), run, 0), CAVMAEStep(corpus.features("train"), train.images())

    m1, s1, step = fresh()
    for _ in range(4):
        step(s1, s1.data.batch(s1.step))
        s1.step += 1
    _, s2, step2 = fresh()
    for _ in range(2):
        step2(s2, s2.data.batch(s2.step))
        s2.step += 1
    saved = s2.state_dict()
    m3, s3, step3 = fresh()
    s3.load_state_dict(saved)
    for _ in range(2):
        step3(s3, s3.data.batch(s3.step))
        s3.step += 1
    for a, b in zip(m1.parameters(), m3.parameters()):
        assert torch.equal(a, b)  # same ops, same order: bit-exact


def test_command_writes_tables_and_figures(corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ZOO_DATA_DIR", str(corpus.root.parent))
    import zoo.recipes.cav_mae as recipe

    monkeypatch.setattr(recipe, "build_av_corpus", lambda *a, **k: corpus)
    out = tmp_path / "out"
    rc = main(
        [
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--seeds",
            "0",
            "--arms",
            "sync",
            "cav_mae",
            "--probe-clips",
            "12",
            "--warmup",
            "1",
            "--cosine-every",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    for f in ("results.json", "table.md", "report.md", "cosines.png", "localisation.png"):
        assert (out / f).is_file(), f
    assert "| sync |" in (out / "table.md").read_text()
