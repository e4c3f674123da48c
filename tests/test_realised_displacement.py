"""The realised-displacement extension of alice_ref.absorb_curvature (R3 on unequal offsets).

For points nu + d+ z and nu - d- z the extension uses h_hat = (g+ - g-)/(d+ + d-) and the
three-point kernel on (-d-, 0, d+): D = (d- g+ + d+ g-)/(d+ + d-) - g0,
rho_hat = D^2 (d+ + d-)/(d+ d-)
(docs/spec/math.md#r3-glass-kernel-optimal-finite-difference-estimator).
Truth: algebra (a linear gradient field along the line is annihilated; d+ = d- = sigma is the
default path bit for bit), the REML kernel of alice_ref.maths.estimators on the same offsets,
and Monte Carlo over Brownian glass (R1: independent walks of variance rho |s| on each side).
"""

import numpy as np
import pytest

import alice_ref
from alice_ref.maths.estimators import glass_density_from_line

RNG = np.random.default_rng(14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hess_comp", ["zero", "abs", "rms"])
def test_equal_displacements_are_the_default_path_bit_for_bit(dtype, hess_comp):
    gp, gm, g0, H, R = (RNG.normal(size=50).astype(dtype) for _ in range(5))
    for sigma in (0.05, 1e-3, 0.3):
        want = alice_ref.absorb_curvature(H, R, gp, gm, g0, sigma, 0.7, hess_comp, 0.01)
        d = np.full(50, sigma, dtype)
        got = alice_ref.absorb_curvature(H, R, gp, gm, g0, sigma, 0.7, hess_comp, 0.01,
                                         d_plus=d, d_minus=d)
        scalar = alice_ref.absorb_curvature(H, R, gp, gm, g0, sigma, 0.7, hess_comp, 0.01,
                                            d_plus=sigma, d_minus=sigma)
        for w, g, s in zip(want, got, scalar):
            assert g.dtype == w.dtype == dtype
            np.testing.assert_array_equal(g, w)
            np.testing.assert_array_equal(s, w)


def test_a_linear_gradient_field_is_annihilated_on_unequal_offsets():
    """g(nu + s z) = a + b s (constant plus Hessian term) on offsets (-d-, 0, d+): h_hat = b
    and rho_hat = 0 up to rounding, for any d+, d- > 0."""
    a, b = RNG.normal(size=200), RNG.normal(size=200) * 3
    dp, dm = RNG.uniform(1e-3, 1.0, 200), RNG.uniform(1e-3, 1.0, 200)
    gp, gm, g0 = a + b * dp, a - b * dm, a
    z = np.zeros(200)
    H, R = alice_ref.absorb_curvature(z, z, gp, gm, g0, 0.1, 0.0, d_plus=dp, d_minus=dm)
    np.testing.assert_allclose(H, np.abs(b), rtol=1e-12)
    assert np.max(np.abs(R)) < 1e-24 / np.min(dp * dm / (dp + dm)) + 1e-20
    Hr, _ = alice_ref.absorb_curvature(z, z, gp, gm, g0, 0.1, 0.0, "rms", 0.5, d_plus=dp,
                                       d_minus=dm)
    np.testing.assert_allclose(Hr, b * b + 0.25, rtol=1e-12)


def test_the_glass_sample_is_the_reml_kernel_on_the_realised_offsets():
    """On offsets (+d+, 0, -d-) (units of sigma: d/sigma) the REML kernel of R3 with one degree
    of freedom is the extension's rho_hat."""
    sigma = 0.1
    for dp, dm in ((0.1, 0.1), (0.07, 0.12), (0.0078125, 0.01171875), (0.3, 0.01)):
        g = [RNG.normal(size=20) for _ in range(3)]
        want = glass_density_from_line([dp / sigma, 0.0, -dm / sigma], g, sigma)
        z = np.zeros(20)
        _, R = alice_ref.absorb_curvature(z, z, g[0], g[2], g[1], sigma, 0.0,
                                          d_plus=np.full(20, dp), d_minus=np.full(20, dm))
        np.testing.assert_allclose(R, want, rtol=1e-10)


@pytest.mark.slow
def test_unbiased_under_brownian_glass_monte_carlo():
    """R1: the glass along the line is two independent walks, Var eps(s) = rho |s|; with a
    Hessian term added, E rho_hat = rho for unequal displacements (200000 draws: the relative
    standard error of a chi-square(1) mean is sqrt(2/N) = 0.32%; asserted within 1.6%)."""
    n, rho, hess = 200_000, 2.5, 4.0
    dp, dm = 0.013, 0.031
    g0 = RNG.normal(size=n)
    gp = g0 + hess * dp + RNG.normal(0, np.sqrt(rho * dp), n)
    gm = g0 - hess * dm + RNG.normal(0, np.sqrt(rho * dm), n)
    z = np.zeros(n)
    H, R = alice_ref.absorb_curvature(z, z, gp, gm, g0, 0.02, 0.0, d_plus=np.full(n, dp),
                                      d_minus=np.full(n, dm))
    assert abs(R.mean() / rho - 1) < 0.016
    # h_hat = hess + glass noise of variance rho/(d+ + d-) (zero mean): the mean is hess
    h = (gp - gm) / (dp + dm)
    assert abs(h.mean() - hess) < 5 * np.sqrt(rho / (dp + dm) / n)
    # the nominal sigma (the defect this extension fixes) is biased here
    _, R_nom = alice_ref.absorb_curvature(z, z, gp, gm, g0, 0.02, 0.0)
    assert abs(R_nom.mean() / rho - 1) > 0.1  # 10 times the tolerance above


def test_coinciding_points_carry_no_sample():
    """A point that rounded onto nu (d = 0) gives no glass information (R kept); H is still the
    secant through the other point; both on nu: H kept too. No 0/0 is evaluated."""
    H, R = np.full(3, 5.0), np.full(3, 7.0)
    gp, gm, g0 = np.array([1.0, 0.0, 0.0]), np.array([-1.0, -2.0, 0.0]), np.zeros(3)
    dp, dm = np.array([0.5, 0.0, 0.0]), np.array([0.5, 1.0, 0.0])
    with np.errstate(all="raise"):
        H1, R1 = alice_ref.absorb_curvature(H, R, gp, gm, g0, 0.5, 0.0, d_plus=dp, d_minus=dm)
    assert H1.tolist() == [2.0, 2.0, 5.0] and R1.tolist() == [0.0, 7.0, 7.0]
    with pytest.raises(ValueError, match="together"):
        alice_ref.absorb_curvature(H, R, gp, gm, g0, 0.5, 0.0, d_plus=dp)


def test_traceable_with_a_traced_displacement():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    gp, gm, g0 = (jnp.asarray(RNG.normal(size=8), jnp.float32) for _ in range(3))
    z = jnp.zeros(8, jnp.float32)
    f = jax.jit(lambda s: alice_ref.absorb_curvature(z, z, gp, gm, g0, None, 0.0,
                                                     d_plus=s, d_minus=s))
    want = alice_ref.absorb_curvature(z, z, gp, gm, g0, 0.05, 0.0)
    for a, b in zip(f(jnp.float32(0.05)), want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
