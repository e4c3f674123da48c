"""Fast paths equal the generic core: alice_ref.engines.cpu (NumPy, in place, blocked), the fused
PyTorch path of alice_torch.Alice, and the fused CuPy kernels of alice_ref.engines.cuda.

Truth is the functional core (alice_ref.core.batch), whose own truth is established by the result
and optimiser tests; here every fast path must reproduce it bit for bit (same operations in the
same order; tests/test_fast_paths.py is what "proven equal" means in docs/performance.md).
Speed is not tested here: benchmarks/bench.py measures it.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import alice_ref as ar
from alice_ref import engines
from alice_ref.engines import cpu as fast
from alice_ref.engines import cuda as cupy_kernels

FIELDS = ("mu", "nu", "G", "V", "H", "R")


def bits_equal(a, b) -> bool:
    """Bit-identical arrays (NaNs with the same payload count as equal; +0 != -0)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        a.view(np.uint8), b.view(np.uint8))


def random_state(rng, n, dtype, zero_frac=0.05):
    """mu, nu, G, V, H, R and g+, g-, g0 as the algorithm can reach them (V, H, R >= 0), with
    exact zeros, tiny and huge magnitudes mixed in."""
    def draw():
        x = rng.standard_normal(n) * np.exp(rng.uniform(-12, 6, n))
        x[rng.random(n) < zero_frac] = 0.0
        return x.astype(dtype)
    arrs = [draw() for _ in range(9)]
    for k in (3, 4, 5):
        arrs[k] = np.abs(arrs[k])
    return arrs


def core_batch(arrs, config, t, lr, sample):
    """The generic core's batch on copies: absorb_sample/absorb_quick, then apply_update."""
    sched = ar.schedule(t, config)
    state = ar.AliceState(t - 1, *([a.copy()] for a in arrs[:6]), 0)
    gp, gm, g0 = ([a] for a in arrs[6:])
    if sample:
        state = ar.absorb_sample(state, sched, gp, gm, g0, config, lr)
    else:
        state = ar.absorb_quick(state, sched, g0, config)
    state = ar.apply_update(state, sched, config, lr)
    return sched, [getattr(state, f)[0] for f in FIELDS]


def _np_sqrt_hook(x, out):
    np.sqrt(x, out=out)


def _hooks():
    """The square roots of the CPU engine: its own (IEEE, one compiled pass) and a caller's
    (the PyTorch adapter's form, split at the square roots). numba is part of the test install
    (extra ``fast``): under CI a missing numba fails instead of skipping."""
    mark = pytest.mark.skipif(not fast.AVAILABLE and not os.environ.get("CI"),
                              reason="numba not installed (extra 'fast')")
    return [pytest.param(None, id="ieee-sqrt", marks=mark),
            pytest.param(_np_sqrt_hook, id="caller-sqrt", marks=mark)]


HOOKS = _hooks()

CONFIGS = [dict(hess_comp=h, grad_glass=gg, limit_method=lim, w1=w1, w2=w2, lr_min=lo, omega=om,
                phi=ph)
           for h, gg, lim, (w1, w2), lo, (om, ph) in itertools.product(
               ("zero", "abs", "rms"), (True, False), ("fixed", "sgdm", "adam"),
               ((0.0, 0.0), (1e-3, 0.0), (0.0, 1e-2), (1e-3, 1e-2)), (0.0, 1e-3),
               ((1.0, None), (0.7, 0.3)))
           if not (h == "zero" and not gg)]


# -- alice_ref.engines.cpu (NumPy) -----------------------------------------------------------------

