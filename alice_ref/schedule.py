"""R8 (cost schedule) and Alice's batch schedule (ALICE.md steps 1-2)."""

from __future__ import annotations

import numbers
from fractions import Fraction

from ._xp import check_real

__all__ = ["sample_cost", "curvature_beta", "warmup_length", "is_warmup", "is_sample_step",
           "ema_beta", "EVALS_SAMPLE", "EVALS_QUICK"]

EVALS_SAMPLE = 3  # g(nu + sigma z), g(nu - sigma z), g(nu)
EVALS_QUICK = 1  # g(nu)


def _check_q(q) -> int:
    if isinstance(q, bool) or not isinstance(q, numbers.Integral) or q < 0:
        raise ValueError(f"quick_steps must be an integer >= 0, got {q!r}")
    return int(q)


def sample_cost(q: int) -> float:
    """Mean gradient evaluations per batch with q quick steps per sample step, R8: (3+q)/(q+1).

    >>> sample_cost(3)
    1.5
    """
    q = _check_q(q)
    return (EVALS_SAMPLE + EVALS_QUICK * q) / (q + 1)


def curvature_beta(beta2: float, q: int) -> float:
    """beta3 = 1 - (q+1)(1 - beta2): keeps beta2's time constant when curvature refreshes every
    q+1 batches, R8. Raises ValueError unless 0 < beta3 < 1, i.e. (q+1)(1 - beta2) < 1.

    >>> round(curvature_beta(0.999, 3), 12)
    0.996
    """
    q = _check_q(q)
    b2 = check_real("beta2", beta2)
    if not 0.0 < b2 < 1.0:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2!r}")
    b3 = 1.0 - (q + 1) * (1.0 - b2)
    if not b3 > 0.0:
        raise ValueError(
            f"(quick_steps + 1) * (1 - beta2) must be < 1 so that beta3 = {b3!r} is a valid "
            f"average; got quick_steps={q}, beta2={beta2!r}")
    return b3


def warmup_length(beta1: float) -> float:
    """Warm-up threshold 1/(1 - beta1), exact for the decimal value of beta1 as written.

    The intent (ALICE.md step 2) is a warm-up of one averaging time constant. Rounded arithmetic
    misses it by one batch: the official code keeps beta1 in float32 (0.9 gives 9.9999976, so 9
    batches, not 10) and even float64 gives 19.99999999999998 for 0.95. The threshold is
    therefore computed from Fraction(repr(beta1)): 0.9 -> 10, 0.95 -> 20, 0.999 -> 1000; for
    beta1 exact in binary (0.5, 0.75, 0.875) it equals float arithmetic. Raises ValueError unless
    0 <= beta1 < 1.

    >>> warmup_length(0.75), warmup_length(0.95), warmup_length(0.999)
    (4.0, 20.0, 1000.0)
    """
    return float(_warmup_fraction(beta1))


def _warmup_fraction(beta1) -> Fraction:
    b1 = check_real("beta1", beta1)
    if not 0.0 <= b1 < 1.0:
        raise ValueError(f"beta1 must be in [0, 1), got {beta1!r}")
    return 1 / (1 - Fraction(repr(b1)))


def is_warmup(t: int, beta1: float) -> bool:
    """Batch t (1-based) is a warm-up batch iff t <= 1/(1 - beta1) (see warmup_length)."""
    return t <= _warmup_fraction(beta1)


def is_sample_step(t: int, beta1: float, q: int) -> bool:
    """Batch t (1-based) is a sample step iff it is in warm-up or t mod (q+1) = 0, R8.

    >>> [t for t in range(1, 13) if is_sample_step(t, 0.75, 3)]
    [1, 2, 3, 4, 8, 12]
    """
    return is_warmup(t, beta1) or t % (_check_q(q) + 1) == 0


def ema_beta(beta, t):
    """Bias-correcting average weight beta_t = min(beta, (t-1)/t) for batch t >= 1.

    t may be a Python number or an array (e.g. a traced JAX counter).

    >>> ema_beta(0.9, 1), ema_beta(0.9, 4), ema_beta(0.5, 4)
    (0.0, 0.75, 0.5)
    """
    if isinstance(t, numbers.Real):
        return min(float(beta), (t - 1) / t)
    from ._xp import array_namespace

    xp = array_namespace(t)
    tf = xp.astype(t, xp.float32) if not xp.isdtype(t.dtype, "real floating") else t
    return xp.minimum(xp.asarray(beta, dtype=tf.dtype), (tf - 1.0) / tf)
