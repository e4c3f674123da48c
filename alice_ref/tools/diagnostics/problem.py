"""The diagnostics' view of a model: :class:`Problem` (gradient, point, named groups).

A Problem is ``value_and_grad(params) -> (loss, grads)`` over a list of arrays of one array-API
namespace (the convention of :func:`alice_ref.driver.run_batch`), the point ``params`` and the
groups (name -> positions in params). :func:`from_flat` builds one from a flat-vector model; the
torch and JAX builders are ``alice_torch.problems.from_torch`` and ``alice_jax.problems.from_jax``
(they return the fields: ``Problem(*from_torch(...))``). The private helpers here (checks,
evaluation counting, NumPy float64 views of a group) are shared by the three diagnostics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from alice_ref._xp import array_namespace, is_array_api_obj, to_numpy

__all__ = ["Problem", "ValueAndGrad", "from_flat"]

ValueAndGrad = Callable[[list], tuple[Any, Sequence]]


class Problem(NamedTuple):
    """What the diagnostics need from a model: its gradient, a point and named groups.

    Build one directly, with :func:`from_flat`, or from the fields returned by
    ``alice_torch.problems.from_torch`` / ``alice_jax.problems.from_jax``:
    ``Problem(*from_torch(model, loss_fn, inputs, targets))``.

    Args:
        value_and_grad: ``f(params) -> (loss, grads)`` on a fixed batch (deterministic: the
            same params give the same answer), params and grads lists of arrays of one
            namespace.
        params: the point nu to probe (a list of arrays).
        groups: group name -> positions in params.
        loss: optional ``f(params) -> loss`` that skips the gradient (used by
            :func:`loss_prediction`).

    Example:
        L = sum_i p_i^2 over two arrays, the first one a group of its own:

        >>> import numpy as np
        >>> problem = Problem(lambda ps: (sum(float(p @ p) for p in ps), [2 * p for p in ps]),
        ...                   [np.ones(2), np.ones(3)], {"first": [0], "rest": [1]})
        >>> loss, grads = problem.value_and_grad(problem.params)
        >>> loss, [g.tolist() for g in grads]
        (5.0, [[2.0, 2.0], [2.0, 2.0, 2.0]])
    """

    value_and_grad: ValueAndGrad
    params: list
    groups: dict
    loss: Callable | None = None


def _check_problem(problem: Problem):
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an alice_ref.tools.diagnostics.Problem, got "
                        f"{type(problem).__name__}")
    params = list(problem.params)
    if not params:
        raise ValueError("problem.params must hold at least one array")
    for i, p in enumerate(params):
        if not is_array_api_obj(p):
            raise TypeError(f"problem.params[{i}] must be an array-API array, got "
                            f"{type(p).__name__}")
    groups = dict(problem.groups)
    if not groups:
        raise ValueError("problem.groups must name at least one group")
    for name, idx in groups.items():
        idx = list(idx)
        if not idx or any(not isinstance(i, int | np.integer) or not 0 <= int(i) < len(params)
                          for i in idx):
            raise ValueError(f"group {name!r} must list positions in 0..{len(params) - 1}, "
                             f"got {idx!r}")
    return params, {str(k): [int(i) for i in v] for k, v in groups.items()}


def _rng(seed_or_rng):
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def _evaluate(problem, points, counter):
    loss, grads = problem.value_and_grad(list(points))
    counter[0] += 1
    grads = list(grads)
    if len(grads) != len(points):
        raise ValueError(f"value_and_grad returned {len(grads)} gradients for {len(points)} "
                         f"parameter arrays")
    return loss, grads


def _scalar(x) -> float:
    return float(to_numpy(x)) if is_array_api_obj(x) else float(x)


def _flat(arrays, idx) -> np.ndarray:
    """The group's elements, in order, as one float64 NumPy vector."""
    return np.concatenate([np.asarray(to_numpy(arrays[i]), dtype=np.float64).reshape(-1)
                           for i in idx])


def _size(p) -> int:
    return int(math.prod(tuple(p.shape)))


def from_flat(value_and_grad_flat: Callable, theta, sizes: Sequence[int],
              names: Sequence[str] | None = None, loss_flat: Callable | None = None) -> Problem:
    """A Problem from a flat-vector model, split into consecutive groups of the given sizes.

    ``value_and_grad_flat(theta) -> (loss, grad)`` on one vector (e.g. a landscape's
    ``lambda th: (L.loss(th), L.grad(th))``); ``sizes`` e.g. ReluTeacherStudent.param_sizes with
    names ('W', 'c', 'v', 'd'). Works in theta's namespace.

    Args:
        value_and_grad_flat: ``f(theta) -> (loss, grad)`` on one vector.
        theta: the point (a 1-D array).
        sizes: consecutive group sizes, positive, adding up to len(theta).
        names: the groups' names (distinct); default '0', '1', ...
        loss_flat: optional ``f(theta) -> loss`` (used by :func:`loss_prediction`).

    Returns:
        A :class:`Problem` with one array and one group per size.

    Raises:
        ValueError: sizes that are not positive or do not add up, or bad names.

    Example:
        Two groups of two elements:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> problem.groups, [p.tolist() for p in problem.params]
        ({'a': [0], 'b': [1]}, [[1.0, -2.0], [0.5, 3.0]])
        >>> problem.value_and_grad(problem.params)[1][1].tolist()
        [1.0, 6.0]
    """
    xp = array_namespace(theta)
    sizes = [int(s) for s in sizes]
    if theta.ndim != 1 or sum(sizes) != theta.shape[0] or any(s < 1 for s in sizes):
        raise ValueError(f"sizes {sizes} must be positive and add up to theta's length "
                         f"{theta.shape[0] if theta.ndim == 1 else tuple(theta.shape)}")
    names = [str(i) for i in range(len(sizes))] if names is None else [str(n) for n in names]
    if len(names) != len(sizes) or len(set(names)) != len(names):
        raise ValueError(f"names must be {len(sizes)} distinct names, got {names!r}")
    off = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    parts = [theta[off[i]:off[i + 1]] for i in range(len(sizes))]

    def split(v):
        return [v[off[i]:off[i + 1]] for i in range(len(sizes))]

    def vg(ps):
        loss, g = value_and_grad_flat(xp.concat(list(ps)))
        return loss, split(g)

    loss = None if loss_flat is None else (lambda ps: loss_flat(xp.concat(list(ps))))
    return Problem(vg, parts, {n: [i] for i, n in enumerate(names)}, loss)

