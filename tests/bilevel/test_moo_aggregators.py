"""Aggregators: invariants (hypothesis), exact optima, peers (torchjd), input checks, state round-trips."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.problems import exact_min_norm  # independent reference (KKT enumeration)
from bilevel.moo import MGDA, CAGrad, MoDo, PCGrad, cagrad_weights, mgda_weights, modo_step, project_simplex
from bilevel.moo._simplex import frank_wolfe_gap, min_norm_weights

SETTINGS = settings(max_examples=25, deadline=None)


def rand_G(seed: int, m: int, d: int, shift: float = 0.0, scale_spread: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(m, d, generator=g, dtype=torch.float64)
    G = G + shift * torch.randn(d, generator=g, dtype=torch.float64)
    scales = torch.exp(scale_spread * torch.randn(m, 1, generator=g, dtype=torch.float64))
    return G * scales


instances = st.builds(
    rand_G,
    seed=st.integers(0, 2**31 - 1),
    m=st.integers(2, 8),
    d=st.integers(1, 24),
    shift=st.sampled_from([0.0, 0.5, 2.0]),
    scale_spread=st.sampled_from([0.0, 1.0, 3.0]),
)


# ----------------------------------------------------------------------------------------- MGDA


@SETTINGS
@given(instances)
def test_mgda_common_descent_and_simplex(G: torch.Tensor) -> None:
    """C5: ⟨d, g_i⟩ ≥ ‖d‖² for every i (up to 1e-9 of the largest ‖g_i‖²); weights on the simplex."""
    w = MGDA().weights(G)
    d = w @ G
    scale = float((G * G).sum(1).max())
    assert float(w.min()) >= 0 and abs(float(w.sum()) - 1) < 1e-12
    assert float((G @ d).min() - d @ d) >= -1e-9 * scale


@SETTINGS
@given(instances.filter(lambda G: G.shape[0] <= 6))
def test_mgda_is_the_exact_min_norm_point(G: torch.Tensor) -> None:
    """The solver's ‖d‖² equals the optimum found by enumerating supports (to 1e-9 of max ‖g_i‖²)."""
    Q = G @ G.T
    d = MGDA()(G)
    assert float(d @ d) - exact_min_norm(Q) <= 1e-9 * float(Q.diagonal().max())


@SETTINGS
@given(instances, st.randoms(use_true_random=False))
def test_mgda_permutation_and_scale_equivariance(G: torch.Tensor, rnd) -> None:
    perm = list(range(G.shape[0]))
    rnd.shuffle(perm)
    d = MGDA()(G)
    scale = float(G.norm())
    assert torch.allclose(MGDA()(G[perm]), d, atol=1e-7 * scale, rtol=0)
    assert torch.allclose(MGDA()(3.0 * G), 3.0 * d, atol=1e-7 * scale, rtol=0)


@pytest.mark.parametrize("kappa", [0.1, 1.0, 7.0])
def test_mgda_pareto_stationary_gives_zero(kappa: float) -> None:
    """C6: g_2 = −κ g_1 ⇒ min-norm 0 at α = κ/(1+κ)."""
    g1 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    G = torch.stack([g1, -kappa * g1, torch.tensor([3.0, 1.0, 1.0], dtype=torch.float64)])[:2]
    w = MGDA().weights(G)
    assert float((w @ G).norm()) < 1e-12
    assert abs(float(w[0]) - kappa / (1 + kappa)) < 1e-12
    # with a third gradient the hull still contains 0
    G3 = torch.cat([G, torch.tensor([[3.0, 1.0, 1.0]], dtype=torch.float64)])
    G3 = torch.cat([G3, -G3.sum(0, keepdim=True)])
    assert float(MGDA()(G3).norm()) < 1e-6


