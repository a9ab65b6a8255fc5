"""PenaltyBGD, the stateful optimizer: trajectories, options, state round-trips, AMP and bad input."""

from __future__ import annotations

import copy
import functools
import io
import math

import pytest
import torch

import bilevel
from bilevel import LinearRamp, PenaltyBGD
from tests.bilevel._asserts import BadInput, assert_params_unchanged, assert_rejects, snapshot

D = torch.float64


def quad(seed: int = 0, n: int = 3, m: int = 5, lam: float = 0.1, c: float = 0.7):
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(m, n, generator=gen, dtype=D)
    b = torch.randn(m, generator=gen, dtype=D)
    x = torch.randn(n, generator=gen, dtype=D).requires_grad_()
    y = torch.randn(m, generator=gen, dtype=D).requires_grad_()

    def f() -> torch.Tensor:
        return 0.5 * (y - b).pow(2).sum() + 0.5 * lam * x.pow(2).sum()

    def g() -> torch.Tensor:
        return 0.5 * (y - A @ x).pow(2).sum() + 0.5 * c * x.pow(2).sum()

    return A, b, x, y, f, g, lam, c


def test_sgd_trajectory_equals_hand_written_update() -> None:
    A, b, x, y, f, g, lam, c = quad()
    x0, y0 = x.detach().clone(), y.detach().clone()
    lr, ilr, gam = 0.05, 0.4, LinearRamp(0.5, 4.0, 3)
    opt = PenaltyBGD([x], [y], lr=lr, gamma=gam, inner_steps=2, inner_lr=ilr)
    for _ in range(6):
        opt.step(upper_loss=f, lower_loss=g)
    # reference: plain tensors and the formulas of algorithms.md §2.2
    xr, yr, w = x0.clone(), y0.clone(), y0.clone()
    for k in range(6):
        gamma = gam(k)
        cs = min(1.0, 1.0 / gamma)
        for _ in range(2):
            w = w - ilr * (w - A @ xr)
        dvx = -A.T @ (w - A @ xr) + c * xr
        gx = lam * xr + gamma * (-A.T @ (yr - A @ xr) + c * xr) - gamma * dvx
        gy = (yr - b) + gamma * (yr - A @ xr)
        xr, yr = xr - lr * cs * gx, yr - lr * cs * gy
    torch.testing.assert_close(x.detach(), xr, rtol=0, atol=1e-13)
    torch.testing.assert_close(y.detach(), yr, rtol=0, atol=1e-13)
    torch.testing.assert_close(opt.omega[0], w, rtol=0, atol=1e-13)


def test_reaches_penalty_minimiser_of_claim1() -> None:
    th = torch.zeros(2, dtype=D, requires_grad=True)
    gamma = 10.0
    opt = PenaltyBGD([], [th], lr=1.0 / (2 + 4 * gamma), gamma=gamma, scale_steps=False)
    f = lambda: (th[0] - 2) ** 2 + th[1] ** 2  # noqa: E731
    g = lambda: (th[0] + th[1] - 1) ** 2  # noqa: E731
    for _ in range(600):
        st = opt.step(upper_loss=f, lower_loss=g)
    r = gamma / (1 + 2 * gamma)
    torch.testing.assert_close(th.detach(), torch.tensor([2 - r, -r], dtype=D), rtol=0, atol=1e-9)
    assert abs(st.g * (1 + 2 * gamma) ** 2 - 1) < 1e-6


