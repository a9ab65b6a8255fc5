"""``python -m zoo.recipes cav_mae``: CAV-MAE against CAV-MAE Sync (with and without registers) and a
multi-objective CAV-MAE, on the generated audio-visual corpus.

Every arm trains on the zoo's one loop ([`zoo.training.Trainer`][zoo.training.Trainer]) with the same data,
steps, batch size and optimiser. A step draws one frame per clip (the paper's training scheme) and pairs it
with the audio segment centred on it (Sync) or with the whole clip (CAV-MAE). The ``moo`` arm is CAV-MAE
whose encoder gradient is [`bilevel.moo.backward()`][bilevel.moo.backward] of $(L_r, \\lambda_c L_c)$ with
MGDA or CAGrad and layer selection ([`bilevel.moo.LayerSelection`][bilevel.moo.LayerSelection]). Every
``cosine_every`` steps the per-layer cosine between $\\nabla L_r$ and $\\nabla L_c$ is recorded
([`bilevel.moo.layer_scores()`][bilevel.moo.layer_scores]).

Writes to ``--out``: ``results.json``, ``table.md`` (retrieval R@1/5/10 both ways, localisation cIoU/AUC,
linear-probe accuracy, the trivial baselines), ``cosines.png``, ``localisation.png`` (test frames, maps
and ground truth) and ``report.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from bilevel.moo import MGDA, CAGrad, LayerSelection, backward, layer_scores
from zoo.checks import check_choice, check_int, check_real
from zoo.data.av import AVCorpus, build_av_corpus
from zoo.models.cav_mae import (
    CAVMAE,
    CAVMAEConfig,
    cav_mae_config,
    ciou_auc,
    clip_similarity,
    fit_frames,
    frame_segments,
    linear_probe,
    localisation_maps,
    recall_at_k,
)
from zoo.training import (
    Batches,
    Budget,
    Trainer,
    TrainState,
    WarmupCosine,
    parse_recipe,
    recipe_parser,
)

__all__ = [
    "ARMS",
    "PRESETS",
    "ArmResult",
    "CAVMAERun",
    "CAVMAEStep",
    "arm_config",
    "cav_mae_state",
    "encoder_layers",
    "evaluate_arm",
    "main",
    "pair_inputs",
    "parser",
    "run_arm",
    "trivial_baselines",
]

ARMS = ("cav_mae", "sync", "sync_noreg", "moo")
"""``cav_mae``: the baseline; ``sync``: CAV-MAE Sync with registers; ``sync_noreg``: without registers;
``moo``: CAV-MAE trained with MGDA/CAGrad and layer selection on $(L_r, \\lambda_c L_c)$."""


@dataclass(frozen=True)
class CAVMAERun:
    """A ``python -m zoo.recipes cav_mae`` run.

    Attributes:
        corpus: audio-visual corpus preset (av-tiny, av-quick, av-standard).
        size: model size (micro, tiny, base).
        arms: arms to train at equal steps.
        seeds: seeds (initialisation, batch order, masks).
        steps: optimizer steps per arm.
        batch_size: clips per batch (one frame each).
        lr: peak AdamW learning rate.
        warmup: linear warm-up steps.
        contrast_weight: λ_c.
        aggregator: the moo arm's aggregator.
        cosine_every: steps between per-layer gradient-cosine measurements (0: never).
        probe_clips: training clips used to fit the linear probes.
        out: output folder.
    """

    corpus: str = "av-quick"
    size: str = field(default="micro", metadata={"choices": ("micro", "tiny", "base")})
    arms: tuple[str, ...] = field(default=ARMS, metadata={"choices": ARMS})
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 150
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 15
    contrast_weight: float = 0.1
    aggregator: str = field(default="mgda", metadata={"choices": ("mgda", "cagrad")})
    cosine_every: int = 10
    probe_clips: int = 300
    out: str = "results/cav_mae"

    def __post_init__(self) -> None:
        for a in self.arms:
            check_choice(a, "arms", ARMS)
        check_int(self.steps, "steps", low=1)
        check_int(self.batch_size, "batch_size", low=1)
        check_real(self.lr, "lr", low=0.0, low_open=True)
        check_int(self.cosine_every, "cosine_every", low=0)
        if not self.seeds:
            raise ValueError("seeds must not be empty")


#: Named scales; every option overrides its preset's value.
PRESETS: dict[str, CAVMAERun] = {
    "quick": CAVMAERun(),
    "standard": CAVMAERun(
        corpus="av-standard", size="tiny", steps=2000, batch_size=48, warmup=100, probe_clips=2000
    ),
}


def arm_config(arm: str, size: str = "micro", contrast_weight: float = 0.1) -> CAVMAEConfig:
    """The model config of an arm at a size."""
    check_choice(arm, "arm", ARMS)
    if arm in ("cav_mae", "moo"):
        return cav_mae_config(f"cav-mae-{size}", contrast_weight=contrast_weight)
    cfg = cav_mae_config(f"sync-{size}", contrast_weight=contrast_weight)
    return replace(cfg, registers=0) if arm == "sync_noreg" else cfg


def encoder_layers(model: CAVMAE) -> tuple[list[str], list[list[nn.Parameter]]]:
    """The shared encoder's layers (patch embeddings, every modality block, the joint block), in depth
    order, with their names: where $L_r$ and $L_c$ meet."""
    names, groups = [], []
    for mod in ("a", "v"):
        names.append(f"patch_{mod}")
        groups.append(list(getattr(model, f"patch_{mod}").parameters()))
        for i, blk in enumerate(getattr(model, f"blocks_{mod}")):
            names.append(f"blocks_{mod}.{i}")
            groups.append(list(blk.parameters()))
    names.append("joint")
    groups.append(list(model.joint.parameters()))
    return names, groups


def pair_inputs(
    model: CAVMAE, feats: Tensor, frames: Tensor, idx: Tensor, k: Tensor
) -> tuple[Tensor, Tensor]:
    """(audio, frame) pairs of clips ``idx`` at frames ``k``: the frame's segment (Sync) or the clip."""
    c = model.config
    clip = feats[idx]
    if c.sync:
        segs = frame_segments(clip, frames.shape[1], c.audio_frames)
        audio = segs[torch.arange(len(idx)), k]
    else:
        audio = fit_frames(clip, c.audio_frames)
    return audio, frames[idx, k]