def test_mgda_two_point_closed_form_matches_frank_wolfe() -> None:
    """C5: for m = 2 the closed form equals a long Frank–Wolfe run to 1e-5."""
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        G = torch.randn(2, 7, generator=g, dtype=torch.float64)
        Q = G @ G.T
        a = torch.tensor([0.5, 0.5], dtype=torch.float64)
        for _ in range(50):
            t = int(torch.argmin(Q @ a))
            e = torch.zeros(2, dtype=torch.float64)
            e[t] = 1
            den = float((a - e) @ Q @ (a - e))
            gam = 0.0 if den <= 0 else min(1.0, max(0.0, float((a - e) @ Q @ a) / den))
            a = (1 - gam) * a + gam * e
        assert torch.allclose(MGDA().weights(G), a, atol=1e-5)


def test_mgda_accuracy_up_to_16_objectives() -> None:
    """Relative accuracy ≤ 1e-6 of d against the exact min-norm point for m up to 16 (FW-gap certificate:
    ‖d − d*‖² ≤ 2·gap), where Frank–Wolfe with 100 iterations does not reach it."""
    g = torch.Generator().manual_seed(0)
    fw_fail = 0
    for m in (3, 8, 12, 16):
        for _ in range(4):
            G = torch.randn(m, 40, generator=g, dtype=torch.float64) + 0.8 * torch.randn(
                40, generator=g, dtype=torch.float64
            )
            Q = G @ G.T
            w = min_norm_weights(Q)
            d = w @ G
            bound = math.sqrt(2 * max(frank_wolfe_gap(Q, w), 0.0))
            assert bound <= 1e-6 * float(d.norm())
            # plain Frank–Wolfe, fixed budget of 100 iterations
            a = torch.full((m,), 1.0 / m, dtype=torch.float64)
            for _ in range(100):
                t = int(torch.argmin(Q @ a))
                e = torch.zeros(m, dtype=torch.float64)
                e[t] = 1
                den = float((a - e) @ Q @ (a - e))
                gam = 0.0 if den <= 0 else min(1.0, max(0.0, float((a - e) @ Q @ a) / den))
                a = (1 - gam) * a + gam * e
            fw_fail += float((a @ G - d).norm()) > 1e-6 * float(d.norm())
    assert fw_fail > 0


def test_mgda_normalizations() -> None:
    G = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    losses = torch.tensor([2.0, 0.5], dtype=torch.float64)
    # l2: weights from normalized gradients, applied to raw gradients (Sener & Koltun)
    w = MGDA("l2").weights(G)
    assert torch.allclose(w, MGDA().weights(G / G.norm(dim=1, keepdim=True)))
    w = MGDA("loss").weights(G, losses=losses)
    assert torch.allclose(w, MGDA().weights(G / losses[:, None]))
    w = MGDA("loss+").weights(G, losses=losses)
    assert torch.allclose(w, MGDA().weights(G / (losses * G.norm(dim=1))[:, None]))
    with pytest.raises(ValueError, match="needs the loss values"):
        MGDA("loss").weights(G)
    with pytest.raises(ValueError, match="normalization"):
        MGDA("max")


@pytest.mark.peers
def test_mgda_matches_torchjd() -> None:
    """Same direction as torchjd's MGDA on fixed matrices. torchjd runs Frank–Wolfe, whose error decays
    like O(1/k): after 3000 iterations it is within ~2e-4·‖G‖ of the exact point, hence the tolerance."""
    from torchjd.aggregation import MGDA as JdMGDA

    mats = [
        torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]),
        torch.tensor([[1.0, 2.0], [2.0, -1.0], [0.5, 0.5]]),
        torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [-0.2, 0.1, 2.0]]),
    ]
    g = torch.Generator().manual_seed(1)
    mats += [torch.randn(m, 9, generator=g) + 0.5 for m in (3, 5)]
    for G in mats:
        G = G.double()
        ref = JdMGDA(epsilon=1e-12, max_iters=3000)(G)
        assert torch.allclose(MGDA()(G), ref, atol=5e-4 * float(G.norm()), rtol=0)


