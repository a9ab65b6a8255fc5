r"""CAV-MAE (Gong et al., ICLR 2023) and CAV-MAE Sync (Araujo et al., CVPR 2025, arXiv 2505.01237).

Both are masked autoencoders over two modalities with a contrastive term:

* an audio encoder on log-mel patches and a frame encoder on image patches (fixed 2-D sin-cos positions,
  learned modality embeddings, ``modality_layers`` ViT blocks each), then **one shared joint block** applied
  with modality-specific LayerNorms (joint / audio-only / video-only);
* 75 % random masking of both modalities; a joint decoder reconstructs the masked patches,
  $L_r = L_r^a + L_r^v$ with $L_r^m = \sum_i M_i\,\overline{(\hat y_i - y_i)^2} / \sum_i M_i$ (optionally on
  per-patch normalised targets);
* InfoNCE at temperature $\tau$ = 0.05 on L2-normalised audio and video embeddings,
  $L = L_r + \lambda_c L_c$.

CAV-MAE pools the audio-only and video-only joint outputs by their mean, and pairs one audio *clip* with
one frame. **Sync** pairs each frame with the audio *segment* centred on it, prepends a learnable **global
token** per modality that alone carries $L_c$ (the reconstruction path drops it), and appends **register
tokens** after masking that are dropped after the modality encoders; options: ``global_local``
($L_c = \tfrac12(L_c^{global} + L_c^{mean})$) and ``multi_ratio`` masking.

Examples:
    >>> import torch
    >>> from zoo.models.cav_mae import CAVMAE, cav_mae_config
    >>> model = CAVMAE(cav_mae_config("sync-micro"))
    >>> gen = torch.Generator().manual_seed(0)
    >>> out = model(torch.randn(2, 32, 32), torch.rand(2, 3, 32, 32), generator=gen)
    >>> sorted(out.losses)
    ['contrastive', 'reconstruction', 'reconstruction_audio', 'reconstruction_video']
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.losses import info_nce
from zoo.models.cav_mae.config import CAVMAEConfig

__all__ = ["CAVMAE", "CAVMAEOutput", "Embeddings", "random_masking", "sincos_2d"]


def sincos_2d(dim: int, rows: int, cols: int) -> Tensor:
    """Fixed 2-D sin-cos positional embeddings ``(rows * cols, dim)`` (MAE's), ``dim`` divisible by 4."""
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4 for 2-D sin-cos embeddings, got {dim}")
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    r, c = torch.meshgrid(
        torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64), indexing="ij"
    )
    out = [f(x.reshape(-1, 1) * omega) for x in (r, c) for f in (torch.sin, torch.cos)]
    return torch.cat(out, dim=1).float()


