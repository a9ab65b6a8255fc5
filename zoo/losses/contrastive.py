r"""Contrastive predictive coding (CPC) with an InfoNCE objective over future frames.

This is the lower-level (self-supervised) loss of BL-JUST (arXiv 2401.06980, 2412.08548) as the authors'
code computes it (``BL-JUST/model/{main,model}.py``):

1. a *context* window and the *future* window that follows it are encoded **separately** by the shared
   encoder, $c = \mathrm{enc}(x_{\mathrm{ctx}})$ and $z = \mathrm{enc}(x_{\mathrm{fut}})$, so a
   bidirectional encoder cannot peek at the frames it has to predict;
2. one linear predictor $W$ is applied autoregressively from the last context frame,
   $\hat z_1 = W c_{\mathrm{last}},\ \hat z_{k+1} = W \hat z_k$ for $k < K$
   (``mode="per_step"`` uses one predictor per step instead, as in van den Oord et al., 2018);
3. the $B K$ (prediction, target) pairs are flattened and scored with InfoNCE with in-batch negatives,
   L2-normalised, temperature $\tau$ (default 0.1, the ``info_nce`` package's default):

$$
\mathcal{L} = -\frac{1}{N}\sum_{i=1}^{N}
\log \frac{\exp(\langle \bar q_i, \bar p_i\rangle/\tau)}
{\sum_{j=1}^{N}\exp(\langle \bar q_i, \bar p_j\rangle/\tau)},
\qquad \bar u = u / \lVert u \rVert_2,\quad N = BK.
$$

Under ``torch.distributed`` the negatives come from the **global** batch: every rank's positives are
gathered (`gather_rows()`, differentiable), each rank scores its own queries against all of them, and
the gradient reaches the rows of the rank that produced them. With each rank's loss the mean over its
own pairs, the average of the ranks' losses weighted by their pair counts is the single-process loss on
the global batch, and so are the gradients averaged the same way (the training stack's average weighted
by the local batch size; a plain mean for equal shards).

Functional core: `info_nce()`, `rollout()`, `crop_context_future()`, `cpc_info_nce()`, `gather_rows()`;
`CPCLoss` is the module that owns the predictor (the head $\eta$ of the lower level).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from zoo.checks import check_choice, check_int, check_real

Encoder = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""Any callable mapping ``(feats (B, T, F), lens (B,))`` to ``(hidden (B, T', D), hidden_lens (B,))``."""

MODES = ("autoregressive", "per_step")

