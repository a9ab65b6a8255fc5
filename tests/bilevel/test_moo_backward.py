"""bilevel.moo.backward: per-objective gradients, .grad writing, optimizers, double sampling, layer
selection, recipes through backward, and DDP (2 gloo processes)."""

from __future__ import annotations

import itertools
import os
import socket

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from bilevel.moo import (
    MGDA,
    CAGrad,
    LayerSelection,
    MoDo,
    PCGrad,
    Recipe,
    backward,
    group_by_module,
    layer_scores,
    select_layers,
)
from bilevel.schedules import LinearRamp


def make_model(seed: int = 0, T: int = 3):
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 8), nn.Tanh()).double()
    heads = nn.ModuleList([nn.Linear(8, 1) for _ in range(T)]).double()
    return enc, heads


def make_losses(enc, heads, x, ys):
    f = enc(x)
    return [((h(f) - y) ** 2).mean() for h, y in zip(heads, ys)]


def data(seed: int = 1, n: int = 20, T: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    ys = [torch.randn(n, 1, generator=g, dtype=torch.float64) for _ in range(T)]
    return x, ys


def jacobian_reference(losses, params):
    return torch.stack(
        [
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])
            for loss in losses
        ]
    )


def flat_grad(params):
    return torch.cat([p.grad.reshape(-1) for p in params])


@pytest.mark.parametrize(
    "agg_factory", [MGDA, lambda: CAGrad(0.4), lambda: PCGrad(3)], ids=["mgda", "cagrad", "pcgrad"]
)
@pytest.mark.parametrize("batched", [True, False])
def test_backward_writes_the_aggregated_direction(agg_factory, batched) -> None:
    enc, heads = make_model()
    x, ys = data()
    shared = list(enc.parameters())
    r = backward(
        make_losses(enc, heads, x, ys), shared, agg_factory(), task_params=heads.parameters(), batched=batched
    )
    G = jacobian_reference(make_losses(enc, heads, x, ys), shared)
    expected = agg_factory()(G)
    assert torch.allclose(flat_grad(shared), expected, atol=1e-12)
    assert torch.allclose(r.weights @ G, expected, atol=1e-12)
    # heads: their own loss's gradient
    losses = make_losses(enc, heads, x, ys)
    for i, h in enumerate(heads):
        ref = torch.autograd.grad(losses[i], list(h.parameters()), retain_graph=True)
        for p, gref in zip(h.parameters(), ref):
            assert torch.allclose(p.grad, gref, atol=1e-14)


@pytest.mark.parametrize("opt_cls", [torch.optim.SGD, torch.optim.Adam])
def test_backward_with_torch_optimizers(opt_cls) -> None:
    """optimizer.step() after backward equals the same optimizer fed the reference direction."""
    enc, heads = make_model()
    enc2, heads2 = make_model()
    x, ys = data()
    p1 = [*enc.parameters(), *heads.parameters()]
    p2 = [*enc2.parameters(), *heads2.parameters()]
    o1, o2 = opt_cls(p1, lr=0.05), opt_cls(p2, lr=0.05)
    for _ in range(3):
        o1.zero_grad()
        backward(make_losses(enc, heads, x, ys), enc.parameters(), MGDA(), task_params=heads.parameters())
        o1.step()
        o2.zero_grad()
        L = make_losses(enc2, heads2, x, ys)
        G = jacobian_reference(L, list(enc2.parameters()))
        d = MGDA()(G)
        off = 0
        for p in enc2.parameters():
            p.grad = d[off : off + p.numel()].view_as(p).clone()
            off += p.numel()
        gh = torch.autograd.grad(sum(L), list(heads2.parameters()))
        for p, g in zip(heads2.parameters(), gh):
            p.grad = g
        o2.step()
    for a, b in zip(p1, p2):
        assert torch.allclose(a, b, atol=1e-12)


def test_backward_accumulates_and_dict_losses() -> None:
    enc, heads = make_model()
    x, ys = data()
    shared = list(enc.parameters())
    backward(make_losses(enc, heads, x, ys), shared, MGDA())
    once = flat_grad(shared).clone()
    L = make_losses(enc, heads, x, ys)
    backward({"a": L[0], "b": L[1], "c": L[2]}, shared, MGDA())
    assert torch.allclose(flat_grad(shared), 2 * once, atol=1e-12)