def random_masking(
    x: Tensor, ratio: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Keep a random ``int(N (1 - ratio))`` tokens of every row of ``x`` ``(B, N, D)``.

    Returns ``(kept (B, K, D), mask (B, N) with 1 = masked, restore (B, N))`` where ``restore`` undoes the
    shuffle.
    """
    b, n, d = x.shape
    keep = int(n * (1 - ratio))
    noise = torch.rand(b, n, generator=generator, device=x.device)
    shuffle = noise.argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    kept = torch.gather(x, 1, shuffle[:, :keep, None].expand(-1, -1, d))
    mask = torch.ones(b, n, device=x.device, dtype=x.dtype)
    mask[:, :keep] = 0
    return kept, torch.gather(mask, 1, restore), restore


class _Block(nn.Module):
    """Pre-LN ViT block; ``norms`` selects one of several LayerNorm pairs (the joint block's modalities)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, norms: tuple[str, ...] = ("x",)) -> None:
        super().__init__()
        self.norm1 = nn.ModuleDict({k: nn.LayerNorm(dim) for k in norms})
        self.norm2 = nn.ModuleDict({k: nn.LayerNorm(dim) for k in norms})
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, which: str = "x") -> Tensor:
        h = self.norm1[which](x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2[which](x))


@dataclass
class CAVMAEOutput:
    """What a training forward pass returns.

    Attributes:
        loss: $L_r + \\lambda_c L_c$.
        losses: ``reconstruction`` ($L_r$), ``reconstruction_audio``, ``reconstruction_video``,
            ``contrastive`` ($L_c$), each a scalar tensor in the graph.
        audio, video: the contrastive embeddings ``(B, D)``.
        mask_audio, mask_video: ``(B, N)`` masks (1 = masked) of the patches.
    """

    loss: Tensor
    losses: dict[str, Tensor]
    audio: Tensor
    video: Tensor
    mask_audio: Tensor
    mask_video: Tensor


@dataclass
class Embeddings:
    """Unmasked embeddings of one modality: ``global_`` ``(B, D)`` and the patch tokens ``(B, N, D)``."""

    global_: Tensor
    patches: Tensor


class CAVMAE(nn.Module):
    """CAV-MAE or CAV-MAE Sync (``config.sync``); see the module docstring for the math.

    Inputs: ``audio`` ``(B, audio_frames, n_mels)`` log-mels (a segment for Sync, the whole clip for
    CAV-MAE) and ``frames`` ``(B, 3, image_size, image_size)``; or frame-aligned pairs ``(B, T, L, F)`` and
    ``(B, T, 3, H, W)`` (flattened into ``B T`` pairs).
    """

    pos_a: Tensor
    pos_v: Tensor
    dec_pos_a: Tensor
    dec_pos_v: Tensor

    def __init__(self, config: CAVMAEConfig) -> None:
        super().__init__()
        if not isinstance(config, CAVMAEConfig):
            raise TypeError(f"config must be a CAVMAEConfig, got {type(config).__name__}")
        c = self.config = config
        p, d = c.patch, c.dim
        self.patch_a = nn.Conv2d(1, d, p, stride=p)
        self.patch_v = nn.Conv2d(3, d, p, stride=p)
        self.register_buffer("pos_a", sincos_2d(d, c.n_mels // p, c.audio_frames // p), persistent=False)
        self.register_buffer("pos_v", sincos_2d(d, c.image_size // p, c.image_size // p), persistent=False)
        self.modality_a = nn.Parameter(torch.zeros(1, 1, d))
        self.modality_v = nn.Parameter(torch.zeros(1, 1, d))
        self.global_a = nn.Parameter(torch.zeros(1, 1, d)) if c.sync else None
        self.global_v = nn.Parameter(torch.zeros(1, 1, d)) if c.sync else None
        self.registers_a = nn.Parameter(torch.zeros(1, c.registers, d)) if c.registers else None
        self.registers_v = nn.Parameter(torch.zeros(1, c.registers, d)) if c.registers else None
        self.blocks_a = nn.ModuleList(_Block(d, c.heads, c.mlp_ratio) for _ in range(c.modality_layers))
        self.blocks_v = nn.ModuleList(_Block(d, c.heads, c.mlp_ratio) for _ in range(c.modality_layers))
        self.joint = _Block(d, c.heads, c.mlp_ratio, norms=("joint", "a", "v"))
        self.norm = nn.LayerNorm(d)
        self.norm_a = nn.LayerNorm(d)
        self.norm_v = nn.LayerNorm(d)
        e = c.decoder_dim
        self.decoder_embed = nn.Linear(d, e)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, e))
        self.register_buffer("dec_pos_a", sincos_2d(e, c.n_mels // p, c.audio_frames // p), persistent=False)
        self.register_buffer(
            "dec_pos_v", sincos_2d(e, c.image_size // p, c.image_size // p), persistent=False
        )
        self.dec_modality_a = nn.Parameter(torch.zeros(1, 1, e))
        self.dec_modality_v = nn.Parameter(torch.zeros(1, 1, e))
        self.decoder = nn.ModuleList(_Block(e, c.decoder_heads, c.mlp_ratio) for _ in range(c.decoder_layers))
        self.decoder_norm = nn.LayerNorm(e)
        self.head_a = nn.Linear(e, p * p)
        self.head_v = nn.Linear(e, p * p * 3)
        for prm in (
            self.modality_a,
            self.modality_v,
            self.global_a,
            self.global_v,
            self.registers_a,
            self.registers_v,
            self.mask_token,
            self.dec_modality_a,
            self.dec_modality_v,
        ):
            if prm is not None:
                nn.init.normal_(prm, std=0.02)

    # ------------------------------------------------------------------ inputs
    def _check(self, audio: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        if not isinstance(audio, Tensor) or not isinstance(frames, Tensor):
            raise TypeError("audio and frames must be tensors")
        if audio.dim() == 4 and frames.dim() == 5:
            if audio.shape[:2] != frames.shape[:2]:
                raise ValueError(
                    f"audio has {audio.shape[1]} segments per clip but frames has {frames.shape[1]} frames; "
                    "every frame needs its segment (audio (B, T, L, F), frames (B, T, 3, H, W))"
                )
            audio, frames = audio.flatten(0, 1), frames.flatten(0, 1)
        if audio.dim() != 3:
            raise ValueError(
                f"audio must be (B, audio_frames, n_mels) log-mels, got shape {tuple(audio.shape)}"
            )
        if frames.dim() != 4:
            raise ValueError(f"frames must be (B, 3, H, W) images, got shape {tuple(frames.shape)}")
        if audio.shape[0] == 0 or frames.shape[0] == 0:
            raise ValueError("audio and frames must not be an empty batch")
        if audio.shape[0] != frames.shape[0]:
            raise ValueError(f"audio has {audio.shape[0]} items but frames has {frames.shape[0]}")
        self.check_audio(audio)
        self.check_frames(frames)
        return audio, frames

    def check_audio(self, audio: Tensor) -> None:
        """Raise unless ``audio`` is ``(B >= 1, audio_frames, n_mels)``."""
        c = self.config
        if audio.dim() != 3 or audio.shape[0] == 0:
            raise ValueError(
                f"audio must be a non-empty (B, audio_frames, n_mels) batch, got {tuple(audio.shape)}"
            )
        if audio.shape[1] < c.audio_frames:
            raise ValueError(
                f"audio has {audio.shape[1]} log-mel frames, shorter than one segment (audio_frames="
                f"{c.audio_frames})"
            )
        if audio.shape[1] != c.audio_frames or audio.shape[2] != c.n_mels:
            raise ValueError(
                f"audio must be (B, audio_frames={c.audio_frames}, n_mels={c.n_mels}), "
                f"got {tuple(audio.shape)}"
            )

    def check_frames(self, frames: Tensor) -> None:
        """Raise unless ``frames`` is ``(B >= 1, 3, image_size, image_size)``."""
        s = self.config.image_size
        if frames.dim() != 4 or frames.shape[0] == 0:
            raise ValueError(f"frames must be a non-empty (B, 3, H, W) batch, got {tuple(frames.shape)}")
        if tuple(frames.shape[1:]) != (3, s, s):
            raise ValueError(
                f"frames must be (B, 3, {s}, {s}) images (image_size={s}), got {tuple(frames.shape)}"
            )

    # ------------------------------------------------------------------ pieces
    def _tokens(self, audio: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        a = self.patch_a(audio.transpose(1, 2).unsqueeze(1)).flatten(2).transpose(1, 2)
        v = self.patch_v(frames).flatten(2).transpose(1, 2)
        return a + self.pos_a + self.modality_a, v + self.pos_v + self.modality_v

    def _encode(self, x: Tensor, modality: str) -> Tensor:
        """Modality encoder: [global | tokens | registers] → blocks → registers dropped."""
        glob = self.global_a if modality == "a" else self.global_v
        regs = self.registers_a if modality == "a" else self.registers_v
        blocks = self.blocks_a if modality == "a" else self.blocks_v
        b = x.shape[0]
        parts = ([glob.expand(b, -1, -1)] if glob is not None else []) + [x]
        if regs is not None:
            parts.append(regs.expand(b, -1, -1))
        h = torch.cat(parts, dim=1)
        for blk in blocks:
            h = blk(h)
        return h[:, : h.shape[1] - regs.shape[1]] if regs is not None else h

    def _contrastive_tokens(self, h: Tensor, modality: str) -> tuple[Tensor, Tensor]:
        """(global embedding, patch tokens) after the joint block with the modality's LayerNorms."""
        out = self.joint(h, modality)
        out = (self.norm_a if modality == "a" else self.norm_v)(out)
        if self.config.sync:
            return out[:, 0], out[:, 1:]
        return out.mean(dim=1), out

    def _patchify_targets(self, audio: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        p = self.config.patch
        ta = F.unfold(audio.transpose(1, 2).unsqueeze(1), p, stride=p).transpose(1, 2)
        tv = F.unfold(frames, p, stride=p).transpose(1, 2)
        if self.config.norm_pix_loss:
            ta = (ta - ta.mean(-1, keepdim=True)) / (ta.var(-1, keepdim=True) + 1e-6).sqrt()
            tv = (tv - tv.mean(-1, keepdim=True)) / (tv.var(-1, keepdim=True) + 1e-6).sqrt()
        return ta, tv

    def _contrast(self, a: Tensor, v: Tensor) -> Tensor:
        tau = self.config.temperature
        if self.config.bidirectional:
            return 0.5 * (info_nce(a, v, tau) + info_nce(v, a, tau))
        return info_nce(v, a, tau)

    # ------------------------------------------------------------------ API
    def forward(
        self,
        audio: Tensor,
        frames: Tensor,
        *,
        generator: torch.Generator | None = None,
        mask_ratio: float | None = None,
    ) -> CAVMAEOutput:
        """Masked reconstruction and contrastive losses of a batch of (audio, frame) pairs."""
        audio, frames = self._check(audio, frames)
        c = self.config
        if mask_ratio is None:
            if c.multi_ratio is not None:
                lo, hi = c.multi_ratio
                mask_ratio = lo + (hi - lo) * float(torch.rand((), generator=generator))
            else:
                mask_ratio = c.mask_ratio
        a, v = self._tokens(audio, frames)
        a_kept, mask_a, restore_a = random_masking(a, mask_ratio, generator)
        v_kept, mask_v, restore_v = random_masking(v, mask_ratio, generator)
        ha, hv = self._encode(a_kept, "a"), self._encode(v_kept, "v")
        g = 1 if c.sync else 0
        # reconstruction path (global tokens dropped)
        ka, kv = ha.shape[1] - g, hv.shape[1] - g
        x = self.norm(self.joint(torch.cat([ha[:, g:], hv[:, g:]], dim=1), "joint"))
        x = self.decoder_embed(x)
        b = x.shape[0]
        na, nv = a.shape[1], v.shape[1]
        xa = torch.cat([x[:, :ka], self.mask_token.expand(b, na - ka, -1)], dim=1)
        xv = torch.cat([x[:, ka:], self.mask_token.expand(b, nv - kv, -1)], dim=1)
        xa = torch.gather(xa, 1, restore_a[..., None].expand(-1, -1, xa.shape[2]))
        xv = torch.gather(xv, 1, restore_v[..., None].expand(-1, -1, xv.shape[2]))
        y = torch.cat(
            [xa + self.dec_pos_a + self.dec_modality_a, xv + self.dec_pos_v + self.dec_modality_v], 1
        )
        for blk in self.decoder:
            y = blk(y)
        y = self.decoder_norm(y)
        pred_a, pred_v = self.head_a(y[:, :na]), self.head_v(y[:, na:])
        ta, tv = self._patchify_targets(audio, frames)
        rec_a = (((pred_a - ta) ** 2).mean(-1) * mask_a).sum() / mask_a.sum().clamp_min(1)
        rec_v = (((pred_v - tv) ** 2).mean(-1) * mask_v).sum() / mask_v.sum().clamp_min(1)
        # contrastive path
        ga, pa = self._contrastive_tokens(ha, "a")
        gv, pv = self._contrastive_tokens(hv, "v")
        lc = self._contrast(ga, gv)
        if c.global_local:
            lc = 0.5 * (lc + self._contrast(pa.mean(1), pv.mean(1)))
        rec = rec_a + rec_v
        losses = {
            "reconstruction": rec,
            "reconstruction_audio": rec_a,
            "reconstruction_video": rec_v,
            "contrastive": lc,
        }
        return CAVMAEOutput(rec + c.contrast_weight * lc, losses, ga, gv, mask_a, mask_v)

    def embed_audio(self, audio: Tensor) -> Embeddings:
        """Unmasked audio embeddings (the global token for Sync, the mean of the tokens for CAV-MAE)."""
        if not isinstance(audio, Tensor):
            raise TypeError("audio must be a tensor")
        self.check_audio(audio)
        a = self.patch_a(audio.transpose(1, 2).unsqueeze(1)).flatten(2).transpose(1, 2)
        g, p = self._contrastive_tokens(self._encode(a + self.pos_a + self.modality_a, "a"), "a")
        return Embeddings(g, p)

    def embed_frames(self, frames: Tensor) -> Embeddings:
        """Unmasked frame embeddings and patch tokens ``(B, (H/p)^2, D)`` (localisation maps)."""
        if not isinstance(frames, Tensor):
            raise TypeError("frames must be a tensor")
        self.check_frames(frames)
        v = self.patch_v(frames).flatten(2).transpose(1, 2)
        g, p = self._contrastive_tokens(self._encode(v + self.pos_v + self.modality_v, "v"), "v")
        return Embeddings(g, p)
