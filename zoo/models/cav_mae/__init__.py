"""CAV-MAE and CAV-MAE Sync: audio-visual masked autoencoders with contrastive learning, and their
retrieval, localisation and linear-probe evaluation."""

from zoo.models.cav_mae.config import CAV_MAE_PRESETS, CAVMAEConfig, cav_mae_config
from zoo.models.cav_mae.evaluation import (
    SIMILARITIES,
    ciou_auc,
    clip_similarity,
    linear_probe,
    localisation_maps,
    recall_at_k,
)
from zoo.models.cav_mae.model import CAVMAE, CAVMAEOutput, Embeddings, random_masking, sincos_2d
from zoo.models.cav_mae.segments import fit_frames, frame_segments, segment_starts

__all__ = [
    "CAVMAE",
    "CAV_MAE_PRESETS",
    "SIMILARITIES",
    "CAVMAEConfig",
    "CAVMAEOutput",
    "Embeddings",
    "cav_mae_config",
    "ciou_auc",
    "clip_similarity",
    "fit_frames",
    "frame_segments",
    "linear_probe",
    "localisation_maps",
    "random_masking",
    "recall_at_k",
    "segment_starts",
    "sincos_2d",
]