@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sample, t", [(True, 3), (True, 12), (False, 13)])  # warm-up, update
def test_numpy_fast_bit_identical_to_core_all_configs(dtype, sample, t, hook):
    """Every hyperparameter switch, sample/quick step, warm-up/update, float32/float64, with a
    block size that leaves a ragged last block; all outputs bit for bit, and the parameter
    (and without a parameter)."""
    rng = np.random.default_rng([int(sample), t, np.dtype(dtype).itemsize])
    ws = fast.Workspace(chunk=97)
    n = 97 * 3 + 13
    for hp in CONFIGS:
        config = ar.AliceConfig(lr=0.01, betas=(0.75, 0.99), quick_steps=3, **hp)
        arrs = random_state(rng, n, dtype)
        lr = 0.01 * (0.5 + rng.random())  # a scheduler moved lr: sigma and bounds follow
        sched, expected = core_batch(arrs, config, t, lr, sample)
        for param in (np.empty(n, dtype), None):
            mine = [a.copy() for a in arrs[:6]]
            fast.absorb_and_update(config, sched, *mine, arrs[8],
                                   *(arrs[6:8] if sample else ()), lr=lr, param=param,
                                   workspace=ws, sqrt=hook)
            for f, a, b in zip(FIELDS, mine, expected):
                assert bits_equal(a, b), (hp, f)
            assert param is None or bits_equal(param, expected[0])


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_numpy_fast_threads_and_blocks_do_not_change_results(threads, hook):
    """Block sizes (ws.chunk; the compiled pass's own blocks of 8192 at the default chunk)
    and thread splits leave every bit as the core's."""
    rng = np.random.default_rng(7)
    config = ar.AliceConfig(lr=0.02, betas=(0.5, 0.999), hess_comp="rms", w1=1e-4)
    n = 2 * 8192 + 1000
    arrs = random_state(rng, n, np.float32)
    sched, expected = core_batch(arrs, config, 8, None, True)
    for chunk in (64, 333, 4096, fast.DEFAULT_CHUNK):
        mine = [a.copy() for a in arrs[:6]]
        fast.absorb_and_update(config, sched, *mine, arrs[8], arrs[6], arrs[7],
                               workspace=fast.Workspace(chunk), threads=threads,
                               sqrt=hook)
        assert all(bits_equal(a, b) for a, b in zip(mine, expected)), chunk


EDGES = [0.0, 1e-30, 1e-8, 1.0, 3.0e4, 1e30]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dtype=st.sampled_from([np.float32, np.float64]),
       hp=st.sampled_from(CONFIGS),
       sample=st.booleans(),
       vals=st.lists(st.sampled_from(EDGES), min_size=9, max_size=9),
       signs=st.lists(st.sampled_from([-1.0, 1.0]), min_size=9, max_size=9))
@example(dtype=np.float32, hp=CONFIGS[0], sample=True, vals=[0.0] * 9, signs=[1.0] * 9)
@example(dtype=np.float32, hp=dict(limit_method="adam", lr_max=0.0), sample=False,
         vals=[1.0, 1.0, 1e30, 0.0, 0.0, 0.0, 0.0, 0.0, 1e30], signs=[1.0] * 9)
@pytest.mark.parametrize("hook", HOOKS)
def test_numpy_fast_edge_values(dtype, hp, sample, vals, signs, hook):
    """g = 0, rho = 0, h = 0, V = 0, tiny and huge magnitudes (overflowing the adam ratio into
    inf, so a bound is NaN: the masked fallback of the clip), one element per combination."""
    config = ar.AliceConfig(lr=0.01, betas=(0.75, 0.99), **hp)
    arrs = [np.array([v * s], dtype) for v, s in zip(vals, signs)]
    for k in (3, 4, 5):
        arrs[k] = np.abs(arrs[k])
    with np.errstate(all="ignore"):
        sched, expected = core_batch(arrs, config, 12 if sample else 13, None, sample)
        mine = [a.copy() for a in arrs[:6]]
        fast.absorb_and_update(config, sched, *mine, arrs[8], *(arrs[6:8] if sample else ()),
                               sqrt=hook)
    for f, a, b in zip(FIELDS, mine, expected):
        assert bits_equal(a, b), f


