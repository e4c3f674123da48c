"""NumPy fast path: Alice's per-element batch update in place, cache-blocked, no allocations.

The functional core (:mod:`alice_ref.core.batch`) is the definition: it builds a new array for every
intermediate, so one batch of a parameter of n elements streams ~100 n words through memory and
allocates ~40 arrays of n elements. This module performs *the same floating-point operations, in
the same order, on the same operands* (so the results are bit-identical, see below) but

- in place, into the state arrays the caller owns (``ufunc(..., out=...)``), and
- one cache-sized block of elements at a time (``chunk`` elements), with a few preallocated
  scratch blocks (a :class:`Workspace`), so that only the state, the gradients and the
  parameter cross the memory bus: 11 words per element on a quick batch (read g0, G, V, H, R,
  mu; write G, V, mu, nu, parameter) and 15 on a sample batch, instead of ~100;
- optionally on several threads (``threads=``).

Two engines do this (``engine=``, :data:`ENGINES`):

- ``"numba"`` (the default when numba is installed, extra ``fast``): one compiled pass per block
  (:mod:`alice_ref.engines._cpu_kernels`), vectorised loops with the same IEEE operations; it runs near the
  memory-traffic floor (~70% of the best streaming rate of one core, above the STREAM-triad
  rate measured with NumPy; docs/performance.md) and releases the GIL, so threads scale;
- ``"numpy"``: ~32 ufunc passes over each cached block (plus two square roots), each ~0.07-0.1
  ns per element on a modern core, so on a core that streams ~50 GB/s it is compute-bound at
  ~25-30% of the best streaming rate; ~5x the generic core.

It is NumPy-only (``out=`` and views are not part of the array API). Other backends use the core
as it is, or their own compiler (``jax.jit``), or the fused CuPy kernels of
:mod:`alice_ref.engines.cuda`. The PyTorch adapter uses this module on the NumPy views of CPU
tensors (zero copy).

Equality with the core (tests/test_fast_paths.py): bit-identical results for float32 and
float64, for every hyperparameter combination, on random data and on the edge values of
DESIGN.md (G = 0, R = 0, H = 0, tiny and huge magnitudes, V = 0), for every state the algorithm
can reach (V, H, R >= 0; a hand-made state with negative V, H or R may differ in the sign of a
zero). Three places of the "numpy" engine use a different but provably equal formulation,
argued where they occur (the "numba" engine writes the core's expressions literally):

- the sign of the step, ``where(G > 0, -d, d)``, flips the IEEE sign bit (XOR) where G > 0,
  which is what negation does, for every value including NaN, inf and zeros;
- the clip ``where(d < lo, lo, where(d < hi, d, hi))`` is ``fmax(fmin(d, hi), lo)``, equal
  whenever lo <= hi and the upper bound is not NaN (lr_min <= lr_max and f >= 0 make it so); a
  block whose upper bound has a NaN (lr_max = 0 with an overflowing adam ratio) falls back to
  masked copies that are the ``where`` literally; with lr_min = 0 the lower clip is the
  identity on d >= 0 and is skipped;
- the probe sign sigma z with z = -1 where u < 0.5 else +1 is built as sigma (1 - 2 [u < 0.5]),
  the same two values +-sigma, exactly.

``sqrt`` may be replaced (keyword ``sqrt=``) by another square root with the same contract
``sqrt(x, out)``; the PyTorch adapter passes torch's own (on CPU torch's sqrt is not correctly
rounded: it differs from NumPy's in ~1 element in 6 by one unit in the last place, and the
adapter must agree with the core run on torch tensors).
"""

from __future__ import annotations

import numpy as np

from alice_ref.core.batch import AliceConfig, AliceState, Schedule
from alice_ref.maths.step import ALPHA_COEFF

__all__ = ["DEFAULT_CHUNK", "ENGINES", "Workspace", "absorb_and_update", "probe_point",
           "negative_mask", "update_state", "state_words"]

#: Elements per block: 65536 float32 elements are 256 KiB per array, so the dozen arrays a block
#: touches (state, gradients, scratch) stay in the L2/L3 caches while the Python cost of a block
#: (~35 ufunc calls of ~0.4 us) stays small against its arithmetic. Measured (benchmarks/bench.py
#: and docs/performance.md): 16384 is ~15% slower, 131072 no faster.
DEFAULT_CHUNK = 65536