def test_backward_double_sampling_modo() -> None:
    enc, heads = make_model()
    x1, ys1 = data(1)
    x2, ys2 = data(2)
    shared = list(enc.parameters())
    agg = MoDo(gamma=0.2, rho=0.1)
    r = backward(
        make_losses(enc, heads, x1, ys1), shared, agg, second_losses=make_losses(enc, heads, x2, ys2)
    )
    G1 = jacobian_reference(make_losses(enc, heads, x1, ys1), shared)
    G2 = jacobian_reference(make_losses(enc, heads, x2, ys2), shared)
    ref_agg = MoDo(gamma=0.2, rho=0.1)
    expected = ref_agg(G1, G2)
    assert torch.allclose(flat_grad(shared), expected, atol=1e-12)
    assert torch.allclose(r.weights, ref_agg.lam, atol=1e-14)


def test_backward_input_errors() -> None:
    enc, heads = make_model()
    x, ys = data()
    L = make_losses(enc, heads, x, ys)
    with pytest.raises(ValueError, match="at least 2"):
        backward(L[:1], enc.parameters(), MGDA())
    with pytest.raises(ValueError, match="non-finite"):
        backward([L[0], L[1] * float("nan")], enc.parameters(), MGDA())
    with pytest.raises(ValueError, match="empty"):
        backward(L, [], MGDA())
    with pytest.raises(ValueError, match="both"):
        backward(L, enc.parameters(), MGDA(), task_params=enc.parameters())
    with pytest.raises(ValueError, match="second_losses has 2"):
        backward(L, enc.parameters(), MGDA(), second_losses=L[:2])
    with pytest.raises(ValueError, match="does not require grad"):
        backward([L[0], torch.tensor(1.0, dtype=torch.float64)], enc.parameters(), MGDA())


# ------------------------------------------------------------------------------- layer selection


class TwoLayer(nn.Module):
    """Layer A (conflicting: the two objectives pull it in opposite directions) and layer B (agreeing)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(2, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor([0.3, 0.2], dtype=torch.float64))

    def losses(self):
        ta = torch.tensor([2.0, 1.0], dtype=torch.float64)
        return [
            ((self.a - ta) ** 2).sum() + (self.b**2).sum(),
            ((self.a + 2 * ta) ** 2).sum() + (self.b**2).sum(),
        ]


def test_layer_selection_selects_exactly_the_conflicting_layer() -> None:
    """C10: cos = −1 on A, +1 on B ⇒ τ = 0 selects {A}; since B's gradients are identical across tasks,
    the weights from A alone equal full-gradient MGDA's."""
    m = TwoLayer()
    sel = LayerSelection(threshold=0.0, rescore_every=1)
    r = backward(m.losses(), [m.a, m.b], MGDA(), selection=sel)
    assert r.selected == [0]
    assert torch.allclose(r.scores, torch.tensor([-1.0, 1.0], dtype=torch.float64), atol=1e-12)
    G = jacobian_reference(m.losses(), [m.a, m.b])
    assert torch.allclose(r.weights, MGDA().weights(G), atol=1e-12)
    assert torch.allclose(torch.cat([m.a.grad, m.b.grad]), MGDA()(G), atol=1e-12)


def _deep():
    torch.manual_seed(0)
    enc = nn.Sequential(*[nn.Linear(8, 8) for _ in range(4)]).double()
    heads = nn.ModuleList([nn.Linear(8, 1) for _ in range(3)]).double()
    return enc, heads


def test_layer_selection_modes_and_rescoring() -> None:
    enc, heads = _deep()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, generator=g, dtype=torch.float64)
    ys = [torch.randn(16, 1, generator=g, dtype=torch.float64) for _ in range(3)]
    shared = list(enc.parameters())
    layers = group_by_module(enc)
    assert len(layers) == 4
    cases = [("all", "mean"), ("selected", "mean"), ("selected", "none"), ("selected", "sum")]
    for (apply_to, others), scoring in itertools.product(cases, ("full", "lean")):
        sel = LayerSelection(
            k=2, apply_to=apply_to, others=others, rescore_every=2, layers=layers, scoring=scoring
        )
        for step in range(3):
            enc.zero_grad()
            L = make_losses(enc, heads, x, ys)
            r = backward(L, shared, PCGrad(0), selection=sel)
            assert r.scored == (step % 2 == 0)
            assert len(r.selected) == 2
            G = jacobian_reference(make_losses(enc, heads, x, ys), shared)
            chosen = [p for li in r.selected for p in layers[li]]
            ids = {id(p) for p in chosen}
            mask = torch.cat([torch.full((p.numel(),), id(p) in ids) for p in shared])
            # weights come from the selected layers only
            Gs = G[:, mask]
            assert torch.allclose(r.weights, PCGrad(0).weights(Gs), atol=1e-12)
            expected = r.weights @ G
            if apply_to == "selected":
                rest = {"mean": G.mean(0), "sum": G.sum(0), "none": torch.zeros_like(G[0])}[others]
                expected = torch.where(mask, expected, rest)
            got = torch.cat(
                [torch.zeros_like(p).reshape(-1) if p.grad is None else p.grad.reshape(-1) for p in shared]
            )
            assert torch.allclose(got, expected, atol=1e-12), (apply_to, others, step)


