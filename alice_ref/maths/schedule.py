"""R8 (cost schedule) and Alice's batch schedule (docs/spec/algorithm.md#one-batch, steps 1-2)."""

from __future__ import annotations

import numbers
from fractions import Fraction

from alice_ref.checks import check_count, check_real

__all__ = ["sample_cost", "curvature_beta", "warmup_length", "is_warmup", "is_sample_step",
           "ema_beta", "EVALS_SAMPLE", "EVALS_QUICK"]

EVALS_SAMPLE = 3  # g(nu + sigma z), g(nu - sigma z), g(nu)
EVALS_QUICK = 1  # g(nu)


def _check_q(q) -> int:
    return check_count("quick_steps", q)


def sample_cost(q: int) -> float:
    """Mean gradient evaluations per batch with q quick steps per sample step, R8.

    cost(q) = (3 + q)/(q + 1): one sample step (3 evaluations, EVALS_SAMPLE) and q quick steps
    (1 evaluation each, EVALS_QUICK) per q + 1 batches.

    Args:
        q: quick steps per sample step, an integer >= 0.

    Returns:
        The mean number of evaluations per batch, in (1, 3].

    Raises:
        ValueError: q is not an integer >= 0.

    Example:
        Three evaluations without quick steps, half as many again as plain SGD at q = 3:

        >>> sample_cost(0), sample_cost(1), sample_cost(3)
        (3.0, 2.0, 1.5)
    """
    q = _check_q(q)
    return (EVALS_SAMPLE + EVALS_QUICK * q) / (q + 1)


