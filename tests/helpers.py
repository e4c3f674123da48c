"""Test helpers: conversion to NumPy, backend-aware closeness, Monte Carlo mean/variance SEs."""

import math

import numpy as np

from alice_ref._xp import to_numpy


def to_np(x):
    """Any array (or scalar) as a float64 NumPy array."""
    return np.asarray(to_numpy(x) if hasattr(x, "shape") else x, dtype=np.float64)


def assert_close(actual, expected, rtol=1e-12, atol=0.0):
    np.testing.assert_allclose(to_np(actual), to_np(expected), rtol=rtol, atol=atol)


def tol_for(dtype_name: str) -> float:
    """Relative tolerance for rounding in a dtype ('float32' or 'float64')."""
    return 1e-5 if "32" in str(dtype_name) else 1e-12


def mean_se(x, axis=0):
    """Sample mean along ``axis`` and its standard error sd / sqrt(n) (i.i.d. samples)."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=axis), x.std(axis=axis, ddof=1) / math.sqrt(x.shape[axis])


def var_se(x, axis=0):
    """Unbiased sample variance along ``axis`` and its standard error (delta method: the SE of
    the mean of the squared deviations (x - xbar)^2)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis]
    c2 = (x - x.mean(axis=axis, keepdims=True)) ** 2
    return c2.mean(axis=axis) * n / (n - 1), c2.std(axis=axis, ddof=1) / math.sqrt(n)


def count_calls(fn) -> int:
    """The Python and C calls ``fn()`` makes (sys.setprofile's 'call' and 'c_call' events)."""
    import sys

    n = [0]

    def prof(frame, event, arg):
        if event in ("call", "c_call"):
            n[0] += 1
    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return n[0]


def every_interrupt(make, call, snapshot, same, check_next=None):
    """Run ``call(make())`` once per call index k, with SIGUSR1 (whose handler raises
    KeyboardInterrupt: the ``interrupt_handler`` fixture) sent at the k-th call; each result
    must equal the snapshot before the call or the one after it, never a mix. ``check_next``,
    every fifth k, checks that the object goes on. Returns the counts of outcomes."""
    import os
    import signal
    import sys

    ref = make()
    before = snapshot(ref)
    total = count_calls(lambda: call(ref))
    after = snapshot(ref)
    assert not same(before, after)
    outcomes = {"before": 0, "after": 0, "raised": 0}
    for k in range(1, total + 1):
        obj = make()
        n = [0]

        def prof(frame, event, arg, n=n, k=k):
            if event in ("call", "c_call"):
                n[0] += 1
                if n[0] == k:
                    sys.setprofile(None)  # (the rest runs at full speed)
                    os.kill(os.getpid(), signal.SIGUSR1)
        try:
            sys.setprofile(prof)
            try:
                call(obj)
            finally:
                sys.setprofile(None)
        except KeyboardInterrupt:
            outcomes["raised"] += 1
        got = snapshot(obj)
        if same(got, before):
            outcomes["before"] += 1
        else:
            assert same(got, after), f"interrupt at call {k} of {total} left a mixed state"
            outcomes["after"] += 1
        if check_next is not None and k % 5 == 0:
            check_next(obj)
    assert outcomes["before"] > 0 and outcomes["after"] > 0, outcomes
    assert outcomes["raised"] > 0.9 * total, outcomes  # the signal was delivered, not lost
    return outcomes
