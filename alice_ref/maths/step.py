"""R5 (optimal Hessian-glass quasi-Newton step) and R6 (step bounds that extend Adam)."""

from __future__ import annotations

import math

from alice_ref._xp import is_traced, prepare
from alice_ref.checks import check_nonnegative, check_real

__all__ = ["ALPHA_COEFF", "LIMIT_METHODS", "effective_curvature", "optimal_step", "bounded_step"]

# Minimising m(d) = -a d + h d^2/2 + c sqrt(rho) d^{3/2} (c = GLASS_COEFF of R4): with
# u = sqrt(d), the stationarity condition h u^2 + (3/2) c sqrt(rho) u - a = 0 is a quadratic in u;
# solving it and writing d = a / h_opt gives h_opt = h + alpha + sqrt(alpha (alpha + 2h)) with
# alpha = (9/8) c^2 rho / a = 3 rho / (4 pi a).
ALPHA_COEFF = 3.0 / (4.0 * math.pi)  # = (9/8) * (2 / (3 pi)) ~= 0.2387324

LIMIT_METHODS = ("fixed", "sgdm", "adam")


def _h_opt(xp, a, h, r, eps):
    """h_opt = h + alpha + sqrt(alpha (alpha + 2h)) + eps, alpha = ALPHA_COEFF rho / (a + eps) (R5).

    The one definition of R5's effective curvature (Alg. 3, steps 1-2); every engine is a
    transliteration of these lines. alpha is 0 where rho = 0 and inf where a + eps = 0 < rho
    (reachable only with eps = 0, which AliceConfig refuses); where a + eps > 0 it is the plain
    quotient, bit for bit.
    """
    den = a + eps
    pos = den > 0
    safe = xp.where(pos, den, xp.ones_like(den))
    alpha = xp.where(pos, ALPHA_COEFF * r / safe, xp.where(r > 0, xp.full_like(r, math.inf), r))
    return alpha + h + xp.sqrt(alpha * (alpha + 2.0 * h)) + eps


def _check_eps(eps) -> float:
    """eps as a float >= 0, else TypeError (not a real number) or ValueError naming eps."""
    return check_real("eps", eps, lo=0.0)


def effective_curvature(g, h, rho, eps: float = 0.0):
    """Effective curvature h_opt of the optimal Hessian-glass step, R5 (Alg. 3, steps 1-2).

    h_opt = h + alpha + sqrt(alpha (alpha + 2h)) + eps, alpha = 3 rho / (4 pi (|g| + eps)), so
    that d* = |g| / h_opt minimises -|g| d + h d^2/2 + c sqrt(rho) d^{3/2};
    h_opt >= max(h, 2 alpha).
    Raises ValueError for negative h, rho or eps, or mismatched shapes.

    >>> import numpy as np
    >>> effective_curvature(np.array([2.0]), np.array([3.0]), np.array([0.0]))
    array([3.])
    """
    eps = _check_eps(eps)
    xp, (g, h, r) = prepare(g=g, h=h, rho=rho)
    check_nonnegative("h", h)
    check_nonnegative("rho", r)
    return _h_opt(xp, xp.abs(g), h, r, eps)


def optimal_step(g, h, rho, eps: float = 0.0):
    """Signed unbounded optimal step delta = -sgn(g) |g| / h_opt, R5 (0 where g = 0).

    With rho = 0 this is Newton's step -g/h; with h = 0 its size is 2 pi g^2 / (3 rho); with
    h = rho = eps = 0 it is -sgn(g) inf (no curvature bounds it; bounded_step clips it).

    >>> import numpy as np
    >>> optimal_step(np.array([2.0, -1.0, 0.0]), np.array([4.0, 4.0, 4.0]), np.zeros(3))
    array([-0.5 ,  0.25,  0.  ])
    """
    h_opt = effective_curvature(g, h, rho, eps)
    xp, (g,) = prepare(g=g)
    nz = g != 0
    curved = h_opt > 0  # h_opt = 0 only when h = rho = eps = 0: no curvature, unbounded step
    d = xp.abs(g) / xp.where(nz & curved, h_opt, xp.ones_like(h_opt))
    d = xp.where(curved | ~nz, d, xp.full_like(d, math.inf))
    return xp.where(nz, -xp.sign(g) * d, xp.zeros_like(g))


def bounded_step(g, h, rho, v, lr_min, lr_max, limit: str = "adam", eps: float = 1e-8):
    """Alice's signed step (before phi and omega), R5 + R6.

    docs/spec/algorithm.md#one-batch, step 5; Alg. 3, steps 1-8.

    d = |g| / h_opt (R5, with eps guards), clipped to [lr_min f, lr_max f] with f = 1 ('fixed'),
    |g| ('sgdm') or |g| / (sqrt(v) + eps) ('adam'); a NaN d becomes the upper bound, as in the
    official code. delta = -d where g > 0, else +d. Here g is the gradient average G, v the
    squared-gradient average V (ignored unless 'adam', may be None), h the curvature (0, H or
    sqrt(H)) and rho the glass density (0 without grad_glass). Raises ValueError for an unknown
    limit, negative h/rho/v/eps or lr_min > lr_max.

    >>> import numpy as np
    >>> bounded_step(np.array([1.0]), np.array([0.0]), np.array([0.0]), None, 0.0, 0.1, "fixed")
    array([-0.1])
    """
    if limit not in LIMIT_METHODS:
        raise ValueError(f"limit must be one of {LIMIT_METHODS}, got {limit!r}")
    eps = _check_eps(eps)
    if v is None:
        if limit == "adam":
            raise ValueError("v is required for limit='adam'")
        v = 0.0
    xp, (g, h, r, v, lo, hi) = prepare(g=g, h=h, rho=rho, v=v, lr_min=lr_min, lr_max=lr_max)
    for name, x in (("h", h), ("rho", r), ("v", v), ("lr_min", lo)):
        check_nonnegative(name, x)
    if not is_traced(lo) and not bool(xp.all(lo <= hi)):
        raise ValueError(f"lr_max must be >= lr_min, got lr_min={lr_min!r}, lr_max={lr_max!r}")
    return _bounded_step(xp, g, h, r, v, lo, hi, limit, eps)


def _bounded_step(xp, g, h, r, v, lo, hi, limit, eps):
    """Unchecked core of bounded_step (the optimiser's hot path calls this after validation)."""
    a = xp.abs(g)
    d = a / _h_opt(xp, a, h, r, eps)  # R5 (Alg. 3, step 3)
    if limit == "sgdm":
        f = a
    elif limit == "adam":
        f = a / (xp.sqrt(v) + eps)
    else:
        f = None
    if f is None:
        f = xp.ones_like(a)
    lo_b, hi_b = lo * f, hi * f
    d = xp.where(d < lo_b, lo_b, xp.where(d < hi_b, d, hi_b))
    return xp.where(g > 0, -d, d)
