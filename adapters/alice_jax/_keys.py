"""PRNG keys and probes of alice_jax: seeds of every kind to one key, Rademacher probes (R2).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__: list[str] = []  # private helpers of _transform


def _rademacher_probes(key, t, nu):
    """Default probes: one Rademacher sign per element, a fresh subkey per leaf (tree order)."""
    del t
    leaves, treedef = jax.tree.flatten(nu)
    keys = jax.random.split(key, max(len(leaves), 1))
    return treedef.unflatten([jax.random.rademacher(k, x.shape, dtype=x.dtype)
                              for k, x in zip(keys, leaves)])


_SEED_ERROR = ("seed must be an int, a 0-d integer array (concrete or traced) or a JAX PRNG key "
               "(typed, jax.random.key(...), or raw uint32 data), got {!r}")


def _seed_spec(seed):
    """Check ``seed`` without touching the XLA backend; return (kind, value, impl) for
    :func:`_key_data`, which builds the key inside ``init`` (as optax does)."""
    if isinstance(seed, bool):
        raise TypeError(_SEED_ERROR.format(seed))
    if isinstance(seed, numbers.Integral):
        return "int", int(seed), None
    dtype, shape = getattr(seed, "dtype", None), getattr(seed, "shape", None)
    if dtype is None or shape is None:
        raise TypeError(_SEED_ERROR.format(seed))
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if tuple(shape) != ():
            raise TypeError(f"seed must be a single PRNG key, got keys of shape {tuple(shape)}")
        return "typed", seed, jax.random.key_impl(seed)
    if tuple(shape) == () and np.issubdtype(dtype, np.integer):
        return "int", seed, None  # a 0-d integer array, e.g. traced under jax.vmap over seeds
    if len(shape) == 1 and np.dtype(dtype) == np.uint32:
        return "raw", seed, None  # raw key data of the default implementation
    raise TypeError(_SEED_ERROR.format(seed))


def _key_data(spec):
    """The raw key data (uint32) the state stores, built at init time."""
    kind, value, _ = spec
    if kind == "int":
        return jax.random.key_data(jax.random.key(value))
    if kind == "typed":
        return jax.random.key_data(value)
    want = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0))).shape
    if tuple(value.shape) != tuple(want):
        raise TypeError(f"seed: raw key data of shape {tuple(value.shape)} does not match the "
                        f"default PRNG implementation ({jax.config.jax_default_prng_impl}, "
                        f"shape {tuple(want)}); pass a typed key (jax.random.key) instead")
    return jnp.asarray(value, dtype=jnp.uint32)