__all__ = [
    "MODES",
    "CPCLoss",
    "Encoder",
    "cpc_info_nce",
    "crop_context_future",
    "gather_rows",
    "info_nce",
    "rollout",
]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherRows(torch.autograd.Function):
    """All-gather of ``(n_r, D)`` row blocks of unequal ``n_r``; the backward pass returns to each rank the
    gradient of its own rows, summed over the ranks with each rank's term weighted by its row count and
    divided by this rank's (exact for gradients averaged across ranks weighted by the row counts)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        world, me = dist.get_world_size(), dist.get_rank()
        counts = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
        dist.all_gather(counts, torch.tensor([x.shape[0]], dtype=torch.long, device=x.device))
        sizes = [int(c) for c in counts]
        padded = x.new_zeros((max(sizes), *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes, ctx.me = sizes, me
        offsets = torch.tensor([0, *sizes[:-1]], device=x.device).cumsum(0)
        ctx.mark_non_differentiable(offsets)
        return torch.cat([part[:n] for part, n in zip(parts, sizes)]), offsets

    @staticmethod
    @once_differentiable  # a second derivative would miss the other ranks' terms: refuse it
    def backward(ctx, grad: Tensor, _grad_offsets: Tensor | None = None) -> Tensor:  # type: ignore[override]
        sizes, me = ctx.sizes, ctx.me
        full = grad.contiguous() * float(sizes[me])
        dist.all_reduce(full, op=dist.ReduceOp.SUM)
        start = sum(sizes[:me])
        return full[start : start + sizes[me]] / float(max(sizes[me], 1))


def gather_rows(x: Tensor) -> tuple[Tensor, int]:
    r"""Rows of ``x`` ``(n_r, D)`` from every rank, concatenated in rank order, and the offset of this
    rank's rows; differentiable (the gradient flows back to each rank's own rows, see the module
    docstring). Without a process group of more than one rank: ``(x, 0)``. Ranks may hold different
    numbers of rows.
    """
    if not _distributed():
        return x, 0
    full, offsets = _GatherRows.apply(x)
    return full, int(offsets[dist.get_rank()])


def info_nce(
    query: Tensor,
    positive: Tensor,
    temperature: float = 0.1,
    normalize: bool = True,
    *,
    gather: bool | None = None,
) -> Tensor:
    r"""InfoNCE with in-batch negatives: row ``i`` of ``query`` must pick row ``i`` of ``positive``.

    Args:
        query: ``(N, D)`` predictions.
        positive: ``(N, D)`` targets; the other ``N - 1`` rows are the negatives of each query.
        temperature: $\tau > 0$.
        normalize: L2-normalise both sides first (cosine similarities), as the ``info_nce`` package does.
        gather: score against the positives of every rank (`gather_rows()`), so that the negatives are
            the global batch's; ``None`` (default): when ``torch.distributed`` runs more than one rank.
            ``False`` keeps each rank's negatives local.

    Returns:
        The mean cross-entropy of this rank's ``N``-way (gathered: global-batch-way) classification
        (``log N`` at chance).
    """
    check_real(temperature, "temperature", low=0.0, low_open=True)
    if query.dim() != 2 or positive.shape != query.shape:
        raise ValueError(
            f"query and positive must both be (N, D); got {tuple(query.shape)} and {tuple(positive.shape)}"
        )
    if gather is not None and not isinstance(gather, bool):
        raise TypeError(f"gather must be a bool or None, got {type(gather).__name__}")
    if normalize:
        query = F.normalize(query, dim=-1)
        positive = F.normalize(positive, dim=-1)
    keys, offset = gather_rows(positive) if (gather is None or gather) else (positive, 0)
    if keys.shape[0] < 2:
        raise ValueError(f"info_nce needs at least 2 pairs (in-batch negatives), got {keys.shape[0]}")
    logits = query @ keys.t() / temperature
    labels = torch.arange(offset, offset + query.shape[0], device=query.device)
    return F.cross_entropy(logits, labels)


def rollout(predictor: nn.Module | nn.ModuleList, start: Tensor, steps: int) -> Tensor:
    r"""Predictions for ``steps`` future frames from ``start`` ``(B, D)``; returns ``(B, steps, D)``.

    A single module is chained autoregressively ($\hat z_{k+1} = W \hat z_k$, the authors' code);
    an ``nn.ModuleList`` applies its ``k``-th module to ``start`` for step ``k`` (per-step predictors).
    """
    check_int(steps, "steps", low=1)
    if isinstance(predictor, nn.ModuleList):
        if len(predictor) < steps:
            raise ValueError(f"steps={steps} exceeds the {len(predictor)} per-step predictors")
        return torch.stack([predictor[k](start) for k in range(steps)], dim=1)
    preds, cur = [], start
    for _ in range(steps):
        cur = predictor(cur)
        preds.append(cur)
    return torch.stack(preds, dim=1)


def crop_context_future(
    feats: Tensor,
    lens: Tensor,
    context_frames: int,
    future_frames: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Cut one random (context, future) pair of adjacent windows from every utterance.

    The windows have the same size in every row, so no padding enters the encoder. When the shortest
    utterance is shorter than ``context_frames + future_frames`` both windows shrink in proportion.

    Returns:
        ``(context (B, C, F), future (B, Fu, F))``.
    """
    check_int(context_frames, "context_frames", low=1)
    check_int(future_frames, "future_frames", low=1)
    if feats.dim() != 3 or lens.shape != feats.shape[:1]:
        raise ValueError(
            f"feats must be (B, T, F) and lens (B,); got {tuple(feats.shape)}, {tuple(lens.shape)}"
        )
    shortest = int(lens.min())
    total = min(context_frames + future_frames, shortest)
    if total < 2:
        raise ValueError(f"utterances must have at least 2 frames for CPC, the shortest has {shortest}")
    fut = max(1, round(total * future_frames / (context_frames + future_frames)))
    ctx = total - fut
    if ctx < 1:
        ctx, fut = 1, total - 1
    slack = (lens - total).clamp(min=0).to(torch.float64)
    u = torch.rand(feats.shape[0], generator=generator, dtype=torch.float64)
    starts = torch.floor(u * (slack + 1)).to(torch.long)
    idx = starts[:, None] + torch.arange(total)[None, :]
    window = torch.gather(feats, 1, idx[..., None].expand(-1, -1, feats.shape[2]).to(feats.device))
    return window[:, :ctx], window[:, ctx:]


def cpc_info_nce(
    context_hidden: Tensor,
    context_lens: Tensor,
    future_hidden: Tensor,
    future_lens: Tensor,
    predictor: nn.Module | nn.ModuleList,
    steps: int,
    temperature: float = 0.1,
    *,
    gather: bool | None = None,
) -> Tensor:
    """Multi-step CPC InfoNCE from encoded context and future windows.

    Predicts the first ``K = min(steps, shortest future)`` future frames from the last valid context frame
    and scores all ``B·K`` pairs with `info_nce()` (negatives: every other pair in the batch, including
    other steps of the same utterance, as the authors' ``multi_step_info_nce`` does; under
    ``torch.distributed`` the pairs of every rank, unless ``gather=False``).
    """
    check_int(steps, "steps", low=1)
    B = context_hidden.shape[0]
    if context_hidden.dim() != 3 or future_hidden.dim() != 3 or future_hidden.shape[0] != B:
        raise ValueError("context_hidden and future_hidden must be (B, T, D) with the same B")
    k = min(steps, int(future_lens.min()))
    if k < 1:
        raise ValueError("the future window encodes to zero frames; lengthen future_frames")
    last = context_hidden[torch.arange(B), (context_lens.to(torch.long) - 1).clamp(min=0)]
    pred = rollout(predictor, last, k)
    target = future_hidden[:, :k]
    D = pred.shape[-1]
    return info_nce(pred.reshape(B * k, D), target.reshape(B * k, D), temperature, gather=gather)


class CPCLoss(nn.Module):
    r"""CPC / InfoNCE lower-level loss with its own predictor head (BL-JUST's $\eta$).

    ``loss = cpc(encoder, feats, lens)`` crops a (context, future) pair per utterance, encodes both windows
    with ``encoder`` (two forward passes of the shared encoder), and returns `cpc_info_nce()`.

    Args:
        dim: encoder width $D$.
        steps: $K$, the number of future encoder frames predicted.
        context_frames: input frames in the context window (authors: 2 s).
        future_frames: input frames in the future window (authors: 1 s); must encode to at least one frame.
        temperature: InfoNCE $\tau$ (authors: 0.1).
        mode: ``"autoregressive"`` (one ``Linear(D, D)`` chained, the authors' code) or ``"per_step"``
            (one ``Linear(D, D)`` per step).
        seed: seeds the window positions (a private generator, saved in `state_dict()`).
        gather: negatives from every rank under ``torch.distributed`` (``None``, the default: when more
            than one rank runs; see `info_nce()`).
    """

    def __init__(
        self,
        dim: int,
        *,
        steps: int = 4,
        context_frames: int = 64,
        future_frames: int = 32,
        temperature: float = 0.1,
        mode: str = "autoregressive",
        seed: int = 0,
        gather: bool | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", low=1)
        self.steps = check_int(steps, "steps", low=1)
        self.context_frames = check_int(context_frames, "context_frames", low=1)
        self.future_frames = check_int(future_frames, "future_frames", low=1)
        self.temperature = check_real(temperature, "temperature", low=0.0, low_open=True)
        self.mode = check_choice(mode, "mode", MODES)
        if gather is not None and not isinstance(gather, bool):
            raise TypeError(f"gather must be a bool or None, got {type(gather).__name__}")
        self.gather = gather
        self.predictor: nn.Module | nn.ModuleList
        if mode == "autoregressive":
            self.predictor = nn.Linear(dim, dim)
        else:
            self.predictor = nn.ModuleList(nn.Linear(dim, dim) for _ in range(steps))
        self.generator = torch.Generator().manual_seed(int(seed))

    def forward(self, encoder: Encoder, feats: Tensor, lens: Tensor) -> Tensor:
        ctx, fut = crop_context_future(feats, lens, self.context_frames, self.future_frames, self.generator)
        B = feats.shape[0]
        c_h, c_l = encoder(ctx, torch.full((B,), ctx.shape[1], dtype=torch.long, device=feats.device))
        f_h, f_l = encoder(fut, torch.full((B,), fut.shape[1], dtype=torch.long, device=feats.device))
        return cpc_info_nce(
            c_h, c_l, f_h, f_l, self.predictor, self.steps, self.temperature, gather=self.gather
        )

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, steps={self.steps}, context_frames={self.context_frames}, "
            f"future_frames={self.future_frames}, temperature={self.temperature}, mode={self.mode!r}"
        )
