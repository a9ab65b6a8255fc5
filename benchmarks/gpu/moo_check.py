"""Device check for bilevel.moo (run by hand on a CUDA machine; not part of the claim suite).

1. Aggregators and ``backward`` are device-agnostic: on CUDA they give the CPU result (float64, 1e-10).
2. Layer selection's memory saving measured with ``torch.cuda.max_memory_allocated`` on the transformer
   encoder of the ``moo.selection_savings`` claim, and step times on the GPU.

Usage: ``python benchmarks/gpu/moo_check.py`` (prints one JSON line per result).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bilevel.moo import MGDA, CAGrad, LayerSelection, MoDo, PCGrad, Recipe, backward
from bilevel.schedules import LinearRamp


def report(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


def check_agreement(dev: torch.device) -> None:
    g = torch.Generator().manual_seed(0)
    G = torch.randn(5, 40, generator=g, dtype=torch.float64)
    G2 = torch.randn(5, 40, generator=g, dtype=torch.float64)
    worst = 0.0
    for make in (MGDA, lambda: CAGrad(0.4), lambda: PCGrad(1), lambda: MoDo(0.2)):
        a, b = make(), make()
        cpu = a(G, G2)
        gpu = b(G.to(dev), G2.to(dev))
        assert gpu.device.type == dev.type, gpu.device
        worst = max(worst, float((gpu.cpu() - cpu).abs().max()))
    # backward on a model living on the device, float32 and float64
    for dtype in (torch.float64, torch.float32):
        torch.manual_seed(0)
        enc = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 8)).to(dtype)
        heads = nn.ModuleList([nn.Linear(8, 1) for _ in range(3)]).to(dtype)
        x = torch.randn(32, 16, dtype=dtype)
        ys = [torch.randn(32, 1, dtype=dtype) for _ in range(3)]
        grads = {}
        for d in (torch.device("cpu"), dev):
            e, h = enc.to(d), heads.to(d)
            e.zero_grad()
            h.zero_grad()
            f = e(x.to(d))
            L = [((hh(f) - y.to(d)) ** 2).mean() for hh, y in zip(h, ys)]
            rec = Recipe([["a", "b"], ["c"]], [CAGrad(0.4), None], penalties=[LinearRamp(0.0, 1.0, 10)])
            backward(
                dict(zip("abc", L)),
                e.parameters(),
                rec,
                task_params=h.parameters(),
                selection=LayerSelection(k=2),
            )
            grads[d.type] = torch.cat([p.grad.reshape(-1).cpu() for p in [*e.parameters(), *h.parameters()]])
        tol = 1e-10 if dtype == torch.float64 else 1e-4
        diff = float((grads["cpu"] - grads[dev.type]).abs().max() / grads["cpu"].abs().max())
        assert diff < tol, (dtype, diff)
        report(check="backward_device_agnostic", dtype=str(dtype), rel_diff=diff, tol=tol)
    report(check="aggregators_device_agnostic", max_abs_diff=worst)
    assert worst < 1e-10


def selection_memory(dev: torch.device) -> None:
    torch.manual_seed(0)
    T = 4
    layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False).to(dev)
    heads = nn.ModuleList([nn.Linear(128, 10) for _ in range(T)]).to(dev)
    x = torch.randn(8, 32, 128, device=dev)
    ys = [torch.randint(0, 10, (8,), device=dev) for _ in range(T)]
    shared = list(enc.parameters())
    sel = LayerSelection(k=len(shared) // 4, rescore_every=10)

    def step(selection: LayerSelection | None) -> None:
        enc.zero_grad(set_to_none=True)
        heads.zero_grad(set_to_none=True)
        f = enc(x).mean(1)
        L = [F.cross_entropy(h(f), y) for h, y in zip(heads, ys)]
        backward(L, shared, MGDA(), task_params=heads.parameters(), selection=selection)

    def peak(selection: LayerSelection | None) -> int:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(selection)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    for _ in range(3):
        step(None)
        step(sel)
    sel.steps = 0
    p_score = peak(sel)
    p_sel = peak(sel)
    p_full = peak(None)
    times: dict[str, list[float]] = {"full": [], "selected": []}
    for _ in range(30):
        for name, s in (("full", None), ("selected", sel)):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            step(s)
            torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    report(
        check="selection_savings_cuda",
        peak_bytes_full=p_full,
        peak_bytes_scoring=p_score,
        peak_bytes_ordinary=p_sel,
        mem_cut_window=1 - max(p_score, p_sel) / p_full,
        mem_cut_ordinary=1 - p_sel / p_full,
        ms_full=1e3 * statistics.mean(times["full"]),
        ms_selected=1e3 * statistics.mean(times["selected"]),
        time_cut=1 - statistics.mean(times["selected"]) / statistics.mean(times["full"]),
        device=torch.cuda.get_device_name(),
    )


if __name__ == "__main__":
    if not torch.cuda.is_available():
        print("no CUDA device; nothing to check")
        sys.exit(0)
    dev = torch.device("cuda")
    check_agreement(dev)
    selection_memory(dev)
