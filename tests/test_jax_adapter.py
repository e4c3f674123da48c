"""alice_jax (optax adapter): equality with the NumPy core, jit behaviour, dtypes, pytrees,
the non-finite policy and optax.chain. The sharding test is in test_jax_sharding.py.

Truth here is the NumPy core alice_ref (run_batch), an independent implementation of the batch
loop; the probe signs are injected into both (``_probe_fn`` hook / ``probes=``), except on a
diagonal quadratic where Alice's trajectory does not depend on them at all (rho_hat = 0 and
|g+ - g-| / (2 sigma) = |h| for every z), so independent RNGs must agree.
"""

import itertools

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import alice_jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import alice_ref  # noqa: E402
from alice_ref.landscapes import Quadratic  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _x64():
    """float64 for this module (as the conftest's jax backend does), restored afterwards."""
    before = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


# -- a glassy test problem with a mixed pytree (incl. a zero-size and a 0-d leaf) ----------------

SHAPES = {"a": (3,), "b": (2, 2), "c": (0,), "d": ()}
N = 8  # total number of elements
T = 40  # batches per run
LR = 0.05


class GlassProblem:
    """L(theta; xi) = sum_i [h_i theta_i^2/2 + b_i theta_i + sum_k beta_ik relu(theta_i - c_ik)]
    + kappa (sum theta)^2 / 2 + xi . theta, over the flattened pytree; xi is the "minibatch"
    (one per batch). Kinks spaced ~ sigma give glass; kappa couples the coordinates. The JAX side
    differentiates the jnp loss, the core side uses the closed-form gradient in NumPy."""

    def __init__(self, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        self.h, self.b = rng.uniform(0.5, 2.0, N), rng.normal(size=N)
        self.c, self.beta = rng.uniform(-1, 1, (N, 40)), rng.normal(0, 0.3, (N, 40))
        self.kappa = 0.2
        self.xi = rng.normal(0, 0.3, (T, N))
        self.z = np.where(rng.random((T, N)) < 0.5, -1.0, 1.0)  # injected probe signs
        self.theta0 = rng.normal(0, 0.5, N)
        self.template = {k: np.zeros(s, dtype) for k, s in SHAPES.items()}
        self.treedef = jax.tree.structure(self.template)
        self.dtype = dtype

    def split(self, flat):
        out, i = [], 0
        for x in jax.tree.leaves(self.template):
            out.append(flat[i:i + x.size].reshape(x.shape))
            i += x.size
        return out

    def tree(self, flat):
        return self.treedef.unflatten(self.split(flat))

    def loss(self, params, xi):
        th = jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(params)])
        return (jnp.sum(0.5 * self.h * th**2 + self.b * th)
                + jnp.sum(self.beta * jax.nn.relu(th[:, None] - self.c))
                + 0.5 * self.kappa * jnp.sum(th) ** 2 + xi @ th)

    def grad_np(self, leaves, t):
        th = np.concatenate([np.ravel(x) for x in leaves])
        g = (self.h * th + self.b + (self.beta * (th[:, None] > self.c)).sum(1)
             + self.kappa * th.sum() + self.xi[t])
        return [x.astype(self.dtype) for x in self.split(g)]

    def probe_fn(self):
        table = jnp.asarray(self.z)
        return lambda key, t, nu: self.tree(table[t - 1])

    def params0(self):
        return self.tree(jnp.asarray(self.theta0, dtype=self.dtype))


def run_core(prob, hyper, n=T, skip_batches=()):
    cfg = alice_ref.AliceConfig(lr=LR, **hyper)
    state = alice_ref.init([np.asarray(x) for x in jax.tree.leaves(prob.params0())], cfg)
    for t in range(n):
        if t in skip_batches:
            continue
        sched = alice_ref.schedule(state.t + 1, cfg)
        probes = prob.split(prob.z[sched.t - 1]) if sched.sample else None
        value_and_grad = lambda pts, t=t: (0.0, prob.grad_np(pts, t))  # noqa: E731
        state, _ = alice_ref.run_batch(state, cfg, value_and_grad, None, probes=probes)
    return state


