"""Fused CuPy kernels: one pass over the state per batch (a GPU fast path; optional).

The functional core already runs on CuPy arrays as they are (docs/spec/design.md), but it
launches one kernel per elementary operation and allocates a temporary for each: ~40 launches
and ~100 words of memory traffic per element and batch. Here a batch of one parameter is one
``cupy.ElementwiseKernel`` over the structure-of-arrays state (mu, nu, G, V, H, R separate
arrays), updated in place: it reads g0, G, V, H, R, mu (and g+, g- on a sample step) and
writes G, V, (H, R), mu, nu and optionally the parameter, ~11 words per element on a quick
batch and ~15 on a sample batch, the memory-traffic floor.

Same operations as the core, in the same order, on the same operands, so the results are
bit-identical to the core run on CuPy arrays (tests/test_fast_paths.py, on a GPU):

- every +, -, *, / is written with the round-to-nearest intrinsics (``__fadd_rn`` ... for
  float32, ``__dadd_rn`` ... for float64), which the compiler never contracts into fused
  multiply-adds (the core's separate kernels cannot be contracted either);
- sqrt is ``__fsqrt_rn``/``__dsqrt_rn``, IEEE-rounded like CuPy's ``sqrt`` (CuPy does not
  compile with fast math);
- Python float scalars are rounded to the state dtype once on the host, as CuPy does when it
  passes a Python float to a float32 kernel;
- ``where`` and comparisons are the same selects.

Import cost is nothing: cupy is imported on first use, so this module can be imported (and its
code generation tested) without a GPU. Kernels are generated per (dtype, step kind,
hyperparameter switches) and cached.
"""

from __future__ import annotations

import numpy as np

from alice_ref.core import AliceConfig, Schedule
from alice_ref.engines.contract import SCALARS, pack_scalars

__all__ = ["SCALARS", "kernel_source", "absorb_and_update", "probe_points", "available"]

_KERNELS: dict = {}

_OPS = {  # dtype -> (ctype, add, sub, mul, div, sqrt, abs)
    "float32": ("float", "__fadd_rn", "__fsub_rn", "__fmul_rn", "__fdiv_rn", "__fsqrt_rn",
                "fabsf"),
    "float64": ("double", "__dadd_rn", "__dsub_rn", "__dmul_rn", "__ddiv_rn", "__dsqrt_rn",
                "fabs"),
}

def available() -> bool:
    """True when cupy imports and sees a CUDA device (never raises).

    Returns:
        Whether the fused CuPy path can run here.

    Example:
        A bool on every machine (False without cupy or a GPU):

        >>> isinstance(available(), bool)
        True
    """
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - any failure means "no GPU path"
        return False


def _key(dtype: str, sample: bool, update: bool, config: AliceConfig, param: bool):
    return (dtype, sample, update, config.hess_comp, config.grad_glass, config.limit_method,
            config.w1 != 0.0, config.w2 != 0.0, param)


