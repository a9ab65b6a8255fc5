"""Few-shot sinusoid regression (Finn, Abbeel & Levine 2017, §5.1) for the MAML-family claims."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from bilevel.meta import adapt_batched, imaml_adapt_batched, imaml_grad_batched

SHOTS = 10


def sample_tasks(n: int, points: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` tasks y = A sin(x - φ), A ~ U[0.1, 5], φ ~ U[0, π], x ~ U[-5, 5]; shape (n, points, 1)."""
    amp = torch.rand(n, 1, 1, generator=gen) * 4.9 + 0.1
    phase = torch.rand(n, 1, 1, generator=gen) * math.pi
    x = torch.rand(n, points, 1, generator=gen) * 10 - 5
    return x, amp * torch.sin(x - phase)


def make_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))


def task_loss(model: nn.Module) -> Callable[[dict[str, Tensor], Any], Tensor]:
    return lambda p, d: F.mse_loss(functional_call(model, p, (d[0],)), d[1])


def train(
    method: str,
    *,
    iters: int,
    meta_batch: int,
    inner_lr: float,
    inner_steps: int,
    meta_lr: float,
    reg: float,
    seed: int,
    progress: Callable[[Any], Any],
    cg_steps: int = 5,
    clip: float = 10.0,
    anneal: bool = False,
) -> tuple[nn.Module, float, int | None]:
    """Meta-train with ``method`` in {"baseline", "maml", "fomaml", "reptile", "imaml"}; Adam outer (step
    ``meta_lr``, annealed linearly to 0 if ``anneal``).

    Every method sees the same task stream (``meta_batch`` tasks per iteration, ``2 * SHOTS`` points each).
    Reptile's direction θ - mean_i W_i is computed for all tasks at once with ``adapt_batched``
    (first order, plain SGD on the task's 10 support points, as at test time), which is exactly what
    ``reptile_grad`` computes task by task, and fed to Adam like a gradient.

    Returns the model, the training seconds and the iteration at which training diverged (a non-finite
    inner solution or meta-gradient; training stops there and the model keeps its last finite values),
    or ``None``.
    """
    model = make_net(seed)
    loss = task_loss(model)
    opt = torch.optim.Adam(model.parameters(), lr=meta_lr)
    # optionally anneal the meta step linearly to 0 (as Reptile's outer step; it keeps long runs stable)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / iters if anneal else 1.0)
    gen = torch.Generator().manual_seed(seed + 1)
    t0 = time.perf_counter()
    for it in progress(range(iters)):
        x, y = sample_tasks(meta_batch, 2 * SHOTS, gen)
        xs, ys, xq, yq = x[:, :SHOTS], y[:, :SHOTS], x[:, SHOTS:], y[:, SHOTS:]
        opt.zero_grad()
        if method == "baseline":  # joint training on the pooled data, no adaptation
            F.mse_loss(model(x.reshape(-1, 1)), y.reshape(-1, 1)).backward()
        elif method in ("maml", "fomaml"):
            adapted = adapt_batched(
                model,
                loss,
                (xs, ys),
                inner_lr=inner_lr,
                inner_steps=inner_steps,
                first_order=method == "fomaml",
            )
            vmap(loss)(adapted, (xq, yq)).mean().backward()
        elif method == "reptile":  # the batched form of reptile_grad: d = θ - mean_i W_i
            w = adapt_batched(
                model, loss, (xs, ys), inner_lr=inner_lr, inner_steps=inner_steps, first_order=True
            )
            for n, p in model.named_parameters():
                p.grad = p.detach() - w[n].detach().mean(0)
        elif method == "imaml":
            try:
                imaml_grad_batched(
                    model,
                    loss,
                    (xs, ys),
                    (xq, yq),
                    reg=reg,
                    inner_lr=inner_lr,
                    inner_steps=inner_steps,
                    cg_steps=cg_steps,
                )
            except ValueError as e:
                if "non-finite" not in str(e):
                    raise
                return model, time.perf_counter() - t0, it
            for p in model.parameters():
                assert p.grad is not None
                p.grad /= meta_batch
        else:
            raise ValueError(method)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if not torch.isfinite(norm):
            return model, time.perf_counter() - t0, it
        opt.step()
        sched.step()
    return model, time.perf_counter() - t0, None


def evaluate(
    model: nn.Module, *, method: str, inner_lr: float, reg: float, max_steps: int, n_tasks: int, seed: int
) -> list[float]:
    """Mean query MSE over ``n_tasks`` new tasks after k = 0..max_steps adaptation steps on 10 shots.

    Every method adapts with plain gradient descent of step ``inner_lr`` except iMAML, which adapts
    with its own inner procedure (``imaml_adapt_batched``: step-controlled gradient descent on the
    support loss + (λ/2)||φ - θ||², steps of at most ``inner_lr``).
    """
    loss = task_loss(model)
    gen = torch.Generator().manual_seed(seed)
    x, y = sample_tasks(n_tasks, SHOTS + 100, gen)
    xs, ys, xq, yq = x[:, :SHOTS], y[:, :SHOTS], x[:, SHOTS:], y[:, SHOTS:]
    theta = {n: p.detach() for n, p in model.named_parameters()}
    phi = {n: v.expand(n_tasks, *v.shape).clone() for n, v in theta.items()}
    out = [float(vmap(loss)(phi, (xq, yq)).mean())]
    if method == "imaml":  # its own inner procedure, exactly as in training
        for k in range(1, max_steps + 1):
            phi = imaml_adapt_batched(model, loss, (xs, ys), reg=reg, inner_lr=inner_lr, inner_steps=k)
            out.append(float(vmap(loss)(phi, (xq, yq)).mean()))
        return out
    grad_fn = vmap(torch.func.grad(loss))
    for _ in range(max_steps):
        g = grad_fn(phi, (xs, ys))
        phi = {n: phi[n] - inner_lr * g[n] for n in phi}
        out.append(float(vmap(loss)(phi, (xq, yq)).mean()))
    return out


__all__ = ["evaluate", "sample_tasks", "train"]
