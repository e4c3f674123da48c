"""R1 (gradient glass): glass variance grows linearly with distance; power-law diagnostic.

Truth: the SeparableGlass landscape's known rho_i = lam_i s_i^2 and h_i, the Quadratic's known
Hessian, enumeration of all sign patterns, and an exact enumeration of discrete random walks.
Monte Carlo figures (mean, SE, truth) come from the ``mc_*`` functions, which the tests assert
on with |mean - truth| <= K_SE * SE, SE estimated from the samples.
"""

import functools
import itertools
import math

import numpy as np
import pytest
from array_api_compat import array_namespace, device
from helpers import mean_se, to_np
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from alice_ref import glass_line_covariance, power_law_exponent
from alice_ref.landscapes import Quadratic, SeparableGlass

K_SE = 5.0
PROPS = settings(max_examples=40, deadline=None)


# ---------------------------------------------------------------- a glass landscape

N_COORD = 20000
T_GRID = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # distances |delta| in units of length


@functools.cache
def glass_landscape():
    """Independent coordinates: each is one realisation of the boundary process (A1-A2)."""
    rng = np.random.default_rng(11)
    s = rng.uniform(0.5, 2.0, N_COORD)
    h = rng.uniform(0.0, 2.0, N_COORD)
    b = rng.normal(size=N_COORD)
    land = SeparableGlass(N_COORD, lam=50.0, s=s, h=h, b=b, box=(-1.5, 1.5), jumps="gaussian",
                          seed=12)
    return land


def glass_increment(land, nu, delta):
    """eps(delta) = g(nu + delta) - g(nu) - h delta, the glass part of the gradient change."""
    return land.grad(nu + delta) - land.grad(nu) - land.hess_diag * delta


def mc_linear_growth():
    """R1: E eps_i(delta)^2 / rho_i = |delta| for each |delta| in T_GRID (both signs mixed)."""
    land = glass_landscape()
    z = np.random.default_rng(13).choice([-1.0, 1.0], N_COORD)
    nu = np.zeros(N_COORD)
    rows = []
    for t in T_GRID:
        e = glass_increment(land, nu, t * z)
        m, se = mean_se(e * e / land.rho)
        m1, se1 = mean_se(e / np.sqrt(land.rho))
        rows.append(dict(t=t, mean=m, se=se, truth=t, mean_eps=m1, se_eps=se1))
    return rows


def mc_opposite_sides():
    """R1: glass on opposite sides of nu is independent: E eps(delta) eps(-delta) = 0."""
    land = glass_landscape()
    nu, d = np.zeros(N_COORD), 0.5
    prod = glass_increment(land, nu, d) * glass_increment(land, nu, -d) / (land.rho * d)
    m, se = mean_se(prod)
    return dict(mean=m, se=se, truth=0.0)


LINE_OFFSETS = (-2.0, -1.0, 0.5, 1.0, 3.0)
LINE_SIGMA = 0.25


def mc_line_covariance():
    """R1: Cov[glass of g(nu + s_k sigma z)] = sigma rho C, C = glass_line_covariance."""
    land = glass_landscape()
    z = np.random.default_rng(14).choice([-1.0, 1.0], N_COORD)
    nu = np.zeros(N_COORD)
    eps = np.stack([glass_increment(land, nu, s * LINE_SIGMA * z) for s in LINE_OFFSETS])
    eps = eps / np.sqrt(LINE_SIGMA * land.rho)
    C = glass_line_covariance(LINE_OFFSETS)
    rows = []
    for k, j in itertools.combinations_with_replacement(range(len(LINE_OFFSETS)), 2):
        m, se = mean_se(eps[k] * eps[j])
        rows.append(dict(k=k, l=j, mean=m, se=se, truth=C[k, j]))
    return rows


def exponent_se(t, means, ses):
    """Monte Carlo SE of the fitted exponent p = sum_k c_k log y_k (least squares in log-log,
    c_k = (log t_k - mean) / Sxx), by the delta method: Var log y_k ~ (se_k / y_k)^2. The y_k
    share coordinates (nested increments), so they are correlated; the triangle inequality
    sd(sum_k c_k X_k) <= sum_k |c_k| sd(X_k) gives an SE valid for any correlation."""
    lt = np.log(np.asarray(t, dtype=np.float64))
    c = (lt - lt.mean()) / float(np.sum((lt - lt.mean()) ** 2))
    return float(np.sum(np.abs(c) * np.asarray(ses) / np.asarray(means)))