# --------------------------------------------------------------------------------------- CAGrad


def _dual_value(G: torch.Tensor, w: torch.Tensor, c: float) -> float:
    g0 = G.mean(0)
    gw = w @ G
    return float(gw @ g0 + c * g0.norm() * gw.norm())


@SETTINGS
@given(instances, st.sampled_from([0.1, 0.4, 0.5, 0.9, 2.0]))
def test_cagrad_ball_and_duality_certificate(G: torch.Tensor, c: float) -> None:
    """C7: ‖d − g₀‖ = c‖g₀‖ (rescale 0), except the interior optimum d = 0 of Pareto-stationary gradients
    with c ≥ 1; optimality certified by weak duality: for the recovered dual
    w* ∈ Δ, min_i⟨g_i, d⟩ ≥ aᵀw* + c‖g₀‖‖g_w*‖ − 1e-9 (no feasible direction can do better)."""
    m = G.shape[0]
    g0 = G.mean(0)
    coef = cagrad_weights(G @ G.T, c, rescale=0)
    d = coef @ G
    scale = float(G.norm(dim=1).max())
    if c >= 1.0 and float(coef.abs().max()) == 0.0:
        # interior optimum d = 0: only when the gradients are Pareto-stationary (0 in their hull)
        assert float(MGDA()(G).norm()) <= 1e-6 * scale
        return
    assert abs(float((d - g0).norm()) - c * float(g0.norm())) <= 1e-9 * scale
    w = coef - 1.0 / m
    if float(w.sum()) > 1e-12 * float(coef.abs().sum()):
        w = w / w.sum()
        assert float(w.min()) >= -1e-12
        assert float((G @ d).min()) >= _dual_value(G, w, c) - 1e-8 * scale**2


@SETTINGS
@given(instances)
def test_cagrad_c0_is_mean_and_value_grows_with_c(G: torch.Tensor) -> None:
    g0 = G.mean(0)
    assert torch.allclose(CAGrad(0.0)(G), g0, atol=1e-14)
    scale = float(G.norm(dim=1).max()) ** 2
    vals = [float((G @ CAGrad(c, rescale=0)(G)).min()) for c in (0.0, 0.2, 0.4, 0.8)]
    assert all(b >= a - 1e-9 * scale for a, b in itertools.pairwise(vals))


def test_cagrad_rescale_options() -> None:
    G = rand_G(5, 4, 6)
    d0 = CAGrad(0.5, rescale=0)(G)
    assert torch.allclose(CAGrad(0.5, rescale=1)(G), d0 / 1.25)
    assert torch.allclose(CAGrad(0.5, rescale=2)(G), d0 / 1.5)
    with pytest.raises(ValueError, match="rescale"):
        CAGrad(0.5, rescale=3)
    with pytest.raises(ValueError, match="c must be"):
        CAGrad(-0.1)


@pytest.mark.peers
def test_cagrad_matches_torchjd() -> None:
    pytest.importorskip("cvxpy")
    from torchjd.aggregation import CAGrad as JdCAGrad

    g = torch.Generator().manual_seed(2)
    for m in (2, 3, 5):
        G = (torch.randn(m, 8, generator=g) + 0.3).double()
        ref = JdCAGrad(c=0.5, norm_eps=1e-12)(G)
        assert torch.allclose(CAGrad(0.5, rescale=0)(G), ref, atol=1e-5 * float(G.norm()))


# --------------------------------------------------------------------------------------- PCGrad


