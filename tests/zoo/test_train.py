"""Supervised training through the one loop: exact resume, the user's optimizer and scheduler, SpecAugment,
evaluation, and the ``python -m zoo.train`` command line (help, threads, resume errors)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.bilevel._asserts import BadInput, assert_rejects
from tests.zoo._fixtures import random_items, tiny_conformer
from zoo.data import collate, spec_augment_batch
from zoo.models.conformer import ConformerCTC
from zoo.recipes.supervised import SupervisedConfig, SupervisedStep, supervised_state
from zoo.train import main, parser, run_preset
from zoo.training import Budget, CheckpointError, Trainer, evaluate, read_log, save_checkpoint, warmup_cosine


def _items(n: int = 12, seed: int = 0) -> list[dict]:
    return random_items(n, seed, dim=8, frames=(12, 30), vocab_size=6)


def _model() -> ConformerCTC:
    return tiny_conformer(8, 6, dropout=0.2)


CFG = SupervisedConfig(steps=8, batch_size=5, lr=3e-3, warmup=2, spec_augment=True)


def _trainer(run_dir: Path | None = None, seed: int = 0, **kw) -> Trainer:
    torch.manual_seed(seed)
    cfg = SupervisedConfig(**{**CFG.__dict__, "seed": seed, **kw})
    state = supervised_state(_model(), _items(), collate, cfg)
    step = SupervisedStep(cfg.grad_clip, cfg.spec_augment)
    return Trainer(state, step, cfg.budget(), run_dir=run_dir, progress=False, meta={"model": "toy"})


def test_resume_is_bitwise_identical(tmp_path: Path) -> None:
    """Stop after 3 steps (12 items / 5 per batch = 3 batches: the next step starts a new epoch), disturb
    every global RNG, resume in a fresh trainer: parameters, losses and lr equal the uninterrupted run's."""
    ref = _trainer()
    ref.run()
    a = _trainer(tmp_path)
    a.budget = Budget(steps=3)
    a.run()
    torch.manual_seed(1234)
    b = _trainer(tmp_path, seed=0)
    b.load()
    assert b.state.step == 3
    b.run()
    for (k, p), q in zip(ref.state.model.state_dict().items(), b.state.model.state_dict().values()):
        assert torch.equal(p, q), k
    assert [h["loss"] for h in ref.state.history] == [h["loss"] for h in b.state.history]
    assert [h["lr"] for h in ref.state.history] == [h["lr"] for h in b.state.history]


def test_builtin_schedule_is_warmup_cosine() -> None:
    tr = _trainer(spec_augment=False)
    hist = tr.run()
    want = [3e-3 * warmup_cosine(k, 8, 2, CFG.min_lr_ratio) for k in range(8)]
    assert [h["lr"] for h in hist] == pytest.approx(want, rel=1e-12)


def test_a_users_optimizer_keeps_its_lr_and_a_users_scheduler_is_resumed(tmp_path: Path) -> None:
    def build(sched: bool) -> Trainer:
        torch.manual_seed(0)
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        kw = {"scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)} if sched else {}
        state = supervised_state(model, _items(), collate, CFG, optimizer=opt, **kw)
        return Trainer(state, SupervisedStep(None), Budget(steps=6), run_dir=tmp_path, progress=False)

    plain = build(sched=False)
    hist = plain.run()
    assert [h["lr"] for h in hist] == [0.1] * 6  # never rewritten by the built-in schedule
    ref = build(sched=True)
    hist = ref.run()
    assert [h["lr"] for h in hist] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rel=1e-12)
    part = build(sched=True)
    part.budget = Budget(steps=3)
    part.run()
    resumed = build(sched=True)
    resumed.load()
    resumed.run()
    assert [h["lr"] for h in resumed.state.history] == [h["lr"] for h in ref.state.history]
    assert [h["loss"] for h in resumed.state.history] == [h["loss"] for h in ref.state.history]


