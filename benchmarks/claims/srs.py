"""Soft random sampling: coverage, occupancy, cover time, convergence on digits, the SGD bound against
measured gradient norms, and the speed of the sampler and of the occupancy law.

Each claim is measure → verdict → figure (see `benchmarks.harness`).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks.harness import Budget, Outcome, claim
from benchmarks.plotting import pyplot
from benchmarks.timing import interleave, time_once
from bilevel.sampling import (
    FixedSubsetSampler,
    FreshSubsetSampler,
    ShuffledSampler,
    SoftRandomSampler,
    draw_count,
    k_center_greedy,
)
from bilevel.theory import srs


def _unique_counts(sampler: Any, epochs: int, n: int) -> np.ndarray:
    return np.array(
        [int((torch.bincount(sampler.indices(e), minlength=n) > 0).sum()) for e in range(epochs)], dtype=float
    )


# ---------------------------------------------------------------------------------------- 1. per epoch
@dataclass(frozen=True)
class UniqueBudget(Budget):
    epochs: int = 80
    sizes: tuple[int, ...] = (100, 1000, 10_000)
    ratios: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


def unique_fraction_measure(b: UniqueBudget) -> dict[str, Any]:
    epochs, ratios = b.epochs, list(b.ratios)
    worst_z, rows, per_n = 0.0, [], {}
    for j, N in enumerate(b.progress(list(b.sizes), "N")):
        mc_mean, mc_se, dup = [], [], []
        for i, s in enumerate(ratios):
            u = _unique_counts(SoftRandomSampler(N, s, generator=b.seed + 1000 * j + i), epochs, N)
            n = draw_count(N, s)
            mu, var = float(srs.expected_unique(N, s)), float(srs.unique_variance(N, s))
            se = math.sqrt(var / epochs)
            z = abs(u.mean() - mu) / se if se > 0 else abs(u.mean() - mu) * 1e12
            worst_z = max(worst_z, z)
            mc_mean.append(u.mean() / N)
            mc_se.append(u.std(ddof=1) / math.sqrt(epochs) / N)
            dup.append(1 - u.mean() / n)
            rows.append({"N": N, "s": s, "mc": u.mean() / N, "theory": mu / N, "z": z})
        per_n[N] = {"mc_mean": mc_mean, "mc_se": mc_se, "dup": dup}
    return {"rows": rows, "epochs": epochs, "worst_z": worst_z, "ratios": ratios, "per_n": per_n}


def unique_fraction_verdict(d: dict[str, Any]) -> Outcome:
    return Outcome(
        holds=d["worst_z"] < 4.0,
        measured=f"max |MC − theory| = {d['worst_z']:.2f} SE over {len(d['rows'])} (N, s) points, "
        f"{d['epochs']} epochs each",
        tolerance="< 4 SE everywhere",
        details={"rows": d["rows"], "epochs": d["epochs"]},
        notes="Points: sampler means ± 2 SE; lines: `expected_unique_fraction`, `duplicate_rate`.",
    )


def unique_fraction_figure(d: dict[str, Any]) -> dict[str, Any]:
    ratios = d["ratios"]
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 4))
    grid = np.linspace(0.02, 2.0, 200)
    for N, p in d["per_n"].items():
        (line,) = axes[0].plot(grid, srs.expected_unique_fraction(N, grid), lw=1, label=f"theory N={N}")
        axes[0].errorbar(
            ratios, p["mc_mean"], yerr=np.array(p["mc_se"]) * 2, fmt="o", ms=4, color=line.get_color()
        )
        axes[1].plot(ratios, p["dup"], "o", ms=4, color=line.get_color(), label=f"MC N={N}")
        axes[1].plot(grid, srs.duplicate_rate(N, grid), lw=1, color=line.get_color())
    axes[0].plot(grid, -np.expm1(-grid), "k--", lw=1, label="1 − e^{−s} (N → ∞)")
    axes[0].set(xlabel="sampling ratio s", ylabel="distinct items / N per epoch", title="Distinct fraction")
    axes[1].plot(grid, 1 + np.expm1(-grid) / grid, "k--", lw=1, label="1 − (1 − e^{−s})/s")
    axes[1].set(
        xlabel="sampling ratio s", ylabel="repeated draws / n", title="Duplicate rate within an epoch"
    )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return {"unique_fraction": fig}


claim(
    "srs.unique_fraction",
    title="SRS: distinct fraction per epoch",
    paper="arXiv 2311.12727",
    statement="The expected fraction of distinct items in one SRS epoch is 1 − (1 − 1/N)^⌈sN⌉ → 1 − e^{−s} "
    "(0.2592 at s = 0.3); the sampler's Monte Carlo means agree within 4 standard errors for N ∈ {100, "
    "1000, 10⁴} and s from 0.05 to 2, as does the duplicate rate 1 − E[U]/n.",
    measure=unique_fraction_measure,
    verdict=unique_fraction_verdict,
    figure=unique_fraction_figure,
    quick=UniqueBudget(),
    full=UniqueBudget(epochs=400),
)


@dataclass(frozen=True)
class OccupancyBudget(Budget):
    epochs_exact: int = 600
    epochs_approx: int = 100


def occupancy_measure(b: OccupancyBudget) -> dict[str, Any]:
    # χ² p-value via scipy (a peer, imported here)
    from scipy import stats

    pvals, hists = {}, []
    for N, s, epochs in [(1000, 0.3, b.epochs_exact), (10**6, 0.3, b.epochs_approx)]:
        u = _unique_counts(SoftRandomSampler(N, s, generator=b.seed + N), epochs, N).astype(int)
        pmf = srs.occupancy_pmf(N, s)
        cdf = np.cumsum(pmf)
        bins = 10
        cuts = np.searchsorted(cdf, np.linspace(0, 1, bins + 1)[1:-1])
        probs = np.diff(np.concatenate([[0.0], cdf[cuts], [1.0]]))
        obs = np.bincount(np.searchsorted(cuts, u, side="left"), minlength=bins)
        chi2 = float(((obs - epochs * probs) ** 2 / (epochs * probs)).sum())
        pvals[f"N={N}"] = float(stats.chi2.sf(chi2, bins - 1))
        sd = math.sqrt(float(srs.unique_variance(N, s)))
        mu = float(srs.expected_unique(N, s))
        k = np.arange(max(0, int(mu - 5 * sd)), min(N, int(mu + 5 * sd)) + 1)
        hists.append({"N": N, "s": s, "epochs": epochs, "u": u, "k": k, "pmf_k": pmf[k], "sd": sd})
    # approximation error against the exact law
    tv_rows, worst = [], 0.0
    for N in (1000, 10_000):
        for s in (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0):
            n = draw_count(N, s)
            sd = math.sqrt(float(srs.unique_variance(N, s)))
            tv = 0.5 * float(np.abs(srs.occupancy_pmf_exact(N, n) - srs.occupancy_pmf_approx(N, n)).sum())
            tv_rows.append({"N": N, "s": s, "sd": sd, "tv": tv, "bound": 0.05 / sd**2})
            if sd >= 2:
                worst = max(worst, tv * sd**2 / 0.05)
    return {"pvalues": pvals, "tv": tv_rows, "worst_tv_ratio": worst, "histograms": hists}


def occupancy_verdict(d: dict[str, Any]) -> Outcome:
    pvals, worst = d["pvalues"], d["worst_tv_ratio"]
    return Outcome(
        holds=min(pvals.values()) > 1e-3 and worst <= 1.0,
        measured=f"χ² p-values {', '.join(f'{k}: {v:.3f}' for k, v in pvals.items())}; "
        f"max TV/(0.05/σ²) = {worst:.2f}",
        tolerance="p > 0.001; TV ≤ 0.05/σ² where σ ≥ 2",
        details={"pvalues": pvals, "tv": d["tv"]},
    )


def occupancy_figure(d: dict[str, Any]) -> dict[str, Any]:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, h in zip(axes[:2], d["histograms"]):
        N, s, k = h["N"], h["s"], h["k"]
        width = max(1, int(h["sd"] / 3))
        ax.hist(
            h["u"],
            bins=np.arange(k[0], k[-1] + width, width) - 0.5,
            density=True,
            alpha=0.5,
            label=f"sampler, {h['epochs']} epochs",
        )
        method = "exact" if N <= 10**4 else "Edgeworth approx."
        ax.plot(k, h["pmf_k"], "k-", lw=1.2, label=f"{method} law")
        ax.set(
            xlabel="distinct items in one epoch",
            ylabel="probability",
            title=f"N = {N}, s = {s} (χ² p = {d['pvalues'][f'N={N}']:.2f})",
        )
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.legend(fontsize=7)
    tv_rows = d["tv"]
    for N, mk in ((1000, "o"), (10_000, "s")):
        r = [x for x in tv_rows if x["N"] == N]
        axes[2].loglog([x["sd"] for x in r], [x["tv"] for x in r], mk, label=f"TV(approx, exact), N={N}")
    sds = np.geomspace(1, 40, 50)
    axes[2].loglog(sds, 0.05 / sds**2, "k--", lw=1, label="documented bound 0.05/σ²")
    axes[2].set(xlabel="σ = sd(U)", ylabel="total variation", title="Edgeworth approximation error")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    return {"occupancy": fig}


claim(
    "srs.occupancy",
    title="SRS: occupancy distribution",
    paper="arXiv 2311.12727",
    statement="The number of distinct items in an SRS epoch follows the classical occupancy law: the "
    "sampler's histogram passes a χ² test (p > 0.001) against the exact law at N = 1000, s = 0.3 and "
    "against the Edgeworth approximation at N = 10⁶, s = 0.3; the approximation's total-variation error "
    "against the exact law is below 0.05/σ² wherever σ ≥ 2 (N ∈ {10³, 10⁴}, s ∈ [0.05, 2]).",
    measure=occupancy_measure,
    verdict=occupancy_verdict,
    figure=occupancy_figure,
    quick=OccupancyBudget(),
    full=OccupancyBudget(epochs_exact=2000, epochs_approx=400),
)


# ------------------------------------------------------------------------------------- 2. coverage
_COVERAGE_TITLES = {
    "srs": "SRS (with replacement)",
    "without_replacement": "fresh subset without replacement",
    "fixed_subset": "fixed subset",
}


@dataclass(frozen=True)
class CoverageBudget(Budget):
    runs: int = 10
    size: int = 2000
    epochs: int = 30
    ratios: tuple[float, ...] = (0.1, 0.3, 0.5, 1.0)


def coverage_measure(b: CoverageBudget) -> dict[str, Any]:
    N, T, runs = b.size, b.epochs, b.runs
    schemes = {
        "srs": lambda s, seed: SoftRandomSampler(N, s, generator=seed),
        "without_replacement": lambda s, seed: FreshSubsetSampler(N, s, generator=seed),
        "fixed_subset": lambda s, seed: FixedSubsetSampler(N, s, generator=seed),
    }
    worst, curves = 0.0, {}
    epochs = np.arange(T + 1)
    for scheme, make in schemes.items():
        for s in b.ratios:
            cov = np.zeros(T + 1)
            for r in range(runs):
                smp = make(s, b.seed + 7919 * r)
                seen = torch.zeros(N, dtype=torch.bool)
                for e in range(T):
                    seen[smp.indices(e)] = True
                    cov[e + 1] += float(seen.double().mean())
            cov /= runs
            theory = srs.expected_coverage(N, s, epochs, scheme=scheme)
            worst = max(worst, float(np.abs(cov - theory).max()))
            curves[f"{scheme}/s={s}"] = {"mc": cov, "theory": theory}
    return {"curves": curves, "worst": worst, "runs": runs, "epochs": T, "ratios": list(b.ratios)}


def coverage_verdict(d: dict[str, Any]) -> Outcome:
    return Outcome(
        holds=d["worst"] <= 0.01,
        measured=f"max |MC − theory| = {d['worst']:.4f} ({d['runs']} runs per curve)",
        tolerance="≤ 0.01 absolute",
        details=d["curves"],
        notes="How to read it: at equal compute sT, SRS covers 1 − e^{−sT} of the data, slightly less than "
        "a fresh subset without replacement (1 − (1 − s)^T), but unlike a fixed subset or coreset it keeps "
        "covering new data and reaches every item eventually.",
    )


def coverage_figure(d: dict[str, Any]) -> dict[str, Any]:
    fig, axes = pyplot().subplots(1, 3, figsize=(15, 4), sharey=True)
    epochs = np.arange(d["epochs"] + 1)
    for ax, (scheme, title) in zip(axes, _COVERAGE_TITLES.items()):
        for s in d["ratios"]:
            c = d["curves"][f"{scheme}/s={s}"]
            (line,) = ax.plot(epochs, c["theory"], lw=1.2, label=f"s = {s}")
            ax.plot(epochs[1:], c["mc"][1:], "o", ms=3, color=line.get_color())
        ax.set(xlabel="epochs T", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="lines: theory; dots: sampler", title_fontsize=7, loc="center right")
    axes[0].set_ylabel("fraction of items seen at least once")
    return {"coverage": fig}


claim(
    "srs.coverage",
    title="SRS: coverage over epochs, against subset alternatives",
    paper="arXiv 2311.12727",
    statement="The fraction of items seen within T epochs is 1 − (1 − 1/N)^{nT} ≈ 1 − e^{−sT} under SRS, 1 "
    "− (1 − s)^T for a fresh subset without replacement each epoch and s for a fixed subset; the samplers' "
    "averages agree with these within 0.01 (N = 2000, s ∈ {0.1, 0.3, 0.5, 1}).",
    measure=coverage_measure,
    verdict=coverage_verdict,
    figure=coverage_figure,
    quick=CoverageBudget(),
    full=CoverageBudget(runs=40),
)


@dataclass(frozen=True)
class CoverTimeBudget(Budget):
    sizes: tuple[int, ...] = (10, 30, 100, 300, 1000, 3000)
    runs: int = 40


def cover_time_measure(b: CoverTimeBudget) -> dict[str, Any]:
    Ns, runs = list(b.sizes), b.runs
    worst, rows, points = 0.0, [], {}
    for s in (0.3, 1.0):
        means, ses = [], []
        for N in b.progress(Ns, f"s={s}"):
            taus = []
            for r in range(runs):
                smp = SoftRandomSampler(N, s, generator=b.seed + 104729 * r + N)
                seen = torch.zeros(N, dtype=torch.bool)
                e = 0
                while not bool(seen.all()):
                    seen[smp.indices(e)] = True
                    e += 1
                taus.append(e)
            t = np.array(taus, dtype=float)
            th = float(srs.expected_epochs_to_cover(N, s))
            se = t.std(ddof=1) / math.sqrt(runs)
            z = abs(t.mean() - th) / se
            worst = max(worst, z)
            means.append(t.mean())
            ses.append(se)
            rows.append({"N": N, "s": s, "mc": t.mean(), "theory": th, "z": z})
        points[s] = {"mean": means, "se": ses}
    return {"rows": rows, "worst": worst, "runs": runs, "sizes": Ns, "points": points}


def cover_time_verdict(d: dict[str, Any]) -> Outcome:
    return Outcome(
        holds=d["worst"] < 4.0,
        measured=f"max |MC − theory| = {d['worst']:.2f} SE ({d['runs']} runs per point)",
        tolerance="< 4 SE everywhere",
        details={"rows": d["rows"]},
    )


def cover_time_figure(d: dict[str, Any]) -> dict[str, Any]:
    Ns = d["sizes"]
    fig, ax = pyplot().subplots(figsize=(6.5, 4.2))
    for (s, p), color in zip(d["points"].items(), ("C0", "C1")):
        grid = np.unique(np.geomspace(10, max(Ns), 40).astype(int))
        ax.plot(grid, srs.expected_epochs_to_cover(grid, s), color=color, lw=1.2, label=f"E[τ], s = {s}")
        ax.plot(grid, (np.log(grid) + 0.5772) / s, color=color, ls="--", lw=1, label=f"(ln N + γ)/s, s = {s}")
        ax.errorbar(
            Ns, p["mean"], yerr=2 * np.array(p["se"]), fmt="o", ms=4, color=color, label=f"sampler, s = {s}"
        )
    ax.set_xscale("log")
    ax.set(
        xlabel="data set size N",
        ylabel="epochs until every item is seen",
        title="SRS cover time (coupon collector)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return {"cover_time": fig}


claim(
    "srs.cover_time",
    title="SRS: epochs until every item is seen",
    paper="arXiv 2311.12727",
    statement="The expected number of whole SRS epochs until every item has been seen, Σ_T P(D > nT), lies "
    "in [N·H_N/n, N·H_N/n + 1) with N·H_N/n ≈ (ln N + 0.5772)/s; the sampler's mean agrees within 4 "
    "standard errors for N from 10 to 3000 and s ∈ {0.3, 1}.",
    measure=cover_time_measure,
    verdict=cover_time_verdict,
    figure=cover_time_figure,
    quick=CoverTimeBudget(),
    full=CoverTimeBudget(sizes=(10, 30, 100, 300, 1000, 3000, 10_000), runs=200),
)


# ---------------------------------------------------------------------------- 4. convergence on digits
def _mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))


_FWD_MACS = 64 * 32 + 32 * 10  # multiply-adds of one forward pass of the MLP
_TRAIN_MACS = 3 * _FWD_MACS  # forward + backward ≈ 3 forward passes: the cost of one processed sample


def _k_center_greedy(X: torch.Tensor, m: int, gen: torch.Generator) -> tuple[list[int], int]:
    """Greedy k-center (Sener & Savarese 2018) on the inputs; returns indices and its multiply-add count."""
    return k_center_greedy(X, m, generator=gen)


@functools.lru_cache(maxsize=2)
def _digits_runs(seed: int, epochs: int, n_seeds: int) -> dict[str, Any]:
    """Train the same MLP on digits with every sampler at an equal budget of processed samples."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.2, random_state=0, stratify=y)
    Xtr_t, Xte_t = torch.tensor(Xtr, dtype=torch.float32), torch.tensor(Xte, dtype=torch.float32)
    ytr_t, yte_t = torch.tensor(ytr), torch.tensor(yte)
    N = len(Xtr_t)
    B, lr = 32, 0.4
    budget = epochs * N  # samples processed
    seeds = list(range(n_seeds))
    ratio = 0.3
    m = draw_count(N, ratio)
    methods = ["full", "srs 0.1", "srs 0.3", "srs 0.5", "fixed 0.3", "k-center 0.3"]
    out: dict[str, Any] = {"N": N, "B": B, "lr": lr, "budget": budget, "runs": {k: [] for k in methods}}
    kc_cost = []
    for sd in seeds:
        kc_t0 = time.perf_counter()
        kc_idx, kc_macs = _k_center_greedy(Xtr_t, m, torch.Generator().manual_seed(seed + sd))
        kc_cost.append({"samples": kc_macs / _TRAIN_MACS, "seconds": time.perf_counter() - kc_t0})
        for name in methods:
            if name == "full":
                smp: Any = ShuffledSampler(N, generator=seed + sd)
            elif name.startswith("srs"):
                smp = SoftRandomSampler(N, float(name.split()[1]), generator=seed + sd)
            elif name.startswith("fixed"):
                smp = FixedSubsetSampler(N, ratio, generator=seed + sd)
            else:
                smp = FixedSubsetSampler(N, indices=kc_idx, generator=seed + sd)
            start = kc_macs / _TRAIN_MACS if name.startswith("k-center") else 0.0
            out["runs"][name].append(
                _train(
                    smp,
                    Xtr_t,
                    ytr_t,
                    Xte_t,
                    yte_t,
                    B,
                    lr,
                    budget - start,
                    start,
                    seed + sd,
                    track_grad=name == "full" or name.startswith("srs"),
                )
            )
    out["kcenter_cost"] = kc_cost
    return out


