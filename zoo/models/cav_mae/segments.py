"""Audio segments aligned to video frames (CAV-MAE Sync's ``map_frame_to_spectrogram``)."""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.checks import check_int

__all__ = ["fit_frames", "frame_segments", "segment_starts"]


def segment_starts(num_feature_frames: int, num_frames: int, length: int) -> list[int]:
    """First log-mel frame of the segment of every video frame.

    Frame $k$ sits at the centre of its slot, so its segment is centred on $c_k = \\mathrm{round}((k +
    \\tfrac12) S / T)$: ``start = max(0, c_k - L // 2)``, shifted left when it would run past the end.

    Raises:
        ValueError: the audio is shorter than one segment, or counts are not positive.
    """
    check_int(num_frames, "num_frames", low=1)
    check_int(length, "length", low=1)
    check_int(num_feature_frames, "num_feature_frames", low=1)
    if num_feature_frames < length:
        raise ValueError(
            f"audio has {num_feature_frames} log-mel frames, shorter than one segment of length={length}"
        )
    out = []
    for k in range(num_frames):
        centre = round((k + 0.5) * num_feature_frames / num_frames)
        start = max(0, centre - length // 2)
        out.append(min(start, num_feature_frames - length))
    return out


def frame_segments(feats: Tensor, num_frames: int, length: int) -> Tensor:
    """Cut clip features ``(B, S, F)`` into ``(B, num_frames, length, F)`` frame-aligned segments."""
    if not isinstance(feats, Tensor) or feats.dim() != 3:
        raise ValueError(f"feats must be a (B, S, F) tensor, got {getattr(feats, 'shape', type(feats))}")
    starts = segment_starts(feats.shape[1], num_frames, length)
    return torch.stack([feats[:, s : s + length] for s in starts], dim=1)


def fit_frames(feats: Tensor, length: int) -> Tensor:
    """Crop or zero-pad clip features ``(B, S, F)`` to ``length`` frames (CAV-MAE's whole-clip input)."""
    if not isinstance(feats, Tensor) or feats.dim() != 3:
        raise ValueError(f"feats must be a (B, S, F) tensor, got {getattr(feats, 'shape', type(feats))}")
    check_int(length, "length", low=1)
    s = feats.shape[1]
    if s >= length:
        return feats[:, :length]
    return torch.nn.functional.pad(feats, (0, 0, 0, length - s))
