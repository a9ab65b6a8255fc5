"""Training loop: exact resumption, batch order, schedule, custom optimizers and step functions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from zoo.models.conformer import ConformerConfig, ConformerCTC
from zoo.train import TrainConfig, Trainer, bucket_batches, default_step, spec_augment, warmup_cosine


def _items(n: int = 12, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        T = int(torch.randint(12, 30, (1,), generator=g))
        U = int(torch.randint(1, 4, (1,), generator=g))
        out.append(
            {
                "id": str(i),
                "feats": torch.randn(T, 8, generator=g),
                "tokens": torch.randint(1, 6, (U,), generator=g),
                "text": "x",
            }
        )
    return out


def _collate(items: list[dict]) -> dict:
    B = len(items)
    T = max(it["feats"].shape[0] for it in items)
    U = max(it["tokens"].numel() for it in items)
    x = torch.zeros(B, T, 8)
    y = torch.zeros(B, U, dtype=torch.long)
    for b, it in enumerate(items):
        x[b, : it["feats"].shape[0]] = it["feats"]
        y[b, : it["tokens"].numel()] = it["tokens"]
    return {
        "feats": x,
        "feat_lens": torch.tensor([it["feats"].shape[0] for it in items]),
        "tokens": y,
        "token_lens": torch.tensor([it["tokens"].numel() for it in items]),
        "texts": [it["text"] for it in items],
        "ids": [it["id"] for it in items],
    }


def _model() -> ConformerCTC:
    return ConformerCTC(
        ConformerConfig(
            n_mels=8,
            stack=2,
            d_model=16,
            num_heads=2,
            num_layers=2,
            conv_kernel=3,
            block_size=4,
            max_distance=4,
            vocab_size=6,
            dropout=0.2,
        )
    )


def _trainer(seed: int = 0, **kw) -> Trainer:
    torch.manual_seed(seed)
    cfg = TrainConfig(steps=8, batch_size=5, lr=3e-3, warmup=2, seed=seed, spec_augment=True, **kw)
    return Trainer(_model(), _items(), _collate, cfg, show_progress=False)


def test_resume_is_bitwise_identical(tmp_path: Path) -> None:
    ref = _trainer()
    ref.run()
    a = _trainer()
    a.run(steps=3, checkpoint=tmp_path / "ck.pt")  # 12 items / 5 = 3 batches per epoch: crosses an epoch
    torch.manual_seed(1234)  # disturb the global RNG: the checkpoint must restore it
    b = _trainer()
    b.load(tmp_path / "ck.pt")
    assert b.progress.step == 3
    b.run()
    for (k, p), q in zip(ref.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), k
    assert [h["loss"] for h in ref.progress.history] == [h["loss"] for h in b.progress.history]


def test_bucket_batches_cover_each_item_once_per_epoch() -> None:
    lengths = [5, 1, 9, 3, 7, 2, 8]
    for epoch in range(3):
        batches = bucket_batches(lengths, 3, seed=0, epoch=epoch)
        assert sorted(i for b in batches for i in b) == list(range(7))
    assert bucket_batches(lengths, 3, 0, 1) == bucket_batches(lengths, 3, 0, 1)
    assert bucket_batches(lengths, 3, 0, 1) != bucket_batches(lengths, 3, 0, 2)
    with pytest.raises(ValueError, match="batch_size"):
        bucket_batches(lengths, 0, 0, 0)


def test_warmup_cosine() -> None:
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, 0.1) == pytest.approx(0.1)


def test_spec_augment_masks_only_valid_frames_and_is_seeded() -> None:
    x = torch.ones(2, 50, 64)
    lens = torch.tensor([50, 30])
    a = spec_augment(x, lens, torch.Generator().manual_seed(0), time_mask=10)
    b = spec_augment(x, lens, torch.Generator().manual_seed(0), time_mask=10)
    assert torch.equal(a, b) and bool((a == 0).any())
    assert torch.equal(x, torch.ones(2, 50, 64))  # the input is not modified
    assert torch.equal(a[1, 30:], x[1, 30:])  # padding is never touched
    # two time masks of at most min(10, 20 % of the valid frames) each; frequency masks (2 × ≤ 8 of 64 bins)
    # never zero a whole frame
    for i, n in enumerate(lens.tolist()):
        assert int((a[i, :n] == 0).all(-1).sum()) <= 2 * min(10, n // 5)
    with pytest.raises(ValueError, match="feat_lens"):
        spec_augment(x, lens[:1], torch.Generator())


def test_custom_optimizer_and_step_fn() -> None:
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def step(m, batch, o):
        calls.append(len(batch["ids"]))
        return default_step(m, batch, o, grad_clip=None)

    tr = Trainer(
        model,
        _items(),
        _collate,
        TrainConfig(steps=4, batch_size=4, warmup=0),
        optimizer=opt,
        step_fn=step,
        show_progress=False,
    )
    before = [p.detach().clone() for p in model.parameters()]
    hist = tr.run()
    assert calls == [4, 4, 4, 4] and len(hist) == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(math.isfinite(h["loss"]) for h in hist)


def test_time_budget_and_errors() -> None:
    tr = _trainer(max_seconds=0.0)
    assert tr.run() == []
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="dataset"):
        Trainer(_model(), [], _collate)


class _Tok:
    def decode(self, ids: list[int]) -> str:
        return " ".join("ab"[i - 1] for i in ids)


class _Echo(torch.nn.Module):
    """Transcribes every utterance as its first ``feat_lens % 3`` labels 'a' — a known answer."""

    def transcribe(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> list[list[int]]:
        return [[1] * (int(n) % 3) for n in feat_lens]


def test_evaluate_wer_cer_and_rtf() -> None:
    from zoo.train import evaluate

    items = [
        {"id": str(i), "feats": torch.zeros(n, 8), "tokens": torch.ones(1, dtype=torch.long), "text": t}
        for i, (n, t) in enumerate([(13, "a"), (14, "a a"), (12, "b")])
    ]
    r = evaluate(_Echo(), items, _Tok(), _collate, batch_size=2)
    # hyps: "a", "a a", "" against refs "a", "a a", "b": 1 error in 4 reference words
    assert r["wer"] == pytest.approx(0.25) and r["n"] == 3
    assert 0 < r["rtf"] < 1


@pytest.mark.slow
def test_command_line_runs_and_resumes(tmp_path: Path) -> None:
    from zoo.train import main

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
    assert rep2["steps"] == 3 and (out / "report.md").exists()