def gradient_cosines(model: CAVMAE, losses: dict[str, Tensor]) -> list[float]:
    """Per-layer cosine of $\\nabla L_r$ and $\\nabla L_c$ on `encoder_layers()` (bilevel.moo's scores)."""
    _, groups = encoder_layers(model)
    flat = [p for g in groups for p in g]
    gr = torch.autograd.grad(losses["reconstruction"], flat, retain_graph=True, allow_unused=True)
    gc = torch.autograd.grad(losses["contrastive"], flat, retain_graph=True, allow_unused=True)
    grams, i = [], 0
    for g in groups:
        r = torch.cat(
            [(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(gr[i : i + len(g)], g)]
        )
        c = torch.cat(
            [(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(gc[i : i + len(g)], g)]
        )
        i += len(g)
        grams.append(torch.stack([torch.stack([r @ r, r @ c]), torch.stack([c @ r, c @ c])]))
    return layer_scores(torch.stack(grams).double()).tolist()


class CAVMAEStep:
    """Step function: one frame per clip, forward, backward (plain, or multi-objective for the moo arm),
    clip, ``optimizer.step()``. Records the per-layer gradient cosines every ``cosine_every`` steps."""

    def __init__(
        self,
        feats: Tensor,
        frames: Tensor,
        *,
        moo: str | None = None,
        cosine_every: int = 0,
        grad_clip: float = 1.0,
    ) -> None:
        self.feats, self.frames, self.cosine_every, self.grad_clip = feats, frames, cosine_every, grad_clip
        self.aggregator = None if moo is None else (MGDA() if moo == "mgda" else CAGrad(0.4))
        self.selection: LayerSelection | None = None

    def __call__(self, state: TrainState, batch: Tensor) -> dict[str, Any]:
        model, opt = state.model, state.optimizers["model"]
        assert isinstance(model, CAVMAE)
        g = state.generator
        k = torch.randint(self.frames.shape[1], (len(batch),), generator=g)
        audio, frames = pair_inputs(model, self.feats, self.frames, batch, k)
        out = model(audio, frames, generator=g)
        if not bool(torch.isfinite(out.loss.detach())):
            raise FloatingPointError(f"non-finite loss at step {state.step}")
        stats: dict[str, Any] = {k2: float(v.detach()) for k2, v in out.losses.items()}
        if self.cosine_every and state.step % self.cosine_every == 0:
            stats["cosines"] = gradient_cosines(model, out.losses)
        opt.zero_grad(set_to_none=True)
        if self.aggregator is None:
            out.loss.backward()
        else:
            _, groups = encoder_layers(model)
            if self.selection is None:
                self.selection = LayerSelection(layers=groups, rescore_every=10)
            lc = model.config.contrast_weight * out.losses["contrastive"]
            res = backward(
                [out.losses["reconstruction"], lc],
                [p for gr in groups for p in gr],
                self.aggregator,
                selection=self.selection,
            )
            stats["moo_weight_contrastive"] = float(res.weights[1])
            stats["moo_selected"] = len(res.selected or [])
        stats["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip))
        stats["lr"] = float(opt.param_groups[0]["lr"])
        opt.step()
        stats["loss"] = float(out.loss.detach())
        return stats


def cav_mae_state(model: CAVMAE, n_clips: int, run: CAVMAERun, seed: int) -> TrainState:
    """The run's state: AdamW (β = 0.95, 0.999 as in CAV-MAE), warm-up + cosine, shuffled clip batches."""
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=(0.95, 0.999), weight_decay=5e-7)
    data = Batches.shuffled(
        list(range(n_clips)), run.batch_size, torch.tensor, seed=seed, lengths=[1] * n_clips, pool_batches=1
    )
    return TrainState(
        modules={"model": model},
        optimizers={"model": opt},
        data=data,
        schedulers={"model": WarmupCosine(opt, run.steps, run.warmup, 0.05)},
        generator=torch.Generator().manual_seed(seed),
    )


@dataclass
class ArmResult:
    """One trained arm's test numbers and training record."""

    arm: str
    seed: int
    steps: int
    seconds: float
    clips_per_second: float
    params: int
    retrieval: dict[str, float]
    localisation: dict[str, float]
    probe_accuracy: float
    cosines: list[list[float]]
    cosine_steps: list[int]
    layer_names: list[str]
    history: list[dict[str, float]]


def _embeddings(model: CAVMAE, feats: Tensor, frames: Tensor, batch: int = 256) -> dict[str, Tensor]:
    """Per-frame audio and video global embeddings ``(N, T, D)`` and video patch tokens ``(N, T, P, D)``."""
    c, t = model.config, frames.shape[1]
    a_out, v_out, p_out = [], [], []
    with torch.no_grad():
        for s in range(0, len(feats), batch):
            clip, fr = feats[s : s + batch], frames[s : s + batch]
            n = len(clip)
            if c.sync:
                segs = frame_segments(clip, t, c.audio_frames).flatten(0, 1)
                a = model.embed_audio(segs).global_.reshape(n, t, -1)
            else:
                a = model.embed_audio(fit_frames(clip, c.audio_frames)).global_[:, None].expand(n, t, -1)
            e = model.embed_frames(fr.flatten(0, 1))
            a_out.append(a)
            v_out.append(e.global_.reshape(n, t, -1))
            p_out.append(e.patches.reshape(n, t, e.patches.shape[1], -1))
    return {"audio": torch.cat(a_out), "video": torch.cat(v_out), "patches": torch.cat(p_out)}


def evaluate_arm(model: CAVMAE, corpus: AVCorpus, probe_clips: int = 300) -> dict[str, Any]:
    """Test-split retrieval (diagonal_mean), localisation on sounding frames, and a linear probe of the
    sounding class on [audio, video] global embeddings (fitted on training clips)."""
    model.eval()
    test = corpus.splits["test"]
    emb = _embeddings(model, corpus.features("test"), test.images())
    sim = clip_similarity(emb["audio"], emb["video"], "diagonal_mean")
    a2v, v2a = recall_at_k(sim), recall_at_k(sim.T)
    retrieval = {f"a2v_r{k}": a2v[k] for k in a2v} | {f"v2a_r{k}": v2a[k] for k in v2a}
    lab = torch.from_numpy(test.labels).long()
    on = lab >= 0
    size = corpus.config.image_size
    maps = localisation_maps(emb["audio"][on], emb["patches"][on], size)
    loc = ciou_auc(maps, torch.from_numpy(test.masks)[on])
    train = corpus.splits["train"]
    n = min(probe_clips, len(train))
    tr = _embeddings(model, corpus.features("train")[:n], train.images()[:n])
    ytr = torch.from_numpy(train.labels[:n]).long()
    xtr = torch.cat([tr["audio"], tr["video"]], -1)[ytr >= 0]
    xte = torch.cat([emb["audio"], emb["video"]], -1)[on]
    pred = linear_probe(xtr, ytr[ytr >= 0], xte, classes=corpus.config.classes)
    model.train()
    return {
        "retrieval": retrieval,
        "localisation": loc,
        "probe_accuracy": float((pred == lab[on]).float().mean()),
        "maps": maps,
        "sounding": on,
    }


def run_arm(
    corpus: AVCorpus,
    arm: str,
    seed: int,
    run: CAVMAERun,
    *,
    progress: bool = False,
    run_dir: str | Path | None = None,
) -> tuple[ArmResult, CAVMAE]:
    """Train one arm with one seed for ``run.steps`` steps and evaluate it."""
    torch.manual_seed(seed)
    model = CAVMAE(arm_config(arm, run.size, run.contrast_weight))
    train = corpus.splits["train"]
    state = cav_mae_state(model, len(train), run, seed)
    step = CAVMAEStep(
        corpus.features("train"),
        train.images(),
        moo=run.aggregator if arm == "moo" else None,
        cosine_every=run.cosine_every,
    )
    trainer = Trainer(
        state,
        step,
        Budget(steps=run.steps),
        run_dir=run_dir,
        progress=progress,
        desc=f"{arm} seed {seed}",
        meta={"arm": arm, "seed": seed, "run": asdict(run)},
    )
    t0 = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - t0
    ev = evaluate_arm(model, corpus, run.probe_clips)
    rows = [h for h in state.history if "cosines" in h]
    names, _ = encoder_layers(model)
    hist = [{k: float(v) for k, v in h.items() if isinstance(v, (int, float))} for h in state.history]
    return (
        ArmResult(
            arm,
            seed,
            run.steps,
            seconds,
            run.steps * run.batch_size / seconds,
            sum(p.numel() for p in model.parameters()),
            ev["retrieval"],
            ev["localisation"],
            ev["probe_accuracy"],
            [h["cosines"] for h in rows],
            [int(h["step"]) for h in rows],
            names,
            hist,
        ),
        model,
    )


def trivial_baselines(corpus: AVCorpus) -> dict[str, Any]:
    """Models that key on one pixel's colour or one log-mel bin (the best one on the validation split, by
    nearest-class-mean accuracy, searched over every third pixel and every bin).

    Each predicts the per-frame class (silence included) with a linear probe on its single feature; the
    retrieval baseline embeds every frame as the one-hot of both predictions (``diagonal_mean``).
    """
    cfg = corpus.config
    k = cfg.classes + 1

    def pixel(split: str, y: int, x: int) -> Tensor:
        return torch.from_numpy(corpus.splits[split].frames[:, :, y, x, :]).float().flatten(0, 1)

    seg_means = {
        s: frame_segments(corpus.features(s), cfg.frames, 32).mean(2) for s in ("train", "val", "test")
    }

    def mel_bin(split: str, b: int) -> Tensor:  # a bin's mean over the frame's 32-frame segment
        return seg_means[split][..., b].reshape(-1, 1)

    def labels(split: str) -> Tensor:
        return torch.from_numpy(corpus.splits[split].labels).long().flatten() + 1

    ytr, yva, yte = labels("train"), labels("val"), labels("test")

    def centroid_accuracy(xtr: Tensor, xva: Tensor) -> float:  # the cheap search criterion
        means = torch.stack([xtr[ytr == c].mean(0) if (ytr == c).any() else xtr.mean(0) for c in range(k)])
        return float((torch.cdist(xva, means).argmin(1) == yva).float().mean())

    pixels = [(y, x) for y in range(1, cfg.image_size, 3) for x in range(1, cfg.image_size, 3)]
    px_acc = [centroid_accuracy(pixel("train", y, x), pixel("val", y, x)) for y, x in pixels]
    best_px, best_acc = pixels[max(range(len(pixels)), key=px_acc.__getitem__)], max(px_acc)
    bin_acc = [centroid_accuracy(mel_bin("train", b), mel_bin("val", b)) for b in range(cfg.n_mels)]
    best_bin, best_bacc = max(range(cfg.n_mels), key=bin_acc.__getitem__), max(bin_acc)
    pv = linear_probe(pixel("train", *best_px), ytr, pixel("test", *best_px), classes=k)
    pa = linear_probe(mel_bin("train", best_bin), ytr, mel_bin("test", best_bin), classes=k)
    on = yte > 0
    n, t = len(corpus.splits["test"]), cfg.frames
    oa = torch.nn.functional.one_hot(pa, k).float().reshape(n, t, k)
    ov = torch.nn.functional.one_hot(pv, k).float().reshape(n, t, k)
    sim = clip_similarity(oa + 1e-3, ov + 1e-3)
    a2v, v2a = recall_at_k(sim), recall_at_k(sim.T)
    return {
        "pixel": list(best_px),
        "pixel_val_accuracy": best_acc,
        "mel_bin": best_bin,
        "bin_val_accuracy": best_bacc,
        "pixel_accuracy": float((pv[on] == yte[on]).float().mean()),
        "bin_accuracy": float((pa[on] == yte[on]).float().mean()),
        "retrieval": {f"a2v_r{k2}": a2v[k2] for k2 in a2v} | {f"v2a_r{k2}": v2a[k2] for k2 in v2a},
    }


# ---------------------------------------------------------------------------------------------- report
def results_table(results: list[ArmResult]) -> str:
    """Markdown table: mean ± sd over seeds of every arm's test numbers."""
    keys = ["a2v_r1", "a2v_r5", "a2v_r10", "v2a_r1", "v2a_r5", "v2a_r10"]
    lines = [
        "| arm | seeds | " + " | ".join(keys) + " | cIoU | AUC | probe acc | clips/s |",
        "|---" * (len(keys) + 6) + "|",
    ]
    for arm in ARMS:
        rs = [r for r in results if r.arm == arm]
        if not rs:
            continue

        def ms(xs: list[float]) -> str:
            return f"{100 * statistics.fmean(xs):.1f}" + (
                f" ± {100 * statistics.stdev(xs):.1f}" if len(xs) > 1 else ""
            )

        cells = [ms([r.retrieval[k] for r in rs]) for k in keys]
        cells += [
            ms([r.localisation["ciou"] for r in rs]),
            ms([r.localisation["auc"] for r in rs]),
            ms([r.probe_accuracy for r in rs]),
            f"{statistics.fmean(r.clips_per_second for r in rs):.0f}",
        ]
        lines.append(f"| {arm} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_cosines(results: list[ArmResult]) -> Any:
    """Per-layer cosine of ∇L_r and ∇L_c over training, one panel per arm (first seed)."""
    shown = [r for r in results if r.cosines and r.seed == results[0].seed]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(4 * max(1, len(shown)), 3.2), squeeze=False)
    for ax, r in zip(axes[0], shown):
        cos = torch.tensor(r.cosines)
        for j, name in enumerate(r.layer_names):
            ax.plot(r.cosine_steps, cos[:, j].tolist(), label=name, lw=1)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(r.arm)
        ax.set_xlabel("step")
        ax.set_ylabel("cos(∇L_r, ∇L_c)")
    axes[0][0].legend(fontsize=6)
    return fig


def plot_localisation(frames: Tensor, maps: Tensor, masks: Tensor, title: str, n: int = 6) -> Any:
    """Test frames, their localisation maps and the ground-truth masks (rows)."""
    n = min(n, len(frames))
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5), squeeze=False)
    for i in range(n):
        axes[0][i].imshow(frames[i].permute(1, 2, 0).numpy())
        axes[1][i].imshow(maps[i].numpy(), cmap="inferno")
        axes[2][i].imshow(masks[i].numpy(), cmap="gray")
        for r in range(3):
            axes[r][i].axis("off")
    axes[0][0].set_title(title, fontsize=8, loc="left")
    return fig


