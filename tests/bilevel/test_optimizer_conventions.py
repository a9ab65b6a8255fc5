"""What PenaltyBGD and Equilibrium share: torch.optim behaviour (param groups, every LR scheduler,
state_dict), one argument convention, per-level clipping, the inner_lr warning, overflow-safe norms."""

from __future__ import annotations

import copy
import functools
import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as S

import bilevel
from bilevel import Equilibrium, PenaltyBGD
from tests.bilevel._asserts import BadInput, assert_params_unchanged, assert_rejects, snapshot

D = torch.float64


def _targets() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(3, generator=g, dtype=D), torch.randn(2, generator=g, dtype=D)


@dataclass
class Problem:
    """One optimizer on a small problem, with a ``step()`` that feeds it its losses."""

    opt: Any
    params: list[torch.Tensor]
    step: Callable[[], Any]


def penalty(**kw: Any) -> Problem:
    tx, ty = _targets()
    x = torch.zeros(3, dtype=D, requires_grad=True)
    y = torch.zeros(2, dtype=D, requires_grad=True)
    opt = PenaltyBGD([x], [y], **{"lr": 0.1, "gamma": 0.5, **kw})

    def f() -> torch.Tensor:
        return (x - tx).pow(2).sum() + (y - ty).pow(2).sum()

    def g() -> torch.Tensor:
        return (y - x[:2]).pow(2).sum()

    return Problem(opt, [x, y], lambda: opt.step(upper_loss=f, lower_loss=g))


def equilibrium(**kw: Any) -> Problem:
    tx, ty = _targets()
    x = torch.zeros(3, dtype=D, requires_grad=True)
    y = torch.zeros(2, dtype=D, requires_grad=True)
    opt = Equilibrium([{"params": [x]}, {"params": [y]}], **{"lr": 0.1, "inner_lr": 0.1, **kw})
    losses = [lambda: (x - tx).pow(2).sum() + (y - ty).pow(2).sum(), lambda: (y - x[:2]).pow(2).sum()]
    return Problem(opt, [x, y], lambda: opt.step(source_losses=losses))


MAKERS = {"PenaltyBGD": penalty, "Equilibrium": equilibrium}


# -- every torch.optim.lr_scheduler scheduler, on both optimizers, against the same scheduler on torch.optim


SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer], Any]] = {
    "LambdaLR": lambda o: S.LambdaLR(o, lambda e: 0.9**e),
    "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda e: 0.8),
    "StepLR": lambda o: S.StepLR(o, step_size=2, gamma=0.5),
    "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[1, 3], gamma=0.3),
    "ConstantLR": lambda o: S.ConstantLR(o, factor=0.5, total_iters=2),
    "LinearLR": lambda o: S.LinearLR(o, start_factor=0.2, total_iters=4),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.7),
    "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=4, power=2.0),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=3),
    "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2),
    "CyclicLR": lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=8),
    "SequentialLR": lambda o: S.SequentialLR(
        o, [S.ConstantLR(o, factor=0.5, total_iters=2), S.ExponentialLR(o, gamma=0.9)], milestones=[2]
    ),
    "ChainedScheduler": lambda o: S.ChainedScheduler([S.ExponentialLR(o, 0.9), S.StepLR(o, 2, 0.5)]),
    "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, patience=0, factor=0.5),
}
LEVEL_OPTIMIZERS = {
    "SGD-momentum": functools.partial(torch.optim.SGD, momentum=0.9),
    "Adam": torch.optim.Adam,
}


def _hyper(opt: torch.optim.Optimizer) -> list[tuple[float, Any]]:
    return [(g["lr"], g.get("momentum", g.get("betas"))) for g in opt.param_groups]


def test_every_torch_scheduler_is_covered() -> None:
    public = {
        n
        for n, c in vars(S).items()
        if inspect.isclass(c)
        and issubclass(c, (S.LRScheduler, S.ReduceLROnPlateau))
        and not n.startswith("_")
    }
    assert public - {"LRScheduler", "_LRScheduler"} <= set(SCHEDULERS), public - set(SCHEDULERS)


