"""alice_jax's state (a pytree), the centre mu and the host-side checks and reports.

:class:`AliceJaxState` holds what docs/spec/algorithm.md#state lists, as JAX arrays; the caller's
params are nu. :func:`center`, :func:`check_finite` and :func:`attributes` read it (several Alice
states in one optax state are refused or merged, never silently the first).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import alice_ref
from alice_ref import (
    NonFiniteGradientError,
)
from alice_ref.driver import EVALUATIONS

__all__ = ["WRONG_STEP", "AliceJaxState", "center", "check_finite", "attributes"]

#: ``bad_eval`` of a batch that a specialised step (``update(..., sample_step=True/False)``)
#: refused because the counter makes it the other kind (after EVALUATIONS' 0, 1, 2).
WRONG_STEP = 3


class AliceJaxState(NamedTuple):
    """State of :func:`alice` (a pytree; every leaf is a JAX array): docs/spec/algorithm.md#state.

    Attributes:
        count: int32 scalar, batches absorbed so far (t of docs/spec/algorithm.md#state; a
            skipped batch does not count).
        key: the PRNG key (uint32[2]) from which each sample step splits its probe key.
        mu: the centre, a pytree like the params (state dtype: the parameter's own, float32
            for float16/bfloat16 parameters). The caller's params are the look-ahead nu, not
            stored.
        G: the gradient average, like mu.
        V: the squared-gradient average, like mu.
        H: the curvature average, like mu.
        R: the glass-density average, like mu.
        skipped: int32 scalar, batches skipped because an evaluation was not finite, or
            refused by a specialised step that disagreed with the counter (cumulative).
        bad_eval: int32 scalar, -1 if the last batch was absorbed, else the first non-finite
            evaluation (0 for g+, 1 for g-, 2 for g0; see EVALUATIONS) or WRONG_STEP (3: the
            batch was sent to the specialised step of the other kind).
        bad_leaf: int32 scalar, -1 or the index (``jax.tree.leaves`` order) of the first
            non-finite leaf of that evaluation.

    Example:
        A fresh state: nothing absorbed or skipped, zero averages, float32 state for float16
        parameters:

        >>> import jax.numpy as jnp, alice_jax
        >>> s = alice_jax.alice(0.1).init({"w": jnp.ones(3, dtype=jnp.float16)})
        >>> int(s.count), int(s.skipped), int(s.bad_eval), s.mu["w"].dtype, s.V["w"].tolist()
        (0, 0, -1, dtype('float32'), [0.0, 0.0, 0.0])
    """

    count: jax.Array
    key: jax.Array
    mu: Any
    G: Any
    V: Any
    H: Any
    R: Any
    skipped: jax.Array
    bad_eval: jax.Array
    bad_leaf: jax.Array



def _find_states(state) -> list:
    """Every AliceJaxState in ``state`` (itself, or inside an optax chain/named_chain state)."""
    if isinstance(state, AliceJaxState):
        return [state]
    found = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, AliceJaxState))
             if isinstance(s, AliceJaxState)]
    if not found:
        raise TypeError(f"no alice_jax state found in {type(state).__name__}")
    return found


def _find_state(state):
    """The one AliceJaxState in ``state``; several (e.g. two Alice transformations in one
    chain) are ambiguous for center and attributes: pass the sub-state you mean."""
    found = _find_states(state)
    if len(found) > 1:
        raise ValueError(f"{type(state).__name__} holds {len(found)} alice_jax states; pass "
                         "the one you mean (e.g. state[i] of an optax.chain state)")
    return found[0]


def center(state, like=None):
    """The centre mu: the parameters for inference and checkpoints
    (docs/spec/algorithm.md#one-batch, step 6).

    The caller's params hold the look-ahead nu; mu lives in the state.

    Args:
        state: an AliceJaxState, or an optax chain state that contains one.
        like: optional pytree whose leaves' dtypes mu is cast to.

    Returns:
        mu, a pytree like the params, in state dtype or in the dtypes of ``like``.

    Raises:
        TypeError: no AliceJaxState in ``state``.
        ValueError: several AliceJaxStates in ``state`` (pass the one you mean).

    Example:
        Before any update mu is the initial parameters, kept in float32 for float16 ones:

        >>> import jax.numpy as jnp, optax, alice_jax
        >>> params = {"w": jnp.ones(2, dtype=jnp.float16)}
        >>> state = optax.chain(optax.identity(), alice_jax.alice(0.1)).init(params)
        >>> mu = alice_jax.center(state)
        >>> mu["w"].dtype, mu["w"].tolist(), alice_jax.center(state, like=params)["w"].dtype
        (dtype('float32'), [1.0, 1.0], dtype('float16'))
    """
    mu = _find_state(state).mu
    if like is None:
        return mu
    return jax.tree.map(lambda m, p: m.astype(jnp.asarray(p).dtype), mu, like)


def check_finite(state) -> None:
    """Raise if the last batch was skipped for a non-finite evaluation (host side).

    Reads ``bad_eval`` and ``bad_leaf`` of the state a (jitted) step returned; it is not
    jit-able. The error names the leaf (its index in ``jax.tree.leaves`` order and, in a note,
    its key path), the evaluation (g+, g- or g0) and the batch (count + 1); the state is
    exactly as before that batch. A state holding several Alice states checks every one.

    Args:
        state: an AliceJaxState, or an optax chain state that contains one or more.

    Raises:
        alice_ref.NonFiniteGradientError: the last batch had a non-finite evaluation.
        TypeError: no AliceJaxState in ``state``.

    Example:
        A state whose last batch failed at g- in leaf 1, as a step records it:

        >>> import jax.numpy as jnp, alice_jax, alice_ref
        >>> state = alice_jax.alice(0.1).init({"a": jnp.zeros(2), "b": jnp.zeros(3)})
        >>> alice_jax.check_finite(state) is None  # a fresh state: nothing to report
        True
        >>> bad = state._replace(bad_eval=jnp.int32(1), bad_leaf=jnp.int32(1))
        >>> try:
        ...     alice_jax.check_finite(bad)
        ... except alice_ref.NonFiniteGradientError as e:
        ...     print(e.index, e.evaluation, e.t, e.__notes__)
        1 g- 1 ["leaf 1 is params['b']"]
    """
    states = _find_states(state)
    for k, s in enumerate(states):
        e = int(s.bad_eval)
        if e < 0:
            continue
        if e == WRONG_STEP:
            raise ValueError(f"alice_jax: batch {int(s.count) + 1} was sent to the specialised "
                             "step of the other kind (update(..., sample_step=...) disagrees "
                             "with the counter); it was refused and the state is unchanged: "
                             "take the variant from tx.is_sample_step(int(state.count))")
        i = int(s.bad_leaf)
        err = NonFiniteGradientError(i, EVALUATIONS[e], int(s.count) + 1)
        paths = jax.tree_util.tree_flatten_with_path(s.mu)[0]
        if 0 <= i < len(paths):
            err.add_note(f"leaf {i} is params{jax.tree_util.keystr(paths[i][0])}")
        if len(states) > 1:
            err.add_note(f"in alice_jax state {k} of {len(states)}")
        raise err


def attributes(state) -> list[dict]:
    """The official optimiser's "attributes" per leaf: mean glass density and mean curvature.

    glass_density = mean(R) and curvature = mean(H) for each leaf, in ``jax.tree.leaves``
    order, computed by :func:`alice_ref.core.attributes`. Host side (not jit-able).

    Args:
        state: an AliceJaxState, or an optax chain state that contains one.

    Returns:
        A list with one dict {'glass_density': float, 'curvature': float} per leaf.

    Raises:
        TypeError: no AliceJaxState in ``state``.
        ValueError: several AliceJaxStates in ``state`` (pass the one you mean).

    Example:
        The means of R and H of the one leaf:

        >>> import jax.numpy as jnp, alice_jax
        >>> state = alice_jax.alice(0.1).init({"w": jnp.zeros(2)})
        >>> H, R = {"w": jnp.array([1.0, 3.0])}, {"w": jnp.array([0.5, 1.5])}
        >>> alice_jax.attributes(state._replace(H=H, R=R))
        [{'glass_density': 1.0, 'curvature': 2.0}]
    """
    s = _find_state(state)
    leaves = lambda x: [np.asarray(v) for v in jax.tree.leaves(x)]  # noqa: E731
    mu = leaves(s.mu)
    core = alice_ref.AliceState(int(s.count), tuple(mu), tuple(mu), tuple(leaves(s.G)),
                                tuple(leaves(s.V)), tuple(leaves(s.H)), tuple(leaves(s.R)),
                                int(s.skipped))
    return alice_ref.attributes(core)
