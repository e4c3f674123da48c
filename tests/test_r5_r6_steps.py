"""R5 (optimal Hessian-glass step) and R6 (step bounds that extend Adam).

Truth comes from the model itself: m(d) = -a d + h d^2/2 + c sqrt(rho) d^{3/2} with
c = sqrt(2/(3 pi)), minimised by golden-section search (alice_ref.tools.verify.oracles, shared
with ``alice-ref verify``) and on a fine grid, independently of the closed form in
alice_ref.maths.step; and from the clipping rule of docs/spec/algorithm.md#one-batch, step 5
(Alg. 3, steps 4-7), re-derived in NumPy.
"""

import math

import numpy as np
import pytest
from array_api_compat import array_namespace, device
from helpers import to_np
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from alice_ref import ALPHA_COEFF, GLASS_COEFF, bounded_step, effective_curvature, optimal_step
from alice_ref.tools.verify.oracles import r5_argmin, r5_bracket, r5_model

C = math.sqrt(2.0 / (3.0 * math.pi))  # R4's Gaussian coefficient, derived independently
PROPS = settings(max_examples=30, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = ["float32", "float64"]


def arr(xp, values, dtype="float64"):
    return xp.asarray(np.asarray(values, dtype=np.float64), dtype=getattr(xp, dtype))


def assert_same_kind(out, like):
    assert array_namespace(out) is array_namespace(like)
    assert out.dtype == like.dtype
    assert device(out) == device(like)


# Magnitudes of a, h, rho for property tests: moderate, so that first-order residuals are
# meaningful in float64; extreme magnitudes get their own test.
mag = st.floats(1e-4, 1e4)
zero_or_mag = st.one_of(st.just(0.0), mag)


# ---------------------------------------------------------------- R5: exact checks


def test_constants_derivation():
    """R5: alpha's coefficient is (9/8) c^2 = 3/(4 pi), c = sqrt(2/(3 pi)) (R4)."""
    assert GLASS_COEFF == pytest.approx(C, rel=1e-15)
    assert ALPHA_COEFF == pytest.approx(9.0 / 8.0 * C * C, rel=1e-15)
    assert ALPHA_COEFF == pytest.approx(3.0 / (4.0 * math.pi), rel=1e-15)


def test_minimiser_matches_golden_section_and_grid():
    """R5 (optimal step): d* = a/h_opt is the minimiser of m found by brute force."""
    rng = np.random.default_rng(5)
    n = 400
    a = np.exp(rng.uniform(np.log(1e-3), np.log(1e3), n))
    h = np.where(rng.random(n) < 0.2, 0.0, np.exp(rng.uniform(np.log(1e-3), np.log(1e3), n)))
    rho = np.where((rng.random(n) < 0.2) & (h > 0), 0.0,
                   np.exp(rng.uniform(np.log(1e-3), np.log(1e3), n)))
    d_star = a / to_np(effective_curvature(a, h, rho))
    d_gs = r5_argmin(a, h, rho)
    np.testing.assert_allclose(d_star, d_gs, rtol=1e-6)
    # fine grid: no grid point beats m(d*), and the grid's argmin is within one step of d*
    u = r5_bracket(a, h, rho)
    grid = np.linspace(0.0, 1.0, 20001)[:, None] * (2.0 * u)[None, :]
    m_grid = r5_model(grid, a, h, rho)
    m_star = r5_model(d_star, a, h, rho)
    scale = a * d_star
    assert np.all(m_star <= m_grid.min(axis=0) + 1e-12 * scale)
    step = 2.0 * u / 20000
    assert np.all(np.abs(grid[np.argmin(m_grid, axis=0), np.arange(n)] - d_star) <= step * 1.0001)


@PROPS
@given(a=mag, h=zero_or_mag, rho=zero_or_mag, dtype=st.sampled_from(DTYPES))
@example(a=1.0, h=0.0, rho=1.0, dtype="float64")
@example(a=1.0, h=1.0, rho=0.0, dtype="float64")
@example(a=1e-4, h=1e4, rho=1e4, dtype="float64")
@example(a=1e4, h=1e-4, rho=1e-4, dtype="float64")
def test_first_order_condition_and_h_opt_bounds(xp, a, h, rho, dtype):
    """R5: -a + h d* + (3/2) c sqrt(rho) sqrt(d*) = 0, h_opt >= max(h, 2 alpha)."""
    assume(h > 0.0 or rho > 0.0)  # no curvature: m is unbounded below (R6's upper bound)
    g = arr(xp, [a, -a], dtype)
    hh, rr = arr(xp, [h, h], dtype), arr(xp, [rho, rho], dtype)
    h_opt = effective_curvature(g, hh, rr)
    assert_same_kind(h_opt, g)
    ho = to_np(h_opt)
    assert ho[0] == ho[1]  # depends on |g| only
    tol = 1e-5 if dtype == "float32" else 1e-12
    alpha = 3.0 * rho / (4.0 * math.pi * a)
    assert ho[0] >= max(h, 2.0 * alpha) * (1.0 - tol)
    np.testing.assert_allclose(ho[0], h + alpha + math.sqrt(alpha * (alpha + 2.0 * h)), rtol=tol)
    d = a / float(np.float64(ho[0]))
    terms = (a, h * d, 1.5 * C * math.sqrt(rho) * math.sqrt(d))
    resid = -terms[0] + terms[1] + terms[2]
    assert abs(resid) <= 20 * tol * max(terms)


def test_newton_and_pure_glass_limits(xp):
    """R5: rho = 0 gives Newton's step a/h; h = 0 gives d* = 2 pi a^2 / (3 rho)."""
    rng = np.random.default_rng(1)
    a, h, rho = rng.uniform(0.1, 10, 50), rng.uniform(0.1, 10, 50), rng.uniform(0.1, 10, 50)
    g = arr(xp, a)
    newton = optimal_step(g, arr(xp, h), xp.zeros_like(g))
    np.testing.assert_allclose(to_np(newton), -a / h, rtol=1e-14)
    glass = optimal_step(-g, xp.zeros_like(g), arr(xp, rho))
    np.testing.assert_allclose(to_np(glass), 2.0 * math.pi * a * a / (3.0 * rho), rtol=1e-13)


@PROPS
@given(a=mag, h1=zero_or_mag, h2=zero_or_mag, r1=zero_or_mag, r2=zero_or_mag)
@example(a=1.0, h1=0.0, h2=1.0, r1=0.0, r2=1.0)
def test_monotone_in_h_and_rho(xp, a, h1, h2, r1, r2):
    """R5: h_opt is increasing (and d* decreasing) in h and in rho."""
    h1, h2 = sorted((h1, h2))
    r1, r2 = sorted((r1, r2))
    g = arr(xp, [a] * 4)
    hs, rs = arr(xp, [h1, h2, h1, h1]), arr(xp, [r1, r1, r1, r2])
    ho = to_np(effective_curvature(g, hs, rs))
    assert ho[0] <= ho[1] and ho[2] <= ho[3]
    d = np.abs(to_np(optimal_step(g, hs, rs)))
    assert d[0] >= d[1] and d[2] >= d[3]


@PROPS
@given(g=st.lists(st.one_of(st.just(0.0), mag, mag.map(lambda x: -x)), min_size=6, max_size=6),
       h=zero_or_mag, rho=mag, dtype=st.sampled_from(DTYPES))
@example(g=[0.0] * 6, h=0.0, rho=1.0, dtype="float64")
@example(g=[0.0, 1.0, -1.0, 1e-4, -1e4, 0.0], h=1.0, rho=1e-4, dtype="float32")
def test_optimal_step_sign_and_zero(xp, g, h, rho, dtype):
    """R5: delta = -sgn(g) d*, and delta = 0 exactly where g = 0."""
    gx = arr(xp, g, dtype)
    step = optimal_step(gx, arr(xp, [h] * len(g), dtype), arr(xp, [rho] * len(g), dtype))
    assert_same_kind(step, gx)
    s, gn = to_np(step), np.asarray(g)
    assert np.all(np.isfinite(s))
    assert np.all(s[gn == 0] == 0)
    assert np.all(np.sign(s[gn != 0]) == -np.sign(gn[gn != 0]))


@PROPS
@given(a=st.floats(1e-75, 1e75), h=st.one_of(st.just(0.0), st.floats(1e-75, 1e75)),
       rho=st.floats(1e-75, 1e75))
@example(a=1e-75, h=0.0, rho=1e75)
@example(a=1e75, h=1e75, rho=1e-75)
def test_extreme_magnitudes_float64(a, h, rho):
    """R5 at tiny/huge magnitudes: h_opt finite and >= max(h, 2 alpha), d* finite, >= 0."""
    ho = float(effective_curvature(np.array([a]), np.array([h]), np.array([rho]))[0])
    alpha = 3.0 * rho / (4.0 * math.pi * a)
    assert math.isfinite(ho)
    assert ho >= max(h, 2.0 * alpha) * (1.0 - 1e-14)
    np.testing.assert_allclose(ho, h + alpha + math.sqrt(alpha) * math.sqrt(alpha + 2 * h),
                               rtol=1e-14)
    d = -float(optimal_step(np.array([a]), np.array([h]), np.array([rho]))[0])
    assert math.isfinite(d) and d >= 0.0


def test_overflowing_alpha_gives_zero_step():
    """R5 when alpha (alpha + 2h) overflows (alpha > ~1e154): h_opt = inf, the step is 0,
    which is d* = a / h_opt <= a / (2 alpha) rounded (it is below 1e-300 there)."""
    a, rho = np.array([1e-150]), np.array([1e150])
    with np.errstate(over="ignore"):
        d = optimal_step(a, np.zeros(1), rho)
    assert d[0] == 0.0 and 2.0 * math.pi * a[0] ** 2 / (3.0 * rho[0]) < 1e-300


@pytest.mark.parametrize("eps", [1e-8, 0.5])
def test_eps_guard(xp, eps):
    """R5 numerical guard: alpha = 3 rho/(4 pi (a + eps)), h_opt += eps."""
    a, h, rho = np.array([0.0, 1e-9, 1.0, 3.0]), np.array([0.0, 2.0, 0.0, 1.0]), \
        np.array([1.0, 0.5, 2.0, 0.0])
    out = to_np(effective_curvature(arr(xp, a), arr(xp, h), arr(xp, rho), eps=eps))
    alpha = 3.0 * rho / (4.0 * math.pi * (a + eps))
    np.testing.assert_allclose(out, h + alpha + np.sqrt(alpha * (alpha + 2 * h)) + eps,
                               rtol=1e-14)


def test_zero_gradient_without_eps(xp):
    """R5: g = 0 with rho > 0 and eps = 0 gives h_opt = inf and a zero step, not NaN."""
    g, h, rho = arr(xp, [0.0, 0.0]), arr(xp, [1.0, 0.0]), arr(xp, [1.0, 0.0])
    assert np.isinf(to_np(effective_curvature(g, h, rho))[0])
    np.testing.assert_array_equal(to_np(optimal_step(g, h, rho)), [0.0, 0.0])


# ---------------------------------------------------------------- R6: step bounds


def clip_reference(g, h, rho, v, lo, hi, limit, eps):
    """docs/spec/algorithm.md#one-batch, step 5 in NumPy float64 (the rule, written out again)."""
    a = np.abs(g)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 3.0 * rho / (4.0 * math.pi * (a + eps))
        d = a / (alpha + h + np.sqrt(alpha * (alpha + 2 * h)) + eps)
    f = {"fixed": np.ones_like(a), "sgdm": a, "adam": a / (np.sqrt(v) + eps)}[limit]
    d = np.where(d < lo * f, lo * f, np.where(d < hi * f, d, hi * f))
    return np.where(g > 0, -d, d), f


def six(elements):
    return st.lists(elements, min_size=6, max_size=6)


@PROPS
@given(g=six(st.one_of(st.just(0.0), st.floats(-1e3, 1e3))), h=six(zero_or_mag),
       rho=six(zero_or_mag), v=six(st.floats(0.0, 1e6)),
       lo=st.one_of(st.just(0.0), st.floats(1e-6, 1.0)), span=st.floats(0.0, 10.0),
       limit=st.sampled_from(["fixed", "sgdm", "adam"]), dtype=st.sampled_from(DTYPES))
@example(g=[0.0] * 6, h=[0.0] * 6, rho=[0.0] * 6, v=[0.0] * 6, lo=0.0, span=0.1, limit="fixed",
         dtype="float64")
@example(g=[1.0, -1.0, 1e-30, -1e3, 0.0, 2.0], h=[0.0] * 6, rho=[0.0] * 6, v=[1.0] * 6,
         lo=1e-3, span=0.1, limit="adam", dtype="float64")
@example(g=[1.0, -1.0, 1e-3, -1e3, 0.0, 2.0], h=[1e4, 0.0, 1e-4, 1.0, 1.0, 0.0],
         rho=[0.0, 1e4, 1e-4, 1.0, 1.0, 0.0], v=[0.0, 1e6, 1.0, 1e-6, 1.0, 4.0], lo=0.01,
         span=0.0, limit="sgdm", dtype="float32")
def test_bounded_step_within_bounds_and_opposes_g(xp, g, h, rho, v, lo, span, limit, dtype):
    """R6: lr_min f <= |delta| <= lr_max f, delta opposes g where g != 0; unclipped = R5."""
    hi, eps = lo + span, 1e-8
    gx, hx, rx, vx = (arr(xp, x, dtype) for x in (g, h, rho, v))
    step = bounded_step(gx, hx, rx, vx, lo, hi, limit, eps)
    assert_same_kind(step, gx)
    s = to_np(step)
    g, h, rho, v = (to_np(x) for x in (gx, hx, rx, vx))  # the values as the dtype holds them
    ref, f = clip_reference(g, h, rho, v, lo, hi, limit, eps)
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert np.all(np.abs(s) >= lo * f * (1 - tol) - 1e-30)
    assert np.all(np.abs(s) <= hi * f * (1 + tol) + 1e-30)
    nz = g != 0
    assert np.all(s[nz] * g[nz] <= 0)
    np.testing.assert_allclose(s, ref, rtol=10 * tol, atol=1e-30)


def test_lower_bound_binds_with_huge_curvature(xp):
    """R6: with h and rho huge, d* -> 0 and the lower bound binds: delta = -lr_min f sgn(g)."""
    gn = np.array([0.5, -2.0, 3.0])
    v = np.array([0.25, 1.0, 16.0])
    big = arr(xp, [1e12] * 3)
    gx = arr(xp, gn)
    for limit, f in (("fixed", 1.0), ("sgdm", np.abs(gn)), ("adam", np.abs(gn) / (np.sqrt(v)
                                                                                  + 1e-8))):
        out = to_np(bounded_step(gx, big, big, arr(xp, v), 0.01, 0.1, limit))
        np.testing.assert_allclose(out, -0.01 * f * np.sign(gn), rtol=1e-12)


@PROPS
@given(g=st.lists(st.floats(1e-3, 1e2), min_size=6, max_size=6),
       signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=6, max_size=6),
       kappa=st.floats(0.25, 4.0), lr_max=st.floats(1e-4, 1.0),
       tiny=st.one_of(st.just(0.0), st.floats(1e-12, 1e-9)))