@pytest.mark.parametrize("level_opt", LEVEL_OPTIMIZERS, ids=str)
@pytest.mark.parametrize("sched", SCHEDULERS, ids=str)
@pytest.mark.parametrize("maker", MAKERS, ids=str)
def test_every_lr_scheduler_works_as_on_torch_optim(maker: str, sched: str, level_opt: str) -> None:
    factory = LEVEL_OPTIMIZERS[level_opt]
    pb = MAKERS[maker](optimizer=factory, inner_lr=0.05)
    twins = [torch.zeros_like(p, requires_grad=True) for p in pb.params]
    ref = factory([{"params": [twins[0]]}, {"params": [twins[1]]}], lr=0.1)
    ours_s, ref_s = SCHEDULERS[sched](pb.opt), SCHEDULERS[sched](ref)
    assert _hyper(pb.opt) == _hyper(ref)
    for k in range(6):
        pb.step()
        ref.step()  # no gradients: a no-op, keeps the scheduler's call-order check quiet
        if sched == "ReduceLROnPlateau":
            ours_s.step(1.0)
            ref_s.step(1.0)
        else:
            ours_s.step()
            ref_s.step()
        assert _hyper(pb.opt) == _hyper(ref), f"step {k}"
    # and the level optimizers really use the scheduled values
    levels = [pb.opt.outer] if maker == "Equilibrium" else pb.opt._levels()
    assert [g["lr"] for o in levels for g in o.param_groups] == [g["lr"] for g in ref.param_groups]


# -- add_param_group ------------------------------------------------------------------------------------


def test_equilibrium_add_param_group_takes_the_optimizer_lr() -> None:
    for factory in (None, torch.optim.Adam):  # Adam's own default lr is 1e-3, SGD's 1e-3
        w, b = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
        opt = Equilibrium([w], lr=0.25, inner_lr=0.1, optimizer=factory)
        opt.add_param_group({"params": [b]})
        assert opt.param_groups[1]["lr"] == 0.25 and opt.param_groups[1]["inner_lr"] == 0.1
        assert opt.outer.param_groups[1]["lr"] == 0.25


def test_penalty_add_param_group_to_each_level_behaves_like_torch_optim() -> None:
    pb = penalty(
        lr=0.2, optimizer=functools.partial(torch.optim.SGD, momentum=0.5), inner_steps=1, inner_lr=0.1
    )
    x, y = pb.params
    pb.step()
    z_up = torch.ones(2, dtype=D, requires_grad=True)
    z_lo = torch.ones(2, dtype=D, requires_grad=True)
    with pytest.raises(ValueError, match="level='upper' or level='lower'"):
        pb.opt.add_param_group({"params": [z_up]})
    pb.opt.add_param_group({"params": [z_up]}, level="upper")
    pb.opt.add_param_group({"params": [z_lo], "lr": 0.05, "level": "lower"})
    assert [g["lr"] for g in pb.opt.param_groups] == [0.2, 0.2, 0.2, 0.05]
    assert pb.opt.param_groups[1]["momentum"] == 0.5  # the level optimizer's defaults fill the group
    assert len(pb.opt.omega) == 2 and torch.equal(pb.opt.omega[1], z_lo.detach())  # ω covers lower params
    # the new parameters are trained: f + γ g gains their terms through the closures' globals
    before = snapshot([z_up, z_lo])

    def f() -> torch.Tensor:
        return (x - 1).pow(2).sum() + (y - 1).pow(2).sum() + z_up.pow(2).sum() + (z_lo - 3).pow(2).sum()

    def g() -> torch.Tensor:
        return (y - x[:2]).pow(2).sum() + (z_lo - z_up).pow(2).sum()

    pb.opt.step(upper_loss=f, lower_loss=g)
    assert not torch.equal(z_up.detach(), before[0]) and not torch.equal(z_lo.detach(), before[1])
    # lower-only optimizer: the level may be omitted; an upper group creates the upper optimizer
    y2 = torch.zeros(2, requires_grad=True)
    solo = PenaltyBGD([], [y2], lr=0.3)
    solo.add_param_group({"params": [torch.zeros(1, requires_grad=True)]})
    solo.add_param_group({"params": [torch.zeros(1, requires_grad=True)]}, level="upper")
    assert solo.upper_optimizer is not None and [g["lr"] for g in solo.param_groups] == [0.3, 0.3, 0.3]


