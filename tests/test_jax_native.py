"""alice_jax, native in optax (issue 14): the key is built in init, every kind of seed, realised
displacements for low-precision parameters, upstream clipping, inject_hyperparams, schedules,
mu_dtype, several Alice states, abstract init, the saturating counter, explicit meshes.

Truth comes from algebra (a quadratic's Hessian, zero glass), from the same optimiser built the
plain way (inject_hyperparams and schedules must change nothing), or from the issue's own
README measurement (loss after 200 steps)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import alice_jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import alice_ref  # noqa: E402


def _subprocess(code, devices=1):
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_ENABLE_X64="0",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])


def _run(tx, loss, p, n):
    step = jax.jit(lambda q, s: tx.update(jax.grad(loss)(q), s, q, value_fn=loss))
    s = tx.init(p)
    for _ in range(n):
        u, s = step(p, s)
        p = optax.apply_updates(p, u)
    return p, s


def _loss(p):
    return jnp.sum((p - 2.0) ** 2) + 0.1 * jnp.sum(jnp.abs(p - 1.5))  # a kink: some glass


def _close(a, b, tol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                   rtol=tol, atol=tol)


# -- the PRNG key: built in init; every kind of seed ---------------------------------------------

def test_construction_does_not_initialise_the_backend():
    """alice(...) touches no device (jax.distributed.initialize must still be possible after
    it); the key is built in init."""
    r = _subprocess("""
        import json, numpy as np, optax, alice_jax
        from jax._src import xla_bridge
        alice_jax.alice(0.05, seed=3)
        alice_jax.alice(0.05, seed=np.int32(3), eps=np.float32(1e-6))
        alice_jax.alice(optax.constant_schedule(0.05), mu_dtype="float32")
        before = xla_bridge.backends_are_initialized()
        import jax.numpy as jnp
        s = alice_jax.alice(0.05, seed=3).init(jnp.zeros(2))
        print(json.dumps({"before": before, "after": xla_bridge.backends_are_initialized()}))
    """)
    assert r == {"before": False, "after": True}


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg", "unsafe_rbg"])
def test_typed_keys_of_any_implementation(impl):
    p = jnp.ones(3)
    tx = alice_jax.alice(0.05, seed=jax.random.key(7, impl=impl), betas=(0.5, 0.999))
    s0 = tx.init(p)
    assert np.array_equal(np.asarray(s0.key),
                          np.asarray(jax.random.key_data(jax.random.key(7, impl=impl))))
    _, s1 = _run(tx, _loss, p, 1)  # a sample step splits the key, in its own implementation
    want = jax.random.key_data(jax.random.split(jax.random.key(7, impl=impl))[0])
    assert np.array_equal(np.asarray(s1.key), np.asarray(want))
    assert int(s1.count) == 1 and float(s1.H[0]) > 0


def test_raw_keys_of_the_default_rbg_implementation():
    before = jax.config.jax_default_prng_impl
    jax.config.update("jax_default_prng_impl", "rbg")
    try:
        raw = jax.random.PRNGKey(5)  # uint32[4]
        assert raw.shape == (4,)
        _, s = _run(alice_jax.alice(0.05, seed=raw, betas=(0.5, 0.999)), _loss, jnp.ones(2), 3)
        assert s.key.shape == (4,) and int(s.count) == 3
    finally:
        jax.config.update("jax_default_prng_impl", before)
    with pytest.raises(TypeError, match="raw key data"):  # rbg data under threefry
        alice_jax.alice(0.05, seed=raw).init(jnp.ones(2))


def test_integer_array_seeds_concrete_and_traced():
    p = jnp.ones(3)
    want = [np.asarray(alice_jax.alice(0.05, seed=i).init(p).key) for i in range(3)]
    assert np.array_equal(np.asarray(alice_jax.alice(0.05, seed=np.int64(2)).init(p).key),
                          want[2])
    assert np.array_equal(np.asarray(alice_jax.alice(0.05, seed=jnp.asarray(1)).init(p).key),
                          want[1])
    keys = jax.vmap(lambda sd: alice_jax.alice(0.05, seed=sd).init(p).key)(jnp.arange(3))
    assert np.array_equal(np.asarray(keys), np.stack(want))
    for bad in (True, 1.5, np.zeros(2, np.int32), "0"):
        with pytest.raises(TypeError, match="seed"):
            alice_jax.alice(0.05, seed=bad)


# -- realised displacements for bfloat16 parameters ----------------------------------------------

def test_bfloat16_probes_use_the_realised_displacement():
    """bfloat16 weights near 1 on L = sum (w - 1)^2 (H = 2, no glass): at lr 1e-2 the stored
    probe points are rounded (spacing 2^-7 above 1, 2^-8 below), and with the realised
    displacements H is exactly 2 and R exactly 0; at lr 1e-3 the points round back onto nu,
    there is nothing to measure and H and R take no sample (they stay as they were)."""
    loss = lambda p: jnp.sum((p.astype(jnp.float32) - 1.0) ** 2)  # noqa: E731
    w = (1.0 + np.array([0.0, 2.0, 1.0, -3.0]) * 2.0**-8).astype(jnp.bfloat16)
    w = jnp.asarray(w)
    tx = alice_jax.alice(1e-2, betas=(0.5, 0.999))
    u, s = tx.update(jax.grad(loss)(w), tx.init(w), w, value_fn=loss)
    assert s.H.dtype == jnp.float32
    assert s.H.tolist() == [2.0] * 4 and s.R.tolist() == [0.0] * 4
    tx = alice_jax.alice(1e-3, betas=(0.5, 0.999))
    s0 = tx.init(w)._replace(H=jnp.full(4, 7.0, jnp.float32), R=jnp.full(4, 3.0, jnp.float32))
    u, s = tx.update(jax.grad(loss)(w), s0, w, value_fn=loss)
    assert s.H.tolist() == [7.0] * 4 and s.R.tolist() == [3.0] * 4 and int(s.count) == 1


def test_wider_state_dtype_uses_the_realised_displacement():
    """mu_dtype=float64 for float32 parameters: float64 state, float32 updates; the probe
    points are stored in float32 (realised displacements) and the gradients come back in
    float32, which limits H of the quadratic to about 1e-4 relative here."""
    with jax.enable_x64(True):
        loss = lambda p: jnp.sum(1.5 * (p.astype(jnp.float64) - 0.3) ** 2)  # noqa: E731
        w = jnp.asarray([0.1, 1.7, -2.3], jnp.float32)
        tx = alice_jax.alice(1e-3, betas=(0.5, 0.999), mu_dtype=jnp.float64)
        s = tx.init(w)
        assert s.mu.dtype == s.H.dtype == jnp.float64
        u, s = tx.update(jax.grad(loss)(w), s, w, value_fn=loss)
        assert u.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(s.H), 3.0, rtol=1e-3)
        assert float(np.max(np.abs(np.asarray(s.R)))) < 1e-4


# -- upstream transformations: grad_transform ----------------------------------------------------

def _readme_problem():
    def loss_fn(p, batch):
        x, y = batch
        return jnp.mean((jax.nn.relu(x @ p["w1"]) @ p["w2"] - y) ** 2)
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(k1, (256, 4))
    y = jax.nn.relu(x @ jnp.array([1.0, -2.0, 0.5, 1.5]))
    params = {"w1": 0.5 * jax.random.normal(k2, (4, 16)),
              "w2": 0.3 * jax.random.normal(k3, (16,))}
    return loss_fn, params, (x, y)


def _train(tx, n=200):
    loss_fn, params, batch = _readme_problem()
    value_fn = lambda p: loss_fn(p, batch)  # noqa: E731

    @jax.jit
    def step(params, state):
        grads = jax.grad(value_fn)(params)
        updates, state = tx.update(grads, state, params, value_fn=value_fn)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    for _ in range(n):
        params, state = step(params, state)
    return float(value_fn(alice_jax.center(state))), params, state


def test_grad_transform_clips_every_evaluation_on_the_readme_problem():
    """The issue's measurement: chain(clip_by_global_norm(1.0), alice(0.05)) stalls (loss 1.82
    after 200 steps) because g0 is clipped and g+- are not; grad_transform clips all three and
    trains as well as Alice alone (0.0077)."""
    alone = _train(alice_jax.alice(0.05, seed=0))[0]
    clipped = _train(alice_jax.alice(0.05, seed=0,
                                     grad_transform=optax.clip_by_global_norm(1.0)))[0]
    assert alone < 0.02 and clipped < 0.02, (alone, clipped)
    inactive = _train(alice_jax.alice(0.05, seed=0,
                                      grad_transform=optax.clip_by_global_norm(1e9)), 20)
    plain = _train(alice_jax.alice(0.05, seed=0), 20)
    for a, b in zip(jax.tree.leaves(inactive[1:]), jax.tree.leaves(plain[1:])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_grad_transform_must_be_stateless():
    tx = alice_jax.alice(0.05, grad_transform=optax.scale_by_adam())
    with pytest.raises(TypeError, match="stateless"):
        _run(tx, _loss, jnp.ones(2), 1)


# -- inject_hyperparams and schedules ------------------------------------------------------------

HYPER = dict(eps=1e-6, w1=0.01, w2=0.02, phi=0.2, omega=1.2, lr_min=1e-3, lr_max=0.2)


def test_inject_hyperparams_every_numeric_hyperparameter():
    """inject_hyperparams(alice) with every numeric hyperparameter injected (traced under jit)
    gives the plain optimiser's trajectory; a changed hyperparameter takes effect."""
    p = jnp.ones(3)
    inj = optax.inject_hyperparams(alice_jax.alice)(learning_rate=0.05, **HYPER)
    s = jax.jit(inj.init)(p)
    assert set(HYPER) | {"learning_rate", "seed"} <= set(s.hyperparams)
    p_inj, s_inj = _run(inj, _loss, p, 30)
    p_pl, s_pl = _run(alice_jax.alice(0.05, **HYPER), _loss, p, 30)
    _close((p_inj, s_inj.inner_state), (p_pl, s_pl), 1e-6)
    assert float(s_pl.R[0]) > 0  # the kink gives glass: R is exercised
    # a new learning rate set in the state: sigma and the bounds follow (lr_max is explicit)
    step = jax.jit(lambda q, s: inj.update(jax.grad(_loss)(q), s, q, value_fn=_loss))
    s = inj.init(p)
    s.hyperparams["learning_rate"] = jnp.asarray(0.02, jnp.float32)
    q = p
    for _ in range(30):
        u, s = step(q, s)
        q = optax.apply_updates(q, u)
    _close(q, _run(alice_jax.alice(0.02, **HYPER), _loss, p, 30)[0], 1e-6)


