"""Compiled (numba) kernels of :func:`alice_ref.engines.cpu.absorb_and_update`.

Private: :mod:`alice_ref.engines.cpu` uses them when numba is installed (extra ``fast``).
Every element goes through *the same IEEE operations in the same order* as the core
(docs/spec/algorithm.md#one-batch, steps 3-5; R3, R5, R6, R7), in the state dtype, so the
results equal the core's bit for bit (tests/test_fast_paths.py):

- every constant arrives as a number of the state dtype (array ``k``), and numba keeps float32
  arithmetic in float32;
- compiled without ``fastmath`` (no reassociation, no FMA contraction, no reciprocals) and with
  ``error_model='numpy'`` (a division by zero gives inf or NaN, as in NumPy);
- ``math.sqrt`` is the correctly rounded square root;
- the clip and the sign are the core's ``where`` expressions, literally.

Speed: the elements go in blocks of :data:`BLOCK` (a few hundred KiB stay in cache) through
four short loops (curvature, gradient averages, step, move), each over a few arrays, with the
switches as selects rather than branches, so that LLVM vectorises every loop; the state crosses
the memory bus once per batch (:func:`alice_ref.engines.cpu.state_words`). No function that takes an
array is called per element (numba would count references per call).

With a caller's square root (``sqrt=``: the PyTorch adapter's torch.sqrt), the step is split
at its square roots: ``prep`` (h, alpha, alpha (alpha + 2h)), the caller's sqrt on the block,
``finish_move``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from alice_ref.engines.contract import SCALARS, pack_scalars

#: Elements per block of the compiled pass: 32 KiB of float32 per array, so the ~10 arrays a
#: block touches stay in a 1 MiB L2 (measured: 4096 and 16384 within noise, 1024 slower).
BLOCK = 8192

# flags (int64 array f)
SAMPLE, W1, W2, HC, GLASS, LIMIT, UPDATE = range(7)
HC_ZERO, HC_ABS, HC_RMS = range(3)
LIM_FIXED, LIM_ADAM, LIM_SGDM = range(3)
# constants (array k of the state dtype, in the order of contract.SCALARS)
(B1, B2, B3, TWO_SIGMA, SIGMA, TWO, W1V, W2V, W2SQ, EPS, ALPHA_C, PHI, OMEGA, LO, HI,
 ZERO) = range(16)
assert SCALARS == ("b1", "b2", "b3", "two_sigma", "sigma", "two", "w1", "w2", "w2sq", "eps",
                   "alpha_c", "phi", "omega", "lo", "hi", "zero")

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_inline
def _unpack(fa, ka):
    """Flags and constants as tuples of scalars: registers, not loads from memory that the
    compiler could not prove apart from the state's stores."""
    f = (fa[0], fa[1], fa[2], fa[3], fa[4], fa[5], fa[6])
    k = (ka[0], ka[1], ka[2], ka[3], ka[4], ka[5], ka[6], ka[7], ka[8], ka[9], ka[10], ka[11],
         ka[12], ka[13], ka[14], ka[15])
    return f, k


@_inline
def _ema(S, x, beta):
    return x + (S - x) * beta  # alice.ema: x + beta (S - x)


@_inline
def _prep_el(f, k, Gi, Ri, h):
    """R5's a = |G|, alpha = ALPHA rho / (a + eps) (rho = R or 0) and alpha (alpha + 2h)."""
    a = abs(Gi)
    rho = Ri if f[GLASS] else k[ZERO]
    alpha = rho * k[ALPHA_C] / (a + k[EPS])
    h2 = h * k[TWO]
    return a, alpha, alpha * (alpha + h2)


@_inline
def _delta_el(f, k, a, alpha, h, s, sv, Gi):
    """d = a / (alpha + h + s + eps) (R5) clipped to [lo f, hi f] (R6); delta = -sign(G) d."""
    d = a / (alpha + h + s + k[EPS])
    fad = a / (sv + k[EPS])
    fa = fad if f[LIMIT] == LIM_ADAM else a  # adam: a / (sqrt(V) + eps); sgdm: a
    flo = fa * k[LO]
    fhi = fa * k[HI]
    fixed = f[LIMIT] == LIM_FIXED
    lo = k[LO] if fixed else flo
    hi = k[HI] if fixed else fhi
    dh = d if d < hi else hi
    d = lo if d < lo else dh
    nd = -d
    return nd if Gi > k[ZERO] else d


@_inline
def _h_el(f, k, Hi, sH):
    """R5's h: sqrt(H) ('rms', given), H ('abs') or 0 ('zero')."""
    hz = Hi if f[HC] == HC_ABS else k[ZERO]
    return sH if f[HC] == HC_RMS else hz


@_jit
def _curv(f, k, gp, gm, g0, H, R):
    """Step 3 on a sample step (R3): h = (g+ - g-)/(2 sigma), d = (g+ + g-)/2 - g0."""
    rms = f[HC] == HC_RMS
    for i in range(g0.size):
        p, m, x0 = gp[i], gm[i], g0[i]
        hh = (p - m) / k[TWO_SIGMA]
        hr = hh * hh + k[W2SQ]
        ha = abs(hh) + k[W2V]
        H[i] = _ema(H[i], hr if rms else ha, k[B3])
        d = (p + m) / k[TWO] - x0
        R[i] = _ema(R[i], d * k[TWO] * d / k[SIGMA], k[B3])


