"""JAX models for the curvature diagnostics (``alice-ref probe``): ``from_jax``.

:func:`from_jax` builds the gradient callable of a JAX loss over a pytree (one group per leaf)
and returns the fields of ``alice_ref.tools.diagnostics.Problem`` (the adapters sit below the
tools layer, which owns the Problem type)::

    from alice_ref.tools import diagnostics as D
    from alice_jax.problems import from_jax

    problem = D.Problem(*from_jax(loss_fn, params))
    report = D.diagnose(problem, sigma=1e-2)
"""

from __future__ import annotations

from collections.abc import Callable

import jax

__all__ = ["from_jax"]


def from_jax(loss_fn: Callable, params, *, jit: bool = True) -> tuple:
    """The diagnostics problem of a JAX loss over a pytree of parameters; one group per leaf.

    Each group is named by its leaf's key path (``jax.tree_util.keystr``).

    Args:
        loss_fn: ``loss_fn(params) -> scalar`` on a fixed batch.
        params: the point, a pytree of arrays.
        jit: compile the gradient and the loss with ``jax.jit``.

    Returns:
        ``(value_and_grad, params, groups, loss)`` over the pytree's leaves: the fields of
        ``alice_ref.tools.diagnostics.Problem``, in order.

    Raises:
        ValueError: a pytree without leaves.

    Example:
        A dict of two leaves; the gradient of sum p^2 is 2 p:

        >>> import jax.numpy as jnp
        >>> value_and_grad, params, groups, _ = from_jax(
        ...     lambda ps: (ps["w"] ** 2).sum() + (ps["b"] ** 2).sum(),
        ...     {"w": jnp.ones(2), "b": jnp.zeros(1)}, jit=False)
        >>> groups
        {"['b']": [0], "['w']": [1]}
        >>> [g.tolist() for g in value_and_grad(params)[1]]
        [[0.0], [2.0, 2.0]]
    """
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    if not leaves_with_path:
        raise ValueError("params has no leaves")
    names = [jax.tree_util.keystr(path) or str(i)
             for i, (path, _) in enumerate(leaves_with_path)]
    leaves = [leaf for _, leaf in leaves_with_path]
    vg_tree = jax.value_and_grad(loss_fn)
    lf = loss_fn
    if jit:
        vg_tree, lf = jax.jit(vg_tree), jax.jit(loss_fn)

    def vg(ps):
        loss, g = vg_tree(jax.tree_util.tree_unflatten(treedef, list(ps)))
        return loss, jax.tree_util.tree_leaves(g)

    return (vg, leaves, {n: [i] for i, n in enumerate(names)},
            lambda ps: lf(jax.tree_util.tree_unflatten(treedef, list(ps))))