def test_quick_steps_is_static_under_inject_hyperparams():
    p = jnp.ones(2)
    with pytest.raises(TypeError, match="static_args"):
        _run(optax.inject_hyperparams(alice_jax.alice)(learning_rate=0.05, quick_steps=0),
             _loss, p, 1)
    inj = optax.inject_hyperparams(alice_jax.alice, static_args="quick_steps")(
        learning_rate=0.05, quick_steps=0)
    _close(_run(inj, _loss, p, 12)[0], _run(alice_jax.alice(0.05, quick_steps=0), _loss, p,
                                             12)[0], 1e-6)


def test_learning_rate_schedules():
    """A constant schedule is the constant; a piecewise one is the constant until it changes
    and then moves sigma and the bounds; a warm-up from 0 (sigma = 0: no displacement) takes no
    curvature sample and produces no NaN."""
    p = jnp.ones(3)
    _close(_run(alice_jax.alice(optax.constant_schedule(0.05), **HYPER), _loss, p, 30),
           _run(alice_jax.alice(0.05, **HYPER), _loss, p, 30), 1e-6)
    sched = optax.piecewise_constant_schedule(0.05, {12: 0.5})
    a = _run(alice_jax.alice(sched), _loss, p, 12)
    _close(a, _run(alice_jax.alice(0.05), _loss, p, 12), 1e-6)
    b = _run(alice_jax.alice(sched), _loss, p, 16)[0]
    c = _run(alice_jax.alice(0.05), _loss, p, 16)[0]
    assert not np.allclose(np.asarray(b), np.asarray(c))
    tx = alice_jax.alice(optax.linear_schedule(0.0, 0.05, 10), betas=(0.5, 0.999))
    q, s = _run(tx, _loss, p, 1)  # batch 1: sigma = schedule(0) = 0
    assert s.H.tolist() == s.R.tolist() == [0.0] * 3 and int(s.count) == 1
    q, s = _run(tx, _loss, p, 60)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(s))
    assert float(_loss(alice_jax.center(s))) < float(_loss(p))