def test_stats_report_losses_gap_gamma_and_gradient_norms() -> None:
    A, b, x, y, f, g, lam, c = quad(seed=5)  # noqa: RUF059
    opt = PenaltyBGD([x], [y], lr=0.0, gamma=4.0, inner_steps=1, inner_lr=1.0)  # lr 0: nothing moves
    st = opt.step(upper_loss=f, lower_loss=g)
    xd, yd = x.detach(), y.detach()
    assert st.step == 0 and st.gamma == 4.0 and st.scale == 0.25 and not st.skipped
    assert math.isclose(st.f, f().item(), rel_tol=1e-12) and math.isclose(st.g, g().item(), rel_tol=1e-12)
    assert math.isclose(st.gap, 0.5 * (yd - A @ xd).pow(2).sum().item(), rel_tol=1e-12)
    gx = lam * xd - 4.0 * A.T @ (yd - A @ xd)
    gy = (yd - b) + 4.0 * (yd - A @ xd)
    assert math.isclose(st.upper_grad_norm, gx.norm().item(), rel_tol=1e-6)
    assert math.isclose(st.lower_grad_norm, gy.norm().item(), rel_tol=1e-6)
    assert set(st.as_dict()) >= {"f", "g", "gap", "gamma", "upper_grad_norm", "lower_grad_norm"}
    assert opt.step(upper_loss=f, lower_loss=g).step == 1


def test_gamma_schedule_per_step_and_per_epoch() -> None:
    A, b, x, y, f, g, lam, c = quad()  # noqa: RUF059
    ramp = LinearRamp(0.0, 1.0, 4)
    per_step = PenaltyBGD([x], [y], lr=0.0, gamma=ramp)
    assert [per_step.step(upper_loss=f, lower_loss=g).gamma for _ in range(6)] == [ramp(k) for k in range(6)]
    per_epoch = PenaltyBGD([x], [y], lr=0.0, gamma=ramp, gamma_per="epoch")
    seen = []
    for _ in range(3):
        seen += [per_epoch.step(upper_loss=f, lower_loss=g).gamma for _ in range(2)]
        per_epoch.end_epoch()
    assert seen == [0.0, 0.0, 0.25, 0.25, 0.5, 0.5]
    assert per_epoch.epoch == 3 and per_epoch.current_gamma() == 0.75


def test_step_scaling_option() -> None:
    A, b, x, y, f, g, lam, c = quad()  # noqa: RUF059
    a = PenaltyBGD([x], [y], lr=0.0, gamma=8.0)
    b_ = PenaltyBGD([x], [y], lr=0.0, gamma=8.0, scale_steps=False)
    assert a.step(upper_loss=f, lower_loss=g).scale == 0.125
    assert b_.step(upper_loss=f, lower_loss=g).scale == 1.0
    ga = torch.autograd.grad(f() + 8.0 * g(), [y])[0]
    torch.testing.assert_close(y.grad, ga, rtol=1e-12, atol=0)  # b_ wrote the unscaled gradient


def _run_resumable(n_total: int, stop_at: int | None) -> list[torch.Tensor]:
    """A model with Adam on the upper level, SGD+momentum below, inner steps, a ramp and a scheduler."""
    torch.manual_seed(0)
    head, body = torch.nn.Linear(4, 1), torch.nn.Linear(3, 4)
    xs = torch.randn(16, 3)

    def make(h, bd):
        opt = PenaltyBGD(
            h.parameters(),
            bd.parameters(),
            lr=0.05,
            gamma=LinearRamp(0.0, 5.0, 5),
            inner_steps=2,
            inner_lr=0.1,
            upper_optimizer=torch.optim.Adam,
            lower_optimizer=functools.partial(torch.optim.SGD, momentum=0.9),
        )
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)

    def losses(h, bd):
        return (lambda: h(torch.tanh(bd(xs))).pow(2).mean() + h.weight.sum() ** 2), (
            lambda: (bd(xs) - 1.0).pow(2).mean()
        )

    opt, sched = make(head, body)
    f, g = losses(head, body)
    for k in range(n_total):
        if stop_at is not None and k == stop_at:
            buf = io.BytesIO()
            torch.save(
                {"m": (head.state_dict(), body.state_dict()), "o": opt.state_dict(), "s": sched.state_dict()},
                buf,
            )
            buf.seek(0)
            ck = torch.load(buf)
            head, body = torch.nn.Linear(4, 1), torch.nn.Linear(3, 4)  # fresh objects, other values
            head.load_state_dict(ck["m"][0])
            body.load_state_dict(ck["m"][1])
            opt, sched = make(head, body)
            opt.load_state_dict(ck["o"])
            sched.load_state_dict(ck["s"])
            f, g = losses(head, body)
        opt.step(upper_loss=f, lower_loss=g)
        sched.step()
    assert opt.omega is not None
    return [p.detach().clone() for p in (*head.parameters(), *body.parameters())] + list(opt.omega)


