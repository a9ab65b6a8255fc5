"""Device check for bilevel's optimizers and the zoo models (run by hand on a CUDA machine).

1. PenaltyBGD, Equilibrium (first and exact second order), MAML meta-gradients and CG hypergradients
   give the CPU result on CUDA (float64, relative 1e-10).
2. Each zoo model (tiny preset): the CUDA loss equals the CPU loss (float32, relative 1e-4), backward
   gives finite gradients, ``transcribe`` runs, bf16 autocast gives a finite loss; forward+backward
   time on CUDA vs CPU.

Usage: ``python benchmarks/gpu/algorithms_check.py`` (prints one JSON line per result; exits 1 on a failure).
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bilevel
from bilevel.hypergrad import cg
from bilevel.meta import adapt

FAILED: list[str] = []


def report(name: str, ok: bool, **kw: object) -> None:
    if not ok:
        FAILED.append(name)
    print(json.dumps({"check": name, "ok": ok, **kw}, default=str), flush=True)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def mlp(seed: int, dev: torch.device) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1)).double().to(dev)


def run_penalty(dev: torch.device) -> list[torch.Tensor]:
    model = mlp(0, dev)
    g = torch.Generator().manual_seed(1)
    xl, yl, xu = (
        torch.randn(20, 6, generator=g, dtype=torch.float64).to(dev),
        torch.randn(20, 1, generator=g, dtype=torch.float64).to(dev),
        torch.randn(50, 6, generator=g, dtype=torch.float64).to(dev),
    )
    upper = list(model[2].parameters())
    lower = list(model[0].parameters())
    opt = bilevel.PenaltyBGD(
        upper, lower, lr=0.05, gamma=bilevel.LinearRamp(0.0, 2.0, 10), inner_steps=2, inner_lr=0.05
    )
    for _ in range(15):
        opt.step(upper_loss=lambda: F.mse_loss(model(xl), yl), lower_loss=lambda: model(xu).pow(2).mean())
    return [p.detach().cpu() for p in model.parameters()]


def run_equilibrium(dev: torch.device, mode: str) -> list[torch.Tensor]:
    model = mlp(0, dev)
    names = [n for n, _ in model.named_parameters()]
    g = torch.Generator().manual_seed(2)
    data = [
        (
            torch.randn(16, 6, generator=g, dtype=torch.float64).to(dev),
            torch.randn(16, 1, generator=g, dtype=torch.float64).to(dev),
        )
        for _ in range(3)
    ]

    def closure(x: torch.Tensor, y: torch.Tensor) -> Callable:
        if mode == "second_order":
            return lambda ps: F.mse_loss(torch.func.functional_call(model, dict(zip(names, ps)), (x,)), y)
        return lambda: F.mse_loss(model(x), y)

    opt = bilevel.Equilibrium(
        model.parameters(),
        lr=0.05,
        inner_lr=0.1,
        inner_steps=2,
        mode=mode,
        **({"functional": True} if mode == "second_order" else {}),
    )
    for _ in range(5):
        opt.step(source_losses=[closure(x, y) for x, y in data])
    return [p.detach().cpu() for p in model.parameters()]


def run_maml(dev: torch.device) -> list[torch.Tensor]:
    model = mlp(0, dev)
    g = torch.Generator().manual_seed(3)
    xs, ys, xq, yq = (
        torch.randn(10, 6, generator=g, dtype=torch.float64).to(dev)
        if i % 2 == 0
        else torch.randn(10, 1, generator=g, dtype=torch.float64).to(dev)
        for i in range(4)
    )

    def loss_fn(params: dict) -> torch.Tensor:
        return F.mse_loss(torch.func.functional_call(model, params, (xs,)), ys)

    adapted = adapt(model, loss_fn, inner_lr=0.1, inner_steps=3)
    F.mse_loss(torch.func.functional_call(model, adapted, (xq,)), yq).backward()
    return [p.grad.detach().cpu() for p in model.parameters()]


def run_cg(dev: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(4)
    M = torch.randn(30, 30, generator=g, dtype=torch.float64)
    A = (M @ M.T / 30 + torch.eye(30, dtype=torch.float64)).to(dev)
    b = torch.randn(30, generator=g, dtype=torch.float64).to(dev)
    return cg(lambda v: [A @ v[0]], [b], steps=60, tol=1e-14)[0].detach().cpu()


def algorithms(dev: torch.device) -> None:
    cpu = torch.device("cpu")
    for name, fn in [
        ("penalty", run_penalty),
        ("maml", run_maml),
        ("equilibrium.first_order", lambda d: run_equilibrium(d, "first_order")),
        ("equilibrium.second_order", lambda d: run_equilibrium(d, "second_order")),
        ("equilibrium.reptile", lambda d: run_equilibrium(d, "reptile")),
    ]:
        try:
            a, b = fn(cpu), fn(dev)
            err = max(rel(x, y) for x, y in zip(b, a))
            report(f"cuda_equals_cpu.{name}", err < 1e-10, rel_err=err, tol=1e-10)
        except Exception as e:
            report(f"cuda_equals_cpu.{name}", False, error=repr(e))
    try:
        err = rel(run_cg(dev), run_cg(cpu))
        report("cuda_equals_cpu.cg", err < 1e-10, rel_err=err, tol=1e-10)
    except Exception as e:
        report("cuda_equals_cpu.cg", False, error=repr(e))


def zoo_models(dev: torch.device) -> None:
    from zoo.models import build_model

    g = torch.Generator().manual_seed(5)
    B, T, U = 4, 200, 12
    feats = torch.randn(B, T, 80, generator=g)
    feat_lens = torch.tensor([200, 180, 150, 120])
    tokens = torch.randint(1, 30, (B, U), generator=g)
    token_lens = torch.tensor([12, 10, 8, 6])
    for name in ("conformer", "conformer-plain", "sar", "sar-ctc", "dota"):
        try:
            torch.manual_seed(0)
            m_cpu = build_model(name, "tiny", vocab_size=32).eval()
            m_gpu = copy.deepcopy(m_cpu).to(dev)
            args_c = (feats, feat_lens, tokens, token_lens)
            args_g = tuple(a.to(dev) for a in args_c)
            l_cpu = m_cpu(*args_c).loss.detach()
            l_gpu = m_gpu(*args_g).loss.detach()
            err = abs(float(l_gpu) - float(l_cpu)) / abs(float(l_cpu))
            m_gpu.train()
            m_gpu.zero_grad()
            m_gpu(*args_g).loss.backward()
            finite = all(torch.isfinite(p.grad).all() for p in m_gpu.parameters() if p.grad is not None)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                l_bf16 = float(m_gpu(*args_g).loss)
            m_gpu.eval()
            with torch.no_grad():
                hyps = m_gpu.transcribe(args_g[0], args_g[1])
            times = {}
            for label, model, args in (("cpu", m_cpu.train(), args_c), ("cuda", m_gpu.train(), args_g)):
                ts = []
                for i in range(6):
                    if label == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    model(*args).loss.backward()
                    if label == "cuda":
                        torch.cuda.synchronize()
                    if i >= 2:
                        ts.append(time.perf_counter() - t0)
                times[label] = 1e3 * statistics.median(ts)
            ok = err < 1e-4 and finite and abs(l_bf16) < 1e6 and len(hyps) == B
            report(
                f"zoo.{name}",
                ok,
                loss_rel_err=err,
                tol=1e-4,
                grads_finite=finite,
                bf16_loss=l_bf16,
                loss_fp32=float(l_gpu),
                n_hyps=len(hyps),
                fwd_bwd_ms=times,
            )
        except Exception as e:
            report(f"zoo.{name}", False, error=repr(e))


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device; nothing to check")
        return 0
    dev = torch.device("cuda")
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)
    algorithms(dev)
    zoo_models(dev)
    print(json.dumps({"failed": FAILED}), flush=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
