"""alice_jax's two specialised steps (issue 16, item 2): ``update(..., sample_step=True/False)``
compiles one branch without ``lax.cond``, the host picks it with ``tx.is_sample_step``; the
results equal the in-graph ``cond``'s bit for bit, a batch sent to the wrong variant is refused,
and the option passes through optax.chain and optax.inject_hyperparams.

Truth: the schedule comes from the core's R8 function ``alice_ref.is_sample_step(t, beta1, q)``
(written independently of ``alice_ref.core.schedule``); equality is against the in-graph cond,
itself checked against the NumPy core in test_jax_adapter.py."""

import functools

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import alice_jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import alice_ref  # noqa: E402

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(48, 6)), jnp.float32)
Y = jnp.tanh(X[:, :1] - 0.5 * X[:, 1:2])
P0 = {"w1": jnp.asarray(RNG.normal(0, 0.5, (6, 10)), jnp.float32), "b1": jnp.zeros(10),
      "w2": jnp.asarray(RNG.normal(0, 0.5, (10, 1)), jnp.float32), "b2": jnp.zeros(1)}
T = 10


def _loss(p, x, y):
    return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - y) ** 2)


def _batch(t):
    i = (8 * t) % 32
    return X[i:i + 16], Y[i:i + 16]


def _stepper(tx):
    @functools.partial(jax.jit, static_argnames="sample_step")
    def step(p, s, x, y, sample_step=None):
        g = jax.grad(_loss)(p, x, y)
        u, s = tx.update(g, s, p, value_fn=_loss, x=x, y=y, sample_step=sample_step)
        return optax.apply_updates(p, u), s
    return step


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _bit_equal(a, b):
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(x.dtype == y.dtype and np.array_equal(x, y)
                                      for x, y in zip(la, lb))


@pytest.mark.parametrize("beta1, q", [(0.75, 3), (0.5, 0), (0.9, 2), (0.875, 1)])
def test_host_schedule_is_the_core_schedule(beta1, q):
    tx = alice_jax.alice(0.1, betas=(beta1, 0.999), quick_steps=q)
    for count in range(40):
        assert tx.is_sample_step(count) == alice_ref.is_sample_step(count + 1, beta1, q)
    s = tx.init(jnp.zeros(2))
    assert tx.is_sample_step(s) is True  # batch 1 is a warm-up sample step
    assert tx.is_sample_step(s._replace(count=jnp.int32(30))) == \
        alice_ref.is_sample_step(31, beta1, q)
    assert tx.is_sample_step(optax.chain(optax.identity(), tx).init(jnp.zeros(2))) is True
    assert tx.is_sample_step(np.int64(5)) == alice_ref.is_sample_step(6, beta1, q)


def test_host_schedule_rejects_bad_counts():
    tx = alice_jax.alice(0.1)
    with pytest.raises(ValueError, match="count must be >= 0"):
        tx.is_sample_step(-1)
    with pytest.raises(TypeError, match="count must be an int"):
        tx.is_sample_step(1.5)
    with pytest.raises(TypeError, match="count must be an int"):
        tx.is_sample_step(True)


@pytest.mark.parametrize("kw", [{}, {"w1": 1e-3, "w2": 1e-2, "hess_comp": "rms"},
                                {"grad_transform": optax.clip_by_global_norm(0.5)},
                                {"learning_rate": optax.linear_schedule(0.03, 0.01, 10)}])
def test_specialised_steps_equal_the_cond_bit_for_bit(kw):
    kw = {"learning_rate": 0.02, **kw}
    tx = alice_jax.alice(kw.pop("learning_rate"), betas=(0.75, 0.999), quick_steps=3,
                         seed=3, **kw)
    step = _stepper(tx)
    pa, sa = P0, tx.init(P0)
    pb, sb = P0, tx.init(P0)
    kinds = []
    for t in range(T):  # warm-up (4 sample batches), then quick, quick, quick, sample, ...
        pa, sa = step(pa, sa, *_batch(t))
        kinds.append(tx.is_sample_step(t))
        pb, sb = step(pb, sb, *_batch(t), sample_step=kinds[-1])
        assert _bit_equal((pa, sa), (pb, sb)), t
    assert kinds == [alice_ref.is_sample_step(t + 1, 0.75, 3) for t in range(T)]
    assert int(sb.count) == T and int(sb.skipped) == 0 and int(sb.bad_eval) == -1