def curvature_beta(beta2: float, q: int) -> float:
    """Curvature average weight beta3 = 1 - (q+1)(1 - beta2), R8.

    The curvature averages H and R refresh once every q+1 batches, so each of their updates
    must forget (q+1) times as much as beta2's: beta3 keeps beta2's time constant,
    1/(1 - beta3) = (1/(1 - beta2)) / (q+1) refreshes.

    Args:
        beta2: the squared-gradient weight, in (0, 1).
        q: quick steps per sample step, an integer >= 0.

    Returns:
        beta3, in (0, 1).

    Raises:
        ValueError: q is not an integer >= 0, beta2 is not in (0, 1), or
            (q+1)(1 - beta2) >= 1 (beta3 would not be an average weight).
        TypeError: beta2 is not a real number.

    Example:
        Four batches per refresh quadruple the forgetting per refresh:

        >>> round(curvature_beta(0.999, 3), 12), curvature_beta(0.75, 1)
        (0.996, 0.5)
        >>> curvature_beta(0.75, 3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: (quick_steps + 1) * (1 - beta2) must be < 1 so that beta3 = 0.0 is a ...
    """
    q = _check_q(q)
    b2 = check_real("beta2", beta2, lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    b3 = 1.0 - (q + 1) * (1.0 - b2)
    if not b3 > 0.0:
        raise ValueError(
            f"(quick_steps + 1) * (1 - beta2) must be < 1 so that beta3 = {b3!r} is a valid "
            f"average; got quick_steps={q}, beta2={beta2!r}")
    return b3


def warmup_length(beta1: float) -> float:
    """Warm-up threshold 1/(1 - beta1), exact for the decimal value of beta1 as written.

    The intent (docs/spec/algorithm.md#one-batch, step 2) is a warm-up of one averaging time
    constant. Rounded arithmetic misses it by one batch: the official code keeps beta1 in float32
    (0.9 gives 9.9999976, so 9 batches, not 10) and even float64 gives 19.99999999999998 for 0.95
    (docs/spec/algorithm.md#known-quirk-the-warm-up-length). The threshold is
    therefore computed from Fraction(repr(beta1)): 0.9 -> 10, 0.95 -> 20, 0.999 -> 1000; for
    beta1 exact in binary (0.5, 0.75, 0.875) it equals float arithmetic.

    Args:
        beta1: the gradient average weight, in [0, 1).

    Returns:
        1/(1 - beta1) as a float (batches t <= it are warm-up).

    Raises:
        ValueError: beta1 is not in [0, 1).
        TypeError: beta1 is not a real number.

    Example:
        One time constant 1/(1 - beta1), exactly:

        >>> warmup_length(0.75), warmup_length(0.95), warmup_length(0.999)
        (4.0, 20.0, 1000.0)
    """
    return float(_warmup_fraction(beta1))


def _warmup_fraction(beta1) -> Fraction:
    b1 = check_real("beta1", beta1, lo=0.0, hi=1.0, hi_open=True)
    return 1 / (1 - Fraction(repr(b1)))


def is_warmup(t: int, beta1: float) -> bool:
    """Whether batch t (1-based) is a warm-up batch: t <= 1/(1 - beta1).

    The rule is docs/spec/algorithm.md#one-batch, step 2. The threshold is exact for the
    decimal beta1 (see :func:`warmup_length`); during warm-up every batch is a sample step and
    the state is not updated.

    Args:
        t: the batch number (1-based).
        beta1: the gradient average weight, in [0, 1).

    Returns:
        True during warm-up.

    Raises:
        ValueError: beta1 is not in [0, 1).
        TypeError: beta1 is not a real number.

    Example:
        beta1 = 0.9 warms up for 10 batches (float32 arithmetic would give 9):

        >>> [t for t in range(1, 7) if is_warmup(t, 0.75)], is_warmup(10, 0.9), is_warmup(11, 0.9)
        ([1, 2, 3, 4], True, False)
    """
    return t <= _warmup_fraction(beta1)


def is_sample_step(t: int, beta1: float, q: int) -> bool:
    """Whether batch t (1-based) is a sample step: warm-up or t mod (q+1) = 0 (R8).

    A sample step evaluates three gradients and refreshes the curvature averages; the others
    are quick steps (one evaluation).

    Args:
        t: the batch number (1-based).
        beta1: the gradient average weight, in [0, 1) (sets the warm-up).
        q: quick steps per sample step, an integer >= 0.

    Returns:
        True for a sample step.

    Raises:
        ValueError: beta1 is not in [0, 1), or q is not an integer >= 0.
        TypeError: beta1 is not a real number.

    Example:
        Warm-up for beta1 = 0.75 is batches 1-4; then every fourth batch samples:

        >>> [t for t in range(1, 13) if is_sample_step(t, 0.75, 3)]
        [1, 2, 3, 4, 8, 12]
    """
    return is_warmup(t, beta1) or t % (_check_q(q) + 1) == 0


def ema_beta(beta, t):
    """Bias-correcting average weight beta_t = min(beta, (t-1)/t) for batch t >= 1 (step 1).

    With weight (t-1)/t the average is the plain mean of the first t samples, so early averages
    carry no bias towards their initial 0; from t = 1/(1 - beta) on the weight is beta. Nothing
    is checked (t = 0 divides by zero), so that traced counters work.

    Args:
        beta: the nominal weight, in [0, 1).
        t: the batch number (>= 1): a Python number, or an array such as a traced JAX counter
            (then the result is an array of t's floating dtype, float32 for an integer t).

    Returns:
        beta_t, a float for a number t.

    Example:
        Batch 1 takes its sample, batch 4 keeps 3/4 of the mean of batches 1-3:

        >>> ema_beta(0.9, 1), ema_beta(0.9, 4), ema_beta(0.5, 4)
        (0.0, 0.75, 0.5)
    """
    if isinstance(t, numbers.Real):
        return min(float(beta), (t - 1) / t)
    from alice_ref._xp import array_namespace

    xp = array_namespace(t)
    tf = xp.astype(t, xp.float32) if not xp.isdtype(t.dtype, "real floating") else t
    return xp.minimum(xp.asarray(beta, dtype=tf.dtype), (tf - 1.0) / tf)