def mc_power_law(h):
    """R1 diagnostic: E||g(nu + t sigma z) - g(nu)||^2 ~ t^p (p = 1 glass, 2 Hessian).

    Truth (algebra on the landscape): E y(t) = sum_i (h_i^2 t^2 sigma^2 + rho_i t sigma), whose
    log-log slope p_true is exactly 1 for h = 0 and within max_t rho / (h^2 sigma t) of 2."""
    n = 4000
    land = SeparableGlass(n, lam=50.0, s=1.0, h=h, box=(-1.5, 1.5), jumps="gaussian", seed=21)
    z = np.random.default_rng(22).choice([-1.0, 1.0], n)
    nu, sigma = np.zeros(n), 1.0
    ts = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
    # per-coordinate terms are independent (each coordinate has its own boundaries)
    terms = [(land.grad(nu + t * sigma * z) - land.grad(nu)) ** 2 for t in ts]
    y = np.array([x.sum() for x in terms])
    se_y = np.array([math.sqrt(n) * x.std(ddof=1) for x in terms])
    p, _ = power_law_exponent(ts, y)
    truth = [float(np.sum(land.hess_diag ** 2 * t * t * sigma ** 2 + land.rho * t * sigma))
             for t in ts]
    p_true, _ = power_law_exponent(ts, truth)
    hess_bound = (float(np.max(land.rho / land.hess_diag ** 2)) / (sigma * ts.min())
                  if h > 0 else math.inf)
    return dict(p=p, se=exponent_se(ts, y, se_y), p_true=p_true, hess_bound=hess_bound)


# ---------------------------------------------------------------- Monte Carlo tests


@pytest.mark.slow
def test_glass_variance_linear_in_distance():
    """R1: E eps_i(delta)^2 = rho_i |delta| at every distance, E eps = 0 (MC, SE tolerance)."""
    for row in mc_linear_growth():
        assert abs(row["mean"] - row["truth"]) <= K_SE * row["se"], row
        assert abs(row["mean_eps"]) <= K_SE * row["se_eps"], row


@pytest.mark.slow
def test_fitted_exponent_of_glass_is_one():
    """R1: the fitted power of E eps^2 in |delta| is 1 (power_law_exponent; SE tolerance)."""
    rows = mc_linear_growth()
    t, means = [r["t"] for r in rows], [r["mean"] for r in rows]
    p, _ = power_law_exponent(t, means)
    se = exponent_se(t, means, [r["se"] for r in rows])
    assert abs(p - 1.0) <= K_SE * se, (p, se)


@pytest.mark.slow
def test_opposite_sides_independent():
    """R1: segments on opposite sides of nu carry independent glass."""
    r = mc_opposite_sides()
    assert abs(r["mean"] - r["truth"]) <= K_SE * r["se"]


@pytest.mark.slow
def test_line_covariance_matches_landscape():
    """R1: the glass along a Rademacher line has covariance sigma rho C (all entries)."""
    for row in mc_line_covariance():
        assert abs(row["mean"] - row["truth"]) <= K_SE * row["se"], row


@pytest.mark.slow
@pytest.mark.parametrize("h, target", [(0.0, 1.0), (200.0, 2.0)])
def test_power_law_glass_vs_hessian_dominated(h, target):
    """R1: full gradient change has p = 1 when glass dominates (h = 0), p = 2 when h dominates.

    The fitted p matches the exponent of the exact expectation curve within K_SE SE; that
    exponent is 1 (h = 0, to rounding) or within the algebraic bound rho / (h^2 sigma t_min)
    of 2 (the glass term's share of the slope)."""
    r = mc_power_law(h)
    assert abs(r["p"] - r["p_true"]) <= K_SE * r["se"], r
    if h == 0.0:
        assert r["p_true"] == pytest.approx(target, abs=1e-12), r
    else:
        assert abs(r["p_true"] - target) <= r["hess_bound"] < 0.05, r


# ---------------------------------------------------------------- exact checks


def test_power_law_two_on_quadratic_by_enumeration(xp):
    """R1: on a quadratic E_z||g(nu+t sigma z)-g(nu)||^2 = t^2 sigma^2 tr(H^2) exactly, p = 2."""
    n, sigma = 6, 0.3
    land = Quadratic(n, seed=3)
    Z = np.array(list(itertools.product([-1.0, 1.0], repeat=n)))
    nu = xp.asarray(np.random.default_rng(4).normal(size=n))
    ts = [0.1, 0.3, 1.0, 3.0]
    y = []
    for t in ts:
        pts = nu + xp.asarray(t * sigma * Z)
        diff = to_np(land.grad(pts)) - to_np(land.grad(nu))
        y.append(float(np.mean(np.sum(diff * diff, axis=1))))
    truth = [t * t * sigma * sigma * float(np.trace(land.hessian @ land.hessian)) for t in ts]
    np.testing.assert_allclose(y, truth, rtol=1e-12)
    p, se = power_law_exponent(ts, y)
    assert p == pytest.approx(2.0, abs=1e-10) and se < 1e-10