def make_step(tx, loss):
    def step(params, state, xi):
        g = jax.grad(loss)(params, xi)
        updates, state = tx.update(g, state, params, value_fn=loss, xi=xi)
        return optax.apply_updates(params, updates), state
    return step


def run_jax(prob, hyper, n=T, jit=True, **kw):
    tx = alice_jax.alice(LR, **hyper, **kw)
    step = make_step(tx, prob.loss)
    step = jax.jit(step) if jit else step
    params = prob.params0()
    state = tx.init(params)
    for t in range(n):
        params, state = step(params, state, jnp.asarray(prob.xi[t]))
    return params, state


def flat(xs):
    xs = [np.asarray(x, dtype=np.float64).ravel() for x in jax.tree.leaves(xs)]
    return np.concatenate(xs) if xs else np.zeros(0)


def max_rel(a, b):
    a, b = flat(a), flat(b)
    scale = np.maximum(np.abs(b), 1e-300)
    return float(np.max(np.abs(a - b) / scale)) if a.size else 0.0


def normwise(a, b):
    a, b = flat(a), flat(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b))) if a.size else 0.0


FIELDS = ("mu", "G", "V", "H", "R")


def diff_to_core(params, state, core):
    """(elementwise max relative difference of mu and nu (= the caller's params),
    normwise max |a - b| / max |b| over mu, nu, G, V, H, R). Elementwise figures of the
    averages are not meaningful where they cancel to ~0 (G is a signed average)."""
    elem = max(max_rel(state.mu, core.mu), max_rel(params, core.nu))
    norm = max([normwise(params, core.nu)] +
               [normwise(getattr(state, f), getattr(core, f)) for f in FIELDS])
    return elem, norm


MODES = [m for m in itertools.product(("zero", "abs", "rms"), (True, False),
                                      ("fixed", "sgdm", "adam"))
         if not (m[0] == "zero" and not m[1])]
BASE = dict(betas=(0.75, 0.99), quick_steps=2, w1=0.01, w2=0.02, lr_min=0.005, lr_max=0.5)


# -- equality with the core ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def all_modes_runs(_x64):
    """Every mode combination run by alice_jax (one jit for all of them, to compile once) and
    by the core, on the same glassy problem with the same injected probe signs (float64)."""
    prob = GlassProblem()
    hypers = [dict(BASE, hess_comp=h, grad_glass=g, limit_method=m) for h, g, m in MODES]
    txs = [alice_jax.alice(LR, _probe_fn=prob.probe_fn(), **h) for h in hypers]
    steps = [make_step(tx, prob.loss) for tx in txs]

    @jax.jit
    def step_all(ps, ss, xi):
        out = [st(p, s, xi) for st, p, s in zip(steps, ps, ss)]
        return [o[0] for o in out], [o[1] for o in out]

    ps = [prob.params0() for _ in txs]
    ss = [tx.init(p) for tx, p in zip(txs, ps)]
    for t in range(T):
        ps, ss = step_all(ps, ss, jnp.asarray(prob.xi[t]))
    return {m: (p, s, run_core(prob, h)) for m, p, s, h in zip(MODES, ps, ss, hypers)}


@pytest.mark.parametrize("mode", MODES, ids=["-".join(map(str, m)) for m in MODES])
def test_matches_core_with_injected_probes(all_modes_runs, mode):
    params, state, core = all_modes_runs[mode]
    assert int(state.count) == core.t == T
    assert float(np.max(flat(core.R))) > 0  # the problem has glass: R is exercised
    assert max_rel(params, state.mu) > 1e-3  # nu differs from mu: the look-ahead is exercised
    elem, norm = diff_to_core(params, state, core)
    assert elem < 1e-12 and norm < 1e-12, (elem, norm)


