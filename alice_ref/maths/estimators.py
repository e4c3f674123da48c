"""R3 (glass kernel): optimal finite-difference estimators of glass density and curvature.

Gradients G_k = g(nu + s_k sigma z) along one Rademacher direction carry a smooth part that is a
polynomial of degree m in s, and glass with covariance sigma rho C (R1). The minimum-variance
unbiased quadratic estimator annihilates the polynomial and whitens C (REML).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from alice_ref._xp import prepare
from alice_ref.checks import check_count, check_positive
from alice_ref.maths.glass import glass_line_covariance

__all__ = ["curvature_magnitude", "glass_density", "glass_kernel", "glass_density_from_line"]

CURVATURE_MODES = ("abs", "rms")


def curvature_magnitude(g_plus, g_minus, sigma: float, mode: str = "abs"):
    """Sign-free curvature sample of Alice, R3 (Alg. 2, steps 5-6).

    'abs': |g+ - g-| / (2 sigma), whose mean is >= |H_ii| (Jensen);
    'rms': ((g+ - g-) / (2 sigma))^2, whose mean is sum_j H_ij^2 + rho_i / (2 sigma) (the glass
    leaks into 'rms'). Raises ValueError for an unknown mode, sigma <= 0 or mismatched shapes.

    >>> import numpy as np
    >>> curvature_magnitude(np.array([1.0]), np.array([-3.0]), 0.5, "rms")
    array([16.])
    """
    if mode not in CURVATURE_MODES:
        raise ValueError(f"mode must be one of {CURVATURE_MODES}, got {mode!r}")
    sigma = check_positive("sigma", sigma)
    xp, (gp, gm) = prepare(g_plus=g_plus, g_minus=g_minus)
    d = (gp - gm) / (2.0 * sigma)
    return xp.abs(d) if mode == "abs" else d * d


def glass_density(g_plus, g_minus, g_zero, sigma: float):
    """Glass density sample from the three-point kernel, R3 (Alice's estimator).

    rho_hat = 2 (gbar - g0)^2 / sigma with gbar = (g+ + g-)/2: the kernel w = (1, -2, 1) on
    offsets (-1, 0, +1) annihilates constant and Hessian terms, and Var[gbar - g0] = sigma rho / 2
    under R1, so E rho_hat = rho. This is the official "variation density" of Alg. 2, steps 7-11
    (gbar at step 7, g0 at step 8, rho_hat at steps 9-11;
    docs/spec/algorithm.md#alg-2-sample-step). Raises ValueError for sigma <= 0 or mismatched
    shapes.

    >>> import numpy as np
    >>> glass_density(np.array([2.0]), np.array([0.0]), np.array([0.0]), 0.5)
    array([4.])
    """
    sigma = check_positive("sigma", sigma)
    _, (gp, gm, g0) = prepare(g_plus=g_plus, g_minus=g_minus, g_zero=g_zero)
    d = (gp + gm) / 2.0 - g0
    return 2.0 * d * d / sigma


def _check_design(offsets, order):
    check_count("order", order)
    try:
        s = tuple(float(v) for v in offsets)
    except (TypeError, ValueError) as e:
        raise TypeError(f"offsets must be a sequence of numbers, got {offsets!r}") from e
    return s, int(order)


@lru_cache(maxsize=256)
def _kernel_weights(offsets: tuple, order: int) -> tuple[np.ndarray, int]:
    """W (K x r) with Q = W W^T = N (N^T C N)^{-1} N^T, and the degrees of freedom r."""
    s = np.asarray(offsets, dtype=np.float64)
    C = glass_line_covariance(s)
    # The annihilator of polynomials of degree <= order in s is that of polynomials in s / scale:
    # build the Vandermonde matrix on the scaled offsets, so that its rank does not depend on
    # the offsets' unit (a relative threshold on unit-scale columns).
    scale = float(np.max(np.abs(s), initial=0.0)) or 1.0
    P = np.vander(s / scale, order + 1, increasing=True)  # P_kj = (s_k / scale)^j
    u, sv, _ = np.linalg.svd(P, full_matrices=True)
    rank = int(np.sum(sv > 1e-12 * sv.max(initial=0.0)))
    dof = len(s) - rank
    if dof < 1:
        raise ValueError(
            f"offsets {offsets} leave no degree of freedom after annihilating a polynomial of "
            f"order {order}: need more distinct offsets than order + 1 = {order + 1}")
    N = u[:, rank:]  # orthonormal basis of {w : sum_k w_k s_k^j = 0, j = 0..order}
    M = N.T @ C @ N
    ev = np.linalg.eigvalsh(M)
    if not ev.min() > 1e-12 * scale:  # relative to C's scale (C_kl <= max |s| = scale)
        raise ValueError(
            f"offsets {offsets} admit an annihilating combination that sees no glass "
            f"(N^T C N is singular at order {order}): every such combination must touch a "
            f"nonzero offset")
    L = np.linalg.cholesky(np.linalg.inv(M))
    return N @ L, dof


def glass_kernel(offsets, order: int = 1) -> tuple[np.ndarray, int]:
    """REML glass kernel for gradients at offsets s_k (units of sigma z), R3.

    Q = N (N^T C N)^{-1} N^T with N spanning the annihilator of polynomials of degree <= order
    and C the glass covariance of R1; rho_hat = sum_kl Q_kl G_k G_l / (sigma dof) is the
    minimum-variance unbiased quadratic estimator under Gaussian glass (relative variance
    2/dof). Returns (Q, dof), Q a NumPy float64 K x K matrix. Raises ValueError when the design
    leaves no degree of freedom or cannot see glass.

    >>> Q, dof = glass_kernel([-1.0, 0.0, 1.0])
    >>> dof, (Q * 2).round(12).tolist()
    (1, [[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    """
    s, order = _check_design(offsets, order)
    W, dof = _kernel_weights(s, order)
    return W @ W.T, dof


def glass_density_from_line(offsets, grads, sigma: float, order: int = 1):
    """Glass density from K gradients G_k = g(nu + s_k sigma z), R3 (REML kernel).

    rho_hat = sum_j (sum_k W_kj G_k)^2 / (sigma dof), where Q = W W^T is glass_kernel's matrix.
    With offsets (-1, 0, 1) and order 1 this equals glass_density. grads: a sequence of K arrays
    of one shape; the result has their namespace, device and dtype.

    >>> import numpy as np
    >>> g = [np.array([2.0]), np.array([0.0]), np.array([0.0])]
    >>> glass_density_from_line([1.0, 0.0, -1.0], g, 0.5)
    array([4.])
    """
    s, order = _check_design(offsets, order)
    sigma = check_positive("sigma", sigma)
    grads = list(grads)
    if len(grads) != len(s):
        raise ValueError(f"grads has {len(grads)} arrays but offsets has {len(s)} entries")
    if not grads:
        raise ValueError("offsets must not be empty")
    _, arrays = prepare(**{f"grads[{k}]": g for k, g in enumerate(grads)})
    W, dof = _kernel_weights(s, order)
    total = None
    for j in range(W.shape[1]):
        comb = sum(float(W[k, j]) * arrays[k] for k in range(len(s)) if W[k, j] != 0.0)
        total = comb * comb if total is None else total + comb * comb
    return total / (sigma * dof)


