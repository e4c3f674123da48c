"""alice_torch's fused CUDA path (adapters/alice_torch/_cuda.py): the CuPy kernels of
alice_ref.engines.cuda on torch CUDA tensors through DLPack.

On a CPU-only machine everything but the kernels themselves is tested: the DLPack views (torch
CPU <-> NumPy), the dispatch of :func:`alice_torch._strategies.choose` (CUDA parameters
simulated), the fallbacks and their reasons, and the whole strategy (points, gradients taken
over, views, commit, undo) with a stand-in for CuPy whose "kernel" is the CPU engine: the
trajectory must then equal the generic path bit for bit. The GPU tests skip without cupy and
a CUDA device (benchmarks/gpu_check.sh runs them).
"""

from __future__ import annotations

import contextlib
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import alice_torch._cuda as _cuda  # noqa: E402
import alice_torch._strategies as _strategies  # noqa: E402
from alice_torch import Alice, NonFiniteGradientError  # noqa: E402
from alice_torch._numerics import torch_sqrt  # noqa: E402

import alice_ref as ar  # noqa: E402
from alice_ref.core import FIELDS  # noqa: E402
from alice_ref.engines import cpu as fast  # noqa: E402
from alice_ref.engines import cuda as ck  # noqa: E402

HP = {"lr": 0.05, "betas": (0.75, 0.999), "quick_steps": 3}


def _model(dtype, device="cpu"):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                               torch.nn.Linear(6, 1)).to(dtype=dtype, device=device)


def _train(fused, dtype, n=10, device="cpu", nan_at=None, hp=HP):
    model = _model(dtype, device)
    opt = Alice(model.parameters(), generator=torch.Generator(device).manual_seed(3),
                fused=fused, nonfinite="skip", **hp)
    g = torch.Generator().manual_seed(11)
    torch.manual_seed(5)
    losses = []
    for k in range(n):
        x = torch.randn(16, 3, generator=g).to(dtype=dtype, device=device)
        y = torch.sin(x.sum(1, keepdim=True))

        def closure(x=x, y=y, k=k):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            if k == nan_at:
                loss = loss * float("nan")
            loss.backward()
            return loss
        losses.append(opt.step(closure).item())
    return model, opt, losses


# -- DLPack views (CPU: torch <-> NumPy) ------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dlpack_view_is_the_tensors_memory(dtype):
    p = torch.nn.Parameter(torch.arange(12, dtype=dtype).reshape(3, 4))
    v = _cuda.dlpack_view(p, np)  # a parameter that requires grad: detached first
    assert v.shape == (12,) and v.dtype == np.dtype(str(dtype).replace("torch.", ""))
    assert v.__array_interface__["data"][0] == p.data_ptr()
    v[5] = -1.0  # writes go to the tensor, and back
    assert p[1, 1].item() == -1.0
    p.data[2, 3] = 7.0
    assert v[11] == 7.0
    back = torch.from_dlpack(v)
    assert back.data_ptr() == p.data_ptr() and torch.equal(back, p.detach().reshape(-1))
    with pytest.raises(ValueError, match="contiguous"):
        _cuda.dlpack_view(p.detach().t(), np)


# -- dispatch and fallbacks ---------------------------------------------------------------------

def test_cpu_parameters_never_take_the_cuda_path():
    model = _model(torch.float32)
    params = list(model.parameters())
    assert not _cuda.cuda_params(params) and not _cuda.cuda_params([])
    states = {p: {"mu": p} for p in params}
    assert "CUDA tensor" in _cuda.why_not(params, states)


def _pretend_cuda(monkeypatch):
    """CPU tensors count as CUDA tensors for the dispatch."""
    monkeypatch.setattr(_cuda, "cuda_params", lambda params: bool(params))


def test_without_cupy_the_generic_path_runs_with_a_reason(monkeypatch):
    _pretend_cuda(monkeypatch)

    def no_cupy():
        raise ImportError("cupy is not importable (ModuleNotFoundError: test; pip install "
                          "cupy-cuda12x)")
    monkeypatch.setattr(_cuda, "_cupy", no_cupy)
    model = _model(torch.float32)
    params = list(model.parameters())
    why = _cuda.why_not(params, {p: {"mu": p} for p in params})
    assert why.startswith("cupy is not importable")
    calls = []
    real = _strategies.Generic.prepare
    monkeypatch.setattr(_strategies.Generic, "prepare",
                        lambda self, *a: (calls.append(type(self).__name__), real(self, *a)))
    m1, o1, _ = _train(None, torch.float32, n=3)
    assert calls == ["Generic"] * 3  # not the CPU fused path either: these are "CUDA" tensors
    with pytest.raises(ValueError, match="fused=True on CUDA tensors needs the CuPy kernels: "
                                         "cupy is not importable"):
        _train(True, torch.float32, n=1)
    m2, o2, _ = _train(False, torch.float32, n=3)
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))


