"""R7 (Nesterov exactness): look-ahead averaging without lag on quadratics."""

from __future__ import annotations

from alice_ref.checks import check_positive, check_real

__all__ = ["exact_phi", "nesterov_lag"]


def exact_phi(beta: float, omega: float) -> float:
    """The centre step phi = omega (1 - beta) that makes the look-ahead average exact, R7.

    With G_t = beta G_{t-1} + (1 - beta) g(nu_t), nu_t = mu_{t-1} + omega delta_t and
    mu_t = mu_{t-1} + phi delta_t, a quadratic L and G_{t-1} = g(mu_{t-1}) give G_t = g(mu_t) for
    every delta_t iff phi = omega (1 - beta). Raises ValueError unless 0 < beta < 1, omega > 0.

    >>> exact_phi(0.75, 2.0)
    0.5
    """
    beta = check_real("beta", beta)
    if not 0.0 < beta < 1.0:
        raise ValueError(f"beta must be in (0, 1), got {beta!r}")
    omega = check_positive("omega", omega)
    return omega * (1.0 - beta)


def nesterov_lag(prev_lag, H_delta, beta: float, omega: float, phi: float):
    """Closed-form lag G_t - g(mu_t) on a quadratic, R7.

    lag_t = ((1 - beta) omega - phi) H delta_t + beta lag_{t-1}; zero for every delta_t iff
    phi = exact_phi(beta, omega) and the previous lag is zero. Works on arrays of any namespace.

    >>> nesterov_lag(0.0, 2.0, 0.5, 1.0, 0.25)
    0.5
    """
    return ((1.0 - beta) * omega - phi) * H_delta + beta * prev_lag
