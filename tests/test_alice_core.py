"""The functional Alice core (alice_ref.core.batch): configuration, schedule, R7 in the loop, the
estimators in the loop on a landscape with known truth, precision, checkpoint dicts, attributes.

Truth always comes from the algebra of docs/spec/algorithm.md#one-batch and docs/spec/math.md
or from a landscape's known rho and h, never from numbers the code produced. Step-by-step
agreement with docs/spec/algorithm.md#one-batch is tested against a scalar oracle in
test_alice_oracle.py and against the official recordings in test_alice_conformance.py.
"""

from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import to_np

import alice_ref as ar
from alice_ref.landscapes import Quadratic, SeparableGlass

# -- configuration: every check of docs/spec/algorithm.md#hyperparameters ----------------------

BAD = [  # (overrides, exception, argument named in the message, value shown in the message)
    (dict(lr=0.0), ValueError, "lr", "0.0"),
    (dict(lr=-1e-3), ValueError, "lr", "-0.001"),
    (dict(lr=float("nan")), ValueError, "lr", "nan"),
    (dict(lr="0.1"), TypeError, "lr", "'0.1'"),
    (dict(lr=True), TypeError, "lr", "True"),
    (dict(betas=(0.0, 0.999)), ValueError, "betas", "0.0"),
    (dict(betas=(1.0, 0.999)), ValueError, "betas", "1.0"),
    (dict(betas=(0.9, 1.0)), ValueError, "betas", "1.0"),
    (dict(betas=(0.9, -0.5)), ValueError, "betas", "-0.5"),
    (dict(betas=(0.9,)), ValueError, "betas", "(0.9,)"),
    (dict(eps=0.0), ValueError, "eps", "0.0"),
    (dict(eps=-1e-8), ValueError, "eps", "-1e-08"),
    (dict(w1=-0.1), ValueError, "w1", "-0.1"),
    (dict(w2=-0.2), ValueError, "w2", "-0.2"),
    (dict(phi=0.0), ValueError, "phi", "0.0"),
    (dict(phi=2.0), ValueError, "phi", "2.0"),
    (dict(phi=-0.3), ValueError, "phi", "-0.3"),
    (dict(omega=0.0), ValueError, "omega", "0.0"),
    (dict(omega=-1.0), ValueError, "omega", "-1.0"),
    (dict(limit_method="rmsprop"), ValueError, "limit_method", "'rmsprop'"),
    (dict(lr_min=-1e-4), ValueError, "lr_min", "-0.0001"),
    (dict(lr_min=0.01, lr_max=0.005), ValueError, "lr_max", "0.005"),
    (dict(lr=1e-3, lr_min=0.01), ValueError, "lr_max", "0.002"),  # default lr_max = 2 lr
    (dict(scale_bounds_with_lr=1), TypeError, "scale_bounds_with_lr", "1"),
    (dict(hess_comp="diag"), ValueError, "hess_comp", "'diag'"),
    (dict(grad_glass="yes"), TypeError, "grad_glass", "'yes'"),
    (dict(hess_comp="zero", grad_glass=False), ValueError, "grad_glass", "False"),
    (dict(quick_steps=-1), ValueError, "quick_steps", "-1"),
    (dict(quick_steps=1.5), ValueError, "quick_steps", "1.5"),
    (dict(quick_steps=True), ValueError, "quick_steps", "True"),
    # ours: (q+1)(1 - beta2) < 1, else beta3 = 1 - (q+1)(1 - beta2) is no average (R8)
    (dict(betas=(0.9, 0.7), quick_steps=3), ValueError, "quick_steps", "0.7"),
    (dict(betas=(0.9, 0.5), quick_steps=1), ValueError, "beta2", "0.5"),
    (dict(nonfinite="ignore"), ValueError, "nonfinite", "'ignore'"),
]


@pytest.mark.parametrize("overrides,exc,name,shown", BAD,
                         ids=[f"{k}" for k in range(len(BAD))])
def test_config_rejects_bad_hyperparameters(overrides, exc, name, shown):
    with pytest.raises(exc) as info:
        ar.AliceConfig(**overrides)
    msg = str(info.value)
    assert name in msg and shown in msg, msg