@pytest.mark.parametrize("hess_comp", ["abs", "rms", "zero"])
def test_diagonal_quadratic_independent_rngs(hess_comp):
    """Alice on a diagonal quadratic does not depend on the probes: JAX's PRNG and the core's
    NumPy generator give the same trajectory."""
    q = Quadratic(5, diagonal=True, seed=3)
    hyper = dict(betas=(0.75, 0.999), quick_steps=3, hess_comp=hess_comp, omega=1.5, phi=0.3,
                 lr_max=2.0)  # wide bounds: the curvature-limited step |G|/h is used
    n_steps = 60
    cfg = alice_ref.AliceConfig(lr=LR, **hyper)
    core_opt = alice_ref.Alice([np.zeros(5)], cfg, seed=123)
    core_mu = []
    for _ in range(n_steps):
        core_opt.step(lambda p: (q.loss(p[0]), [q.grad(p[0])]))
        core_mu.append(core_opt.state.mu[0])
    d, b = jnp.asarray(q.hess_diag), jnp.asarray(q.b)
    loss = lambda p: 0.5 * jnp.sum(d * p * p) + jnp.sum(b * p)  # noqa: E731
    tx = alice_jax.alice(LR, seed=7, **hyper)

    @jax.jit
    def step(p, s):
        updates, s = tx.update(jax.grad(loss)(p), s, p, value_fn=loss)
        return optax.apply_updates(p, updates), s

    p = jnp.zeros(5)
    s = tx.init(p)
    jax_mu = []
    for _ in range(n_steps):
        p, s = step(p, s)
        jax_mu.append(alice_jax.center(s))
    core = core_opt.state
    assert max_rel(jax_mu, core_mu) < 1e-10  # the whole trajectory of mu
    assert max_rel([p], core.nu) < 1e-10
    assert max_rel([s.H], core.H) < 1e-10
    # the trajectory went somewhere: mu moved towards the minimiser
    assert q.loss(np.asarray(alice_jax.center(s))) < q.loss(np.zeros(5)) - 0.1
    if hess_comp != "zero":  # and the curvature-limited step was inside the bounds somewhere
        G, V, H, R = (np.asarray(x[0]) for x in (core.G, core.V, core.H, core.R))
        h = np.sqrt(H) if hess_comp == "rms" else H
        d_opt = np.abs(alice_ref.optimal_step(G, h, R, cfg.eps))
        assert np.any(d_opt < cfg.lr_max * np.abs(G) / (np.sqrt(V) + cfg.eps))


def test_float32_matches_core_float32():
    q = Quadratic(6, diagonal=True, seed=1)
    hyper = dict(betas=(0.75, 0.999), quick_steps=1)
    cfg = alice_ref.AliceConfig(lr=LR, **hyper)
    core_opt = alice_ref.Alice([np.zeros(6, np.float32)], cfg, seed=0)
    for _ in range(40):
        core_opt.step(lambda p: (q.loss(p[0]), [q.grad(p[0])]))
    d, b = jnp.asarray(q.hess_diag, jnp.float32), jnp.asarray(q.b, jnp.float32)
    loss = lambda p: 0.5 * jnp.sum(d * p * p) + jnp.sum(b * p)  # noqa: E731
    tx = alice_jax.alice(LR, **hyper)
    step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p, value_fn=loss))
    p = jnp.zeros(6, jnp.float32)
    s = tx.init(p)
    for _ in range(40):
        u, s = step(p, s)
        p = optax.apply_updates(p, u)
    assert p.dtype == jnp.float32 and all(x.dtype == jnp.float32 for x in jax.tree.leaves(s.mu))
    assert s.G.dtype == s.V.dtype == s.H.dtype == s.R.dtype == jnp.float32
    assert max_rel([s.mu], core_opt.state.mu) < 1e-5
    assert max_rel([p], core_opt.state.nu) < 1e-5