@pytest.mark.parametrize("hook", HOOKS)
def test_numpy_fast_nan_bound_fallback_is_exercised(hook):
    """lr_max = 0 and an infinite adam ratio f make hi f = NaN: the clip must take the literal
    masked form (fmin would drop the NaN)."""
    config = ar.AliceConfig(lr=0.01, lr_min=0.0, lr_max=0.0)
    n = 50
    arrs = [np.ones(n, np.float32) for _ in range(9)]
    arrs[2][::2] = 3e38  # G huge, V = 0: f = |G| / (0 + eps) = inf
    arrs[8][::2] = 3e38
    arrs[3][:] = 0.0
    with np.errstate(all="ignore"):
        sched, expected = core_batch(arrs, config, 13, None, False)
        mine = [a.copy() for a in arrs[:6]]
        fast.absorb_and_update(config, sched, *mine, arrs[8], sqrt=hook)
    assert np.isnan(expected[0]).any()  # the core's answer does go through the NaN bound
    assert all(bits_equal(a, b) for a, b in zip(mine, expected))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probe_point_bit_identical_to_core(dtype):
    rng = np.random.default_rng(3)
    n = 777
    nu = (rng.standard_normal(n) * np.exp(rng.uniform(-10, 10, n))).astype(dtype)
    u = rng.random(n).astype(dtype)
    z = ar.rademacher_from_uniform(u)
    state = ar.init([nu])
    for sigma in (1e-3, 0.37, 5.0):
        plus, minus, at = ar.probe_points(state, [z], sigma)
        for packed, chunk in ((False, 100), (True, 100), (True, 64), (True, 1000)):
            ws = fast.Workspace(chunk)
            neg = fast.negative_mask(u, packed=packed, workspace=ws)
            if packed:
                assert neg.dtype == np.uint8 and neg.size == (n + 7) // 8
                assert bits_equal(np.unpackbits(neg)[:n].astype(bool), u < 0.5)
            for sign, expected in ((1, plus[0]), (-1, minus[0])):
                out = np.empty(n, dtype)
                fast.probe_point(nu, neg, sigma, sign, out, workspace=ws, threads=2)
                assert bits_equal(out, expected), (packed, chunk)
        assert bits_equal(at[0], nu)


@pytest.mark.parametrize("hook", HOOKS)
def test_update_state_whole_state_equals_core_trajectory(hook):
    """Several parameters, a run of batches through warm-up, sample and quick steps, driven by
    a landscape's gradients: the in-place state follows the core's exactly."""
    from alice_ref.landscapes import Quadratic
    q = Quadratic(12, seed=1)
    config = ar.AliceConfig(lr=0.02, betas=(0.75, 0.999), quick_steps=2, hess_comp="rms")
    shapes = [(5,), (7,)]
    x0 = np.linspace(-1, 1, 12)
    split = lambda x: [x[:5].copy(), x[5:].copy()]  # noqa: E731
    core = ar.init(split(x0), config)
    mine = ar.init(split(x0), config)  # init gives every field its own storage
    rng = np.random.default_rng(0)
    grad = lambda ps: split(q.grad(np.concatenate(ps)))  # noqa: E731
    for _ in range(15):
        sched = ar.schedule(core.t + 1, config)
        if sched.sample:
            z = [np.where(rng.random(s) < 0.5, -1.0, 1.0) for s in shapes]
            plus, minus, nu = ar.probe_points(core, z, config.lr)
            gp, gm, g0 = grad(plus), grad(minus), grad(nu)
            core = ar.apply_update(ar.absorb_sample(core, sched, gp, gm, g0, config), sched,
                                   config)
            mine = engines.update_state(mine, sched, config, g0, gp, gm, sqrt=hook)
        else:
            g0 = grad(list(core.nu))
            core = ar.apply_update(ar.absorb_quick(core, sched, g0, config), sched, config)
            mine = engines.update_state(mine, sched, config, g0, sqrt=hook)
        assert mine.t == core.t
        for f in FIELDS:
            assert all(bits_equal(a, b) for a, b in zip(getattr(mine, f), getattr(core, f))), f
    shared = ar.init(split(x0), config)
    for a, b in (("mu", "nu"), ("G", "V"), ("H", "R")):  # aliased fields are refused
        aliased = shared._replace(**{b: getattr(shared, a)})
        with pytest.raises(ValueError, match="share memory"):
            engines.update_state(aliased, ar.schedule(1, config), config,
                              grad(split(x0)), grad(split(x0)), grad(split(x0)))


