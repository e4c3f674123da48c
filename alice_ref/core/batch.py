"""One Alice batch as pure functions over sequences of arrays (docs/spec/algorithm.md#one-batch).

Read like optax: small pure functions over an immutable :class:`~alice_ref.core.state.AliceState`.
Nothing here updates in place and nothing draws random numbers, so JAX can trace it; the
drivers and adapters supply probes and gradients.

One batch, in the order of the algorithm: ``sched = schedule(state.t + 1, config)`` (steps
1-2); on a sample step evaluate g+ = g(nu + sigma z), g- = g(nu - sigma z), g0 = g(nu) at
:func:`probe_points` and call :func:`absorb_sample` (step 3, Alg. 2), else evaluate g0 and call
:func:`absorb_quick` (step 4); then :func:`apply_update` (step 5, Alg. 3). The maths is that of
R3 (estimators), R5/R6 (step), R7 (look-ahead) and R8 (schedule).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from alice_ref._xp import array_namespace, is_array_api_obj
from alice_ref.checks import check_count
from alice_ref.core.config import AliceConfig
from alice_ref.core.elements import absorb_curvature, absorb_gradient, alice_update
from alice_ref.core.state import AliceState
from alice_ref.maths.schedule import ema_beta

__all__ = ["Schedule", "schedule", "probe_points", "realised_displacements", "absorb_sample",
           "absorb_quick", "apply_update"]


class Schedule(NamedTuple):
    """What batch t does (R8), as computed by :func:`schedule`.

    docs/spec/algorithm.md#one-batch, steps 1-2.

    Attributes:
        t: the batch number (1-based).
        sample: True for a sample step (three evaluations), False for a quick step (one).
        update: True after warm-up (t > 1/(1 - beta1)): the state update runs.
        beta1: bias-corrected gradient weight min(beta1, (t-1)/t).
        beta2: bias-corrected squared-gradient weight min(beta2, (t-1)/t).
        beta3: bias-corrected curvature weight min(beta3, (t-1)/t).

    Example:
        Batch 1 is a warm-up sample step whose weight 0 takes the sample as it is:

        >>> s = schedule(1, AliceConfig())
        >>> s.sample, s.update, s.beta1  # batch 1: a warm-up sample step, weight 0
        (True, False, 0.0)
    """

    t: int
    sample: bool
    update: bool
    beta1: float
    beta2: float
    beta3: float


def schedule(t, config: AliceConfig, dtype=None) -> Schedule:
    """The schedule of batch t (docs/spec/algorithm.md#one-batch, steps 1-2; R8).

    beta_kt = min(beta_k, (t-1)/t) for k = 1, 2, 3 with beta3 = 1 - (q+1)(1 - beta2); warm-up
    iff t <= 1/(1 - beta1) (exact for the decimal beta1, see
    :func:`alice_ref.maths.schedule.warmup_length`), i.e. t <= its floor; sample step iff
    warm-up or t mod (q+1) = 0; state update iff t > 1/(1 - beta1).

    Traceable: ``t`` may be an integer array (a traced JAX counter); then every field is an
    array (the weights in ``dtype``, default float32) and nothing is checked. The JAX adapter
    runs this very function inside its compiled step.

    Args:
        t: the batch number, an integer >= 1 (``state.t + 1`` for the next batch), or an
            integer array.
        config: the hyperparameters (beta1, beta2 and quick_steps q are used).
        dtype: for an array t, the floating dtype of the weights.

    Returns:
        A Schedule namedtuple for batch t.

    Raises:
        ValueError: t is a number that is not an integer >= 1.

    Example:
        With beta1 = 0.75 warm-up is batches 1-4; after it every (q+1)-th batch samples:

        >>> c = AliceConfig(betas=(0.75, 0.999), quick_steps=3)  # warm-up: t <= 4
        >>> [(t, schedule(t, c).sample, schedule(t, c).update) for t in (4, 5, 8)]
        [(4, True, False), (5, False, True), (8, True, True)]
        >>> schedule(5, c).beta1, schedule(5, c).beta3  # min(0.75, 4/5), min(0.996, 4/5)
        (0.75, 0.8)
        >>> import numpy as np
        >>> s = schedule(np.asarray(8), c)  # an array counter, as under jax.jit
        >>> bool(s.sample), bool(s.update), s.beta1.dtype
        (True, True, dtype('float32'))
    """
    n_warm = math.floor(config.warmup)  # the last warm-up batch (warmup is exact)
    q1 = config.quick_steps + 1
    if is_array_api_obj(t):
        xp = array_namespace(t)
        tf = xp.astype(t, xp.float32 if dtype is None else dtype)
        sample = xp.logical_or(t <= n_warm, t % q1 == 0)
    else:
        t = tf = check_count("t", t, lo=1)
        sample = t <= n_warm or t % q1 == 0
    return Schedule(t, sample, t > n_warm, ema_beta(config.beta1, tf),
                    ema_beta(config.beta2, tf), ema_beta(config.beta3, tf))


def probe_points(state: AliceState, z, sigma: float, like=None):
    """Evaluation points of a batch: nu + sigma z, nu - sigma z and nu.

    docs/spec/algorithm.md#one-batch, step 3.

    Computed per parameter in the state dtype, then cast to the dtypes of ``like`` (the model's
    parameters). Inputs are not checked here: :func:`alice_ref.driver.run_batch` supplies them.

    Args:
        state: an AliceState (its nu is used).
        z: one probe array per parameter (Rademacher signs on a sample step), or None on a
            quick step.
        sigma: the perturbation length (the current learning rate).
        like: optional sequence of arrays whose dtypes the points take.

    Returns:
        The triple (plus, minus, nu) of lists of arrays; plus and minus are None when z is None.

    Example:
        The points for z = (1, -1) and sigma = 0.5:

        >>> import numpy as np
        >>> from alice_ref.core import init
        >>> s = init([np.array([1.0, 2.0])])
        >>> plus, minus, nu = probe_points(s, [np.array([1.0, -1.0])], 0.5)
        >>> plus[0].tolist(), minus[0].tolist(), nu[0].tolist()
        ([1.5, 1.5], [0.5, 2.5], [1.0, 2.0])
        >>> probe_points(s, None, 0.5)[:2]  # a quick step evaluates nu only
        (None, None)
    """
    nu = list(state.nu)
    plus = None if z is None else [n + sigma * zi for n, zi in zip(nu, z)]
    minus = None if z is None else [n - sigma * zi for n, zi in zip(nu, z)]
    if like is not None:  # plus and minus are new arrays; nu is copied (the state keeps its own)
        cast = lambda xs, copy: xs if xs is None else [  # noqa: E731
            array_namespace(x).astype(x, p.dtype, copy=copy) for x, p in zip(xs, like)]
        plus, minus, nu = cast(plus, False), cast(minus, False), cast(nu, True)
    return plus, minus, nu


def realised_displacements(points, state: AliceState):
    """Per parameter, the realised displacements (d_plus, d_minus) of stored probe points.

    Probe points stored in a narrower dtype than the state (bfloat16/float16 parameters, float32
    state) are rounded, and so is nu as evaluated: the points are nu' + d+ z and nu' - d- z with
    nu' the stored nu and d+- = |plus - nu'|, |nu' - minus| (computed in the state dtype, where
    the difference of two narrow numbers is exact). :func:`absorb_sample` (``displacements=``)
    then divides by the distances actually travelled, not the nominal sigma (docs/jax.md has
    the bfloat16 figures). Where a point has the state dtype the entry is None: its points are
    the core's and sigma is exact (so float32/float64 parameters keep the official arithmetic).

    Args:
        points: (plus, minus, nu) as :func:`probe_points` returns them (in the parameters'
            dtypes, ``like``).
        state: the AliceState (its mu gives the state dtypes).

    Returns:
        A list with None or (d_plus, d_minus) per parameter, or None on a quick step.

    Example:
        >>> import numpy as np
        >>> from alice_ref.core import init
        >>> s = init([np.ones(2, np.float16)])
        >>> z = [np.array([1.0, -1.0], np.float32)]
        >>> pts = probe_points(s, z, 3e-4, like=[np.ones(2, np.float16)])
        >>> dp, dm = realised_displacements(pts, s)[0]
        >>> dp.tolist(), dm.tolist()  # in float16 1 + 3e-4 rounds to 1, 1 - 3e-4 to 1 - 2**-11
        ([0.0, 0.00048828125], [0.00048828125, 0.0])
    """
    plus, minus, nu = points
    if plus is None:
        return None
    out = []
    for p, m, n, mu in zip(plus, minus, nu, state.mu):
        if p.dtype == mu.dtype:
            out.append(None)
            continue
        xp = array_namespace(mu)
        p, m, n = (xp.astype(x, mu.dtype) for x in (p, m, n))
        out.append((xp.abs(p - n), xp.abs(n - m)))
    return out


# -- whole-state functions (Python schedule) -----------------------------------------------------

def _as_state(xs, ref, name):
    """One array per parameter, of its shape, cast to the state dtype. Errors name entry i as
    ``name[i]``, or as ``name.format(i=i)`` when ``name`` holds ``{i}``."""
    entry = (lambda i: name.format(i=i)) if "{i}" in name else (lambda i: f"{name}[{i}]")
    what = name.replace("[{i}]", "").replace("{i}", "")
    if is_array_api_obj(xs) or not hasattr(xs, "__len__"):
        raise TypeError(f"{what} must be a sequence with one array per parameter, got "
                        f"{type(xs).__name__}")
    xs = list(xs)
    if len(xs) != len(ref):
        raise ValueError(f"{what} has {len(xs)} arrays but the state has {len(ref)} parameters")
    out = []
    for i, (x, r) in enumerate(zip(xs, ref)):
        if not is_array_api_obj(x):
            raise TypeError(f"{entry(i)} must be an array, got {type(x).__name__}")
        if tuple(x.shape) != tuple(r.shape):
            raise ValueError(f"{entry(i)} has shape {tuple(x.shape)}, parameter {i} has "
                             f"shape {tuple(r.shape)}")
        xp = array_namespace(r)
        out.append(x if x.dtype == r.dtype else xp.astype(x, r.dtype))
    return out


def absorb_sample(state: AliceState, sched: Schedule, g_plus, g_minus, g_zero, config: AliceConfig,
                  lr: float | None = None, *, displacements=None) -> AliceState:
    """Absorb a sample step's three gradients: H, R, G, V and t change.

    docs/spec/algorithm.md#one-batch, step 3 (Alg. 2).

    Applies :func:`absorb_curvature` (sigma = lr, or config.lr when lr is None) and
    :func:`absorb_gradient` to every parameter with the weights of ``sched``, and sets
    t = sched.t; mu and nu are kept (see :func:`apply_update`). Gradients in another floating
    dtype are cast to the state dtype.

    Args:
        state: the state before the batch.
        sched: the batch's schedule, schedule(state.t + 1, config).
        g_plus: g(nu + sigma z), one array per parameter.
        g_minus: g(nu - sigma z), likewise.
        g_zero: g(nu), likewise.
        config: the hyperparameters (hess_comp, w1, w2, lr).
        lr: the current learning rate = sigma (None: config.lr).
        displacements: optional, one entry per parameter: None (the nominal sigma) or the pair
            (d_plus, d_minus) of realised displacements of its stored probe points (see
            :func:`absorb_curvature`; for points rounded to a narrower parameter dtype).

    Returns:
        The new AliceState.

    Raises:
        ValueError: a sequence whose length is not the number of parameters, an array whose
            shape is not its parameter's, or sigma <= 0.
        TypeError: an entry that is not an array.

    Example:
        Batch 1 (weights 0) stores the samples:

        >>> import numpy as np
        >>> from alice_ref.core import init
        >>> c = AliceConfig(lr=0.5)
        >>> gp, gm, g0 = [np.array([3.0, 1.0])], [np.array([1.0, 1.0])], [np.array([1.0, 0.0])]
        >>> s = absorb_sample(init([np.zeros(2)]), schedule(1, c), gp, gm, g0, c)  # weights 0
        >>> s.t, s.H[0].tolist(), s.R[0].tolist(), s.G[0].tolist(), s.V[0].tolist()
        (1, [2.0, 0.0], [4.0, 4.0], [1.0, 0.0], [1.0, 0.0])
    """
    sigma = config.lr if lr is None else lr
    gp = _as_state(g_plus, state.mu, "g_plus")
    gm = _as_state(g_minus, state.mu, "g_minus")
    g0 = _as_state(g_zero, state.mu, "g_zero")
    disp = [None] * len(gp) if displacements is None else list(displacements)
    if len(disp) != len(gp):
        raise ValueError(f"displacements has {len(disp)} entries but the state has {len(gp)} "
                         "parameters")
    H, R = zip(*[absorb_curvature(H, R, a, b, c, sigma, sched.beta3, config.hess_comp, config.w2,
                                  **({} if d is None else dict(d_plus=d[0], d_minus=d[1])))
                 for H, R, a, b, c, d in zip(state.H, state.R, gp, gm, g0, disp)]) if gp else (
        (), ())
    state = state._replace(H=tuple(H), R=tuple(R))
    return _absorb_g0(state, sched, g0, config)


def absorb_quick(state: AliceState, sched: Schedule, g_zero, config: AliceConfig) -> AliceState:
    """Absorb a quick step's gradient g0 = g(nu): G, V and t change.

    docs/spec/algorithm.md#one-batch, step 4.

    Per parameter G' = EMA_beta1(G, g0 + w1 s(nu) + w2 nu) and V' = EMA_beta2(V, g0^2) (see
    :func:`absorb_gradient`); H, R, mu and nu are kept; t = sched.t.

    Args:
        state: the state before the batch.
        sched: the batch's schedule, schedule(state.t + 1, config).
        g_zero: g(nu), one array per parameter.
        config: the hyperparameters (w1, w2).

    Returns:
        The new AliceState.

    Raises:
        ValueError: a sequence whose length is not the number of parameters, or an array whose
            shape is not its parameter's.
        TypeError: an entry that is not an array.

    Example:
        Two quick batches average their gradients; a wrong shape is refused:

        >>> import numpy as np
        >>> from alice_ref.core import init
        >>> c = AliceConfig()
        >>> s = absorb_quick(init([np.zeros(2)]), schedule(1, c), [np.array([1.0, -2.0])], c)
        >>> s = absorb_quick(s, schedule(2, c), [np.array([3.0, 0.0])], c)
        >>> s.t, s.G[0].tolist(), s.V[0].tolist()  # weights (t-1)/t: the means of the samples
        (2, [2.0, -1.0], [5.0, 2.0])
        >>> absorb_quick(s, schedule(3, c), [np.zeros(3)], c)
        Traceback (most recent call last):
        ...
        ValueError: g_zero[0] has shape (3,), parameter 0 has shape (2,)
    """
    return _absorb_g0(state, sched, _as_state(g_zero, state.mu, "g_zero"), config)


def _absorb_g0(state, sched, g0, config):
    GV = [absorb_gradient(G, V, g, n, sched.beta1, sched.beta2, config.w1, config.w2)
          for G, V, g, n in zip(state.G, state.V, g0, state.nu)]
    G, V = (tuple(x) for x in zip(*GV)) if GV else ((), ())
    return state._replace(t=sched.t, G=G, V=V)


def apply_update(state: AliceState, sched: Schedule, config: AliceConfig,
                 lr: float | None = None) -> AliceState:
    """The state update (R5, R6, R7) on every parameter after warm-up.

    docs/spec/algorithm.md#one-batch, step 5 (Alg. 3).

    When ``sched.update`` (t > 1/(1 - beta1)) each parameter gets (mu', nu') =
    :func:`alice_update` (mu, G, V, H, R, config, lr); during warm-up ``state`` itself is
    returned. t is not changed (the absorb functions set it). Raises nothing itself.

    Args:
        state: the state after absorbing the batch's gradients.
        sched: the batch's schedule.
        config: the hyperparameters.
        lr: the current learning rate for the bounds (None: config.lr).

    Returns:
        The new AliceState, or ``state`` itself during warm-up.

    Example:
        No update during warm-up, then the step of alice_update:

        >>> import numpy as np
        >>> from alice_ref.core import init
        >>> c = AliceConfig(lr=0.5, betas=(0.5, 0.999), limit_method="fixed", grad_glass=False)
        >>> G, H = (np.array([2.0, -8.0]),), (np.array([4.0, 1.0]),)
        >>> s = init([np.zeros(2)])._replace(G=G, H=H)
        >>> apply_update(s, schedule(2, c), c) is s  # t = 2 <= 1/(1 - 0.5): warm-up
        True
        >>> apply_update(s, schedule(3, c), c).mu[0].round(6).tolist()  # as in alice_update
        [-0.25, 0.5]
    """
    if not sched.update:
        return state
    MN = [alice_update(m, G, V, H, R, config, lr)
          for m, G, V, H, R in zip(state.mu, state.G, state.V, state.H, state.R)]
    mu, nu = (tuple(x) for x in zip(*MN)) if MN else ((), ())
    return state._replace(mu=mu, nu=nu)