@_jit
def _grad(f, k, g0, nu, G, V):
    """Step 3, every batch: G <- EMA(G, g0 + w1 s(nu) + w2 nu), V <- EMA(V, g0^2)."""
    for i in range(g0.size):
        x0, v = g0[i], nu[i]
        s1 = -k[W1V] if v < k[ZERO] else k[W1V]
        g1 = x0 + s1
        g = g1 if f[W1] else x0
        g2 = g + v * k[W2V]
        g = g2 if f[W2] else g
        G[i] = _ema(G[i], g, k[B1])
        V[i] = _ema(V[i], x0 * x0, k[B2])


@_jit
def _step(f, k, G, V, H, R, t):
    """delta of R5-R6 into t, with IEEE square roots."""
    for i in range(G.size):
        Gi, Hi = G[i], H[i]
        h = _h_el(f, k, Hi, math.sqrt(Hi))
        a, alpha, arg = _prep_el(f, k, Gi, R[i], h)
        t[i] = _delta_el(f, k, a, alpha, h, math.sqrt(arg), math.sqrt(V[i]), Gi)


@_jit
def _move(k, mu, nu, param, t):
    """R7: nu <- mu + omega delta, mu <- mu + phi delta, param <- mu."""
    for i in range(mu.size):
        m, dl = mu[i], t[i]
        nu[i] = m + dl * k[OMEGA]
        m = m + dl * k[PHI]
        mu[i] = m
        param[i] = m


@_jit
def run(fa, ka, mu, nu, G, V, H, R, g0, gp, gm, param, has_param, t):
    """One batch of all elements, in blocks of t.size, with IEEE square roots. ``param``: the
    parameter (``has_param``), or else a scratch array of t's size; ``t``: scratch."""
    f, k = _unpack(fa, ka)
    n, b = g0.size, t.size
    for s in range(0, n, b):
        e = min(s + b, n)
        if f[SAMPLE]:
            _curv(f, k, gp[s:e], gm[s:e], g0[s:e], H[s:e], R[s:e])
        _grad(f, k, g0[s:e], nu[s:e], G[s:e], V[s:e])
        pb = param[s:e] if has_param else param[:e - s]
        if f[UPDATE]:
            tb = t[:e - s]
            _step(f, k, G[s:e], V[s:e], H[s:e], R[s:e], tb)
            _move(k, mu[s:e], nu[s:e], pb, tb)
        elif has_param:
            pb[:] = mu[s:e]


@_jit
def absorb(fa, ka, nu, G, V, H, R, g0, gp, gm):
    """Step 3 of one block (the split form)."""
    f, k = _unpack(fa, ka)
    if f[SAMPLE]:
        _curv(f, k, gp, gm, g0, H, R)
    _grad(f, k, g0, nu, G, V)


@_jit
def prep(fa, ka, G, H, R, sH, t_alpha, t_arg):
    """alpha and alpha (alpha + 2h) of one block into scratch (h from sH = the caller's
    sqrt(H) when 'rms', else from H)."""
    f, k = _unpack(fa, ka)
    for i in range(G.size):
        h = _h_el(f, k, H[i], sH[i])
        a, alpha, arg = _prep_el(f, k, G[i], R[i], h)
        t_alpha[i] = alpha
        t_arg[i] = arg


@_jit
def finish_move(fa, ka, mu, nu, G, H, param, sH, t_alpha, t_s, sV):
    """The step of one block from the caller's square roots (t_s = sqrt(alpha (alpha + 2h)),
    sV = sqrt(V) when 'adam'), then R7's move; t_alpha receives delta."""
    f, k = _unpack(fa, ka)
    for i in range(G.size):
        Gi = G[i]
        h = _h_el(f, k, H[i], sH[i])
        t_alpha[i] = _delta_el(f, k, abs(Gi), t_alpha[i], h, t_s[i], sV[i], Gi)
    _move(k, mu, nu, param, t_alpha)


@_jit
def probes(nu, z, sigma, plus, minus):
    """The core's probe_points: s = sigma z, plus = nu + s, minus = nu - s (one pass)."""
    for i in range(nu.size):
        sz = sigma * z[i]
        plus[i] = nu[i] + sz
        minus[i] = nu[i] - sz


def flags_and_constants(config, sched, sample: bool, lr, dtype):
    """The int64 switches of one call and its constants (:func:`contract.pack_scalars`)."""
    c = config
    f = np.array([sample, c.w1 != 0.0, c.w2 != 0.0,
                  {"zero": HC_ZERO, "abs": HC_ABS, "rms": HC_RMS}[c.hess_comp], c.grad_glass,
                  {"fixed": LIM_FIXED, "adam": LIM_ADAM, "sgdm": LIM_SGDM}[c.limit_method],
                  sched.update], np.int64)
    return f, pack_scalars(config, sched, lr, dtype)
