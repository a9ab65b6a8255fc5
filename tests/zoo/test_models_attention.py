"""Relative-position attention and masks: closed forms, the block path against the masked path, and
the block / look-ahead boundaries."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.models.attention import RelPositionMultiHeadAttention, block_relative_attention, relative_attention
from zoo.models.masks import (
    block_mask,
    causal_mask,
    combine,
    lengths_to_mask,
    prefix_lm_mask,
    relative_positions,
)


def _naive(q, k, v, table, mask):
    """Direct formula: softmax_j((q_i·k_j + q_i·E[clip(i-j)]) / sqrt(d)) over allowed j."""
    T, d = q.shape[-2], q.shape[-1]
    R = (table.shape[0] - 1) // 2
    out = torch.zeros_like(q)
    for i in range(T):
        for b in range(q.shape[0]):
            for h in range(q.shape[1]):
                js = torch.nonzero(mask[b, 0, i] if mask.shape[1] == 1 else mask[b, h, i]).flatten()
                if js.numel() == 0:
                    continue
                logits = torch.stack(
                    [
                        (q[b, h, i] @ k[b, h, j] + q[b, h, i] @ table[max(-R, min(R, i - j)) + R]) / d**0.5
                        for j in js
                    ]
                )
                w = logits.softmax(0)
                out[b, h, i] = (w[:, None] * v[b, h, js]).sum(0)
    return out


def test_block_mask_formula() -> None:
    m = block_mask(7, 3, left=1, right=2)
    for i in range(7):
        for j in range(7):
            b = i // 3
            assert bool(m[i, j]) == (3 * b - 1 <= j < 3 * b + 3 + 2)


def test_prefix_and_causal_masks() -> None:
    assert torch.equal(
        causal_mask(4), torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]).bool()
    )
    m = prefix_lm_mask(2, 4)
    assert bool(m[0, 1]) and not bool(m[1, 2]) and bool(m[3, 0])
    assert torch.equal(prefix_lm_mask(2, 4, bidirectional=False), causal_mask(4))


def test_lengths_and_combine() -> None:
    v = lengths_to_mask(torch.tensor([2, 0, 3]), 4)
    assert v.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]]
    c = combine(causal_mask(4), v)
    assert c is not None and c.shape == (3, 4, 4) and not bool(c[0, 3, 2])
    with pytest.raises(ValueError, match="max_len"):
        lengths_to_mask(torch.tensor([5]), 3)
    with pytest.raises(ValueError, match="block"):
        block_mask(4, 0)


def test_relative_positions_clipped() -> None:
    r = relative_positions(3, 5, 2, offset=1)
    # i + 1 - j clipped to [-2, 2], shifted by 2
    assert r.tolist() == [[3, 2, 1, 0, 0], [4, 3, 2, 1, 0], [4, 4, 3, 2, 1]]


def test_relative_attention_matches_direct_formula() -> None:
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    table = torch.randn(7, 4, generator=g, dtype=torch.float64)
    mask = block_mask(6, 4, right=1)[None, None] & lengths_to_mask(torch.tensor([6, 5]), 6)[:, None, None, :]
    got = relative_attention(q, k, v, table, mask=mask)
    want = _naive(q, k, v, table, mask)
    assert torch.allclose(got, want, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(1, 23),
    block=st.integers(1, 9),
    short=st.integers(0, 22),
)
def test_block_path_equals_masked_path(T: int, block: int, short: int) -> None:
    g = torch.Generator().manual_seed(T * 100 + block)
    q, k, v = (torch.randn(2, 3, T, 4, generator=g, dtype=torch.float64) for _ in range(3))
    table = torch.randn(2 * 5 + 1, 4, generator=g, dtype=torch.float64)
    lens = torch.tensor([T, max(1, T - short)])
    valid = lengths_to_mask(lens, T)
    fast = block_relative_attention(q, k, v, table, block, valid=valid)
    slow = relative_attention(q, k, v, table, mask=block_mask(T, block)[None, None] & valid[:, None, None, :])
    sel = valid[:, None, :, None].expand_as(fast)
    assert torch.allclose(fast[sel], slow[sel], atol=1e-12)


@pytest.mark.parametrize(("block", "left", "right"), [(4, 0, 0), (4, 2, 3), (3, 0, 2)])
def test_attention_never_looks_past_block_and_lookahead(block: int, left: int, right: int) -> None:
    torch.manual_seed(0)
    T = 13
    attn = RelPositionMultiHeadAttention(16, 2, max_distance=8).double()
    x = torch.randn(1, T, 16, dtype=torch.float64, requires_grad=True)
    mask = block_mask(T, block, left=left, right=right)
    y = attn(x, mask=mask)
    for i in range(T):
        (grad,) = torch.autograd.grad(y[0, i].sum(), x, retain_graph=True)
        touched = grad[0].abs().sum(-1) > 0
        assert torch.equal(touched, mask[i]), f"query {i}"


def test_module_block_argument_equals_mask() -> None:
    torch.manual_seed(0)
    attn = RelPositionMultiHeadAttention(16, 4, max_distance=6).double().eval()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    valid = lengths_to_mask(torch.tensor([11, 8]), 11)
    a = attn(x, valid=valid, block=4)
    b = attn(x, valid=valid, mask=block_mask(11, 4))
    assert torch.allclose(a[valid], b[valid], atol=1e-12)
    with pytest.raises(ValueError, match="either mask or block"):
        attn(x, mask=block_mask(11, 4), block=4)
    with pytest.raises(ValueError, match="must be"):
        attn(x[..., :8])
    with pytest.raises(ValueError, match="divide"):
        RelPositionMultiHeadAttention(10, 3)


@pytest.mark.parametrize("block", [None, 3])
def test_fused_backward_matches_finite_differences(block: int | None) -> None:
    g = torch.Generator().manual_seed(3)
    q, k, v = (
        torch.randn(2, 2, 7, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)
    )
    table = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    valid = lengths_to_mask(torch.tensor([7, 5]), 7)

    def f(q, k, v, table):  # outputs at padded queries are unused (and constant), so compare real ones
        if block is None:
            out = relative_attention(q, k, v, table, mask=valid[:, None, None, :])
        else:
            out = block_relative_attention(q, k, v, table, block, valid=valid)
        return out * valid[:, None, :, None]

    assert torch.autograd.gradcheck(f, (q, k, v, table))


def test_fused_backward_supports_batched_grad_outputs() -> None:
    """Per-objective gradients in one batched backward (vmap over grad_outputs, as multi-objective
    aggregation computes them) equal one backward per objective, to round-off."""
    g = torch.Generator().manual_seed(5)
    q, k, v = (
        torch.randn(2, 2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)
    )
    table = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    out = relative_attention(q, k, v, table)
    losses = torch.stack([out[0].pow(2).sum(), out[1].sin().sum(), (out * out.roll(1, -1)).sum()])
    ins = (q, k, v, table)
    batched = torch.autograd.grad(
        losses, ins, grad_outputs=torch.eye(3, dtype=torch.float64), is_grads_batched=True, retain_graph=True
    )
    for i in range(3):
        one = torch.autograd.grad(losses[i], ins, retain_graph=True)
        for b, o in zip(batched, one, strict=True):
            torch.testing.assert_close(b[i], o, rtol=1e-12, atol=1e-12)


def test_dropout_path_matches_fused_path_without_dropout() -> None:
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 2, 6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    table = torch.randn(7, 4, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    a = relative_attention(q, k, v, table, dropout_p=1e-12)  # autograd path, dropout practically off
    b = relative_attention(q, k, v, table)
    assert torch.allclose(a, b, atol=1e-10)