def _pcgrad_vectors(G: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    m = G.shape[0]
    out = torch.zeros_like(G[0])
    for i in range(m):
        gi = G[i].clone()
        for j in torch.randperm(m, generator=gen).tolist():
            if j == i:
                continue
            ip = gi @ G[j]
            if ip < 0:
                gi = gi - ip / (G[j] @ G[j]) * G[j]
        out += gi
    return out


@SETTINGS
@given(instances, st.integers(0, 1000))
def test_pcgrad_matches_vector_implementation(G: torch.Tensor, seed: int) -> None:
    d = PCGrad(seed)(G)
    ref = _pcgrad_vectors(G, torch.Generator().manual_seed(seed))
    assert torch.allclose(d, ref, atol=1e-10 * float(G.norm()), rtol=0)


def test_pcgrad_two_tasks_and_agreement() -> None:
    g1 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    g2 = torch.tensor([-1.0, 0.5], dtype=torch.float64)
    d = PCGrad()(torch.stack([g1, g2]))
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    assert torch.allclose(d, p1 + p2)
    G = torch.tensor([[1.0, 0.2], [0.5, 1.0], [1.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(PCGrad()(G), G.sum(0))
    assert torch.allclose(PCGrad(reduction="mean")(G), G.mean(0))


@pytest.mark.peers
def test_pcgrad_matches_torchjd_same_random_stream() -> None:
    from torchjd.aggregation import PCGrad as JdPCGrad

    G = rand_G(11, 5, 7, shift=0.3)
    torch.manual_seed(4)
    ref = JdPCGrad()(G)
    assert torch.allclose(PCGrad(seed=4)(G), ref, atol=1e-12)


def test_pcgrad_state_dict_resumes_bitwise() -> None:
    G = rand_G(1, 6, 5)
    a = PCGrad(seed=7)
    a(G)
    state = a.state_dict()
    expected = a(G)
    b = PCGrad(seed=0)
    b.load_state_dict(state)
    assert torch.equal(b(G), expected)  # a resumed run against the uninterrupted one: same ops, exact


# ----------------------------------------------------------------------------------------- MoDo


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.integers(1, 10))
def test_project_simplex_is_the_euclidean_projection(seed: int, m: int) -> None:
    g = torch.Generator().manual_seed(seed)
    v = 3 * torch.randn(m, generator=g, dtype=torch.float64)
    p = project_simplex(v)
    assert float(p.min()) >= 0 and abs(float(p.sum()) - 1) < 1e-12
    assert torch.allclose(project_simplex(p), p, atol=1e-14)
    # variational inequality of the projection: ⟨v − p, q − p⟩ ≤ 0 for every vertex q = e_j
    for j in range(m):
        e = torch.zeros(m, dtype=torch.float64)
        e[j] = 1
        assert float((v - p) @ (e - p)) <= 1e-12


def test_modo_step_formula_and_uniform_center() -> None:
    G1, G2 = rand_G(0, 3, 5), rand_G(1, 3, 5)
    lam = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    M = G1 @ G2.T
    exp = project_simplex(lam - 0.1 * (M @ lam + 0.2 * lam))
    assert torch.allclose(modo_step(lam, M, gamma=0.1, rho=0.2), exp)
    exp = project_simplex(lam - 0.1 * (M @ lam + 0.2 * (lam - 1 / 3)))
    assert torch.allclose(modo_step(lam, M, gamma=0.1, rho=0.2, center="uniform"), exp)
    agg = MoDo(gamma=0.1, rho=0.2)
    d = agg(G1, G2)
    lam1 = modo_step(torch.full((3,), 1 / 3, dtype=torch.float64), M, gamma=0.1, rho=0.2)
    assert torch.allclose(d, lam1 @ (0.5 * (G1 + G2)))
    assert agg.steps == 1 and torch.allclose(agg.lam, lam1)


def test_modo_deterministic_fixed_point_is_mgda() -> None:
    """With G1 = G2 = G and ρ = 0, λ converges to MGDA's weights (C8's noiseless limit)."""
    G = rand_G(3, 3, 6, shift=1.0)
    agg = MoDo(gamma=1.0 / float(torch.linalg.eigvalsh(G @ G.T).max()), rho=0.0)
    for _ in range(3000):
        agg.weights(G, G)
    assert torch.allclose(agg.lam, MGDA().weights(G), atol=1e-6)


def test_modo_regularised_fixed_point() -> None:
    """C9: with ρ > 0 and the uniform center, λ → argmin ½‖Gᵀλ‖² + ρ/2‖λ − 1/m‖² (checked by projected-
    gradient optimality), and λ → uniform as ρ grows."""
    G = rand_G(4, 3, 4, shift=0.5)
    Q = G @ G.T
    for rho, tol_uniform in [(1.0, None), (1e4, 1e-3)]:
        gamma = 1.0 / (float(torch.linalg.eigvalsh(Q).max()) + rho)
        agg = MoDo(gamma=gamma, rho=rho, center="uniform")
        for _ in range(2000):
            agg.weights(G, G)
        lam = agg.lam
        grad = Q @ lam + rho * (lam - 1 / 3)
        assert torch.allclose(project_simplex(lam - gamma * grad), lam, atol=1e-12)
        if tol_uniform:
            assert float((lam - 1 / 3).abs().max()) < tol_uniform


def test_modo_state_dict_resume_bitwise() -> None:
    g = torch.Generator().manual_seed(0)
    Gs = [(torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)) for _ in range(6)]
    a = MoDo(gamma=0.3, rho=0.1)
    full = [a(*p) for p in Gs]
    b = MoDo(gamma=0.3, rho=0.1)
    for p in Gs[:3]:
        b(*p)
    c = MoDo(gamma=0.3, rho=0.1)
    c.load_state_dict(b.state_dict())
    rest = [c(*p) for p in Gs[3:]]
    assert all(torch.equal(x, y) for x, y in zip(full[3:], rest))  # resume against itself: exact
    with pytest.raises(ValueError, match="objectives"):
        c(torch.randn(4, 4))


# ---------------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("agg", [MGDA(), CAGrad(0.5), PCGrad(), MoDo()], ids=repr)
def test_input_checks(agg) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        agg(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="at least 2 objectives"):
        agg(torch.ones(1, 3))
    with pytest.raises(ValueError, match="matrix"):
        agg(torch.ones(3))
    with pytest.raises(ValueError, match="shape of G"):
        agg(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        agg([[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("agg", [MGDA(), CAGrad(0.5), PCGrad(), MoDo()], ids=repr)
def test_zero_gradients(agg) -> None:
    Z = torch.zeros(3, 4)
    d = agg(Z)
    assert torch.equal(d, torch.zeros(4))  # w·0 = 0 exactly for finite w, in any kernel
    G = torch.tensor([[1.0, 2.0], [0.0, 0.0], [-1.0, 0.5]])
    d = agg(G)
    assert bool(torch.isfinite(d).all())
    if isinstance(agg, MGDA):  # a zero gradient makes the point Pareto-stationary
        assert float(d.norm()) < 1e-7


def test_mgda_weights_functional_matches_class() -> None:
    G = rand_G(9, 4, 5)
    # MGDA.weights forms the same G @ G.T and calls mgda_weights: a path against itself, exact
    assert torch.equal(mgda_weights(G @ G.T), MGDA().weights(G))


def test_cagrad_pareto_stationary_interior_optimum() -> None:
    """Found by hypothesis: two conflicting 1-D gradients, c = 2. 0 is in their hull, the optimum is the
    interior point d = 0 (value 0); the boundary formula g₀ + φ g_w/‖g_w‖ would step outside the ball."""
    G = rand_G(seed=0, m=2, d=1)
    assert float(G[0, 0] * G[1, 0]) < 0  # conflicting
    d = CAGrad(2.0, rescale=0)(G)
    assert torch.equal(d, torch.zeros_like(d))  # the interior optimum is set to exact zeros
    # for c < 1 the optimum stays on the ball
    d = CAGrad(0.5, rescale=0)(G)
    assert abs(float((d - G.mean(0)).norm()) - 0.5 * float(G.mean(0).norm())) <= 1e-12
