"""CAV-MAE and CAV-MAE Sync: shapes, exact masking, registers dropped, gradients against finite
differences, retrieval/localisation metrics against closed forms, bad input."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.bilevel._asserts import BadInput, assert_rejects
from zoo.models.cav_mae import (
    CAVMAE,
    CAVMAEConfig,
    cav_mae_config,
    ciou_auc,
    clip_similarity,
    frame_segments,
    random_masking,
    recall_at_k,
    segment_starts,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def sync() -> CAVMAE:
    torch.manual_seed(0)
    return CAVMAE(cav_mae_config("sync-micro", registers=2))


def test_tiny_presets_are_one_to_three_million_parameters() -> None:
    for name in ("sync-tiny", "cav-mae-tiny"):
        n = sum(p.numel() for p in CAVMAE(cav_mae_config(name)).parameters())
        assert 1_000_000 <= n <= 3_000_000, (name, n)
    base = cav_mae_config("sync-base")
    assert (base.dim, base.modality_layers, base.audio_patches, base.image_patches, base.registers) == (
        768,
        11,
        208,
        196,
        8,
    )


def test_masking_ratio_is_exact_and_restore_undoes_the_shuffle() -> None:
    x = torch.randn(3, 16, 5)
    kept, mask, restore = random_masking(x, 0.75, _gen())
    assert kept.shape == (3, 4, 5) and mask.sum(1).tolist() == [12.0] * 3
    for b in range(3):  # the kept tokens are exactly the unmasked ones, in shuffled order
        unmasked = x[b, mask[b] == 0]
        assert sorted(map(tuple, unmasked.tolist())) == sorted(map(tuple, kept[b].tolist()))
    assert torch.equal(restore.sort(1).values, torch.arange(16).expand(3, -1))


def test_forward_shapes_and_mask_counts(sync: CAVMAE) -> None:
    c = sync.config
    out = sync(torch.randn(4, c.audio_frames, c.n_mels), torch.rand(4, 3, 32, 32), generator=_gen())
    assert out.audio.shape == (4, c.dim) and out.video.shape == (4, c.dim)
    assert out.mask_audio.sum(1).tolist() == [c.audio_patches - int(c.audio_patches * 0.25)] * 4
    assert out.mask_video.sum(1).tolist() == [c.image_patches - int(c.image_patches * 0.25)] * 4
    expected = out.losses["reconstruction"] + c.contrast_weight * out.losses["contrastive"]
    assert torch.allclose(out.loss, expected, atol=1e-6)
    # frame-aligned pairs (B, T, ...) are flattened to B T pairs
    out2 = sync(torch.randn(2, 3, c.audio_frames, c.n_mels), torch.rand(2, 3, 3, 32, 32), generator=_gen())
    assert out2.audio.shape == (6, c.dim)


def test_registers_are_dropped_and_global_token_kept(sync: CAVMAE) -> None:
    c = sync.config
    h = sync._encode(torch.randn(2, 5, c.dim), "v")
    assert h.shape == (2, 1 + 5, c.dim)  # global token + 5 kept patches, the 2 registers are gone
    e = sync.embed_frames(torch.rand(2, 3, 32, 32))
    assert e.patches.shape == (2, c.image_patches, c.dim) and e.global_.shape == (2, c.dim)
    # the registers influence the patches (they took part in attention), i.e. they were really there
    with torch.no_grad():
        before = sync.embed_frames(torch.ones(1, 3, 32, 32)).patches.clone()
        sync.registers_v.add_(1.0)
        after = sync.embed_frames(torch.ones(1, 3, 32, 32)).patches
        sync.registers_v.sub_(1.0)
    assert not torch.allclose(before, after)


def test_cav_mae_pools_tokens_and_has_no_global_token() -> None:
    m = CAVMAE(cav_mae_config("cav-mae-micro"))
    assert m.global_a is None and m.registers_a is None
    e = m.embed_audio(torch.randn(2, 128, 32))
    assert torch.allclose(e.global_, e.patches.mean(1), atol=1e-6)


@pytest.mark.parametrize("name", ["sync-micro", "cav-mae-micro"])
def test_gradient_matches_finite_differences(name: str) -> None:
    torch.manual_seed(0)
    cfg = cav_mae_config(
        name, global_local=name.startswith("sync"), registers=1 if name.startswith("sync") else 0
    )
    m = CAVMAE(cfg).double()
    audio = torch.randn(3, cfg.audio_frames, cfg.n_mels, dtype=torch.float64)
    frames = torch.rand(3, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    w = m.joint.mlp[0].weight

    def loss(fr: torch.Tensor) -> torch.Tensor:
        return m(audio, fr, generator=_gen(1)).loss

    (g,) = torch.autograd.grad(loss(frames), frames)
    gw = torch.autograd.grad(m(audio, frames, generator=_gen(1)).loss, w)[0]
    d = torch.randn_like(frames)
    eps = 1e-6
    with torch.no_grad():
        fd = (loss(frames + eps * d) - loss(frames - eps * d)) / (2 * eps)
    assert abs(float(fd.detach()) - float((g * d).sum())) <= 1e-6 * max(1.0, abs(float(fd)))
    dw = torch.randn_like(w)
    with torch.no_grad():
        w.add_(eps * dw)
        lp = loss(frames)
        w.sub_(2 * eps * dw)
        lm = loss(frames)
        w.add_(eps * dw)
    assert abs(float((lp - lm) / (2 * eps)) - float((gw * dw).sum())) <= 1e-6 * max(1.0, abs(float(lp)))


def test_segments_are_centred_on_frames() -> None:
    assert segment_starts(126, 4, 32) == [0, 31, 63, 94]  # centres round(15.75)=16, 47, 79, 110
    assert segment_starts(32, 3, 32) == [0, 0, 0]
    feats = torch.arange(126.0)[None, :, None].expand(2, -1, 3)
    segs = frame_segments(feats, 4, 32)
    assert segs.shape == (2, 4, 32, 3) and segs[0, 1, 0, 0] == 31 and segs[0, 3, -1, 0] == 125


def test_diagonal_mean_and_recall_against_loops() -> None:
    g = _gen(3)
    a, v = torch.randn(5, 4, 8, generator=g), torch.randn(5, 4, 8, generator=g)
    s = clip_similarity(a, v)
    cos = torch.nn.functional.cosine_similarity
    for i in range(5):
        for j in range(5):
            want = sum(float(cos(a[i, k], v[j, k], dim=0)) for k in range(4)) / 4
            assert abs(float(s[i, j]) - want) < 1e-5
    assert recall_at_k(torch.eye(7), (1,)) == {1: 1.0}
    sim = torch.eye(4)[[1, 0, 2, 3]] + 0.5 * torch.eye(4)  # rows 0 and 1 rank their match second
    assert recall_at_k(sim, (1, 2)) == {1: 0.5, 2: 1.0}
    assert clip_similarity(a, v, "max").shape == (5, 5)


def test_ciou_of_perfect_and_inverted_maps() -> None:
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, 2:5, 2:5] = True
    perfect = ciou_auc(masks.float(), masks)
    assert perfect["ciou"] == 1.0 and perfect["mean_iou"] == 1.0 and perfect["auc"] == pytest.approx(1.0)
    inverted = ciou_auc((~masks).float(), masks)
    assert inverted["ciou"] == 0.0 and inverted["mean_iou"] == 0.0


def _model() -> CAVMAE:
    return CAVMAE(cav_mae_config("sync-micro"))


M = _model()
A, V = torch.randn(2, 32, 32), torch.rand(2, 3, 32, 32)
CASES = [
    BadInput(
        "frames vs segments",
        lambda: M(torch.randn(2, 3, 32, 32), torch.rand(2, 4, 3, 32, 32)),
        ValueError,
        "segments.*frames",
    ),
    BadInput(
        "audio shorter than a segment",
        lambda: M(torch.randn(2, 20, 32), V),
        ValueError,
        "shorter than one segment",
    ),
    BadInput(
        "clip shorter than a segment",
        lambda: frame_segments(torch.randn(1, 20, 32), 4, 32),
        ValueError,
        "shorter than one segment",
    ),
    BadInput("wrong image size", lambda: M(A, torch.rand(2, 3, 48, 48)), ValueError, "image_size"),
    BadInput("grey images", lambda: M(A, torch.rand(2, 1, 32, 32)), ValueError, "frames"),
    BadInput("empty batch", lambda: M(torch.randn(0, 32, 32), torch.rand(0, 3, 32, 32)), ValueError, "empty"),
    BadInput("batch sizes differ", lambda: M(A, torch.rand(3, 3, 32, 32)), ValueError, "items"),
    BadInput("wrong mel count", lambda: M(torch.randn(2, 32, 40), V), ValueError, "n_mels"),
    BadInput("empty embed batch", lambda: M.embed_frames(torch.rand(0, 3, 32, 32)), ValueError, "empty"),
    BadInput("registers on CAV-MAE", lambda: CAVMAEConfig(sync=False, registers=2), ValueError, "registers"),
    BadInput("patch does not divide", lambda: CAVMAEConfig(image_size=36), ValueError, "image_size"),
    BadInput("bad mask ratio", lambda: CAVMAEConfig(mask_ratio=1.0), ValueError, "mask_ratio"),
    BadInput("bad multi ratio", lambda: CAVMAEConfig(multi_ratio=(0.9, 0.6)), ValueError, "multi_ratio"),
    BadInput("unknown preset", lambda: cav_mae_config("huge"), ValueError, "preset"),
    BadInput(
        "unknown similarity",
        lambda: clip_similarity(torch.randn(2, 1, 3), torch.randn(2, 1, 3), "sum"),
        ValueError,
        "kind",
    ),
    BadInput("non-square similarity", lambda: recall_at_k(torch.randn(2, 3)), ValueError, "similarity"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rejects_bad_input(case: BadInput) -> None:
    assert_rejects(case)


def test_multi_ratio_draws_the_ratio_per_batch() -> None:
    m = CAVMAE(replace(cav_mae_config("sync-micro"), multi_ratio=(0.5, 0.9)))
    counts = {int(m(A, V, generator=_gen(s)).mask_video[0].sum()) for s in range(6)}
    assert len(counts) > 1 and all(8 <= c <= 15 for c in counts)  # 16 patches, ratio in [0.5, 0.9]
