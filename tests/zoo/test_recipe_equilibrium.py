"""The equilibrium pre-training recipe in the real loop: K = 0 is CSSL bit for bit, the first-order and the
exact second-order directions against hand and finite-difference references, per-source fine-tuning,
bad input."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from tests.bilevel._asserts import BadInput, assert_rejects
from tests.zoo._fixtures import random_items
from zoo.data import collate
from zoo.recipes.encoders import build_parts
from zoo.recipes.equilibrium import (
    EquilibriumRun,
    FinetuneConfig,
    PretrainConfig,
    Source,
    SourceBatches,
    SourceCorpus,
    SSLModel,
    finetune,
    main,
    matches_source,
    pretrain_trainer,
)

F, V = 6, 5


class _NextFrame(nn.Module):
    """A deterministic SSL loss (no random crops): predict each next hidden frame from the current one."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pred = nn.Linear(dim, dim)

    def forward(self, encoder: nn.Module, feats: Tensor, lens: Tensor) -> Tensor:
        h, hl = encoder(feats, lens)
        err = (self.pred(h[:, :-1]) - h[:, 1:]).pow(2).mean(-1)
        valid = torch.arange(h.shape[1] - 1)[None] < (hl[:, None] - 1)
        return ((err * valid).sum(1) / valid.sum(1).clamp(min=1)).mean()


def _corpus(m: int = 3, dtype: torch.dtype = torch.float32) -> SourceCorpus:
    sources = []
    for i in range(m):
        items = random_items(24, seed=i, dim=F, vocab_size=V)
        for it in items:
            it["feats"] = it["feats"].to(dtype) + 0.5 * i  # the sources differ
        sources.append(Source(f"s{i}", items[:12], items[12:18], items[18:21], items[21:]))
    return SourceCorpus(sources, collate, lambda ids: " ".join(map(str, ids)), F, V)


def _parts(seed: int = 0, dtype: torch.dtype = torch.float32) -> Any:
    parts = build_parts("tiny", F, V, seed=seed, dim=8)
    torch.manual_seed(seed + 1)
    return parts.to(dtype), _NextFrame(8).to(dtype)


def _run(cfg: PretrainConfig, corpus: SourceCorpus, steps: int | None = None) -> Any:
    parts, ssl = _parts()
    tr = pretrain_trainer(parts, ssl, corpus, cfg, seed=0)
    if steps is not None:
        tr.budget = replace(tr.budget, steps=steps)
    tr.run()
    return tr


def test_k0_reproduces_cssl_bit_for_bit_in_the_loop() -> None:
    corpus = _corpus()
    base = PretrainConfig(method="cssl", inner_steps=0, lr=1e-2, samples=4 * 3 * 5, batch_size=4)
    a = _run(base, corpus)
    b = _run(replace(base, method="first_order"), corpus)
    assert a.state.step == b.state.step == 5
    pairs = zip(a.state.modules["ssl"].named_parameters(), b.state.modules["ssl"].named_parameters())
    for (n, p), (_, q) in pairs:
        assert torch.equal(p, q), n
    assert [h["loss"] for h in a.state.history] == [h["loss"] for h in b.state.history]
    # and training did move the parameters (the comparison is not of two untouched models)
    fresh, _ = _parts()
    moved = [
        float((p - q).detach().abs().max())
        for p, q in zip(fresh.encoder.parameters(), a.state.modules["ssl"].encoder.parameters())
    ]
    assert max(moved) > 1e-4


def _post_adaptation_loss(model: SSLModel, values: list[Tensor], b1: dict, b2: dict, beta: float) -> Tensor:
    names = [n for n, _ in model.named_parameters()]

    def call(vals, b):
        return torch.func.functional_call(model, dict(zip(names, vals)), (b["feats"], b["feat_lens"]))

    loss = call(values, b1)
    g = torch.autograd.grad(loss, values, create_graph=True)
    return call([v - beta * gi for v, gi in zip(values, g)], b2)  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["first_order", "second_order"])
def test_equilibrium_step_direction_against_references(mode: str) -> None:
    """The .grad the step writes: first order = mean of ∇ℓ_i(φ_i) (computed by hand); second order = the
    gradient of the post-adaptation loss, checked by central finite differences in float64."""
    corpus = _corpus(2, torch.float64)
    beta = 0.05
    cfg = PretrainConfig(method=mode, inner_steps=1, inner_lr=beta, lr=1e-3, samples=4 * 2 * 2, batch_size=4)
    parts, ssl = _parts(dtype=torch.float64)
    tr = pretrain_trainer(parts, ssl, corpus, cfg, seed=0)
    model = tr.state.modules["ssl"]
    theta = [p.detach().clone() for p in model.parameters()]
    # the batches the step will draw, from an identically seeded stream
    batch = copy_batches = pretrain_trainer(
        *_parts(dtype=torch.float64), corpus, cfg, seed=0
    ).state.data.batch(0)
    tr.step()
    got = [p.grad.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p, t in zip(model.parameters(), theta):
            p.copy_(t)
    if mode == "first_order":
        ref = [torch.zeros_like(t) for t in theta]
        for b1, b2 in copy_batches:
            vals = [t.clone().requires_grad_(True) for t in theta]
            names = [n for n, _ in model.named_parameters()]
            l1 = torch.func.functional_call(model, dict(zip(names, vals)), (b1["feats"], b1["feat_lens"]))
            phi = [
                (v - beta * g).detach().requires_grad_(True)
                for v, g in zip(vals, torch.autograd.grad(l1, vals))
            ]
            l2 = torch.func.functional_call(model, dict(zip(names, phi)), (b2["feats"], b2["feat_lens"]))
            ref = [r + g / len(batch) for r, g in zip(ref, torch.autograd.grad(l2, phi))]
        for a, r in zip(got, ref):
            torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)
        return
    v = [
        torch.randn(t.shape, generator=torch.Generator().manual_seed(i), dtype=t.dtype)
        for i, t in enumerate(theta)
    ]
    eps = 1e-5

    def total(sign: float) -> float:
        vals = [(t + sign * eps * vi).requires_grad_(True) for t, vi in zip(theta, v)]
        return sum(float(_post_adaptation_loss(model, vals, b1, b2, beta)) for b1, b2 in copy_batches) / len(
            batch
        )

    fd = (total(1.0) - total(-1.0)) / (2 * eps)
    analytic = sum(float((g * vi).sum()) for g, vi in zip(got, v))
    assert abs(fd - analytic) <= 1e-6 * max(1.0, abs(analytic))