@pytest.mark.parametrize("threshold", [0.0, -0.1, -0.3])
def test_lean_scoring_threshold_matches_full(threshold: float) -> None:
    """Lean scoring (layer by layer, keeping only selectable layers) selects the same layers and writes the
    same gradients as full scoring, with double sampling too."""
    enc, heads = _deep()
    g = torch.Generator().manual_seed(1)
    x1, x2 = (torch.randn(16, 8, generator=g, dtype=torch.float64) for _ in range(2))
    ys = [torch.randn(16, 1, generator=g, dtype=torch.float64) for _ in range(3)]
    shared = list(enc.parameters())
    grads = {}
    for scoring in ("full", "lean"):
        enc.zero_grad()
        sel = LayerSelection(threshold=threshold, scoring=scoring)
        r = backward(
            make_losses(enc, heads, x1, ys),
            shared,
            MoDo(0.3),
            selection=sel,
            second_losses=make_losses(enc, heads, x2, ys),
        )
        grads[scoring] = (r.selected, flat_grad(shared).clone(), r.weights)
    assert grads["full"][0] == grads["lean"][0]
    assert torch.allclose(grads["full"][1], grads["lean"][1], atol=1e-12)
    assert torch.allclose(grads["full"][2], grads["lean"][2], atol=1e-14)


def test_layer_selection_state_dict_and_errors() -> None:
    sel = LayerSelection(threshold=-0.2, rescore_every=3)
    m = TwoLayer()
    backward(m.losses(), [m.a, m.b], MGDA(), selection=sel)
    s = sel.state_dict()
    sel2 = LayerSelection(threshold=-0.2, rescore_every=3)
    sel2.load_state_dict(s)
    assert sel2.selected == sel.selected and sel2.steps == 1 and not sel2.needs_scoring()
    with pytest.raises(ValueError, match="apply_to"):
        LayerSelection(apply_to="some")
    with pytest.raises(ValueError, match="does not cover"):
        backward(m.losses(), [m.a, m.b], MGDA(), selection=LayerSelection(layers=[[m.a]]))


def test_no_conflict_gives_mean_gradient() -> None:
    a = nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    losses = [(a**2).sum(), 2 * (a**2).sum()]
    r = backward(losses, [a], MGDA(), selection=LayerSelection())
    assert r.selected == [] and torch.allclose(a.grad, 1.5 * 2 * a.detach())


# --------------------------------------------------------------------------------- recipes


def test_recipe_through_backward() -> None:
    enc, heads = make_model()
    x, ys = data()
    shared = list(enc.parameters())
    rec = Recipe([["asr", "st"], ["ssl"]], [MGDA(), None], penalties=[LinearRamp(0.0, 1.0, 4)])
    for k in range(3):
        enc.zero_grad()
        L = make_losses(enc, heads, x, ys)
        r = backward({"ssl": L[2], "st": L[1], "asr": L[0]}, shared, rec)
        G = jacobian_reference(make_losses(enc, heads, x, ys), shared)
        w_top = MGDA().weights(G[:2])
        expected = w_top @ G[:2] + (k / 4) * G[2]
        assert torch.allclose(flat_grad(shared), expected, atol=1e-12)
        assert torch.allclose(r.weights[2], torch.tensor(k / 4, dtype=torch.float64))


# ------------------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        enc, heads = make_model()
        x, ys = data(n=20)
        sl = slice(rank * 10, (rank + 1) * 10)
        L = make_losses(enc, heads, x[sl], [y[sl] for y in ys])
        backward(L, enc.parameters(), CAGrad(0.4), task_params=heads.parameters())
        if rank == 0:
            torch.save([p.grad for p in [*enc.parameters(), *heads.parameters()]], out)
    finally:
        dist.destroy_process_group()