def test_resume_from_state_dict_is_bitwise_identical() -> None:
    straight = _run_resumable(10, None)
    resumed = _run_resumable(10, 4)
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed))


def test_param_groups_lr_schedulers_and_zero_grad() -> None:
    A, b, x, y, f, g, lam, c = quad()  # noqa: RUF059
    y2 = torch.randn(2, dtype=D, requires_grad=True)
    g2 = lambda: g() + y2.pow(2).sum()  # noqa: E731
    frozen = y2.detach().clone()
    opt = PenaltyBGD([x], [{"params": [y], "lr": 0.1}, {"params": [y2], "lr": 0.0}], lr=0.2, gamma=1.0)
    assert [grp["lr"] for grp in opt.param_groups] == [0.2, 0.1, 0.0]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5**e)
    x_before = x.detach().clone()
    opt.step(upper_loss=f, lower_loss=g2)
    assert torch.equal(y2.detach(), frozen)  # lr 0 group untouched
    torch.testing.assert_close(x.detach(), x_before - 0.2 * x.grad, rtol=0, atol=1e-14)
    sched.step()
    assert (
        opt.upper_optimizer.param_groups[0]["lr"] == 0.1 and opt.lower_optimizer.param_groups[0]["lr"] == 0.05
    )
    opt.zero_grad()
    assert x.grad is None and y.grad is None


def test_any_torch_optimizer_drives_each_level() -> None:
    A, b, x, y, f, g, lam, c = quad()  # noqa: RUF059
    xr, yr = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    opt = PenaltyBGD(
        [x], [y], lr=0.01, gamma=2.0, optimizer=torch.optim.AdamW, optimizer_kwargs={"weight_decay": 0.1}
    )
    assert isinstance(opt.upper_optimizer, torch.optim.AdamW) and isinstance(
        opt.lower_optimizer, torch.optim.AdamW
    )
    ref = torch.optim.AdamW([xr, yr], lr=0.01, weight_decay=0.1)
    for _ in range(4):
        opt.step(upper_loss=f, lower_loss=g)
        with torch.no_grad():
            gx, gy = x.grad.clone(), y.grad.clone()
        # the same gradients fed by hand to a reference AdamW give the same parameters
        xr.grad, yr.grad = gx, gy
        ref.step()
        # (reference must follow the same iterates: re-sync the inputs to the closures)
        torch.testing.assert_close(xr.detach(), x.detach(), rtol=0, atol=1e-14)
        torch.testing.assert_close(yr.detach(), y.detach(), rtol=0, atol=1e-14)


def test_gradient_penalty_option_reports_grad_norm_squared() -> None:
    A, b, x, y, f, g, lam, c = quad()  # noqa: RUF059
    opt = PenaltyBGD([x], [y], lr=0.0, gamma=2.0, penalty="gradient")
    st = opt.step(upper_loss=f, lower_loss=g)
    gy = y.detach() - A @ x.detach()
    assert math.isclose(st.gap, gy.pow(2).sum().item(), rel_tol=1e-12)
    assert opt.omega is None


def test_empty_upper_with_inner_steps_reports_gap() -> None:
    m = torch.nn.Linear(3, 1)
    xs = torch.randn(8, 3)
    opt = PenaltyBGD([], m.parameters(), lr=0.1, gamma=1.0, inner_steps=50, inner_lr=0.3)
    st = opt.step(upper_loss=lambda: m(xs).mean() ** 2, lower_loss=lambda: (m(xs) - 1).pow(2).mean())
    assert opt.upper_optimizer is None
    # ω converged to a minimiser of g (v = 0 up to optimisation error): gap ≈ g
    assert st.gap is not None and abs(st.gap - st.g) < 1e-3


