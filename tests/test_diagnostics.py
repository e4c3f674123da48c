"""Curvature diagnostics (alice_ref.tools.diagnostics) on landscapes with known truth.

Truth comes from the landscapes (SeparableGlass: rho = lam s^2, no Hessian; Quadratic: H), from
algebra (a linear model's MSE Hessian, R2's exact Hutchinson variance) or from R1's exponents
(1 for glass, 2 for a Hessian); tolerances are the diagnostics' standard errors or R2's exact
variance, never numbers the diagnostics produced themselves.
"""

import json
import math

import numpy as np
import pytest
from conftest import load_namespace

from alice_ref import rademacher_variance
from alice_ref.landscapes import Quadratic, SeparableGlass
from alice_ref.tools import diagnostics as D

K_SE = 4.0  # |measured - truth| <= K_SE * se: a 4-sigma band (two-sided miss rate ~6e-5)


def _glass_problem(xp=np, n=1000):
    """Two groups of n coordinates: rho = 50 * 1^2 = 50 and rho = 20 * 2^2 = 80, no Hessian."""
    lam = np.r_[np.full(n, 50.0), np.full(n, 20.0)]
    s = np.r_[np.full(n, 1.0), np.full(n, 2.0)]
    L = SeparableGlass(2 * n, lam=lam, s=s, h=0.0, b=0.3, seed=3)
    theta = xp.asarray(np.full(2 * n, 0.1))
    return L, D.from_flat(lambda th: (L.loss(th), L.grad(th)), theta, [n, n], ["a", "b"], L.loss)


def _quadratic_problem(n=24, diagonal=False):
    Q = Quadratic(n, seed=2, diagonal=diagonal)
    half = n // 2
    prob = D.from_flat(lambda th: (Q.loss(th), Q.grad(th)), np.zeros(n), [half, n - half],
                       ["first", "second"], Q.loss)
    return Q, prob


# -- curvature probe ---------------------------------------------------------------------------

def test_glass_density_matches_lam_s2_within_se():
    _L, prob = _glass_problem()
    rep = D.curvature_probe(prob, 0.05, n_probes=4, seed=1)
    for g, truth in zip(rep.groups, (50.0, 80.0)):
        assert g.size == 1000
        est = g.glass_density
        assert est.se > 0
        assert abs(est.value - truth) <= K_SE * est.se, (g.name, est)
        # the landscape has no Hessian: the signed diagonal is glass noise around 0
        assert abs(g.hessian_mean.value) <= K_SE * g.hessian_mean.se
        # R3: E[((g+ - g-)/(2 sigma))^2] = H^2 + rho / (2 sigma) -- the glass leaks into 'rms'
        assert abs(g.curvature_rms.value - truth / (2 * 0.05)) <= K_SE * g.curvature_rms.se
    assert rep.evaluations == 1 + 2 * 4


def test_hessian_mean_on_quadratic_within_se_and_exact_variance():
    Q, prob = _quadratic_problem()
    K = 64
    rep = D.curvature_probe(prob, 0.1, n_probes=K, seed=4)
    diag = np.diag(Q.hessian)
    for g, sl in zip(rep.groups, (slice(0, 12), slice(12, 24))):
        assert abs(g.hessian_mean.value - diag[sl].mean()) <= K_SE * g.hessian_mean.se
        # no glass on a quadratic: the three-point kernel annihilates it up to rounding
        assert g.glass_density.value <= 1e-20
    # per element: R2's exact variance of the Hutchinson estimator, averaged over K probes
    h = np.concatenate([a.ravel() for a in rep.hess_diag])
    sd = np.sqrt(rademacher_variance(Q.hessian) / K)
    assert np.all(np.abs(h - diag) <= K_SE * sd + 1e-12)


def test_glass_to_hessian_ratio_follows_r5_definition():
    # Diagonal quadratic plus glass: h and rho known, |g| deterministic at theta.
    L = SeparableGlass(2000, lam=50.0, s=1.0, h=4.0, b=1.0, seed=5)
    theta = np.full(2000, 0.1)
    prob = D.from_flat(lambda th: (L.loss(th), L.grad(th)), theta, [2000], ["all"])
    g = D.curvature_probe(prob, 0.05, n_probes=4, seed=2).groups[0]
    gabs = np.mean(np.abs(L.grad(theta)))
    assert g.grad_abs == pytest.approx(gabs, rel=1e-12)
    alpha_truth = D.ALPHA_COEFF * 50.0 / gabs
    assert abs(g.alpha.value - alpha_truth) <= K_SE * g.alpha.se
    assert g.glass_to_hessian.value == pytest.approx(g.alpha.value / g.curvature_abs.value,
                                                     rel=1e-9)