def test_config_accepts_the_edges_and_resolves_defaults():
    c = ar.AliceConfig()  # docs/spec/algorithm.md#hyperparameters defaults
    assert (c.lr, c.betas, c.eps, c.w1, c.w2, c.omega) == (1e-3, (0.9, 0.999), 1e-8, 0.0, 0.0, 1.0)
    assert (c.limit_method, c.lr_min, c.scale_bounds_with_lr) == ("adam", 0.0, True)
    assert (c.hess_comp, c.grad_glass, c.quick_steps) == ("abs", True, 3)
    assert c.phi == 1.0 - 0.9 and c.lr_max == 2e-3
    assert c.beta3 == 1.0 - 4 * (1.0 - 0.999)
    # edges that are allowed: w = 0, lr_min = 0, lr_max = lr_min, q = 0, zero + glass, rms
    ar.AliceConfig(w1=0.0, w2=0.0, lr_min=0.0, lr_max=0.0)
    ar.AliceConfig(lr_min=0.01, lr_max=0.01, quick_steps=0, hess_comp="zero", grad_glass=True)
    ar.AliceConfig(betas=(0.5, 0.8), quick_steps=3, hess_comp="rms", phi=1.99, omega=5.0)
    assert ar.AliceConfig(quick_steps=np.int64(2)).quick_steps == 2


def test_config_is_immutable():
    c = ar.AliceConfig(lr=0.01)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.phi = 0.5
    assert isinstance(c.betas, tuple)
    assert ar.AliceConfig(betas=[0.8, 0.99]).betas == (0.8, 0.99)  # list frozen into a tuple
    d = c.replace(lr=0.02)
    assert c.lr == 0.01 and d.lr == 0.02
    with pytest.raises(ValueError, match="lr"):
        c.replace(lr=-1.0)  # replace re-validates


# -- schedule (docs/spec/algorithm.md#one-batch, steps 1-2, R8), counted through run_batch --------

def exact_warmup(beta1: float) -> int:
    """Number of warm-up batches, t <= 1/(1 - beta1) in exact decimal arithmetic."""
    return math.floor(1 / (1 - Fraction(str(beta1))))


@pytest.mark.parametrize("beta1,q", [(0.5, 0), (0.75, 3), (0.875, 2), (0.9, 1), (0.8, 5)])
def test_sample_steps_and_evaluation_counts(beta1, q, xp):
    land = Quadratic(5, seed=2)
    cfg = ar.AliceConfig(lr=0.02, betas=(beta1, 0.999), quick_steps=q)
    W = exact_warmup(beta1)
    state = ar.init([xp.asarray(np.full(5, 0.3))], cfg)
    rng = np.random.default_rng(0)
    n_batches = W + 6 * (q + 1)
    calls_per_batch = []
    for t in range(1, n_batches + 1):
        calls = []

        def vg(p, calls=calls):
            calls.append(1)
            return land.loss(p[0]), [land.grad(p[0])]

        before = to_np(state.mu[0])
        state, _ = ar.run_batch(state, cfg, vg, rng)
        sample = t <= W or t % (q + 1) == 0
        assert len(calls) == (3 if sample else 1), f"t={t}"
        moved = not np.array_equal(before, to_np(state.mu[0]))
        assert moved == (t > W), f"t={t}: the state update happens iff t > 1/(1 - beta1)"
        calls_per_batch.append(len(calls))
    after = calls_per_batch[W:]
    assert len(after) % (q + 1) == 0
    assert sum(after) / len(after) == (3 + q) / (q + 1)  # R8
    assert ar.sample_cost(q) == (3 + q) / (q + 1)


def test_warmup_uses_float64_not_the_official_float32_quirk():
    """beta1 = 0.9: 1/(1 - beta1) = 10 exactly, so alice_ref warms up for 10 batches; the
    official code stores beta1 in float32, where the threshold is 9.9999976 (9 batches)."""
    cfg = ar.AliceConfig(betas=(0.9, 0.999))
    assert [t for t in range(1, 13) if not ar.schedule(t, cfg).update] == list(range(1, 11))
    b = np.float32(0.9)
    official = np.float32(1) / (np.float32(1) - b)
    assert official < 10 and math.floor(official) == 9  # the documented difference


def test_schedule_weights():
    cfg = ar.AliceConfig(betas=(0.75, 0.99), quick_steps=1)
    beta3 = 1 - 2 * (1 - 0.99)
    for t in range(1, 12):
        s = ar.schedule(t, cfg)
        assert s.beta1 == min(0.75, (t - 1) / t)
        assert s.beta2 == min(0.99, (t - 1) / t)
        assert s.beta3 == pytest.approx(min(beta3, (t - 1) / t), rel=1e-15, abs=0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="t must be"):
            ar.schedule(bad, cfg)


