"""R4 (expected loss-deviation bound): the glass part X of a loss change and its expected size.

On SeparableGlass, X = L(nu + delta) - L(nu) - g(nu).delta - sum h_i delta_i^2 / 2 exactly (no
smooth remainder). Segments [nu_j, nu_j + delta] that do not overlap see independent parts of the
boundary process, so one long-box landscape yields many independent samples of X. Truth: the
landscape's rho, Var X_i = rho_i |delta_i|^3 / 3 (algebra) and the Gaussian E|N(0, v)| =
sqrt(2 v / pi). Monte Carlo figures come from the ``mc_*`` functions.
"""

import functools
import math

import numpy as np
import pytest
from array_api_compat import array_namespace, device
from helpers import mean_se, to_np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alice_ref import GLASS_COEFF, JENSEN_COEFF, loss_deviation_bound
from alice_ref.landscapes import SeparableGlass

K_SE = 5.0
C = math.sqrt(2.0 / (3.0 * math.pi))
PROPS = settings(max_examples=30, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def glass_deviation(land, nu, delta):
    """X = L(nu + delta) - L(nu) - g.delta - sum h delta^2/2, one value per row of nu."""
    return (land.loss(nu + delta) - land.loss(nu) - np.sum(land.grad(nu) * delta, axis=-1)
            - 0.5 * np.sum(land.hess_diag * delta * delta, axis=-1))


# Many-jump regime: about 100 Rademacher jumps per segment (near-Brownian glass).
DELTA = np.array([0.1, -0.2, 0.15])
M_SEG, SPACING = 3000, 0.4


@functools.cache
def many_jump_samples():
    """X per coordinate (delta along one axis) and X for the full delta, M_SEG segments each."""
    lam = 100.0 / np.abs(DELTA)
    land = SeparableGlass(3, lam=lam, s=[0.5, 1.0, 2.0], h=[1.0, 0.0, 3.0], b=[0.3, -1.0, 0.0],
                          box=(0.0, SPACING * (M_SEG + 1)), jumps="rademacher", seed=51)
    nu = (np.arange(M_SEG)[:, None] + 0.75) * SPACING + np.zeros((1, 3))
    per = [glass_deviation(land, nu, np.eye(3)[i] * DELTA[i]) for i in range(3)]
    return land, per, glass_deviation(land, nu, DELTA + np.zeros((M_SEG, 3)))


def mc_moments():
    """R4: E X_i = 0 and E X_i^2 = rho_i |delta_i|^3 / 3 for each coordinate (any jump law)."""
    land, per, _ = many_jump_samples()
    rows = []
    for i, X in enumerate(per):
        v_true = land.rho[i] * abs(DELTA[i]) ** 3 / 3
        m, se = mean_se(X / math.sqrt(v_true))
        m2, se2 = mean_se(X * X / v_true)
        rows.append(dict(coord=i, mean=m, se=se, truth=0.0, var=m2, var_se=se2, var_truth=1.0))
    return rows


def mc_gaussian_limit():
    """R4: E|X_i| / (c sqrt(rho_i) |delta_i|^{3/2}) -> 1 in the many-jump regime."""
    land, per, _ = many_jump_samples()
    rows = []
    for i, X in enumerate(per):
        bound = C * math.sqrt(land.rho[i]) * abs(DELTA[i]) ** 1.5
        m, se = mean_se(np.abs(X) / bound)
        rows.append(dict(coord=i, mean=m, se=se, truth=1.0))
    return rows


def mc_sum_bound():
    """R4: for all coordinates at once E|X| = c sqrt(sum rho_i |delta_i|^3) (Gaussian sum),
    strictly below the bound c sum sqrt(rho_i) |delta_i|^{3/2} = loss_deviation_bound."""
    land, _, X = many_jump_samples()
    m, se = mean_se(np.abs(X))
    truth = C * math.sqrt(float(np.sum(land.rho * np.abs(DELTA) ** 3)))
    bound = float(loss_deviation_bound(DELTA, land.rho))
    return dict(mean=m, se=se, truth=truth, bound=bound)


@functools.cache
def mc_few_jumps():
    """R4, few jumps (lam |delta| = 0.5): moments still exact, E|X| <= sqrt(1/3) sqrt(rho)
    |delta|^{3/2} (Jensen), and far from the Gaussian value."""
    M, d, lam = 20000, 0.5, 1.0
    land = SeparableGlass(1, lam=lam, s=1.5, h=2.0, b=0.5, box=(0.0, 2.0 * d * (M + 1)),
                          jumps="rademacher", seed=61)
    nu = (np.arange(M)[:, None] + 0.5) * 2.0 * d
    X = glass_deviation(land, nu, np.full((M, 1), d))
    v_true = land.rho[0] * d ** 3 / 3
    m, se = mean_se(X / math.sqrt(v_true))
    m2, se2 = mean_se(X * X / v_true)
    ab, abse = mean_se(np.abs(X) / (math.sqrt(land.rho[0]) * d ** 1.5))
    return dict(mean=m, se=se, var=m2, var_se=se2, abs_ratio=ab, abs_se=abse,
                jensen=math.sqrt(1.0 / 3.0), gaussian=C)


@pytest.mark.slow
def test_glass_deviation_mean_zero_variance_cubic():
    """R4: E X_i = 0, Var X_i = rho_i |delta_i|^3 / 3 on separable glass (MC, SE tolerance)."""
    for r in mc_moments():
        assert abs(r["mean"] - r["truth"]) <= K_SE * r["se"], r
        assert abs(r["var"] - r["var_truth"]) <= K_SE * r["var_se"], r


@pytest.mark.slow
def test_gaussian_limit_coefficient():
    """R4: E|X_i| = c sqrt(rho_i) |delta_i|^{3/2}, c = sqrt(2/(3 pi)), with many small jumps."""
    for r in mc_gaussian_limit():
        assert abs(r["mean"] - r["truth"]) <= K_SE * r["se"], r


@pytest.mark.slow
def test_bound_holds_for_several_coordinates():
    """R4: E|sum_i X_i| matches the Gaussian-sum value and stays below loss_deviation_bound."""
    r = mc_sum_bound()
    assert abs(r["mean"] - r["truth"]) <= K_SE * r["se"], r
    assert r["mean"] + K_SE * r["se"] < r["bound"], r


@pytest.mark.slow
def test_few_jump_regime_jensen_bound():
    """R4: with few jumps Var X = rho |delta|^3/3 still, and E|X| <= sqrt(1/3) sqrt(rho)
    |delta|^{3/2} (JENSEN_COEFF); here E|X| is even below the Gaussian coefficient."""
    r = mc_few_jumps()
    assert abs(r["mean"]) <= K_SE * r["se"], r
    assert abs(r["var"] - 1.0) <= K_SE * r["var_se"], r
    assert r["abs_ratio"] - K_SE * r["abs_se"] <= r["jensen"], r
    assert r["abs_ratio"] + K_SE * r["abs_se"] < r["gaussian"], r


# ---------------------------------------------------------------- exact checks


def test_constants():
    """R4: GLASS_COEFF = sqrt(2/(3 pi)) = E|N(0, 1/3)| and JENSEN_COEFF = sqrt(1/3) >= it."""
    assert GLASS_COEFF == pytest.approx(C, rel=1e-15)
    assert GLASS_COEFF == pytest.approx(math.sqrt(2.0 / math.pi) * math.sqrt(1.0 / 3.0),
                                        rel=1e-15)
    assert JENSEN_COEFF == pytest.approx(math.sqrt(1.0 / 3.0), rel=1e-15)
    assert GLASS_COEFF < JENSEN_COEFF


def test_deviation_is_exact_on_separable_glass():
    """R4: X = sum_k beta_k (nu + delta - c_k) over boundaries crossed, so X = 0 when no
    boundary lies between nu and nu + delta (outside the box), whatever b and h."""
    land = SeparableGlass(3, lam=50.0, h=[1.0, 2.0, 0.5], b=[1.0, -2.0, 0.1], box=(-1.0, 1.0),
                          seed=3)
    nu = np.array([[2.0, -3.0, 5.0]])
    X = glass_deviation(land, nu, np.array([[0.5, -0.7, 1.1]]))
    assert abs(float(X[0])) <= 1e-12 * 10


@PROPS
@given(delta=st.lists(st.floats(-1e3, 1e3), min_size=5, max_size=5),
       rho=st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 1e6)), min_size=5, max_size=5),
       t=st.floats(1e-3, 1e3), dtype=st.sampled_from(["float32", "float64"]))
