"""The CPU engine: Alice's per-element batch update compiled by numba, in place, cache-blocked.

The core (:mod:`alice_ref.core`) is the definition: it builds a new array for every
intermediate, so one batch of a parameter of n elements streams ~100 n words through memory and
allocates ~40 arrays of n elements. This engine performs the same floating-point operations in
the same order (:mod:`alice_ref.engines.contract`) in one compiled pass per block of elements
(:mod:`alice_ref.engines._cpu_kernels`), into the state arrays the caller owns, so that only
the state, the gradients and the parameter cross the memory bus: 11 words per element on a
quick batch and 15 on a sample batch (:func:`state_words`). The kernels release the GIL, so
``threads=`` splits the blocks over threads.

NumPy only (views and ``out=`` are not part of the array API); the PyTorch adapter runs it on
the NumPy views of CPU tensors (zero copy). Needs numba (extra ``fast``);
:func:`alice_ref.engines.select` picks the core when numba is missing.

``sqrt`` may be replaced (keyword ``sqrt=``) by another square root with the contract
``sqrt(x, out)``: the PyTorch adapter passes torch's own (on CPU torch's sqrt is not correctly
rounded: it differs from NumPy's in ~1 element in 6 by one unit in the last place, and the
adapter must agree with the core run on torch tensors); the step is then split at its square
roots.
"""

from __future__ import annotations

import numpy as np

from alice_ref.checks import check_count
from alice_ref.core import AliceConfig, Schedule

__all__ = ["AVAILABLE", "DEFAULT_CHUNK", "Workspace", "absorb_and_update", "probe_points",
           "probe_point", "negative_mask", "state_words"]

#: Elements per block handed to the compiled kernels (which loop over sub-blocks of
#: ``_cpu_kernels.BLOCK``) and unit of the split over threads; with a caller's ``sqrt`` the
#: square roots run on blocks of this size.
DEFAULT_CHUNK = 65536

_N_SCRATCH = 5  # float scratch blocks: the step, alpha, alpha (alpha + 2h), sqrt(H), sqrt(V)


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
        self.chunk = check_count("chunk", chunk, lo=1)
        self._sets: dict = {}

    def get(self, dtype, slot: int = 0):
        """The scratch blocks of ``dtype`` for one thread slot, made on first use.

        Args:
            dtype: float32 or float64 (anything ``np.dtype`` accepts).
            slot: the thread slot (0 for the calling thread).

        Returns:
            (float scratch blocks, bool mask block): a list of 5 arrays of ``dtype`` and one
            bool array, each of ``chunk`` elements.

        Raises:
            TypeError: a dtype other than float32 and float64.

        Example:
            The blocks of float32, chunk 4:

            >>> import numpy as np
            >>> floats, mask = Workspace(chunk=4).get(np.float32)
            >>> len(floats), floats[0].shape, floats[0].dtype, mask.dtype
            (5, (4,), dtype('float32'), dtype('bool'))
        """
        dtype = np.dtype(dtype)
        s = self._sets.get((dtype, slot))
        if s is None:
            if dtype not in (np.float32, np.float64):
                raise TypeError(f"the CPU engine supports float32 and float64 state, got "
                                f"{dtype}")
            s = ([np.empty(self.chunk, dtype) for _ in range(_N_SCRATCH)],
                 np.empty(self.chunk, np.bool_))
            self._sets[(dtype, slot)] = s
        return s


_DEFAULT_WS = Workspace()

try:  # the compiled kernels (extra ``fast``)
    from alice_ref.engines import _cpu_kernels as _numba
except ImportError:  # pragma: no cover - depends on the environment
    _numba = None

#: Whether the compiled kernels can run here (numba installed).
AVAILABLE = _numba is not None


_POOL = [None, 0]  # a ThreadPoolExecutor and its size, made on first use of threads > 1