def test_penalty_add_param_group_then_state_dict_round_trip() -> None:
    def make() -> Problem:
        pb = penalty(inner_steps=1, inner_lr=0.1, optimizer=torch.optim.Adam)
        return pb

    a = make()
    a.step()
    sd = copy.deepcopy(a.opt.state_dict())
    b = make()
    with torch.no_grad():
        for p, q in zip(b.params, a.params):
            p.copy_(q)
    b.opt.load_state_dict(sd)
    a.step()
    b.step()
    assert all(torch.equal(p, q) for p, q in zip(a.params, b.params))


# -- bad input shared by both optimizers: one table, every entry point -------------------------------------


def _w() -> torch.Tensor:
    return torch.zeros(2, requires_grad=True)


def _edited_group_lr(maker: str, key: str) -> Callable[[], Any]:
    def call() -> Any:
        pb = MAKERS[maker]()
        pb.opt.param_groups[0][key] = -0.5  # e.g. a user or a buggy scheduler edits a group
        before = snapshot(pb.params)
        try:
            return pb.step()
        finally:
            assert_params_unchanged(pb.params, before)

    return call


BAD_INPUT = [
    BadInput(
        "PenaltyBGD: negative group lr",
        lambda: PenaltyBGD([], [{"params": [_w()], "lr": -0.1}]),
        ValueError,
        r"lower_params\[0\]\['lr'\]",
    ),
    BadInput(
        "PenaltyBGD: negative upper group lr",
        lambda: PenaltyBGD([{"params": [_w()], "lr": -1.0}], [_w()]),
        ValueError,
        r"upper_params\[0\]\['lr'\]",
    ),
    BadInput(
        "PenaltyBGD: nan group lr",
        lambda: PenaltyBGD([], [{"params": [_w()], "lr": math.nan}]),
        ValueError,
        "lr",
    ),
    BadInput(
        "PenaltyBGD: group lr edited negative",
        _edited_group_lr("PenaltyBGD", "lr"),
        ValueError,
        r"param_groups\[0\]\['lr'\]",
    ),
    BadInput(
        "PenaltyBGD: add_param_group negative lr",
        lambda: PenaltyBGD([], [_w()]).add_param_group({"params": [_w()], "lr": -1.0}),
        ValueError,
        "lr",
    ),
    BadInput(
        "PenaltyBGD: add_param_group unknown level",
        lambda: PenaltyBGD([], [_w()]).add_param_group({"params": [_w()]}, level="middle"),
        ValueError,
        "level",
    ),
    BadInput(
        "PenaltyBGD: add_param_group contradicting levels",
        lambda: PenaltyBGD([], [_w()]).add_param_group({"params": [_w()], "level": "upper"}, level="lower"),
        ValueError,
        "contradicts",
    ),
    BadInput(
        "PenaltyBGD: add_param_group existing param",
        lambda: (lambda w: PenaltyBGD([], [w]).add_param_group({"params": [w]}))(_w()),
        ValueError,
        "both",
    ),
    BadInput(
        "PenaltyBGD: add_param_group not a dict",
        lambda: PenaltyBGD([], [_w()]).add_param_group([_w()]),
        TypeError,
        "dict",
    ),  # type: ignore[arg-type]
    BadInput(
        "PenaltyBGD: optimizer instance",
        lambda: PenaltyBGD([], [_w()], optimizer=torch.optim.SGD([_w()])),
        TypeError,
        "instance",
    ),
    BadInput(
        "PenaltyBGD: optimizer not an Optimizer class",
        lambda: PenaltyBGD([], [_w()], optimizer=dict),
        TypeError,
        "optimizer",
    ),
    BadInput(
        "PenaltyBGD: optimizer_kwargs not a dict",
        lambda: PenaltyBGD([], [_w()], optimizer_kwargs=[1]),
        TypeError,
        "optimizer_kwargs",
    ),  # type: ignore[arg-type]
    BadInput(
        "PenaltyBGD: bad optimizer_kwargs",
        lambda: PenaltyBGD([], [_w()], optimizer_kwargs={"betas": 1}),
        TypeError,
        "optimizer=SGD",
    ),
    BadInput(
        "PenaltyBGD: max_grad_norm 0",
        lambda: PenaltyBGD([], [_w()], max_grad_norm=0.0),
        ValueError,
        "max_grad_norm",
    ),
    BadInput(
        "PenaltyBGD: max_grad_norm unknown level",
        lambda: PenaltyBGD([], [_w()], max_grad_norm={"middle": 1.0}),
        ValueError,
        "unknown levels",
    ),
    BadInput(
        "PenaltyBGD: max_grad_norm negative level",
        lambda: PenaltyBGD([], [_w()], max_grad_norm={"lower": -1.0}),
        ValueError,
        r"max_grad_norm\['lower'\]",
    ),
    BadInput(
        "PenaltyBGD: batch_size 0",
        lambda: penalty().opt.step(
            upper_loss=lambda: torch.zeros(()), lower_loss=lambda: torch.zeros(()), batch_size=0
        ),
        ValueError,
        "batch_size",
    ),
    BadInput(
        "Equilibrium: group lr edited negative",
        _edited_group_lr("Equilibrium", "lr"),
        ValueError,
        r"param_groups\[0\]\['lr'\]",
    ),
    BadInput(
        "Equilibrium: group inner_lr edited negative",
        _edited_group_lr("Equilibrium", "inner_lr"),
        ValueError,
        "inner_lr",
    ),
    BadInput(
        "Equilibrium: add_param_group negative lr",
        lambda: Equilibrium([_w()]).add_param_group({"params": [_w()], "lr": -1.0}),
        ValueError,
        "lr",
    ),
    BadInput(
        "Equilibrium: add_param_group negative inner_lr",
        lambda: Equilibrium([_w()]).add_param_group({"params": [_w()], "inner_lr": -1.0}),
        ValueError,
        "inner_lr",
    ),
    BadInput(
        "Equilibrium: both new and deprecated names",
        lambda: Equilibrium([_w()], optimizer=torch.optim.SGD, outer_optimizer=torch.optim.SGD),
        TypeError,
        "deprecated",
    ),
    BadInput(
        "Equilibrium: bad optimizer_kwargs",
        lambda: Equilibrium([_w()], optimizer_kwargs={"nesterov": True, "bogus": 1}),
        TypeError,
        "optimizer=SGD",
    ),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=lambda c: c.name)