def test_the_specialised_steps_contain_no_cond():
    tx = alice_jax.alice(0.02, quick_steps=3)
    s = tx.init(P0)
    x, y = _batch(0)

    def jaxpr(sample_step):
        def f(p, s):
            return tx.update(jax.grad(_loss)(p, x, y), s, p, value_fn=_loss, x=x, y=y,
                             sample_step=sample_step)
        return str(jax.make_jaxpr(f)(P0, s))
    assert "cond[" in jaxpr(None)
    assert "cond[" not in jaxpr(True) and "cond[" not in jaxpr(False)


@pytest.mark.parametrize("wrong_at", [0, 4])  # a sample batch sent quick; a quick one sample
def test_a_batch_sent_to_the_wrong_variant_is_refused(wrong_at):
    tx = alice_jax.alice(0.02, betas=(0.75, 0.999), quick_steps=3, seed=3)
    step = _stepper(tx)
    p, s = P0, tx.init(P0)
    for t in range(wrong_at):
        p, s = step(p, s, *_batch(t), sample_step=tx.is_sample_step(s))
    kind = tx.is_sample_step(s)
    x, y = _batch(wrong_at)
    g = jax.grad(_loss)(p, x, y)
    update = jax.jit(lambda g, s, p, sample_step: tx.update(
        g, s, p, value_fn=_loss, x=x, y=y, sample_step=sample_step),
        static_argnames="sample_step")
    u, s2 = update(g, s, p, sample_step=not kind)
    assert all(not np.any(v) for v in _leaves(u))  # no move
    assert _bit_equal(s2._replace(skipped=s.skipped, bad_eval=s.bad_eval, bad_leaf=s.bad_leaf),
                      s)  # mu, count, key, every average unchanged
    assert int(s2.skipped) == int(s.skipped) + 1
    assert int(s2.bad_eval) == alice_jax.WRONG_STEP and int(s2.bad_leaf) == -1
    with pytest.raises(ValueError, match="specialised step of the other kind"):
        alice_jax.check_finite(s2)
    # the retry with the right variant is the batch the cond would have taken
    u3, s3 = update(g, s2, p, sample_step=kind)
    u4, s4 = update(g, s, p, sample_step=None)
    assert _bit_equal((u3, s3._replace(skipped=s.skipped)), (u4, s4))


def test_sample_step_must_be_a_static_bool():
    tx = alice_jax.alice(0.02)
    s = tx.init(P0)
    g = jax.grad(_loss)(P0, *_batch(0))
    for bad in (1, "yes", jnp.asarray(True)):
        with pytest.raises(TypeError, match="sample_step must be None"):
            tx.update(g, s, P0, value_fn=_loss, x=X, y=Y, sample_step=bad)


def test_through_chain_and_inject_hyperparams():
    """``sample_step`` is an extra argument: optax.chain and inject_hyperparams hand it on."""
    plain = alice_jax.alice(0.02, betas=(0.75, 0.999), quick_steps=3, seed=3)
    chained = optax.chain(optax.identity(), plain)
    injected = optax.inject_hyperparams(alice_jax.alice)(learning_rate=0.02, betas=(0.75, 0.999),
                                                         seed=3)
    runs = {}
    for name, tx in (("plain", plain), ("chain", chained), ("inject", injected)):
        step = _stepper(tx)
        for how in ("split", "cond"):
            p, s = P0, tx.init(P0)
            for t in range(9):
                kind = plain.is_sample_step(t) if how == "split" else None
                p, s = step(p, s, *_batch(t), sample_step=kind)
            runs[name, how] = (p, alice_jax.center(s))
            assert int(alice_jax._transform._find_state(s).count) == 9
    assert _bit_equal(runs["chain", "split"], runs["plain", "split"])
    for name in ("plain", "chain", "inject"):  # (an injected lr is traced: its own rounding)
        assert _bit_equal(runs[name, "split"], runs[name, "cond"]), name