def test_ineligible_cuda_parameters_give_reasons(monkeypatch):
    _pretend_cuda(monkeypatch)
    p = torch.zeros(4, 4, dtype=torch.float16)
    assert "float32/float64" in _cuda.why_not([p], {p: {"mu": p.float()}})
    q = torch.zeros(4, 4).t()
    assert "not contiguous" in _cuda.why_not([q], {q: {"mu": q}})
    r = torch.zeros(3)
    assert "state of dtype torch.float64" in _cuda.why_not([r], {r: {"mu": r.double()}})


class _Stream:
    cuda_stream = 0


def _fake_cupy(monkeypatch, launches):
    """cupy stand-in on NumPy: DLPack views of CPU tensors, no-op device and stream contexts,
    and the engine's kernel replaced by the CPU engine with torch's sqrt (bit-identical to the
    generic path on CPU tensors, tests/test_fast_paths.py)."""
    fake = types.SimpleNamespace(
        from_dlpack=np.from_dlpack, zeros=np.zeros, ndarray=np.ndarray,
        cuda=types.SimpleNamespace(Device=lambda i: contextlib.nullcontext(),
                                   ExternalStream=lambda s: contextlib.nullcontext()))
    _pretend_cuda(monkeypatch)
    monkeypatch.setattr(_cuda, "_cupy", lambda: fake)
    monkeypatch.setattr(_cuda, "_WARM", set())
    monkeypatch.setattr(ck, "available", lambda: True)

    def kernel(config, sched, *arrays, lr=None, param=None):
        launches.append((bool(sched.sample), arrays[0].size))
        fast.absorb_and_update(config, sched, *arrays, lr=lr, param=param, sqrt=torch_sqrt)
    monkeypatch.setattr(ck, "absorb_and_update", kernel)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: _Stream())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_strategy_simulated_equals_generic_bit_for_bit(monkeypatch, dtype):
    """The strategy's orchestration with a CPU stand-in for the kernel: parameters, six state
    fields, losses and RNG position equal the generic path's, through warm-up, sample and
    quick steps, a skipped non-finite batch (undone) and dropout."""
    if not fast.AVAILABLE:
        pytest.skip("numba not installed (extra 'fast')")
    launches = []
    _fake_cupy(monkeypatch, launches)
    chosen = []
    real_make = _cuda.make
    monkeypatch.setattr(_cuda, "make", lambda *a: (lambda r: (chosen.append(r[0]), r)[1])(
        real_make(*a)))
    m1, o1, l1 = _train(None, dtype, n=11, nan_at=5)
    r1 = torch.get_rng_state()
    assert chosen and all(type(s).__name__ == "CudaFused" for s in chosen)
    assert isinstance(chosen[0], _cuda.CudaFused)
    assert len(_cuda._WARM) >= 2  # sample and quick kernels compiled in the plan phase
    # 11 batches, one skipped: 10 committed, 4 parameters each (plus the warm-up launches)
    assert len(launches) == 40 + len(_cuda._WARM)
    assert o1.skipped == 1
    monkeypatch.undo()
    m2, o2, l2 = _train(False, dtype, n=11, nan_at=5)
    assert l1[:5] == l2[:5] and l1[6:] == l2[6:] and torch.equal(r1, torch.get_rng_state())
    assert o1.t == o2.t == 10
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
        for f in FIELDS:
            assert torch.equal(o1.state[p][f], o2.state[q][f]), f


def test_cuda_strategy_raises_nonfinite_and_changes_nothing(monkeypatch):
    if not fast.AVAILABLE:
        pytest.skip("numba not installed (extra 'fast')")
    _fake_cupy(monkeypatch, [])
    model = _model(torch.float32)
    opt = Alice(model.parameters(), **HP)
    x = torch.randn(8, 3)

    def closure(bad=False):
        opt.zero_grad()
        loss = model(x).pow(2).mean() * (float("inf") if bad else 1.0)
        loss.backward()
        return loss
    for _ in range(3):
        opt.step(closure)
    before = [p.detach().clone() for p in model.parameters()]
    state = {id(p): {f: opt.state[p][f].clone() for f in FIELDS} for p in model.parameters()}
    with pytest.raises(NonFiniteGradientError):
        opt.step(lambda: closure(True))
    assert opt.t == 3
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
        assert all(torch.equal(opt.state[p][f], state[id(p)][f]) for f in FIELDS)


