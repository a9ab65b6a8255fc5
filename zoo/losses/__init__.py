"""Self-supervised losses for the lower level of BL-JUST-style recipes (CPC/InfoNCE, masked prediction).

Each loss is a module that owns its head and is called as ``loss(encoder, feats, lens)``, where
``encoder`` maps ``(feats (B, T, F), lens (B,))`` to ``(hidden (B, T', D), hidden_lens (B,))``.
"""

from zoo.losses.contrastive import (
    MODES,
    CPCLoss,
    Encoder,
    cpc_info_nce,
    crop_context_future,
    gather_rows,
    info_nce,
    rollout,
)
from zoo.losses.masked import MaskedPredictionLoss, fold_frames, masked_reconstruction_loss, span_mask

__all__ = [
    "MODES",
    "CPCLoss",
    "Encoder",
    "MaskedPredictionLoss",
    "cpc_info_nce",
    "crop_context_future",
    "fold_frames",
    "gather_rows",
    "info_nce",
    "masked_reconstruction_loss",
    "rollout",
    "span_mask",
]