def test_finetune_curve_and_compute_accounting() -> None:
    corpus = _corpus(2)
    cfg = PretrainConfig(method="first_order", inner_steps=2, samples=4 * 2 * 3 * 2, batch_size=4)
    assert cfg.batches_per_source() == 3 and cfg.steps(2) == 2
    assert replace(cfg, method="cssl").steps(2) == 6  # the same samples buy K + 1 times more CSSL steps
    tr = _run(cfg, corpus)
    res = finetune(
        tr.state.modules["ssl"].encoder.state_dict(),
        corpus.sources[0],
        corpus,
        FinetuneConfig(steps=6, eval_every=3, batch_size=3, items=None),
        seed=0,
        split="dev",
        dim=8,
    )
    assert [c[0] for c in res["curve"]] == [0, 3, 6]
    assert all(0.0 <= c[2] for c in res["curve"]) and res["wer"] == res["curve"][-1][1]
    again = finetune(
        tr.state.modules["ssl"].encoder.state_dict(),
        corpus.sources[0],
        corpus,
        FinetuneConfig(steps=6, eval_every=3, batch_size=3, items=None),
        seed=0,
        split="dev",
        dim=8,
    )
    assert again["curve"] == res["curve"]  # seeded: the same head, batches and result


def test_source_batches_state_round_trip() -> None:
    corpus = _corpus(2)
    cfg = PretrainConfig(method="first_order", inner_steps=1, samples=4 * 2 * 2 * 4, batch_size=4)
    a = pretrain_trainer(*_parts(), corpus, cfg, seed=0)
    a.step()
    state = a.state.data.state_dict()
    nxt = a.state.data.batch(1)
    b = pretrain_trainer(*_parts(), corpus, cfg, seed=0)
    b.state.data.load_state_dict(state)
    again = b.state.data.batch(1)
    assert [[x["ids"] for x in s] for s in nxt] == [[x["ids"] for x in s] for s in again]


def test_matches_source() -> None:
    it = {"domain": "en:m3:fast:telephone"}
    assert matches_source("en", it) and matches_source("en:telephone", it)
    assert not matches_source("en:clean", it) and not matches_source("de", it)


@pytest.mark.parametrize(
    "case",
    [
        BadInput(
            "bad source spec", lambda: matches_source("en:a:b", {"domain": "en:x:y:z"}), ValueError, "source"
        ),
        BadInput("unknown method", lambda: PretrainConfig(method="maml"), ValueError, "method"),
        BadInput(
            "reptile K = 0",
            lambda: PretrainConfig(method="reptile", inner_steps=0),
            ValueError,
            "inner_steps",
        ),
        BadInput("negative beta", lambda: PretrainConfig(inner_lr=-1.0), ValueError, "inner_lr"),
        BadInput("zero samples", lambda: PretrainConfig(samples=0), ValueError, "samples"),
        BadInput("zero fine-tuning steps", lambda: FinetuneConfig(steps=0), ValueError, "steps"),
        BadInput("no streams", lambda: SourceBatches([], 1), ValueError, "streams"),
        BadInput("no baseline", lambda: EquilibriumRun(methods=("first_order",)), ValueError, "cssl"),
        BadInput(
            "bad split",
            lambda: finetune(None, _corpus(1).sources[0], _corpus(1), FinetuneConfig(), split="train"),
            ValueError,
            "split",
        ),
    ],
    ids=lambda c: c.name,
)
def test_bad_input(case: BadInput) -> None:
    assert_rejects(case)


@pytest.mark.slow  # builds (or reuses) the "sources" corpus and trains every method once
def test_command_line_writes_tables_and_figures(tmp_path: Any) -> None:
    argv = [
        "--quiet",
        "--samples",
        "64",
        "--cssl-lrs",
        "0.003",
        "--grid-k",
        "1",
        "--grid-inner-lr",
        "0.1",
        "--seeds",
        "0",
        "--finetune-steps",
        "4",
        "--eval-every",
        "2",
        "--reduction-steps",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    for name in ("results.json", "table.md", "grid.md", "curves.png", "grid.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 0
    assert "bit-for-bit identical = True" in (tmp_path / "report.md").read_text()
