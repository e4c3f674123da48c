"""The fused path of alice_torch for CUDA tensors: :mod:`alice_ref.engines.cuda` (one CuPy
``ElementwiseKernel`` per batch and parameter) on the tensors' own memory, reached without a
copy through DLPack (``cupy.from_dlpack``).

:class:`CudaFused` is a strategy of :func:`alice_torch._strategies.choose` (the interface is
described there). It keeps what the generic path does for everything but the update: the same
probe draws on the parameters' device (docs/spec/algorithm.md#reference-compatible-randomness),
the same evaluation points (:meth:`Generic.points` and :meth:`Generic.load_point`), the same
finiteness check (one synchronisation per device); the update (absorb, Alg. 3, parameters at
mu) is one kernel per parameter in place on the state, instead of ~40 torch kernels and new
tensors per parameter.

Equality: the kernels are bit-identical to the functional core run on CuPy arrays (the engine
contract, :mod:`alice_ref.engines.contract`). Against the generic path on torch CUDA tensors
they agree to rounding: torch divides a CUDA tensor by a Python scalar as a multiplication by
its reciprocal (``(g+ - g-) / (2 sigma)`` and ``... / sigma`` of R3), where the kernel divides
(``__fdiv_rn``), so H and R can differ by 1 ulp per batch; everything else is the same IEEE
operations. The GPU tests (tests/test_torch_cuda_path.py) check bit-identity against the core
on CuPy arrays and ``rtol`` 1e-6 (float32) / 1e-14 (float64) against the generic path.

Chosen when every trainable parameter is a C-contiguous float32/float64 CUDA tensor with
state of its dtype and device, cupy imports, sees the device, and the batch's kernels compile
(compiled in the plan phase, before anything changes: the commit cannot fail); otherwise the
generic path runs (``fused=True`` raises with the reason, :func:`why_not`).
"""

from __future__ import annotations

import torch

from alice_ref.core import FIELDS

from ._numerics import touched

__all__ = ["CudaFused", "why_not", "dlpack_view", "cuda_params"]

_DTYPES = (torch.float32, torch.float64)
_WARM: set = set()  # kernel keys compiled (and launched once) in this process


def cuda_params(params) -> bool:
    """Whether every parameter (at least one) is a CUDA tensor: the batches this module may
    take."""
    return bool(params) and all(p.device.type == "cuda" for p in params)


def _cupy():
    """cupy, or ImportError with the reason."""
    try:
        import cupy
    except Exception as e:  # noqa: BLE001 - any failure to import means no CuPy path
        raise ImportError(f"cupy is not importable ({type(e).__name__}: {e}; pip install "
                          f"cupy-cuda12x)") from None
    return cupy


def dlpack_view(x, xp):
    """The flat array of namespace ``xp`` (``cupy``, or ``numpy`` for CPU tensors) on the
    memory of tensor ``x``, through DLPack: no copy, writes go to the tensor.

    Raises:
        ValueError: ``x`` not contiguous (a flat view would not be its memory order).
    """
    if not x.is_contiguous():
        raise ValueError(f"a DLPack view needs a contiguous tensor, got strides {x.stride()}")
    return xp.from_dlpack(x.detach()).reshape(-1)


def why_not(params, states, configs=(), sched=None) -> str | None:
    """None when :class:`CudaFused` can run this batch, else why not (the fallback's reason,
    and the message of ``fused=True``). With ``configs`` and ``sched`` the batch's kernels are
    compiled too (:func:`_warm`), so a missing compiler shows here, in the plan phase."""
    if not cuda_params(params):
        return "not every trainable parameter is a CUDA tensor"
    for p in params:
        mu = states[p]["mu"]
        if p.dtype not in _DTYPES or p.is_sparse or not p.is_contiguous():
            return (f"a parameter of shape {tuple(p.shape)}, {p.dtype}"
                    f"{'' if p.is_contiguous() else ', not contiguous'} (the fused CUDA path "
                    f"takes dense C-contiguous float32/float64 tensors)")
        if mu.dtype != p.dtype or mu.device != p.device:
            return f"state of dtype {mu.dtype} on {mu.device} for a {p.dtype} parameter"
    try:
        cupy = _cupy()
    except ImportError as e:
        return str(e)
    from alice_ref.engines import cuda as ck
    if not ck.available():
        return "cupy sees no CUDA device"
    if sched is not None:
        try:
            for cfg in configs:
                for dt in sorted({str(p.dtype).replace("torch.", "") for p in params}):
                    _warm(cupy, ck, cfg, sched, dt)
        except Exception as e:  # noqa: BLE001 - a kernel that cannot compile: no fused path
            return f"the CuPy kernels did not compile ({type(e).__name__}: {e})"
    return None