_N_SCRATCH = 5  # float scratch blocks: a, alpha / h_opt / d, bounds and temporaries
_N_MASKS = 2


class Workspace:
    """Preallocated scratch blocks, one set per (dtype, thread slot), reused across calls.

    One workspace must not be used by two calls at the same time (give each thread that calls
    this module its own).

    Args:
        chunk: elements per block (an integer >= 1; default :data:`DEFAULT_CHUNK`).

    Raises:
        ValueError: chunk is not an integer >= 1.

    Example:
        Blocks are made on first use of a dtype, then reused:

        >>> import numpy as np
        >>> ws = Workspace(chunk=4)
        >>> ws.chunk, ws.get(np.float32) is ws.get(np.float32)
        (4, True)
    """

    def __init__(self, chunk: int = DEFAULT_CHUNK):
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
        self.chunk = int(chunk)
        self._sets: dict = {}

    def get(self, dtype, slot: int = 0):
        """The scratch blocks of ``dtype`` for one thread slot, made on first use.

        Args:
            dtype: float32 or float64 (anything ``np.dtype`` accepts).
            slot: the thread slot (0 for the calling thread).

        Returns:
            (float scratch blocks, bool mask blocks, unsigned bits block): lists of 5 arrays of
            ``dtype`` and 2 bool arrays, and one uint32/uint64 array (the dtype's width), each
            of ``chunk`` elements.

        Raises:
            TypeError: a dtype other than float32 and float64.

        Example:
            The blocks of float32, chunk 4:

            >>> import numpy as np
            >>> floats, masks, bits = Workspace(chunk=4).get(np.float32)
            >>> len(floats), floats[0].shape, floats[0].dtype, len(masks), bits.dtype
            (5, (4,), dtype('float32'), 2, dtype('uint32'))
        """
        dtype = np.dtype(dtype)
        s = self._sets.get((dtype, slot))
        if s is None:
            if dtype not in (np.float32, np.float64):
                raise TypeError(f"the NumPy fast path supports float32 and float64 state, got "
                                f"{dtype}")
            s = ([np.empty(self.chunk, dtype) for _ in range(_N_SCRATCH)],
                 [np.empty(self.chunk, np.bool_) for _ in range(_N_MASKS)],
                 np.empty(self.chunk, np.uint32 if dtype == np.float32 else np.uint64))
            self._sets[(dtype, slot)] = s
        return s


_DEFAULT_WS = Workspace()

try:  # the compiled pass (extra ``fast``); without numba the ufunc path runs
    from alice_ref.engines import _cpu_kernels as _numba
except ImportError:  # pragma: no cover - depends on the environment
    _numba = None

#: The engines :func:`absorb_and_update` can use here: "numba" (one compiled pass, when numba
#: is installed) and "numpy" (in-place ufuncs), the first being the default.
ENGINES = ("numba", "numpy") if _numba is not None else ("numpy",)


def _check_engine(engine) -> str:
    if engine is None:
        return ENGINES[0]
    if engine not in ("numba", "numpy"):
        raise ValueError(f"engine must be 'numba', 'numpy' or None, got {engine!r}")
    if engine not in ENGINES:
        raise ValueError("engine='numba' needs numba (pip install 'alice-ref[fast]')")
    return engine
_POOL = [None, 0]  # a ThreadPoolExecutor and its size, made on first use of threads > 1


def _check_threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    return int(threads)