# -- power law (R1) -----------------------------------------------------------------------------

def test_power_law_glass_exponent_one():
    _, prob = _glass_problem()
    sigma = 0.05
    rep = D.power_law_sweep(prob, [sigma * 2.0 ** k for k in range(-3, 4)], n_probes=3, seed=7)
    for g in rep.groups:
        assert g.ci[0] <= 1.0 <= g.ci[1], (g.name, g.p, g.ci)
        assert abs(g.p - 1.0) <= K_SE * g.se
        assert g.regime == "glass"
    assert rep.evaluations == 1 + 3 * 7


def test_power_law_quadratic_exponent_two_exact():
    _, prob = _quadratic_problem()
    rep = D.power_law_sweep(prob, [0.01, 0.03, 0.1, 0.3, 1.0], n_probes=3, seed=1)
    for g in rep.groups:
        # g(nu + t z) - g(nu) = t H z exactly: every probe's curve is a pure t^2 law
        assert g.p == pytest.approx(2.0, abs=1e-9)
        assert g.ci[0] <= 2.0 <= g.ci[1] + 1e-9
        assert g.regime == "hessian"


# -- loss prediction (R4) ----------------------------------------------------------------------

def test_bound_coverage_on_separable_glass_at_least_nominal():
    _, prob = _glass_problem(n=500)
    sigma = 0.05
    curv = D.curvature_probe(prob, sigma, n_probes=4, seed=1)
    taus = [sigma / 4, sigma / 2, sigma]
    for direction, n_steps in (("coordinate", 200), ("rademacher", 16)):
        rep = D.loss_prediction(prob, curv, taus, n_steps, seed=2, direction=direction)
        assert rep.evaluations == n_steps * len(taus)
        for s in rep.steps:
            assert s.nominal_coverage == D.NOMINAL_COVERAGE
            # one-sided binomial test against the nominal coverage p0: under coverage = p0 the
            # observed fraction has SE sqrt(p0 (1 - p0) / n) (the plug-in SE is 0 at coverage 1)
            p0 = s.nominal_coverage
            assert s.coverage >= p0 - K_SE * math.sqrt(p0 * (1 - p0) / n_steps), s
            # R4 in expectation: E|X| <= B
            assert s.mean_ratio <= 1.0 + K_SE * s.mean_ratio_se, s


def test_quadratic_model_exact_on_diagonal_quadratic():
    # diagonal H: the Hutchinson diagonal is exact, so dL = g.d + d.h.d/2 to rounding
    _, prob = _quadratic_problem(diagonal=True)
    curv = D.curvature_probe(prob, 0.1, n_probes=2, seed=0)
    rep = D.loss_prediction(prob, curv, [0.01, 0.1, 1.0], 4, seed=1)
    for s in rep.steps:
        assert s.mae_quadratic <= 1e-12 * max(1.0, s.mean_abs_dl)
        assert s.mean_bound <= 1e-12 * s.mean_abs_dl  # no glass beyond rounding


def test_nominal_coverage_is_gaussian_probability():
    # independent: integrate the standard normal density over |x| <= E|N(0,1)| = sqrt(2/pi)
    a = math.sqrt(2 / math.pi)
    x = np.linspace(-a, a, 200001)
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    assert D.NOMINAL_COVERAGE == pytest.approx(np.trapezoid(pdf, x), abs=1e-9)


# -- report, backends, builders ------------------------------------------------------------------

def test_diagnose_report_is_json_serialisable():
    _, prob = _quadratic_problem()
    calls = []
    rep = D.diagnose(prob, 0.1, n_probes=2, n_steps=2, seed=0,
                     callback=lambda stage, d, t: calls.append((stage, d, t)))
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert set(d) == {"meta", "curvature", "power_law", "loss_prediction", "constants"}
    assert [g["name"] for g in d["curvature"]["groups"]] == ["first", "second"]
    g = d["curvature"]["groups"][0]
    for k in ("glass_density", "hessian_mean", "curvature_abs", "curvature_rms", "alpha",
              "glass_to_hessian"):
        assert set(g[k]) == {"value", "se", "se_probes", "se_elements"}
    assert [r["direction"] for r in d["loss_prediction"]] == list(D.DIRECTIONS)
    assert len(d["power_law"]["groups"][0]["t"]) == 7
    assert {c[0] for c in calls} == {"curvature", "power_law", "loss_prediction:rademacher",
                                     "loss_prediction:coordinate"}
    assert all(done <= total for _, done, total in calls)