def test_power_law_four_for_third_order_second_difference():
    """R1: smooth third-order terms alone give p = 4 for the symmetric second difference.

    L = sum theta^4 / 4, g = theta^3: (g(nu+d) + g(nu-d))/2 - g(nu) = 3 nu d^2 exactly.
    """
    rng = np.random.default_rng(5)
    nu, z = rng.normal(size=5), rng.choice([-1.0, 1.0], 5)
    ts = [0.01, 0.03, 0.1, 0.3]
    y = [float(np.sum(((nu + t * z) ** 3 + (nu - t * z) ** 3) / 2 - nu ** 3) ** 2) for t in ts]
    p, _ = power_law_exponent(ts, y)
    assert p == pytest.approx(4.0, abs=1e-8)


@PROPS
@given(a=st.floats(1e-6, 1e6), p=st.floats(-4.0, 4.0),
       ts=st.lists(st.floats(1e-3, 1e3), min_size=3, max_size=8, unique=True))
@example(a=1.0, p=2.0, ts=[1.0, 2.0, 4.0])
@example(a=1e-6, p=1.0, ts=[1e-3, 1.0, 1e3])
def test_power_law_exponent_recovers_exact_power(a, p, ts):
    """R1: power_law_exponent fits y = a t^p exactly (SE ~ 0) for any a, p."""
    assume(max(ts) / min(ts) >= 1.5)  # a narrower range cannot identify p at rounding level
    y = [a * t ** p for t in ts]
    p_hat, se = power_law_exponent(ts, y)
    assert p_hat == pytest.approx(p, abs=1e-8)
    assert se < 1e-7


def test_line_covariance_is_two_sided_random_walk_by_enumeration():
    """R1: C_kl = min(|s_k|, |s_l|) 1[s_k s_l > 0] is the covariance of two independent walks
    leaving 0, checked by enumerating all 2^6 step patterns of unit Rademacher walks."""
    offsets = [-3, -2, -1, 0, 1, 2, 3]
    acc = np.zeros((7, 7))
    for steps in itertools.product([-1.0, 1.0], repeat=6):
        right, left = np.cumsum(steps[:3]), np.cumsum(steps[3:])
        pos = {0: 0.0}
        for j in range(3):
            pos[j + 1], pos[-(j + 1)] = right[j], left[j]
        w = np.array([pos[s] for s in offsets])
        acc += np.outer(w, w)
    acc /= 2 ** 6
    np.testing.assert_array_equal(glass_line_covariance(offsets), acc)


@PROPS
@given(s=st.lists(st.floats(-10.0, 10.0), min_size=1, max_size=8),
       scale=st.floats(1e-3, 1e3))
@example(s=[0.0], scale=1.0)
@example(s=[-1.0, 0.0, 1.0], scale=2.0)
def test_line_covariance_properties(s, scale):
    """R1: C is symmetric PSD, C_kk = |s_k|, zero across sides, C(c s) = c C(s), C(-s) = C(s)."""
    C = glass_line_covariance(s)
    sa = np.asarray(s)
    assert np.array_equal(C, C.T)
    np.testing.assert_array_equal(np.diag(C), np.abs(sa))
    assert np.all(C[np.outer(np.sign(sa), np.sign(sa)) <= 0] == 0)
    assert np.linalg.eigvalsh(C).min() >= -1e-12 * max(1.0, np.abs(sa).max())
    np.testing.assert_allclose(glass_line_covariance(scale * sa), scale * C, rtol=1e-14)
    np.testing.assert_array_equal(glass_line_covariance(-sa), C)


def test_landscape_glass_keeps_namespace(xp):
    """R1 landscape: the glass gradient comes back in the caller's namespace, device, dtype."""
    land = SeparableGlass(4, lam=10.0, seed=0)
    for dt in (xp.float32, xp.float64):
        th = xp.asarray([0.1, -0.2, 0.3, 0.0], dtype=dt)
        g = land.grad(th)
        assert array_namespace(g) is array_namespace(th)
        assert g.dtype == dt and device(g) == device(th)


# -- the standard error of the fitted exponent, and the two-term fit (issue 19) ------------------

