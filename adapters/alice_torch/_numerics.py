"""The torch-specific numerics of alice_torch: the state dtype rule, torch's square root as the
CPU engine's ``sqrt=`` hook, NumPy views, and the two finiteness checks of the gradients.

Nothing here is a formula of the algorithm (those are in :mod:`alice_ref`); these are the
places where torch's own arithmetic must be matched bit for bit, or is checked cheaply.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from alice_ref.core import init as _core_init

__all__ = ["state_dtype", "torch_sqrt", "numpy_view", "touched", "first_nonfinite",
           "first_nonfinite_cpu", "SERIAL"]

SERIAL = 32768  # at::internal::GRAIN_SIZE: smaller element-wise ops never fork threads

_STATE_DTYPES: dict = {}
_ZERO_MASKS = threading.local()


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The core's state dtype for parameters of ``dtype`` (float32 for float16/bfloat16, else
    the parameter's: :func:`alice_ref.core.state_dtype`), asked of the core once per dtype."""
    if dtype not in _STATE_DTYPES:
        _STATE_DTYPES[dtype] = _core_init([torch.empty(0, dtype=dtype)]).mu[0].dtype
    return _STATE_DTYPES[dtype]


def torch_sqrt(x, out) -> None:
    """torch's square root on NumPy arrays (no copy), the ``sqrt=`` hook of
    :func:`alice_ref.engines.cpu.absorb_and_update`: the generic path computes sqrt with torch,
    whose CPU result is not always the correctly rounded one NumPy gives, and the fused path
    must agree with it bit for bit.

    torch's CPU sqrt is ~4x slower on zeros than on other numbers (common here: sqrt(alpha
    (alpha + 2h)) is 0 wherever rho = 0 and h = 0), so a block of zeros is copied (sqrt(0) =
    0), and a block with some zeros gets 1 in their place and 1 taken off the result:
    sqrt(1) - 1 = 0 = sqrt(0), exactly. (The operands are never -0: alpha, h and V are sums of
    squares, magnitudes and +0.)"""
    if x.size > SERIAL:  # pieces below torch's grain size run inline, on this thread
        for s in range(0, x.size, SERIAL):
            torch_sqrt(x[s:s + SERIAL], out[s:s + SERIAL])
        return
    if np.minimum.reduce(x) == 0:
        if np.maximum.reduce(x) == 0:  # all zeros (e.g. rho = h = 0 throughout): sqrt(0) = 0
            if out is not x:
                np.copyto(out, x)
            return
        masks = getattr(_ZERO_MASKS, "buf", None)
        if masks is None or masks.size < x.size:
            masks = _ZERO_MASKS.buf = np.empty(SERIAL, np.bool_)
        q = masks[:x.size]
        np.equal(x, 0, q)
        np.add(x, q, out)
        torch.from_numpy(out).sqrt_()
        np.subtract(out, q, out)
        return
    torch.sqrt(torch.from_numpy(x), out=torch.from_numpy(out))


def numpy_view(x) -> np.ndarray:
    """The flat NumPy view of a contiguous CPU tensor (no copy; writes go to the tensor)."""
    return x.detach().numpy().reshape(-1)


def touched(params) -> None:
    """Tell autograd the parameters changed (they were written through NumPy views)."""
    for p in params:
        torch.autograd.graph.increment_version(p)


def first_nonfinite(grads) -> int | None:
    """Index of the first gradient with a NaN/Inf element, or None; one device
    synchronisation per device (for gradients on accelerators)."""
    flags = [torch.isfinite(g).all() for g in grads]
    by_device: dict = {}
    for f in flags:
        by_device.setdefault(f.device, []).append(f)
    if all(bool(torch.stack(fs).all()) for fs in by_device.values()):
        return None
    return next(k for k, f in enumerate(flags) if not bool(f))


def first_nonfinite_cpu(grads) -> int | None:
    """:func:`first_nonfinite` for CPU tensors: one cheap sum per tensor, the exact test only
    when the sum is not finite (a NaN/Inf element makes it so; so may an overflow of finite
    ones)."""
    for k, g in enumerate(grads):
        if not math.isfinite(g.sum().item()) and not bool(torch.isfinite(g).all()):
            return k
    return None