def _in_parts(n: int, chunk: int, threads: int, body) -> None:
    """body(start, stop, slot) over [0, n): inline, or split at block boundaries over
    ``threads`` threads (NumPy releases the GIL inside each ufunc loop)."""
    blocks = -(-n // chunk)
    parts = min(threads, blocks // 2)
    if parts <= 1:
        body(0, n, 0)
        return
    if _POOL[1] < parts - 1:
        from concurrent.futures import ThreadPoolExecutor
        _POOL[:] = [ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="alice_fast"),
                    parts - 1]
    per = -(-blocks // parts) * chunk
    futures = [_POOL[0].submit(body, s, min(s + per, n), i)
               for i, s in enumerate(range(per, n, per), start=1)]
    try:
        body(0, min(per, n), 0)
    finally:
        for f in futures:
            f.result()


def _np_sqrt(x, out):
    return np.sqrt(x, out=out)


def _flat(name, x, dtype, n):
    """A 1-D view of ``x`` (no copy), checked: NumPy, C-contiguous, ``dtype``, n elements."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype}, the state has {dtype}")
    if x.size != n:
        raise ValueError(f"{name} has {x.size} elements, the state has {n}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (the fast path works on flat views)")
    return x.reshape(-1)


def _writable(name, x):
    if not x.flags.writeable:
        raise ValueError(f"{name} must be writeable (it is updated in place)")
    return x


def absorb_and_update(config: AliceConfig, sched: Schedule, mu, nu, G, V, H, R, g_zero,
                      g_plus=None, g_minus=None, *, lr: float | None = None, param=None,
                      workspace: Workspace | None = None, sqrt=None, threads: int = 1,
                      engine: str | None = None) -> None:
    """One batch of one parameter, in place: the core's ``absorb_sample`` (if ``g_plus`` and
    ``g_minus`` are given) or ``absorb_quick``, then ``apply_update`` (if ``sched.update``).

    Same arguments and meaning as the core (ALICE.md steps 3-5; R3, R5, R6, R7): ``lr`` is the
    current learning rate (sigma and the bounds' scale; None -> config.lr). mu, nu, G, V, H, R
    are NumPy arrays of the state dtype (float32/float64), C-contiguous, updated in place;
    gradients are arrays of the same dtype and size. ``param``: optional array of the same
    dtype that receives mu after the batch (the model's parameter). ``threads``: blocks are
    shared among this many threads (1: the calling thread only). Results are bit-identical to
    the core's on NumPy arrays (module docstring) for every state the algorithm can reach
    (V, H, R >= 0). Each state array must have its own memory (the state of
    :func:`alice_ref.init` uses one zeros array for G, V, H and R: copy them first).

    The arithmetic: G <- EMA_b1(G, g0 + w1 sign(nu) + w2 nu), V <- EMA_b2(V, g0^2); on a sample
    step H <- EMA_b3(H, |h| + w2 or h^2 + w2^2) with h = (g+ - g-) / (2 sigma) and
    R <- EMA_b3(R, 2 d^2 / sigma) with d = (g+ + g-)/2 - g0 (R3); then, if ``sched.update``,
    d = |G| / h_opt (R5) clipped to [lo f, hi f] (R6), mu <- mu + phi delta and
    nu <- mu + omega delta with delta = -sign(G) d (R7).

    Args:
        config: the hyperparameters.
        sched: the batch's :class:`alice_ref.Schedule` (averages' weights, update or not).
        mu: centre, updated in place.
        nu: look-ahead, updated in place.
        G: gradient average, updated in place.
        V: squared-gradient average, updated in place.
        H: curvature average, updated in place.
        R: glass-density average, updated in place.
        g_zero: gradient at nu.
        g_plus: gradient at nu + sigma z (sample step), or None.
        g_minus: gradient at nu - sigma z (sample step), or None.
        lr: current learning rate (None: config.lr).
        param: optional array that receives mu.
        workspace: scratch blocks (None: a module-wide one, not thread-safe).
        sqrt: ``sqrt(x, out)`` replacing NumPy's (e.g. torch's).
        threads: threads sharing the blocks.
        engine: "numba" (one compiled pass per block, the default when numba is installed)
            or "numpy" (in-place ufuncs); see :data:`ENGINES`. Both equal the core bit for bit.

    Raises:
        TypeError: a non-NumPy mu, a dtype other than float32/float64, or only one of
            g_plus and g_minus.
        ValueError: an array of the wrong size or dtype, a read-only one, bad threads, or an
            engine that is unknown or not installed.
        Nothing changes when it raises.

    Example:
        Batch 1 is a sample step with all averages' weights 0 and no update, so G = g0,
        V = g0^2 and H = |h| = 2 for the gradient g = 2 theta of sum theta^2:

        >>> import numpy as np
        >>> from alice_ref import AliceConfig, schedule
        >>> c = AliceConfig(lr=0.5, betas=(0.5, 0.999))  # sigma = 0.5: exact probe points
        >>> mu = np.array([1.0, -2.0]); nu = mu.copy(); z = np.array([1.0, -1.0])
        >>> G, V, H, R = (np.zeros(2) for _ in range(4))
        >>> absorb_and_update(c, schedule(1, c), mu, nu, G, V, H, R, 2 * nu,
        ...                   2 * (nu + 0.5 * z), 2 * (nu - 0.5 * z))
        >>> G.tolist(), V.tolist(), H.tolist(), R.tolist(), mu.tolist()
        ([2.0, -4.0], [4.0, 16.0], [2.0, 2.0], [0.0, 0.0], [1.0, -2.0])
    """
    if not isinstance(mu, np.ndarray):
        raise TypeError(f"mu must be a NumPy array, got {type(mu).__name__}")
    dtype, n = mu.dtype, mu.size
    ws = _DEFAULT_WS if workspace is None else workspace
    ws.get(dtype)  # TypeError for other dtypes
    threads = _check_threads(threads)
    engine = _check_engine(engine)
    sample = g_plus is not None or g_minus is not None
    if sample and (g_plus is None or g_minus is None):
        raise TypeError("a sample step needs both g_plus and g_minus")
    st = {k: _writable(k, _flat(k, x, dtype, n)) for k, x in
          (("mu", mu), ("nu", nu), ("G", G), ("V", V), ("H", H), ("R", R))}
    g0 = _flat("g_zero", g_zero, dtype, n)
    gp = _flat("g_plus", g_plus, dtype, n) if sample else None
    gm = _flat("g_minus", g_minus, dtype, n) if sample else None
    pa = _writable("param", _flat("param", param, dtype, n)) if param is not None else None
    if engine == "numba":
        _numba_pass(config, sched, lr, st, g0, gp, gm, pa, ws, sqrt, threads)
        return
    sqrt = _np_sqrt if sqrt is None else sqrt
    c = config
    sc = dtype.type  # scalars are rounded to the state dtype once, as NEP 50 does per call
    sigma = c.lr if lr is None else lr
    lo, hi = c.bounds(lr)
    b1, b2, b3 = sc(sched.beta1), sc(sched.beta2), sc(sched.beta3)
    two_sigma, sig, two = sc(2.0 * sigma), sc(sigma), sc(2.0)
    w1, w2, w2sq = sc(c.w1), sc(c.w2), sc(c.w2 * c.w2)
    eps, alpha_c, phi, omega = sc(c.eps), sc(ALPHA_COEFF), sc(c.phi), sc(c.omega)
    lo_s, hi_s, zero, one, m_two = sc(lo), sc(hi), sc(0.0), sc(1.0), sc(-2.0)
    mu_, nu_, G_, V_, H_, R_ = (st[k] for k in ("mu", "nu", "G", "V", "H", "R"))
    hc, limit, update = c.hess_comp, c.limit_method, sched.update
    chunk = ws.chunk

    def body(start, stop, slot):
        (t0, t1, t2, t3, _), (m0, m1), ubits = ws.get(dtype, slot)
        signbit = ubits.dtype.type(1 << (8 * dtype.itemsize - 1))
        for s in range(start, stop, chunk):
            e = min(s + chunk, stop)
            k = e - s
            a0, a1, a2, a3 = t0[:k], t1[:k], t2[:k], t3[:k]
            q0, q1 = m0[:k], m1[:k]
            g0c, Gc, Vc, Hc, Rc, muc = g0[s:e], G_[s:e], V_[s:e], H_[s:e], R_[s:e], mu_[s:e]

            if sample:  # absorb_curvature (kernels.curvature_magnitude, .glass_density)
                gpc, gmc = gp[s:e], gm[s:e]
                np.subtract(gpc, gmc, a0)
                np.divide(a0, two_sigma, a0)  # h_hat = (g+ - g-) / (2 sigma)
                if hc == "rms":
                    np.multiply(a0, a0, a0)
                    np.add(a0, w2sq, a0)  # h_hat^2 + w2^2
                else:
                    np.abs(a0, a0)
                    np.add(a0, w2, a0)  # |h_hat| + w2
                _ema(Hc, a0, b3, a1)
                np.add(gpc, gmc, a0)
                np.divide(a0, two, a0)
                np.subtract(a0, g0c, a0)  # d = gbar - g0
                np.multiply(a0, two, a1)
                np.multiply(a1, a0, a1)
                np.divide(a1, sig, a1)  # rho_hat = 2 d d / sigma
                _ema(Rc, a1, b3, a0)

            # absorb_gradient: G <- EMA_b1(G, g0 + w1 s(nu) + w2 nu), V <- EMA_b2(V, g0^2)
            g = g0c
            if c.w1 != 0.0:
                np.less(nu_[s:e], zero, q0)  # s(nu) = -1 where nu < 0 else +1
                np.multiply(q0, m_two, a3)
                np.add(a3, one, a3)
                np.multiply(a3, w1, a3)  # w1 s(nu): exactly +-w1
                np.add(g, a3, a3)
                g = a3
            if c.w2 != 0.0:
                np.multiply(nu_[s:e], w2, a2)
                np.add(g, a2, a2)
                g = a2
            _ema(Gc, g, b1, a0)
            np.multiply(g0c, g0c, a1)
            _ema(Vc, a1, b2, a0)

            if update:  # alice_update -> steps._bounded_step (R5, R6), then R7
                # h: 0 ('zero'), H ('abs'), sqrt(H) ('rms'); rho: R or 0 (grad_glass)
                if hc == "rms":
                    sqrt(Hc, a3)
                    h = a3
                else:
                    h = Hc if hc == "abs" else zero
                np.abs(Gc, a1)  # a = |G|
                np.multiply(Rc if c.grad_glass else zero, alpha_c, a0)  # ALPHA rho
                np.add(a1, eps, a2)
                np.divide(a0, a2, a0)  # alpha = ALPHA rho / (a + eps)
                np.multiply(h, two, a2)
                np.add(a0, a2, a2)
                np.multiply(a0, a2, a2)
                sqrt(a2, a2)  # sqrt(alpha (alpha + 2h))
                np.add(a0, h, a0)
                np.add(a0, a2, a0)
                np.add(a0, eps, a0)  # h_opt = alpha + h + sqrt(.) + eps
                np.divide(a1, a0, a0)  # d = a / h_opt
                if limit == "fixed":  # lo * ones, hi * ones: the scalars themselves
                    _clip(a0, lo_s, hi_s, None, q0, q1)
                else:
                    if limit == "adam":
                        sqrt(Vc, a2)
                        np.add(a2, eps, a2)
                        np.divide(a1, a2, a2)  # f = a / (sqrt(V) + eps)
                        f = a2
                    else:  # sgdm
                        f = a1  # f = a
                    np.multiply(f, hi_s, a3)  # hi f
                    if lo != 0.0:
                        np.multiply(f, lo_s, a2)  # lo f
                        _clip(a0, a2, a3, None, q0, q1)
                    else:  # lo f is 0 where f is finite: fmax(., 0) is the identity on d >= 0
                        _clip(a0, None, a3, (f, lo_s, a2), q0, q1)
                # delta = where(G > 0, -d, d): flip the sign bit where G > 0 (= negation)
                np.greater(Gc, zero, q0)
                bits = ubits[:k]
                np.multiply(q0, signbit, bits)
                dv = a0.view(bits.dtype)
                np.bitwise_xor(dv, bits, dv)
                if c.omega == 1.0:  # omega delta = delta exactly
                    np.add(muc, a0, nu_[s:e])
                else:
                    np.multiply(a0, omega, a1)
                    np.add(muc, a1, nu_[s:e])  # nu' = mu + omega delta
                np.multiply(a0, phi, a1)
                np.add(muc, a1, muc)  # mu' = mu + phi delta
            if pa is not None:
                np.copyto(pa[s:e], muc)

    _in_parts(n, chunk, threads, body)


def _numba_pass(config, sched, lr, st, g0, gp, gm, pa, ws, sqrt, threads):
    """absorb_and_update with the compiled kernels of :mod:`alice_ref.engines._cpu_kernels`: one pass per
    block with IEEE square roots, or, with a caller's ``sqrt``, split at the square roots."""
    nb = _numba
    mu, nu, G, V, H, R = (st[k] for k in ("mu", "nu", "G", "V", "H", "R"))
    dtype, n = mu.dtype, mu.size
    sample = gp is not None
    f, k = nb.flags_and_constants(config, sched, sample, lr, dtype)
    gp, gm = (gp, gm) if sample else (g0, g0)  # not read on a quick batch
    rms, adam = config.hess_comp == "rms", config.limit_method == "adam"

    def body(start, stop, slot):
        t = ws.get(dtype, slot)[0]
        sl = slice(start, stop)
        if sqrt is None:
            p = pa[sl] if pa is not None else t[1][:nb.BLOCK]
            nb.run(f, k, mu[sl], nu[sl], G[sl], V[sl], H[sl], R[sl], g0[sl], gp[sl], gm[sl],
                   p, pa is not None, t[0][:nb.BLOCK])
            return
        for s in range(start, stop, ws.chunk):
            e = min(s + ws.chunk, stop)
            b = slice(s, e)
            nb.absorb(f, k, nu[b], G[b], V[b], H[b], R[b], g0[b], gp[b], gm[b])
            if not sched.update:
                if pa is not None:
                    np.copyto(pa[b], mu[b])
                continue
            sH, sV = H[b], V[b]  # read only where 'rms' / 'adam' (selects in the kernels)
            if rms:
                sH = t[0][:e - s]
                sqrt(H[b], sH)
            t_alpha, t_arg = t[1][:e - s], t[2][:e - s]
            nb.prep(f, k, G[b], H[b], R[b], sH, t_alpha, t_arg)
            sqrt(t_arg, t_arg)
            if adam:
                sV = t[3][:e - s]
                sqrt(V[b], sV)
            p = pa[b] if pa is not None else t[4][:e - s]
            nb.finish_move(f, k, mu[b], nu[b], G[b], H[b], p, sH, t_alpha, t_arg, sV)

    _in_parts(n, ws.chunk, threads, body)


def _ema(S, x, beta, tmp):
    """S <- x + beta (S - x) in place (alice.ema), tmp: a scratch block."""
    np.subtract(S, x, tmp)
    np.multiply(tmp, beta, tmp)
    np.add(x, tmp, S)


def _clip(d, lo_b, hi_b, lazy_lo, q0, q1):
    """d <- where(d < lo_b, lo_b, where(d < hi_b, d, hi_b)) in place (steps._bounded_step).

    fmax(fmin(d, hi_b), lo_b) is that expression whenever lo_b <= hi_b where both are numbers
    and hi_b has no NaN: d < lo_b (so d <= hi_b) gives fmin = d, fmax = lo_b; a NaN d gives
    fmin = hi_b >= lo_b; d >= lo_b gives min(d, hi_b) >= lo_b; a NaN lo_b is ignored by fmax,
    as the where ignores it (d < NaN is false). The bounds are lo f and hi f with f >= 0 and
    lo <= hi, and rounding is monotone, so lo_b <= hi_b; d, lo_b and hi_b are never -0 (d =
    |G| / h_opt, f >= 0), so ties between zeros cannot differ. ``lo_b=None``: lr_min = 0, whose
    bound is 0 (or NaN, ignored) and leaves d >= 0 alone, so fmax is skipped; ``lazy_lo`` =
    (f, lo, out) computes it for the fallback. A NaN in hi_b (hi = 0 and an infinite f, or a
    NaN f) takes the literal masked form.
    """
    if isinstance(hi_b, np.ndarray) and np.isnan(np.minimum.reduce(hi_b)):
        if lo_b is None:
            f, lo, out = lazy_lo
            lo_b = np.multiply(f, lo, out)
        np.less(d, lo_b, q0)
        np.less(d, hi_b, q1)
        np.logical_not(q1, q1)
        np.copyto(d, hi_b, where=q1)
        np.copyto(d, lo_b, where=q0)
        return
    np.fmin(d, hi_b, d)
    if lo_b is not None:
        np.fmax(d, lo_b, d)


def negative_mask(u, out=None, *, packed: bool = False, workspace: Workspace | None = None):
    """The probe signs as a mask: True where z = -1, i.e. u < 0.5 (R2's Rademacher probes).

    The official convention of sampling.rademacher_from_uniform: z = -1 where u < 0.5, else +1.

    Args:
        u: uniforms in [0, 1), a NumPy array.
        out: optional bool array to write into (unpacked form only).
        packed: return the mask packed eight elements to a byte (``np.packbits`` order,
            computed block by block, so no array of u's size is allocated): 1/32 of a float32
            word per element.
        workspace: scratch blocks for the packed form.

    Returns:
        The bool mask (u's shape), or the packed uint8 array of ceil(n/8) bytes.

    Raises:
        TypeError: packed=True and u is not a NumPy array.

    Example:
        Signs -1, +1, +1, -1; packed, the bits 1001 0000 make the byte 144:

        >>> import numpy as np
        >>> u = np.array([0.1, 0.5, 0.7, 0.2])
        >>> negative_mask(u).tolist(), negative_mask(u, packed=True).tolist()
        ([True, False, False, True], [144])
    """
    if not packed:
        return np.less(u, 0.5, out=out)
    if not isinstance(u, np.ndarray):
        raise TypeError(f"u must be a NumPy array, got {type(u).__name__}")
    u = u.reshape(-1)
    n = u.size
    res = np.empty((n + 7) // 8, np.uint8)
    ws = _DEFAULT_WS if workspace is None else workspace
    chunk = max(8, ws.chunk - ws.chunk % 8)
    q = ws.get(np.float32)[1][0]
    if q.size < chunk:
        q = np.empty(chunk, np.bool_)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        np.less(u[s:e], 0.5, q[:e - s])
        res[s // 8:(e + 7) // 8] = np.packbits(q[:e - s])
    return res


def probe_point(nu, negative, sigma: float, sign: int, out, *,
                workspace: Workspace | None = None, threads: int = 1) -> None:
    """Evaluation point nu + sign sigma z of a sample step into ``out`` (the core's
    :func:`alice_ref.probe_points`, bit-identical), z = -1 where ``negative`` else +1.

    Args:
        nu: the look-ahead (state dtype).
        negative: bool array of the same size, or the packed form (uint8, see
            :func:`negative_mask`).
        sigma: the perturbation length (the learning rate).
        sign: +1 (nu + sigma z) or -1 (nu - sigma z).
        out: an array of the state dtype and size (e.g. the parameter's NumPy view).
        workspace: scratch blocks (None: a module-wide one).
        threads: threads sharing the blocks.

    Raises:
        ValueError: sign not +-1, sizes that do not match, a read-only out.
        TypeError: nu not a NumPy array, or a dtype other than float32/float64.

    Example:
        Both forms of the mask give nu +- sigma z:

        >>> import numpy as np
        >>> neg = negative_mask(np.array([0.1, 0.5, 0.7, 0.2]))
        >>> out = np.empty(4)
        >>> probe_point(np.zeros(4), neg, 0.5, +1, out)
        >>> out.tolist()
        [-0.5, 0.5, 0.5, -0.5]
        >>> probe_point(np.zeros(4), np.packbits(neg), 0.5, -1, out)
        >>> out.tolist()
        [0.5, -0.5, -0.5, 0.5]
    """
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign!r}")
    if not isinstance(nu, np.ndarray):
        raise TypeError(f"nu must be a NumPy array, got {type(nu).__name__}")
    dtype, n = nu.dtype, nu.size
    nu_ = _flat("nu", nu, dtype, n)
    out_ = _writable("out", _flat("out", out, dtype, n))
    packed = isinstance(negative, np.ndarray) and negative.dtype == np.uint8
    neg = (_flat("negative", negative, np.dtype(np.uint8), (n + 7) // 8) if packed else
           _flat("negative", negative, np.dtype(np.bool_), n))
    ws = _DEFAULT_WS if workspace is None else workspace
    ws.get(dtype)
    threads = _check_threads(threads)
    sc = dtype.type
    m2s, s1 = sc(-2.0) * sc(sigma), sc(sigma)  # -2 sigma exactly (a power of two times sigma)
    op = np.add if sign == 1 else np.subtract
    chunk = ws.chunk

    def body(start, stop, slot):
        t0 = ws.get(dtype, slot)[0][0]
        for s in range(start, stop, chunk):
            e = min(s + chunk, stop)
            a = t0[:e - s]
            if packed:  # the bits of elements s..e-1, from the bytes that hold them
                m = np.unpackbits(neg[s // 8:(e + 7) // 8])[s % 8:s % 8 + e - s]
            else:
                m = neg[s:e]
            np.multiply(m, m2s, a)
            np.add(a, s1, a)  # sigma z: -2 sigma + sigma = -sigma, or 0 + sigma = sigma
            op(nu_[s:e], a, out_[s:e])

    _in_parts(n, chunk, threads, body)


def update_state(state: AliceState, sched: Schedule, config: AliceConfig, g_zero, g_plus=None,
                 g_minus=None, *, lr: float | None = None, workspace: Workspace | None = None,
                 sqrt=None, threads: int = 1, engine: str | None = None) -> AliceState:
    """The whole-state form: :func:`absorb_and_update` on every parameter of ``state`` (NumPy
    arrays, updated in place; mu and nu must not share memory) and the counter advanced; equal
    to the core's ``apply_update(absorb_sample/absorb_quick(...))``, bit for bit. Every state
    array must have its own memory (a state from :func:`alice_ref.init` does); arrays that may
    share memory are refused before anything changes.

    Args:
        state: an AliceState of NumPy arrays.
        sched: the batch's schedule.
        config: the hyperparameters.
        g_zero: gradients at nu, one per parameter.
        g_plus: gradients at nu + sigma z (sample step), or None.
        g_minus: gradients at nu - sigma z (sample step), or None.
        lr: current learning rate (None: config.lr).
        workspace: scratch blocks.
        sqrt: ``sqrt(x, out)`` replacing NumPy's.
        threads: threads sharing the blocks.
        engine: "numba", "numpy" or None (see :func:`absorb_and_update`).

    Returns:
        The state with t = sched.t (the same array objects, updated).

    Raises:
        ValueError: gradient lists of the wrong length, two state arrays of one parameter that
            may share memory, and the errors of :func:`absorb_and_update`.

    Example:
        Bit-identical to the core on the first (sample) batch:

        >>> import numpy as np
        >>> from alice_ref import (AliceConfig, absorb_sample, apply_update, init,
        ...                        probe_points, schedule)
        >>> c = AliceConfig(lr=0.1, betas=(0.5, 0.999))
        >>> state, sched = init([np.array([1.0, -2.0])]), schedule(1, c)
        >>> points = probe_points(state, [np.array([1.0, -1.0])], 0.1)
        >>> gp, gm, g0 = [[2 * x for x in pt] for pt in points]  # gradients of sum theta^2
        >>> ref = apply_update(absorb_sample(state, sched, gp, gm, g0, c), sched, c)
        >>> new = update_state(state, sched, c, g0, gp, gm)  # updates state's arrays in place
        >>> new.t, all(np.array_equal(getattr(new, f)[0], getattr(ref, f)[0])
        ...            for f in ("mu", "nu", "G", "V", "H", "R"))
        (1, True)
    """
    n = len(state.mu)
    for name, gs in (("g_zero", g_zero), ("g_plus", g_plus), ("g_minus", g_minus)):
        if gs is not None and len(gs) != n:
            raise ValueError(f"{name} has {len(gs)} arrays but the state has {n} parameters")
    fields = ("mu", "nu", "G", "V", "H", "R")
    for i in range(n):
        arrays = [getattr(state, f)[i] for f in fields]
        for a in range(len(fields)):
            for b in range(a + 1, len(fields)):
                if np.may_share_memory(arrays[a], arrays[b]):
                    raise ValueError(f"{fields[a]}[{i}] and {fields[b]}[{i}] share memory; the "
                                     f"fast path updates them in place (copy one of them first)")
    for i in range(n):
        absorb_and_update(config, sched, state.mu[i], state.nu[i], state.G[i], state.V[i],
                          state.H[i], state.R[i], g_zero[i],
                          None if g_plus is None else g_plus[i],
                          None if g_minus is None else g_minus[i],
                          lr=lr, workspace=workspace, sqrt=sqrt, threads=threads,
                          engine=engine)
    return state._replace(t=sched.t)


def state_words(sample: bool, update: bool = True, param: bool = True) -> int:
    """Words per element that one :func:`absorb_and_update` call must move through memory (the
    traffic floor of the update, used by the benchmarks): reads g0, G, V, mu (+ H, R for the
    update; + g+, g-, H, R on a sample step), writes G, V (+ H, R on a sample step, + mu, nu
    for the update, + the parameter).

    Args:
        sample: a sample step (g+ and g- too).
        update: the state update runs (after warm-up).
        param: the parameter is written.

    Returns:
        The number of words per element.

    Example:
        11 words on a quick batch, 15 on a sample batch (module docstring):

        >>> state_words(sample=False), state_words(sample=True)
        (11, 15)
    """
    reads = 3 + (1 if update else 0) + (2 if update or sample else 0) + (2 if sample else 0)
    writes = 2 + (2 if sample else 0) + (2 if update else 0) + (1 if param else 0)
    return reads + writes