@example(g=[1.0] * 6, signs=[1.0, -1.0] * 3, kappa=1.0, lr_max=0.1, tiny=0.0)
def test_upper_bound_binds_without_curvature(xp, g, signs, kappa, lr_max, tiny):
    """R6: with h, rho ~ 0 the upper bound binds: Adam with lr_max, SGD-momentum for 'sgdm'."""
    gn = np.array(g) * np.array(signs[:len(g)])
    v = kappa * gn * gn  # a second moment of the gradient's size, as in Adam
    gx, z = arr(xp, gn), arr(xp, np.full(len(g), tiny))
    eps = 1e-8
    adam = to_np(bounded_step(gx, z, z, arr(xp, v), 0.0, lr_max, "adam", eps))
    np.testing.assert_allclose(adam, -lr_max * gn / (np.sqrt(v) + eps), rtol=1e-12)
    sgdm = to_np(bounded_step(gx, z, z, None, 0.0, lr_max, "sgdm", eps))
    np.testing.assert_allclose(sgdm, -lr_max * gn, rtol=1e-12)
    fixed = to_np(bounded_step(gx, z, z, None, 0.0, lr_max, "fixed", eps))
    np.testing.assert_allclose(fixed, -lr_max * np.sign(gn), rtol=1e-12)


def test_nan_step_becomes_upper_bound(xp):
    """R6 (official semantics): with eps = 0, g = h = rho = 0 gives d = NaN -> the upper bound."""
    z = arr(xp, [0.0])
    out = to_np(bounded_step(z, z, z, None, 0.0, 0.3, "fixed", eps=0.0))
    np.testing.assert_array_equal(out, [0.3])  # g > 0 is false: +d
    out = to_np(bounded_step(arr(xp, [2.0]), z, z, None, 0.0, 0.3, "fixed", eps=0.0))
    np.testing.assert_array_equal(out, [-0.3])  # d = inf -> clipped to the upper bound


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_keep_namespace_dtype_device(xp, dtype):
    """R5/R6: results have the input's namespace, device and dtype."""
    g, h, r = arr(xp, [1.0, -2.0], dtype), arr(xp, [0.5, 0.0], dtype), arr(xp, [0.1, 1.0], dtype)
    for out in (effective_curvature(g, h, r), optimal_step(g, h, r),
                bounded_step(g, h, r, r, 0.0, 0.1, "adam"),
                bounded_step(g, h, r, None, 0.0, 0.1, "sgdm")):
        assert_same_kind(out, g)


def test_effective_curvature_zero_gradient_zero_glass_zero_eps():
    """The 0/0 guard of h_opt: |g| = rho = eps = 0 gives alpha = 0, so h_opt = h exactly."""
    h = np.array([2.5, 0.0, 1e-300, 7.0])
    got = effective_curvature(np.zeros(4), h, np.zeros(4), eps=0.0)
    assert np.array_equal(got, h)
    inf = effective_curvature(np.zeros(1), np.ones(1), np.ones(1), eps=0.0)  # rho > 0 = |g|
    assert np.isinf(inf[0])
