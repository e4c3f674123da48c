"""R4 applied to pruning and quantization (alice_ref.maths.saliency): exact, MC, properties.

Truth: algebra (the three terms, the group sums, the uniform rounding moments E delta^2 = D^2/12
and E|delta|^{3/2} = (2/5) (D/2)^{3/2}, also by quadrature); a SeparableGlass landscape with
known rho and h, where L(nu + delta) - L(nu) - g.delta - h delta^2 / 2 is exactly the glass part
X of R4 (docs/spec/math.md#r4-expected-loss-deviation-bound): disjoint segments of one long box
are independent samples, so a pruning (nu_j -> nu_j - w) and a rounding (delta_j ~ U(-D/2, D/2))
are checked by Monte Carlo with 5-standard-error tolerances; and hypothesis properties
(homogeneity, signs, orderings) on every backend of the ``xp`` fixture.
"""

import functools
import math

import numpy as np
import pytest
from helpers import mean_se, to_np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import alice_ref
from alice_ref import GLASS_COEFF, loss_deviation_bound
from alice_ref.landscapes import SeparableGlass
from alice_ref.maths import saliency as S

K_SE = 5.0
C = math.sqrt(2.0 / (3.0 * math.pi))
PROPS = settings(max_examples=25, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def arr(xp, v):
    return xp.asarray(np.asarray(v, dtype=np.float64))


# ---------------------------------------------------------------- exact checks


def test_public_names_exported():
    for name in ("loss_change", "pruning_change", "quantization_change", "group_change",
                 "pruning_saliency", "quantization_sensitivity", "uniform_rounding_moments",
                 "LossChange", "SALIENCY_CRITERIA"):
        assert hasattr(alice_ref, name), name
    assert alice_ref.SALIENCY_CRITERIA == S.CRITERIA


def test_loss_change_terms_exact(xp):
    """R4 terms: g delta, h delta^2 / 2, c sqrt(rho) |delta|^{3/2}; glass sums to the bound."""
    d, g, h, r = [-4.0, 0.25, 1.0], [1.0, -2.0, 0.5], [0.5, 3.0, -1.0], [1.0, 4.0, 0.0]
    t = S.loss_change(arr(xp, d), arr(xp, g), arr(xp, h), arr(xp, r))
    np.testing.assert_allclose(to_np(t.first), [-4.0, -0.5, 0.5], rtol=1e-15)
    np.testing.assert_allclose(to_np(t.second), [4.0, 3.0 / 32.0, -0.5], rtol=1e-15)
    np.testing.assert_allclose(to_np(t.glass), [8.0 * C, 2.0 * 0.125 * C, 0.0], rtol=1e-14)
    np.testing.assert_allclose(float(to_np(xp.sum(t.glass))),
                               float(to_np(loss_deviation_bound(arr(xp, d), arr(xp, r)))),
                               rtol=1e-14)
    np.testing.assert_allclose(to_np(t.total), to_np(t.first + t.second + t.glass), rtol=0)
    assert GLASS_COEFF == pytest.approx(C, rel=1e-15)


def test_pruning_is_delta_minus_theta(xp):
    th, g, h, r = arr(xp, [0.3, -2.0]), arr(xp, [1.0, 0.5]), arr(xp, [2.0, 1.0]), arr(xp, [1, 9])
    a, b = S.pruning_change(th, g, h, r), S.loss_change(-th, g, h, r)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(to_np(x), to_np(y))
    # OBD's saliency is the second term: h theta^2 / 2
    np.testing.assert_allclose(to_np(a.second), [0.09, 2.0], rtol=1e-15)


def test_uniform_rounding_moments_exact(xp):
    """E delta^2 = D^2/12, E|delta|^{3/2} = (2/5)(D/2)^{3/2} (algebra and midpoint quadrature)."""
    D = np.array([0.0, 0.1, 1.0, 2.0, 7.5])
    m2, m32 = S.uniform_rounding_moments(arr(xp, D))
    np.testing.assert_allclose(to_np(m2), D ** 2 / 12.0, rtol=1e-15)
    np.testing.assert_allclose(to_np(m32), 0.4 * (D / 2.0) ** 1.5, rtol=1e-14)
    n = 200_000  # independent: midpoint rule on [0, a] of x^p / a
    for a in (0.05, 1.0, 3.75):
        x = (np.arange(n) + 0.5) / n * a
        q2, q32 = np.mean(x ** 2), np.mean(x ** 1.5)
        got = [to_np(v)[0] for v in S.uniform_rounding_moments(arr(xp, [2 * a]))]
        np.testing.assert_allclose(got, [q2, q32], rtol=1e-8)


def test_uniform_rounding_moments_monte_carlo():
    """Rounding a continuous weight to a grid with a uniform offset: delta ~ U(-D/2, D/2)."""
    rng = np.random.default_rng(5)
    D, w = 0.3, rng.normal(0.0, 2.0, 200_000)
    off = rng.uniform(0.0, D, w.size)
    delta = np.round((w - off) / D) * D + off - w
    m2, m32 = (float(v[0]) for v in S.uniform_rounding_moments(np.array([D])))
    for sample, truth in ((delta ** 2, m2), (np.abs(delta) ** 1.5, m32), (delta, 0.0)):
        m, se = mean_se(sample)
        assert abs(m - truth) <= K_SE * se, (m, se, truth)


def test_quantization_change_exact(xp):
    D, g, h, r = arr(xp, [2.0, 0.5]), arr(xp, [5.0, -1.0]), arr(xp, [3.0, 1.0]), arr(xp, [1, 4])
    t = S.quantization_change(D, g, h, r)
    np.testing.assert_array_equal(to_np(t.first), [0.0, 0.0])
    np.testing.assert_allclose(to_np(t.second), [3.0 * 4 / 24, 0.25 / 24], rtol=1e-15)
    np.testing.assert_allclose(to_np(t.glass), [0.4 * C, 2 * 0.4 * C * 0.25 ** 1.5], rtol=1e-14)


def test_group_change_exact(xp):
    """Rows of a 2x3 weight: first/second sum; glass sums (bound) or adds in quadrature."""
    f = arr(xp, [[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
    s = arr(xp, [[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]])
    gl = arr(xp, [[3.0, 4.0, 0.0], [1.0, 2.0, 2.0]])
    t = S.LossChange(f, s, gl)
    b, gs = S.group_change(t, axis=1), S.group_change(t, axis=1, glass="gaussian")
    np.testing.assert_allclose(to_np(b.first), [6.0, 0.0])
    np.testing.assert_allclose(to_np(b.second), [1.5, 3.0])
    np.testing.assert_allclose(to_np(b.glass), [7.0, 5.0])
    np.testing.assert_allclose(to_np(gs.glass), [5.0, 3.0])
    whole = S.group_change(t)
    assert float(to_np(whole.glass)) == 12.0
    with pytest.raises(ValueError, match="glass"):
        S.group_change(t, glass="sum")


def test_scores_per_criterion_exact(xp):
    th, g, h, r = arr(xp, [-2.0, 1.0]), arr(xp, [1.0, 1.0]), arr(xp, [1.0, -4.0]), arr(xp, [0, 1])
    want = {"magnitude": [2.0, 1.0], "first_order": [2.0, 1.0], "obd": [2.0, -2.0],
            "quadratic": [4.0, -3.0], "glass": [4.0, -3.0 + C]}
    for c in S.CRITERIA:
        np.testing.assert_allclose(to_np(S.pruning_saliency(th, g, h, r, c)), want[c],
                                   rtol=1e-14, err_msg=c)
    t = S.pruning_change(th, g, h, r)
    assert S.predicted_change(t, "magnitude") is None
    np.testing.assert_allclose(to_np(S.predicted_change(t, "first_order")), [2.0, -1.0])


def test_quantization_sensitivity_exact(xp):
    D, g, h, r = arr(xp, [2.0]), arr(xp, [-1.0]), arr(xp, [3.0]), arr(xp, [4.0])
    want = {"magnitude": 4 / 12, "first_order": 0.5, "obd": 0.5, "quadratic": 0.5,
            "glass": 0.5 + 2 * 0.4 * C}
    for c in S.CRITERIA:
        np.testing.assert_allclose(to_np(S.quantization_sensitivity(D, g, h, r, c)), [want[c]],
                                   rtol=1e-14, err_msg=c)


def test_bad_input(xp):
    a = arr(xp, [1.0, 2.0])
    with pytest.raises(ValueError, match="rho"):
        S.loss_change(a, a, a, arr(xp, [1.0, -1.0]))
    with pytest.raises(ValueError, match="step"):
        S.uniform_rounding_moments(arr(xp, [-1.0]))
    with pytest.raises(ValueError, match="criterion"):
        S.pruning_saliency(a, a, a, a, "snip")
    with pytest.raises(ValueError, match="shape"):
        S.loss_change(a, arr(xp, [1.0]), a, a)
    with pytest.raises(ValueError, match="magnitude"):
        S.score_from_change(S.LossChange(a, a, a), "magnitude")


def test_estimates_from_alice_state():
    state = alice_ref.init([np.array([1.0, -2.0])])
    state = state._replace(G=(np.array([0.1, 0.2]),), H=(np.array([4.0, 9.0]),),
                           R=(np.array([0.5, 0.0]),))
    th, g, h, r = S.estimates_from_state(state)
    assert th[0].tolist() == [1.0, -2.0] and h[0].tolist() == [4.0, 9.0]
    assert S.estimates_from_state(state, "rms")[2][0].tolist() == [2.0, 3.0]
    with pytest.raises(TypeError, match="mu, G, H, R"):
        S.estimates_from_state(object())


# ---------------------------------------------------------------- Monte Carlo (known truth)


M_SEG = 3000


@functools.cache
def pruning_segments():
    """Prune a weight of value w at M_SEG independent points nu_j (nu_j -> nu_j - w): 1-D."""
    w, spacing = 0.2, 0.5
    land = SeparableGlass(1, lam=100.0 / w, s=0.7, h=2.0, b=0.3,
                          box=(0.0, spacing * (M_SEG + 1)), jumps="rademacher", seed=71)
    nu = (np.arange(M_SEG)[:, None] + 0.7) * spacing
    dl = land.loss(nu - w) - land.loss(nu)
    t = S.pruning_change(np.full((M_SEG, 1), w), land.grad(nu), land.hess_diag + 0 * nu,
                         land.rho + 0 * nu)
    return land, dl, t


def test_pruning_mean_change_is_quadratic():
    """MC: E[dL] = Q = -g w + h w^2 / 2 (the glass part has mean zero)."""
    _, dl, t = pruning_segments()
    m, se = mean_se(dl - t.quadratic[:, 0])
    assert abs(m) <= K_SE * se, (m, se)


def test_pruning_glass_term_is_expected_deviation():
    """MC: E|dL - Q| = c sqrt(rho) |w|^{3/2} in the many-jump (Brownian) regime."""
    _, dl, t = pruning_segments()
    ratio = np.abs(dl - t.quadratic[:, 0]) / t.glass[:, 0]
    m, se = mean_se(ratio)
    assert abs(m - 1.0) <= K_SE * se, (m, se)


@functools.cache
def rounding_segments():
    """Round at M_SEG independent points: delta_j ~ U(-D/2, D/2), many jumps per unit D."""
    D, spacing = 0.4, 0.5
    land = SeparableGlass(1, lam=3000.0 / D, s=0.2, h=3.0, b=-0.5,
                          box=(0.0, spacing * (M_SEG + 1)), jumps="rademacher", seed=72)
    rng = np.random.default_rng(73)
    nu = (np.arange(M_SEG)[:, None] + 0.5) * spacing
    delta = rng.uniform(-D / 2, D / 2, (M_SEG, 1))
    dl = (land.loss(nu + delta) - land.loss(nu))
    g = land.grad(nu)
    t = S.quantization_change(np.full((1,), D), np.zeros(1), land.hess_diag, land.rho)
    return land, dl, g, delta, t


def test_rounding_expected_change():
    """MC: E[dL] = h D^2 / 24 (E g delta = 0: delta independent of g) and E[g delta] = 0."""
    _, dl, g, delta, t = rounding_segments()
    m, se = mean_se(dl)
    assert abs(m - float(t.second[0])) <= K_SE * se, (m, se, t.second)
    m, se = mean_se((g * delta)[:, 0])
    assert abs(m) <= K_SE * se, (m, se)


def test_rounding_glass_term_is_expected_deviation():
    """MC: E|X| over the rounding error = (2/5) c sqrt(rho) (D/2)^{3/2}."""
    land, dl, g, delta, t = rounding_segments()
    X = dl - (g * delta)[:, 0] - 0.5 * land.hess_diag[0] * delta[:, 0] ** 2
    m, se = mean_se(np.abs(X))
    assert abs(m - float(t.glass[0])) <= K_SE * se, (m, se, t.glass)


@functools.cache
def channel_segments():
    """A 'channel' of three weights pruned together at M_SEG independent points."""
    w, spacing = np.array([0.1, -0.2, 0.15]), 0.4
    land = SeparableGlass(3, lam=100.0 / np.abs(w), s=[0.5, 1.0, 2.0], h=[1.0, 0.0, 3.0],
                          b=[0.3, -1.0, 0.0], box=(0.0, spacing * (M_SEG + 1)),
                          jumps="rademacher", seed=74)
    nu = (np.arange(M_SEG)[:, None] + 0.75) * spacing + np.zeros((1, 3))
    dl = land.loss(nu - w) - land.loss(nu)
    t = S.pruning_change(w + np.zeros((M_SEG, 3)), land.grad(nu), land.hess_diag + 0 * nu,
                         land.rho + 0 * nu)
    return dl, S.group_change(t, axis=1), S.group_change(t, axis=1, glass="gaussian")


def test_channel_glass_gaussian_sum_and_bound():
    """MC: E|dL - Q| = c sqrt(sum rho_i w_i^3) ('gaussian'), strictly below the R4 bound."""
    dl, b, gs = channel_segments()
    dev = np.abs(dl - b.quadratic)
    m, se = mean_se(dev / gs.glass)
    assert abs(m - 1.0) <= K_SE * se, (m, se)
    m, se = mean_se(dev / b.glass)
    assert m + K_SE * se < 1.0, (m, se)


# ---------------------------------------------------------------- hypothesis properties

pos = st.one_of(st.just(0.0), st.floats(1e-60, 1e3))  # no underflow of squares and cubes
floats = st.one_of(pos, pos.map(lambda v: -v))


@PROPS
@given(d=st.lists(floats, min_size=1, max_size=6), t=st.floats(1e-3, 1e2),
       g=floats, h=floats, r=pos)
@example(d=[0.0], t=2.0, g=0.0, h=0.0, r=0.0)
@example(d=[1e-60], t=1.0, g=1.0, h=1.0, r=1.0)
def test_homogeneity_and_signs(xp, d, t, g, h, r):
    """first ~ t, second ~ t^2, glass ~ t^{3/2} >= 0, glass even in delta; total >= quadratic."""
    dd = arr(xp, d)
    a, b = S.loss_change(dd, g, h, r), S.loss_change(t * dd, g, h, r)
    m = S.loss_change(-dd, g, h, r)
    scale = max(1.0, float(np.max(np.abs(d))) ** 2 * t * t * (abs(h) + abs(g) + r + 1.0))
    np.testing.assert_allclose(to_np(b.first), t * to_np(a.first), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(to_np(b.second), t * t * to_np(a.second), rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_allclose(to_np(b.glass), t ** 1.5 * to_np(a.glass), rtol=1e-12,
                               atol=1e-300)
    assert np.all(to_np(a.glass) >= 0)
    np.testing.assert_array_equal(to_np(a.glass), to_np(m.glass))
    assert np.all(to_np(a.total) >= to_np(a.quadratic) - 1e-12 * scale)


@PROPS
@given(glass=st.lists(pos, min_size=1, max_size=8))
def test_gaussian_group_never_above_bound(xp, glass):
    z = arr(xp, np.zeros(len(glass)))
    t = S.LossChange(z, z, arr(xp, glass))
    gs = float(to_np(S.group_change(t, glass="gaussian").glass))
    b = float(to_np(S.group_change(t).glass))
    assert max(glass) * (1 - 1e-12) <= gs <= b * (1 + 1e-12) + 1e-300


@PROPS
@given(D=st.lists(pos, min_size=1, max_size=5),
       t=st.floats(1e-3, 1e3))
@example(D=[0.0], t=1.0)
def test_rounding_moments_properties(xp, D, t):
    """Lyapunov: E|delta|^{3/2} <= (E delta^2)^{3/4}; homogeneity in D."""
    m2, m32 = (to_np(v) for v in S.uniform_rounding_moments(arr(xp, D)))
    n2, n32 = (to_np(v) for v in S.uniform_rounding_moments(arr(xp, t * np.asarray(D))))
    assert np.all(m32 <= m2 ** 0.75 * (1 + 1e-12))
    np.testing.assert_allclose(n2, t * t * m2, rtol=1e-12)
    np.testing.assert_allclose(n32, t ** 1.5 * m32, rtol=1e-12)


@PROPS
@given(th=st.lists(floats, min_size=1, max_size=6), g=floats, h=floats, r=pos)
def test_glass_score_orders_like_quadratic_plus_glass(xp, th, g, h, r):
    """glass score = quadratic score + glass term >= quadratic; rho = 0 gives quadratic."""
    x = arr(xp, th)
    q = to_np(S.pruning_saliency(x, g, h, r, "quadratic"))
    gl = to_np(S.pruning_saliency(x, g, h, r, "glass"))
    t = S.pruning_change(x, g, h, r)
    np.testing.assert_allclose(gl - q, to_np(t.glass), rtol=1e-9,
                               atol=1e-9 * (1 + np.max(np.abs(q))))
    np.testing.assert_array_equal(to_np(S.pruning_saliency(x, g, h, 0.0, "glass")),
                                  to_np(S.pruning_saliency(x, g, h, 0.0, "quadratic")))
