"""Test helpers: conversion to NumPy and backend-aware closeness."""

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
