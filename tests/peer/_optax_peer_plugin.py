"""pytest plugin for run_optax_suite.py: registers ``optax._src.alias.alice`` and supplies the
one adaptation optax's generic tests need for Alice, ``value_fn``.

``alice`` is :func:`alice_jax.alice` itself (same signature, so ``inject_hyperparams`` and the
schedule-annotation test see Alice's own) whose ``update`` gets, when the test passes neither
``value_fn`` nor ``grad_fn``, the objective the test last differentiated (recorded by thin
wrappers of ``jax.grad`` / ``jax.value_and_grad``, reset before each test), or else the linear
loss vdot(grads, params), whose gradient everywhere is the gradient the test handed in.
"""

from __future__ import annotations

import functools
import inspect
import os

import alice_jax
import jax
import jax.numpy as jnp
import optax
import pytest
from optax._src import alias

_last = {"fn": None, "inside": 0}
_orig_grad, _orig_vag = jax.grad, jax.value_and_grad


def _recording(orig):
    @functools.wraps(orig)
    def wrapper(fun, argnums=0, has_aux=False, **kw):
        inner = orig(fun, argnums, has_aux, **kw)

        @functools.wraps(inner)
        def call(*args, **kwargs):
            if argnums == 0 and not has_aux and args and not _last["inside"]:
                rest = args[1:]
                _last["fn"] = lambda p: fun(p, *rest, **kwargs)
            return inner(*args, **kwargs)
        return call
    return wrapper


def _with_value_fn(tx):
    def update(updates, state, params=None, **extra):
        if "value_fn" not in extra and "grad_fn" not in extra:
            fn = _last["fn"]
            if fn is None:
                g = updates
                fn = lambda p: sum(jnp.vdot(a, b).real for a, b in  # noqa: E731
                                   zip(jax.tree.leaves(g), jax.tree.leaves(p)))
            extra["value_fn"] = fn
        _last["inside"] += 1  # Alice's own jax.grad(value_fn) is not the test's objective
        try:
            return tx.update(updates, state, params, **extra)
        finally:
            _last["inside"] -= 1
    return optax.GradientTransformationExtraArgs(tx.init, update)


@functools.wraps(alice_jax.alice)
def alice(*args, **kwargs):
    return _with_value_fn(alice_jax.alice(*args, **kwargs))


alice.__signature__ = inspect.signature(alice_jax.alice)
alias.alice = alice
jax.grad, jax.value_and_grad = _recording(_orig_grad), _recording(_orig_vag)


@pytest.fixture(autouse=True)
def _reset_objective():
    _last["fn"] = None
    yield
    _last["fn"] = None


def pytest_collection_modifyitems(config, items):
    """--quick: leave out the long convergence runs (alias test_optimization, 10000 steps;
    contrib test_optimizers, 30000 steps)."""
    if not os.environ.get("OPTAX_PEER_QUICK"):
        return
    slow = ("test_optimization", "test_optimizers")
    keep = [it for it in items if getattr(it, "originalname", it.name).rstrip("0123456789")
            not in slow and it.name.rstrip("0123456789") not in slow]
    config.hook.pytest_deselected(items=[it for it in items if it not in keep])
    items[:] = keep