def test_autocast_bf16_on_cpu_tracks_float32() -> None:
    torch.manual_seed(1)
    m32 = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    m16 = copy.deepcopy(m32)
    xs, ys = torch.randn(32, 8), torch.randn(32, 1)

    def run(model, autocast: bool):
        opt = PenaltyBGD(
            list(model[2].parameters()), list(model[0].parameters()), lr=0.05, gamma=1.0, inner_steps=1
        )
        f = lambda: torch.nn.functional.mse_loss(model(xs).float(), ys)  # noqa: E731
        g = lambda: model[0](xs).float().pow(2).mean()  # noqa: E731
        for _ in range(5):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                st = opt.step(upper_loss=f, lower_loss=g)
        return st

    s32, s16 = run(m32, False), run(m16, True)
    for p, q in zip(m32.parameters(), m16.parameters()):
        assert q.dtype == torch.float32
        torch.testing.assert_close(q, p, rtol=0, atol=2e-2)
    assert math.isclose(s16.f, s32.f, rel_tol=5e-2)


def test_grad_scaler_matches_unscaled_and_skips_on_overflow() -> None:
    A, b, x, y, f, g, lam, c = quad()
    x2, y2 = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    f2 = lambda: 0.5 * (y2 - b).pow(2).sum() + 0.5 * lam * x2.pow(2).sum()  # noqa: E731
    g2 = lambda: 0.5 * (y2 - A @ x2).pow(2).sum() + 0.5 * c * x2.pow(2).sum()  # noqa: E731
    plain = PenaltyBGD([x], [y], lr=0.05, gamma=3.0, inner_steps=1)
    scaled = PenaltyBGD([x2], [y2], lr=0.05, gamma=3.0, inner_steps=1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    for _ in range(3):
        plain.step(upper_loss=f, lower_loss=g)
        st = scaled.step(upper_loss=f2, lower_loss=g2, grad_scaler=scaler)
        assert not st.skipped
    torch.testing.assert_close(x2.detach(), x.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y2.detach(), y.detach(), rtol=1e-12, atol=1e-12)
    # a scale that overflows the gradients: the step is skipped and the scale backs off
    huge = torch.amp.GradScaler("cpu", init_scale=2.0**120)
    before = x2.detach().clone()
    st = scaled.step(upper_loss=lambda: f2() * 1e300, lower_loss=g2, grad_scaler=huge)
    assert st.skipped and torch.equal(x2.detach(), before) and huge.get_scale() < 2.0**120


def test_readme_style_shared_model_runs_and_lowers_both_losses() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 1)
    xl, yl, xu = torch.randn(16, 5), torch.randn(16, 1), torch.randn(64, 5)
    f = lambda: torch.nn.functional.mse_loss(model(xl), yl)  # noqa: E731
    g = lambda: model(xu).pow(2).mean()  # noqa: E731
    opt = bilevel.PenaltyBGD([], model.parameters(), lr=0.05, gamma=LinearRamp(0.0, 1.0, 50))
    first = opt.step(upper_loss=f, lower_loss=g)
    for _ in range(150):
        last = opt.step(upper_loss=f, lower_loss=g)
    assert last.f + last.g < first.f + first.g


# -- bad input ---------------------------------------------------------------------------------------


_P, _Q = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
_A, _B, _X, _Y, _F, _G, _LAM, _C = quad()


def _pstep(upper_loss, lower_loss, **kw):
    return PenaltyBGD([_X], [_Y], **{"lr": 0.1, "gamma": 1.0, **kw}).step(
        upper_loss=upper_loss, lower_loss=lower_loss
    )


