"""Small array-API helpers shared by the core: namespace lookup, argument checks, conversion.

Every public core function finds ``xp = array_namespace(...)`` at its entry (SciPy's pattern)
and uses only the array-API standard afterwards, so the same code runs on NumPy, CuPy, PyTorch,
JAX and array-api-strict.
"""

from __future__ import annotations

import numbers

import numpy as np
from array_api_compat import array_namespace, device, is_array_api_obj

__all__ = ["array_namespace", "device", "prepare", "is_traced", "to_numpy", "from_numpy"]


def is_traced(x) -> bool:
    """True for a JAX tracer (values unknown at trace time: value checks are skipped)."""
    return type(x).__module__.startswith("jax") and "Tracer" in type(x).__name__


def prepare(**named):
    """Common entry of elementwise functions.

    Takes arrays and Python real scalars by name, in order; the first must be an array. Returns
    ``(xp, [arrays])`` where scalars became arrays of the first array's dtype and device. Raises
    TypeError naming an argument that is neither, or a non-floating array, and ValueError naming
    an array whose shape differs from the first one's.
    """
    items = list(named.items())
    first_name, first = items[0]
    if not is_array_api_obj(first):
        raise TypeError(f"{first_name} must be an array-API array, got {type(first).__name__}")
    xp = array_namespace(*[v for _, v in items if is_array_api_obj(v)])
    if not xp.isdtype(first.dtype, "real floating"):
        raise TypeError(f"{first_name} must have a real floating dtype, got {first.dtype}")
    out = []
    for name, v in items:
        if is_array_api_obj(v):
            if v.shape != first.shape:
                raise ValueError(
                    f"{name} has shape {tuple(v.shape)} but {first_name} has shape "
                    f"{tuple(first.shape)}")
            if v.dtype != first.dtype:
                if not xp.isdtype(v.dtype, "real floating"):
                    raise TypeError(f"{name} must have a real floating dtype, got {v.dtype}")
                v = xp.astype(v, first.dtype)
            out.append(v)
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            out.append(xp.asarray(float(v), dtype=first.dtype, device=device(first)))
        else:
            raise TypeError(f"{name} must be an array or a real number, got {type(v).__name__}")
    return xp, out


def to_numpy(x) -> np.ndarray:
    """Copy any array-API array (NumPy, CuPy, torch, JAX, strict) to a NumPy array."""
    if isinstance(x, np.ndarray):
        return x
    if not is_array_api_obj(x):
        return np.asarray(x)
    mod = type(x).__module__
    if mod.startswith("cupy"):
        return x.get()
    if mod.startswith("torch"):
        t = x.detach().cpu()
        # NumPy has no bfloat16: widen it (exactly) to float32.
        return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()
    try:
        return np.from_dlpack(x)
    except Exception:  # pragma: no cover - fallback for namespaces without dlpack
        return np.asarray(x)


def from_numpy(a: np.ndarray, like=None, xp=None):
    """Put a NumPy array into the namespace (and onto the device) of ``like`` or ``xp``."""
    if like is not None:
        xp = array_namespace(like)
        return xp.asarray(a, dtype=like.dtype if a.dtype.kind == "f" else None, device=device(like))
    if xp is None:
        return a
    return xp.asarray(a)