# -- R7 in the loop -----------------------------------------------------------------------------

@pytest.mark.parametrize("omega,phi,exact", [(1.0, None, True), (2.0, 0.5, True),
                                             (1.0, 0.4, False), (1.5, 0.1, False)])
def test_nesterov_exactness_in_the_loop(omega, phi, exact, xp):
    """On a quadratic, G after absorbing batch t equals g(mu) of the centre that batch t started
    from iff phi = omega (1 - beta1) (R7); otherwise it is off by the closed-form lag
    e_{t+1} = ((1 - beta1) omega - phi) H delta_t + beta1 e_t (alice_ref.nesterov_lag)."""
    beta1 = 0.75
    land = Quadratic(6, seed=5)
    H = land.hessian
    cfg = ar.AliceConfig(lr=0.05, betas=(beta1, 0.999), omega=omega, phi=phi, quick_steps=3)
    assert (cfg.phi == omega * (1 - beta1)) == exact
    state = ar.init([xp.asarray(np.linspace(-1.0, 1.0, 6))], cfg)
    rng = np.random.default_rng(1)
    scale = np.max(np.abs(land.grad(np.linspace(-1.0, 1.0, 6))))
    lag_pred = np.zeros(6)
    biggest = 0.0
    for t in range(1, 41):
        mu_prev = to_np(state.mu[0])
        state, _ = ar.run_batch(state, cfg, lambda p: (0.0, [land.grad(p[0])]), rng)
        lag = to_np(state.G[0]) - land.grad(mu_prev)
        np.testing.assert_allclose(lag, lag_pred, rtol=0, atol=1e-12 * scale * t)
        delta = (to_np(state.mu[0]) - mu_prev) / cfg.phi
        lag_pred = ((1 - beta1) * cfg.omega - cfg.phi) * (H @ delta) + beta1 * lag_pred  # R7
        biggest = max(biggest, float(np.max(np.abs(lag_pred))))
    assert (biggest == 0.0) == exact or (exact and biggest < 1e-13 * scale)
    if not exact:
        assert biggest > 1e-3 * scale  # the lag check is not vacuous


# -- precision --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_state_precision(dtype, xp):
    """float16/bfloat16 parameters keep float32 state; float32 and float64 keep their own. The
    model sees its own dtype at every evaluation point, and the float32 state of 16-bit
    parameters keeps moves far below their resolution (lr = 1e-6: the centre moves ~1e-5 while
    the 16-bit spacing near 1 is ~1e-3)."""
    if not hasattr(xp, dtype):
        pytest.skip(f"{xp.__name__} has no {dtype}")
    dt = getattr(xp, dtype)
    state_dt = xp.float32 if "16" in dtype else dt
    land = Quadratic(8, seed=3)
    start = np.linspace(0.5, 1.5, 8)
    params = [xp.asarray(start, dtype=dt), xp.asarray(np.ones(3), dtype=dt)]
    cfg = ar.AliceConfig(lr=1e-6 if "16" in dtype else 1e-3, betas=(0.5, 0.99), quick_steps=1)
    seen = []

    def vg(p):
        seen.extend(x.dtype for x in p)
        x = to_np(xp.astype(p[0], xp.float64 if hasattr(xp, "float64") else xp.float32))
        g = xp.astype(xp.asarray(land.hessian @ x + land.b), p[0].dtype)
        return 0.0, [g, xp.zeros_like(p[1])]

    opt = ar.Alice(params, cfg, seed=0)
    assert all(m.dtype == state_dt for m in opt.state.mu)
    for _ in range(8):
        opt.step(vg)
    for f in ("mu", "nu", "G", "V", "H", "R"):
        assert all(x.dtype == state_dt for x in getattr(opt.state, f)), f
    assert seen and all(d == dt for d in seen)
    assert all(p.dtype == dt for p in opt.params)
    mu = to_np(opt.state.mu[0])
    as_f32 = lambda a: to_np(xp.astype(a, xp.float32))  # noqa: E731
    assert np.any(mu != as_f32(params[0]))  # the centre moved
    if "16" in dtype:
        assert np.max(np.abs(mu - as_f32(params[0]))) < 1e-4
        assert np.array_equal(as_f32(opt.params[0]), as_f32(params[0]))  # invisible in 16 bits