def write_report(
    results: list[ArmResult],
    trivial: dict[str, Any] | None,
    run: CAVMAERun,
    out: Path,
    examples: dict[str, Any] | None = None,
) -> None:
    """(Re)write results.json, table.md, the figures and report.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"run": asdict(run), "arms": [asdict(r) for r in results], "trivial": trivial}, indent=1)
    )
    table = results_table(results)
    (out / "table.md").write_text(table + "\n")
    lines = [
        "# CAV-MAE vs CAV-MAE Sync on the generated audio-visual corpus",
        "",
        f"Run: `{asdict(run)}`",
        "",
        "Test split, percentages, mean ± sd over seeds:",
        "",
        table,
        "",
    ]
    if trivial:
        lines += [
            f"Trivial baselines: one pixel {trivial['pixel']} → class accuracy "
            f"{100 * trivial['pixel_accuracy']:.1f} %; one log-mel bin {trivial['mel_bin']} → "
            f"{100 * trivial['bin_accuracy']:.1f} %; retrieval A→V R@5 "
            f"{100 * trivial['retrieval']['a2v_r5']:.1f} %.",
            "",
        ]
    if any(r.cosines for r in results):
        fig = plot_cosines(results)
        fig.tight_layout()
        fig.savefig(out / "cosines.png", dpi=110)
        plt.close(fig)
        lines += ["## Gradient cosines between L_r and L_c", "", "![cosines](cosines.png)", ""]
    if examples:
        fig = plot_localisation(**examples)
        fig.tight_layout()
        fig.savefig(out / "localisation.png", dpi=110)
        plt.close(fig)
        lines += ["## Localisation (frame / map / ground truth)", "", "![localisation](localisation.png)", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def parser(preset: str = "quick") -> argparse.ArgumentParser:
    """The command line, with the defaults of ``PRESETS[preset]``."""
    return recipe_parser("python -m zoo.recipes cav_mae", CAVMAERun, PRESETS, preset, description=__doc__)


def main(argv: list[str] | None = None) -> int:
    """Build the corpus, train every arm for every seed, write the tables and figures."""
    run, args = parse_recipe(parser, CAVMAERun, PRESETS, argv)
    out = Path(run.out)
    corpus = build_av_corpus(run.corpus, progress=not args.quiet)
    trivial = trivial_baselines(corpus)
    results: list[ArmResult] = []
    examples = None
    for seed in run.seeds:
        for arm in run.arms:
            r, model = run_arm(
                corpus, arm, seed, run, progress=not args.quiet, run_dir=out / f"{arm}-seed{seed}"
            )
            results.append(r)
            if arm == "sync" and examples is None:
                ev = evaluate_arm(model, corpus, run.probe_clips)
                test = corpus.splits["test"]
                on = ev["sounding"]
                examples = {
                    "frames": test.images()[on][:6],
                    "maps": ev["maps"][:6],
                    "masks": torch.from_numpy(test.masks)[on][:6],
                    "title": "CAV-MAE Sync",
                }
            if not args.quiet:
                print(
                    f"{arm} seed {seed}: A→V R@5 {100 * r.retrieval['a2v_r5']:.1f} %, cIoU "
                    f"{100 * r.localisation['ciou']:.1f} %, probe {100 * r.probe_accuracy:.1f} %",
                    flush=True,
                )
            write_report(results, trivial, run, out, examples)
    print(f"report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