def _sgd_step(params: list[torch.Tensor], loss: torch.Tensor, lr: float) -> None:
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(lr * g)


def _train(smp, Xtr, ytr, Xte, yte, B, lr, budget, start, seed, *, track_grad: bool) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = _mlp()
    params = list(model.parameters())
    ce = torch.nn.functional.cross_entropy
    processed, steps = 0, 0
    xs, accs, gn_steps, gnorms, losses = [], [], [], [], []
    eval_every = max(1, len(Xtr) // (2 * B))

    def record() -> None:
        with torch.no_grad():
            accs.append(float((model(Xte).argmax(1) == yte).double().mean()))
        xs.append(start + processed)

    def grad_norm() -> None:
        loss = ce(model(Xtr), ytr)
        g = torch.autograd.grad(loss, params)
        gn_steps.append(steps)
        gnorms.append(float(sum((t**2).sum() for t in g)))
        losses.append(float(loss.detach()))

    record()
    while processed < budget:
        for batch in smp.indices(smp.epoch).split(B):
            if processed >= budget:
                break
            if track_grad and steps % 10 == 0:
                grad_norm()
            _sgd_step(params, ce(model(Xtr[batch]), ytr[batch]), lr)  # plain SGD (no torch.optim import cost)
            processed += len(batch)
            steps += 1
            if steps % eval_every == 0:
                record()
        smp.set_epoch(smp.epoch + 1)
    record()
    return {
        "x": xs,
        "acc": accs,
        "gn_steps": gn_steps,
        "gnorm2": gnorms,
        "loss": losses,
        "steps": steps,
        "model": model,
    }


@dataclass(frozen=True)
class DigitsBudget(Budget):
    """The digits runs shared by srs.convergence and srs.bound (computed once per process)."""

    epochs: int = 10  # budget of processed samples, in units of the training set size
    seeds: int = 3


_DIGITS_QUICK, _DIGITS_FULL = DigitsBudget(), DigitsBudget(epochs=16, seeds=6)


def convergence_measure(b: DigitsBudget) -> dict[str, Any]:
    res = _digits_runs(b.seed, b.epochs, b.seeds)
    final, curves = {}, {}
    for name, runs in res["runs"].items():
        x = np.array(runs[0]["x"])
        n_pts = min(len(r["acc"]) for r in runs)
        acc = np.mean([r["acc"][:n_pts] for r in runs], axis=0) * 100
        final[name] = float(np.mean([r["acc"][-1] for r in runs]) * 100)
        curves[name] = {"compute": x[:n_pts] / res["N"], "acc": acc}
    return {
        "final": final,
        "curves": curves,
        "kcenter_cost": res["kcenter_cost"],
        "budget": res["budget"],
        "N": res["N"],
        "lr": res["lr"],
        "B": res["B"],
        "n_seeds": len(res["runs"]["full"]),
    }


def convergence_verdict(d: dict[str, Any]) -> Outcome:
    final = d["final"]
    kc = np.mean([c["samples"] for c in d["kcenter_cost"]])
    gap_full = max(final["full"] - final[k] for k in ("srs 0.1", "srs 0.3", "srs 0.5"))
    gap_subset = max(final["fixed 0.3"], final["k-center 0.3"]) - final["srs 0.3"]
    return Outcome(
        holds=gap_full <= 1.5 and gap_subset <= 0.5,
        measured="final acc: "
        + ", ".join(f"{k} {v:.1f}" for k, v in final.items())
        + f"; worst SRS gap to full {gap_full:.2f} pt; best subset − SRS(0.3) {gap_subset:.2f} pt",
        tolerance="SRS ≥ full − 1.5 pt; SRS(0.3) ≥ max(fixed, k-center) − 0.5 pt",
        details={k: d[k] for k in ("final", "kcenter_cost", "budget", "N")},
        notes=f"k-center greedy runs on the inputs; its cost ({kc:.0f} sample-equivalents, "
        f"{np.mean([c['seconds'] for c in d['kcenter_cost']]) * 1e3:.0f} ms) is counted as multiply-adds / "
        "(3 × forward multiply-adds of the MLP) and subtracted from its training budget. "
        "Test set: 360 images (one image = 0.28 pt).",
    )


def convergence_figure(d: dict[str, Any]) -> dict[str, Any]:
    fig, ax = pyplot().subplots(figsize=(7.5, 4.5))
    for name, c in d["curves"].items():
        style = "--" if name.startswith(("fixed", "k-center")) else "-"
        ax.plot(c["compute"], c["acc"], style, lw=1.3, label=f"{name} (final {d['final'][name]:.1f} %)")
    kc = np.mean([c["samples"] for c in d["kcenter_cost"]])
    ax.axvline(kc / d["N"], color="grey", lw=0.8, ls=":", label="k-center selection cost")
    ax.set(
        xlabel="compute: samples processed / N (selection cost included)",
        ylabel="test accuracy (%)",
        title=f"digits MLP, SGD lr={d['lr']}, B={d['B']}, mean of {d['n_seeds']} seeds",
    )
    ax.set_ylim(80, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return {"accuracy_vs_compute": fig}


claim(
    "srs.convergence",
    title="SRS on digits: accuracy against compute, with subset and coreset baselines",
    paper="arXiv 2311.12727",
    statement="Training the same MLP on scikit-learn's digits at an equal budget of processed samples, SRS "
    "at every ratio s ∈ {0.1, 0.3, 0.5} ends within 1.5 points of full shuffled epochs, and SRS at s = 0.3 "
    "ends at least as accurate (−0.5 point tolerance) as a fixed random 30 % subset and a 30 % k-center "
    "greedy coreset whose selection cost is charged to its budget (arXiv 2311.12727: better "
    "accuracy–efficiency trade-off than coreset selection).",
    measure=convergence_measure,
    verdict=convergence_verdict,
    figure=convergence_figure,
    quick=_DIGITS_QUICK,
    full=_DIGITS_FULL,
)


def bound_measure(b: DigitsBudget) -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch.func import functional_call, grad, vmap

    res = _digits_runs(b.seed, b.epochs, b.seeds)
    X, y = load_digits(return_X_y=True)
    Xtr, _, ytr, _ = train_test_split(X / 16.0, y, test_size=0.2, random_state=0, stratify=y)
    Xtr_t, ytr_t = torch.tensor(Xtr, dtype=torch.float32), torch.tensor(ytr)
    ce = torch.nn.functional.cross_entropy

    # Constants estimated along the SRS(0.3) trajectory of the first seed: replay it, measure at checkpoints.
    run = res["runs"]["srs 0.3"][0]
    torch.manual_seed(b.seed)
    model = _mlp()  # the same initialisation as the run (seeded identically)
    params = list(model.parameters())
    smp = SoftRandomSampler(res["N"], 0.3, generator=b.seed)
    L_est, s2_est = 0.0, 0.0
    names = [n for n, _ in model.named_parameters()]

    def per_sample_loss(p, x, t):
        return ce(functional_call(model, dict(zip(names, p)), (x[None],)), t[None])

    def curvature_and_variance() -> tuple[float, float]:
        loss = ce(model(Xtr_t), ytr_t)
        g = torch.autograd.grad(loss, params, create_graph=True)
        v = [torch.randn_like(p) for p in params]
        lam = 0.0
        for _ in range(15):
            nv = torch.sqrt(sum((t**2).sum() for t in v))
            v = [t / nv for t in v]
            hv = torch.autograd.grad(g, params, grad_outputs=v, retain_graph=True)
            lam = float(torch.sqrt(sum((t**2).sum() for t in hv)))
            v = [t.detach() for t in hv]
        ps = vmap(grad(per_sample_loss), in_dims=(None, 0, 0))([p.detach() for p in params], Xtr_t, ytr_t)
        flat = torch.cat([t.reshape(len(Xtr_t), -1) for t in ps], 1)
        var = float(((flat - flat.mean(0)) ** 2).sum(1).mean())
        return lam, var

    steps, checkpoints = 0, set(np.linspace(0, run["steps"] - 1, 8).astype(int).tolist())
    B = res["B"]
    while steps < run["steps"]:
        for batch in smp.indices(smp.epoch).split(B):
            if steps >= run["steps"]:
                break
            if steps in checkpoints:
                lam, var = curvature_and_variance()
                L_est, s2_est = max(L_est, lam), max(s2_est, var)
            _sgd_step(params, ce(model(Xtr_t[batch]), ytr_t[batch]), res["lr"])
            steps += 1
        smp.set_epoch(smp.epoch + 1)
    delta = run["loss"][0]  # F(w0) − F* with F* ≥ 0 (cross-entropy): a valid, conservative Δ
    eta = res["lr"]
    out: dict[str, Any] = {"L": L_est, "sigma2": s2_est, "delta": delta, "lr": eta, "B": B}
    if eta * L_est > 1.0:
        return out
    ok_bound, curves = True, {}
    for name in ("full", "srs 0.1", "srs 0.3", "srs 0.5"):
        runs = res["runs"][name]
        n_pts = min(len(r["gnorm2"]) for r in runs)
        g2 = np.mean([r["gnorm2"][:n_pts] for r in runs], axis=0)
        k = np.array(runs[0]["gn_steps"][:n_pts]) + 1
        avg = np.cumsum(g2) / np.arange(1, n_pts + 1)  # (1/K) Σ_k, sampled every 10th step
        curves[name] = (k, avg)
        ok_bound &= bool(np.all(avg <= srs.nonconvex_sgd_bound(delta, L_est, s2_est, eta, k, B)))
    # agreement between samplers at equal steps, on the steps all runs reached
    k_common = np.arange(11, min(c[0][-1] for c in curves.values()), 10)
    logs = np.array([np.interp(k_common, k, np.log(avg)) for k, avg in curves.values()])
    k3, avg3 = curves["srs 0.3"]
    return {
        **out,
        "curves": curves,
        "ok_bound": ok_bound,
        "spread": float((logs.max(0) - logs.min(0)).max()),
        "looseness": float(np.median(srs.nonconvex_sgd_bound(delta, L_est, s2_est, eta, k3, B) / avg3)),
    }


_BOUND_KEYS = ("L", "sigma2", "delta", "lr", "B")


def bound_verdict(d: dict[str, Any]) -> Outcome:
    eta, L_est = d["lr"], d["L"]
    if eta * L_est > 1.0:
        return Outcome(
            holds=False,
            measured=f"ηL = {eta * L_est:.2f} > 1: the bound's step condition fails on this run",
            tolerance="ηL ≤ 1, then measured ≤ bound for all K",
            details={k: d[k] for k in _BOUND_KEYS if k != "B"},
        )
    ok_bound, spread = d["ok_bound"], d["spread"]
    return Outcome(
        holds=ok_bound and spread <= math.log(2),
        measured=f"bound holds at every K: {ok_bound}; ηL = {eta * L_est:.2f}; median bound/measured = "
        f"{d['looseness']:.1f}; max ratio between samplers' curves {math.exp(spread):.2f}",
        tolerance="measured ≤ bound for all K, ηL ≤ 1; curves within ×2",
        details={k: d[k] for k in _BOUND_KEYS},
        notes="L: largest Hessian eigenvalue (power iteration) at 8 checkpoints of the SRS(0.3) run; σ²: "
        "largest per-sample gradient variance at the same checkpoints; Δ = F(w0) since cross-entropy ≥ 0. "
        "These are local estimates along the trajectory, not global constants, so the check is of the "
        "bound's shape and scale on this run. The average over steps is sampled every 10th step.",
    )


def bound_figure(d: dict[str, Any]) -> dict[str, Any]:
    if "curves" not in d:
        return {}
    L_est, s2_est, delta, eta, B = (d[k] for k in ("L", "sigma2", "delta", "lr", "B"))
    fig, ax = pyplot().subplots(figsize=(7, 4.3))
    for name, (k, avg) in d["curves"].items():
        ax.loglog(k, avg, lw=1.2, label=f"measured (1/K)Σ‖∇F‖², {name}")
    K = np.unique(np.concatenate([c[0] for c in d["curves"].values()]))
    bnd = srs.nonconvex_sgd_bound(delta, L_est, s2_est, eta, K, B)
    ax.loglog(
        K, bnd, "k--", lw=1.3, label=f"bound 2Δ/(ηK) + Lησ²/B (L={L_est:.2f}, σ²={s2_est:.2f}, Δ={delta:.2f})"
    )
    ax.set(
        xlabel="SGD steps K",
        ylabel="squared gradient norm",
        title="Non-convex SGD bound under SRS (digits MLP)",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return {"bound_vs_gradnorm": fig}


claim(
    "srs.bound",
    title="SRS: non-convex SGD bound against measured gradient norms",
    paper="arXiv 2311.12727",
    statement="On the digits runs of srs.convergence, the average squared full-gradient norm "
    "(1/K)Σ_k‖∇F(w_k)‖² stays below the standard non-convex SGD bound 2Δ/(ηK) + Lησ²/B (Ghadimi–Lan, "
    "adapted to SRS) at every K, with L, σ² and Δ estimated on the run; and the measured curves of SRS at s "
    "∈ {0.1, 0.3, 0.5} and full epochs agree within a factor 2 at equal steps (the rate does not depend on "
    "s).",
    measure=bound_measure,
    verdict=bound_verdict,
    figure=bound_figure,
    quick=_DIGITS_QUICK,
    full=_DIGITS_FULL,
)


# ------------------------------------------------------------------------------------- performance
@dataclass(frozen=True)
class SamplerSpeedBudget(Budget):
    repeats: int = 7


def sampler_speed_measure(b: SamplerSpeedBudget) -> dict[str, Any]:
    from torch.utils.data import BatchSampler, RandomSampler

    torch.set_num_threads(1)
    N, s = 10**6, 0.3
    n = draw_count(N, s)
    ours = SoftRandomSampler(N, s, generator=b.seed)
    theirs = RandomSampler(range(N), replacement=True, num_samples=n, generator=b.generator())
    cases = {
        "indices": (lambda: sum(1 for _ in ours), lambda: sum(1 for _ in theirs)),
        "batches of 256": (
            lambda: sum(1 for _ in BatchSampler(ours, 256, False)),
            lambda: sum(1 for _ in BatchSampler(theirs, 256, False)),
        ),
    }
    ratios, times = {}, {}
    for key, (fa, fb) in cases.items():
        # one warm-up, then interleaved repeats (SRS first each round), medians
        t = interleave({"srs": fa, "torch": fb}, repeats=b.repeats, warmup=1, alternate=False)
        ratios[key] = t.ratio("srs", "torch")
        times[key] = {"srs_ms": 1e3 * t.median("srs"), "torch_ms": 1e3 * t.median("torch")}
    return {"ratios": ratios, "times": times, "reps": b.repeats}


def sampler_speed_verdict(d: dict[str, Any]) -> Outcome:
    ratios, times = d["ratios"], d["times"]
    return Outcome(
        holds=max(ratios.values()) <= 1.05,
        measured=", ".join(
            f"{k}: {times[k]['srs_ms']:.0f} ms vs {times[k]['torch_ms']:.0f} ms (×{ratios[k]:.2f})"
            for k in ratios
        ),
        tolerance="time ratio SRS / RandomSampler ≤ 1.05 (median of interleaved repeats, 1 thread)",
        details=d,
        notes="Side by side in one process, one thread, median of interleaved repeats after a warm-up; the "
        "machine is shared, so a 5 % allowance covers noise.",
    )


claim(
    "srs.sampler_speed",
    timing=True,
    title="SRS sampler overhead against torch's RandomSampler",
    paper="arXiv 2311.12727",
    statement="Iterating SoftRandomSampler is no slower than "
    "torch.utils.data.RandomSampler(replacement=True, num_samples=⌈sN⌉) (N = 10⁶, s = 0.3, and inside a "
    "DataLoader-style BatchSampler of 256).",
    measure=sampler_speed_measure,
    verdict=sampler_speed_verdict,
    quick=SamplerSpeedBudget(),
    full=SamplerSpeedBudget(repeats=15),
)


def occupancy_speed_measure(b: Budget) -> dict[str, Any]:
    torch.set_num_threads(1)
    big, exact = {}, {}
    for s in (0.1, 0.3, 1.0):
        p, big[s] = time_once(lambda s=s: srs.occupancy_pmf(10**6, s))
        assert abs(p.sum() - 1) < 1e-9
    for s in (1.0, 2.0):
        p, exact[s] = time_once(lambda s=s: srs.occupancy_pmf(10**4, s, method="exact"))
        assert abs(p.sum() - 1) < 1e-9
    return {"approx_seconds": big, "exact_seconds": exact}


def occupancy_speed_verdict(d: dict[str, Any]) -> Outcome:
    big, exact = d["approx_seconds"], d["exact_seconds"]
    return Outcome(
        holds=max(big.values()) < 1.0 and max(exact.values()) <= 3.0,
        measured="N=10⁶: "
        + ", ".join(f"s={s}: {t * 1e3:.0f} ms" for s, t in big.items())
        + "; exact N=10⁴: "
        + ", ".join(f"s={s}: {t:.2f} s" for s, t in exact.items()),
        tolerance="< 1 s (N = 10⁶); ≤ 3 s (exact, N = 10⁴)",
        details=d,
    )


claim(
    "srs.occupancy_speed",
    timing=True,
    title="Occupancy law: speed at N = 10⁶ and exact at N = 10⁴",
    paper="arXiv 2311.12727",
    statement="occupancy_pmf computes the law of distinct items per epoch for N = 10⁶ (documented Edgeworth "
    "approximation, s ∈ {0.1, 0.3, 1}) in under a second, and the exact law for N = 10⁴ (s = 1 and s = 2) "
    "in a few seconds at most (≤ 3 s).",
    measure=occupancy_speed_measure,
    verdict=occupancy_speed_verdict,
)