def test_kernel_that_does_not_compile_falls_back_in_the_plan_phase(monkeypatch):
    _fake_cupy(monkeypatch, [])

    def broken(*a, **k):
        raise RuntimeError("nvrtc: no compiler")
    monkeypatch.setattr(ck, "absorb_and_update", broken)
    model = _model(torch.float32)
    params = list(model.parameters())
    cfg = ar.AliceConfig(**HP)
    why = _cuda.why_not(params, {p: {"mu": p} for p in params}, [cfg], ar.schedule(1, cfg))
    assert "did not compile" in why and "nvrtc" in why
    _, opt, _ = _train(None, torch.float32, n=2)  # generic path, nothing half-done
    assert opt.t == 2
    with pytest.raises(ValueError, match="did not compile"):
        _train(True, torch.float32, n=1)


# -- on a GPU -----------------------------------------------------------------------------------

def _gpu():
    cp = pytest.importorskip("cupy")
    if not (ck.available() and torch.cuda.is_available()):
        pytest.skip("no CUDA device for both cupy and torch")
    return cp


def test_cuda_dlpack_round_trip_is_zero_copy():
    cp = _gpu()
    t = torch.arange(10, dtype=torch.float32, device="cuda")
    v = _cuda.dlpack_view(t, cp)
    assert v.data.ptr == t.data_ptr()
    v[3] = -5
    torch.cuda.synchronize()
    assert t[3].item() == -5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_fused_takes_the_kernels_and_matches_generic(dtype):
    """On a GPU: the default path on CUDA tensors is the CuPy kernels; against the generic path
    (torch kernels) the trajectories agree to rounding (torch multiplies by the reciprocal of a
    Python scalar divisor on CUDA; the kernels divide)."""
    _gpu()
    seen = []
    real = ck.absorb_and_update
    ck.absorb_and_update = lambda *a, **k: (seen.append(1), real(*a, **k))
    try:
        m1, o1, l1 = _train(None, dtype, n=9, device="cuda")
    finally:
        ck.absorb_and_update = real
    assert seen
    m2, o2, l2 = _train(False, dtype, n=9, device="cuda")
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(l1, l2, **tol)
    for p, q in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p, q, **tol)
        for f in FIELDS:
            torch.testing.assert_close(o1.state[p][f], o2.state[q][f], **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_fused_batch_bit_identical_to_core_on_cupy(dtype):
    """On a GPU: one batch of the strategy's kernel on torch tensors' memory equals the core run
    on CuPy arrays of the same values, bit for bit (the engine contract)."""
    cp = _gpu()
    rng = np.random.default_rng(0)
    n = 5003
    st = [rng.standard_normal(n).astype(dtype) for _ in range(6)]
    for k in (3, 4, 5):
        st[k] = np.abs(st[k])
    g = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
    cfg = ar.AliceConfig(lr=0.01, betas=(0.75, 0.99))
    for t in (12, 13):
        sched = ar.schedule(t, cfg)
        tens = [torch.from_numpy(a.copy()).cuda() for a in st]
        grads = [torch.from_numpy(a).cuda() for a in g]
        p = torch.empty_like(tens[0])
        views = [_cuda.dlpack_view(x, cp) for x in tens]
        gv = [_cuda.dlpack_view(x, cp) for x in grads]
        ck.absorb_and_update(cfg, sched, *views, gv[2], *(gv[:2] if sched.sample else ()),
                             lr=0.01, param=_cuda.dlpack_view(p, cp))
        core = ar.AliceState(t - 1, *([cp.asarray(a)] for a in st), 0)
        new = (ar.absorb_sample(core, sched, [gv[0]], [gv[1]], [gv[2]], cfg, 0.01)
               if sched.sample else ar.absorb_quick(core, sched, [gv[2]], cfg))
        new = ar.apply_update(new, sched, cfg, 0.01)
        for f, x in zip(FIELDS, tens):
            assert np.array_equal(x.cpu().numpy().view(f"u{x.element_size()}"),
                                  cp.asnumpy(getattr(new, f)[0]).view(f"u{x.element_size()}")), f
        assert torch.equal(p, tens[0])