def test_mixed_dtypes_and_zero_size_leaves():
    """float64, float32, bfloat16 and zero-size leaves in one pytree: each leaf keeps its dtype
    (bfloat16 keeps float32 state, as in the core) and the separable diagonal quadratic gives
    the core's trajectory per leaf (independent RNGs)."""
    q = Quadratic(4, diagonal=True, seed=2)
    d64, b64 = q.hess_diag, q.b
    params = {"x64": jnp.zeros(4, jnp.float64), "x32": jnp.zeros(4, jnp.float32),
              "xbf": jnp.zeros(4, jnp.bfloat16), "e": jnp.zeros((0, 3), jnp.float32),
              "e64": jnp.zeros((2, 0), jnp.float64)}

    def loss(p):
        out = 0.0
        for k in ("x64", "x32", "xbf"):
            x = p[k].astype(jnp.float64) if k == "x64" else p[k].astype(jnp.float32)
            out = out + jnp.sum(0.5 * d64 * x * x + b64 * x).astype(jnp.float64)
        return out + jnp.sum(p["e"]) + jnp.sum(p["e64"])

    hyper = dict(betas=(0.75, 0.999), quick_steps=2)
    tx = alice_jax.alice(LR, **hyper)
    s = tx.init(params)
    assert {k: v.dtype for k, v in s.mu.items()} == {
        "x64": jnp.float64, "x32": jnp.float32, "xbf": jnp.float32, "e": jnp.float32,
        "e64": jnp.float64}
    step = jax.jit(make_step(tx, lambda p, xi: loss(p)))
    p = params
    for _ in range(30):
        p, s = step(p, s, 0.0)
    assert {k: v.dtype for k, v in p.items()} == {k: v.dtype for k, v in params.items()}
    assert p["e"].shape == (0, 3) and s.G["e64"].shape == (2, 0)
    assert int(s.skipped) == 0 and int(s.count) == 30
    cfg = alice_ref.AliceConfig(lr=LR, **hyper)
    for k, dt, tol in (("x64", np.float64, 1e-10), ("x32", np.float32, 1e-5)):
        ref = alice_ref.Alice([np.zeros(4, dt)], cfg, seed=0)
        for _ in range(30):
            ref.step(lambda pp: (q.loss(pp[0]), [q.grad(pp[0])]))
        assert max_rel([s.mu[k]], ref.state.mu) < tol, k
    # bfloat16 evaluation points: only rough agreement is meaningful
    np.testing.assert_allclose(flat(s.mu["xbf"]), flat(s.mu["x32"]), rtol=0.1, atol=0.02)


def test_empty_pytree():
    tx = alice_jax.alice(LR)
    s = tx.init({})
    u, s = jax.jit(lambda s: tx.update({}, s, {}, grad_fn=lambda p: p))(s)
    assert u == {} and int(s.count) == 1


# -- jit -----------------------------------------------------------------------------------------

def test_jit_equals_eager_and_traces_once():
    """The jitted step and an op-by-op run (jax.disable_jit: lax.cond runs the taken branch in
    Python) agree to rounding (XLA fuses and may contract elementwise arithmetic differently:
    about 1e-15 here, 1e-13 in R, not bit for bit) with identical keys and counters, and the
    jitted step is traced once for warm-up, quick and sample batches alike."""
    rng = np.random.default_rng(4)
    h = {"a": rng.uniform(0.5, 2, 3), "b": rng.uniform(0.5, 2, (2, 2))}
    xi = rng.normal(0, 0.3, (14, 7))

    def loss(p, xi):
        xs = {"a": xi[:3], "b": xi[3:].reshape(2, 2)}
        return sum(jnp.sum(0.5 * h[k] * p[k] ** 2 + xs[k] * p[k] + 0.1 * jnp.cos(3 * p[k]))
                   for k in p)

    traces = []
    tx = alice_jax.alice(LR, seed=5, **dict(BASE, hess_comp="abs"))
    base = make_step(tx, loss)

    def counted(p, s, xi):
        traces.append(1)  # a Python side effect runs once per trace
        return base(p, s, xi)

    jitted = jax.jit(counted)
    pj = pe = {"a": jnp.asarray(rng.normal(size=3)), "b": jnp.asarray(rng.normal(size=(2, 2)))}
    sj = se = tx.init(pj)
    n = 8  # warm-up (batches 1-4: sample), 5: quick, 6: sample, 7, 8: quick (q = 2)
    for t in range(n):
        pj, sj = jitted(pj, sj, jnp.asarray(xi[t]))
        with jax.disable_jit():
            pe, se = base(pe, se, jnp.asarray(xi[t]))
    for f in ("count", "key", "skipped", "bad_eval", "bad_leaf"):
        assert np.array_equal(np.asarray(getattr(sj, f)), np.asarray(getattr(se, f))), f
    for f in FIELDS:  # H and R come from differences of gradients: cancellation
        assert normwise(getattr(sj, f), getattr(se, f)) < (1e-11 if f in "HR" else 1e-13), f
    assert normwise(pj, pe) < 1e-13 and max_rel(pj, sj.mu) > 1e-3
    for t in range(n, 14):  # more batches, same trace
        pj, sj = jitted(pj, sj, jnp.asarray(xi[t]))
    assert len(traces) == 1 and int(sj.count) == 14


