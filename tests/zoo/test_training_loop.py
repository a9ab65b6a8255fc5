"""The pieces of the training loop: batches from bilevel.sampling, the schedule, the budget, checkpoints,
logs and the dataclass command line."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.bilevel._asserts import BadInput, assert_rejects
from zoo.training import (
    Batches,
    Budget,
    CheckpointError,
    RunLog,
    Trainer,
    TrainState,
    WarmupCosine,
    dataclass_arguments,
    dataclass_from_args,
    load_checkpoint,
    parse_recipe,
    preset_in,
    read_log,
    recipe_parser,
    save_checkpoint,
    warmup_cosine,
    write_report,
)
from zoo.training import logging as training_logging


def _items(n: int) -> list[dict[str, Any]]:
    return [{"feats": torch.zeros(1 + (7 * i) % 13, 2), "i": i} for i in range(n)]


def _ids(batch: list[dict[str, Any]]) -> list[int]:
    return [it["i"] for it in batch]


def test_batches_cover_every_item_once_per_epoch_and_resume_mid_epoch() -> None:
    ds = _items(23)
    a = Batches.shuffled(ds, 4, _ids, seed=5, pool_batches=2)
    per_epoch = len(a.sampler.batches(0))
    first = [next(a) for _ in range(per_epoch)]
    assert sorted(i for b in first for i in b) == list(range(23))
    rest = [next(a) for _ in range(3)]  # into epoch 1: another order
    assert rest != first[:3]
    b = Batches.shuffled(ds, 4, _ids, seed=5, pool_batches=2)
    for _ in range(per_epoch + 1):
        next(b)
    state = b.state_dict()
    c = Batches.shuffled(ds, 4, _ids, seed=99, pool_batches=2)  # another seed: the state overrides it
    c.load_state_dict(state)
    assert [next(c) for _ in range(2)] == rest[1:]
    srs = Batches.shuffled(ds, 4, _ids, seed=0, ratio=0.5)  # soft random sampling: ⌈0.5·23⌉ draws an epoch
    assert sum(len(x) for x in srs.sampler.batches(0)) == 12


def test_shards_partition_every_global_batch() -> None:
    ds = _items(10)
    whole = next(Batches.shuffled(ds, 5, _ids, seed=1))
    parts = [next(Batches.shuffled(ds, 5, _ids, seed=1).shard(r, 2)) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(whole) and parts[0] == whole[0::2]


def test_warmup_cosine_closed_form_and_state() -> None:
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, 0.1) == pytest.approx(0.1)
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=2.0)
    sched = WarmupCosine(opt, total_steps=10, warmup=2, min_ratio=0.1)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2.0 * warmup_cosine(k, 10, 2, 0.1) for k in range(6)], rel=1e-12)
    opt2 = torch.optim.SGD([w], lr=2.0)
    again = WarmupCosine(opt2, total_steps=10, warmup=2, min_ratio=0.1)
    again.load_state_dict(sched.state_dict())
    assert again.last_epoch == 6
    # under a time budget that is 90 % spent, the decay runs ahead of the step count
    fast = WarmupCosine(torch.optim.SGD([w], lr=1.0), 10, 2, 0.0, progress=lambda: 0.9)
    assert fast.position(3) == 2 + int(0.9 * 8)


def _state(tmp: int = 0) -> TrainState:
    torch.manual_seed(tmp)
    lin = nn.Linear(3, 1)
    return TrainState(
        {"model": lin},
        {"model": torch.optim.SGD(lin.parameters(), lr=0.1)},
        Batches.shuffled(_items(6), 2, _ids),
    )


def test_checkpoints_are_atomic_and_say_what_is_wrong(tmp_path: Path) -> None:
    st = _state()
    path = save_checkpoint(tmp_path / "ck.pt", st, {"model": "lin", "preset": "tiny"})
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind
    other = _state(1)
    load_checkpoint(path, other, {"model": "lin"})
    assert torch.equal(other.model.weight, st.model.weight)
    with pytest.raises(CheckpointError, match="preset='tiny'.*preset='small'"):
        load_checkpoint(path, _state(), {"preset": "small"})
    wide = TrainState(
        {"model": nn.Linear(4, 1)},
        {"model": torch.optim.SGD(nn.Linear(4, 1).parameters(), lr=0.1)},
        Batches.shuffled(_items(6), 2, _ids),
    )
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(path, wide)
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cut.pt is damaged"):
        load_checkpoint(tmp_path / "cut.pt", _state())
    torch.save({"weights": 1}, tmp_path / "alien.pt")
    with pytest.raises(CheckpointError, match="not a zoo training checkpoint"):
        load_checkpoint(tmp_path / "alien.pt", _state())
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt", _state())


def _step(state: TrainState, batch: list[int]) -> dict[str, float]:
    opt = state.optimizers["model"]
    opt.zero_grad()
    loss = state.model(torch.tensor([[float(i), 1.0, -1.0] for i in batch])).pow(2).mean()
    loss.backward()
    opt.step()
    return {"loss": float(loss.detach()), "lr": opt.param_groups[0]["lr"], "phase": "fit"}


def test_logs_one_json_line_per_step_and_a_report(tmp_path: Path) -> None:
    tr = Trainer(_state(), _step, Budget(steps=4), run_dir=tmp_path, progress=False, tensorboard=False)
    tr.budget = Budget(steps=2)
    tr.run()
    (tmp_path / "log.jsonl").open("a").write(
        json.dumps({"step": 3, "loss": 9.0}) + "\n"
    )  # a crash's leftover
    again = Trainer(_state(), _step, Budget(steps=4), run_dir=tmp_path, progress=False, tensorboard=False)
    again.load()
    again.run()
    rows = read_log(tmp_path / "log.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(
        r["phase"] == "fit" and r["lr"] == 0.1 for r in rows
    )
    assert [r["loss"] for r in rows] == [h["loss"] for h in again.state.history]
    report = write_report(tmp_path, rows, {"steps": 4})
    assert "- steps: 4" in report.read_text() and (tmp_path / "curves.png").stat().st_size > 0
    if training_logging.SummaryWriter is None:  # the optional extra is not installed: asking for it says so
        with pytest.raises(ImportError, match="tensorboard"):
            RunLog(tmp_path, tensorboard=True)
    else:
        RunLog(tmp_path, tensorboard=True).close()
        assert any((tmp_path / "tb").iterdir())


@dataclass(frozen=True)
class _Cfg:
    """A config.

    Attributes:
        steps: how many steps.
        lr, wd: two rates
            on two lines.
        clip: clipping ('none': off).
    """

    steps: int = 3
    lr: float = 0.1
    wd: float = 0.0
    clip: float | None = 1.0
    pair: tuple[int, int] = field(default=(1, 2), metadata={"help": "two ints"})
    kind: str = field(default="a", metadata={"choices": ("a", "b")})
    flag: bool = False


def test_dataclass_command_line_shows_every_default_and_round_trips() -> None:
    ap = argparse.ArgumentParser()
    dataclass_arguments(ap, _Cfg, _Cfg(steps=7))
    helps = {a.dest: a.help for a in ap._actions if a.dest != "help"}
    assert helps["steps"] == "how many steps (default: 7)"
    assert helps["wd"] == "two rates on two lines (default: 0.0)"
    assert (
        helps["pair"] == "two ints (default: 1 2)"
        and helps["clip"] == "clipping ('none': off) (default: 1.0)"
    )
    cfg = dataclass_from_args(
        _Cfg, ap.parse_args(["--clip", "none", "--pair", "3", "4", "--flag", "--kind", "b"])
    )
    assert cfg == _Cfg(steps=7, clip=None, pair=(3, 4), flag=True, kind="b")
    assert dataclass_from_args(_Cfg, ap.parse_args([])) == _Cfg(steps=7)
    with pytest.raises(SystemExit):
        ap.parse_args(["--kind", "c"])


def test_recipe_command_line_takes_its_defaults_from_the_named_preset(monkeypatch) -> None:
    presets = {"quick": _Cfg(steps=3), "standard": _Cfg(steps=30, kind="b")}

    def parser(preset: str = "quick") -> argparse.ArgumentParser:
        return recipe_parser("prog", _Cfg, presets, preset)

    assert preset_in(["--steps", "4", "--preset", "standard"], presets) == "standard"
    assert preset_in(["--preset=nope"], presets) == "quick"  # the full parser then rejects it
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    try:
        run, args = parse_recipe(parser, _Cfg, presets, ["--preset", "standard", "--steps", "5"])
        assert run == _Cfg(steps=5, kind="b") and args.quiet is False and torch.get_num_threads() == 1
        assert parse_recipe(parser, _Cfg, presets, [])[0] == _Cfg(steps=3)
        run, args = parse_recipe(parser, _Cfg, presets, ["--preset", "standard", "--threads", "2", "--quiet"])
        assert run == presets["standard"] and args.quiet and torch.get_num_threads() == 2
        with pytest.raises(SystemExit):
            parse_recipe(parser, _Cfg, presets, ["--preset", "nope"])
    finally:
        torch.set_num_threads(before)
    assert "those of --preset standard" in parser("standard").format_help()


BAD = [
    BadInput("budget without limits", lambda: Budget(), ValueError, "steps=, seconds="),
    BadInput("negative steps", lambda: Budget(steps=-1), ValueError, "steps"),
    BadInput("nan seconds", lambda: Budget(seconds=math.nan), ValueError, "seconds"),
    BadInput("empty dataset", lambda: Batches.shuffled([], 2, _ids), ValueError, "empty"),
    BadInput("batch size 0", lambda: Batches.shuffled(_items(3), 0, _ids), ValueError, "batch_size"),
    BadInput(
        "rank out of range", lambda: Batches.shuffled(_items(4), 2, _ids).shard(2, 2), ValueError, "rank"
    ),
    BadInput(
        "shard wider than batch",
        lambda: Batches.shuffled(_items(4), 2, _ids).shard(0, 3),
        ValueError,
        "world_size",
    ),
    BadInput(
        "warm-up < 0",
        lambda: WarmupCosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 5, -1),
        ValueError,
        "warmup",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_rejects_bad_input(case: BadInput) -> None:
    assert_rejects(case)