def test_backward_ddp_two_processes(tmp_path) -> None:
    """Each rank sees half the batch; averaged per-objective gradients ⇒ the same .grad as one process on
    the full batch (the losses are means over equal halves)."""
    import torch.multiprocessing as mp

    out = str(tmp_path / "grads.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    got = torch.load(out)
    enc, heads = make_model()
    x, ys = data(n=20)
    backward(make_losses(enc, heads, x, ys), enc.parameters(), CAGrad(0.4), task_params=heads.parameters())
    for g, p in zip(got, [*enc.parameters(), *heads.parameters()]):
        assert torch.allclose(g, p.grad, atol=1e-12)


# ------------------------------------------------------------------------------ resume, properties


def _train(steps: int, state=None):
    enc, heads = _deep()
    g = torch.Generator().manual_seed(5)
    data_ = [
        (
            torch.randn(8, 8, generator=g, dtype=torch.float64),
            [torch.randn(8, 1, generator=g, dtype=torch.float64) for _ in range(3)],
        )
        for _ in range(12)
    ]
    opt = torch.optim.Adam([*enc.parameters(), *heads.parameters()], lr=0.01)
    agg = MoDo(gamma=0.2, rho=0.05)
    sel = LayerSelection(k=2, rescore_every=2, layers=group_by_module(enc))
    start = 0
    if state is not None:
        enc.load_state_dict(state["enc"])
        heads.load_state_dict(state["heads"])
        opt.load_state_dict(state["opt"])
        agg.load_state_dict(state["agg"])
        sel.load_state_dict(state["sel"])
        start = state["step"]
    for step in range(start, start + steps):
        (x1, y1), (x2, y2) = data_[2 * step], data_[2 * step + 1]
        opt.zero_grad()
        backward(
            make_losses(enc, heads, x1, y1),
            enc.parameters(),
            agg,
            task_params=heads.parameters(),
            second_losses=make_losses(enc, heads, x2, y2),
            selection=sel,
        )
        opt.step()
    snapshot = {
        "enc": {k: v.clone() for k, v in enc.state_dict().items()},
        "heads": {k: v.clone() for k, v in heads.state_dict().items()},
        "opt": opt.state_dict(),
        "agg": agg.state_dict(),
        "sel": sel.state_dict(),
        "step": start + steps,
    }
    return snapshot


def test_training_resume_is_bitwise() -> None:
    """MoDo (double sampling) + layer selection + Adam: 3 steps, checkpoint, 3 more == 6 uninterrupted."""
    import copy

    full = _train(6)
    half = copy.deepcopy(_train(3))
    resumed = _train(3, state=half)
    for k in full["enc"]:
        assert torch.equal(full["enc"][k], resumed["enc"][k]), k
    for k in full["heads"]:
        assert torch.equal(full["heads"][k], resumed["heads"][k]), k
    assert torch.equal(full["agg"]["lam"], resumed["agg"]["lam"])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 5), st.integers(1, 6))
def test_layer_scores_properties(seed: int, m: int, n_layers: int) -> None:
    """Scores lie in [−1, 1], are invariant to positive rescaling of each objective's gradient on a layer,
    and k-selection returns the k lowest."""
    g = torch.Generator().manual_seed(seed)
    J = [torch.randn(m, 7, generator=g, dtype=torch.float64) for _ in range(n_layers)]
    Q = torch.stack([j @ j.T for j in J])
    s = layer_scores(Q)
    assert bool((s >= -1 - 1e-12).all() and (s <= 1 + 1e-12).all())
    scale = torch.rand(n_layers, m, 1, generator=g, dtype=torch.float64) + 0.1
    Q2 = torch.stack([(c * j) @ (c * j).T for c, j in zip(scale, J)])
    assert torch.allclose(layer_scores(Q2), s, atol=1e-12)
    k = max(1, n_layers // 2)
    chosen = select_layers(s, k=k)
    assert len(chosen) == k
    rest = [float(s[i]) for i in range(n_layers) if i not in chosen]
    assert float(s[chosen].max()) <= min(rest, default=2.0)
    assert select_layers(s, threshold=0.0) == [i for i in range(n_layers) if float(s[i]) < 0]
