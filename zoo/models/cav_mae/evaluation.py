r"""Zero-shot retrieval, sound-source localisation and linear probes for audio-visual embeddings.

* `clip_similarity()` — CAV-MAE Sync's clip-to-clip similarity over frame-aligned embeddings:
  ``diagonal_mean`` $s_{ij} = \frac1T\sum_k \cos(a_{i,k}, v_{j,k})$ (also ``diagonal_max``, ``mean``,
  ``max`` over all $(k, l)$ pairs);
* `recall_at_k()` — R@k of a similarity matrix whose correct match is the diagonal;
* `localisation_maps()` / `ciou_auc()` — cosine between the audio embedding and each patch token, and
  its cIoU / AUC against the ground-truth mask (as in sound-source-localisation papers, e.g. Chen et al.,
  *Localizing Visual Sounds the Hard Way*, CVPR 2021);
* `linear_probe()` — a multinomial logistic regression on frozen features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.checks import check_choice, check_int, check_real

__all__ = ["SIMILARITIES", "ciou_auc", "clip_similarity", "linear_probe", "localisation_maps", "recall_at_k"]

SIMILARITIES = ("diagonal_mean", "diagonal_max", "mean", "max")


def clip_similarity(audio: Tensor, video: Tensor, kind: str = "diagonal_mean") -> Tensor:
    """Similarity ``(N_a, N_v)`` of clips from per-frame embeddings ``(N, T, D)`` (cosines)."""
    check_choice(kind, "kind", SIMILARITIES)
    if audio.dim() != 3 or video.dim() != 3 or audio.shape[1:] != video.shape[1:]:
        raise ValueError(
            f"audio and video must be (N, T, D) with equal T and D, got {tuple(audio.shape)}, "
            f"{tuple(video.shape)}"
        )
    a, v = F.normalize(audio, dim=-1), F.normalize(video, dim=-1)
    if kind.startswith("diagonal"):
        s = torch.einsum("ikd,jkd->ijk", a, v)
        return s.mean(-1) if kind == "diagonal_mean" else s.amax(-1)
    s = torch.einsum("ikd,jld->ijkl", a, v).flatten(2)
    return s.mean(-1) if kind == "mean" else s.amax(-1)


def recall_at_k(similarity: Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """R@k of query rows: the share whose diagonal match ranks within the top k (ties count against)."""
    if similarity.dim() != 2 or similarity.shape[0] != similarity.shape[1] or similarity.shape[0] == 0:
        raise ValueError(f"similarity must be a non-empty square matrix, got {tuple(similarity.shape)}")
    diag = similarity.diagonal()[:, None]
    rank = (similarity >= diag).sum(dim=1)  # 1 = the match is strictly best
    return {k: float((rank <= check_int(k, "k", low=1)).float().mean()) for k in ks}


def localisation_maps(audio: Tensor, patches: Tensor, size: int) -> Tensor:
    """Cosine of audio embeddings ``(B, D)`` with patch tokens ``(B, N, D)``, upsampled to
    ``(B, size, size)``."""
    b, n, _ = patches.shape
    g = round(n**0.5)
    if g * g != n:
        raise ValueError(f"patches must form a square grid, got {n} tokens")
    cos = torch.einsum("bd,bnd->bn", F.normalize(audio, dim=-1), F.normalize(patches, dim=-1))
    return F.interpolate(cos.reshape(b, 1, g, g), size=(size, size), mode="bilinear", align_corners=False)[
        :, 0
    ]


def ciou_auc(maps: Tensor, masks: Tensor, threshold: float = 0.5, steps: int = 21) -> dict[str, float]:
    """cIoU and AUC of localisation maps ``(B, H, W)`` against boolean masks ``(B, H, W)``.

    Each map is min-max normalised to [0, 1] and binarised at ``threshold``; its IoU with the mask is the
    frame's cIoU. ``ciou`` is the share of frames with IoU >= 0.5 (the papers' cIoU@0.5), ``mean_iou`` the
    mean IoU, and ``auc`` the area under the share of frames with IoU >= t for t in [0, 1].
    """
    check_real(threshold, "threshold", low=0.0, high=1.0)
    if maps.shape != masks.shape or maps.dim() != 3 or maps.shape[0] == 0:
        raise ValueError(
            f"maps and masks must be equal non-empty (B, H, W), got {tuple(maps.shape)}, {tuple(masks.shape)}"
        )
    lo = maps.flatten(1).amin(1)[:, None, None]
    hi = maps.flatten(1).amax(1)[:, None, None]
    pred = (maps - lo) / (hi - lo).clamp_min(1e-12) >= threshold
    m = masks.bool()
    inter = (pred & m).flatten(1).sum(1).float()
    union = (pred | m).flatten(1).sum(1).float().clamp_min(1)
    iou = inter / union
    ts = torch.linspace(0, 1, steps)
    curve = torch.stack([(iou >= t).float().mean() for t in ts])
    return {
        "ciou": float((iou >= 0.5).float().mean()),
        "mean_iou": float(iou.mean()),
        "auc": float(torch.trapezoid(curve, ts)),
    }


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    *,
    classes: int,
    steps: int = 300,
    lr: float = 0.1,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> Tensor:
    """Fit a softmax regression on standardised frozen features (full-batch L-BFGS-free Adam) and return
    the predicted classes of ``test_x``."""
    if train_x.dim() != 2 or train_x.shape[0] != train_y.shape[0] or train_x.shape[0] == 0:
        raise ValueError(f"train_x must be (N, D) with N = len(train_y) > 0, got {tuple(train_x.shape)}")
    if test_x.dim() != 2 or test_x.shape[1] != train_x.shape[1]:
        raise ValueError(f"test_x must be (M, {train_x.shape[1]}), got {tuple(test_x.shape)}")
    mu, sd = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    x, xt = (train_x - mu) / sd, (test_x - mu) / sd
    g = torch.Generator().manual_seed(seed)
    w = (0.01 * torch.randn(x.shape[1], classes, generator=g)).requires_grad_()
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr, weight_decay=weight_decay)
    y = train_y.long()
    with torch.enable_grad():
        for _ in range(check_int(steps, "steps", low=1)):
            opt.zero_grad()
            F.cross_entropy(x.detach() @ w + b, y).backward()
            opt.step()
    with torch.no_grad():
        return (xt @ w + b).argmax(1)