def test_schedule_and_key_discipline():
    """Sample steps are exactly those of docs/spec/algorithm.md#one-batch, step 2 (warm-up or
    t mod (q+1) = 0): the key is split on
    those and only those; the probe hook sees the batch number."""
    seen = []
    cfg = alice_ref.AliceConfig(lr=LR, betas=(0.75, 0.999), quick_steps=3)

    def probe(key, t, nu):
        jax.debug.callback(lambda tt: seen.append(int(tt)), t)
        return jax.tree.map(jnp.ones_like, nu)

    tx = alice_jax.alice(LR, betas=(0.75, 0.999), quick_steps=3, _probe_fn=probe)
    loss = lambda p: jnp.sum(p**2)  # noqa: E731
    step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p, value_fn=loss))
    p = jnp.ones(2)
    s = tx.init(p)
    keys = [np.asarray(s.key)]
    for _ in range(13):
        u, s = step(p, s)
        p = p + u
        keys.append(np.asarray(s.key))
    jax.effects_barrier()
    expected = [t for t in range(1, 14) if alice_ref.schedule(t, cfg).sample]
    assert seen == expected == [1, 2, 3, 4, 8, 12]
    changed = [t for t in range(1, 14) if not np.array_equal(keys[t], keys[t - 1])]
    assert changed == expected


# -- non-finite policy ---------------------------------------------------------------------------

def test_nonfinite_batch_is_skipped_exactly():
    """A NaN in g- of leaf 'b' (leaf index 1) at batch 6: the state keeps mu, count and every
    average bit-for-bit, updates are zero, the flags name g- and leaf 1, check_finite raises,
    and the run continues like a run that never saw that batch (probes fixed by batch number)."""
    prob = GlassProblem(seed=6)
    hyper = dict(BASE, hess_comp="abs", quick_steps=0)  # every batch is a sample step
    poison = 5  # 0-based batch index (batch t = 6)

    tx = alice_jax.alice(LR, _probe_fn=prob.probe_fn(), **hyper)

    @jax.jit
    def step(p, s, xi, poisoned):
        g0 = jax.grad(prob.loss)(p, xi)
        z = prob.probe_fn()(None, s.count + 1, p)

        def grad_fn(q):  # NaN in leaf 'b' at nu - sigma z (the g- evaluation) when poisoned
            g = jax.grad(prob.loss)(q, xi)
            minus = jnp.vdot(q["a"] - p["a"], z["a"]) < 0
            return dict(g, b=jnp.where(poisoned & minus, jnp.nan, g["b"]))

        u, s = tx.update(g0, s, p, grad_fn=grad_fn)
        return optax.apply_updates(p, u), s, u

    p, s = prob.params0(), tx.init(prob.params0())
    for t in range(T):
        before = s
        p_before = p
        p, s, u = step(p, s, jnp.asarray(prob.xi[t]), t == poison)
        if t == poison:
            for f in ("count", "mu", "G", "V", "H", "R"):
                new, old = jax.tree.leaves(getattr(s, f)), jax.tree.leaves(getattr(before, f))
                assert all(np.array_equal(np.asarray(a), np.asarray(b))
                           for a, b in zip(new, old)), f
            assert all(np.array_equal(np.asarray(x), np.asarray(y))
                       for x, y in zip(jax.tree.leaves(p), jax.tree.leaves(p_before)))
            assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(u))
            assert (int(s.skipped), int(s.bad_eval), int(s.bad_leaf)) == (1, 1, 1)
            with pytest.raises(alice_ref.NonFiniteGradientError) as e:
                alice_jax.check_finite(s)
            assert e.value.evaluation == "g-" and e.value.index == 1 and e.value.t == 6
            assert "['b']" in "".join(getattr(e.value, "__notes__", []))
        else:
            alice_jax.check_finite(s)
            assert int(s.bad_eval) == -1 and int(s.bad_leaf) == -1
    assert int(s.skipped) == 1 and int(s.count) == T - 1
    # the same run without the bad batch (core, with probes indexed by the batch number t)
    core = run_core(prob, hyper, skip_batches=(poison,))
    elem, norm = diff_to_core(p, s, core)
    assert elem < 1e-12 and norm < 1e-12, (elem, norm)


