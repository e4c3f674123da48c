"""Alice as an optax gradient transformation (a thin adapter over :mod:`alice_ref`).

The caller's ``params`` are Alice's look-ahead point nu (where the caller took ``grads`` = g0);
the returned updates move them to the next look-ahead point nu'; the centre mu (what inference
and checkpoints should see) lives in the state: :func:`center`. Every formula comes from
alice_ref: the per-element kernels :func:`alice_ref.absorb_gradient`,
:func:`alice_ref.absorb_curvature`, :func:`alice_ref.alice_step` (the delta of
:func:`alice_ref.alice_update`) and the schedule helpers :func:`alice_ref.ema_beta`,
:func:`alice_ref.warmup_length`, ``AliceConfig.beta3`` (docs/spec/algorithm.md#one-batch). This
module only turns pytrees, PRNG keys and optax's conventions into calls of the core, with the batch
schedule as traced comparisons and ``jax.lax.cond`` so one compiled step serves every batch, or,
with ``update(..., sample_step=True/False)``, one of two specialised steps chosen on the host
(:class:`AliceTransformation`).
"""

from __future__ import annotations

import copy
import inspect
import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import alice_ref
from alice_ref import (
    AliceConfig,
    absorb_curvature,
    absorb_gradient,
    alice_step,
    schedule,
)
from alice_ref._xp import is_traced
from alice_ref.driver import EVALUATIONS

from ._keys import _key_data, _rademacher_probes, _seed_spec
from ._state import WRONG_STEP, AliceJaxState, _find_state

__all__ = ["AliceTransformation", "alice", "EVALUATIONS"]