def test_spec_augment_masks_only_valid_frames_and_is_seeded() -> None:
    x = torch.ones(2, 50, 64)
    lens = torch.tensor([50, 30])
    a = spec_augment_batch(x, lens, torch.Generator().manual_seed(0), time_mask=10)
    b = spec_augment_batch(x, lens, torch.Generator().manual_seed(0), time_mask=10)
    assert torch.equal(a, b) and bool((a == 0).any())
    assert torch.equal(x, torch.ones(2, 50, 64))  # the input is not modified
    assert torch.equal(a[1, 30:], x[1, 30:])  # padding is never touched
    # two time masks of at most min(10, 20 % of the valid frames) each; frequency masks (2 × ≤ 8 of 64 bins)
    # never zero a whole frame
    for i, n in enumerate(lens.tolist()):
        assert int((a[i, :n] == 0).all(-1).sum()) <= 2 * min(10, n // 5)


def test_time_budget_stops_before_any_step() -> None:
    tr = _trainer(max_seconds=0.0)
    assert tr.run() == [] and tr.state.step == 0


BAD = [
    BadInput("batch_size 0", lambda: SupervisedConfig(batch_size=0), ValueError, "batch_size"),
    BadInput("nan lr", lambda: SupervisedConfig(lr=float("nan")), ValueError, "lr"),
    BadInput("negative warmup", lambda: SupervisedConfig(warmup=-1), ValueError, "warmup"),
    BadInput("empty data", lambda: supervised_state(_model(), [], collate, CFG), ValueError, "dataset"),
    BadInput(
        "spec_augment shapes",
        lambda: spec_augment_batch(torch.ones(2, 5, 3), torch.tensor([5]), torch.Generator()),
        ValueError,
        "feat_lens",
    ),
    BadInput("unknown model", lambda: run_preset("wav2vec"), ValueError, "model must be one of"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_rejects_bad_input(case: BadInput) -> None:
    assert_rejects(case)


class _Tok:
    def decode(self, ids: list[int]) -> str:
        return " ".join("ab"[i - 1] for i in ids)


class _Echo(torch.nn.Module):
    """Transcribes every utterance as its first ``feat_lens % 3`` labels 'a' — a known answer."""

    def transcribe(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> list[list[int]]:
        return [[1] * (int(n) % 3) for n in feat_lens]


def test_evaluate_wer_cer_and_rtf() -> None:
    items = [
        {"id": str(i), "feats": torch.zeros(n, 8), "tokens": torch.ones(1, dtype=torch.long), "text": t}
        for i, (n, t) in enumerate([(13, "a"), (14, "a a"), (12, "b")])
    ]
    model = _Echo().train()
    r = evaluate(model, items, _Tok(), collate, batch_size=2)
    # hyps: "a", "a a", "" against refs "a", "a a", "b": 1 error in 4 reference words; CER 1 of 5 chars
    assert r["wer"] == pytest.approx(0.25) and r["cer"] == pytest.approx(1 / 5) and r["n"] == 3
    assert r["hyps"] == ["a", "a a", ""] and 0 < r["rtf"] < 1
    assert model.training  # restored
    assert evaluate(model, items, _Tok().decode, collate)["wer"] == r["wer"]  # a decode function works too


# -- command line ---------------------------------------------------------------------------------


def test_help_shows_every_default_of_the_models_preset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dota", "--preset", "small", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 4000)" in text and "(default: 0.001)" in text and "(default: en)" in text
    for action in parser()._actions:
        if action.dest not in ("help", "model"):
            assert "default" in (action.help or ""), action.dest
    cfg = run_preset("conformer", "tiny")
    args = parser().parse_args(["conformer", "--steps", "7", "--grad-clip", "none", "--betas", "0.8", "0.9"])
    assert (args.steps, args.grad_clip, args.betas, args.lr) == (7, None, [0.8, 0.9], cfg.train.lr)


def test_resume_without_a_checkpoint_or_with_another_preset_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["conformer", "--out", str(tmp_path), "--resume", "--quiet"])
    assert "no checkpoint at" in capsys.readouterr().err
    state = _trainer().state
    save_checkpoint(tmp_path / "checkpoint.pt", state, {"model": "conformer", "preset": "small"})
    with pytest.raises(SystemExit):
        main(["conformer", "--preset", "tiny", "--out", str(tmp_path), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert "preset='small'" in err and "preset='tiny'" in err
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        main(["conformer", "--out", str(tmp_path), "--resume", "auto", "--quiet"])
    assert "damaged" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="damaged"):
        _trainer().load(tmp_path / "checkpoint.pt")


def test_threads_default_to_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.training import default_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
        default_threads()


@pytest.mark.slow
def test_command_line_runs_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "conformer",
        "--steps",
        "2",
        "--eval-every",
        "1",
        "--checkpoint-every",
        "1",
        "--threads",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    rep = main(args)
    assert rep["steps"] == 2 and 0 <= rep["test_wer"] and (out / "checkpoint.pt").exists()
    rep2 = main([*args[:2], "3", *args[3:], "--resume"])
    assert rep2["steps"] == 3 and (out / "report.md").exists() and (out / "curves.png").exists()
    assert math.isfinite(rep2["final_loss"])
    assert [r["step"] for r in read_log(out / "log.jsonl")] == [1, 2, 3]