def test_bad_input_is_rejected_with_a_clear_error(case: BadInput) -> None:
    assert_rejects(case)


# -- one argument convention ----------------------------------------------------------------------------


def test_both_optimizers_share_argument_names_kinds_and_defaults() -> None:
    sp = inspect.signature(PenaltyBGD).parameters
    se = inspect.signature(Equilibrium).parameters
    for name in ("lr", "inner_lr", "inner_steps", "max_grad_norm", "optimizer", "optimizer_kwargs"):
        assert name in sp and name in se, name
    assert sp["lr"].kind is se["lr"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert sp["lr"].default == se["lr"].default == 1e-2
    for name in ("inner_lr", "optimizer", "optimizer_kwargs", "max_grad_norm"):
        assert sp[name].kind is se[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert sp[name].default is se[name].default is None, name
    assert sp["inner_steps"].kind is se["inner_steps"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("maker", MAKERS, ids=str)
def test_a_class_or_a_partial_drives_the_levels_like_torch_optim(maker: str) -> None:
    by_kwargs = MAKERS[maker](optimizer=torch.optim.SGD, optimizer_kwargs={"momentum": 0.7})
    by_partial = MAKERS[maker](optimizer=functools.partial(torch.optim.SGD, momentum=0.7))
    for _ in range(3):
        by_kwargs.step()
        by_partial.step()
    assert all(torch.equal(p, q) for p, q in zip(by_kwargs.params, by_partial.params))  # the same ops


def test_equilibrium_deprecated_names_still_work_with_a_warning() -> None:
    new = equilibrium(optimizer=torch.optim.Adam, optimizer_kwargs={"betas": (0.5, 0.9)})
    with pytest.warns(DeprecationWarning, match="outer_optimizer"):
        old = equilibrium(outer_optimizer=torch.optim.Adam, optimizer_kwargs={"betas": (0.5, 0.9)})
    with pytest.warns(DeprecationWarning, match="outer_kwargs"):
        equilibrium(outer_kwargs={"momentum": 0.1})
    for _ in range(2):
        new.step()
        old.step()
    assert all(torch.equal(p, q) for p, q in zip(new.params, old.params))


@pytest.mark.parametrize("maker", MAKERS, ids=str)
def test_stats_as_dict_names_every_field(maker: str) -> None:
    pb = MAKERS[maker]()
    st = pb.step()
    d = st.as_dict()
    assert d["step"] == st.step and all(not callable(v) for v in d.values())
    if maker == "PenaltyBGD":
        assert {"f", "g", "gap", "upper_grad_norm", "lower_grad_norm", "gamma", "scale", "skipped"} <= set(d)
    else:
        assert {"sources", "loss_before", "loss_after", "grad_norm", "mean_before", "mean_after"} <= set(d)


# -- the inner_lr default warning -------------------------------------------------------------------------


def test_inner_lr_defaulting_to_an_adam_lr_warns_and_the_gap_shows_why() -> None:
    x, y = torch.zeros(1, requires_grad=True), torch.zeros(2, requires_grad=True)
    with pytest.warns(UserWarning, match="inner_lr defaults to lr"):
        opt = PenaltyBGD([x], [y], lr=1e-3, inner_steps=1, optimizer=torch.optim.Adam)
    with pytest.warns(UserWarning, match="inner_lr defaults to lr"):
        penalty(lr=1e-3, inner_steps=1, optimizer=functools.partial(torch.optim.AdamW, weight_decay=0.1))
    with pytest.warns(UserWarning, match="inner_lr defaults to lr"):
        equilibrium(lr=1e-3, inner_lr=None, optimizer=torch.optim.Adam)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        penalty(inner_steps=1)  # SGD: lr is a plain step size
        penalty(inner_steps=1, inner_lr=0.1, optimizer=torch.optim.Adam)  # explicit
        penalty(optimizer=torch.optim.Adam)  # no inner steps: inner_lr unused
        equilibrium(inner_lr=0.1, optimizer=torch.optim.Adam)
        equilibrium(inner_steps=0, optimizer=torch.optim.Adam)

    # the failure it warns about: on a flat lower loss Adam moves y by ~lr per step whatever the gradient's
    # size, the plain inner steps move ω by lr·∇g ≪ lr, so ω trails y and g(x, y) − g(x, ω) turns negative
    def f() -> torch.Tensor:
        return (x - 1).pow(2).sum()

    def g() -> torch.Tensor:
        return 0.005 * (y - 5).pow(2).sum()

    gaps = [opt.step(upper_loss=f, lower_loss=g).gap for _ in range(50)]
    assert gaps[-1] < 0


# -- per-level gradient clipping --------------------------------------------------------------------------


def _clipped(grads: list[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    """The reference: torch.nn.utils.clip_grad_norm_ on copies."""
    ps = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(ps, max_norm)
    return [p.grad for p in ps]


def test_penalty_clipping_per_level_matches_clip_grad_norm() -> None:
    free = penalty(lr=0.0)
    free.step()
    ref = [p.grad.clone() for p in free.params]
    clipped = penalty(lr=0.0, max_grad_norm={"lower": 0.1})
    st = clipped.step()
    x, y = clipped.params
    torch.testing.assert_close(x.grad, ref[0], rtol=1e-15, atol=0)  # upper untouched
    torch.testing.assert_close(y.grad, _clipped(ref[1:], 0.1)[0], rtol=1e-12, atol=0)
    assert math.isclose(st.lower_grad_norm, float(ref[1].norm()) / st.scale, rel_tol=1e-12)  # before clipping
    lazy = penalty(lr=0.0, max_grad_norm=0.1, check_finite=False)  # the no-sync path clips the same way
    lazy.step()
    for p, r in zip(lazy.params, ref):
        torch.testing.assert_close(p.grad, _clipped([r], 0.1)[0], rtol=1e-12, atol=0)


def test_equilibrium_clipping_matches_clip_grad_norm() -> None:
    free = equilibrium(lr=0.0)
    free.step()
    ref = [p.grad.clone() for p in free.params]
    clipped = equilibrium(lr=0.0, max_grad_norm=0.05)
    st = clipped.step()
    total = math.sqrt(sum(float(r.pow(2).sum()) for r in ref))
    assert math.isclose(st.grad_norm, total, rel_tol=1e-12) and total > 0.05
    for p, r in zip(clipped.params, _clipped(ref, 0.05)):
        torch.testing.assert_close(p.grad, r, rtol=1e-12, atol=0)


# -- overflow-safe norms ----------------------------------------------------------------------------------


def test_finite_float32_gradients_above_1e19_are_accepted_and_measured() -> None:
    y = torch.zeros(4, requires_grad=True)
    opt = PenaltyBGD([], [y], lr=1e-21, gamma=0.0, scale_steps=False)
    st = opt.step(upper_loss=lambda: (y * 3e19).sum(), lower_loss=lambda: y.sum() * 0)
    assert math.isclose(st.lower_grad_norm, 2 * float(torch.tensor(3e19)), rel_tol=1e-6)
    assert bool(torch.isfinite(y).all()) and float(y.detach()[0]) != 0.0
    w = torch.zeros(4, requires_grad=True)
    eq = Equilibrium([w], lr=1e-21, inner_steps=0)
    st2 = eq.step(source_losses=[lambda: (w * 3e19).sum()])
    assert math.isclose(st2.grad_norm, 2 * float(torch.tensor(3e19)), rel_tol=1e-6)


# -- state_dict: the torch convention, stated and checked ----------------------------------------------------


@pytest.mark.parametrize("maker", MAKERS, ids=str)
def test_state_dict_holds_live_references_as_torch_and_deepcopy_round_trips(maker: str) -> None:
    assert "references" in (PenaltyBGD.state_dict.__doc__ or "") and "references" in (
        Equilibrium.state_dict.__doc__ or ""
    )
    a = MAKERS[maker](optimizer=torch.optim.Adam, inner_lr=0.05)
    a.step()
    live = a.opt.state_dict()
    saved = copy.deepcopy(live)
    key = "outer" if maker == "Equilibrium" else "lower"
    exp_avg = live[key]["state"][next(iter(live[key]["state"]))]["exp_avg"]
    before = exp_avg.clone()
    a.step()
    assert not torch.equal(exp_avg, before)  # a reference: it followed the step (torch's convention)
    b = MAKERS[maker](optimizer=torch.optim.Adam, inner_lr=0.05)
    b.step()
    b.opt.load_state_dict(saved)
    c = MAKERS[maker](optimizer=torch.optim.Adam, inner_lr=0.05)
    c.step()
    with torch.no_grad():  # same parameters as `a` had when `saved` was taken
        for p, q in zip(b.params, c.params):
            p.copy_(q)
    b.step()
    assert all(torch.equal(p, q) for p, q in zip(a.params, b.params))


def test_public_names() -> None:
    assert bilevel.EquilibriumStats is bilevel.equilibrium.EquilibriumStats
    from bilevel.equilibrium import functional, optimizer

    assert optimizer.Equilibrium is Equilibrium and callable(functional.equilibrium_direction)
