"""Claims for bilevel.Equilibrium: the reductions of §4.3 and the adaptivity toy (C19).

Each claim is measure → verdict → figure (see `benchmarks.harness`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from benchmarks.harness import Budget, Outcome, claim
from benchmarks.plotting import pyplot
from bilevel import Equilibrium
from bilevel.equilibrium import equilibrium_direction


@dataclass(frozen=True)
class ReductionsBudget(Budget):
    trials: int = 5


def reductions_measure(b: ReductionsBudget) -> dict[str, Any]:
    d, m, beta = 6, 3, 0.1
    g = b.generator()
    errs: dict[str, float] = {"K0": 0.0, "K1_first_order": 0.0, "second_order": 0.0, "reptile": 0.0}
    for trial in b.progress(range(b.trials), desc="trials"):
        mats = [torch.randn(d, d, generator=g, dtype=torch.float64) for _ in range(m)]
        mats = [a @ a.T / d + 0.5 * torch.eye(d, dtype=torch.float64) for a in mats]
        cs = [torch.randn(d, generator=g, dtype=torch.float64) for _ in range(m)]
        fs: list[Callable[[torch.Tensor], torch.Tensor]] = [
            lambda x, a=a, c=c: 0.5 * (x - c) @ a @ (x - c) + 0.2 * torch.sin(x).sum() ** 2
            for a, c in zip(mats, cs)
        ]
        w = nn.Parameter(torch.randn(d, generator=g, dtype=torch.float64))
        th = w.detach()
        closures = [lambda f=f, w=w: f(w) for f in fs]
        fclosures = [lambda v, f=f: f(v[0]) for f in fs]
        grad = [torch.func.grad(f) for f in fs]

        def err(a: torch.Tensor, b: torch.Tensor) -> float:
            return float((a - b).abs().max() / b.abs().max())

        r0 = equilibrium_direction([w], closures, inner_lr=beta, inner_steps=0).direction[0]
        errs["K0"] = max(errs["K0"], err(r0, sum(gr(th) for gr in grad) / m))
        r1 = equilibrium_direction([w], closures, inner_lr=beta, inner_steps=1).direction[0]
        errs["K1_first_order"] = max(
            errs["K1_first_order"], err(r1, sum(gr(th - beta * gr(th)) for gr in grad) / m)
        )
        K = 1 + trial % 3
        r2 = equilibrium_direction(
            [w], fclosures, inner_lr=beta, inner_steps=K, mode="second_order", functional=True
        ).direction[0]
        exact = torch.zeros(d, dtype=torch.float64)
        phis_all = []
        for f, gr in zip(fs, grad):
            phis = [th]
            for _ in range(K):
                phis.append(phis[-1] - beta * gr(phis[-1]))
            phis_all.append(phis[-1])
            v = gr(phis[-1])
            for phi in reversed(phis[:-1]):
                v = v - beta * torch.func.hessian(f)(phi) @ v
            exact += v / m
        errs["second_order"] = max(errs["second_order"], err(r2, exact))
        r3 = equilibrium_direction([w], closures, inner_lr=beta, inner_steps=K, mode="reptile").direction[0]
        errs["reptile"] = max(errs["reptile"], err(r3, (th - torch.stack(phis_all).mean(0)) / (beta * K)))
    return errs


def reductions_verdict(errs: dict[str, Any]) -> Outcome:
    worst = max(errs.values())
    return Outcome(
        holds=worst <= 1e-12,
        measured=f"max relative error {worst:.1e} ("
        + ", ".join(f"{k} {v:.0e}" for k, v in errs.items())
        + ")",
        tolerance="≤ 1e-12 (float64)",
        details=errs,
    )


claim(
    "equilibrium.reductions",
    title="Equilibrium direction: K = 0, K = 1, exact second order and Reptile reductions",
    statement=(
        "On random non-quadratic sources in float64: K = 0 gives the averaged-loss gradient; K = 1 first "
        "order gives (1/M)Σ∇ℓ_i(θ - β∇ℓ_i(θ)); 'second_order' equals "
        "(1/M)Σ Π_k(I - β∇²ℓ_i(φ_i^k))∇ℓ_i(φ_i^K) "
        "(Hessians by torch.func.hessian); 'reptile' equals (θ - mean_i φ_i^K)/(βK); all to ≤ 1e-12."
    ),
    paper="arXiv 2508.19990",
    measure=reductions_measure,
    verdict=reductions_verdict,
    quick=ReductionsBudget(),
    full=ReductionsBudget(),
)


# --------------------------------------------------------------------------------------------------


def _sources(m: int) -> list[tuple[float, float]]:
    """(amplitude, phase) of each source: sine waves whose optima differ."""
    return [(1.0 + 0.5 * (i % 2), 2 * math.pi * i / m) for i in range(m)]


def _batch(src: tuple[float, float], n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 1, generator=g) * 6 - 3
    return x, src[0] * torch.sin(x + src[1])


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 40), nn.Tanh(), nn.Linear(40, 40), nn.Tanh(), nn.Linear(40, 1))


def _train(mode: str, K: int, steps: int, beta: float, seed: int, progress) -> nn.Module:  # type: ignore[no-untyped-def]
    model = _net(seed)
    srcs = _sources(4)
    gens = [torch.Generator().manual_seed(seed * 100 + i) for i in range(len(srcs))]
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    functional = mode == "second_order"

    def closure(i: int):  # type: ignore[no-untyped-def]
        if functional:

            def f(values: list[torch.Tensor]) -> torch.Tensor:
                x, y = _batch(srcs[i], 20, gens[i])
                return F.mse_loss(functional_call(model, dict(zip(names, values)), (x,)), y)
        else:

            def f() -> torch.Tensor:  # type: ignore[misc]
                x, y = _batch(srcs[i], 20, gens[i])
                return F.mse_loss(model(x), y)

        return f

    opt = Equilibrium(
        params,
        lr=3e-3,
        inner_lr=beta,
        inner_steps=K,
        mode=mode if K > 0 else "first_order",
        functional=functional,
        optimizer=torch.optim.Adam,
    )
    closures = [closure(i) for i in range(len(srcs))]
    for _ in progress(range(steps)):
        opt.step(source_losses=closures)
    return model


def _post_adaptation(model: nn.Module, beta: float, max_steps: int, seed: int) -> list[list[float]]:
    """Per source: held-out loss after k = 0..max_steps GD steps (step β) on a fresh 20-point batch."""
    out = []
    for i, src in enumerate(_sources(4)):
        g = torch.Generator().manual_seed(10_000 + seed + i)
        xs, ys = _batch(src, 20, g)
        xe, ye = _batch(src, 500, g)
        p = {n: v.detach().requires_grad_(True) for n, v in model.named_parameters()}
        curve = []
        for k in range(max_steps + 1):
            with torch.no_grad():
                curve.append(float(F.mse_loss(functional_call(model, p, (xe,)), ye)))
            if k < max_steps:
                gs = torch.autograd.grad(F.mse_loss(functional_call(model, p, (xs,)), ys), list(p.values()))
                p = {n: (v - beta * gi).detach().requires_grad_(True) for (n, v), gi in zip(p.items(), gs)}
        out.append(curve)
    return out


@dataclass(frozen=True)
class AdaptivityBudget(Budget):
    outer_steps: int = 100
    adaptation_steps: int = 5
    inner_lr: float = 0.05


def adaptivity_measure(b: AdaptivityBudget) -> dict[str, Any]:
    K, beta = b.adaptation_steps, b.inner_lr
    steps = b.outer_steps
    runs = {
        "averaged loss (K = 0)": ("first_order", 0),
        "equilibrium, first order": ("first_order", K),
        "equilibrium, second order": ("second_order", K),
    }
    curves = {}
    for label, (mode, k) in runs.items():
        model = _train(mode, k, steps, beta, b.seed, lambda r, label=label: b.progress(r, desc=label))
        curves[label] = _post_adaptation(model, beta, 2 * K, b.seed)
    base = [c[K] for c in curves["averaged loss (K = 0)"]]
    res = {label: [c[K] for c in cs] for label, cs in curves.items()}
    per_source_better = {
        label: all(x < y for x, y in zip(v, base))
        for label, v in res.items()
        if not label.startswith("averaged")
    }
    mean_ratio = {
        label: (sum(v) / len(v)) / (sum(base) / len(base))
        for label, v in res.items()
        if not label.startswith("averaged")
    }
    return {
        "K": K,
        "beta": beta,
        "steps": steps,
        "after_K": res,
        "curves": curves,
        "mean_ratio": mean_ratio,
        "per_source_better": per_source_better,
    }


def adaptivity_verdict(d: dict[str, Any]) -> Outcome:
    K, res = d["K"], d["after_K"]
    holds = all(d["per_source_better"].values()) and max(d["mean_ratio"].values()) <= 0.5
    return Outcome(
        holds=holds,
        measured=", ".join(f"{k}: {sum(v) / 4:.3f}" for k, v in res.items()) + f" (mean MSE after K = {K})",
        tolerance="every source lower than the averaged-loss start, and mean ≤ 0.5 × its mean",
        details={k: d[k] for k in ("after_K", "curves", "mean_ratio", "per_source_better")},
    )


def adaptivity_figure(d: dict[str, Any]) -> dict[str, Any]:
    K, beta, steps, res, curves = d["K"], d["beta"], d["steps"], d["after_K"], d["curves"]
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 4))
    width = 0.27
    for j, (label, v) in enumerate(res.items()):
        axes[0].bar([i + (j - 1) * width for i in range(4)], v, width, label=label)
    axes[0].set(
        xticks=range(4),
        xticklabels=[f"source {i}" for i in range(4)],
        yscale="log",
        ylabel=f"held-out MSE after K = {K} steps",
        title="per-source loss after adaptation",
    )
    axes[0].set_ylim(top=8 * max(max(v) for v in res.values()))
    axes[0].legend(fontsize=8, ncol=1, loc="upper right")
    for label, cs in curves.items():
        mean_curve = [sum(c[k] for c in cs) / len(cs) for k in range(2 * K + 1)]
        axes[1].plot(range(2 * K + 1), mean_curve, "o-", ms=3, label=label)
    axes[1].axvline(K, color="grey", lw=0.8, ls=":")
    axes[1].set(
        yscale="log",
        xlabel="adaptation steps on the source's own data",
        ylabel="mean held-out MSE",
        title=f"{steps} outer steps, β = {beta}",
    )
    axes[1].legend(fontsize=8)
    return {"post_adaptation": fig}


claim(
    "equilibrium.adaptivity",
    title="Equilibrium-trained start adapts better per source than the averaged-loss start",
    statement=(
        "Four sources y = A_i sin(x + φ_i) with different optima, MLP 1-40-40-1, the same outer budget "
        "(Adam). "
        "After K = 5 gradient steps on each source's own fresh data, the start trained by Equilibrium "
        "(first order, and exact second order) reaches a lower held-out loss on every source than the start "
        "trained on the averaged loss (Equilibrium with K = 0), and at most half of it on average."
    ),
    paper="arXiv 2508.19990",
    measure=adaptivity_measure,
    verdict=adaptivity_verdict,
    figure=adaptivity_figure,
    quick=AdaptivityBudget(),
    full=AdaptivityBudget(outer_steps=1500),
)
