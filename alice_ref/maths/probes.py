"""R2 (optimal sampling distribution): Rademacher probes and the Hutchinson diagonal.

Idea from Duersch et al., "Curvature in the Looking-Glass" (arXiv 2411.16914); result numbers are
this library's (docs/derivations.md).
"""

from __future__ import annotations

import numpy as np

from alice_ref._xp import prepare, to_numpy
from alice_ref.checks import check_positive, check_real

__all__ = ["hessian_diag", "rademacher_from_uniform", "rademacher_variance"]


def hessian_diag(g_plus, g_minus, z, sigma: float):
    """Unbiased Hessian diagonal from an antithetic pair, R2/R3.

    D = z * (g+ - g-) / (2 sigma), with g+- = g(nu +- sigma z) and z Rademacher. The antithetic
    difference keeps only odd orders, so E_z D = diag(H) exactly on a quadratic.

    Raises ValueError for sigma <= 0 or mismatched shapes, TypeError for non-arrays.

    >>> import numpy as np
    >>> hessian_diag(np.array([3.0]), np.array([-1.0]), np.array([1.0]), 1.0)
    array([2.])
    """
    sigma = check_positive("sigma", sigma)
    _, (gp, gm, z) = prepare(g_plus=g_plus, g_minus=g_minus, z=z)
    return z * (gp - gm) / (2.0 * sigma)


def rademacher_from_uniform(u):
    """Rademacher signs from uniforms, the official convention: z = -1 where u < 0.5 else +1.

    >>> import numpy as np
    >>> rademacher_from_uniform(np.array([0.2, 0.5, 0.9]))
    array([-1.,  1.,  1.])
    """
    xp, (u,) = prepare(u=u)
    one = xp.ones_like(u)
    return xp.where(u < 0.5, -one, one)


def rademacher_variance(H, fourth_moment: float = 1.0) -> np.ndarray:
    """Exact variance of the Hutchinson diagonal estimator z_i (Hz)_i, R2.

    Var[D_i] = sum_{j != i} H_ij^2 + (E z^4 - 1) H_ii^2 for i.i.d. symmetric probes with
    E z^2 = 1 and the given fourth moment E z^4 (1 for Rademacher, 3 for Gaussian). E z^4 >= 1
    (Jensen) with equality iff z^2 = 1: Rademacher probes minimise it. H: a small dense symmetric
    matrix (any namespace); returns a NumPy float64 vector. Raises TypeError for a fourth_moment
    that is not a real number, ValueError for one below 1 or an H that is not square symmetric.

    >>> import numpy as np
    >>> rademacher_variance(np.array([[2.0, 1.0], [1.0, 3.0]]), fourth_moment=3.0)
    array([ 9., 19.])
    """
    m4 = check_real("fourth_moment", fourth_moment)
    if not m4 >= 1.0:
        raise ValueError("fourth_moment must be >= 1 (E z^4 >= (E z^2)^2 = 1), "
                         f"got {fourth_moment!r}")
    A = np.asarray(to_numpy(H), dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"H must be a square matrix, got shape {A.shape}")
    if not np.allclose(A, A.T, rtol=1e-12, atol=0.0):
        raise ValueError("H must be symmetric")
    d = np.diag(A)
    return np.sum(A * A, axis=1) - d * d + (m4 - 1.0) * d * d