@example(delta=[0.0] * 5, rho=[0.0] * 5, t=1.0, dtype="float64")
@example(delta=[1.0, -1.0, 0.0, 4.0, 1e-3], rho=[1.0, 4.0, 1.0, 0.0, 1e6], t=2.0,
         dtype="float32")
def test_loss_deviation_bound_algebra(xp, delta, rho, t, dtype):
    """R4: bound = c sum sqrt(rho_i) |delta_i|^{3/2}; scales as t^{3/2} in delta and sqrt in
    rho; a 0-d array of the input's namespace, device and dtype."""
    dt = getattr(xp, dtype)
    d, r = xp.asarray(np.array(delta), dtype=dt), xp.asarray(np.array(rho), dtype=dt)
    out = loss_deviation_bound(d, r)
    assert array_namespace(out) is array_namespace(d) and out.dtype == dt
    assert out.shape == () and device(out) == device(d)
    dn, rn = to_np(d), to_np(r)
    truth = C * np.sum(np.sqrt(rn) * np.abs(dn) ** 1.5)
    tol = 1e-5 if dtype == "float32" else 1e-12
    tiny = 1e-30 if dtype == "float32" else 1e-300  # terms below float32's range flush to 0
    assert float(to_np(out)) == pytest.approx(truth, rel=tol, abs=tiny)
    if dtype == "float64":
        scaled = float(to_np(loss_deviation_bound(t * d, 4.0 * r)))
        assert scaled == pytest.approx(2.0 * t ** 1.5 * truth, rel=1e-12, abs=1e-300)