def test_the_signature_is_explicit():
    import inspect
    sig = inspect.signature(alice_jax.alice)
    assert sig.parameters["learning_rate"].annotation in (optax.ScalarOrSchedule,
                                                          "optax.ScalarOrSchedule")
    cfg_fields = set(alice_ref.AliceConfig.__dataclass_fields__) - {"lr", "_defaulted"}
    assert cfg_fields <= set(sig.parameters)
    assert {"seed", "mu_dtype", "grad_transform"} <= set(sig.parameters)


# -- several Alice states, masking, abstract init, the counter -----------------------------------

def test_several_alice_states():
    p = {"a": jnp.zeros(2), "b": jnp.zeros(3)}
    s1, s2 = alice_jax.alice(0.1).init(p), alice_jax.alice(0.1).init(p)
    both = (s1, s2)
    with pytest.raises(ValueError, match="2 alice_jax states"):
        alice_jax.center(both)
    with pytest.raises(ValueError, match="2 alice_jax states"):
        alice_jax.attributes(both)
    assert alice_jax.check_finite(both) is None
    bad = (s1, s2._replace(bad_eval=jnp.int32(0), bad_leaf=jnp.int32(1)))
    with pytest.raises(alice_ref.NonFiniteGradientError) as e:
        alice_jax.check_finite(bad)
    assert e.value.evaluation == "g+" and "state 1 of 2" in " ".join(e.value.__notes__)