def test_non_floating_parameters_are_rejected():
    with pytest.raises(TypeError, match="real floating"):
        ar.init([np.arange(3)])
    with pytest.raises(TypeError, match=r"params\[1\]"):
        ar.init([np.zeros(2), [0.0, 1.0]])


# -- checkpoint dicts and attributes --------------------------------------------------------------

def _some_state(xp, cfg, n_batches=9):
    land = SeparableGlass(7, lam=50.0, s=0.3, h=1.0, seed=4)
    state = ar.init([xp.asarray(np.linspace(-1, 1, 7)), xp.asarray(np.zeros((2, 2)))], cfg)
    rng = np.random.default_rng(2)

    def vg(p):
        g = land.grad(p[0])
        return 0.0, [g, xp.asarray(np.full((2, 2), 0.1)) + 0.5 * p[1]]

    for _ in range(n_batches):
        state, _ = ar.run_batch(state, cfg, vg, rng)
    return state


def _bits(state):
    return [int(state.t), int(state.skipped)] + [
        to_np(x).tobytes() for f in ("mu", "nu", "G", "V", "H", "R") for x in getattr(state, f)]


def test_state_dict_round_trip(xp):
    cfg = ar.AliceConfig(lr=0.05, betas=(0.75, 0.99), quick_steps=1)
    state = _some_state(xp, cfg)
    d = ar.state_to_dict(state)
    assert d["t"] == 9 and d["n_params"] == 2 and set(d) >= {"mu/0", "R/1", "skipped"}
    assert _bits(ar.state_from_dict(d)) == _bits(state)
    # through NumPy (as a file would store it) and back into the namespace of the parameters
    d_np = {k: (np.array(to_np(v), dtype=to_np(v).dtype) if hasattr(v, "shape") else v)
            for k, v in d.items()}
    back = ar.state_from_dict(d_np, like=state.mu)
    assert _bits(back) == _bits(state)
    assert type(back.mu[0]) is type(state.mu[0])
    # continuing from the restored state is identical to continuing from the original
    s1, _ = ar.run_batch(state, cfg, lambda p: (0.0, [0.3 * p[0], p[1]]), np.random.default_rng(9))
    s2, _ = ar.run_batch(back, cfg, lambda p: (0.0, [0.3 * p[0], p[1]]), np.random.default_rng(9))
    assert _bits(s1) == _bits(s2)
    with pytest.raises(ValueError, match="mu/1"):
        ar.state_from_dict({k: v for k, v in d.items() if k != "mu/1"})
    with pytest.raises(ValueError, match="shape"):
        ar.state_from_dict(d_np, like=[state.mu[1], state.mu[0]])


def test_attributes_are_per_parameter_means(xp):
    cfg = ar.AliceConfig(lr=0.05, betas=(0.75, 0.99), quick_steps=1)
    state = _some_state(xp, cfg)
    attrs = ar.attributes(state)
    assert len(attrs) == 2
    for a, H, R in zip(attrs, state.H, state.R):
        assert a["glass_density"] == pytest.approx(np.mean(to_np(R)), rel=1e-12)
        assert a["curvature"] == pytest.approx(np.mean(to_np(H)), rel=1e-12)
        assert isinstance(a["glass_density"], float) and isinstance(a["curvature"], float)
    assert attrs[0]["glass_density"] > 0 and attrs[0]["curvature"] > 0


# -- estimators in the loop on a landscape with known truth (R1, R3) ------------------------------

def _compound_poisson_abs_mean(h, s, m, sigma):
    """E|h + J/(2 sigma)| with J a sum of K ~ Poisson(m) independent N(0, s^2) jumps: the exact
    expectation of Alice's 'abs' curvature sample |g+ - g-|/(2 sigma) on SeparableGlass
    (m = 2 lam sigma boundaries in the probed segment), a Poisson mixture of folded normals."""
    total, p = 0.0, math.exp(-m)
    for k in range(0, int(m + 40 * math.sqrt(m) + 40)):
        if k:
            p *= m / k
        tau = math.sqrt(k) * s / (2 * sigma)
        if tau == 0:
            folded = abs(h)
        else:
            folded = (tau * math.sqrt(2 / math.pi) * math.exp(-h * h / (2 * tau * tau))
                      + h * math.erf(h / (tau * math.sqrt(2))))
        total += p * folded
    return total


