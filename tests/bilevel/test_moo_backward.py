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


# Bad input to backward: the shared table in test_moo_bad_input.py.


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
        backward(L, enc.parameters(), CAGrad(0.4))  # heads inferred: the same order on every rank
        if rank == 0:
            torch.save([p.grad for p in [*enc.parameters(), *heads.parameters()]], out)
    finally:
        dist.destroy_process_group()


def test_backward_ddp_two_processes(tmp_path) -> None:
    """Each rank sees half the batch; averaged per-objective gradients ⇒ the same .grad as one process on
    the full batch (the losses are means over equal halves). The ranks infer the heads from the graph;
    the reference passes them."""
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
    """MoDo (double sampling) + layer selection + Adam: 3 steps, checkpoint, 3 more == 6 uninterrupted
    (a path against itself, so bit-exact)."""
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


# ---------------------------------------------------------------------- inferred task parameters


class Net(nn.Module):
    """A trunk, T heads, a frozen projection (requires_grad False) and a parameter no loss uses."""

    def __init__(self, T: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 8), nn.Tanh()).double()
        self.frozen = nn.Linear(8, 8).double().requires_grad_(False)
        self.heads = nn.ModuleList([nn.Linear(8, 1) for _ in range(T)]).double()
        self.unused = nn.Parameter(torch.ones(2, dtype=torch.float64))

    def forward(self, x, ys):
        f = self.frozen(self.trunk(x))
        return f, [((h(f) - y) ** 2).mean() for h, y in zip(self.heads, ys)]


def test_backward_infers_task_params() -> None:
    """Without task_params the heads get the gradient of Σ L_i, as with task_params given; frozen and
    unused parameters get nothing; ``task_params=[]`` gives the heads nothing."""
    x, ys = data()
    grads = {}
    for mode in ("inferred", "explicit", "none"):
        net = Net()
        kw = {
            "inferred": {},
            "explicit": {"task_params": net.heads.parameters()},
            "none": {"task_params": []},
        }
        r = backward(net(x, ys)[1], net.trunk.parameters(), MGDA(), **kw[mode])
        grads[mode] = {n: None if p.grad is None else p.grad.clone() for n, p in net.named_parameters()}
        if mode == "inferred":
            assert {id(p) for p in r.task_params} == {id(p) for p in net.heads.parameters()}
            assert len(r.task_params) == len(list(net.heads.parameters()))
    heads = [n for n in grads["explicit"] if n.startswith("heads")]
    assert heads and all(grads["none"][n] is None for n in heads)
    for n, g in grads["explicit"].items():
        if n.startswith(("frozen", "unused")):
            assert g is None and grads["inferred"][n] is None, n
        else:
            # the same operations in both modes: only the list of task parameters differs
            torch.testing.assert_close(grads["inferred"][n], g, atol=1e-15, rtol=0)
    # the heads' gradient is the independent reference ∇ Σ L_i
    net = Net()
    ref = torch.autograd.grad(sum(net(x, ys)[1]), list(net.heads.parameters()))
    for n, g in zip(heads, ref):
        torch.testing.assert_close(grads["inferred"][n], g, atol=1e-14, rtol=1e-12)


def test_backward_infers_task_params_with_double_sampling_and_selection() -> None:
    x1, ys1 = data(1)
    x2, ys2 = data(2)
    net, ref = Net(), Net()
    sel = LayerSelection(k=1, apply_to="selected", others="mean", rescore_every=1)
    backward(net(x1, ys1)[1], net.trunk.parameters(), MoDo(0.2), second_losses=net(x2, ys2)[1], selection=sel)
    total = 0.5 * (sum(ref(x1, ys1)[1]) + sum(ref(x2, ys2)[1]))
    for p, g in zip(net.heads.parameters(), torch.autograd.grad(total, list(ref.heads.parameters()))):
        torch.testing.assert_close(p.grad, g, atol=1e-14, rtol=1e-12)


@pytest.mark.peers
def test_backward_without_task_params_matches_torchjd_mtl_backward() -> None:
    """torchjd 0.18's ``mtl_backward`` (heads inferred from the graph) + ``jac_to_grad``: the same .grad on
    every parameter. PCGrad draws its order from a seeded generator here and from torch's global RNG in
    torchjd (same seed, same stream); the tolerance covers the different summation orders."""
    from torchjd.aggregation import PCGrad as JdPCGrad
    from torchjd.autojac import jac_to_grad, mtl_backward

    x, ys = data()
    ours, theirs = Net(), Net()
    backward(ours(x, ys)[1], ours.trunk.parameters(), PCGrad(seed=4))
    f, L = theirs(x, ys)
    mtl_backward(L, features=f)
    torch.manual_seed(4)
    jac_to_grad(theirs.trunk.parameters(), JdPCGrad())
    for (n, a), b in zip(ours.named_parameters(), theirs.parameters()):
        if b.grad is None:
            assert a.grad is None, n
        else:
            torch.testing.assert_close(a.grad, b.grad, atol=1e-12, rtol=1e-10, msg=n)


# ------------------------------------------------------------------------ the selection's policy


def test_backward_uses_the_selection_policy_not_its_internals() -> None:
    """backward asks the selection for a plan, feeds it the layer Gramians on a scoring step, and lets it
    count the step; the plan names exactly the tensors whose per-objective gradients are computed."""
    m = TwoLayer()
    sel = LayerSelection(threshold=0.0, rescore_every=2)
    plan = sel.plan([m.a, m.b])
    assert plan.scoring and plan.tensors == [0, 1] and plan.layer_of == [0, 1]
    backward(m.losses(), [m.a, m.b], MGDA(), selection=sel)
    assert sel.steps == 1 and sel.selected == [0]
    plan = sel.plan([m.a, m.b])
    assert not plan.scoring and plan.tensors == [0]
    backward(m.losses(), [m.a, m.b], MGDA(), selection=sel)
    assert sel.steps == 2 and sel.needs_scoring()
    sel.steps = 0  # documented: forces a re-scoring at the next step
    assert sel.plan([m.a, m.b]).scoring


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=12),
    st.integers(1, 5),
    st.sampled_from([None, 0.0, -0.3]),
)
def test_still_selectable_keeps_a_superset_of_the_final_selection(scores, k, threshold) -> None:
    """Streaming the layers' scores through ``still_selectable`` never drops a layer the final selection
    contains (lean scoring relies on it)."""
    sel = LayerSelection(k=k) if threshold is None else LayerSelection(threshold=threshold)
    final = set(select_layers(torch.tensor(scores, dtype=torch.float64), threshold=sel.threshold, k=sel.k))
    alive: set[int] = set()
    seen: dict[int, float] = {}
    for i, s in enumerate(scores):
        seen[i] = s
        alive = sel.still_selectable(seen)
        assert final & set(seen) <= alive
    assert alive == final
