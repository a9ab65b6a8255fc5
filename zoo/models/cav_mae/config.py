"""Typed configurations of CAV-MAE and CAV-MAE Sync, with named presets."""

from __future__ import annotations

from dataclasses import dataclass, replace

from zoo.checks import check_int, check_real

__all__ = ["CAV_MAE_PRESETS", "CAVMAEConfig", "cav_mae_config"]


@dataclass(frozen=True)
class CAVMAEConfig:
    """Sizes and options of a CAV-MAE (``sync=False``) or CAV-MAE Sync (``sync=True``) model.

    Attributes:
        sync: CAV-MAE Sync (an audio segment per frame, global tokens for the contrastive loss); off:
            the CAV-MAE baseline (one audio clip for all frames, mean-pooled tokens).
        dim, heads, mlp_ratio: width, attention heads and MLP expansion of the encoders.
        modality_layers: modality-specific Transformer layers per modality (one shared joint layer
            follows, with modality-specific LayerNorms).
        decoder_dim, decoder_layers, decoder_heads: the joint reconstruction decoder.
        patch: square patch size of log-mel and image patches.
        n_mels: log-mel bands of the audio input.
        audio_frames: log-mel frames of one audio input (a segment for Sync, the whole clip for CAV-MAE).
        image_size: frame height and width.
        registers: register tokens per modality (appended after masking, dropped after the modality
            encoders; Sync only).
        mask_ratio: share of patches masked in both modalities.
        multi_ratio: draw the mask ratio per batch uniformly in this range instead (Sync's multi-ratio
            masking).
        temperature: InfoNCE temperature τ.
        contrast_weight: λ_c in L = L_r + λ_c L_c.
        norm_pix_loss: reconstruct per-patch normalised targets.
        global_local: L_c = ½ (L_c(global tokens) + L_c(mean-pooled patches)) (Sync only).
        bidirectional: average the audio→video and video→audio InfoNCE (off: video queries only, the
            released code's default).

    Examples:
        >>> from zoo.models.cav_mae import cav_mae_config
        >>> cfg = cav_mae_config("sync-tiny")
        >>> cfg.audio_patches, cfg.image_patches, cfg.registers
        (16, 16, 2)
    """

    sync: bool = True
    dim: int = 128
    heads: int = 4
    mlp_ratio: float = 4.0
    modality_layers: int = 3
    decoder_dim: int = 64
    decoder_layers: int = 2
    decoder_heads: int = 4
    patch: int = 8
    n_mels: int = 32
    audio_frames: int = 32
    image_size: int = 32
    registers: int = 2
    mask_ratio: float = 0.75
    multi_ratio: tuple[float, float] | None = None
    temperature: float = 0.05
    contrast_weight: float = 0.1
    norm_pix_loss: bool = True
    global_local: bool = False
    bidirectional: bool = True

    def __post_init__(self) -> None:
        for name in (
            "dim",
            "heads",
            "modality_layers",
            "decoder_dim",
            "decoder_layers",
            "decoder_heads",
            "patch",
        ):
            check_int(getattr(self, name), name, low=1)
        check_int(self.registers, "registers", low=0)
        if self.dim % self.heads or self.decoder_dim % self.decoder_heads:
            raise ValueError("dim must be divisible by heads and decoder_dim by decoder_heads")
        for name in ("n_mels", "audio_frames", "image_size"):
            v = check_int(getattr(self, name), name, low=self.patch)
            if v % self.patch:
                raise ValueError(f"{name} ({v}) must be a multiple of patch ({self.patch})")
        check_real(self.mask_ratio, "mask_ratio", low=0.0, high=1.0, high_open=True)
        if self.multi_ratio is not None:
            lo, hi = self.multi_ratio
            if not 0.0 <= lo <= hi < 1.0:
                raise ValueError(
                    f"multi_ratio must be (lo, hi) with 0 <= lo <= hi < 1, got {self.multi_ratio}"
                )
        check_real(self.temperature, "temperature", low=0.0, low_open=True)
        check_real(self.contrast_weight, "contrast_weight", low=0.0)
        if not self.sync and (self.registers or self.global_local):
            raise ValueError("registers and global_local are CAV-MAE Sync options (sync=True)")

    @property
    def audio_patches(self) -> int:
        return (self.n_mels // self.patch) * (self.audio_frames // self.patch)

    @property
    def image_patches(self) -> int:
        return (self.image_size // self.patch) ** 2


_SYNC_TINY = CAVMAEConfig()
_SYNC_BASE = CAVMAEConfig(
    dim=768,
    heads=12,
    modality_layers=11,
    decoder_dim=512,
    decoder_layers=8,
    decoder_heads=16,
    patch=16,
    n_mels=128,
    audio_frames=416,
    image_size=224,
    registers=8,
    contrast_weight=0.01,
)

#: Named configurations: ``tiny`` (≈ 1.5 M parameters, 32-mel × 32-frame segments, 32² frames),
#: ``micro`` (tests) and the papers' ViT-B sizes (``base``: 416-frame segments, 224² frames, 8 registers).
CAV_MAE_PRESETS: dict[str, CAVMAEConfig] = {
    "sync-micro": replace(
        _SYNC_TINY,
        dim=32,
        heads=2,
        modality_layers=1,
        decoder_dim=16,
        decoder_layers=1,
        decoder_heads=2,
        registers=1,
    ),
    "sync-tiny": _SYNC_TINY,
    "sync-base": _SYNC_BASE,
    "cav-mae-micro": CAVMAEConfig(
        sync=False,
        dim=32,
        heads=2,
        modality_layers=1,
        decoder_dim=16,
        decoder_layers=1,
        decoder_heads=2,
        registers=0,
        audio_frames=128,
    ),
    "cav-mae-tiny": replace(_SYNC_TINY, sync=False, registers=0, audio_frames=128),
    "cav-mae-base": replace(_SYNC_BASE, sync=False, registers=0, audio_frames=1024),
}


def cav_mae_config(name: str, **overrides: object) -> CAVMAEConfig:
    """The preset ``name`` of `CAV_MAE_PRESETS` with fields overridden."""
    if name not in CAV_MAE_PRESETS:
        raise ValueError(f"unknown CAV-MAE preset {name!r}; expected one of {', '.join(CAV_MAE_PRESETS)}")
    return replace(CAV_MAE_PRESETS[name], **overrides)  # type: ignore[arg-type]
