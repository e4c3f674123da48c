"""alice_jax: the Alice optimiser (arXiv 2411.16914) for JAX, as an optax transformation.

A thin adapter over the backend-neutral core :mod:`alice_ref`: all the mathematics comes from
there; this package maps pytrees, PRNG keys, jit and optax's line-search convention onto it.
See docs/jax.md.

Example:
    Two hundred jitted batches bring the centre mu to the minimum of sum (w - 1)^2:

    >>> import jax, jax.numpy as jnp, optax, alice_jax
    >>> loss = lambda p: jnp.sum((p["w"] - 1.0) ** 2)
    >>> params = {"w": jnp.zeros(3)}
    >>> tx = alice_jax.alice(0.05, betas=(0.75, 0.999))
    >>> state = tx.init(params)
    >>> @jax.jit
    ... def step(params, state):
    ...     g = jax.grad(loss)(params)
    ...     updates, state = tx.update(g, state, params, value_fn=loss)
    ...     return optax.apply_updates(params, updates), state
    >>> for _ in range(200):
    ...     params, state = step(params, state)
    >>> bool(loss(alice_jax.center(state)) < 1e-2)
    True
"""

from ._state import WRONG_STEP, AliceJaxState, attributes, center, check_finite
from ._transform import EVALUATIONS, AliceTransformation, alice

__all__ = ["alice", "AliceTransformation", "AliceJaxState", "center", "check_finite", "attributes",
           "EVALUATIONS", "WRONG_STEP"]
