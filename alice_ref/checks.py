"""Argument checks, written once: every scalar (and array-sign) check of the library.

Each raises TypeError (wrong kind) or ValueError (out of range) whose message names the
argument, the value and the allowed range (docs/spec/design.md#house-rules), before anything
changes. Layer 0: imports nothing of alice_ref but :mod:`alice_ref._xp`.
"""

from __future__ import annotations

import math
import numbers

from alice_ref._xp import array_namespace, is_array_api_obj, is_traced

__all__ = ["check_real", "check_positive", "check_nonnegative", "check_count", "check_choice",
           "check_bool", "check_lr"]


def check_real(name: str, value, *, lo=None, lo_open=False, hi=None, hi_open=False,
               finite=False) -> float:
    """``value`` as a float if it is a real number (not a bool) in the given range.

    Args:
        name: the argument's name, for the message.
        value: the value.
        lo, hi: optional bounds; ``lo_open``/``hi_open`` make them strict.
        finite: also refuse inf and NaN (a NaN always fails a bound).

    Example:
        >>> check_real("lr", 0.5, lo=0.0, lo_open=True)
        0.5
        >>> check_real("lr", 0.0, lo=0.0, lo_open=True)
        Traceback (most recent call last):
        ...
        ValueError: lr must be > 0.0, got 0.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int or Fraction beyond float range
        raise ValueError(f"{name} is out of the floating-point range, got {value!r}") from None
    if finite and not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if lo is not None and not (v > lo if lo_open else v >= lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and not (v < hi if hi_open else v <= hi):
        raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {value!r}")
    return v


def check_positive(name: str, value) -> float:
    """A real number > 0 (``check_real`` with an open lower bound 0).

    >>> check_positive("sigma", 2)
    2.0
    """
    return check_real(name, value, lo=0.0, lo_open=True)


def check_nonnegative(name: str, x) -> None:
    """Raise ValueError naming ``name`` if the scalar or array ``x`` has a negative entry.

    Traced JAX arrays are not checked (their values are unknown at trace time).

    >>> import numpy as np
    >>> check_nonnegative("rho", np.array([0.0, -1.0]))
    Traceback (most recent call last):
    ...
    ValueError: rho must be >= 0 elementwise, got a negative entry (min -1.0)
    """
    if is_array_api_obj(x):
        if is_traced(x):
            return
        xp = array_namespace(x)
        if bool(xp.any(x < 0)):
            raise ValueError(f"{name} must be >= 0 elementwise, got a negative entry "
                             f"(min {float(xp.min(x))!r})")
    elif float(x) < 0:
        raise ValueError(f"{name} must be >= 0, got {x!r}")


def check_count(name: str, value, lo: int = 0) -> int:
    """An integer (not a bool) >= ``lo``, as an int.

    >>> check_count("quick_steps", 3)
    3
    >>> check_count("quick_steps", -1)
    Traceback (most recent call last):
    ...
    ValueError: quick_steps must be an integer >= 0, got -1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def check_choice(name: str, value, choices: tuple):
    """``value`` if it is one of ``choices``.

    >>> check_choice("limit_method", "adam", ("fixed", "sgdm", "adam"))
    'adam'
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """``value`` if it is a bool (True or False, not 0/1).

    >>> check_bool("grad_glass", 1)
    Traceback (most recent call last):
    ...
    TypeError: grad_glass must be a bool, got 1
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def check_lr(lr, name: str = "lr") -> float:
    """The current learning rate (sigma) as a float: finite and > 0.

    Accepts what schedulers produce: Python reals and 0-d arrays (converted with ``float``).

    >>> import numpy as np
    >>> check_lr(np.float32(0.5))
    0.5
    >>> check_lr(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: lr must be finite and > 0, got nan
    """
    if isinstance(lr, (bool, str, bytes)):
        raise TypeError(f"{name} must be a real number, got {lr!r}")
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {lr!r}") from None
    except OverflowError:
        raise ValueError(f"{name} must be finite and > 0, got {lr!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {lr!r}")
    return value