def kernel_source(dtype: str, sample: bool, update: bool, config: AliceConfig,
                  param: bool = False) -> tuple[str, str, str, str]:
    """(in_params, out_params, operation, preamble) of the fused kernel for this case.

    Each line mirrors a line of the core (alice.absorb_curvature, alice.absorb_gradient,
    alice.alice_update -> steps._bounded_step), in the same order: the R3 estimators on a
    sample step, the averages, then the R5 step clipped by the R6 bounds and the R7 update.
    Pure code generation: needs neither cupy nor a GPU.

    Args:
        dtype: 'float32' or 'float64'.
        sample: a sample step (inputs g+ and g-).
        update: include the state update.
        config: the hyperparameters (only the switches hess_comp, grad_glass, limit_method,
            w1 != 0 and w2 != 0 shape the code; values are kernel arguments, :data:`SCALARS`).
        param: add an output ``p`` that receives mu.

    Returns:
        (in_params, out_params, operation, preamble), the arguments of
        ``cupy.ElementwiseKernel``.

    Raises:
        TypeError: a dtype other than float32 and float64.

    Example:
        A float32 sample step: three gradients in, the six state arrays out, round-to-nearest
        intrinsics (no fused multiply-add):

        >>> from alice_ref import AliceConfig
        >>> ins, outs, op, pre = kernel_source("float32", True, True, AliceConfig())
        >>> ins.split(", ")[:3], outs
        (['T g0', 'T gp', 'T gm'], 'T mu, T nu, T G, T V, T H, T R')
        >>> "__fadd_rn" in pre, "__fsqrt_rn" in pre, "R = EMA(R, rho_hat, b3);" in op
        (True, True, True)
    """
    if dtype not in _OPS:
        raise TypeError(f"the fused CuPy kernels support float32 and float64 state, got {dtype}")
    T, add, sub, mul, div, sqrt, fabs = _OPS[dtype]
    pre = (f"#define ADD(a, b) {add}((a), (b))\n#define SUB(a, b) {sub}((a), (b))\n"
           f"#define MUL(a, b) {mul}((a), (b))\n#define DIV(a, b) {div}((a), (b))\n"
           f"#define SQRT(a) {sqrt}(a)\n#define ABS(a) {fabs}(a)\n"
           f"#define EMA(S, x, beta) ADD((x), MUL((beta), SUB((S), (x))))\n")
    ins = ["T g0"] + (["T gp", "T gm"] if sample else []) + [f"T {s}" for s in SCALARS]
    outs = ["T mu", "T nu", "T G", "T V", "T H", "T R"] + (["T p"] if param else [])
    c = config
    L = [f"const {T} one = 1;"]  # zero and two arrive with the scalars (contract.SCALARS)
    if sample:  # absorb_curvature: H <- EMA_b3(H, |h| + w2 or h^2 + w2^2), R <- EMA_b3(R, rho)
        L.append(f"{T} hh = DIV(SUB(gp, gm), two_sigma);")  # (g+ - g-) / (2 sigma)
        if c.hess_comp == "rms":
            L.append("hh = ADD(MUL(hh, hh), w2sq);")
        else:
            L.append("hh = ADD(ABS(hh), w2);")
        L.append("H = EMA(H, hh, b3);")
        L.append(f"{T} dd = SUB(DIV(ADD(gp, gm), two), g0);")  # (g+ + g-)/2 - g0
        L.append(f"{T} rho_hat = DIV(MUL(MUL(two, dd), dd), sigma);")  # 2 d d / sigma
        L.append("R = EMA(R, rho_hat, b3);")
    # absorb_gradient (uses nu before this batch's update)
    L.append(f"{T} g = g0;")
    if c.w1 != 0.0:  # w1 * where(nu < 0, -1, 1) is exactly -w1 or +w1
        L.append("g = ADD(g, (nu < zero) ? -w1 : w1);")
    if c.w2 != 0.0:
        L.append("g = ADD(g, MUL(w2, nu));")
    L.append("G = EMA(G, g, b1);")
    L.append("V = EMA(V, MUL(g0, g0), b2);")
    if update:  # alice_update -> _bounded_step (R5, R6) -> R7
        h = {"zero": "zero", "abs": "H", "rms": "SQRT(H)"}[c.hess_comp]
        L.append(f"const {T} h = {h};")
        L.append(f"const {T} rho = {'R' if c.grad_glass else 'zero'};")
        L.append(f"const {T} a = ABS(G);")
        L.append(f"const {T} alpha = DIV(MUL(alpha_c, rho), ADD(a, eps));")
        L.append(f"const {T} h_opt = ADD(ADD(ADD(alpha, h), "
                 f"SQRT(MUL(alpha, ADD(alpha, MUL(two, h))))), eps);")
        L.append(f"{T} d = DIV(a, h_opt);")
        if c.limit_method == "fixed":
            L.append(f"const {T} lo_b = MUL(lo, one), hi_b = MUL(hi, one);")
        else:
            f = "a" if c.limit_method == "sgdm" else "DIV(a, ADD(SQRT(V), eps))"
            L.append(f"const {T} f = {f};")
            L.append(f"const {T} lo_b = MUL(lo, f), hi_b = MUL(hi, f);")
        L.append("d = (d < lo_b) ? lo_b : ((d < hi_b) ? d : hi_b);")
        L.append(f"const {T} delta = (G > zero) ? -d : d;")
        L.append(f"const {T} mu0 = mu;")
        L.append("mu = ADD(mu0, MUL(phi, delta));")
        L.append("nu = ADD(mu0, MUL(omega, delta));")
    if param:
        L.append("p = mu;")
    return ", ".join(ins), ", ".join(outs), "\n".join(L), pre


def _kernel(dtype, sample, update, config, param):
    key = _key(dtype, sample, update, config, param)
    k = _KERNELS.get(key)
    if k is None:
        import cupy
        ins, outs, op, pre = kernel_source(dtype, sample, update, config, param)
        name = f"alice_{'sample' if sample else 'quick'}{'_update' if update else ''}_{dtype}"
        k = cupy.ElementwiseKernel(ins, outs, op, name, preamble=pre, no_return=True)
        _KERNELS[key] = k
    return k


def _check(name, x, ref):
    import cupy
    if not isinstance(x, cupy.ndarray):
        raise TypeError(f"{name} must be a cupy array, got {type(x).__name__}")
    if x.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {x.dtype}, the state has {ref.dtype}")
    if x.shape != ref.shape:
        raise ValueError(f"{name} has shape {x.shape}, the state has {ref.shape}")
    return x


