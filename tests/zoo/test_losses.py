"""Self-supervised losses of the BL-JUST recipe: CPC/InfoNCE and masked prediction."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from zoo.losses import (
    CPCLoss,
    MaskedPredictionLoss,
    cpc_info_nce,
    crop_context_future,
    fold_frames,
    info_nce,
    masked_reconstruction_loss,
    rollout,
    span_mask,
)


def _reference_info_nce(q: Tensor, p: Tensor, tau: float) -> float:
    """InfoNCE written out as a double loop in float64 (independent of the vectorised code)."""
    qn = [x / x.norm() for x in q.double()]
    pn = [x / x.norm() for x in p.double()]
    total = 0.0
    for i, qi in enumerate(qn):
        logits = [float(qi @ pj) / tau for pj in pn]
        m = max(logits)
        total += -(logits[i] - m - math.log(sum(math.exp(v - m) for v in logits)))
    return total / len(qn)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 7), d=st.integers(1, 5), tau=st.floats(0.05, 2.0), seed=st.integers(0, 10_000))
def test_info_nce_matches_written_out_formula(n: int, d: int, tau: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    q, p = (
        torch.randn(n, d, generator=g, dtype=torch.float64),
        torch.randn(n, d, generator=g, dtype=torch.float64),
    )
    assert float(info_nce(q, p, tau)) == pytest.approx(_reference_info_nce(q, p, tau), rel=1e-10, abs=1e-12)


def test_info_nce_closed_forms() -> None:
    # All pairs identical: every logit equal, loss = log N exactly.
    q = torch.ones(6, 3, dtype=torch.float64)
    assert float(info_nce(q, q)) == pytest.approx(math.log(6), rel=1e-12)
    # Orthonormal positives, queries equal to them: logits are 1/τ on the diagonal and 0 elsewhere.
    e = torch.eye(5, dtype=torch.float64)
    tau = 0.1
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 4))
    assert float(info_nce(e, e, tau)) == pytest.approx(expected, rel=1e-12)


def test_info_nce_gradcheck_and_errors() -> None:
    q = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    p = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, 0.3), (q, p))
    with pytest.raises(ValueError, match="temperature"):
        info_nce(q, p, 0.0)
    with pytest.raises(ValueError, match="query and positive"):
        info_nce(q, p[:3])
    with pytest.raises(ValueError, match="at least 2"):
        info_nce(q[:1], p[:1])


def test_rollout_autoregressive_is_matrix_power_and_per_step_uses_each_head() -> None:
    lin = nn.Linear(4, 4, bias=False).double()
    c = torch.randn(3, 4, dtype=torch.float64)
    out = rollout(lin, c, 3)
    W = lin.weight.detach()
    for k in range(3):
        torch.testing.assert_close(out[:, k], c @ torch.linalg.matrix_power(W, k + 1).T)
    heads = nn.ModuleList(nn.Linear(4, 4).double() for _ in range(3))
    out2 = rollout(heads, c, 3)
    for k in range(3):
        torch.testing.assert_close(out2[:, k], heads[k](c))
    with pytest.raises(ValueError, match="per-step"):
        rollout(heads, c, 4)


@settings(max_examples=25, deadline=None)
@given(
    lens=st.lists(st.integers(3, 40), min_size=1, max_size=5),
    ctx=st.integers(1, 20),
    fut=st.integers(1, 10),
    seed=st.integers(0, 1000),
)
def test_crop_returns_adjacent_windows_inside_each_utterance(
    lens: list[int], ctx: int, fut: int, seed: int
) -> None:
    T = max(lens)
    # Frame t of row b carries the value 1000 b + t, so a window reveals where it was cut from.
    feats = (torch.arange(T)[None, :] + 1000 * torch.arange(len(lens))[:, None]).double()[..., None]
    c, f = crop_context_future(feats, torch.tensor(lens), ctx, fut, torch.Generator().manual_seed(seed))
    total = min(ctx + fut, min(lens))
    assert c.shape[1] + f.shape[1] == total and c.shape[1] >= 1 and f.shape[1] >= 1
    for b, n in enumerate(lens):
        w = torch.cat([c[b, :, 0], f[b, :, 0]]) - 1000 * b
        start = int(w[0])
        assert torch.equal(w, torch.arange(start, start + total).double())  # adjacent, in order
        assert 0 <= start and start + total <= n  # never reads padding


def test_cpc_info_nce_perfect_prediction_closed_form() -> None:
    # Predictor = cyclic shift; context ends at e_0 and e_4; targets e_1, e_2 and e_5, e_6 are orthonormal.
    D, tau = 8, 0.1
    shift = nn.Linear(D, D, bias=False).double()
    with torch.no_grad():
        shift.weight.copy_(torch.roll(torch.eye(D, dtype=torch.float64), 1, dims=0))
    e = torch.eye(D, dtype=torch.float64)
    ctx = torch.stack([torch.stack([e[3], e[0]]), torch.stack([e[7], e[4]])])  # last frame e_0, e_4
    fut = torch.stack([torch.stack([e[1], e[2], e[7]]), torch.stack([e[5], e[6], e[3]])])
    with torch.no_grad():
        loss = cpc_info_nce(
            ctx, torch.tensor([2, 2]), fut, torch.tensor([3, 3]), shift, steps=2, temperature=tau
        )
        loss1 = cpc_info_nce(
            ctx, torch.tensor([1, 1]), fut, torch.tensor([3, 3]), shift, steps=2, temperature=tau
        )
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 3))
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    # The last *valid* context frame is used: with lengths 1 the context ends at e_3 / e_7 instead.
    assert float(loss1) > float(loss) + 5.0


class _Spy(nn.Module):
    """A linear encoder that records the inputs it sees."""

    def __init__(self, f: int, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(f, d)
        self.calls: list[Tensor] = []

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        self.calls.append(x.detach().clone())
        return self.lin(x), lens


def test_cpc_module_encodes_context_and_future_separately_and_trains_both_parts() -> None:
    enc = _Spy(5, 6)
    cpc = CPCLoss(6, steps=3, context_frames=8, future_frames=4, seed=1)
    x = torch.randn(4, 20, 5)
    loss = cpc(enc, x, torch.tensor([20, 18, 15, 12]))
    assert len(enc.calls) == 2
    assert enc.calls[0].shape == (4, 8, 5) and enc.calls[1].shape == (4, 4, 5)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*enc.parameters(), *cpc.parameters()])


def test_cpc_module_is_deterministic_and_state_dict_restores_the_window_stream() -> None:
    torch.manual_seed(0)
    enc = _Spy(5, 6)
    a = CPCLoss(6, steps=2, context_frames=6, future_frames=4, seed=3)
    x, lens = torch.randn(3, 30, 5), torch.tensor([30, 25, 20])
    a(enc, x, lens)
    saved = a.state_dict()
    l2 = a(enc, x, lens)
    b = CPCLoss(6, steps=2, context_frames=6, future_frames=4, seed=99)
    b.load_state_dict(saved)
    assert torch.equal(b(enc, x, lens), l2)


def test_cpc_per_step_mode_and_argument_errors() -> None:
    enc = _Spy(5, 6)
    cpc = CPCLoss(6, steps=2, context_frames=6, future_frames=4, mode="per_step")
    assert isinstance(cpc.predictor, nn.ModuleList) and len(cpc.predictor) == 2
    assert torch.isfinite(cpc(enc, torch.randn(3, 12, 5), torch.tensor([12, 12, 12])))
    with pytest.raises(ValueError, match="mode"):
        CPCLoss(6, mode="bidirectional")
    with pytest.raises(ValueError, match="temperature"):
        CPCLoss(6, temperature=-1.0)
    with pytest.raises(ValueError, match="at least 2 frames"):
        cpc(enc, torch.randn(3, 12, 5), torch.tensor([12, 1, 12]))


def test_cpc_learns_a_predictable_sequence() -> None:
    """On sequences whose frames follow a fixed rotation, training drives the loss well below chance."""
    torch.manual_seed(0)
    D = 8
    R = torch.linalg.qr(torch.randn(D, D))[0]
    starts = torch.randn(64, D)
    seq = [starts]
    for _ in range(15):
        seq.append(seq[-1] @ R.T)
    data = torch.stack(seq, 1)  # (64, 16, D)
    enc = nn.Linear(D, D)
    cpc = CPCLoss(D, steps=2, context_frames=6, future_frames=4, seed=0)
    opt = torch.optim.Adam([*enc.parameters(), *cpc.parameters()], lr=1e-2)
    lens = torch.full((16,), 16)
    first = None
    for _ in range(150):
        x = data[torch.randint(0, 64, (16,))]
        loss = cpc(lambda a, b: (enc(a), b), x, lens)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * math.log(32) < first


# -- masked prediction ---------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    lens=st.lists(st.integers(0, 30), min_size=1, max_size=5),
    prob=st.floats(0.05, 1.0),
    span=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_span_mask_stays_inside_lengths_and_masks_every_row(
    lens: list[int], prob: float, span: int, seed: int
) -> None:
    L = 30
    m = span_mask(torch.tensor(lens), L, prob, span, torch.Generator().manual_seed(seed))
    assert m.shape == (len(lens), L)
    for b, n in enumerate(lens):
        assert not m[b, n:].any()
        assert bool(m[b].any()) == (n > 0)
        assert int(m[b].sum()) <= min(n, max(1, round(prob * n / min(span, max(n, 1)))) * span)


def test_fold_frames_and_reconstruction_loss() -> None:
    x = torch.arange(2 * 5 * 3, dtype=torch.float64).reshape(2, 5, 3)
    y = fold_frames(x, 2, 3)
    assert y.shape == (2, 3, 6)
    torch.testing.assert_close(y[:, 0], torch.cat([x[:, 0], x[:, 1]], -1))
    torch.testing.assert_close(y[:, 2, 3:], torch.zeros(2, 3, dtype=torch.float64))  # zero padding
    pred, tgt = torch.randn(2, 4, 3, dtype=torch.float64), torch.randn(2, 4, 3, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, False], [False, False, False, True]])
    manual = torch.cat([(pred - tgt)[0, [0, 2]], (pred - tgt)[1, [3]]]).abs().mean()
    torch.testing.assert_close(masked_reconstruction_loss(pred, tgt, mask), manual)
    with pytest.raises(ValueError, match="no frame"):
        masked_reconstruction_loss(pred, tgt, torch.zeros(2, 4, dtype=torch.bool))


def test_masked_prediction_zeroes_masked_frames_and_has_closed_form_losses() -> None:
    torch.manual_seed(0)
    F, s = 3, 2
    loss_fn = MaskedPredictionLoss(F * s, F, stride=s, mask_prob=0.4, span=1, seed=5).double()
    with torch.no_grad():  # head = identity, so predictions equal the hidden states
        loss_fn.head.weight.copy_(torch.eye(F * s, dtype=torch.float64))
        loss_fn.head.bias.zero_()
    x = torch.randn(2, 10, F, dtype=torch.float64)
    lens = torch.tensor([10, 8])
    seen: list[Tensor] = []

    def fold_encoder(feats: Tensor, fl: Tensor) -> tuple[Tensor, Tensor]:
        seen.append(feats)
        return fold_frames(feats, s, feats.shape[1] // s), fl // s

    masked = loss_fn(fold_encoder, x, lens)
    zeroed = (seen[0] == 0).all(-1)
    assert zeroed.any() and not zeroed[1, 8:].any()  # some frames masked, none in padding
    # The encoder returns the corrupted input, so the loss is the mean |x| over the masked frames.
    frames = zeroed.reshape(2, 5, 2).all(-1)
    expected = fold_frames(x, s, 5)[frames].abs().mean()
    torch.testing.assert_close(masked, expected)
    # An encoder that sees through the mask (an oracle) reconstructs perfectly: loss 0.
    oracle = loss_fn(lambda f, fl: (fold_frames(x, s, 5), fl // s), x, lens)
    assert oracle.item() == 0.0
    with pytest.raises(ValueError, match="feats must be"):
        loss_fn(fold_encoder, torch.randn(2, 10, F + 1, dtype=torch.float64), lens)


# ------------------------------------------------------------------ InfoNCE across ranks (gloo, 2 processes)
_ROWS = (3, 5)  # unequal shards: rank 0 holds rows 0-2 of the global batch, rank 1 rows 3-7


def _global_pairs() -> tuple[Tensor, Tensor, nn.Linear]:
    g = torch.Generator().manual_seed(7)
    q = torch.randn(sum(_ROWS), 4, generator=g, dtype=torch.float64)
    p = torch.randn(sum(_ROWS), 4, generator=g, dtype=torch.float64)
    head = nn.Linear(4, 4, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.randn(4, 4, generator=g, dtype=torch.float64))
        head.bias.copy_(torch.randn(4, generator=g, dtype=torch.float64))
    return q, p, head


def _loss_and_grads(q: Tensor, p: Tensor, head: nn.Linear, **kw) -> tuple[float, list[Tensor]]:
    """InfoNCE of (head(q), p) and its gradients with respect to the head (queries) and p (positives)."""
    p = p.clone().requires_grad_()
    loss = info_nce(head(q), p * 1.0, 0.5, **kw)
    gs = torch.autograd.grad(loss, [head.weight, head.bias, p])
    return loss.item(), [t.detach() for t in gs]


def _gather_worker(rank: int, init: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        q, p, head = _global_pairs()
        lo = sum(_ROWS[:rank])
        rows = slice(lo, lo + _ROWS[rank])
        loss, (gw, gb, gp) = _loss_and_grads(q[rows], p[rows], head)  # gather on by default
        local, _ = _loss_and_grads(q[rows], p[rows], head, gather=False)
        # the training stack's average: weighted by the local number of pairs
        n = float(_ROWS[rank])
        flat = torch.cat(
            [torch.tensor([loss * n, local * n], dtype=torch.float64), gw.reshape(-1) * n, gb * n]
        )
        dist.all_reduce(flat)
        flat /= sum(_ROWS)
        full_gp = torch.zeros(sum(_ROWS), 4, dtype=torch.float64)
        full_gp[rows] = gp * n / sum(_ROWS)  # this rank's rows, as a share of the global mean's gradient
        dist.all_reduce(full_gp)
        if rank == 0:
            torch.save({"flat": flat, "gp": full_gp}, out)
    finally:
        dist.destroy_process_group()


def test_info_nce_on_two_ranks_equals_the_global_batch(tmp_path) -> None:
    import torch.multiprocessing as mp

    out = tmp_path / "rank0.pt"
    mp.spawn(_gather_worker, args=(f"file://{tmp_path / 'pg'}", str(out)), nprocs=2, join=True)
    got = torch.load(out)
    q, p, head = _global_pairs()
    loss, (gw, gb, gp) = _loss_and_grads(q, p, head)  # one process, the global batch of 8 pairs
    flat = got["flat"]
    # the same float64 sums in another order
    assert float(flat[0]) == pytest.approx(loss, rel=1e-12)
    torch.testing.assert_close(flat[2:18].view(4, 4), gw, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(flat[18:22], gb, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got["gp"], gp, rtol=1e-10, atol=1e-12)
    # with local negatives only (3- and 5-way) the loss is a different number: the gather matters
    assert abs(float(flat[1]) - loss) > 0.05


def test_gather_must_be_a_bool_or_none() -> None:
    q = torch.randn(4, 3)
    with pytest.raises(TypeError, match="gather"):
        info_nce(q, q, gather="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="gather"):
        CPCLoss(3, gather=1)  # type: ignore[arg-type]