def test_numpy_fast_rejects_bad_input_before_changing_anything():
    config = ar.AliceConfig()
    sched = ar.schedule(13, config)
    good = [np.ones(8, np.float32) for _ in range(6)]
    g = np.ones(8, np.float32)
    before = [a.copy() for a in good]
    cases = [
        (TypeError, "dtype", dict(g_zero=np.ones(8))),
        (ValueError, "elements", dict(g_zero=np.ones(9, np.float32))),
        (ValueError, "contiguous", dict(g_zero=np.ones(16, np.float32)[::2])),
        (TypeError, "NumPy", dict(g_zero=[1.0] * 8)),
        (TypeError, "g_minus", dict(g_plus=g)),
    ]
    for exc, msg, kw in cases:
        args = dict(g_zero=g) | kw
        with pytest.raises(exc, match=msg):
            fast.absorb_and_update(config, sched, *good, args.pop("g_zero"), **args)
    ro = good[2].copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        fast.absorb_and_update(config, sched, *good[:2], ro, *good[3:], g)
    with pytest.raises(TypeError, match="float32 and float64"):
        fast.absorb_and_update(config, sched, *[a.astype(np.float16) for a in good],
                               g.astype(np.float16))
    with pytest.raises(ValueError, match="chunk"):
        fast.Workspace(0)
    with pytest.raises(ValueError, match="threads"):
        fast.absorb_and_update(config, sched, *good, g, threads=0)
    with pytest.raises(ValueError, match="engine"):
        engines.select(good, "numexpr")
    with pytest.raises(ValueError, match="cannot run"):
        engines.select([np.ones(3, np.float16)], "cpu")
    with pytest.raises(ValueError, match="sign"):
        fast.probe_point(good[0], np.zeros(8, bool), 0.1, 2, good[1])
    assert all(bits_equal(a, b) for a, b in zip(good, before))


def test_state_words_is_the_traffic_floor():
    """Quick batch: read g0 G V H R mu, write G V mu nu param = 11; sample: + g+ g- read and
    H R written = 15 (docs/performance.md)."""
    assert fast.state_words(sample=False) == 11
    assert fast.state_words(sample=True) == 15
    assert fast.state_words(sample=False, update=False, param=False) == 5


# -- alice_torch fused path -----------------------------------------------------------------------

torch = pytest.importorskip("torch")
import alice_torch._numerics as _numerics  # noqa: E402
from alice_torch import Alice  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _mlp(dtype, seed=0, width=6):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.ReLU(),
                               torch.nn.Dropout(0.2), torch.nn.Linear(width, 1)).to(dtype)


def _train(fused, dtype, hp, n=14, groups=False, chunk=None, sched_gamma=None):
    model = _mlp(dtype)
    params = ([{"params": model[0].parameters(), "lr": hp.get("lr", 0.05) * 0.5},
               {"params": model[3].parameters()}] if groups else model.parameters())
    opt = Alice(params, generator=torch.Generator().manual_seed(3), fused=fused, **hp)
    if chunk is not None:
        opt._workspace = fast.Workspace(chunk)
    sched = (torch.optim.lr_scheduler.ExponentialLR(opt, sched_gamma) if sched_gamma else None)
    g = torch.Generator().manual_seed(11)
    torch.manual_seed(5)
    losses = []
    for _ in range(n):
        x = torch.randn(16, 3, generator=g).to(dtype)
        y = torch.sin(x.sum(1, keepdim=True))

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss
        losses.append(opt.step(closure).item())
        if sched:
            sched.step()
    return model, opt, losses