def _warm(cupy, ck, cfg, sched, dtype) -> None:
    """Compile (by one launch on scratch arrays of one element) the kernel this batch needs."""
    key = ck._key(dtype, bool(sched.sample), bool(sched.update), cfg, True)
    if key in _WARM:
        return
    x = [cupy.zeros(1, dtype) for _ in range(10)]
    g = x[6:9] if sched.sample else x[6:7]
    ck.absorb_and_update(cfg, sched, *x[:6], *g, lr=cfg.lr, param=x[9])
    _WARM.add(key)


def make(generic_cls, opt, groups, configs, sigmas, sched, states):
    """A :class:`CudaFused` strategy built on ``generic_cls`` (:class:`_strategies.Generic`),
    or None with the reason (:func:`why_not`)."""
    params = [p for g in groups for p in g.params]
    why = why_not(params, states, configs, sched)
    if why is not None:
        return None, why
    cls = _CLASSES.get(generic_cls)
    if cls is None:
        cls = _CLASSES[generic_cls] = type("CudaFused", (CudaFused, generic_cls), {})
    return cls(opt, groups, configs, sigmas, sched, states), None


_CLASSES: dict = {}


class CudaFused:
    """Mixed into the generic strategy (:func:`make`): its points, loading and checks; the
    gradients taken over (as the CPU fused path does) and the update in place through
    :func:`alice_ref.engines.cuda.absorb_and_update`."""

    def __init__(self, opt, groups, configs, sigmas, sched, states):
        from . import _strategies
        params = [p for g in groups for p in g.params]
        # every state field with its own contiguous memory (the kernel updates them in place)
        states = _strategies._own_state(states, params)
        super().__init__(opt, groups, configs, sigmas, sched, states)
        self.params = params
        self.cupy = _cupy()
        from alice_ref.engines import cuda as ck
        self.ck = ck
        self.views = [[(dlpack_view(p, self.cupy),)
                       + tuple(dlpack_view(states[p][f], self.cupy) for f in FIELDS)
                       for p in g.params] for g in groups]
        self.grads = None

    @staticmethod
    def gradient(g, p):
        """The gradient tensor itself when nothing else can write to it (:func:`_own_gradient`)."""
        return _own_gradient(g, p)

    def prepare(self, g0, gp=None, gm=None) -> None:
        """The gradients' CuPy views, per parameter (nothing is written)."""
        view = lambda x: dlpack_view(x, self.cupy)  # noqa: E731
        self.grads = [[None if x is None else view(x[k]) for x in (g0, gp, gm)]
                      for k in range(len(self.params))]

    def commit(self) -> None:
        """Steps 3-6 in place, one kernel per parameter on torch's current stream of the
        parameter's device; then tell autograd."""
        cp, k = self.cupy, 0
        for g, vs, cfg, sigma in zip(self.groups, self.views, self.configs, self.sigmas):
            for p, v in zip(g.params, vs):
                stream = torch.cuda.current_stream(p.device)
                with cp.cuda.Device(p.device.index), cp.cuda.ExternalStream(
                        stream.cuda_stream):
                    self.ck.absorb_and_update(cfg, self.sched, *v[1:], *self.grads[k],
                                              lr=sigma, param=v[0])
                k += 1
        touched(self.params)


def _own_gradient(g, p):
    """The gradient itself when nothing else writes to it, else a contiguous copy in the
    parameter's dtype (as :meth:`alice_torch._strategies.Fused.gradient`)."""
    if (g._base is not None or not g.is_contiguous() or g.dtype != p.dtype
            or g.untyped_storage().nbytes() != g.numel() * g.element_size()):
        g = g.to(dtype=p.dtype, memory_format=torch.contiguous_format, copy=True)
    return g