@pytest.mark.slow
@pytest.mark.parametrize("hess_comp", ["abs", "rms"])
def test_glass_density_and_curvature_averages_hit_the_truth(hess_comp):
    """SeparableGlass with rho = lam s^2 and Hessian h known. The trajectory is made independent
    of the glass (a 'fixed' step of constant size with lr_min = lr_max, and a smooth slope b so
    steep that G < 0 throughout: every coordinate drifts the same way), so every probe sees fresh,
    unselected glass and each sample is unbiased: E rho_hat = rho (R3); for 'abs',
    E|h_hat| = E|h + J/(2 sigma)| (exact Poisson mixture below; ~|h| for light glass), for 'rms'
    E h_hat^2 = h^2 + rho/(2 sigma) (R3). The bias-corrected averages have weights summing to 1,
    so E R = rho and E H = E h_hat. Coordinates carry independent glass and identical
    trajectories, so R_i (and H_i) are i.i.d. and SE = sd/sqrt(n) is honest whatever the
    correlation between overlapping probes of one coordinate; tolerance 5 SE
    (docs/spec/math.md#how-each-result-is-verified)."""
    n_group, lam, h, sigma = 2000, 200.0, 4.0, 0.05
    s_dense, s_light = 0.1, 0.01
    s = np.where(np.arange(2 * n_group) < n_group, s_dense, s_light)
    land = SeparableGlass(2 * n_group, lam=lam, s=s, h=h, b=-40.0, box=(-1.0, 4.0), seed=3)
    tau = 0.02
    cfg = ar.AliceConfig(lr=sigma, betas=(0.75, 0.99), quick_steps=1, limit_method="fixed",
                         lr_min=tau, lr_max=tau, hess_comp=hess_comp)
    state = ar.init([np.zeros(2 * n_group)], cfg)
    rng = np.random.default_rng(11)
    for _ in range(400):
        state, _ = ar.run_batch(state, cfg, lambda p: (0.0, [land.grad(p[0])]), rng)
        assert np.all(state.G[0] < 0)  # the design's premise: glass never steers the path
        assert np.max(state.nu[0]) + sigma < land.box[1]
    R, Hs = state.R[0], state.H[0]
    for grp, s_i in ((slice(0, n_group), s_dense), (slice(n_group, None), s_light)):
        rho = lam * s_i**2
        r = R[grp]
        se = r.std(ddof=1) / math.sqrt(r.size)
        assert abs(r.mean() - rho) <= 5 * se, (r.mean(), rho, se)
        # sanity of the SE: an average of identically distributed samples (weights summing to
        # 1) varies no more than one sample; rho_hat = 2 X^2 / sigma with X = (J+ - J-)/2 a
        # compound Poisson sum (m = 2 lam sigma Gaussian jumps, cumulants k2 = m s^2,
        # k4 = 3 m s^4): Var rho_hat = (4 / sigma^2) (E X^4 - (E X^2)^2). One-sided, with the
        # sample variance's own SE (SE of the mean of the squared deviations).
        m = 2 * lam * sigma
        ex2, ex4 = m * s_i**2 / 4, (3 * m * s_i**4 + 3 * (m * s_i**2) ** 2) / 16
        c2 = (r - r.mean()) ** 2
        var_se = c2.std(ddof=1) / math.sqrt(r.size)
        assert r.var(ddof=1) <= 4 / sigma**2 * (ex4 - ex2**2) + 5 * var_se
        hh = Hs[grp]
        if hess_comp == "abs":
            truth = _compound_poisson_abs_mean(h, s_i, m, sigma)
        else:
            truth = h * h + rho / (2 * sigma)
        se_h = hh.std(ddof=1) / math.sqrt(hh.size)
        assert abs(hh.mean() - truth) <= 5 * se_h, (hh.mean(), truth, se_h)
    if hess_comp == "abs":  # light glass: the curvature average reads |h|
        assert _compound_poisson_abs_mean(h, s_light, 2 * lam * sigma, sigma) == \
            pytest.approx(abs(h), rel=1e-9)


# -- traceability of the per-element kernels (JAX) ----------------------------------------------

