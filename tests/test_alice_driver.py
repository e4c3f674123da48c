"""The batch driver (alice_ref.driver): non-finite gradients, exact resume, training end to end."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import to_np

import alice_ref as ar
from alice_ref._xp import array_namespace
from alice_ref.landscapes import Quadratic, ReluTeacherStudent

FIELDS = ("mu", "nu", "G", "V", "H", "R")


def bits(state):
    """Everything in a state, bit for bit (t, skipped and the raw bytes of every array)."""
    return [int(state.t), int(state.skipped)] + [
        (to_np(x).dtype.str, to_np(x).tobytes()) for f in FIELDS for x in getattr(state, f)]


class TwoParamQuadratic:
    """A quadratic split over two parameter arrays (shapes (4,) and (2, 3)), any namespace."""

    def __init__(self, xp, seed=0):
        self.xp, self.land = xp, Quadratic(10, seed=seed)

    def params(self):
        x0 = np.linspace(-1.0, 1.0, 10)
        return [self.xp.asarray(x0[:4]), self.xp.asarray(x0[4:].reshape(2, 3))]

    def value_and_grad(self, p):
        xp = self.xp
        x = np.concatenate([to_np(p[0]).ravel(), to_np(p[1]).ravel()])
        g = self.land.grad(x)
        return float(self.land.loss(x)), [xp.asarray(g[:4]), xp.asarray(g[4:].reshape(2, 3))]


def poisoned(vg, call, param, value=float("nan")):
    """vg, except that its ``call``-th evaluation (0-based) returns ``value`` in one element of
    parameter ``param``."""
    count = [0]

    def f(p):
        loss, grads = vg(p)
        k = count[0]
        count[0] += 1
        if k == call:
            g = to_np(grads[param]).copy()
            g.flat[1] = value
            grads = list(grads)
            grads[param] = array_namespace(p[param]).asarray(g)
        return loss, grads
    return f


# docs/spec/algorithm.md#one-batch, step 2: cfg below has beta1 = 0.75 (warm-up 4 batches) and
# q = 1, so t = 6 is a sample step after warm-up (g+, g-, g0 = calls 0, 1, 2) and t = 7 a quick
# step (g0 = call 0).
CFG = dict(lr=0.05, betas=(0.75, 0.99), quick_steps=1)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("t_bad,call,name,param,value", [
    (6, 0, "g+", 0, NAN), (6, 1, "g-", 1, NAN), (6, 2, "g0", 0, NAN), (6, 2, "g0", 1, INF),
    (6, 0, "g+", 1, -INF), (7, 0, "g0", 1, NAN), (2, 1, "g-", 0, INF)])
def test_nonfinite_raise_names_parameter_and_evaluation(t_bad, call, name, param, value, xp):
    prob = TwoParamQuadratic(xp)
    cfg = ar.AliceConfig(**CFG)
    opt = ar.Alice(prob.params(), cfg, seed=3)
    ref = ar.Alice(prob.params(), cfg, seed=3)  # the same run, never poisoned
    for _ in range(t_bad - 1):
        opt.step(prob.value_and_grad)
        ref.step(prob.value_and_grad)
    before, rng_before = bits(opt.state), copy.deepcopy(opt.rng.bit_generator.state)
    with pytest.raises(ar.NonFiniteGradientError) as info:
        opt.step(poisoned(prob.value_and_grad, call, param, value))
    err = info.value
    assert (err.index, err.evaluation, err.t) == (param, name, t_bad)
    assert f"parameter {param}" in str(err) and name in str(err)
    assert isinstance(err, FloatingPointError)
    assert bits(opt.state) == before  # mu, nu, every average and t exactly as before
    assert opt.rng.bit_generator.state == rng_before  # and the probes' RNG position
    # training continues, and is exactly the uninterrupted run
    for _ in range(4):
        la, lb = opt.step(prob.value_and_grad), ref.step(prob.value_and_grad)
        assert la == lb
    assert bits(opt.state) == bits(ref.state)


@pytest.mark.parametrize("t_bad,call", [(6, 0), (6, 1), (6, 2), (7, 0)])
def test_nonfinite_skip_counts_and_continues(t_bad, call, xp):
    prob = TwoParamQuadratic(xp)
    opt = ar.Alice(prob.params(), ar.AliceConfig(nonfinite="skip", **CFG), seed=3)
    ref = ar.Alice(prob.params(), ar.AliceConfig(nonfinite="skip", **CFG), seed=3)
    for _ in range(t_bad - 1):
        opt.step(prob.value_and_grad)
        ref.step(prob.value_and_grad)
    before = bits(opt.state)
    assert opt.step(poisoned(prob.value_and_grad, call, 1)) is None
    assert opt.state.skipped == 1 and opt.state.t == t_bad - 1
    assert bits(opt.state)[2:] == before[2:]
    # a skipped batch is as if it never happened (RNG included), apart from the count
    for _ in range(5):
        assert opt.step(prob.value_and_grad) == ref.step(prob.value_and_grad)
    assert bits(opt.state)[2:] == bits(ref.state)[2:] and bits(opt.state)[0] == ref.state.t
    assert opt.state.skipped == 1 and ref.state.skipped == 0
    assert ar.state_to_dict(opt.state)["skipped"] == 1


def test_failing_model_leaves_the_rng_in_place():
    prob = TwoParamQuadratic(np)
    opt = ar.Alice(prob.params(), ar.AliceConfig(**CFG), seed=0)
    pos = copy.deepcopy(opt.rng.bit_generator.state)

    def broken(p):
        raise RuntimeError("model failed")

    with pytest.raises(RuntimeError, match="model failed"):
        opt.step(broken)
    assert opt.rng.bit_generator.state == pos and opt.state.t == 0


def test_run_batch_rejects_bad_lr():
    prob = TwoParamQuadratic(np)
    cfg = ar.AliceConfig(**CFG)
    state = ar.init(prob.params(), cfg)
    for bad, exc in ((0.0, ValueError), (-0.1, ValueError), (float("nan"), ValueError),
                     (float("inf"), ValueError), ("0.1", TypeError), (True, TypeError),
                     ([0.1], TypeError)):
        with pytest.raises(exc, match="lr"):
            ar.run_batch(state, cfg, prob.value_and_grad, np.random.default_rng(0), lr=bad)
    # a 0-d array (e.g. from a scheduler) is a valid learning rate
    new, _ = ar.run_batch(state, cfg, prob.value_and_grad, np.random.default_rng(0),
                          lr=np.asarray(0.05))
    assert new.t == 1


def test_run_batch_rejects_bad_probes():
    """Injected probes need one array per parameter, of its shape: a z that would broadcast
    (shape (1,)) or a missing one is refused before any evaluation, naming the probe."""
    prob = TwoParamQuadratic(np)
    cfg = ar.AliceConfig(**CFG)
    state = ar.init(prob.params(), cfg)
    calls = []

    def vg(p):
        calls.append(1)
        return prob.value_and_grad(p)

    good = [np.ones(4), np.ones((2, 3))]
    for bad, exc, name in (([np.ones(1), good[1]], ValueError, r"probes\[0\]"),
                           ([good[0], np.ones(3)], ValueError, r"probes\[1\]"),
                           ([good[0]], ValueError, "probes"),
                           ([good[0], [[1.0] * 3] * 2], TypeError, r"probes\[1\]")):
        with pytest.raises(exc, match=name):
            ar.run_batch(state, cfg, vg, None, probes=bad)
    assert not calls
    new, _ = ar.run_batch(state, cfg, vg, None, probes=good)
    assert new.t == 1 and len(calls) == 3


# -- checkpointing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stop_at", [3, 6, 9])
def test_resume_mid_run_is_bit_identical(stop_at, xp):
    """Save after ``stop_at`` batches, restore into a fresh optimiser (different seed, so only a
    restored RNG can reproduce the probes), continue: identical to never stopping."""
    prob = TwoParamQuadratic(xp, seed=1)
    cfg = ar.AliceConfig(lr=0.05, betas=(0.75, 0.99), quick_steps=2, w1=0.01)
    full = ar.Alice(prob.params(), cfg, seed=42)
    full.lr = 0.04  # a changed learning rate is part of the checkpoint
    run = ar.Alice(prob.params(), cfg, seed=42)
    run.lr = 0.04
    losses_full = [full.step(prob.value_and_grad) for _ in range(16)]
    losses = [run.step(prob.value_and_grad) for _ in range(stop_at)]
    saved = run.state_dict()
    for _ in range(3):  # the saved dict is a snapshot: later steps don't change it
        run.step(prob.value_and_grad)
    resumed = ar.Alice(prob.params(), cfg, seed=7)
    resumed.load_state_dict(saved)
    assert resumed.lr == 0.04
    losses += [resumed.step(prob.value_and_grad) for _ in range(16 - stop_at)]
    assert losses == losses_full
    assert bits(resumed.state) == bits(full.state)
    assert all(np.array_equal(to_np(a), to_np(b)) for a, b in zip(resumed.params, full.params))
    assert type(resumed.state.mu[0]) is type(full.state.mu[0])


# -- end to end ------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_alice_trains_relu_teacher_student(backend):
    """Alice (driver, seeded, minibatches of 64 with the same minibatch for the three
    evaluations of a sample step) lowers the full-batch loss of a ReLU student by >= 10x in a
    fixed budget of 300 batches."""
    xp = pytest.importorskip(backend)
    land = ReluTeacherStudent(seed=0)
    cuts = np.cumsum((0,) + land.param_sizes)
    x0 = land.init_params(seed=1)
    params = [xp.asarray(x0[cuts[i]:cuts[i + 1]]) for i in range(4)]
    opt = ar.Alice(params, lr=0.02, betas=(0.9, 0.99), quick_steps=3, seed=0)
    data_rng = np.random.default_rng(5)
    for _ in range(300):
        batch = data_rng.choice(land.X.shape[0], size=64, replace=False)

        def vg(p, batch=batch):
            theta = xp.concat(list(p)) if hasattr(xp, "concat") else np.concatenate(p)
            g = land.grad(theta, batch)
            return land.loss(theta, batch), [g[int(cuts[i]):int(cuts[i + 1])] for i in range(4)]

        opt.step(vg)
    theta = np.concatenate([to_np(p) for p in opt.params])
    before, after = float(land.loss(x0)), float(land.loss(theta))
    assert np.isfinite(after) and after <= before / 10, (before, after)


def test_minimize_and_callback():
    land = Quadratic(4, seed=0)
    vg = lambda p: (float(land.loss(p[0])), [land.grad(p[0])])  # noqa: E731
    seen = []
    opt, losses = ar.minimize(vg, [np.zeros(4)], 50, lr=0.05, betas=(0.75, 0.999), seed=0,
                              callback=lambda t, loss, o: seen.append(t) or t >= 20)
    assert seen == list(range(1, 21)) and len(losses) == 20 and opt.state.t == 20
    opt2, losses2 = ar.minimize(vg, [np.zeros(4)], 20, config=opt.config, seed=0)
    assert losses2 == losses and bits(opt2.state) == bits(opt.state)
    with pytest.raises(ValueError, match="n_batches"):
        ar.minimize(vg, [np.zeros(4)], -1)
    with pytest.raises(TypeError, match="config"):
        ar.Alice([np.zeros(4)], ar.AliceConfig(), lr=0.1)


def test_draw_rademacher_convention():
    """z = -1 where u < 0.5 else +1, u ~ U[0,1) drawn per parameter in order
    (docs/spec/algorithm.md#reference-compatible-randomness)."""
    like = [np.zeros(5), np.zeros((2, 3), dtype=np.float32)]
    z = ar.draw_rademacher(np.random.default_rng(4), like)
    r = np.random.default_rng(4)
    u0, u1 = r.random(5), r.random((2, 3))
    assert np.array_equal(z[0], np.where(u0 < 0.5, -1.0, 1.0))
    assert np.array_equal(z[1], np.where(u1 < 0.5, -1.0, 1.0)) and z[1].dtype == np.float32