def test_power_law_exponent_se_is_the_ols_slope_error():
    """On noisy data the reported error is the closed-form OLS slope error
    sqrt(sum r^2 / (n - 2) / sum (x - xbar)^2) of log y on log t."""
    rng = np.random.default_rng(19)
    t = np.geomspace(0.01, 1.0, 7)
    y = 3.0 * t**1.5 * np.exp(rng.normal(scale=0.2, size=t.size))
    p, se = power_law_exponent(t, y)
    x, ly = np.log(t), np.log(y)
    A = np.stack([np.ones_like(x), x], axis=1)
    coef, ssr, _, _ = np.linalg.lstsq(A, ly, rcond=None)
    want = math.sqrt(float(ssr[0]) / (t.size - 2) / float(((x - x.mean()) ** 2).sum()))
    assert p == pytest.approx(coef[1], rel=1e-12)
    assert se == pytest.approx(want, rel=1e-10)


def test_power_law_exponent_interval_covers_at_its_level():
    """Coverage by simulation with a known exponent: p +- t_{0.975, n-2} se holds the true 1.5 in
    95% of 2000 noisy fits (5 binomial SE; se without the square root, with n or n + 2 in place
    of n - 2, or times sxx, misses it)."""
    rng = np.random.default_rng(7)
    t = np.geomspace(0.01, 1.0, 6)
    tq = 2.7764451051977987  # Student t quantile 0.975 at n - 2 = 4 degrees of freedom
    reps, hits = 2000, 0
    for _ in range(reps):
        y = 2.0 * t**1.5 * np.exp(rng.normal(scale=0.3, size=t.size))
        p, se = power_law_exponent(t, y)
        hits += abs(p - 1.5) <= tq * se
    assert abs(hits / reps - 0.95) <= 5 * math.sqrt(0.95 * 0.05 / reps)


def test_two_term_fit_exact_and_crossover():
    """y = a t + b t^2 is recovered exactly; t* = a / b is where the two parts are equal."""
    from alice_ref.maths.glass import two_term_fit

    t = np.geomspace(1e-3, 1.0, 9)
    a, b = 0.3, 7.0
    fa, fb, cov = two_term_fit(t, a * t + b * t**2)
    assert (fa, fb) == (pytest.approx(a, rel=1e-10), pytest.approx(b, rel=1e-10))
    assert np.all(np.abs(cov) < 1e-20)
    ts = fa / fb
    assert fa * ts == pytest.approx(fb * ts**2, rel=1e-9)
    with pytest.raises(ValueError):
        two_term_fit([1.0, 1.0], [1.0, 2.0])


def test_two_term_fit_on_separable_glass_and_quadratic():
    """On separable glass E mean_i (g_i(nu + t z) - g_i(nu))^2 = mean rho_i t + mean h_i^2 t^2
    (glass and Hessian parts independent, R1); on a quadratic a = 0, b = ||H||_F^2 / n. The
    power-law sweep's two-term fit and its 95% interval hold the known a and b."""
    from alice_ref.tools.diagnostics import from_flat, power_law_sweep

    n = 4000
    lam = np.full(n, 20.0)
    s = np.full(n, 0.1)  # rho = 0.2 and mean h^2 = 1.08: t* = 0.18 inside the sweep
    h = np.linspace(0.5, 1.5, n)
    land = SeparableGlass(n, lam=lam, s=s, h=h, box=(-2.0, 2.0), seed=3)
    nu = np.zeros(n)
    prob = from_flat(lambda th: (float(land.loss(th)), land.grad(th)), nu, [n], names=["all"])
    scales = [0.01, 0.03, 0.1, 0.3, 1.0]
    g = power_law_sweep(prob, scales, n_probes=4, seed=4).groups[0]
    fit = g.two_term
    a, b = float(np.mean(land.rho)), float(np.mean(h**2))
    assert fit["a_ci"][0] <= a <= fit["a_ci"][1], (fit, a)
    assert fit["b_ci"][0] <= b <= fit["b_ci"][1], (fit, b)
    assert fit["t_star_ci"][0] <= a / b <= fit["t_star_ci"][1]
    q = Quadratic(6, seed=2)
    qp = from_flat(lambda th: (float(q.loss(th)), q.grad(th)), np.zeros(6), [6], names=["q"])
    qf = power_law_sweep(qp, [0.1, 0.2, 0.4, 0.8], n_probes=64, seed=0).groups[0].two_term
    scale = float(np.sum(q.hessian**2)) / 6  # E_z mean_i (H z)_i^2 for Rademacher z
    assert abs(qf["a"]) <= 1e-9 * scale  # no glass: exactly quadratic along every probe
    assert qf["b_ci"][0] <= scale <= qf["b_ci"][1], (qf, scale)