def _check_threads(threads) -> int:
    return check_count("threads", threads, lo=1)


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
                      workspace: Workspace | None = None, sqrt=None, threads: int = 1) -> None:
    """One batch of one parameter, in place: the core's ``absorb_sample`` (if ``g_plus`` and
    ``g_minus`` are given) or ``absorb_quick``, then ``apply_update`` (if ``sched.update``).

    Same arguments and meaning as the core (docs/spec/algorithm.md#one-batch, steps 3-5; R3, R5,
    R6, R7): ``lr`` is the current learning rate (sigma and the bounds' scale; None -> config.lr).
    mu, nu, G, V, H, R are NumPy arrays of the state dtype (float32/float64), C-contiguous,
    updated in place;
    gradients are arrays of the same dtype and size. ``param``: optional array of the same
    dtype that receives mu after the batch (the model's parameter). ``threads``: blocks are
    shared among this many threads (1: the calling thread only). Results are bit-identical to
    the core's on NumPy arrays (:mod:`alice_ref.engines.contract`) for every state the
    algorithm can reach (V, H, R >= 0). Each state array must have its own memory.

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

    Raises:
        TypeError: a non-NumPy mu, a dtype other than float32/float64, or only one of
            g_plus and g_minus.
        ValueError: an array of the wrong size or dtype, a read-only one, bad threads, or
            numba not installed.
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
    if _numba is None:
        raise ValueError("the CPU engine needs numba (pip install 'alice-ref[fast]')")
    sample = g_plus is not None or g_minus is not None
    if sample and (g_plus is None or g_minus is None):
        raise TypeError("a sample step needs both g_plus and g_minus")
    st = {k: _writable(k, _flat(k, x, dtype, n)) for k, x in
          (("mu", mu), ("nu", nu), ("G", G), ("V", V), ("H", H), ("R", R))}
    g0 = _flat("g_zero", g_zero, dtype, n)
    gp = _flat("g_plus", g_plus, dtype, n) if sample else None
    gm = _flat("g_minus", g_minus, dtype, n) if sample else None
    pa = _writable("param", _flat("param", param, dtype, n)) if param is not None else None
    _numba_pass(config, sched, lr, st, g0, gp, gm, pa, ws, sqrt, threads)


def _numba_pass(config, sched, lr, st, g0, gp, gm, pa, ws, sqrt, threads):
    """absorb_and_update through :mod:`alice_ref.engines._cpu_kernels`: one pass per block
    with IEEE square roots, or, with a caller's ``sqrt``, split at the square roots."""
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
    q = ws.get(np.float32)[1]
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


def probe_points(nu, z, sigma: float):
    """(nu + sigma z, nu - sigma z) in one compiled pass: the core's
    :func:`alice_ref.core.probe_points` in the state dtype, bit for bit (as
    :func:`alice_ref.engines.cuda.probe_points` on a GPU).

    Args:
        nu: the look-ahead, a C-contiguous float32/float64 NumPy array.
        z: the probe signs (R2), an array of nu's dtype and size.
        sigma: the perturbation length (rounded to nu's dtype once).

    Returns:
        The pair of new arrays (nu + sigma z, nu - sigma z), shaped like nu.

    Raises:
        TypeError: a non-NumPy nu or z, or dtypes that differ.
        ValueError: sizes that differ, a non-contiguous array, or numba not installed.

    Example:
        >>> import numpy as np
        >>> if AVAILABLE:
        ...     plus, minus = probe_points(np.zeros(2), np.array([1.0, -1.0]), 0.5)
        ... else:
        ...     plus, minus = np.array([0.5, -0.5]), np.array([-0.5, 0.5])
        >>> plus.tolist(), minus.tolist()
        ([0.5, -0.5], [-0.5, 0.5])
    """
    if not isinstance(nu, np.ndarray):
        raise TypeError(f"nu must be a NumPy array, got {type(nu).__name__}")
    if _numba is None:
        raise ValueError("the CPU engine needs numba (pip install 'alice-ref[fast]')")
    n = nu.size
    nu_, z_ = _flat("nu", nu, nu.dtype, n), _flat("z", z, nu.dtype, n)
    plus, minus = np.empty_like(nu), np.empty_like(nu)
    _numba.probes(nu_, z_, nu.dtype.type(sigma), plus.reshape(-1), minus.reshape(-1))
    return plus, minus


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