BAD_INPUT = [
    BadInput("empty lower_params", lambda: PenaltyBGD([_P], []), ValueError, "lower_params is empty"),
    BadInput(
        "overlapping levels",
        lambda: PenaltyBGD([_P], [_Q, _P]),
        ValueError,
        "both upper_params and lower_params",
    ),
    BadInput("negative gamma", lambda: PenaltyBGD([_P], [_Q], gamma=-1.0), ValueError, "gamma must be >= 0"),
    BadInput(
        "negative gamma schedule",
        lambda: PenaltyBGD([_P], [_Q], gamma=LinearRamp(-1.0, 1.0, 10)),
        ValueError,
        "gamma must be >= 0",
    ),
    BadInput(
        "negative inner_steps", lambda: PenaltyBGD([_P], [_Q], inner_steps=-1), ValueError, "inner_steps"
    ),
    BadInput("zero inner_lr", lambda: PenaltyBGD([_P], [_Q], inner_lr=0.0), ValueError, "inner_lr"),
    BadInput("negative lr", lambda: PenaltyBGD([_P], [_Q], lr=-0.1), ValueError, "lr"),
    BadInput(
        "unknown penalty", lambda: PenaltyBGD([_P], [_Q], penalty="l2"), ValueError, "penalty must be one of"
    ),
    BadInput("unknown gamma_per", lambda: PenaltyBGD([_P], [_Q], gamma_per="batch"), ValueError, "gamma_per"),
    BadInput(
        "scale_steps not a bool", lambda: PenaltyBGD([_P], [_Q], scale_steps=1), TypeError, "scale_steps"
    ),
    BadInput(
        "check_finite not a bool",
        lambda: PenaltyBGD([_P], [_Q], check_finite=None),
        TypeError,
        "check_finite",
    ),
    BadInput("optimizer a string", lambda: PenaltyBGD([_P], [_Q], optimizer="adam"), TypeError, "optimizer"),
    BadInput("gamma a string", lambda: PenaltyBGD([_P], [_Q], gamma="big"), TypeError, "gamma"),
    BadInput(
        "vector upper loss", lambda: _pstep(lambda: _Y * 2, _G), ValueError, "upper_loss must return a scalar"
    ),
    BadInput(
        "nan lower loss",
        lambda: _pstep(_F, lambda: _G() * float("nan")),
        ValueError,
        "lower_loss returned a non-finite",
    ),
    BadInput(
        "float upper loss",
        lambda: _pstep(lambda: 1.0, _G),
        TypeError,
        "upper_loss must return a scalar torch.Tensor",
    ),
    BadInput("one positional closure", lambda: PenaltyBGD([_X], [_Y]).step(_F), TypeError, "two closures"),
    BadInput(
        "losses without the parameters",
        lambda: _pstep(
            lambda: torch.ones((), requires_grad=True) * 1.0, lambda: torch.ones((), requires_grad=True) * 1.0
        ),
        ValueError,
        "does not depend on the parameters",
    ),
    BadInput(
        "lower loss without the lower parameters",
        lambda: _pstep(_F, lambda: _X.pow(2).sum(), inner_steps=1, inner_lr=0.1),
        ValueError,
        "lower_loss returned a loss that does not depend",
    ),
    BadInput(
        "infinite gradient",
        lambda: _pstep(lambda: _F() + (_X * 0).abs().sqrt().sum(), _G),
        ValueError,
        "gradient is not finite",
    ),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=lambda c: c.name)
def test_bad_input_raises_a_clear_error_and_leaves_the_parameters(case: BadInput) -> None:
    before = snapshot([_X, _Y])
    assert_rejects(case)
    assert_params_unchanged([_X, _Y], before)


def test_a_gamma_schedule_that_turns_negative_is_caught_at_the_step() -> None:
    A, b, x, y, f, g, lam, c = quad()  # noqa: RUF059
    ramp_down = PenaltyBGD([x], [y], gamma=lambda k: 1.0 - k)
    ramp_down.step(upper_loss=f, lower_loss=g)
    ramp_down.step(upper_loss=f, lower_loss=g)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        ramp_down.step(upper_loss=f, lower_loss=g)


def test_step_under_no_grad_still_differentiates_the_closures() -> None:
    A, b, x, y, f, g, lam, c = quad()
    x2, y2 = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    ref = PenaltyBGD([x2], [y2], lr=0.1)
    ref.step(upper_loss=lambda: f_of(x2, y2, b, lam), lower_loss=lambda: g_of(x2, y2, A, c))
    opt = PenaltyBGD([x], [y], lr=0.1)
    with torch.no_grad():
        opt.step(upper_loss=f, lower_loss=g)
    assert torch.equal(x.detach(), x2.detach()) and torch.equal(y.detach(), y2.detach())  # same ops