def test_masked_params_are_refused_clearly():
    p = {"a": jnp.zeros(2), "b": jnp.zeros(3)}
    tx = optax.masked(alice_jax.alice(0.1), {"a": True, "b": False})
    loss = lambda q: jnp.sum(q["a"] ** 2) + jnp.sum(q["b"] ** 2)  # noqa: E731
    with pytest.raises(TypeError, match="MaskedNode"):
        tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)


def test_init_on_abstract_params():
    params = {"w": jax.ShapeDtypeStruct((2, 4), jnp.float16), "b": jnp.zeros(3)}
    s = alice_jax.alice(0.1).init(params)
    assert isinstance(s.mu["w"], jax.ShapeDtypeStruct) and s.mu["w"].dtype == jnp.float32
    assert s.G["w"].shape == (2, 4) and s.count.dtype == jnp.int32


def test_counters_saturate():
    big = np.iinfo(np.int32).max
    tx = alice_jax.alice(0.1, betas=(0.5, 0.999))
    p = jnp.ones(2)
    s = tx.init(p)._replace(count=jnp.int32(big), skipped=jnp.int32(big))
    u, s1 = tx.update(jax.grad(_loss)(p), s, p, value_fn=_loss)
    assert int(s1.count) == big and np.isfinite(np.asarray(u)).all()
    u, s2 = tx.update(jnp.full(2, jnp.nan), s, p, value_fn=_loss)
    assert int(s2.skipped) == big


def test_complex_parameters_are_refused():
    with pytest.raises(TypeError, match="complex"):
        alice_jax.alice(0.1).init(jnp.zeros(2, jnp.complex64))


# -- explicit meshes -----------------------------------------------------------------------------

def test_explicit_mesh_types_and_no_recompilation():
    """Under an explicit-axis mesh (sharding in types): init and update give states of the same
    types (dtype and sharding), jit(init)/jit(update) agree with the eager ones, and the jitted
    step compiles once."""
    r = _subprocess("""
        import json, jax, jax.numpy as jnp, optax, alice_jax
        mesh = jax.make_mesh((2,), ('x',), axis_types=(jax.sharding.AxisType.Explicit,))
        sharding = jax.sharding.NamedSharding(mesh, jax.P(None, 'x'))
        loss = lambda p: jnp.sum((p.astype(jnp.float32) - 1.0) ** 2)
        tx = alice_jax.alice(0.05, betas=(0.5, 0.999))
        with jax.set_mesh(mesh):
            p = jnp.zeros((2, 8, 4), dtype=jnp.float16, out_sharding=sharding)
            s0 = tx.init(p)
            _, s1 = tx.update(jax.grad(loss)(p), s0, p, value_fn=loss)
            same = jax.tree.map(jax.typeof, s0) == jax.tree.map(jax.typeof, s1)
            jit_same = (jax.tree.map(jax.typeof, jax.jit(tx.init)(p))
                        == jax.tree.map(jax.typeof, s0))
            @jax.jit
            def step(p, s):
                u, s = tx.update(jax.grad(loss)(p), s, p, value_fn=loss)
                return optax.apply_updates(p, u), s
            p1, s = step(p, s0)
            p2, s = step(p1, s)
            p3, s = step(p2, s)
        print(json.dumps({"same": bool(same), "jit_same": bool(jit_same),
                          "cache": step._cache_size(), "count": int(s.count)}))
    """, devices=2)
    assert r == {"same": True, "jit_same": True, "cache": 1, "count": 3}