TORCH_HP = [
    {"lr": 0.05, "betas": (0.75, 0.999), "quick_steps": 3},
    {"lr": 0.02, "betas": (0.5, 0.99), "quick_steps": 1, "hess_comp": "rms",
     "grad_glass": False, "limit_method": "sgdm", "w1": 1e-3, "w2": 1e-2, "lr_max": 0.2},
    {"lr": 0.03, "betas": (0.875, 0.999), "quick_steps": 2, "hess_comp": "zero",
     "limit_method": "fixed", "lr_min": 1e-3, "lr_max": 0.02, "phi": 0.3, "omega": 0.7},
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hp", TORCH_HP)
def test_torch_fused_bit_identical_to_generic(dtype, hp):
    """Default (fused: alice_ref.engines.cpu) and fused=False give the same parameters, state,
    losses and RNG position, bit for bit, through warm-up, sample and quick steps, with
    dropout."""
    if not fast.AVAILABLE and not os.environ.get("CI"):
        pytest.skip("numba not installed (extra 'fast')")
    runs = []
    for fused in (None, False):
        model, opt, losses = _train(fused, dtype, hp, groups=True, chunk=5, sched_gamma=0.97)
        runs.append((model, opt, losses, torch.get_rng_state()))
    (m1, o1, l1, r1), (m2, o2, l2, r2) = runs
    assert l1 == l2 and torch.equal(r1, r2) and o1.t == o2.t
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
        for f in FIELDS:
            assert bits_equal(o1.state[p][f].numpy(), o2.state[q][f].numpy()), f


def test_torch_default_takes_fused_path_and_falls_back(monkeypatch):
    calls = []
    real = fast.absorb_and_update
    monkeypatch.setattr(fast, "absorb_and_update",
                        lambda *a, **k: (calls.append(1), real(*a, **k)))
    _train(None, torch.float32, TORCH_HP[0], n=3)
    assert calls, "the default did not take the fused path"
    calls.clear()
    _train(False, torch.float32, TORCH_HP[0], n=3)
    _train(None, torch.bfloat16, TORCH_HP[0], n=3)  # half parameters: the generic path
    assert not calls
    with pytest.raises(ValueError, match="fused=True"):
        _train(True, torch.float16, TORCH_HP[0], n=1)
    with pytest.raises(TypeError, match="fused"):
        Alice(_mlp(torch.float32).parameters(), fused=1)


@pytest.mark.parametrize("threads", [1, 2])
def test_torch_fused_linear_loss_zero_curvature_and_large_tensors(threads):
    """A linear loss has H = R = 0 exactly (torch's sqrt of zeros goes through the adapter's
    zero trick) and tensors larger than a block, shared among threads; fused equals generic
    bit for bit."""
    torch.set_num_threads(threads)
    out = []
    for fused in (None, False):
        g = torch.Generator().manual_seed(0)
        ps = [torch.nn.Parameter(torch.randn(300, 70, generator=g)) for _ in range(2)]
        cs = [torch.randn(300, 70, generator=g) for _ in range(2)]
        opt = Alice(ps, lr=1e-3, betas=(0.75, 0.999), fused=fused,
                    generator=torch.Generator().manual_seed(1))
        opt._workspace = fast.Workspace(4096)
        opt.fused_threads = threads  # blocks shared among threads: same results

        def closure(opt=opt, ps=ps, cs=cs):
            opt.zero_grad()
            loss = sum((p * c).sum() for p, c in zip(ps, cs))
            loss.backward()
            return loss
        for _ in range(10):
            opt.step(closure)
        out.append((ps, opt))
    (p1, o1), (p2, o2) = out
    for a, b in zip(p1, p2):
        assert torch.equal(a, b) and not o1.state[a]["H"].any() and not o1.state[a]["R"].any()
        for f in FIELDS:
            assert torch.equal(o1.state[a][f], o2.state[b][f]), f


def test_torch_sqrt_hook_is_torch_sqrt():
    """torch_sqrt (with its zero trick and its pieces) equals torch.sqrt bit for bit."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = np.abs(rng.standard_normal(70000)).astype(dtype)
        x[rng.random(x.size) < 0.3] = 0.0
        x[:5] = [0.0, 1.0, np.inf, 1e-40 if dtype == np.float64 else 1e-39, 4.0]
        x[32768:65536] = 0.0  # a whole piece of zeros
        out = np.empty_like(x)
        _numerics.torch_sqrt(x, out)
        assert bits_equal(out, torch.sqrt(torch.from_numpy(x)).numpy())


def test_torch_fused_copies_gradients_that_are_views():
    """A closure that leaves .grad as a view of a buffer it reuses (as DDP's
    gradient_as_bucket_view does) must not see its earlier gradients overwritten."""
    out = []
    for fused in (None, False):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(4, 3))
        buf = torch.zeros(100)
        opt = Alice([w], lr=0.05, betas=(0.75, 0.999), fused=fused,
                    generator=torch.Generator().manual_seed(2))

        def closure(opt=opt, w=w, buf=buf):
            opt.zero_grad()
            loss = (torch.relu(w) ** 3).sum()
            (g,) = torch.autograd.grad(loss, [w])
            buf[10:22].copy_(g.flatten())
            w.grad = buf[10:22].view(4, 3)
            return loss
        for _ in range(9):
            opt.step(closure)
        out.append((w, opt))
    (w1, o1), (w2, o2) = out
    assert torch.equal(w1, w2)
    for f in FIELDS:
        assert torch.equal(o1.state[w1][f], o2.state[w2][f]), f


def test_torch_fused_unaliases_state_after_import_mu():
    """import_mu makes mu and nu one tensor; the fused path gives each field its own storage
    before updating in place, and still equals the generic path."""
    out = []
    for fused in (None, False):
        model, opt, _ = _train(fused, torch.float64, TORCH_HP[0], n=6)
        opt.import_mu([p.detach() * 0.5 for p in model.parameters()])
        x = torch.linspace(-1, 1, 48, dtype=torch.float64).reshape(16, 3)

        def closure(opt=opt, model=model, x=x):
            opt.zero_grad()
            loss = model(x).square().mean()
            loss.backward()
            return loss
        for _ in range(5):
            opt.step(closure)
        out.append((model, opt))
    (m1, o1), (m2, o2) = out
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
        assert o1.state[p]["mu"].data_ptr() != o1.state[p]["nu"].data_ptr()
        for f in FIELDS:
            assert torch.equal(o1.state[p][f], o2.state[q][f]), f


# -- alice_ref.engines.cuda -----------------------------------------------------------------------

_C_HARNESS = """
#include <math.h>
#define __fadd_rn(a, b) ((a) + (b))
#define __fsub_rn(a, b) ((a) - (b))
#define __fmul_rn(a, b) ((a) * (b))
#define __fdiv_rn(a, b) ((a) / (b))
#define __fsqrt_rn(a) sqrtf(a)
#define __dadd_rn(a, b) ((a) + (b))
#define __dsub_rn(a, b) ((a) - (b))
#define __dmul_rn(a, b) ((a) * (b))
#define __ddiv_rn(a, b) ((a) / (b))
#define __dsqrt_rn(a) sqrt(a)
"""


def _c_kernel(index, dtype, sample, update, config):
    """The CuPy kernel's source as a C function over arrays (scalars in an array)."""
    ins, outs, op, pre = cupy_kernels.kernel_source(dtype, sample, update, config, param=True)
    T = "float" if dtype == "float32" else "double"
    arr_in = [p.split()[1] for p in ins.split(", ") if p.split()[1] not in cupy_kernels.SCALARS]
    arr_out = [p.split()[1] for p in outs.split(", ")]
    body = op.replace("const T ", f"const {T} ")
    lines = [f"void k{index}(long n, {T} *sc, " +
             ", ".join(f"{T} *{a}_" for a in arr_in + arr_out) + ") {"]
    lines += [f"  const {T} {s} = sc[{i}];" for i, s in enumerate(cupy_kernels.SCALARS)]
    lines += ["  for (long i = 0; i < n; i++) {"]
    lines += [f"    const {T} {a} = {a}_[i];" for a in arr_in]
    lines += [f"    {T} {a} = {a}_[i];" for a in arr_out]
    lines += ["    " + line for line in body.split("\n")]
    lines += [f"    {a}_[i] = {a};" for a in arr_out]
    lines += ["  }", "}"]
    return pre + "\n".join(lines) + "\n", arr_in


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to check the source")
def test_cupy_kernel_source_equals_core_on_cpu(tmp_path):
    """The fused kernels' arithmetic, compiled for the CPU (-ffp-contract=off, the intrinsics
    as plain IEEE operations), is the core's, bit for bit: the generated CUDA source is right
    even where no GPU can run it."""
    cases, seen = [], set()
    for hp in CONFIGS:  # one case per distinct kernel source, both dtypes in turn
        kind = (hp["hess_comp"], hp["grad_glass"], hp["limit_method"], hp["w1"], hp["w2"])
        if kind in seen:
            continue
        seen.add(kind)
        for j, (sample, t) in enumerate(((True, 12), (False, 13), (True, 2))):
            cases.append((hp, ("float32", "float64")[(len(seen) + j) % 2], sample, t))
    src, meta = [_C_HARNESS], []
    for i, (hp, dtype, sample, t) in enumerate(cases):
        config = ar.AliceConfig(lr=0.01, betas=(0.75, 0.99), **hp)
        code, arr_in = _c_kernel(i, dtype, sample, ar.schedule(t, config).update, config)
        src.append(code)
        meta.append((config, arr_in))
    (tmp_path / "k.c").write_text("\n".join(src))
    lib = tmp_path / "k.so"
    subprocess.run(["cc", "-O2", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC",
                    "-o", str(lib), str(tmp_path / "k.c"), "-lm"], check=True)
    so = ctypes.CDLL(str(lib))
    rng = np.random.default_rng(5)
    n = 301
    for i, ((hp, dtype, sample, t), (config, arr_in)) in enumerate(zip(cases, meta)):
        arrs = random_state(rng, n, np.dtype(dtype))
        lr = 0.008
        sched, expected = core_batch(arrs, config, t, lr, sample)
        sigma = lr
        lo, hi = config.bounds(lr)
        vals = dict(b1=sched.beta1, b2=sched.beta2, b3=sched.beta3, two_sigma=2.0 * sigma,
                    sigma=sigma, w1=config.w1, w2=config.w2, w2sq=config.w2 * config.w2,
                    eps=config.eps, alpha_c=ar.ALPHA_COEFF, phi=config.phi,
                    omega=config.omega, lo=lo, hi=hi, two=2.0, zero=0.0)
        sc = np.array([vals[s] for s in cupy_kernels.SCALARS], dtype)
        grads = {"g0": arrs[8], "gp": arrs[6], "gm": arrs[7]}
        ins = [grads[a] for a in arr_in]
        state = [a.copy() for a in arrs[:6]]
        param = np.empty(n, dtype)
        ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
        getattr(so, f"k{i}")(ctypes.c_long(n), ptr(sc), *[ptr(a) for a in ins + state + [param]])
        for f, a, b in zip(FIELDS, state, expected):
            assert bits_equal(a, b), (hp, dtype, sample, t, f)
        assert bits_equal(param, expected[0])


def _cupy():
    cp = pytest.importorskip("cupy")
    if not cupy_kernels.available():
        pytest.skip("no CUDA device")
    return cp


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sample, t", [(True, 2), (True, 12), (False, 13)])
def test_cupy_fused_bit_identical_to_core_on_cupy(dtype, sample, t):
    """On a GPU: one fused launch equals the core run on CuPy arrays (its ~40 launches)."""
    cp = _cupy()
    rng = np.random.default_rng(1)
    n = 4099
    for hp in CONFIGS[::2]:
        config = ar.AliceConfig(lr=0.01, betas=(0.75, 0.99), **hp)
        arrs = [cp.asarray(a) for a in random_state(rng, n, np.dtype(dtype))]
        sched, expected = core_batch(arrs, config, t, 0.007, sample)
        mine = [a.copy() for a in arrs[:6]]
        param = cp.empty_like(mine[0])
        cupy_kernels.absorb_and_update(config, sched, *mine, arrs[8],
                                       *(arrs[6:8] if sample else ()), lr=0.007, param=param)
        for f, a, b in zip(FIELDS, mine, expected):
            assert bits_equal(cp.asnumpy(a), cp.asnumpy(b)), (hp, f)
        assert bits_equal(cp.asnumpy(param), cp.asnumpy(expected[0]))


def test_cupy_probe_points_and_validation():
    cp = _cupy()
    nu = cp.asarray(np.random.default_rng(0).standard_normal(1000).astype(np.float32))
    z = cp.where(cp.random.random(1000) < 0.5, -1.0, 1.0).astype(cp.float32)
    plus, minus, _ = ar.probe_points(ar.init([nu]), [z], 0.01)
    p, m = cupy_kernels.probe_points(nu, z, 0.01)
    assert bits_equal(cp.asnumpy(p), cp.asnumpy(plus[0]))
    assert bits_equal(cp.asnumpy(m), cp.asnumpy(minus[0]))
    config = ar.AliceConfig()
    sched = ar.schedule(13, config)
    st = [cp.zeros(8, cp.float32) for _ in range(6)]
    with pytest.raises(TypeError, match="dtype"):
        cupy_kernels.absorb_and_update(config, sched, *st, cp.zeros(8, cp.float64))
    with pytest.raises(ValueError, match="share memory"):
        cupy_kernels.absorb_and_update(config, sched, st[0], st[0], *st[2:], st[1])
