"""R3 (glass kernel): REML finite-difference estimators of glass density and curvature.

Truth: linear algebra written out here (annihilator from our own Vandermonde/SVD, traces of
Q C), brute comparison against random admissible kernels, exact enumeration on the Quadratic,
and the SeparableGlass landscape's known rho and h. Monte Carlo figures come from ``mc_*``.
"""

import functools
import itertools

import numpy as np
import pytest
from array_api_compat import array_namespace, device
from helpers import mean_se, to_np, var_se
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from alice_ref import (
    curvature_magnitude,
    glass_density,
    glass_density_from_line,
    glass_kernel,
    glass_line_covariance,
    hessian_diag,
)
from alice_ref.landscapes import Quadratic, SeparableGlass

K_SE = 5.0
PROPS = settings(max_examples=30, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = ["float32", "float64"]


def annihilator(s, order):
    """Orthonormal basis of {w : sum_k w_k s_k^j = 0, j = 0..order} (our own construction)."""
    P = np.array([[sk ** j for j in range(order + 1)] for sk in s])
    _, sv, vt = np.linalg.svd(P.T)
    rank = int(np.sum(sv > 1e-10 * sv.max()))
    return vt[rank:].T


# Designs: (offsets, order, degrees of freedom K - (order + 1))
DESIGNS = [((-1.0, 0.0, 1.0), 1, 1), ((1.0, 0.0, -1.0), 1, 1), ((-2.0, -1.0, 0.0, 1.0, 2.0), 1, 3),
           ((-2.0, -1.0, 0.0, 1.0, 2.0), 2, 2), ((0.0, 0.5, 1.0, 2.0), 1, 2),
           ((-1.0, 1.0), 0, 1), ((-3.0, -1.0, 0.5, 2.0, 4.0, 5.0), 3, 2)]


# ---------------------------------------------------------------- exact checks


def test_three_point_kernel_closed_form():
    """R3: offsets (-1, 0, 1), order 1: w = (1, -2, 1)/sqrt(2), Q = w w^T, one dof."""
    Q, dof = glass_kernel([-1.0, 0.0, 1.0])
    w = np.array([1.0, -2.0, 1.0])
    assert dof == 1
    np.testing.assert_allclose(Q, np.outer(w, w) / 2.0, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("offsets, order, dof", DESIGNS)
def test_kernel_exact_properties(offsets, order, dof):
    """R3: Q annihilates s^j (j <= order), tr(QC)/dof = 1 (unbiased), QC is a projection of
    rank dof, so the Gaussian-glass relative variance 2 tr((QC)^2)/tr(QC)^2 = 2/dof."""
    Q, r = glass_kernel(offsets, order)
    assert r == dof
    s = np.asarray(offsets)
    P = np.vander(s, order + 1, increasing=True)
    assert np.abs(Q @ P).max() <= 1e-11 * np.abs(Q).max() * np.abs(P).max()
    C = glass_line_covariance(s)
    QC = Q @ C
    assert np.trace(QC) / dof == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(QC @ QC, QC, atol=1e-11 * np.abs(QC).max())
    assert 2 * np.trace(QC @ QC) / np.trace(QC) ** 2 == pytest.approx(2.0 / dof, rel=1e-11)


@pytest.mark.parametrize("offsets, order, dof", DESIGNS)
def test_no_admissible_kernel_has_lower_variance(offsets, order, dof):
    """R3 (REML optimality): any quadratic form A = N B N^T that annihilates the polynomial,
    scaled to be unbiased, has Gaussian-glass relative variance 2 tr((AC)^2)/tr(AC)^2 >= 2/dof.
    Checked against 2000 random symmetric B, and against rank-one kernels w = N u."""
    s = np.asarray(offsets)
    C = glass_line_covariance(s)
    N = annihilator(s, order)
    assert N.shape[1] == dof
    rng = np.random.default_rng(len(offsets) * 10 + order)
    best = 2.0 / dof
    for k in range(2000):
        if k % 2:
            u = rng.normal(size=dof)
            B = np.outer(u, u)
        else:
            B = rng.normal(size=(dof, dof))
            B = B + B.T
        A = N @ B @ N.T
        t = np.trace(A @ C)
        if abs(t) < 1e-6 * np.abs(A).max() * np.abs(C).max():
            continue  # not scalable to an unbiased estimator
        rel_var = 2 * np.trace(A @ C @ A @ C) / t ** 2
        assert rel_var >= best * (1 - 1e-10)


@PROPS
@given(raw=st.lists(st.floats(-4.0, 4.0), min_size=3, max_size=7, unique=True),
       order=st.integers(0, 3), with_zero=st.booleans())
@example(raw=[-1.0, 0.0, 1.0], order=1, with_zero=False)
@example(raw=[0.1, 0.2, 0.3], order=1, with_zero=False)
def test_kernel_properties_random_designs(raw, order, with_zero):
    """R3: for random designs with >= 1 dof and a glass-seeing annihilator, Q annihilates the
    polynomial, Q = Q^T PSD, and tr(QC) = dof."""
    s = sorted({round(v, 3) for v in raw} | ({0.0} if with_zero else set()))
    assume(len(s) - (order + 1) >= 1 and min(np.diff(s)) >= 0.05)
    N = annihilator(s, order)
    C = glass_line_covariance(s)
    assume(np.linalg.eigvalsh(N.T @ C @ N).min() >= 1e-8)  # singular: see test_validation
    Q, dof = glass_kernel(s, order)
    assert dof == len(s) - (order + 1)
    P = np.vander(np.asarray(s), order + 1, increasing=True)
    assert np.abs(Q @ P).max() <= 1e-8 * np.abs(Q).max() * np.abs(P).max()
    np.testing.assert_allclose(Q, Q.T, atol=1e-12 * np.abs(Q).max())
    assert np.linalg.eigvalsh(Q).min() >= -1e-9 * np.abs(Q).max()
    assert np.trace(Q @ C) == pytest.approx(dof, rel=1e-8)


@PROPS
@given(g=st.lists(st.floats(-1e3, 1e3), min_size=12, max_size=12),
       sigma=st.floats(1e-3, 1e3), dtype=st.sampled_from(DTYPES),
       reverse=st.booleans())
@example(g=[0.0] * 12, sigma=1.0, dtype="float64", reverse=False)
def test_line_estimator_equals_three_point_estimator(xp, g, sigma, dtype, reverse):
    """R3: glass_density_from_line on (-1, 0, 1) (either order) equals glass_density, and both
    equal 2 ((g+ + g-)/2 - g0)^2 / sigma computed here."""
    dt = getattr(xp, dtype)
    gp, gm, g0 = (xp.asarray(np.array(g[i::3]), dtype=dt) for i in range(3))
    ref = glass_density(gp, gm, g0, sigma)
    if reverse:
        line = glass_density_from_line([1.0, 0.0, -1.0], [gp, g0, gm], sigma)
    else:
        line = glass_density_from_line([-1.0, 0.0, 1.0], [gm, g0, gp], sigma)
    for out in (ref, line):
        assert array_namespace(out) is array_namespace(gp) and out.dtype == dt
        assert device(out) == device(gp)
    a, b, c = (to_np(x) for x in (gp, gm, g0))
    truth = 2 * ((a + b) / 2 - c) ** 2 / sigma
    tol = 1e-5 if dtype == "float32" else 1e-12
    scale = 2 * np.max(np.abs([a, b, c])) ** 2 / sigma
    scale += 1e-30 / tol if dtype == "float32" else 0.0  # squares below float32's range
    np.testing.assert_allclose(to_np(ref), truth, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(to_np(line), truth, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("offsets, order, dof", DESIGNS)
def test_line_estimator_annihilates_polynomials(xp, offsets, order, dof):
    """R3: gradients polynomial of degree <= order in s (any vector coefficients) give 0,
    and a general line gives G^T Q G / (sigma dof) written out here."""
    rng = np.random.default_rng(3)
    coef = rng.normal(size=(order + 1, 4))
    grads = [sum(coef[j] * s ** j for j in range(order + 1)) for s in offsets]
    out = to_np(glass_density_from_line(offsets, [xp.asarray(g) for g in grads], 0.5, order))
    scale = max(np.abs(g).max() for g in grads)
    assert np.all(out <= (1e-12 * scale) ** 2 * 100 * len(offsets))
    G = rng.normal(size=(len(offsets), 4))
    Q, r = glass_kernel(offsets, order)
    out = to_np(glass_density_from_line(offsets, [xp.asarray(x) for x in G], 0.5, order))
    np.testing.assert_allclose(out, np.einsum("kl,ki,li->i", Q, G, G) / (0.5 * r), rtol=1e-11)


def test_curvature_magnitudes_by_enumeration(xp):
    """R3: on a quadratic, over all 2^n patterns: mean of 'rms' = sum_j H_ij^2 exactly, and
    mean of 'abs' >= |H_ii| (Jensen); hessian_diag's mean is H_ii."""
    n, sigma = 6, 0.25
    land = Quadratic(n, seed=12)
    Z = xp.asarray(np.array(list(itertools.product([-1.0, 1.0], repeat=n))))
    nu = xp.asarray(np.random.default_rng(1).normal(size=n))
    gp, gm = land.grad(nu + sigma * Z), land.grad(nu - sigma * Z)
    H = land.hessian
    rms = to_np(curvature_magnitude(gp, gm, sigma, "rms")).mean(axis=0)
    np.testing.assert_allclose(rms, np.sum(H * H, axis=1), rtol=1e-11)
    ab = to_np(curvature_magnitude(gp, gm, sigma, "abs")).mean(axis=0)
    assert np.all(ab >= np.abs(np.diag(H)) * (1 - 1e-12))
    np.testing.assert_allclose(to_np(hessian_diag(gp, gm, Z, sigma)).mean(axis=0), np.diag(H),
                               rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_curvature_magnitude_keeps_namespace(xp, dtype):
    """R3: curvature_magnitude returns |d| or d^2, d = (g+ - g-)/(2 sigma), in the input's kind."""
    dt = getattr(xp, dtype)
    gp, gm = xp.asarray([1.0, -1.0], dtype=dt), xp.asarray([-3.0, 1.0], dtype=dt)
    for mode, truth in (("abs", [4.0, 2.0]), ("rms", [16.0, 4.0])):
        out = curvature_magnitude(gp, gm, 0.5, mode)
        assert array_namespace(out) is array_namespace(gp) and out.dtype == dt
        assert device(out) == device(gp)
        np.testing.assert_array_equal(to_np(out), truth)


# ---------------------------------------------------------------- Monte Carlo


N_MC, SIGMA = 10000, 0.25


@functools.cache
def mc_landscape():
    """Independent coordinates, many Rademacher jumps per sigma (lam sigma = 100): near-Gaussian
    glass, so the REML relative variance 2/dof applies up to O(1/(lam sigma))."""
    rng = np.random.default_rng(41)
    s = rng.uniform(0.5, 2.0, N_MC)
    land = SeparableGlass(N_MC, lam=400.0, s=s, h=rng.uniform(0, 3, N_MC), b=rng.normal(size=N_MC),
                          box=(-0.55, 0.55), jumps="rademacher", seed=42)
    z = rng.choice([-1.0, 1.0], N_MC)
    return land, z


@functools.cache
def line_gradients(offsets):
    land, z = mc_landscape()
    nu = np.zeros(N_MC)
    return [land.grad(nu + s * SIGMA * z) for s in offsets]


def mc_reml(offsets, order, xp=np):
    """R3: rho_hat / rho over coordinates: mean 1 (unbiased), variance 2/dof (Gaussian glass)."""
    land, _ = mc_landscape()
    grads = [xp.asarray(g) for g in line_gradients(tuple(offsets))]
    ratio = to_np(glass_density_from_line(offsets, grads, SIGMA, order)) / land.rho
    m, se = mean_se(ratio)
    v, vse = var_se(ratio)
    dof = len(offsets) - (order + 1)
    return dict(mean=m, se=se, truth=1.0, var=v, var_se=vse, var_truth=2.0 / dof)


def mc_alice_three_point(xp=np):
    """R3: Alice's glass_density is unbiased; Var[gbar - g0] = sigma rho / 2."""
    land, _ = mc_landscape()
    gm, g0, gp = (xp.asarray(g) for g in line_gradients((-1.0, 0.0, 1.0)))
    ratio = to_np(glass_density(gp, gm, g0, SIGMA)) / land.rho
    m, se = mean_se(ratio)
    v, vse = var_se(ratio)
    return dict(mean=m, se=se, truth=1.0, var=v, var_se=vse, var_truth=2.0)


def mc_hessian_kernel(xp=np):
    """R3: hessian_diag on separable glass: mean h, glass noise variance rho / (2 sigma);
    'rms' mean h^2 + rho / (2 sigma); 'abs' mean >= |h|."""
    land, z = mc_landscape()
    gm, _, gp = line_gradients((-1.0, 0.0, 1.0))
    gpx, gmx = xp.asarray(gp), xp.asarray(gm)
    D = to_np(hessian_diag(gpx, gmx, xp.asarray(z), SIGMA))
    noise = (D - land.hess_diag) / np.sqrt(land.rho / (2 * SIGMA))
    m, se = mean_se(noise)
    v, vse = var_se(noise)
    rms = to_np(curvature_magnitude(gpx, gmx, SIGMA, "rms"))
    r, rse = mean_se(rms / (land.hess_diag ** 2 + land.rho / (2 * SIGMA)))
    ab = to_np(curvature_magnitude(gpx, gmx, SIGMA, "abs"))
    a, ase = mean_se(ab - np.abs(land.hess_diag))
    return dict(noise_mean=m, noise_se=se, noise_var=v, noise_var_se=vse, rms_ratio=r,
                rms_se=rse, abs_excess=a, abs_se=ase)


MC_DESIGNS = [((-1.0, 0.0, 1.0), 1), ((-2.0, -1.0, 0.0, 1.0, 2.0), 1),
              ((-2.0, -1.0, 0.0, 1.0, 2.0), 2), ((0.0, 0.5, 1.0, 2.0), 1)]


@pytest.mark.slow
@pytest.mark.parametrize("offsets, order", MC_DESIGNS)
def test_reml_unbiased_with_relative_variance_two_over_dof(xp_cpu, offsets, order):
    """R3: the REML glass estimator is unbiased on separable glass with linear smooth part,
    and its relative variance is 2/dof (MC, SE tolerance)."""
    r = mc_reml(offsets, order, xp_cpu)
    assert abs(r["mean"] - r["truth"]) <= K_SE * r["se"], r
    assert abs(r["var"] - r["var_truth"]) <= K_SE * r["var_se"], r


@pytest.mark.slow
def test_alice_three_point_estimator_unbiased(xp_cpu):
    """R3: E[2 (gbar - g0)^2 / sigma] = rho on separable glass (MC, SE tolerance)."""
    r = mc_alice_three_point(xp_cpu)
    assert abs(r["mean"] - r["truth"]) <= K_SE * r["se"], r
    assert abs(r["var"] - r["var_truth"]) <= K_SE * r["var_se"], r


@pytest.mark.slow
def test_hessian_kernel_glass_noise(xp_cpu):
    """R3: hessian_diag is unbiased for h with glass noise variance rho/(2 sigma); the glass
    leaks into 'rms' (mean h^2 + rho/(2 sigma)); 'abs' overestimates |h| (MC, SE tolerance)."""
    r = mc_hessian_kernel(xp_cpu)
    assert abs(r["noise_mean"]) <= K_SE * r["noise_se"], r
    assert abs(r["noise_var"] - 1.0) <= K_SE * r["noise_var_se"], r
    assert abs(r["rms_ratio"] - 1.0) <= K_SE * r["rms_se"], r
    assert r["abs_excess"] > K_SE * r["abs_se"], r


# -- the kernel's rank tolerance and +-1 weights (issue 19) ----------------------------------------

def test_rank_tolerance_at_large_and_near_equal_offsets():
    """The rank of the design is found relative to its scale: duplicated offsets of size 7e5
    at order 2 have rank 2 (so the failure is the duplicate's invisible combination, not a
    missing degree of freedom), and offsets 1e-10 apart are still distinct (rank 3: none left)."""
    with pytest.raises(ValueError, match="sees no glass"):
        glass_kernel([7e5, 7e5, -2.33e5], order=2)
    with pytest.raises(ValueError, match="no degree of freedom"):
        glass_kernel([0.0, 1.0, 1.0 + 1e-10], order=2)
    Q, dof = glass_kernel([-7e5, 0.0, 7e5], order=1)  # C scales with the offsets: Q with 1/7e5
    w = np.array([1.0, -2.0, 1.0])
    assert dof == 1 and np.allclose(Q, np.outer(w, w) / (2.0 * 7e5), rtol=1e-12, atol=0)


def test_rank_is_scale_invariant_at_order_2():
    """The design's rank must not depend on the offsets' unit: at scale 7e5 (and 1e-6) order 2
    keeps 5 - 3 = 2 degrees of freedom, and Q scales as 1/scale (C scales as scale)."""
    s = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    Q1, dof1 = glass_kernel(tuple(s), order=2)
    for scale in (7e5, 1e-6):
        Q, dof = glass_kernel(tuple(scale * s), order=2)
        assert dof == dof1 == 2
        np.testing.assert_allclose(Q * scale, Q1, rtol=1e-8, atol=1e-10)


def test_order_0_two_point_kernel_has_unit_weights():
    """Offsets (0, 1) at order 0: w = (-1, 1) exactly, so rho_hat = (G1 - G0)^2 / sigma."""
    G0, G1, sigma = np.array([0.5, -2.0]), np.array([1.75, 3.0]), 0.25
    got = glass_density_from_line([0.0, 1.0], [G0, G1], sigma, order=0)
    np.testing.assert_allclose(got, (G1 - G0) ** 2 / sigma, rtol=1e-15)