def f_of(x, y, b, lam):
    return 0.5 * (y - b).pow(2).sum() + 0.5 * lam * x.pow(2).sum()


def g_of(x, y, A, c):
    return 0.5 * (y - A @ x).pow(2).sum() + 0.5 * c * x.pow(2).sum()


def test_load_state_dict_rejects_mismatches() -> None:
    A, b, x, y, f, g, lam, c = quad()  # noqa: RUF059
    opt = PenaltyBGD([x], [y], inner_steps=1)
    opt.step(upper_loss=f, lower_loss=g)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="missing"):
        PenaltyBGD([x], [y]).load_state_dict({"step": 1})
    with pytest.raises(ValueError, match="upper_params"):
        PenaltyBGD([], [y]).load_state_dict(sd)
    z = torch.zeros(2, dtype=D, requires_grad=True)
    with pytest.raises(ValueError, match="omega"):
        PenaltyBGD([x], [z]).load_state_dict(sd)


def test_non_finite_values_leave_parameters_unchanged() -> None:
    A, b, x, y, f, g, lam, c = quad()  # noqa: RUF059
    opt = PenaltyBGD([x], [y], lr=0.1, gamma=1.0, inner_steps=1, inner_lr=0.1)
    opt.step(upper_loss=f, lower_loss=g)
    x0, y0, w0 = x.detach().clone(), y.detach().clone(), opt.omega[0].clone()
    with pytest.raises(ValueError, match="upper_loss returned a non-finite loss"):
        opt.step(upper_loss=lambda: f() + float("inf"), lower_loss=g)
    assert torch.equal(x.detach(), x0) and torch.equal(y.detach(), y0)
    # a loss that is only non-finite at the inner copy ω: ω is reset, the parameters are kept
    with pytest.raises(ValueError, match="inner copy"):
        opt.step(upper_loss=f, lower_loss=lambda: g() + (y - y0).abs().sum() * 1e308 * 10)
    assert torch.equal(x.detach(), x0) and torch.equal(y.detach(), y0) and opt.omega is None
    assert not torch.equal(w0, y0)
    # finite losses, non-finite gradient (d/dx sqrt at 0)
    with pytest.raises(ValueError, match="gradient is not finite"):
        opt.step(upper_loss=lambda: f() + (x * 0).abs().sqrt().sum(), lower_loss=g)
    assert torch.equal(x.detach(), x0)


def test_check_finite_false_gives_the_same_run_with_lazy_stats() -> None:
    A, b, x, y, f, g, lam, c = quad(seed=3)
    x2, y2 = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    f2 = lambda: 0.5 * (y2 - b).pow(2).sum() + 0.5 * lam * x2.pow(2).sum()  # noqa: E731
    g2 = lambda: 0.5 * (y2 - A @ x2).pow(2).sum() + 0.5 * c * x2.pow(2).sum()  # noqa: E731
    checked = PenaltyBGD([x], [y], lr=0.05, gamma=2.0, inner_steps=1)
    lazy = PenaltyBGD([x2], [y2], lr=0.05, gamma=2.0, inner_steps=1, check_finite=False)
    for _ in range(4):
        s1 = checked.step(upper_loss=f, lower_loss=g)
        s2 = lazy.step(upper_loss=f2, lower_loss=g2)
    assert torch.equal(x.detach(), x2.detach()) and torch.equal(y.detach(), y2.detach())
    assert s1.as_dict() == s2.as_dict() and "gap=" in repr(s2)
    # without checks a non-finite loss is not caught: it propagates into the parameters
    s3 = lazy.step(upper_loss=lambda: f2() * float("nan"), lower_loss=g2)
    assert math.isnan(s3.f) and torch.isnan(y2.detach()).all()
    with pytest.raises(TypeError, match="check_finite"):
        PenaltyBGD([x], [y], check_finite=None)  # type: ignore[arg-type]
