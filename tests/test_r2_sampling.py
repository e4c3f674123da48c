"""R2 (optimal sampling distribution): Hutchinson variance, Rademacher optimality, parity.

Truth: exact enumeration over all 2^n sign patterns (or 3^n patterns of a three-point law), the
Quadratic's known Hessian, a cubic test function whose derivatives are written out here, and the
SeparableGlass landscape's known rho. Monte Carlo figures come from the ``mc_*`` functions.
"""

import functools
import itertools
import math

import numpy as np
import pytest
from array_api_compat import array_namespace, device
from helpers import mean_se, to_np, var_se
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alice_ref import glass_density, hessian_diag, rademacher_from_uniform, rademacher_variance
from alice_ref.landscapes import Quadratic, SeparableGlass

K_SE = 5.0
PROPS = settings(max_examples=25, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def random_symmetric(n, seed):
    A = np.random.default_rng(seed).normal(size=(n, n))
    return (A + A.T) / 2


def all_signs(n):
    return np.array(list(itertools.product([-1.0, 1.0], repeat=n)))


# ---------------------------------------------------------------- exact: enumeration


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_rademacher_variance_matches_enumeration(xp, n):
    """R2: Var[z_i (Hz)_i] over all 2^n sign patterns = sum_{j != i} H_ij^2 (E z^4 = 1)."""
    H = random_symmetric(n, seed=n)
    Z = all_signs(n)
    D = Z * (Z @ H)  # rows: z * (H z)
    np.testing.assert_allclose(D.mean(axis=0), np.diag(H), rtol=1e-13, atol=1e-14)
    exact = D.var(axis=0)  # population variance over equally likely patterns
    np.testing.assert_allclose(rademacher_variance(xp.asarray(H)), exact, rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("p", [0.5, 0.25, 0.8])
def test_fourth_moment_formula_by_three_point_enumeration(p):
    """R2: for z in {-a, 0, a} (P(z=+-a) = p/2, a^2 = 1/p) E z^2 = 1, E z^4 = 1/p, and
    Var[D_i] = sum_{j != i} H_ij^2 + (E z^4 - 1) H_ii^2, by enumeration over all 3^n patterns."""
    n = 4
    H = random_symmetric(n, seed=7)
    a = 1.0 / math.sqrt(p)
    vals, probs = np.array([-a, 0.0, a]), np.array([p / 2, 1 - p, p / 2])
    Z = np.array(list(itertools.product(vals, repeat=n)))
    W = np.prod(np.array(list(itertools.product(probs, repeat=n))), axis=1)
    assert W.sum() == pytest.approx(1.0, abs=1e-15)
    D = Z * (Z @ H)
    mean = W @ D
    var = W @ (D - mean) ** 2
    np.testing.assert_allclose(mean, np.diag(H), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rademacher_variance(H, fourth_moment=1.0 / p), var, rtol=1e-12)


def test_hessian_diag_over_all_patterns_on_quadratic(xp):
    """R2: on a quadratic, the mean of hessian_diag over all 2^n patterns is diag(H) exactly,
    and its variance is rademacher_variance(H)."""
    n, sigma = 6, 0.1
    land = Quadratic(n, seed=8)
    for dt, rtol in ((xp.float64, 1e-11), (xp.float32, 1e-4)):
        Z = xp.asarray(all_signs(n), dtype=dt)
        nu = xp.asarray(np.random.default_rng(9).normal(size=n), dtype=dt)
        D = hessian_diag(land.grad(nu + sigma * Z), land.grad(nu - sigma * Z), Z, sigma)
        assert array_namespace(D) is array_namespace(Z) and D.dtype == dt
        assert device(D) == device(Z)
        Dn = to_np(D)
        scale = np.abs(land.hessian).max()
        np.testing.assert_allclose(Dn.mean(axis=0), land.hess_diag, rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(Dn.var(axis=0), rademacher_variance(land.hessian),
                                   rtol=10 * rtol, atol=10 * rtol * scale ** 2)


class Cubic:
    """L = b.x + x^T A x / 2 + T(x, x, x) / 6 with T symmetric: g = b + A x + T(x, x) / 2 and
    Hessian A + T(x). Written out here, independent of the library."""

    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.b, self.A = rng.normal(size=n), random_symmetric(n, seed + 1)
        T = rng.normal(size=(n, n, n))
        self.T = sum(T.transpose(p) for p in itertools.permutations(range(3))) / 6

    def grad(self, x):
        return self.b + x @ self.A + 0.5 * np.einsum("ijk,...j,...k->...i", self.T, x, x)

    def hess(self, x):
        return self.A + np.einsum("ijk,k->ij", self.T, x)


def test_antithetic_difference_keeps_odd_orders_only(xp):
    """R2 (parity): (g+ - g-)/2 = sigma H(nu) z exactly on a cubic: no g0, no third-order term;
    hence E_z hessian_diag = diag(H(nu)) exactly (all 2^n patterns)."""
    n, sigma = 5, 0.2
    f = Cubic(n, seed=3)
    nu = np.random.default_rng(4).normal(size=n)
    Z = all_signs(n)
    gp, gm = f.grad(nu + sigma * Z), f.grad(nu - sigma * Z)
    D = to_np(hessian_diag(xp.asarray(gp), xp.asarray(gm), xp.asarray(Z), sigma))
    Hnu = f.hess(nu)
    np.testing.assert_allclose(D, Z * (Z @ Hnu), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(D.mean(axis=0), np.diag(Hnu), rtol=1e-10, atol=1e-12)


def test_antithetic_mean_keeps_even_orders_only(xp):
    """R2 (parity): (g+ + g-)/2 - g0 = sigma^2 T(z, z)/2 on a cubic: no Hessian, no b; so
    glass_density is 2 (sigma^2 T(z,z)/2)^2 / sigma, and exactly 0 on a quadratic."""
    n, sigma = 5, 0.2
    f = Cubic(n, seed=5)
    nu = np.random.default_rng(6).normal(size=n)
    Z = all_signs(n)
    args = [xp.asarray(f.grad(nu + sigma * Z)), xp.asarray(f.grad(nu - sigma * Z)),
            xp.asarray(np.broadcast_to(f.grad(nu), Z.shape).copy())]
    even = 0.5 * sigma ** 2 * np.einsum("ijk,pj,pk->pi", f.T, Z, Z)
    np.testing.assert_allclose(to_np(glass_density(*args, sigma)), 2 * even ** 2 / sigma,
                               rtol=1e-9, atol=1e-14)
    f.T = np.zeros_like(f.T)  # now a quadratic: the Hessian term is annihilated exactly
    args = [xp.asarray(f.grad(nu + sigma * Z)), xp.asarray(f.grad(nu - sigma * Z)),
            xp.asarray(np.broadcast_to(f.grad(nu), Z.shape).copy())]
    gscale = np.abs(f.grad(nu + sigma * Z)).max()
    assert np.all(to_np(glass_density(*args, sigma)) <= (1e-15 * gscale) ** 2 * 8 / sigma)


# ---------------------------------------------------------------- Monte Carlo


def mc_gaussian_fourth_moment(M=200_000):
    """R2: Gaussian probes (E z^4 = 3): sample Var[z_i (Hz)_i] vs the formula."""
    H = random_symmetric(4, seed=10)
    z = np.random.default_rng(11).normal(size=(M, 4))
    D = z * (z @ H)
    v, se = var_se(D)
    m, mse = mean_se(D)
    return dict(var=v, var_se=se, var_truth=rademacher_variance(H, fourth_moment=3.0),
                mean=m, mean_se=mse, mean_truth=np.diag(H),
                rademacher_var=rademacher_variance(H, fourth_moment=1.0))


@functools.cache
def mc_probe_reach(M=20000, sigma=0.2):
    """R2: E eps_i(sigma z)^2 = sigma rho_i E|z_i|: 1 for Rademacher, sqrt(2/pi) for Gaussian."""
    land = SeparableGlass(M, lam=50.0, s=1.0, h=1.0, box=(-1.5, 1.5), seed=31)
    rng = np.random.default_rng(32)
    out = {}
    for name, z in (("rademacher", rng.choice([-1.0, 1.0], M)), ("gaussian", rng.normal(size=M))):
        nu = np.zeros(M)
        eps = land.grad(nu + sigma * z) - land.grad(nu) - land.hess_diag * sigma * z
        m, se = mean_se(eps ** 2 / (sigma * land.rho))
        out[name] = dict(mean=m, se=se, truth=1.0 if name == "rademacher" else
                         math.sqrt(2 / math.pi))
    return out


@pytest.mark.slow
def test_gaussian_probe_variance_monte_carlo():
    """R2: rademacher_variance(H, 3) is the variance of Hutchinson's estimator with Gaussian
    probes, and it exceeds the Rademacher variance (MC, SE tolerance)."""
    r = mc_gaussian_fourth_moment()
    assert np.all(np.abs(r["var"] - r["var_truth"]) <= K_SE * r["var_se"]), r
    assert np.all(np.abs(r["mean"] - r["mean_truth"]) <= K_SE * r["mean_se"]), r
    assert np.all(r["var"] - K_SE * r["var_se"] > r["rademacher_var"]), r


@pytest.mark.slow
def test_rademacher_probes_reach_farthest():
    """R2: glass seen per unit RMS perturbation is E|z| (1 Rademacher, sqrt(2/pi) Gaussian)."""
    for name, r in mc_probe_reach().items():
        assert abs(r["mean"] - r["truth"]) <= K_SE * r["se"], (name, r)


# ---------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 6), m4=st.floats(1.0, 10.0))
@example(seed=0, n=1, m4=1.0)
def test_rademacher_minimises_variance(seed, n, m4):
    """R2: Var is increasing in E z^4, so Rademacher (E z^4 = 1, the minimum) is optimal;
    equal only where H_ii = 0."""
    H = random_symmetric(n, seed)
    v1, vm = rademacher_variance(H, 1.0), rademacher_variance(H, m4)
    np.testing.assert_allclose(vm - v1, (m4 - 1.0) * np.diag(H) ** 2, rtol=1e-12, atol=1e-14)
    assert np.all(vm >= v1)


@PROPS
@given(u=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=6, max_size=6),
       dtype=st.sampled_from(["float32", "float64"]))
@example(u=[0.0, 0.5, 0.4999, 0.5001, 0.25, 0.75], dtype="float64")
def test_rademacher_from_uniform(xp, u, dtype):
    """R2: official convention z = -1 where u < 0.5 else +1; E z = 0 on a uniform grid."""
    ux = xp.asarray(np.array(u), dtype=getattr(xp, dtype))
    z = rademacher_from_uniform(ux)
    assert array_namespace(z) is array_namespace(ux) and z.dtype == ux.dtype
    assert device(z) == device(ux)
    un = to_np(ux)
    np.testing.assert_array_equal(to_np(z), np.where(un < 0.5, -1.0, 1.0))


def test_rademacher_from_uniform_is_balanced(xp):
    """R2: on the midpoints of 1000 equal cells of [0, 1) exactly half the signs are -1."""
    z = to_np(rademacher_from_uniform(xp.asarray((np.arange(1000) + 0.5) / 1000)))
    assert z.sum() == 0.0 and set(np.unique(z)) == {-1.0, 1.0}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hessian_diag_keeps_namespace(xp, dtype):
    """R2: hessian_diag returns the input's namespace, device and dtype."""
    dt = getattr(xp, dtype)
    g = xp.asarray([1.0, 2.0], dtype=dt)
    out = hessian_diag(g, -g, xp.asarray([1.0, -1.0], dtype=dt), 0.5)
    assert array_namespace(out) is array_namespace(g) and out.dtype == dt
    assert device(out) == device(g)
    np.testing.assert_array_equal(to_np(out), [2.0, -4.0])