def test_per_element_kernels_trace_under_jax_jit():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    cfg = ar.AliceConfig(lr=0.05, betas=(0.75, 0.99), w1=0.01, w2=0.02, hess_comp="rms",
                         quick_steps=1)
    r = np.random.default_rng(0)
    a = [r.normal(size=5) for _ in range(5)]
    G, V, H, R, mu = a[0], a[1] ** 2, a[2] ** 2, a[3] ** 2, a[4]
    gp, gm, g0 = r.normal(size=5), r.normal(size=5), r.normal(size=5)

    def batch(G, V, H, R, mu, gp, gm, g0, b1, b2, b3):
        H, R = ar.absorb_curvature(H, R, gp, gm, g0, 0.05, b3, cfg.hess_comp, cfg.w2)
        G, V = ar.absorb_gradient(G, V, g0, mu, b1, b2, cfg.w1, cfg.w2)
        return ar.alice_update(mu, G, V, H, R, cfg)

    args = (G, V, H, R, mu, gp, gm, g0)
    betas = (jnp.asarray(0.75), jnp.asarray(0.99), jnp.asarray(0.98))
    jitted = jax.jit(batch)(*(jnp.asarray(x) for x in args), *betas)
    eager = batch(*args, 0.75, 0.99, 0.98)
    for j, e in zip(jitted, eager):
        np.testing.assert_allclose(np.asarray(j), e, rtol=1e-13, atol=1e-15)


# -- the documentation's example runs --------------------------------------------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "alice.md"


@pytest.mark.skipif(not DOC.exists(), reason="docs/alice.md not present")
def test_docs_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {})


def test_replace_rederives_defaulted_phi_and_lr_max():
    """Fields left to their defaults follow lr/betas through replace; explicit ones are kept."""
    c = ar.AliceConfig(lr=0.01, betas=(0.75, 0.999))
    d = c.replace(lr=0.03, betas=(0.5, 0.999))
    assert d.lr_max == 2 * 0.03 and d.phi == 1 - 0.5
    e = ar.AliceConfig(lr=0.01, lr_max=0.05, phi=0.3).replace(lr=0.02, betas=(0.5, 0.999))
    assert e.lr_max == 0.05 and e.phi == 0.3


def test_small_argument_checks():
    s = ar.init([np.zeros(2)])
    with pytest.raises(ValueError, match="like"):
        ar.params_of(s, [np.zeros(2), np.zeros(1)])
    z = np.zeros(2)
    with pytest.raises(ValueError, match="hess_comp"):
        ar.absorb_curvature(z, z, z, z, z, 0.1, 0.5, "ABS")
    with pytest.raises(ValueError, match="n_batches"):
        ar.minimize(lambda p: (0.0, [np.zeros(2)]), [np.zeros(2)], 2.5)


def test_init_gives_every_field_its_own_storage():
    """In-place fast paths (alice_ref.engines.cpu) rely on init not aliasing mu, nu, G, V, H, R."""
    s = ar.init([np.ones(3)])
    fields = [getattr(s, f)[0] for f in ("mu", "nu", "G", "V", "H", "R")]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(fields) for b in fields[i + 1:])


def test_regularisation_sign_at_zero_and_unit_weights():
    """s(nu) = +1 at nu = 0 exactly (and at -0.0), -1 below (docs/spec/algorithm.md#one-batch,
    step 3); weights of exactly 1.0 are applied like any other (beta = 0: G is the sample)."""
    from alice_ref.core.elements import absorb_curvature, absorb_gradient

    nu = np.array([0.0, -0.0, -1.5, 2.0])
    g0 = np.array([0.25, 0.25, 0.25, 0.25])
    z = np.zeros(4)
    G, V = absorb_gradient(z, z, g0, nu, 0.0, 0.0, w1=1.0, w2=1.0)
    np.testing.assert_array_equal(to_np(G), g0 + np.array([1.0, 1.0, -1.0, 1.0]) + nu)
    np.testing.assert_array_equal(to_np(V), g0 * g0)
    G, _ = absorb_gradient(z, z, g0, nu, 0.0, 0.0, w1=0.5, w2=0.0)
    np.testing.assert_array_equal(to_np(G), g0 + 0.5 * np.array([1.0, 1.0, -1.0, 1.0]))
    gp, gm = np.array([1.0, 3.0, -1.0, 0.0]), np.array([0.0, 1.0, 1.0, 0.0])
    hh = (gp - gm) / (2 * 0.5)
    for mode, want in (("abs", np.abs(hh) + 1.0), ("rms", hh * hh + 1.0)):
        H, _ = absorb_curvature(z, z, gp, gm, g0, 0.5, 0.0, mode, w2=1.0)
        np.testing.assert_array_equal(to_np(H), want)
