"""R4 (expected loss-deviation bound): the glass part of a loss change and its expected size."""

from __future__ import annotations

import math

from alice_ref._xp import prepare
from alice_ref.checks import check_nonnegative

__all__ = ["GLASS_COEFF", "JENSEN_COEFF", "loss_deviation_bound"]

# X = integral_0^1 eps(t delta) delta dt. For Brownian glass (many small jumps) X is Gaussian with
# Var X = rho |delta|^3 / 3, and E|N(0, v)| = sqrt(2 v / pi) gives E|X| = sqrt(2 / (3 pi)) ...
GLASS_COEFF = math.sqrt(2.0 / (3.0 * math.pi))  # ... sqrt(rho) |delta|^{3/2} ~= 0.460659
# Without the Gaussian limit, Jensen: E|X| <= sqrt(E X^2) = sqrt(1/3) sqrt(rho) |delta|^{3/2}.
JENSEN_COEFF = math.sqrt(1.0 / 3.0)


def loss_deviation_bound(delta, rho):
    """Bound on the expected size of the glass part of L(nu + delta) - L(nu), R4.

    E|X(delta)| <= GLASS_COEFF * sum_i sqrt(rho_i) |delta_i|^{3/2}, GLASS_COEFF = sqrt(2/(3 pi))
    (Brownian glass; equality for one coordinate). Returns a 0-d array in delta's namespace.
    Raises ValueError for negative rho or mismatched shapes.

    >>> import numpy as np
    >>> float(loss_deviation_bound(np.array([4.0]), np.array([1.0]))) == 8 * GLASS_COEFF
    True
    """
    xp, (d, r) = prepare(delta=delta, rho=rho)
    check_nonnegative("rho", r)
    return GLASS_COEFF * xp.sum(xp.sqrt(r) * three_halves(xp, d))


def three_halves(xp, d):
    """|delta|^{3/2} = |delta| sqrt(|delta|), elementwise (unchecked; R4's step-size law)."""
    a = xp.abs(d)
    return a * xp.sqrt(a)


def glass_term(xp, r, a32):
    """c sqrt(rho) |delta|^{3/2} per element, R4's bound on the expected glass size of each
    coordinate (loss_deviation_bound sums it); a32 = |delta|^{3/2} or its expectation
    E|delta|^{3/2} over a random delta. Unchecked: callers validate rho >= 0."""
    return GLASS_COEFF * xp.sqrt(r) * a32
