"""Claims of the joint non-autoregressive STT + TTS model (Sunder et al., arXiv:2501.09104).

The claims of this module share one cached set of training runs (keyed by the budget): the judge
Conformer-CTC (alignments, ASR-WER), then for every seed the joint model on the 40 / 30 / 30 % paired /
speech-only / text-only shares, the same model on the paired share only, and the STT-only and TTS-only
baselines (same size, paired share, equal steps). Learning rates come from a grid judged on dev (seed
0; the quick budget's grid is one point, the same for every method, so it is not scored), the STT
confidence threshold of refinement too; test utterances (voices held out) are used once per verdict. The
quick budget uses the ``en-quick`` corpus, the ``mini`` model and 30 steps per method: the models stay far
from converged, and the verdicts say so.
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass, replace
from typing import Any

import torch

from benchmarks.harness import Budget, Outcome, claim
from benchmarks.plotting import pyplot
from benchmarks.stats import median_ratio_interval, paired_t_interval
from benchmarks.timing import interleave

PAPER = "arXiv 2501.09104"


@dataclass(frozen=True)
class JointBudget(Budget):
    """The shared training runs: corpus, model preset, judge steps, steps per method, seeds, lr grid,
    test utterances scored, refinement steps and the dev grid of STT confidence thresholds."""

    corpus: str = "en-quick"
    model: str = "mini"
    judge_steps: int = 100
    steps: int = 30
    batch: int = 8
    warmup: int = 6
    seeds: int = 3
    lr_grid: tuple[float, ...] = (3e-3,)
    eval_utterances: int = 16
    refine_steps: int = 8
    thresholds: tuple[float, ...] = (0.5, 0.9)


QUICK = JointBudget()
FULL = JointBudget(
    corpus="en",
    model="tiny",
    judge_steps=1500,
    steps=1500,
    batch=16,
    warmup=100,
    lr_grid=(1e-3, 3e-3),
    eval_utterances=0,
)


@functools.cache
def _data(corpus: str, judge_steps: int) -> Any:
    from zoo.recipes.joint_stt_tts import prepare_data

    return prepare_data(corpus, judge_steps=judge_steps)


def _dev_score(method: str, model: Any, data: Any, run: Any) -> float:
    from zoo.recipes.joint_stt_tts import evaluate_stt, evaluate_tts

    s = 0.0
    if "stt" in model.cfg.tasks:
        s += evaluate_stt(model, data, data.dev, 0)
    if "tts" in model.cfg.tasks:
        s += evaluate_tts(model, data, data.dev[:16], 0)["mel_l1"]
    return s


def _best(scores: dict[float, float | None]) -> float:
    """The candidate of lowest dev score (a one-point grid: its only candidate, unscored)."""

    def key(k: float) -> float:
        v = scores[k]
        return float("inf") if v is None else v

    return min(scores, key=key)


@functools.cache
def _runs(b: JointBudget) -> dict[str, Any]:
    from zoo.recipes.joint_stt_tts import METHODS, JointRun, evaluate_stt, evaluate_tts, train_method

    torch.set_num_threads(1)
    data = _data(b.corpus, b.judge_steps)
    test = data.test if b.eval_utterances <= 0 else data.test[: b.eval_utterances]
    base = JointRun(corpus=b.corpus, model=b.model, steps=b.steps, batch_size=b.batch, warmup=b.warmup)
    chosen: dict[str, float] = {}
    search: dict[str, dict[str, float | None]] = {}
    models: dict[tuple[str, int], Any] = {}
    for method in METHODS:
        scores: dict[float, float | None] = {}
        for lr in b.lr_grid:
            st = train_method(data, method, replace(base, lr=lr), b.seed, b.show_progress)
            # a one-point grid chooses nothing: its dev score would be computed for no decision
            scores[lr] = _dev_score(method, st.model, data, base) if len(b.lr_grid) > 1 else None
            if len(b.lr_grid) == 1 or lr == _best(scores):
                models[(method, b.seed)] = st
        chosen[method] = _best(scores)
        search[method] = {str(k): v for k, v in scores.items()}
    per: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    for i in range(b.seeds):
        seed = b.seed + i
        for method in METHODS:
            st = models.get((method, seed)) or train_method(
                data, method, replace(base, lr=chosen[method]), seed, b.show_progress
            )
            if i == 0:
                models[(method, seed)] = st
            m = st.model
            r: dict[str, float] = {"train_seconds": st.seconds}
            if "stt" in m.cfg.tasks:
                r["stt_wer"] = evaluate_stt(m, data, test, 0)
            if "tts" in m.cfg.tasks:
                r.update(evaluate_tts(m, data, test, 0, seed))
            per[method].append(r)
    joint = models[("joint", b.seed)].model
    dev_theta = {str(t): evaluate_stt(joint, data, data.dev, 2, t) for t in b.thresholds}
    theta = float(min(dev_theta, key=dev_theta.__getitem__))
    curves: dict[str, list[float]] = {"stt_wer": [], "mel_l1": [], "mcd_db": [], "asr_wer": []}
    for k in range(b.refine_steps + 1):
        curves["stt_wer"].append(evaluate_stt(joint, data, test, k, theta))
        t = evaluate_tts(joint, data, test, k, b.seed)
        for key in ("mel_l1", "mcd_db", "asr_wer"):
            curves[key].append(t[key])
    return {
        "per_seed": per,
        "lr": chosen,
        "lr_search_dev": search,
        "threshold": theta,
        "threshold_search_dev_wer_K2": dev_theta,
        "refinement": curves,
        "judge_dev_wer": data.judge_wer,
        "n_test": len(test),
        "shares": {k: len(v) for k, v in data.shares.items()},
        "budget": {
            "corpus": b.corpus,
            "model": b.model,
            "steps": b.steps,
            "seeds": b.seeds,
            "batch": b.batch,
        },
    }


def _key(b: JointBudget) -> JointBudget:
    return replace(b, name="", show_progress=False)


def _measure(b: JointBudget) -> dict[str, Any]:
    return _runs(_key(b))


def _diff(d: dict[str, Any], a: str, c: str, metric: str) -> tuple[float, float, float]:
    xs = [x[metric] - y[metric] for x, y in zip(d["per_seed"][a], d["per_seed"][c])]
    return paired_t_interval(xs)


def _limits(d: dict[str, Any]) -> str:
    bb = d["budget"]
    grid = {k: list(v) for k, v in d["lr_search_dev"].items()}
    lr = (
        f"one learning rate for every method ({next(iter(next(iter(grid.values()))))}, the same one-point "
        "grid for all, so nothing is tuned on dev at this budget)"
        if grid and all(len(v) == 1 for v in grid.values())
        else f"lr per method from the dev grid {d['lr_search_dev']}"
    )
    return (
        f"Limits: corpus {bb['corpus']}, model {bb['model']}, {bb['steps']} steps per method, "
        f"batch {bb['batch']}, "
        f"{bb['seeds']} seeds, {d['n_test']} test utterances, judge dev WER {d['judge_dev_wer']:.2f}; {lr}."
    )


def _mean(d: dict[str, Any], method: str, metric: str) -> float:
    return statistics.fmean(r[metric] for r in d["per_seed"][method])


# -- 1. STT: joint vs STT-only ------------------------------------------------------------------------------


def stt_verdict(d: dict[str, Any]) -> Outcome:
    m, lo, hi = _diff(d, "joint", "stt-only", "stt_wer")
    return Outcome(
        holds=hi < 0,
        measured=f"test WER joint {_mean(d, 'joint', 'stt_wer'):.3f} vs STT-only "
        f"{_mean(d, 'stt-only', 'stt_wer'):.3f}; "
        f"difference {m:+.3f} [{lo:+.3f}, {hi:+.3f}]",
        tolerance="95 % paired interval of the WER difference (joint - STT-only) below 0",
        details=d,
        notes=_limits(d) + ("" if hi < 0 else " The joint model does not beat the STT-only baseline here."),
    )


def _bars(d: dict[str, Any], pairs: list[tuple[str, str]], metrics: list[str]) -> Any:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3))
    axes = axes if len(metrics) > 1 else [axes]
    for ax, metric in zip(axes, metrics):
        names = [n for pair in pairs for n in pair if all(metric in r for r in d["per_seed"][n])]
        names = list(dict.fromkeys(names))
        for i, n in enumerate(names):
            ys = [r[metric] for r in d["per_seed"][n]]
            ax.scatter([i] * len(ys), ys, s=14)
            ax.bar(i, statistics.fmean(ys), alpha=0.4)
        ax.set_xticks(range(len(names)), names, fontsize=7)
        ax.set_title(metric, fontsize=9)
    return fig


def stt_figure(d: dict[str, Any]) -> dict[str, Any]:
    return {"stt_wer": _bars(d, [("joint", "stt-only")], ["stt_wer"])}


# -- 2. TTS: joint vs TTS-only ------------------------------------------------------------------------------

TTS_METRICS = ("mel_l1", "mcd_db", "duration_mae_frames", "asr_wer")
#: "Competitive": the joint model's mean is at most this much worse, relative to the TTS-only mean.
TTS_MARGIN = 0.10


def tts_verdict(d: dict[str, Any]) -> Outcome:
    parts, ok = [], True
    rel = {}
    for metric in TTS_METRICS:
        m, lo, hi = _diff(d, "joint", "tts-only", metric)
        ref = _mean(d, "tts-only", metric)
        rel[metric] = hi / max(abs(ref), 1e-9)
        ok &= rel[metric] <= TTS_MARGIN
        parts.append(
            f"{metric} {_mean(d, 'joint', metric):.3f} vs {ref:.3f} (diff {m:+.3f} [{lo:+.3f}, {hi:+.3f}])"
        )
    return Outcome(
        holds=ok,
        measured="joint vs TTS-only: " + "; ".join(parts),
        tolerance=f"competitive: upper end of each metric's 95 % paired interval <= {TTS_MARGIN:.0%} "
        "of the TTS-only mean",
        details={**d, "relative_upper": rel},
        notes=_limits(d)
        + " Mel L1 and MCD under reference durations; ASR-WER by the judge on mels synthesised "
        "with predicted durations."
        + ("" if ok else " The joint model is not competitive on every metric here."),
    )


def tts_figure(d: dict[str, Any]) -> dict[str, Any]:
    return {"tts": _bars(d, [("joint", "tts-only")], list(TTS_METRICS))}


# -- 3. refinement curves -----------------------------------------------------------------------------------


def _stops(curve: list[float], rel: float = 0.005) -> int:
    """The K after which no later step improves the best value so far by more than ``rel`` (relative)."""
    best_k = 0
    for k in range(1, len(curve)):
        if curve[k] < curve[best_k] * (1 - rel):
            best_k = k
    return best_k


def refine_verdict(d: dict[str, Any]) -> Outcome:
    c = d["refinement"]
    stops = {k: _stops(v) for k, v in c.items()}
    gains = {k: v[0] - min(v) for k, v in c.items()}
    holds = gains["stt_wer"] > 0 and gains["mel_l1"] > 0
    return Outcome(
        holds=holds,
        measured="; ".join(
            f"{k}: K=0 {v[0]:.3f}, best {min(v):.3f}, stops helping after K={stops[k]}" for k, v in c.items()
        ),
        tolerance="refinement (K >= 1) lowers both the STT WER and the TTS mel L1 below K = 0",
        details={**d, "stops_helping_after": stops},
        notes=_limits(d) + f" STT threshold theta={d['threshold']} chosen on dev (WER at K=2: "
        f"{d['threshold_search_dev_wer_K2']}). Curves on test, joint model, seed 0.",
    )


def refine_figure(d: dict[str, Any]) -> dict[str, Any]:
    plt = pyplot()
    c = d["refinement"]
    fig, axes = plt.subplots(1, len(c), figsize=(3.3 * len(c), 3))
    for ax, (k, v) in zip(axes, c.items()):
        ax.plot(range(len(v)), v, marker="o")
        ax.set_xlabel("refinement steps K")
        ax.set_title(k, fontsize=9)
    return {"refinement": fig}


# -- 4. unpaired shares -------------------------------------------------------------------------------------


def unpaired_verdict(d: dict[str, Any]) -> Outcome:
    s, slo, shi = _diff(d, "joint", "paired-only", "stt_wer")
    t, tlo, thi = _diff(d, "joint", "paired-only", "mel_l1")
    holds = shi < 0 and thi < 0
    return Outcome(
        holds=holds,
        measured=f"joint - paired-only: STT WER {s:+.3f} [{slo:+.3f}, {shi:+.3f}], "
        f"mel L1 {t:+.3f} [{tlo:+.3f}, {thi:+.3f}]",
        tolerance="both 95 % paired intervals below 0 (equal steps)",
        details=d,
        notes=_limits(d)
        + f" Shares (utterances): {d['shares']}."
        + ("" if holds else " Adding the unpaired shares does not help on both tasks here."),
    )


def unpaired_figure(d: dict[str, Any]) -> dict[str, Any]:
    return {"unpaired": _bars(d, [("joint", "paired-only")], ["stt_wer", "mel_l1"])}


# -- 5. speed -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedBudget(Budget):
    """Utterance lengths in seconds, timed rounds, the joint preset and the characters per second."""

    seconds: tuple[float, ...] = (1.0, 3.0, 9.0)
    repeats: int = 3
    model: str = "tiny"
    chars_per_second: float = 14.0


def speed_measure(b: SpeedBudget) -> dict[str, Any]:
    from zoo.models import build_model
    from zoo.models.joint import JointSTTTTS, MelInverter, joint_config

    torch.set_num_threads(1)
    torch.manual_seed(b.seed)
    V = 30
    joint = JointSTTTTS(joint_config(b.model, vocab_size=V)).eval()
    dota = build_model("dota", "tiny", vocab_size=V + 1).eval()
    with torch.no_grad():
        dota.embed.weight[dota.cfg.sep_id] = (
            0.0  # an untrained DOTA then never stops early: it decodes max_len tokens
        )
    vocoder = MelInverter(n_mels=80)
    g = b.generator()
    rows = []
    for s in b.progress(b.seconds, "lengths"):
        T = int(100 * s)
        U = max(1, int(b.chars_per_second * s))
        feats = torch.randn(1, T, 80, generator=g)
        fl = torch.tensor([T])
        tok = torch.randint(2, V, (1, U), generator=g)
        tl = torch.tensor([U])
        decoded = len(dota.transcribe(feats, fl, max_len=U)[0])
        with torch.no_grad():
            mel = joint(tokens=tok, token_lens=tl).mel_post
        assert mel is not None
        fns = {
            "joint_stt": lambda feats=feats, fl=fl: joint.transcribe(feats, fl),
            "dota_stt": lambda feats=feats, fl=fl, U=U: dota.transcribe(feats, fl, max_len=U),
            "joint_tts": lambda tok=tok, tl=tl: joint(tokens=tok, token_lens=tl),
            "vocoder": lambda mel=mel: vocoder(mel[0]),
        }
        with torch.no_grad():
            t = interleave(fns, repeats=b.repeats, warmup=1)
        audio = mel.shape[1] / 100.0
        rows.append(
            {
                "seconds": s,
                "chars": U,
                "dota_tokens": decoded,
                "rtf_joint_stt": t.median("joint_stt") / s,
                "rtf_dota_stt": t.median("dota_stt") / s,
                "rtf_joint_tts": t.median("joint_tts") / audio,
                "rtf_vocoder": t.median("vocoder") / audio,
                "speedup": t.median_paired_ratio("dota_stt", "joint_stt"),
                "speedup_interval": median_ratio_interval(t.paired_ratios("dota_stt", "joint_stt")),
            }
        )
    params = {
        "joint": sum(p.numel() for p in joint.parameters()),
        "dota": sum(p.numel() for p in dota.parameters()),
    }
    return {"rows": rows, "params": params, "model": b.model}


def speed_verdict(d: dict[str, Any]) -> Outcome:
    last = d["rows"][-1]
    lo, _ = last["speedup_interval"]
    grows = d["rows"][-1]["speedup"] > d["rows"][0]["speedup"]
    return Outcome(
        holds=lo > 1 and grows,
        measured="; ".join(
            f"{r['seconds']:.0f} s: STT RTF joint {r['rtf_joint_stt']:.4f} vs DOTA {r['rtf_dota_stt']:.4f} "
            f"(x{r['speedup']:.1f}), TTS RTF {r['rtf_joint_tts']:.4f}, vocoder RTF {r['rtf_vocoder']:.3f}"
            for r in d["rows"]
        ),
        tolerance="at the longest utterance the speed-up's median-ratio interval lies above 1 and the "
        "speed-up grows with length",
        details=d,
        notes="Untrained weights (speed does not depend on them); DOTA decodes exactly as many tokens "
        "as the "
        f"utterance has characters (its separator embedding zeroed; tokens decoded per length: "
        f"{[r['dota_tokens'] for r in d['rows']]} for {[r['chars'] for r in d['rows']]} characters). "
        f"Parameters: {d['params']}; 1 thread; the vocoder is Griffin-Lim (32 iterations).",
    )


def speed_figure(d: dict[str, Any]) -> dict[str, Any]:
    plt = pyplot()
    fig, (a, c) = plt.subplots(1, 2, figsize=(8, 3))
    xs = [r["seconds"] for r in d["rows"]]
    for k in ("rtf_joint_stt", "rtf_dota_stt", "rtf_joint_tts", "rtf_vocoder"):
        a.plot(xs, [r[k] for r in d["rows"]], marker="o", label=k)
    a.set_xlabel("utterance seconds")
    a.set_ylabel("real-time factor")
    a.set_yscale("log")
    a.legend(fontsize=7)
    c.plot(xs, [r["speedup"] for r in d["rows"]], marker="o")
    c.set_xlabel("utterance seconds")
    c.set_title("STT speed-up over autoregressive DOTA", fontsize=9)
    return {"speed": fig}


_COMMON = "Quick: en-quick, the mini preset and 30 steps per method over 3 seeds (far from converged)."

claim(
    "joint_stt_tts.stt",
    paper=PAPER,
    title="Joint STT + TTS: STT WER on held-out voices vs the STT-only baseline",
    statement="The joint model, trained on paired, speech-only and text-only shares, reaches a lower "
    "test WER on held-out voices than an STT-only model with the same encoder trained on the paired "
    "share for the same steps (paired interval over seeds below 0). " + _COMMON,
    measure=_measure,
    verdict=stt_verdict,
    figure=stt_figure,
    quick=QUICK,
    full=FULL,
)
claim(
    "joint_stt_tts.tts",
    paper=PAPER,
    title="Joint STT + TTS: TTS vs a FastSpeech-style TTS-only baseline",
    statement="The joint model is competitive with the same-size TTS-only model on mel L1, mel-cepstral "
    "distortion, duration error and ASR-WER (each within 10 % of the baseline, paired over seeds). "
    + _COMMON,
    measure=_measure,
    verdict=tts_verdict,
    figure=tts_figure,
    quick=QUICK,
    full=FULL,
)
claim(
    "joint_stt_tts.refinement",
    paper=PAPER,
    title="Joint STT + TTS: iterative refinement, K = 0..8",
    statement="Confidence-guided STT refinement and progressive-unmasking TTS refinement improve STT WER "
    "and TTS mel L1 over K = 0; the curves say where refinement stops helping. " + _COMMON,
    measure=_measure,
    verdict=refine_verdict,
    figure=refine_figure,
    quick=QUICK,
    full=FULL,
)
claim(
    "joint_stt_tts.unpaired",
    paper=PAPER,
    title="Joint STT + TTS: unpaired shares vs the paired share alone",
    statement="Adding the speech-only and text-only shares lowers both the STT WER and the TTS mel L1 "
    "against training the same model on the paired share alone at equal steps. " + _COMMON,
    measure=_measure,
    verdict=unpaired_verdict,
    figure=unpaired_figure,
    quick=QUICK,
    full=FULL,
)
claim(
    "joint_stt_tts.speed",
    paper=PAPER,
    title="Joint STT + TTS: real-time factors and the speed-up over autoregressive STT",
    statement="Non-autoregressive STT of the joint model is faster than the zoo's autoregressive DOTA, and "
    "the speed-up grows with the utterance length; TTS mel generation and the Griffin-Lim vocoder are "
    "reported separately.",
    measure=speed_measure,
    verdict=speed_verdict,
    figure=speed_figure,
    quick=SpeedBudget(),
    full=SpeedBudget(seconds=(1.0, 2.0, 4.0, 8.0, 16.0), repeats=11),
)
