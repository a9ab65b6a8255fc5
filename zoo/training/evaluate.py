"""The one evaluation of the zoo: WER, CER and real-time factor of ``model.transcribe`` on a data set."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from zoo.metrics import cer, wer

__all__ = ["evaluate"]


def _decoder(tokenizer: Any) -> Callable[[list[int]], str]:
    if hasattr(tokenizer, "decode"):
        return tokenizer.decode  # type: ignore[no-any-return]
    if callable(tokenizer):
        return tokenizer  # type: ignore[no-any-return]
    raise TypeError(f"tokenizer must have .decode(ids) or be a decode function, got {type(tokenizer)}")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Sequence[Any],
    tokenizer: Any,
    collate: Callable[[list[Any]], dict[str, Any]],
    *,
    batch_size: int = 16,
    limit: int | None = None,
    sample_rate: int = 16000,
    hop: int = 160,
    **transcribe_kwargs: Any,
) -> dict[str, Any]:
    """Transcribe the first ``limit`` items of ``dataset`` (all by default) and score them.

    Args:
        model: anything with ``transcribe(feats, feat_lens, **transcribe_kwargs) -> list[list[int]]`` (every
            zoo ASR model, and [`zoo.recipes.ModelParts`][zoo.recipes.ModelParts]); run in eval mode without
            gradients, then
            returned to its previous mode.
        tokenizer: a tokenizer (``decode(ids) -> str``) or the decode function itself.
        collate: batches items (``feats``, ``feat_lens`` and ``texts`` are read).

    Returns ``{"wer", "cer", "rtf", "n", "refs", "hyps"}``: corpus-level word and character error rates
    ([`zoo.metrics.wer()`][zoo.metrics.wer], [`zoo.metrics.cer()`][zoo.metrics.cer]) and the real-time factor
    = decoding wall time / audio
    duration, with the duration = feature frames · ``hop / sample_rate``.
    """
    decode = _decoder(tokenizer)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    was_training = model.training
    model.eval()
    refs: list[str] = []
    hyps: list[str] = []
    seconds = audio = 0.0
    try:
        for s in range(0, n, batch_size):
            batch = collate([dataset[i] for i in range(s, min(n, s + batch_size))])
            t0 = time.perf_counter()
            ids = model.transcribe(batch["feats"], batch["feat_lens"], **transcribe_kwargs)  # type: ignore[operator]
            seconds += time.perf_counter() - t0
            audio += float(batch["feat_lens"].sum()) * hop / sample_rate
            hyps += [decode(list(h)) for h in ids]
            refs += list(batch["texts"])
    finally:
        model.train(was_training)
    return {
        "wer": float(wer(refs, hyps)) if refs else 0.0,
        "cer": float(cer(refs, hyps)) if refs else 0.0,
        "rtf": seconds / max(audio, 1e-9),
        "n": float(n),
        "refs": refs,
        "hyps": hyps,
    }
