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