def _kwargs_for(fn, extra):
    """Optax's line-search convention: extra keyword arguments whose names appear in ``fn``'s
    signature are passed on to it (e.g. ``value_fn(params, batch)`` with ``batch=...``)."""
    if not extra:
        return {}
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    names = [n for i, (n, p) in enumerate(sig.parameters.items())
             if i > 0 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return {n: extra[n] for n in names if n in extra}


def _gradient_function(value_fn, grad_fn, extra) -> Callable:
    if grad_fn is not None:
        kw = _kwargs_for(grad_fn, extra)
        return lambda p: grad_fn(p, **kw)
    if value_fn is not None:
        kw = _kwargs_for(value_fn, extra)
        g = jax.grad(value_fn)
        return lambda p: g(p, **kw)
    raise TypeError("alice_jax: update(grads, state, params, value_fn=...) needs value_fn "
                    "(params -> loss on the current minibatch) or grad_fn (params -> grads) "
                    "for the extra evaluations of a sample step")


# Hyperparameters that may be arrays, also traced ones (optax.inject_hyperparams passes every
# numeric hyperparameter as an array): they enter the traced step as values, not structure.
_DYNAMIC = ("eps", "w1", "w2", "phi", "omega", "lr_min", "lr_max")


def _scalar(name, value):
    """(float, None) for a concrete real scalar, (None, array) for a traced 0-d array; None
    stays None. Arrays that are not 0-d, complex or integer-like arrays of floats are refused."""
    if value is None or isinstance(value, numbers.Real) or not hasattr(value, "dtype"):
        return value, None
    if tuple(getattr(value, "shape", ())) != () or not (
            np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
            or jnp.issubdtype(value.dtype, jnp.floating)):
        raise TypeError(f"{name} must be a real scalar, got {value!r}")
    if is_traced(value):
        return None, value
    return float(value), None


class _Weight:
    """A traced regularisation weight for :func:`alice_ref.absorb_gradient`, which skips a term
    whose weight is ``!= 0.0``-false: a traced weight is always applied (its value may be 0)."""

    def __init__(self, w):
        self.w = w

    def __ne__(self, other):
        return True

    __hash__ = None

    def __mul__(self, x):
        return self.w * x

    __rmul__ = __mul__


def _config_view(config: AliceConfig, **fields) -> AliceConfig:
    """``config`` with some fields replaced by (traced) arrays, unchecked: the traced step
    reads them through the core's own functions (AliceConfig.bounds, alice_step)."""
    view = copy.copy(config)
    for k, v in fields.items():
        object.__setattr__(view, k, v)
    return view


class AliceTransformation(optax.GradientTransformationExtraArgs):
    """What :func:`alice` returns: an ``optax.GradientTransformationExtraArgs`` (the same two
    fields ``init`` and ``update``) that also knows its batch schedule on the host.

    ``update(grads, state, params, *, value_fn=None, grad_fn=None, sample_step=None, **extra)``
    takes one batch. ``sample_step=None`` (the default) decides sample or quick inside the
    compiled step (``jax.lax.cond`` on the counter: one step function for every batch).
    ``sample_step=True`` / ``False`` (a static Python bool) compiles only that branch, with
    no ``cond``: the host picks the variant with :meth:`is_sample_step`, and each variant
    keeps XLA's top-level optimisations (on CPU its fast convolution kernels, lost inside a
    ``cond``). Both give the same results; a batch sent to the variant of the other kind is
    refused (state unchanged, updates zero, ``skipped`` + 1, ``bad_eval = WRONG_STEP``;
    :func:`check_finite` raises on it). ``sample_step`` passes through ``optax.chain`` and
    ``optax.inject_hyperparams`` as any extra argument does.

    Example:
        The host schedule of q = 3 after a warm-up of 2 batches (beta1 = 0.5), then the two
        variants agreeing with the in-graph cond on batch 1, and a batch refused:

        >>> import jax, jax.numpy as jnp, alice_jax
        >>> tx = alice_jax.alice(0.1, betas=(0.5, 0.999), quick_steps=3)
        >>> [tx.is_sample_step(c) for c in range(8)]  # the batch after c absorbed ones
        [True, True, False, True, False, False, False, True]
        >>> loss = lambda p: jnp.sum((p - 1.0) ** 4)
        >>> p = jnp.zeros(2); s = tx.init(p); g = jax.grad(loss)(p)
        >>> a = tx.update(g, s, p, value_fn=loss)
        >>> b = tx.update(g, s, p, value_fn=loss, sample_step=tx.is_sample_step(s))
        >>> all(bool((x == y).all()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
        True
        >>> _, s2 = tx.update(g, s, p, value_fn=loss, sample_step=False)
        >>> int(s2.count), int(s2.skipped), int(s2.bad_eval) == alice_jax.WRONG_STEP
        (0, 1, True)
    """

    def is_sample_step(self, count) -> bool:
        """Whether the next batch is a sample step (host side; the core's schedule, R8).

        Args:
            count: the number of batches absorbed so far: an int >= 0 (a host-side counter,
                no device synchronisation), or a state (an AliceJaxState or an optax state
                holding one), whose ``count`` is read back from the device.

        Returns:
            ``alice_ref.core.schedule(count + 1, config).sample`` (docs/spec/algorithm.md#one-batch,
            step 2: warm-up, or t mod (q+1) = 0), as a Python bool.

        Raises:
            TypeError: a count that is neither an int nor an alice_jax state.
            ValueError: a negative count, or a state holding several Alice states.
        """
        if not isinstance(count, numbers.Integral) or isinstance(count, bool):
            if isinstance(count, (jax.Array, np.ndarray)) and count.shape == () and \
                    np.issubdtype(count.dtype, np.integer):
                count = int(count)
            else:
                try:
                    count = int(_find_state(count).count)
                except TypeError:
                    raise TypeError("is_sample_step: count must be an int >= 0 or an "
                                    f"alice_jax state, got {count!r}") from None
        if count < 0:
            raise ValueError(f"is_sample_step: count must be >= 0, got {count}")
        t = min(int(count) + 1, np.iinfo(np.int32).max)  # the step's saturating counter
        return bool(schedule(t, self._config).sample)


def _replicated_like(leaves):
    """A replicated NamedSharding on the mesh of the first concrete NamedSharded leaf, for the
    state's scalars (so that the whole state lives on the parameters' mesh), or None. Meshes
    with explicit axes (sharding in types) place the scalars themselves: None there too."""
    for x in leaves:
        if isinstance(x, jax.Array) and not is_traced(x):
            sh = x.sharding
            if isinstance(sh, jax.sharding.NamedSharding):
                auto = jax.sharding.AxisType.Auto
                if any(a != auto for a in getattr(sh.mesh, "axis_types", ())):
                    return None
                return jax.sharding.NamedSharding(sh.mesh, jax.sharding.PartitionSpec())
    return None


def alice(learning_rate: optax.ScalarOrSchedule = 1e-3, *, betas=(0.9, 0.999), eps=1e-8,
          w1=0.0, w2=0.0, phi=None, omega=1.0, limit_method: str = "adam", lr_min=0.0,
          lr_max=None, scale_bounds_with_lr: bool = True, hess_comp: str = "abs",
          grad_glass: bool = True, quick_steps: int | None = None, nonfinite: str = "raise",
          seed=0, mu_dtype=None, grad_transform: optax.GradientTransformation | None = None,
          _probe_fn: Callable | None = None) -> AliceTransformation:
    """The Alice optimiser (arXiv 2411.16914) as an optax gradient transformation.

    One ``update`` is one batch of docs/spec/algorithm.md#one-batch, with alice_ref's formulas:
    on a sample step (warm-up, or t mod (q+1) = 0, R8) Alice evaluates ``jax.grad(value_fn)``
    (or ``grad_fn``) at nu + sigma z and nu - sigma z (z Rademacher signs from the state's key)
    and absorbs |g+ - g-| / (2 sigma) into H and 2 (gbar - g0)^2 / sigma into R (R3;
    Alg. 2, steps 1-11); every batch absorbs g0 into G and V; after warm-up it takes the bounded
    optimal step delta (R5, R6; Alg. 3) and sets
    mu' = mu + phi delta, nu' = mu + omega delta (R7; :func:`alice_ref.core.alice_update`). The
    schedule is traced (``jax.lax.cond``), so one jitted step serves every batch; or the host
    picks one of two specialised steps (``sample_step``, see :class:`AliceTransformation`).
    Where the probe points are rounded to a narrower parameter dtype than the state's
    (bfloat16/float16 parameters), H and R use the realised displacements (the stored point
    minus nu; see :func:`alice_ref.absorb_curvature`).

    The caller's ``params`` are the evaluation point nu and ``grads`` = g0 = grad L(nu) on the
    current minibatch, *untransformed* (to clip, use ``grad_transform``: see docs/jax.md); the
    returned updates are nu' - nu (apply them unmodified, e.g. with ``optax.apply_updates``);
    :func:`center` gives mu. A non-finite evaluation skips the batch (mu, count, key and every
    average kept exactly; updates are zero) and is recorded in ``state.skipped``, ``bad_eval``
    and ``bad_leaf``; :func:`check_finite` raises on it outside jit. Under jit 'raise' cannot
    stop the step, so both ``nonfinite`` policies skip in the state.

    The hyperparameters betas, eps, w1, w2, phi, omega, limit_method, lr_min, lr_max,
    scale_bounds_with_lr, hess_comp, grad_glass and nonfinite have alice_ref.AliceConfig's
    names, defaults and checks; eps, w1, w2, phi, omega, lr_min and lr_max may also be 0-d
    arrays, traced ones included (checked when concrete).

    Args:
        learning_rate: Alice's lr: both the perturbation length sigma and the scale of the
            step bounds. A float, a 0-d array (traced allowed: ``optax.inject_hyperparams``) or
            an optax schedule ``count -> lr`` (evaluated at the number of batches absorbed).
        quick_steps: q, an int >= 0 (None: 3). It shapes the schedule, so it must be static:
            under ``optax.inject_hyperparams`` leave it None or name it in ``static_args``.
        seed: an int, a 0-d integer array (traced allowed, e.g. ``jax.vmap`` over seeds) or a
            JAX PRNG key (typed, any implementation, or raw data of the default one). The key
            is built in ``init``; each sample step splits a fresh probe key from it.
        mu_dtype: optional floating dtype of the state (mu, G, V, H, R); None: the parameter's
            own, float32 for float16/bfloat16 parameters.
        grad_transform: optional *stateless* optax transformation (e.g.
            ``optax.clip_by_global_norm(1.0)``) that Alice applies to each of g+, g- and g0,
            so that the three evaluations stay consistent (an upstream ``optax.chain`` would
            transform g0 only).
        _probe_fn: test hook, not public API. ``_probe_fn(key, t, nu) -> z`` replaces the
            Rademacher draw (key: the step's subkey, t: the traced batch number, nu: the
            pytree in state dtype).

    Returns:
        An AliceTransformation (an optax.GradientTransformationExtraArgs with the host-side
        ``is_sample_step``). ``init(params)`` gives an AliceJaxState (abstract
        ``jax.ShapeDtypeStruct`` leaves give the abstract state; NamedSharded params give a
        state whose mu, G, V, H, R have each parameter's sharding, scalars replicated on its
        mesh); ``update(grads, state, params, *, value_fn=None, grad_fn=None,
        sample_step=None, **extra)`` needs
        ``value_fn(params) -> loss`` on the same minibatch, or ``grad_fn(params) -> grads``
        (optax's line-search convention: extra keyword arguments named in their signature are
        passed on).

    Raises:
        TypeError: a seed that is neither an int nor a PRNG key, a hyperparameter of the
            wrong type, a traced quick_steps; at init, complex parameters; at update time,
            neither value_fn nor grad_fn, masked parameters, or a grad_transform with state.
        ValueError: a hyperparameter out of range (raised here, before anything is traced);
            at update time, no params.

    Example:
        On L(w) = sum (w - 1)^2 (Hessian 2 I, no glass) batch 1 is a warm-up sample step: H
        takes 2, R takes 0 and nothing moves yet. A NaN gradient then skips batch 2:

        >>> import jax, jax.numpy as jnp, alice_jax
        >>> loss = lambda p: jnp.sum((p["w"] - 1.0) ** 2)
        >>> params = {"w": jnp.zeros(3)}
        >>> tx = alice_jax.alice(0.5, betas=(0.5, 0.999))  # warm-up: t <= 2
        >>> state = tx.init(params)
        >>> updates, state = tx.update(jax.grad(loss)(params), state, params, value_fn=loss)
        >>> int(state.count), state.H["w"].tolist(), state.R["w"].tolist()
        (1, [2.0, 2.0, 2.0], [0.0, 0.0, 0.0])
        >>> updates["w"].tolist()
        [0.0, 0.0, 0.0]
        >>> nan = {"w": jnp.full(3, jnp.nan)}
        >>> updates, state = tx.update(nan, state, params, value_fn=loss)
        >>> int(state.count), int(state.skipped), alice_jax.EVALUATIONS[int(state.bad_eval)]
        (1, 1, 'g0')
        >>> alice_jax.alice(0.5, betas=(0.5, 1.0))
        Traceback (most recent call last):
        ...
        ValueError: betas[1] must be < 1.0, got 1.0
    """
    schedule_fn = learning_rate if callable(learning_rate) else None
    lr_static, lr_dyn = (None, None) if schedule_fn else _scalar("learning_rate", learning_rate)
    given = dict(eps=eps, w1=w1, w2=w2, phi=phi, omega=omega, lr_min=lr_min, lr_max=lr_max)
    static, dynamic = {}, {}
    for k, v in given.items():
        static[k], d = _scalar(k, v)
        if d is not None:
            dynamic[k] = d
    if is_traced(quick_steps) or (hasattr(quick_steps, "shape") and tuple(quick_steps.shape)):
        raise TypeError("quick_steps shapes the batch schedule and must be a static int: under "
                        "optax.inject_hyperparams leave it None or list it in static_args")
    q = 3 if quick_steps is None else quick_steps
    if hasattr(q, "dtype"):  # a concrete 0-d array (inject_hyperparams outside jit)
        q = int(q) if np.issubdtype(q.dtype, np.integer) else q
    # validated now, before anything is traced; a traced value is checked as its stand-in
    # default (its own value is unknown until run time) and read from ``dynamic`` in the step
    stand_in = {k: (AliceConfig.__dataclass_fields__[k].default if k in dynamic else static[k])
                for k in given}
    config = AliceConfig(lr=1.0 if lr_static is None else lr_static, betas=betas,
                         limit_method=limit_method, scale_bounds_with_lr=scale_bounds_with_lr,
                         hess_comp=hess_comp, grad_glass=grad_glass, quick_steps=q,
                         nonfinite=nonfinite, **stand_in)
    lr_max_default = lr_max is None
    seed_spec = _seed_spec(seed)
    if mu_dtype is not None:
        mu_dtype = jnp.dtype(mu_dtype)
        if not jnp.issubdtype(mu_dtype, jnp.floating):
            raise TypeError(f"mu_dtype must be a real floating dtype, got {mu_dtype}")
    if grad_transform is not None and not isinstance(grad_transform,
                                                     optax.GradientTransformation):
        raise TypeError("grad_transform must be an optax.GradientTransformation, got "
                        f"{type(grad_transform).__name__}")
    probe_fn = _rademacher_probes if _probe_fn is None else _probe_fn
    is_static = schedule_fn is None and lr_dyn is None and not dynamic

    def init_fn(params):
        leaves, treedef = jax.tree.flatten(params)
        if any(isinstance(x, jax.ShapeDtypeStruct) for x in leaves):
            return jax.eval_shape(init_fn, params)  # abstract params: the abstract state
        leaves = [jnp.asarray(x) for x in leaves]
        for i, x in enumerate(leaves):
            if jnp.issubdtype(x.dtype, jnp.complexfloating):
                raise TypeError(f"alice_jax: leaf {i} is complex ({x.dtype}); Alice is defined "
                                "for real parameters")
        core = alice_ref.init(leaves, config)
        mu = list(core.mu) if mu_dtype is None else [x.astype(mu_dtype) for x in core.mu]
        mu = treedef.unflatten(mu)
        zeros = lambda: jax.tree.map(jnp.zeros_like, mu)  # noqa: E731
        i32 = lambda v: jnp.asarray(v, dtype=jnp.int32)  # noqa: E731
        scalars = (i32(0), _key_data(seed_spec), i32(0), i32(-1), i32(-1))
        repl = _replicated_like(leaves)  # mu, G, V, H, R follow the params' own sharding
        if repl is not None:  # (P(): the sharding a jitted step gives them back)
            scalars = jax.device_put(scalars, repl)
        count, key, skipped, bad_eval, bad_leaf = scalars
        return AliceJaxState(count, key, mu, zeros(), zeros(), zeros(), zeros(), skipped,
                             bad_eval, bad_leaf)

    def update_fn(updates, state, params=None, *, value_fn=None, grad_fn=None,
                  sample_step=None, **extra):
        if params is None:
            raise ValueError("alice_jax: update needs params (the evaluation point nu)")
        if sample_step is not None and not isinstance(sample_step, (bool, np.bool_)):
            raise TypeError("alice_jax: sample_step must be None (the in-graph cond), True or "
                            f"False (a static Python bool), got {sample_step!r}; under jit "
                            "make it a static argument (static_argnames)")
        if any(isinstance(x, optax.MaskedNode) for x in
               jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, optax.MaskedNode))):
            raise TypeError("alice_jax: params contain optax.MaskedNode (optax.masked or "
                            "optax.multi_transform): value_fn needs the whole params; use "
                            "Alice on every parameter, or freeze parameters inside value_fn")
        raw_grad_at = _gradient_function(value_fn, grad_fn, extra)
        if grad_transform is None:
            grad_at = raw_grad_at
            transform = lambda g, p: g  # noqa: E731
        else:
            if jax.tree.leaves(grad_transform.init(params)):
                raise TypeError("alice_jax: grad_transform must be stateless (it is applied "
                                "to three evaluations per batch); got one whose init state "
                                "has arrays")
            empty = grad_transform.init(params)
            transform = lambda g, p: grad_transform.update(g, empty, p)[0]  # noqa: E731
            grad_at = lambda p: transform(raw_grad_at(p), p)  # noqa: E731
        p_leaves, treedef = jax.tree.flatten(params)
        p_leaves = [jnp.asarray(x) for x in p_leaves]
        n = len(p_leaves)
        mu, G, V, H, R = (treedef.flatten_up_to(x) for x in
                          (state.mu, state.G, state.V, state.H, state.R))
        sdt = [m.dtype for m in mu]
        g0 = [jnp.asarray(g).astype(d) for g, d in
              zip(treedef.flatten_up_to(transform(updates, params)), sdt)]
        nu = [p.astype(d) for p, d in zip(p_leaves, sdt)]

        t = optax.safe_increment(state.count)  # saturates at the int32 maximum
        # the core's schedule, traced (steps 1-2), with the weights in each state dtype
        sample, do_update = schedule(t, config)[1:3]
        sched = {d: schedule(t, config, d) for d in set(sdt)}
        b1 = [sched[d].beta1 for d in sdt]
        b2 = [sched[d].beta2 for d in sdt]
        b3 = [sched[d].beta3 for d in sdt]
        # the learning rate of this batch (sigma and the bounds' scale), and the config the
        # traced step reads, per state dtype (a traced scalar must not promote a leaf's dtype)
        if schedule_fn is not None:
            lr_now = schedule_fn(state.count)
        else:
            lr_now = config.lr if lr_dyn is None else lr_dyn
        views = {}
        for d in set(sdt):
            if is_static:
                views[d] = (config, None, config.lr)
                continue
            cast = lambda v, d=d: jnp.asarray(v).astype(d)  # noqa: E731
            dyn = {k: cast(v) for k, v in dynamic.items()}
            lr_d = cast(lr_now)
            follows = lr_max_default and "lr_min" not in dynamic and config.lr_min == 0.0
            if schedule_fn is None or follows:  # the bounds are those of lr_d itself
                ref, bound_lr = lr_d, None
            else:  # ratios to the schedule's lr at construction (count 0), as in the core
                ref, bound_lr = cast(schedule_fn(0)), lr_d
            fields = dict(lr=ref, **{k: dyn.get(k, getattr(config, k)) for k in
                                     ("eps", "w1", "w2", "phi", "omega", "lr_min",
                                      "lr_max")})
            if lr_max_default:
                fields["lr_max"] = 2.0 * ref
            if phi is None and "phi" not in dynamic:
                fields["phi"] = config.phi
            views[d] = (_config_view(config, **fields), bound_lr, lr_d)
        cfg = [views[d][0] for d in sdt]
        w1 = [_Weight(c.w1) if "w1" in dynamic else config.w1 for c in cfg]
        w2 = [c.w2 if "w2" in dynamic else config.w2 for c in cfg]  # absorb_curvature's
        w2g = [_Weight(w) if "w2" in dynamic else w for w in w2]  # absorb_gradient's
        all_finite = lambda xs: jnp.stack(  # noqa: E731
            [jnp.all(jnp.isfinite(x)) for x in xs]) if xs else jnp.ones((0,), bool)

        ok0 = all_finite(g0)

        def sample_branch(_):
            key, sub = jax.random.split(jax.random.wrap_key_data(state.key, impl=seed_spec[2]))
            z = treedef.flatten_up_to(probe_fn(sub, t, treedef.unflatten(nu)))
            z = [jnp.asarray(zi).astype(d) for zi, d in zip(z, sdt)]
            sig = [views[d][2] for d in sdt]  # sigma per leaf (a float, or a traced array)
            pts = [[(v + s * zi).astype(p.dtype) for v, zi, p, s in zip(nu, z, p_leaves, ss)]
                   for ss in (sig, [-s for s in sig])]  # nu + sigma z, nu - sigma z (stored)
            gp = [x.astype(d) for x, d in
                  zip(treedef.flatten_up_to(grad_at(treedef.unflatten(pts[0]))), sdt)]
            gm = [x.astype(d) for x, d in
                  zip(treedef.flatten_up_to(grad_at(treedef.unflatten(pts[1]))), sdt)]
            ok_p, ok_m = all_finite(gp), all_finite(gm)
            ok = jnp.all(ok_p) & jnp.all(ok_m) & jnp.all(ok0)
            HR = []
            for i in range(n):
                p, d = p_leaves[i], sdt[i]
                if p.dtype != d:  # the stored points are rounded: the realised displacements
                    wide = jnp.promote_types(p.dtype, d)
                    disp = [jnp.abs(x.astype(wide) - p.astype(wide)).astype(d)
                            for x in (pts[0][i], pts[1][i])]
                    disp = dict(d_plus=disp[0], d_minus=disp[1])
                elif not is_static:  # a traced sigma: the displacement path, exact for d = sigma
                    disp = dict(d_plus=sig[i], d_minus=sig[i])
                else:
                    disp = {}
                HR.append(absorb_curvature(H[i], R[i], gp[i], gm[i], g0[i], config.lr, b3[i],
                                           config.hess_comp, w2[i], **disp))
            # the kept averages: selected here, so that a quick batch passes H and R through
            return (jax.random.key_data(key), [jnp.where(ok, x[0], h) for x, h in zip(HR, H)],
                    [jnp.where(ok, x[1], r) for x, r in zip(HR, R)], ok_p, ok_m)

        def quick_branch(_):
            ok = jnp.ones((n,), bool)
            return state.key, list(H), list(R), ok, ok

        if sample_step is None:  # one step function for every batch: the traced choice
            key, H2, R2, ok_p, ok_m = jax.lax.cond(sample, sample_branch, quick_branch, None)
            wrong = jnp.asarray(False)
        else:  # the specialised step the host chose; a batch the counter disagrees with is
            # refused (as a skipped one, bad_eval = WRONG_STEP), never taken the wrong way
            branch = sample_branch if sample_step else quick_branch
            key, H2, R2, ok_p, ok_m = branch(None)
            wrong = sample != bool(sample_step)
            if sample_step:  # the curvature sample of a refused batch is not kept either
                H2 = [jnp.where(wrong, h, h2) for h, h2 in zip(H, H2)]
                R2 = [jnp.where(wrong, r, r2) for r, r2 in zip(R, R2)]
        GV = [absorb_gradient(g, v, a, x, b1_, b2_, w1_, w2_)
              for g, v, a, x, b1_, b2_, w1_, w2_ in zip(G, V, g0, nu, b1, b2, w1, w2g)]
        G1, V1 = [x[0] for x in GV], [x[1] for x in GV]
        if n:
            # (3, n), in the order of docs/spec/algorithm.md#one-batch, step 3
            bad = ~jnp.stack([ok_p, ok_m, ok0])
            any_bad = jnp.any(bad)
            bad_eval = jnp.where(any_bad, jnp.argmax(jnp.any(bad, axis=1)), -1)
            bad_leaf = jnp.where(any_bad, jnp.argmax(bad[jnp.maximum(bad_eval, 0)]), -1)
        else:
            any_bad, bad_eval, bad_leaf = jnp.asarray(False), -1, -1
        if sample_step is not None:
            bad_eval = jnp.where(wrong, WRONG_STEP, bad_eval)
            bad_leaf = jnp.where(wrong, -1, bad_leaf)
            any_bad = any_bad | wrong
        ok = ~any_bad
        keep = lambda new, old: [jnp.where(ok, a, b) for a, b in zip(new, old)]  # noqa: E731
        # XLA's CPU backend has no multi-output loop fusion: every value that two loops read
        # is recomputed in each (and, with donated buffers, the old averages are copied to
        # stay readable) unless it is materialised once behind a barrier: the kept averages G
        # and V (H and R come kept from the cond). The step delta (R5, R6) is read by both
        # mu' = mu + phi delta and nu' = mu + omega delta (R7, as alice_update); a barrier on
        # it changes nothing in XLA's loops, so it has none. On a skipped batch delta is
        # computed and discarded.
        G2, V2 = jax.lax.optimization_barrier((keep(G1, G), keep(V1, V)))
        delta = [alice_step(g, v, h, r, c, views[c_d][1])
                 for g, v, h, r, c, c_d in zip(G2, V2, H2, R2, cfg, sdt)]
        mu1 = [jnp.where(do_update, m + c.phi * d, m) for d, m, c in zip(delta, mu, cfg)]
        nu1 = [jnp.where(do_update, m + c.omega * d, v)
               for d, m, v, c in zip(delta, mu, nu, cfg)]
        unflat = treedef.unflatten
        i32 = lambda v: jnp.asarray(v, dtype=jnp.int32)  # noqa: E731
        new_state = AliceJaxState(
            count=jnp.where(ok, t, state.count).astype(jnp.int32),
            key=jnp.where(ok, key, state.key),  # a skipped batch draws nothing
            mu=unflat(keep(mu1, mu)), G=unflat(G2), V=unflat(V2), H=unflat(H2), R=unflat(R2),
            skipped=jnp.where(any_bad, optax.safe_increment(state.skipped),
                              state.skipped).astype(jnp.int32),
            bad_eval=i32(bad_eval), bad_leaf=i32(bad_leaf))
        out = [jnp.where(ok, b.astype(p.dtype) - p, jnp.zeros_like(p))
               for b, p in zip(nu1, p_leaves)]
        return unflat(out), new_state

    tx = AliceTransformation(init_fn, update_fn)
    tx._config = config  # the static schedule (beta1, q) for is_sample_step
    return tx

