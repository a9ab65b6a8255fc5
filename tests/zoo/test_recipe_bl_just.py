"""The BL-JUST recipe: phase plans at equal compute, gradient routing, γ ramp, exact resume, end to end."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.data import collate
from zoo.losses import CPCLoss, MaskedPredictionLoss
from zoo.recipes import (
    ABLATIONS,
    METHODS,
    BLJustConfig,
    ablate,
    bl_just_trainer,
    build_parts,
    ctc_objective,
    evaluations_done,
    phase_at,
    phase_plan,
    plan_evaluations,
)
from zoo.recipes.__main__ import main
from zoo.recipes.cli import PRESETS, BLJustRun, parser
from zoo.recipes.experiment import stream
from zoo.training import CheckpointError, Trainer, dataclass_from_args, evaluate

CHARS = "abcd "
F = 6


def toy_items(n: int, seed: int, dtype: torch.dtype = torch.float32) -> list[dict[str, Any]]:
    """Fake speech: each character is a fixed random frame template held 2-4 frames, plus noise."""
    g = torch.Generator().manual_seed(1234)
    templates = torch.randn(len(CHARS), F, generator=g)
    g = torch.Generator().manual_seed(seed)
    words = ["ab", "cd", "bad", "dab", "cab"]
    items = []
    for i in range(n):
        text = " ".join(words[int(j)] for j in torch.randint(0, len(words), (2,), generator=g))
        frames = []
        for ch in text:
            k = int(torch.randint(2, 5, (1,), generator=g))
            frames.append(templates[CHARS.index(ch)].expand(k, F))
        x = torch.cat(frames) + 0.1 * torch.randn(sum(f.shape[0] for f in frames), F, generator=g)
        items.append(
            {
                "feats": x.to(dtype),
                "tokens": torch.tensor([CHARS.index(c) + 1 for c in text]),
                "text": text,
                "id": f"u{i}",
            }
        )
    return items


def decode(ids: list[int]) -> str:
    return "".join(CHARS[i - 1] for i in ids)


def make_trainer(
    cfg: BLJustConfig,
    method: str = "bl_just",
    *,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    ssl: str = "cpc",
) -> Trainer:
    parts = build_parts("tiny", F, len(CHARS) + 1, seed=seed, dim=16)
    torch.manual_seed(seed + 1)
    loss: torch.nn.Module
    if ssl == "cpc":
        loss = CPCLoss(16, steps=2, context_frames=8, future_frames=4, seed=seed)
    else:
        loss = MaskedPredictionLoss(16, F, stride=parts.stride, seed=seed)
    parts.to(dtype)
    loss.to(dtype)
    lab = stream(toy_items(12, 1, dtype), 4, collate, seed=seed)
    unl = stream(toy_items(24, 2, dtype), 4, collate, seed=seed + 1)
    return bl_just_trainer(parts, loss, lab, unl, cfg, method)


def history(tr: Trainer) -> list[dict[str, Any]]:
    return tr.state.history


# -- compute accounting ------------------------------------------------------------------------------

configs = st.builds(
    BLJustConfig,
    exploration_steps=st.integers(0, 50),
    joint_steps=st.integers(0, 50),
    finetune_steps=st.integers(0, 50).map(lambda n: 2 * n),
    cycles=st.integers(1, 3),
)


@settings(max_examples=40, deadline=None)
@given(cfg=configs)
def test_every_method_spends_the_same_gradient_evaluations(cfg: BLJustConfig) -> None:
    budget = cfg.gradient_evaluations()
    plans = {m: plan_evaluations(phase_plan(m, cfg)) for m in METHODS}
    assert plans["bl_just"] == budget
    assert plans["pt_ft"] == budget  # same supervised and unsupervised counts, sequential not joint
    assert plans["supervised"] == {"sup": budget["total"], "unsup": 0, "total": budget["total"]}


@settings(max_examples=40, deadline=None)
@given(cfg=configs)
def test_ablations_keep_the_total_compute(cfg: BLJustConfig) -> None:
    total = cfg.gradient_evaluations()["total"]
    for name in ABLATIONS:
        ab = ablate(cfg, name)
        lost = (cfg.finetune_steps % (2 * cfg.cycles)) % cfg.cycles if name == "no_finetune" else 0
        assert ab.gradient_evaluations()["total"] == total - lost
    assert ablate(cfg, "no_exploration").exploration_steps == 0
    assert ablate(cfg, "no_finetune").finetune_steps == 0
    const = ablate(cfg, "constant_gamma").gamma()
    assert const(0) == const(10**6) == cfg.gamma_max


def test_phase_plans_follow_the_authors_schedule() -> None:
    cfg = BLJustConfig(
        exploration_steps=3,
        joint_steps=5,
        finetune_steps=2,
        cycles=2,
        lr_exploration=1e-3,
        lr_joint=2e-3,
        lr_finetune=3e-4,
    )
    plan = [(p.kind, p.steps, p.lr) for p in phase_plan("bl_just", cfg)]
    assert plan == [("ssl", 3, 1e-3), ("joint", 5, 2e-3)] * 2 + [("sup", 2, 3e-4)]
    assert [(p.kind, p.steps) for p in phase_plan("pt_ft", cfg)] == [("ssl", 16), ("sup", 10), ("sup", 2)]
    assert [(p.kind, p.steps) for p in phase_plan("supervised", cfg)] == [("sup", 26), ("sup", 2)]
    with pytest.raises(ValueError, match="method"):
        phase_plan("semi", cfg)
    with pytest.raises(ValueError, match="joint_steps"):
        BLJustConfig(joint_steps=-1)
    with pytest.raises(ValueError, match="gamma_max"):
        BLJustConfig(gamma_start=2.0, gamma_max=1.0)


# -- the joint step --------------------------------------------------------------------------------


def test_joint_step_routes_the_penalty_gradients_per_block() -> None:
    """θ gets ∇θ(f + γg), φ gets ∇φ f, η gets γ∇η g (checked against autograd on a copy, float64)."""
    gamma = 0.7
    cfg = BLJustConfig(
        exploration_steps=0,
        joint_steps=3,
        finetune_steps=0,
        gamma_start=gamma,
        gamma_max=gamma,
        scale_steps=False,
    )
    tr = make_trainer(cfg, dtype=torch.float64)
    twin = copy.deepcopy(tr)
    batch = twin.state.data.batch(0)
    lab, unl = batch["labelled"], batch["unlabelled"]
    parts, ssl = twin.state.modules["model"], twin.state.modules["ssl_loss"]
    f = ctc_objective(parts, lab)
    g = ssl(parts.encoder, unl["feats"], unl["feat_lens"])
    theta, phi = parts.encoder_params(), parts.head_params()
    eta = list(ssl.parameters())
    d_theta = torch.autograd.grad(f + gamma * g, theta, retain_graph=True)
    d_phi = torch.autograd.grad(f, phi)
    d_eta = torch.autograd.grad(gamma * g, eta)
    rec = tr.step()
    assert rec["phase"] == "joint" and rec["gamma"] == gamma
    assert rec["f"] == pytest.approx(f.item(), rel=1e-12) and rec["g"] == pytest.approx(g.item(), rel=1e-12)
    p0, s0 = tr.state.modules["model"], tr.state.modules["ssl_loss"]
    got = (p0.encoder_params(), p0.head_params(), list(s0.parameters()))
    for params, want in zip(got, (d_theta, d_phi, d_eta)):
        for p, w in zip(params, want):
            torch.testing.assert_close(p.grad, w, rtol=1e-10, atol=1e-12)
    assert evaluations_done(phase_plan("bl_just", cfg), tr.state.step) == {"sup": 1, "unsup": 1, "total": 2}


def test_gamma_ramps_linearly_over_the_joint_phase() -> None:
    cfg = BLJustConfig(exploration_steps=2, joint_steps=6, finetune_steps=1, gamma_start=0.0, gamma_max=1.0)
    tr = make_trainer(cfg)
    hist = tr.run()
    gammas = [h["gamma"] for h in hist if h["phase"] == "joint"]
    assert gammas == pytest.approx([k / 5 for k in range(6)], abs=1e-12)
    assert [h["phase"] for h in hist] == ["ssl"] * 2 + ["joint"] * 6 + ["sup"]
    assert all(h["g"] is not None for h in hist[:8]) and all(h["f"] is not None for h in hist[2:])
    assert [phase_at(phase_plan("bl_just", cfg), k).kind for k in range(9)] == [h["phase"] for h in hist]


@pytest.mark.parametrize("method", METHODS)
def test_resume_from_a_checkpoint_is_bitwise_identical(method: str, tmp_path: Path) -> None:
    cfg = BLJustConfig(exploration_steps=3, joint_steps=4, finetune_steps=2)
    a = make_trainer(cfg, method)
    a.run()
    b = make_trainer(cfg, method)
    for _ in range(5):  # stops inside the joint phase for BL-JUST
        b.step()
    b.save(tmp_path / "ck.pt")
    for _ in range(2):  # diverge, then restore into a fresh trainer built from another seed
        b.step()
    torch.manual_seed(99)
    c = make_trainer(cfg, method, seed=7)
    c.load(tmp_path / "ck.pt")
    c.run()
    for ma, mc in (("model", "model"), ("ssl_loss", "ssl_loss")):
        for pa, pc in zip(a.state.modules[ma].parameters(), c.state.modules[mc].parameters()):
            assert torch.equal(pa, pc)
    assert [h["f"] for h in history(a)] == [h["f"] for h in history(c)]
    assert [h["g"] for h in history(a)] == [h["g"] for h in history(c)]
    assert evaluations_done(phase_plan(method, cfg), c.state.step) == plan_evaluations(
        phase_plan(method, cfg)
    )
    with pytest.raises(CheckpointError, match="config"):
        make_trainer(BLJustConfig(joint_steps=9), method).load(tmp_path / "ck.pt")


def test_bl_just_learns_the_toy_task_and_keeps_the_ssl_loss_low() -> None:
    """End to end on toy speech: CTC and CPC both fall during joint training, and the model transcribes."""
    torch.manual_seed(0)
    cfg = BLJustConfig(
        exploration_steps=60,
        joint_steps=200,
        finetune_steps=40,
        lr_exploration=3e-3,
        lr_joint=3e-3,
        lr_finetune=1e-3,
    )
    tr = make_trainer(cfg)
    hist = tr.run()
    joint = [h for h in hist if h["phase"] == "joint"]
    f0 = sum(h["f"] for h in joint[:20]) / 20
    f1 = sum(h["f"] for h in joint[-20:]) / 20
    g0 = sum(h["g"] for h in joint[:20]) / 20
    g1 = sum(h["g"] for h in joint[-20:]) / 20
    assert f1 < 0.5 * f0
    assert g1 < g0 < math.log(8)  # CPC below chance (8 pairs per batch) and still falling
    res = evaluate(tr.state.model, toy_items(8, 3), decode, collate)
    assert res["cer"] < 0.3 and len(res["hyps"]) == 8


def test_masked_prediction_runs_as_the_lower_level() -> None:
    cfg = BLJustConfig(exploration_steps=2, joint_steps=3, finetune_steps=1)
    tr = make_trainer(cfg, ssl="masked")
    hist = tr.run()
    assert all(math.isfinite(h["g"]) for h in hist if h["g"] is not None) and len(hist) == 6
    with pytest.raises(ValueError, match="finished"):
        tr.step()


@pytest.mark.parametrize("ssl", ["cpc", "masked"])
def test_the_zoo_conformer_plugs_in_as_the_shared_encoder(ssl: str) -> None:
    """One step of every phase with the zoo's Conformer; θ excludes its CTC head, which φ holds."""
    parts = build_parts("conformer", F, len(CHARS) + 1, seed=0)
    head = {id(p) for p in parts.head_params()}
    assert head and not head & {id(p) for p in parts.encoder_params()}
    loss: torch.nn.Module
    if ssl == "cpc":
        loss = CPCLoss(parts.dim, steps=2, context_frames=8, future_frames=4)
    else:
        loss = MaskedPredictionLoss(parts.dim, F, stride=parts.stride)
    lab = stream(toy_items(4, 1), 2, collate, seed=0)
    unl = stream(toy_items(4, 2), 2, collate, seed=1)
    tr = bl_just_trainer(
        parts, loss, lab, unl, BLJustConfig(exploration_steps=1, joint_steps=1, finetune_steps=1)
    )
    before = [p.detach().clone() for p in parts.encoder_params()]
    hist = tr.run()
    assert [h["phase"] for h in hist] == ["ssl", "joint", "sup"]
    assert all(not torch.equal(b, p) for b, p in zip(before, parts.encoder_params()) if p.dim() > 1)


def test_command_line_entry_points_reject_unknown_recipes_and_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 2 and main(["--help"]) == 0
    assert main(["no_such_recipe"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'no_such_recipe'" in err and "bl_just" in err
    args = parser("standard").parse_args(
        ["--preset", "standard", "--shares", "0.05", "0.1", "--steps", "1", "2", "3"]
    )
    run = dataclass_from_args(BLJustRun, args)
    assert run.shares == (0.05, 0.1) and run.steps == (1, 2, 3)
    assert run.seeds == PRESETS["standard"].seeds and run.corpus == "en"
    assert run.config().joint_steps == 2
    with pytest.raises(SystemExit):
        parser().parse_args(["--ssl", "wav2vec"])
    for action in parser()._actions:
        if action.dest != "help":
            assert "default" in (action.help or ""), action.dest