def absorb_and_update(config: AliceConfig, sched: Schedule, mu, nu, G, V, H, R, g_zero,
                      g_plus=None, g_minus=None, *, lr: float | None = None,
                      param=None) -> None:
    """One batch of one parameter in one kernel launch, in place on CuPy arrays: the core's
    ``absorb_sample`` (if ``g_plus``/``g_minus`` are given) or ``absorb_quick``, then
    ``apply_update`` (if ``sched.update``); ``param`` (optional) receives mu. The arguments
    mean what they mean in :func:`alice_ref.engines.cpu.absorb_and_update` (the same
    arithmetic, R3, R5, R6, R7). mu and nu must not share memory.

    Args:
        config: the hyperparameters.
        sched: the batch's schedule.
        mu: centre (cupy array), updated in place.
        nu: look-ahead, updated in place.
        G: gradient average, updated in place.
        V: squared-gradient average, updated in place.
        H: curvature average, updated in place.
        R: glass-density average, updated in place.
        g_zero: gradient at nu.
        g_plus: gradient at nu + sigma z (sample step), or None.
        g_minus: gradient at nu - sigma z (sample step), or None.
        lr: current learning rate (None: config.lr).
        param: optional cupy array that receives mu.

    Raises:
        TypeError: only one of g_plus and g_minus, an array that is not a cupy array or has
            another dtype than mu.
        ValueError: a shape that differs from mu's, or mu and nu sharing memory.
        Nothing changes when it raises.

    Example:
        The arguments are checked before cupy is needed; the launch itself needs a GPU:

        >>> import numpy as np
        >>> from alice_ref import AliceConfig, schedule
        >>> c = AliceConfig()
        >>> x = np.zeros(2)
        >>> absorb_and_update(c, schedule(1, c), x, x, x, x, x, x, x, g_plus=x)
        Traceback (most recent call last):
        ...
        TypeError: a sample step needs both g_plus and g_minus
        >>> import cupy  # doctest: +SKIP
        >>> mu, nu, G, V, H, R = (cupy.zeros(2) for _ in range(6))  # doctest: +SKIP
        >>> absorb_and_update(c, schedule(1, c), mu, nu, G, V, H, R, cupy.ones(2),
        ...                   cupy.ones(2), cupy.ones(2))  # doctest: +SKIP
        >>> G.tolist(), H.tolist()  # batch 1: G = g0, H = |g+ - g-| / (2 sigma)  # doctest: +SKIP
        ([1.0, 1.0], [0.0, 0.0])
    """
    sample = g_plus is not None or g_minus is not None
    if sample and (g_plus is None or g_minus is None):
        raise TypeError("a sample step needs both g_plus and g_minus")
    st = [_check(n, x, mu) for n, x in
          (("mu", mu), ("nu", nu), ("G", G), ("V", V), ("H", H), ("R", R))]
    grads = [_check("g_zero", g_zero, mu)]
    if sample:
        grads += [_check("g_plus", g_plus, mu), _check("g_minus", g_minus, mu)]
    if param is not None:
        _check("param", param, mu)
    lo_m, lo_n = mu.data.ptr, nu.data.ptr
    if lo_m < lo_n + nu.nbytes and lo_n < lo_m + mu.nbytes:
        raise ValueError("mu and nu share memory; the fused kernel updates both in place")
    dtype = str(mu.dtype)
    args = grads + list(pack_scalars(config, sched, lr, mu.dtype)) + st + (
        [param] if param is not None else [])
    _kernel(dtype, sample, bool(sched.update), config, param is not None)(*args)


def probe_points(nu, z, sigma: float):
    """(nu + sigma z, nu - sigma z) in one launch: the core's probe_points in the state dtype.

    Args:
        nu: the look-ahead (a cupy array).
        z: the Rademacher signs (R2) as a cupy array of nu's dtype and shape.
        sigma: the perturbation length (rounded to nu's dtype once).

    Returns:
        The pair (nu + sigma z, nu - sigma z) of new cupy arrays.

    Raises:
        TypeError: z not a cupy array of nu's dtype.
        ValueError: z of another shape.

    Example:
        The values, as the core gives them; the kernel needs a GPU:

        >>> import numpy as np
        >>> from alice_ref import init, probe_points as core_probe_points
        >>> plus, minus, _ = core_probe_points(init([np.zeros(2)]), [np.array([1.0, -1.0])], 0.5)
        >>> plus[0].tolist(), minus[0].tolist()
        ([0.5, -0.5], [-0.5, 0.5])
        >>> import cupy  # doctest: +SKIP
        >>> pair = probe_points(cupy.zeros(2), cupy.asarray([1.0, -1.0]), 0.5)  # doctest: +SKIP
        >>> [a.tolist() for a in pair]  # doctest: +SKIP
        [[0.5, -0.5], [-0.5, 0.5]]
    """
    import cupy
    _check("z", z, nu)
    dtype = str(nu.dtype)
    key = ("probe", dtype)
    k = _KERNELS.get(key)
    if k is None:
        T, add, sub, mul, *_ = _OPS[dtype]
        k = cupy.ElementwiseKernel(
            "T nu, T z, T sigma", "T plus, T minus",
            f"const T s = {mul}(sigma, z); plus = {add}(nu, s); minus = {sub}(nu, s);",
            f"alice_probe_{dtype}")
        _KERNELS[key] = k
    return k(nu, z, np.dtype(dtype).type(sigma))
