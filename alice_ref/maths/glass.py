"""R1 (gradient glass): the covariance of glass along a line, and the power-law diagnostic.

Under (A1) boundaries crossed at a Poisson rate proportional to the distance and (A2) independent
zero-mean jumps, the glass term of g(nu + s sigma z) is, per coordinate, a random walk in s
leaving nu in each direction: E eps(delta)^2 = rho |delta| (separable case).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["glass_line_covariance", "power_law_exponent", "two_term_fit"]


def glass_line_covariance(offsets) -> np.ndarray:
    """Covariance shape of glass at offsets s_k along one direction, R1.

    C_kl = min(|s_k|, |s_l|) if s_k s_l > 0 else 0, so that Cov[glass of G] = sigma rho C: two
    independent random walks leave nu, one per side. Returns a NumPy float64 K x K matrix.

    >>> glass_line_covariance([-1.0, 0.0, 1.0])
    array([[1., 0., 0.],
           [0., 0., 0.],
           [0., 0., 1.]])
    """
    s = np.asarray(offsets, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError("offsets must be a non-empty 1-D sequence of finite numbers, "
                         f"got {offsets!r}")
    sign = np.sign(s)
    same_side = np.outer(sign, sign) > 0  # not s_k s_l > 0: that product can underflow to 0
    return np.where(same_side, np.minimum.outer(np.abs(s), np.abs(s)), 0.0)


def power_law_exponent(t, y):
    """Fit y = a t^p by least squares in log-log, R1: p = 2 Hessian-, p = 1 glass-dominated.

    Returns (p, standard_error). t, y: sequences of positive numbers (at least 3 points).

    >>> p, se = power_law_exponent([1.0, 2.0, 4.0], [3.0, 12.0, 48.0])
    >>> round(p, 12), round(se, 12)
    (2.0, 0.0)
    """
    lt = np.log(np.asarray(t, dtype=np.float64))
    ly = np.log(np.asarray(y, dtype=np.float64))
    if lt.shape != ly.shape or lt.ndim != 1 or lt.size < 3:
        raise ValueError("t and y must be 1-D sequences of the same length, at least 3 points")
    if not (np.all(np.isfinite(lt)) and np.all(np.isfinite(ly))):
        raise ValueError("t and y must be positive and finite")
    tc = lt - lt.mean()
    sxx = float(tc @ tc)
    if sxx == 0.0:
        raise ValueError("t must take at least two distinct values")
    p = float(tc @ (ly - ly.mean())) / sxx
    resid = ly - ly.mean() - p * tc
    se = math.sqrt(float(resid @ resid) / (lt.size - 2) / sxx)
    return p, se


def two_term_fit(t, y, weights=None):
    """Fit y = a t + b t^2 by weighted least squares, R1: the glass (a) and Hessian (b) parts.

    E||g(nu + t z) - g(nu)||^2 = a t + b t^2 when glass (variance rho |delta|, linear in t) and
    the Hessian (||H z||^2 t^2) add: a single power law t^p bends from p = 1 below the crossover
    t* = a / b (glass dominates) to p = 2 above it. Separable glass gives a = mean_i rho_i and
    b = mean_i h_i^2; a quadratic a = 0 and b = ||H||_F^2 / n.

    Args:
        t: the perturbation lengths (>= 2 distinct positive values).
        y: the measured curve at t.
        weights: per-point weights (default 1/y^2: relative errors, as a log-log fit).

    Returns:
        (a, b, cov): the coefficients and their 2 x 2 covariance from the weighted residuals
        (zeros when the fit is exact or has no residual degree of freedom).

    Raises:
        ValueError: mismatched or too short inputs, non-positive t or weights, non-finite y.

    >>> a, b, cov = two_term_fit([1.0, 2.0, 4.0], [3.0, 10.0, 36.0])
    >>> round(a, 12), round(b, 12)
    (1.0, 2.0)
    """
    t = np.asarray(t, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1 or t.size < 2 or np.unique(t).size < 2:
        raise ValueError("t and y must be 1-D sequences of the same length with at least 2 "
                         "distinct t")
    if not (np.all(np.isfinite(t)) and np.all(t > 0) and np.all(np.isfinite(y))):
        raise ValueError("t must be positive and finite, y finite")
    w = (1.0 / np.where(y != 0, y, 1.0) ** 2) if weights is None else \
        np.asarray(weights, dtype=np.float64)
    if w.shape != t.shape or not np.all(w > 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be positive and finite, one per point")
    X = np.stack([t, t * t], axis=1)
    XtW = X.T * w
    M = XtW @ X
    coef = np.linalg.solve(M, XtW @ y)
    resid = y - X @ coef
    dof = t.size - 2
    s2 = float(resid @ (w * resid)) / dof if dof > 0 else 0.0
    return float(coef[0]), float(coef[1]), s2 * np.linalg.inv(M)
