"""Replay of the recorded official Alice 1.1 batches (package data: alice_ref.conformance).

The recording holds, for four configurations, the initial parameters, the uniform draws u of
every sample step, the gradients the official optimiser absorbed and its state after every batch.
Feeding the recorded gradients to alice_ref (through the batch driver, with z = -1 where u < 0.5
else +1) must reproduce mu, nu, G, V, H, R after every batch, and alice_ref must ask for exactly
the recorded number of gradients (3 on sample steps, 1 on quick steps) at the recorded points.

Tolerance. The official run was float32 on CPU with its CUDA kernels re-expressed in PyTorch;
the README promises agreement to about 1e-5 relative, not bit-for-bit (the kernels keep some
intermediates in double). We require, elementwise,

    |got - ref| <= 1e-5 * (|ref| + 1e-3 * max|ref|)

i.e. 1e-5 relative for every element, where an element a thousand times smaller than the
largest element of its array is judged against max|ref|/1000 instead of its own size. The floor
is needed because mu and nu are float32 sums of many steps: an element that has crossed zero is
the small difference of float32 numbers of larger magnitude, so its absolute error is set by
their rounding (a few float32 ulps of a larger number), not by its own size; relative error is
undefined at zero. The floor (1e-8 max|ref|) is below one float32 ulp of the largest element, so
it cannot hide a real discrepancy in any element of ordinary size.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import to_np

import alice_ref as ar
from alice_ref.conformance import load_official, official_meta

FIELDS = ("mu", "nu", "G", "V", "H", "R")
REL = 1e-5
FLOOR = 1e-3


def rel_error(got, ref):
    """max over elements of |got - ref| / (|ref| + FLOOR max|ref|) (0 where both are 0)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    scale = np.abs(ref) + FLOOR * np.max(np.abs(ref), initial=0.0)
    err = np.abs(got - ref)
    return float(np.max(np.where(scale > 0, err / np.where(scale > 0, scale, 1.0),
                                 np.where(err > 0, np.inf, 0.0)), initial=0.0))


@pytest.fixture(scope="module")
def data():
    d = load_official()
    meta = official_meta(d)
    return d, meta


def config_of(meta, c):
    kw = dict(meta["configs"][c]["config"])
    kw["betas"] = tuple(kw["betas"])
    return ar.AliceConfig(**kw)


def replay(d, meta, c, xp):
    """Run the driver on the recorded gradients; return the worst relative error per field."""
    cfg = config_of(meta, c)
    sizes = meta["configs"][c]["param_sizes"]
    cuts = np.cumsum([0] + list(sizes))

    def split(v):
        return [xp.asarray(np.asarray(v[cuts[i]:cuts[i + 1]])) for i in range(len(sizes))]

    params = split(d[f"c{c}_params0"])
    state = ar.init(params, cfg)
    assert all(m.dtype == xp.float32 for m in state.mu)
    worst = dict.fromkeys(FIELDS, 0.0)
    nu_before = np.asarray(d[f"c{c}_params0"], np.float64)
    for b in range(meta["batches"]):
        key_u = f"c{c}_b{b}_u"
        recorded = np.asarray(d[f"c{c}_b{b}_grads"])
        sample = key_u in d
        assert recorded.shape[0] == (3 if sample else 1)
        if sample:
            z = np.where(d[key_u] < 0.5, -1.0, 1.0)
            probes = [xp.asarray(np.asarray(z[cuts[i]:cuts[i + 1]], np.float32))
                      for i in range(len(sizes))]
            # where the official code took each gradient (README): nu + sigma z, nu - sigma z, nu
            where = [nu_before + cfg.lr * z, nu_before - cfg.lr * z, nu_before]
        else:
            probes, where = None, [nu_before]
        calls = []

        def value_and_grad(points, calls=calls, recorded=recorded, where=where, b=b):
            k = len(calls)
            assert k < recorded.shape[0], f"batch {b}: more evaluations than recorded"
            flat = np.concatenate([to_np(p) for p in points])
            assert rel_error(flat, where[k]) <= REL, f"batch {b} evaluation {k} at the wrong point"
            calls.append(k)
            return 0.0, split(recorded[k])

        state, _ = ar.run_batch(state, cfg, value_and_grad, rng=None, probes=probes)
        # sample steps happen exactly at the recorded batches, with all recorded evaluations
        assert len(calls) == recorded.shape[0], (c, b, len(calls))
        assert state.t == b + 1
        for f in FIELDS:
            got = np.concatenate([to_np(x) for x in getattr(state, f)])
            e = rel_error(got, d[f"c{c}_b{b}_{f}"])
            worst[f] = max(worst[f], e)
            assert e <= REL, f"config {c} batch {b}: {f} relative error {e:.3g} > {REL}"
        nu_before = np.asarray(d[f"c{c}_b{b}_nu"], np.float64)
    return worst


@pytest.mark.parametrize("c", [0, 1, 2, 3])
def test_replay_official_batches(data, c, xp):
    d, meta = data
    worst = replay(d, meta, c, xp)
    assert max(worst.values()) <= REL


def test_recorded_sample_batches_follow_the_schedule(data):
    """The batches that carry u are exactly those that docs/spec/algorithm.md#one-batch, steps 1-2
    make sample steps (warm-up t <= 1/(1 - beta1), else t mod (q+1) = 0), with beta1 exact in
    binary here."""
    d, meta = data
    for c, entry in enumerate(meta["configs"]):
        cfg = config_of(meta, c)
        b1, q = entry["config"]["betas"][0], entry["config"].get("quick_steps", 3)
        warm = round(1.0 / (1.0 - b1))
        assert warm == 1.0 / (1.0 - b1)  # exact in binary: no float32 quirk involved
        expected = [b for b in range(meta["batches"]) if b + 1 <= warm or (b + 1) % (q + 1) == 0]
        recorded = [b for b in range(meta["batches"]) if f"c{c}_b{b}_u" in d]
        assert recorded == expected
        assert [b for b in range(meta["batches"]) if ar.schedule(b + 1, cfg).sample] == expected
