"""R8 (cost schedule): gradient evaluations per batch and the curvature averaging weight.

Truth: exact rational arithmetic (fractions.Fraction) over a schedule simulated from the rule of
docs/spec/algorithm.md#one-batch, step 2, written out here, and the algebra of time constants.
"""

import math
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alice_ref import curvature_beta, is_sample_step, sample_cost, warmup_length
from alice_ref.maths.schedule import EVALS_QUICK, EVALS_SAMPLE, is_warmup

PROPS = settings(max_examples=50, deadline=None)


def rule_is_sample(t, beta1, q):
    """docs/spec/algorithm.md#one-batch, step 2: sample step iff t <= 1/(1 - beta1) (warm-up) or
    t mod (q+1) = 0."""
    return t <= 1.0 / (1.0 - beta1) or t % (q + 1) == 0


def test_evaluation_counts():
    """R8: a sample step costs g(nu + sigma z), g(nu - sigma z), g(nu); a quick step g(nu)."""
    assert (EVALS_SAMPLE, EVALS_QUICK) == (3, 1)


@pytest.mark.parametrize("q", range(9))
@pytest.mark.parametrize("beta1", [0.5, 0.75, 0.875, 0.9])
def test_sample_cost_equals_simulated_count(q, beta1):
    """R8: over whole periods after warm-up the mean evaluations per batch is (3 + q)/(q + 1)
    exactly, counted batch by batch; the schedule agrees with the rule of
    docs/spec/algorithm.md#one-batch, step 2 throughout."""
    T = 400
    evals = []
    for t in range(1, T + 1):
        sample = is_sample_step(t, beta1, q)
        assert sample == rule_is_sample(t, beta1, q)
        assert is_warmup(t, beta1) == (t <= 1.0 / (1.0 - beta1))
        evals.append(3 if sample else 1)
    start = int(math.floor(1.0 / (1.0 - beta1))) + 1  # first batch after warm-up
    start += (-start + 1) % (q + 1)  # align to the start of a period: t = 1 mod (q+1)
    for periods in (1, 7, 20):
        window = evals[start - 1:start - 1 + periods * (q + 1)]
        assert len(window) == periods * (q + 1)
        assert Fraction(sum(window), len(window)) == Fraction(3 + q, q + 1)
    assert sample_cost(q) == float(Fraction(3 + q, q + 1))


@PROPS
@given(q=st.integers(0, 1000))
@example(q=0)
def test_sample_cost_formula(q):
    """R8: sample_cost(q) = (3 + q)/(q + 1): 3 for q = 0, decreasing towards 1."""
    c = sample_cost(q)
    assert c == pytest.approx((3 + q) / (q + 1), rel=1e-15)
    assert 1.0 < c <= 3.0 and sample_cost(q + 1) < c


@PROPS
@given(beta2=st.floats(0.5, 0.999999), q=st.integers(0, 50))
@example(beta2=0.999, q=3)
@example(beta2=0.75, q=2)
def test_curvature_beta_keeps_time_constant(beta2, q):
    """R8: beta3 = 1 - (q+1)(1 - beta2): an average refreshed every q+1 batches keeps beta2's
    time constant, (q+1)/(1 - beta3) = 1/(1 - beta2), and beta3 <= beta2^(q+1) (Bernoulli).
    Valid iff (q+1)(1 - beta2) < 1; otherwise ValueError naming quick_steps and beta2."""
    if (q + 1) * (1 - beta2) < 1 - 1e-12:
        b3 = curvature_beta(beta2, q)
        assert 0.0 < b3 < 1.0
        assert (q + 1) / (1 - b3) == pytest.approx(1 / (1 - beta2), rel=1e-9)
        assert b3 <= beta2 ** (q + 1) * (1 + 1e-12)
    elif (q + 1) * (1 - beta2) > 1 + 1e-12:
        with pytest.raises(ValueError, match="quick_steps"):
            curvature_beta(beta2, q)


def test_curvature_beta_boundary():
    """R8: (q+1)(1 - beta2) = 1 exactly gives beta3 = 0: not a valid average."""
    with pytest.raises(ValueError, match="beta3"):
        curvature_beta(0.75, 3)
    assert curvature_beta(0.75, 2) == pytest.approx(0.25, rel=1e-15)
    assert curvature_beta(0.999, 3) == pytest.approx(0.996, rel=1e-12)


def test_warmup_length_float64():
    """R8, docs/spec/algorithm.md#known-quirk-the-warm-up-length: warm-up threshold
    1/(1 - beta1): 10 batches at beta1 = 0.9."""
    assert warmup_length(0.9) == pytest.approx(10.0, rel=1e-14)
    assert sum(is_warmup(t, 0.9) for t in range(1, 30)) == 10
    assert sum(is_warmup(t, 0.75) for t in range(1, 30)) == 4


@pytest.mark.parametrize("beta1,batches", [(0.9, 10), (0.95, 20), (0.99, 100), (0.999, 1000),
                                           (0.75, 4), (0.8, 5)])
def test_warmup_is_one_time_constant_for_decimal_betas(beta1, batches):
    """Warm-up lasts 1/(1 - beta1) batches for the decimal beta1 as written; rounded arithmetic
    would give 19 at 0.95 (float64: 1/(1 - 0.95) = 19.99999999999998) and 9 at 0.9 (float32)."""
    assert sum(is_warmup(t, beta1) for t in range(1, 2 * batches + 2)) == batches
    assert warmup_length(beta1) == batches
