"""R7 (Nesterov exactness): the look-ahead gradient average has no lag on quadratics iff
phi = omega (1 - beta).

The recursion G_t = beta G_{t-1} + (1 - beta) g(nu_t), nu_t = mu_{t-1} + omega delta_t,
mu_t = mu_{t-1} + phi delta_t is simulated here on a landscapes.Quadratic (its own gradient),
independently of alice_ref.maths.nesterov; truth for the lag comes from that simulation and from the
landscape's known Hessian.
"""

import math

import numpy as np
import pytest
from array_api_compat import array_namespace, device
from helpers import to_np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from alice_ref import ema_beta, exact_phi, nesterov_lag, warmup_length
from alice_ref.landscapes import Quadratic

K_SE = 5.0
PROPS = settings(max_examples=20, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def simulate(xp, land, mu0, deltas, beta, omega, phi, G0=None):
    """Run the recursion in namespace xp; returns the lags G_t - g(mu_t) as NumPy rows."""
    mu = mu0
    G = land.grad(mu) if G0 is None else G0
    lags = []
    for d in deltas:
        nu = mu + omega * d
        G = beta * G + (1.0 - beta) * land.grad(nu)
        mu = mu + phi * d
        lags.append(to_np(G - land.grad(mu)))
    return np.array(lags), G


@PROPS
@given(beta=st.floats(0.01, 0.99), omega=st.floats(0.1, 3.0), seed=st.integers(0, 1000),
       step=st.floats(1e-3, 10.0))
@example(beta=0.9, omega=1.0, seed=0, step=1.0)
@example(beta=0.5, omega=2.0, seed=1, step=1e-3)
def test_exact_phi_gives_zero_lag_on_quadratic(xp, beta, omega, seed, step):
    """R7: with phi = exact_phi(beta, omega) = omega (1 - beta), G_t = g(mu_t) for every step."""
    phi = exact_phi(beta, omega)
    assert phi == pytest.approx(omega * (1.0 - beta), rel=1e-15)
    land = Quadratic(5, seed=seed % 7)
    rng = np.random.default_rng(seed)
    deltas = [xp.asarray(step * rng.normal(size=5)) for _ in range(12)]
    mu0 = xp.asarray(rng.normal(size=5))
    lags, _ = simulate(xp, land, mu0, deltas, beta, omega, phi)
    scale = 1.0 + step * omega * np.abs(land.hessian).sum(axis=1).max() * 12 + 10
    assert np.abs(lags).max() <= 1e-12 * scale


@PROPS
@given(beta=st.floats(0.01, 0.99), omega=st.floats(0.1, 3.0), seed=st.integers(0, 1000),
       dphi=st.one_of(st.floats(-0.5, -0.01), st.floats(0.01, 0.5)),
       start_lag=st.booleans())
@example(beta=0.9, omega=1.0, seed=0, dphi=0.9 - 0.1, start_lag=False)
def test_lag_closed_form_otherwise(xp, beta, omega, seed, dphi, start_lag):
    """R7: for phi != omega (1 - beta) the simulated lag follows
    lag_t = ((1 - beta) omega - phi) H delta_t + beta lag_{t-1} (nesterov_lag), and is nonzero."""
    phi = omega * (1.0 - beta) + dphi
    land = Quadratic(4, seed=seed % 5)
    rng = np.random.default_rng(seed)
    deltas_np = rng.normal(size=(10, 4))
    mu0 = xp.asarray(rng.normal(size=4))
    G0 = land.grad(mu0) + (xp.asarray(rng.normal(size=4)) if start_lag else 0.0)
    lags, _ = simulate(xp, land, mu0, [xp.asarray(d) for d in deltas_np], beta, omega, phi, G0)
    lag = to_np(G0 - land.grad(mu0))
    lag_x = xp.asarray(lag)
    scale = 10 * (1.0 + np.abs(land.hessian).max()) * (1 + np.abs(deltas_np).max())
    for t, d in enumerate(deltas_np):
        lag = ((1 - beta) * omega - phi) * (land.hessian @ d) + beta * lag  # truth: algebra
        lag_x = nesterov_lag(lag_x, xp.asarray(land.hessian @ d), beta, omega, phi)
        np.testing.assert_allclose(lags[t], lag, rtol=1e-9, atol=1e-12 * scale)
        np.testing.assert_allclose(to_np(lag_x), lags[t], rtol=1e-9, atol=1e-12 * scale)
    assert np.abs(lags[0]).max() > 1e-6  # "only if": a wrong phi lags at the first step


def test_nesterov_lag_keeps_namespace(xp):
    """R7: nesterov_lag works on arrays of any namespace, device and dtype."""
    for dt in (xp.float32, xp.float64):
        a, b = xp.asarray([1.0, 2.0], dtype=dt), xp.asarray([0.5, -1.0], dtype=dt)
        out = nesterov_lag(a, b, 0.5, 1.0, 0.25)
        assert array_namespace(out) is array_namespace(a) and out.dtype == dt
        assert device(out) == device(a)
        np.testing.assert_allclose(to_np(out), 0.25 * to_np(b) + 0.5 * to_np(a), rtol=1e-7)


# ---------------------------------------------------------------- Monte Carlo


def mc_noisy_lag(xp=np, phi=None, M=4000, T=30, beta=0.9, omega=1.0, noise=0.5, lr=0.05):
    """R7: unbiased gradient noise and a step that depends on it (delta = -lr sign(G)):
    with phi = omega(1 - beta), lag_T = (1 - beta) sum_k beta^(T-k) xi_k exactly, so E lag = 0
    and Var lag = noise^2 (1 - beta)^2 (1 - beta^(2T)) / (1 - beta^2)."""
    phi = exact_phi(beta, omega) if phi is None else phi
    land = Quadratic(4, seed=2)
    rng = np.random.default_rng(71)
    xi = xp.asarray(noise * rng.normal(size=(T, M, 4)))
    mu = xp.asarray(np.broadcast_to(land.minimiser + 3.0, (M, 4)).copy())
    G = land.grad(mu)
    for t in range(T):
        d = -lr * xp.sign(G)
        G = beta * G + (1.0 - beta) * (land.grad(mu + omega * d) + xi[t, ...])
        mu = mu + phi * d
    lag = to_np(G - land.grad(mu))
    m = lag.mean(axis=0)
    se = lag.std(axis=0, ddof=1) / math.sqrt(M)
    c2 = (lag - m) ** 2
    v, vse = c2.mean(axis=0), c2.std(axis=0, ddof=1) / math.sqrt(M)
    v_truth = noise ** 2 * (1 - beta) ** 2 * (1 - beta ** (2 * T)) / (1 - beta ** 2)
    return dict(mean=m, se=se, truth=0.0, var=v, var_se=vse, var_truth=v_truth)


@pytest.mark.slow
def test_noisy_gradients_no_lag_in_expectation(xp_cpu):
    """R7: E[G_t] = E[g(mu_t)] under unbiased noise with the exact phi (MC, SE tolerance)."""
    r = mc_noisy_lag(xp_cpu)
    assert np.all(np.abs(r["mean"] - r["truth"]) <= K_SE * r["se"]), r
    assert np.all(np.abs(r["var"] - r["var_truth"]) <= K_SE * r["var_se"]), r


@pytest.mark.slow
def test_noisy_gradients_wrong_phi_lags():
    """R7: with phi = 1 (plain step, not omega(1 - beta)) the mean lag is far from 0."""
    r = mc_noisy_lag(phi=1.0)
    assert np.any(np.abs(r["mean"]) > 10 * K_SE * r["se"]), r


# ---------------------------------------------------------------- warm-up


@pytest.mark.parametrize("beta1", [0.5, 0.75, 0.875, 0.9, 0.99])
def test_beta_t_equals_beta_after_warmup(xp, beta1):
    """R7: the driver's beta_t = min(beta1, (t-1)/t) equals beta1 on every step it takes
    (t > 1/(1 - beta1)), so exactness holds there; before, it is (t-1)/t."""
    W = warmup_length(beta1)
    assert W == pytest.approx(1.0 / (1.0 - beta1), rel=1e-15)
    for t in range(1, int(W) + 60):
        b = ema_beta(beta1, t)
        if t > W:
            assert b == beta1
        else:
            assert b == pytest.approx(min(beta1, (t - 1) / t), rel=1e-15)
    tt = xp.asarray([1.0, 2.0, float(math.floor(W) + 1), float(math.floor(W) + 50)],
                    dtype=xp.float64)
    bx = ema_beta(beta1, tt)
    assert array_namespace(bx) is array_namespace(tt) and bx.dtype == tt.dtype
    np.testing.assert_allclose(to_np(bx), [0.0, min(beta1, 0.5), beta1, beta1], rtol=1e-15)


def test_beta_t_from_integer_counter(xp):
    """R7: ema_beta accepts an integer counter array (a traced JAX step count, say)."""
    t = xp.asarray([1, 2, 4, 100], dtype=xp.int32)
    out = ema_beta(0.75, t)
    assert array_namespace(out) is array_namespace(t) and xp.isdtype(out.dtype, "real floating")
    np.testing.assert_allclose(to_np(out), [0.0, 0.5, 0.75, 0.75], rtol=1e-7)