@pytest.mark.parametrize("backend", ["array_api_strict", "torch"])
def test_backend_neutral_same_signs_same_result(backend):
    pytest.importorskip(backend)
    xp = load_namespace(backend)
    _, prob_np = _glass_problem(np, n=50)
    _, prob_xp = _glass_problem(xp, n=50)
    a = D.curvature_probe(prob_np, 0.05, n_probes=3, seed=9)
    b = D.curvature_probe(prob_xp, 0.05, n_probes=3, seed=9)
    for ga, gb in zip(a.groups, b.groups):
        assert gb.glass_density.value == pytest.approx(ga.glass_density.value, rel=1e-10)
        assert gb.hessian_mean.value == pytest.approx(ga.hessian_mean.value, rel=1e-10, abs=1e-12)
    pa = D.loss_prediction(prob_np, a, [0.01], 3, seed=1)
    pb = D.loss_prediction(prob_xp, b, [0.01], 3, seed=1)
    assert pb.steps[0].mean_bound == pytest.approx(pa.steps[0].mean_bound, rel=1e-10)


def test_from_torch_linear_regression_hessian():
    torch = pytest.importorskip("torch")
    from alice_torch.problems import from_torch

    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=g, dtype=torch.float64)
    Y = torch.randn(40, 2, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(3, 2).double()
    before = [p.detach().clone() for p in model.parameters()]
    prob = D.Problem(*from_torch(model, torch.nn.functional.mse_loss, X, Y, groups="parameters"))
    assert list(prob.groups) == ["weight", "bias"]
    rep = D.curvature_probe(prob, 0.1, n_probes=8, seed=0)
    # MSE mean over 40 x 2 entries: d2L/dW_jk^2 = 2 sum_s x_sk^2 / 80, d2L/db_j^2 = 2 * 40 / 80
    hw = (2.0 * (X ** 2).sum(0) / 80.0).repeat(2).numpy()
    truth = {"weight": hw.mean(), "bias": 1.0}
    for grp in rep.groups:
        assert abs(grp.hessian_mean.value - truth[grp.name]) <= K_SE * grp.hessian_mean.se + 1e-9
        assert grp.glass_density.value <= 1e-18
    law = D.power_law_sweep(prob, [0.01, 0.1, 1.0], n_probes=2, seed=0)
    assert all(abs(grp.p - 2.0) < 1e-6 for grp in law.groups)
    for p, q in zip(model.parameters(), before):  # the model itself is untouched
        assert torch.equal(p.detach(), q)
    _, _, groups, _ = from_torch(model, torch.nn.functional.mse_loss, X, Y, groups="modules")
    assert groups == {"weight": [0], "bias": [1]}


def test_from_jax_pytree_groups_are_leaves():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    from alice_jax.problems import from_jax

    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5))
    H = A @ A.T + np.eye(5)

    def loss(p):
        v = jnp.concatenate([p["w"].reshape(-1), p["b"]])
        return 0.5 * v @ jnp.asarray(H, dtype=v.dtype) @ v

    params = {"b": jnp.zeros(2, dtype=jnp.float32), "w": jnp.zeros((3,), dtype=jnp.float32)}
    prob = D.Problem(*from_jax(loss, params))
    assert list(prob.groups) == ["['b']", "['w']"]
    rep = D.curvature_probe(prob, 0.1, n_probes=16, seed=0)
    dh = np.diag(H)
    truth = {"['w']": dh[:3].mean(), "['b']": dh[3:].mean()}
    for g in rep.groups:
        assert abs(g.hessian_mean.value - truth[g.name]) <= K_SE * g.hessian_mean.se + 1e-4
    del jax


def test_bad_input_names_the_argument():
    _, prob = _quadratic_problem()
    with pytest.raises(ValueError, match="sigma"):
        D.curvature_probe(prob, 0.0)
    with pytest.raises(ValueError, match="n_probes"):
        D.curvature_probe(prob, 0.1, n_probes=1)
    with pytest.raises(ValueError, match="scales"):
        D.power_law_sweep(prob, [0.1, 0.1, 0.1])
    curv = D.curvature_probe(prob, 0.1, n_probes=2)
    with pytest.raises(ValueError, match="direction"):
        D.loss_prediction(prob, curv, [0.1], direction="diagonal")
    with pytest.raises(ValueError, match="step_sizes"):
        D.loss_prediction(prob, curv, [-0.1])
    with pytest.raises(ValueError, match="group"):
        D.curvature_probe(prob._replace(groups={"x": [5]}), 0.1)
    with pytest.raises(TypeError, match="Problem"):
        D.curvature_probe((prob.value_and_grad, prob.params), 0.1)
    with pytest.raises(ValueError, match="sizes"):
        D.from_flat(prob.value_and_grad, np.zeros(5), [2, 2])
