"""Independent brute-force oracles, shared by ``alice-ref verify`` and the tests (R5).

R5's model of the loss along one coordinate, a distance d >= 0 downhill from a point with
gradient magnitude a = |g|, Hessian h and glass density rho, is

    m(d) = -a d + h d^2 / 2 + c sqrt(rho) d^{3/2},    c = sqrt(2 / (3 pi))  (R4).

The oracles here minimise m numerically, from its values alone: they never call
``effective_curvature`` or ``optimal_step`` (the closed form they check), and c is derived here
again rather than read from the library.

Example:
    With no glass the minimiser is Newton's a / h:

    >>> import numpy as np
    >>> d = r5_argmin(np.array([2.0]), np.array([4.0]), np.array([0.0]))
    >>> bool(abs(d[0] - 0.5) < 1e-9)
    True
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["C_GLASS", "golden_section_min", "r5_model", "r5_bracket", "r5_argmin"]

C_GLASS = math.sqrt(2.0 / (3.0 * math.pi))  # R4's Brownian-glass constant, by algebra


def golden_section_min(f, lo, hi, iters=200):
    """Vectorised golden-section search of a convex f on [lo, hi] (brute force, values only).

    Args:
        f: elementwise function of an array shaped like ``lo``.
        lo, hi: float arrays, the brackets (one search per element).
        iters: the number of interval reductions (200 shrink it by 0.618^200).

    Returns:
        The midpoints of the final intervals.
    """
    r = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo.copy(), hi.copy()
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        left = fc < fd
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        c_new, d_new = b - r * (b - a), a + r * (b - a)
        c, d = c_new, d_new
        fc, fd = f(c), f(d)
    return (a + b) / 2.0


def r5_model(d, a, h, rho):
    """R5's model m(d) = -a d + h d^2 / 2 + c sqrt(rho) d^{3/2} (NumPy float64, broadcasting)."""
    return -a * d + 0.5 * h * d**2 + C_GLASS * np.sqrt(rho) * d * np.sqrt(d)


def r5_bracket(a, h, rho):
    """An upper end u of an interval [0, u] holding the minimiser of m (R5): m'(d) >= 0 beyond
    d = a / h (h > 0) and beyond d = (a / (1.5 c sqrt(rho)))^2 (rho > 0); inf where h = rho = 0."""
    return np.minimum(np.where(h > 0, a / np.where(h > 0, h, 1.0), np.inf),
                      np.where(rho > 0,
                               (a / (1.5 * C_GLASS * np.sqrt(np.where(rho > 0, rho, 1.0))))**2,
                               np.inf))


def r5_argmin(a, h, rho, iters=200, widen=0.0):
    """The minimiser over d >= 0 of R5's model m, by golden section on [0, (1 + widen) u] with
    u = :func:`r5_bracket` (``widen`` > 0 keeps a minimiser at u strictly inside)."""
    a = np.asarray(a, dtype=np.float64)
    return golden_section_min(lambda d: r5_model(d, a, h, rho), np.zeros(a.shape),
                              r5_bracket(a, h, rho) * (1.0 + widen), iters)
