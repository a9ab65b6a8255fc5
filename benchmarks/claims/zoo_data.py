"""Claims about the generated corpus (issue 5): it is learnable, held-out voices generalise, it is fast.

* ``zoo_data.english_ctc`` — a small BiLSTM-CTC trained on the English labelled set reaches a WER well
  below 50 % on held-out voices.
* ``zoo_data.throughput`` — the generator renders many times faster than real time (hours of audio per
  second recorded); draws one spectrogram per language with its transcript.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.harness import Context, Outcome, claim


def _english_config(full: bool):  # type: ignore[no-untyped-def]
    from zoo.data import CorpusConfig

    return CorpusConfig(
        name="claim-en-full" if full else "claim-en",
        n_utterances=3000 if full else 900,
        languages=("en",),
        split_weights=(0.75, 0.0, 0.05, 0.2),
        shard_size=100,
    )


@claim(
    "zoo_data.english_ctc",
    title="A small BiLSTM-CTC learns the English corpus and generalises to held-out voices",
    statement="""A 2-layer bidirectional LSTM (≈ 0.7 M parameters) with a character CTC output, trained on
    the English labelled set of the generated corpus (log-mel 40 × 3 stacked frames, AdamW, greedy
    decoding), reaches a word error rate well below 50 % on the test set, whose eSpeak voices never occur
    in training. Quick: ≈ 20 min of training audio, 450 steps of 8 utterances; --full: ≈ 65 min of
    training audio, 2500 steps.""",
    issue=5,
)
def english_ctc(ctx: Context) -> Outcome:
    import torch
    from torch import nn

    from zoo.data import (
        CharTokenizer,
        LengthBucketBatchSampler,
        LogMel,
        SpeechDataset,
        build_corpus,
        collate,
        default_dir,
        stack_frames,
        utterance_cmvn,
    )
    from zoo.metrics import cer, wer

    torch.set_num_threads(1)
    cfg = _english_config(ctx.full)
    t0 = time.perf_counter()
    root = build_corpus(cfg, out=default_dir(cfg, ctx.seed), seed=ctx.seed, progress=ctx.show_progress)
    build_s = time.perf_counter() - t0
    tok = CharTokenizer.from_corpus(root)
    mel = LogMel(n_mels=40)
    stack = 3

    def feats(w: torch.Tensor) -> torch.Tensor:
        return stack_frames(utterance_cmvn(mel(w)), stack)

    train = SpeechDataset(root, "labelled", tok, feats).precompute()
    test = SpeechDataset(root, "test", tok, feats).precompute()
    train_voices = {u.voice for u in train.utterances}
    test_voices = {u.voice for u in test.utterances}
    assert not train_voices & test_voices, "test voices leaked into training"

    class BiLSTMCTC(nn.Module):
        def __init__(self, d_in: int, n_out: int, hidden: int = 128, layers: int = 2) -> None:
            super().__init__()
            self.lstm = nn.LSTM(d_in, hidden, layers, batch_first=True, bidirectional=True)
            self.out = nn.Linear(2 * hidden, n_out)

        def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
            packed = nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
            y, _ = self.lstm(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
            return self.out(y).log_softmax(-1)

    torch.manual_seed(ctx.seed)
    model = BiLSTMCTC(40 * stack, tok.vocab_size)
    n_params = sum(p.numel() for p in model.parameters())
    total_steps = 2500 if ctx.full else 450
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    # constant learning rate after a short warm-up (in the quick run the model is still learning fast at
    # the end, and a decay only slows it down)
    warm = 20
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    ctc = nn.CTCLoss(blank=tok.blank_id, zero_infinity=True)
    sampler = LengthBucketBatchSampler(train.lengths, batch_size=8, seed=ctx.seed, bucket_batches=8)

    def greedy(lp: torch.Tensor, n: int) -> str:
        ids = lp[:n].argmax(-1).tolist()
        out, prev = [], -1
        for i in ids:
            if i != prev and i != tok.blank_id:
                out.append(i)
            prev = i
        return " ".join(tok.decode(out).split())

    def evaluate(ds: SpeechDataset) -> tuple[float, float, list[tuple[str, str]], dict[str, float]]:
        model.eval()
        refs, hyps, chans = [], [], []
        with torch.no_grad():
            for b in LengthBucketBatchSampler(ds.lengths, batch_size=32, shuffle=False):
                batch = collate([ds[i] for i in b])
                lp = model(batch["feats"], batch["feat_lens"])
                hyps += [greedy(lp[k], int(n)) for k, n in enumerate(batch["feat_lens"])]
                refs += batch["texts"]
                chans += [d.split(":")[3] for d in batch["domains"]]
        model.train()
        by_channel = {
            c: wer([r for r, k in zip(refs, chans) if k == c], [h for h, k in zip(hyps, chans) if k == c])
            for c in sorted(set(chans))
        }
        return wer(refs, hyps), cer(refs, hyps), list(zip(refs, hyps)), by_channel

    curve: list[tuple[int, float, float]] = []
    t_train = time.perf_counter()
    step, epoch = 0, 0
    bar = ctx.progress(range(total_steps), desc="train")
    while step < total_steps:
        sampler.set_epoch(epoch)
        for b in sampler:
            batch = collate([train[i] for i in b])
            lp = model(batch["feats"], batch["feat_lens"])
            loss = ctc(lp.transpose(0, 1), batch["tokens"], batch["feat_lens"], batch["token_lens"])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            next(bar, None)
            if step % 10 == 0:
                curve.append((step, time.perf_counter() - t_train, float(loss.detach())))
            if step >= total_steps:
                break
        epoch += 1
    train_s = time.perf_counter() - t_train
    test_wer, test_cer, pairs, wer_by_channel = evaluate(test)

    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [3, 2]})
    ax.plot([c[0] for c in curve], [c[2] for c in curve])
    ax.set_xlabel("step")
    ax.set_ylabel("CTC loss (training batch)")
    ax.set_title("BiLSTM-CTC, English labelled set", fontsize=10)
    ax.grid(alpha=0.3)
    names = list(wer_by_channel)
    bx.bar(names, [100 * wer_by_channel[c] for c in names], color="tab:orange")
    bx.axhline(100 * test_wer, color="k", ls="--", lw=1, label=f"all: {100 * test_wer:.1f}%")
    bx.axhline(50, color="tab:red", ls=":", lw=1, label="claim: 50%")
    bx.set_ylabel("test WER (%)")
    bx.set_title("held-out voices, by channel", fontsize=10)
    bx.legend(fontsize=8)
    ctx.save_figure(fig, "loss")
    hours_train = sum(u.duration for u in train.utterances) / 3600
    return Outcome(
        holds=test_wer < 0.5,
        measured=f"test WER {100 * test_wer:.1f}% (CER {100 * test_cer:.1f}%) on {len(test)} utterances",
        tolerance="WER < 50%",
        details={
            "test_wer": test_wer,
            "test_wer_by_channel": wer_by_channel,
            "test_cer": test_cer,
            "train_utterances": len(train),
            "train_hours": hours_train,
            "test_utterances": len(test),
            "params": n_params,
            "steps": step,
            "epochs": epoch,
            "train_seconds": train_s,
            "build_seconds": build_s,
            "train_voices": sorted(train_voices),
            "test_voices": sorted(test_voices),
            "examples": pairs[:10],
            "loss_curve": curve,
        },
        notes=(
            f"{n_params / 1e6:.2f} M parameters, {step} steps ({epoch} epochs) in {train_s:.0f} s "
            f"on one thread; {len(train)} training utterances ({60 * hours_train:.1f} min) from "
            f"{len(train_voices)} voices; test voices {', '.join(sorted(test_voices))}. The corpus is cached "
            f"in the default data directory (build took {build_s:.1f} s this run). Examples (ref → hyp): "
            + "; ".join(f"'{r}' → '{h}'" for r, h in pairs[:4])
        ),
    )


@claim(
    "zoo_data.throughput",
    title="The corpus generator runs far faster than real time",
    statement="""Building a fresh corpus (eSpeak NG synthesis, resampling, perturbations, channel, FLAC
    writing) renders at least 50 s of audio per second of worker CPU time (measured with
    `time.process_time` inside the worker, so that other jobs on a shared machine do not count); the
    wall-clock rate with one worker, process start-up included, is recorded in hours of audio per second.
    --full also builds the ≈ 1 h `small` preset on 2 workers within 5 minutes. The figure shows one
    utterance per language with its transcript and translation.""",
    issue=5,
)
def throughput(ctx: Context) -> Outcome:
    import numpy as np

    from zoo.data import LANGUAGES, CorpusConfig, LogMel, build_corpus, load_audio, load_stats, read_manifest

    details: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = CorpusConfig(name="throughput", n_utterances=150, shard_size=50)
        t0 = time.perf_counter()
        root = build_corpus(cfg, out=Path(tmp) / "c", seed=ctx.seed, workers=1, progress=ctx.show_progress)
        wall = time.perf_counter() - t0
        utts = read_manifest(root)
        audio_s = sum(u.duration for u in utts)
        st = load_stats(root)["build"]
        rtf = audio_s / wall
        details.update(
            one_worker_wall_s=wall,
            audio_s=audio_s,
            realtime_factor_wall=rtf,
            audio_hours_per_second=audio_s / 3600 / wall,
            worker_cpu_s=st["cpu_seconds"],
            realtime_factor_per_cpu_second=audio_s / st["cpu_seconds"],
        )
        # one spectrogram per language
        import matplotlib.pyplot as plt
        import torch

        mel = LogMel(n_mels=80)
        fig, axes = plt.subplots(len(LANGUAGES), 1, figsize=(8, 1.7 * len(LANGUAGES)))
        for ax, lang in zip(axes, LANGUAGES):
            mine = [x for x in utts if x.language == lang]
            u = next((x for x in mine if x.channel == "clean" and x.kind != "number"), mine[0])
            spec = mel(torch.from_numpy(load_audio(u.path))).T.numpy()
            ax.imshow(
                spec,
                origin="lower",
                aspect="auto",
                cmap="magma",
                extent=(0, u.duration, 0, 80),
                vmin=np.percentile(spec, 5),
            )
            ax.set_title(
                f"[{lang}] {u.transcript}  →  {u.translation}   ({u.voice}, {u.rate_class})", fontsize=8
            )
            ax.set_ylabel("mel")
        axes[-1].set_xlabel("seconds")
        ctx.save_figure(fig, "spectrograms")
    cpu_rtf = audio_s / st["cpu_seconds"]
    holds = cpu_rtf >= 50
    notes = (
        f"One worker: {audio_s:.0f} s of audio in {wall:.1f} s wall ({rtf:.0f}× real time, "
        f"{audio_s / 3600 / wall:.4f} h of audio per second); inside the worker "
        f"{audio_s / st['cpu_seconds']:.0f}× real time per CPU second. The machine is shared, so wall time "
        "is an upper bound."
    )
    if ctx.full:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            root = build_corpus(
                "small", out=Path(tmp) / "s", seed=ctx.seed, workers=2, progress=ctx.show_progress
            )
            small_wall = time.perf_counter() - t0
            small_h = load_stats(root)["hours"]
        details.update(small_wall_s=small_wall, small_hours=small_h)
        holds = holds and small_wall < 300
        notes += f" `small` ({small_h:.2f} h) built in {small_wall:.0f} s on 2 workers."
    return Outcome(
        holds=holds,
        measured=f"{cpu_rtf:.0f}× real time per worker CPU second; wall, 1 worker: {rtf:.0f}× "
        f"({audio_s / 3600 / wall:.4f} h audio/s)",
        tolerance=">= 50× per CPU second" + ("; small < 300 s on 2 workers" if ctx.full else ""),
        details=details,
        notes=notes,
    )
