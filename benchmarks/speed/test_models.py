"""One forward and backward pass of a zoo model: the tiny Conformer-CTC on a batch of 4 × 3 s."""

from __future__ import annotations

import torch

from zoo.models import ConformerCTC, conformer_config


def test_conformer_ctc_tiny_forward_backward(benchmark) -> None:
    torch.manual_seed(0)
    model = ConformerCTC(conformer_config("tiny"))
    gen = torch.Generator().manual_seed(0)
    B, T = 4, 300  # 3 s of 10 ms frames
    feats = torch.randn(B, T, model.cfg.n_mels, generator=gen)
    feat_lens = torch.tensor([300, 280, 250, 200])
    tokens = torch.randint(1, model.cfg.vocab_size, (B, 20), generator=gen)
    token_lens = torch.tensor([20, 18, 15, 12])

    def step() -> float:
        model.zero_grad(set_to_none=True)
        out = model(feats, feat_lens, tokens, token_lens)
        out.loss.backward()
        return float(out.loss.detach())

    loss = benchmark(step)
    assert loss > 0