def test_nonfinite_g0_on_quick_step():
    tx = alice_jax.alice(LR, betas=(0.5, 0.999), quick_steps=3)
    loss = lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["v"] ** 2)  # noqa: E731
    step = jax.jit(lambda p, s, g: tx.update(g, s, p, value_fn=loss))
    p = {"v": jnp.ones(2), "w": jnp.ones(3)}
    s = tx.init(p)
    for _ in range(2):  # batches 1 (warm-up, sample), 2 (warm-up, sample)
        u, s = step(p, s, jax.grad(loss)(p))
        p = optax.apply_updates(p, u)
    g = jax.grad(loss)(p)
    g = dict(g, w=g["w"].at[1].set(jnp.inf))
    u, s2 = step(p, s, g)  # batch 3 is a quick step
    assert (int(s2.bad_eval), int(s2.bad_leaf), int(s2.skipped)) == (2, 1, 1)
    assert int(s2.count) == int(s.count) == 2
    with pytest.raises(alice_ref.NonFiniteGradientError, match="g0"):
        alice_jax.check_finite(s2)
    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(u))


# -- configuration, optax conventions, chain -----------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(learning_rate=-1.0), ValueError, "lr"),
    (dict(learning_rate=0.1, betas=(0.9, 1.0)), ValueError, "betas"),
    (dict(learning_rate=0.1, hess_comp="zero", grad_glass=False), ValueError, "hess_comp"),
    (dict(learning_rate=0.1, quick_steps=-1), ValueError, "quick_steps"),
    (dict(learning_rate=0.1, phi=2.0), ValueError, "phi"),
    (dict(learning_rate=0.1, limit_method="lion"), ValueError, "limit_method"),
    (dict(learning_rate=0.1, betas=(0.9, 0.5), quick_steps=3), ValueError, "beta3|quick_steps"),
    (dict(learning_rate=0.1, nonfinite="ignore"), ValueError, "nonfinite"),
    (dict(learning_rate=0.1, momentum=0.9), TypeError, "momentum"),
    # schedules are supported now (issue 14); a non-scalar learning rate is refused
    (dict(learning_rate=np.ones(2)), TypeError, "learning_rate"),
    (dict(learning_rate=0.1, eps=np.ones(2)), TypeError, "eps"),
    (dict(learning_rate=0.1, mu_dtype=np.int32), TypeError, "mu_dtype"),
    (dict(learning_rate=0.1, grad_transform=lambda g: g), TypeError, "grad_transform"),
    (dict(learning_rate=0.1, seed=True), TypeError, "seed"),
])
def test_validation_at_construction(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        alice_jax.alice(**kwargs)


def test_defaults_match_core():
    cfg = alice_ref.AliceConfig()
    assert alice_jax.alice.__defaults__[0] == cfg.lr  # learning_rate=1e-3, as AliceConfig.lr


def test_missing_value_fn_is_a_clear_error():
    tx = alice_jax.alice(LR)
    p = jnp.ones(2)
    with pytest.raises(TypeError, match="value_fn"):
        tx.update(p, tx.init(p), p)
    with pytest.raises(ValueError, match="params"):
        tx.update(p, tx.init(p), None, value_fn=jnp.sum)


def test_chain_with_inactive_clip_and_extra_args_routing():
    """optax.chain(clip_by_global_norm(large), alice) is Alice itself; extra keyword arguments
    reach value_fn by name (optax's line-search convention) through the chain; center() finds
    Alice's state inside the chain's state."""
    prob = GlassProblem(seed=8)
    hyper = dict(BASE, hess_comp="rms")
    alone = run_jax(prob, hyper, n=12, seed=3)
    tx = optax.chain(optax.clip_by_global_norm(1e6), alice_jax.alice(LR, seed=3, **hyper))

    @jax.jit
    def step(p, s, xi):
        g = jax.grad(prob.loss)(p, xi)
        u, s = tx.update(g, s, p, value_fn=prob.loss, xi=xi, unrelated=1.0)
        return optax.apply_updates(p, u), s

    p = prob.params0()
    s = tx.init(p)
    for t in range(12):
        p, s = step(p, s, jnp.asarray(prob.xi[t]))
    for a, b in zip(jax.tree.leaves((p, alice_jax.center(s))),
                    jax.tree.leaves((alone[0], alice_jax.center(alone[1])))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert alice_jax.center(s, like=p)["a"].dtype == p["a"].dtype
    attrs = alice_jax.attributes(s)
    assert len(attrs) == len(jax.tree.leaves(p)) and attrs[0]["glass_density"] > 0


def test_prng_key_seed_and_determinism():
    p = jnp.zeros(3)
    a = alice_jax.alice(LR, seed=jax.random.key(11)).init(p).key
    b = alice_jax.alice(LR, seed=jax.random.PRNGKey(11)).init(p).key
    c = alice_jax.alice(LR, seed=11).init(p).key
    assert np.array_equal(np.asarray(a), np.asarray(b)) and np.array_equal(np.asarray(b),
                                                                           np.asarray(c))


def test_checkpoint_resume_is_bit_identical():
    """The state is a plain pytree (key included): saving it as NumPy arrays mid-run and
    resuming gives exactly the uninterrupted run."""
    prob = GlassProblem(seed=9)
    tx = alice_jax.alice(LR, seed=1, **dict(BASE, hess_comp="abs"))
    step = jax.jit(make_step(tx, prob.loss))
    p = prob.params0()
    s = tx.init(p)
    for t in range(7):
        p, s = step(p, s, jnp.asarray(prob.xi[t]))
    saved = jax.tree.map(np.array, (p, s))  # e.g. what a checkpoint library writes
    pa, sa = p, s
    for t in range(7, 16):
        pa, sa = step(pa, sa, jnp.asarray(prob.xi[t]))
    pb, sb = jax.tree.map(jnp.asarray, saved)
    for t in range(7, 16):
        pb, sb = step(pb, sb, jnp.asarray(prob.xi[t]))
    for a, b in zip(jax.tree.leaves((pa, sa)), jax.tree.leaves((pb, sb))):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_skipped_batch_keeps_the_key():
    """A skipped (non-finite) sample step leaves the PRNG key as it was, like every other
    state leaf: the next batch draws the probes the skipped one would have drawn."""
    tx = alice_jax.alice(LR, betas=(0.5, 0.999))
    loss = lambda p: jnp.sum(p**2)  # noqa: E731
    p = jnp.ones(3)
    s = tx.init(p)
    bad = jnp.full(3, jnp.nan)
    u, s2 = tx.update(bad, s, p, value_fn=loss)  # batch 1: warm-up sample step, g0 is NaN
    assert int(s2.skipped) == 1 and int(s2.count) == 0
    for f in ("key", "count", "mu", "G", "V", "H", "R"):
        for a, b in zip(jax.tree.leaves(getattr(s2, f)), jax.tree.leaves(getattr(s, f))):
            assert np.array_equal(np.asarray(a), np.asarray(b)), f
