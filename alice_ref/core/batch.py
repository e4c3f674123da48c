"""The Alice optimiser as pure functions over sequences of arrays (ALICE.md).

Read like optax: an immutable validated :class:`AliceConfig`, an immutable :class:`AliceState`
(a NamedTuple of tuples of arrays), and small pure functions. Nothing here updates in place and
nothing draws random numbers, so JAX can trace the per-element kernels; the batch driver in
:mod:`alice_ref.driver` supplies the probes and gradients.

One batch (ALICE.md): ``sched = schedule(state.t + 1, config)``; on a sample step evaluate
g+ = g(nu + sigma z), g- = g(nu - sigma z), g0 = g(nu) (see :func:`probe_points`) and call
:func:`absorb_sample`, else evaluate g0 and call :func:`absorb_quick`; then
:func:`apply_update`. The maths is that of R3 (estimators), R5/R6 (step) and R7 (look-ahead).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import NamedTuple

from alice_ref._xp import array_namespace, device, is_array_api_obj
from alice_ref.maths.estimators import curvature_magnitude, glass_density
from alice_ref.maths.schedule import curvature_beta, ema_beta, is_sample_step, warmup_length
from alice_ref.maths.step import LIMIT_METHODS, _bounded_step

__all__ = ["AliceConfig", "AliceState", "Schedule", "HESS_COMPS", "NONFINITE_POLICIES",
           "schedule", "init", "probe_points", "ema", "absorb_gradient", "absorb_curvature",
           "alice_update", "alice_step", "absorb_sample", "absorb_quick", "apply_update",
           "params_of",
           "state_to_dict", "state_from_dict", "attributes"]

HESS_COMPS = ("zero", "abs", "rms")
NONFINITE_POLICIES = ("raise", "skip")


def _real(name, value, *, lo=None, lo_open=False, hi=None, hi_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {value!r}")
    return v


@dataclasses.dataclass(frozen=True)
class AliceConfig:
    """Validated, immutable Alice hyperparameters (ALICE.md's table, official names/defaults).

    ``phi=None`` resolves to 1 - beta1 (R7's exact look-ahead fraction for omega = 1) and
    ``lr_max=None`` to 2 lr; the derived curvature weight beta3 = 1 - (q+1)(1 - beta2) (R8) must
    lie in (0, 1). Every field is checked on construction (and by :meth:`replace`), before
    anything else happens.

    Args:
        lr: learning rate (> 0): the perturbation length sigma and the scale of the step bounds.
        betas: (beta1, beta2), each in (0, 1): gradient and squared-gradient average weights.
        eps: denominator guard (> 0).
        w1: L1 regularisation weight (>= 0).
        w2: L2 regularisation weight (>= 0).
        phi: fraction of the step taken by the centre mu, 0 < phi < 2; None -> 1 - beta1 (R7).
        omega: look-ahead multiplier (> 0): nu = mu + omega delta.
        limit_method: 'fixed', 'sgdm' or 'adam': the factor f of the step bounds (R6).
        lr_min: lower step bound tau_lo (>= 0).
        lr_max: upper step bound tau_hi (>= lr_min); None -> 2 lr.
        scale_bounds_with_lr: keep lr_min/lr and lr_max/lr fixed when a schedule changes lr
            (see :meth:`bounds`).
        hess_comp: 'zero', 'abs' or 'rms': the curvature h the step uses.
        grad_glass: use the glass density rho in the step (R5).
        quick_steps: q, an integer >= 0: quick steps after each sample step (R8).
        nonfinite: 'raise' or 'skip': the driver's policy for NaN/Inf gradients.

    Raises:
        TypeError: a number that is not a real scalar, or a flag that is not a bool.
        ValueError: a value outside its range above (the message names the argument and the
            value), hess_comp='zero' with grad_glass=False (nothing would bound the step), or
            (q+1)(1 - beta2) >= 1 (beta3 would not be an average weight).

    Example:
        Defaults resolved from lr and beta1, and a bad value refused:

        >>> c = AliceConfig(lr=0.01, betas=(0.75, 0.999))
        >>> c.phi, c.lr_max, c.beta3, c.warmup  # 1 - beta1, 2 lr, 1 - 4 (1 - beta2), 1/(1 - beta1)
        (0.25, 0.02, 0.996, 4.0)
        >>> AliceConfig(lr=0.0)
        Traceback (most recent call last):
        ...
        ValueError: lr must be > 0.0, got 0.0
    """

    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    w1: float = 0.0
    w2: float = 0.0
    phi: float | None = None
    omega: float = 1.0
    limit_method: str = "adam"
    lr_min: float = 0.0
    lr_max: float | None = None
    scale_bounds_with_lr: bool = True
    hess_comp: str = "abs"
    grad_glass: bool = True
    quick_steps: int = 3
    nonfinite: str = "raise"
    _defaulted: frozenset = dataclasses.field(default=frozenset(), init=False, repr=False,
                                              compare=False)

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        put("_defaulted", frozenset(k for k in ("phi", "lr_max") if getattr(self, k) is None))
        put("lr", _real("lr", self.lr, lo=0.0, lo_open=True))
        try:
            b1, b2 = self.betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}") from None
        put("betas", (_real("betas[0]", b1, lo=0.0, lo_open=True, hi=1.0, hi_open=True),
                      _real("betas[1]", b2, lo=0.0, lo_open=True, hi=1.0, hi_open=True)))
        put("eps", _real("eps", self.eps, lo=0.0, lo_open=True))
        put("w1", _real("w1", self.w1, lo=0.0))
        put("w2", _real("w2", self.w2, lo=0.0))
        phi = 1.0 - self.betas[0] if self.phi is None else self.phi
        put("phi", _real("phi", phi, lo=0.0, lo_open=True, hi=2.0, hi_open=True))
        put("omega", _real("omega", self.omega, lo=0.0, lo_open=True))
        if self.limit_method not in LIMIT_METHODS:
            raise ValueError(f"limit_method must be one of {LIMIT_METHODS}, "
                             f"got {self.limit_method!r}")
        put("lr_min", _real("lr_min", self.lr_min, lo=0.0))
        lr_max = _real("lr_max", 2.0 * self.lr if self.lr_max is None else self.lr_max)
        if lr_max < self.lr_min:
            raise ValueError(f"lr_max must be >= lr_min = {self.lr_min!r}, got {lr_max!r}"
                             + (" (the default 2 lr)" if self.lr_max is None else ""))
        put("lr_max", lr_max)
        if not isinstance(self.scale_bounds_with_lr, bool):
            raise TypeError(f"scale_bounds_with_lr must be a bool, "
                            f"got {self.scale_bounds_with_lr!r}")
        if self.hess_comp not in HESS_COMPS:
            raise ValueError(f"hess_comp must be one of {HESS_COMPS}, got {self.hess_comp!r}")
        if not isinstance(self.grad_glass, bool):
            raise TypeError(f"grad_glass must be a bool, got {self.grad_glass!r}")
        if self.hess_comp == "zero" and not self.grad_glass:
            raise ValueError("hess_comp='zero' with grad_glass=False leaves no curvature: the "
                             "step would be unbounded; enable one of them")
        q = self.quick_steps
        if isinstance(q, bool) or not isinstance(q, numbers.Integral) or q < 0:
            raise ValueError(f"quick_steps must be an integer >= 0, got {q!r}")
        put("quick_steps", int(q))
        curvature_beta(self.betas[1], self.quick_steps)  # (q+1)(1 - beta2) < 1, R8
        if self.nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, "
                             f"got {self.nonfinite!r}")

    beta1 = property(lambda self: self.betas[0], doc="beta1: gradient-average weight.")
    beta2 = property(lambda self: self.betas[1], doc="beta2: squared-gradient weight.")
    beta3 = property(lambda self: curvature_beta(self.betas[1], self.quick_steps),
                     doc="beta3 = 1 - (q+1)(1 - beta2), the curvature-average weight (R8).")
    warmup = property(lambda self: warmup_length(self.betas[0]),
                      doc="Warm-up threshold 1/(1 - beta1), exact for the decimal beta1 "
                          "(alice_ref.maths.schedule.warmup_length).")

    def bounds(self, lr: float | None = None) -> tuple[float, float]:
        """Step bounds (tau_lo, tau_hi) for the current learning rate, R6.

        With ``scale_bounds_with_lr`` the ratios to the construction lr are kept:
        tau_lo = lr_min lr_now / lr and tau_hi = lr_max lr_now / lr, so a schedule that changes
        the learning rate moves the bounds; otherwise, or when ``lr`` is None, they are
        (lr_min, lr_max). The step d is then clipped to [tau_lo f, tau_hi f] (ALICE.md step 5).

        Args:
            lr: the current learning rate lr_now, or None for the construction lr. Not checked
                here (the driver checks it: finite and > 0).

        Returns:
            The pair (tau_lo, tau_hi) as floats.

        Example:
            Bounds that follow the learning rate, and fixed ones:

            >>> c = AliceConfig(lr=0.5, lr_min=0.25)  # lr_max resolves to 2 lr = 1.0
            >>> c.bounds(), c.bounds(0.25)  # halving the learning rate halves both bounds
            ((0.25, 1.0), (0.125, 0.5))
            >>> c.replace(scale_bounds_with_lr=False).bounds(0.25)
            (0.25, 1.0)
        """
        if lr is None or not self.scale_bounds_with_lr:
            return self.lr_min, self.lr_max
        return self.lr_min / self.lr * lr, self.lr_max / self.lr * lr

    def replace(self, **changes) -> AliceConfig:
        """A new validated config with some fields changed (``dataclasses.replace``).

        phi and lr_max that were left to their defaults (None) are derived again from the new
        lr and betas; values given explicitly are kept.

        Args:
            **changes: field names and their new values.

        Returns:
            A new AliceConfig; ``self`` is unchanged.

        Raises:
            TypeError: an unknown field name, or a value of the wrong type.
            ValueError: a value out of range, as for the constructor.

        Example:
            Defaulted fields follow the change; every change is validated:

            >>> c = AliceConfig(lr=0.01, betas=(0.75, 0.999))
            >>> c2 = c.replace(lr=0.02)
            >>> c2.lr, c2.lr_max, c.lr  # lr_max = 2 lr by default, so it follows
            (0.02, 0.04, 0.01)
            >>> AliceConfig(lr=0.01, lr_max=0.05).replace(lr=0.02).lr_max  # explicit: kept
            0.05
            >>> c.replace(quick_steps=-1)
            Traceback (most recent call last):
            ...
            ValueError: quick_steps must be an integer >= 0, got -1
        """
        return dataclasses.replace(
            self, **{k: None for k in self._defaulted if k not in changes}, **changes)


class AliceState(NamedTuple):
    """Alice's state (ALICE.md, "State"): batch counter, skip counter, per-parameter arrays.

    An immutable NamedTuple. Every array field is a tuple with one array per parameter, in the
    state dtype (the parameter's floating dtype; float32 for float16/bfloat16 parameters).
    Built by :func:`init`, advanced by :func:`absorb_sample` or :func:`absorb_quick` and then
    :func:`apply_update`.

    Attributes:
        t: batches absorbed so far (ALICE.md's t; 0 after init).
        mu: the centre (the reported parameters).
        nu: the look-ahead evaluation point, nu = mu + omega delta after an update (R7).
        G: gradient average, EMA_beta1 of g0 + w1 s(nu) + w2 nu.
        V: squared raw-gradient average, EMA_beta2 of g0^2.
        H: curvature average, EMA_beta3 of |h_hat| + w2 (h_hat^2 + w2^2 for 'rms'), R3.
        R: glass density average, EMA_beta3 of rho_hat, R3.
        skipped: batches skipped for non-finite gradients (nonfinite='skip').

    Example:
        One array per parameter, float32 state for a float16 parameter:

        >>> import numpy as np
        >>> s = init([np.zeros(3), np.zeros((2, 2), dtype=np.float16)])
        >>> s.t, s.skipped, [x.shape for x in s.H], s.R[1].dtype
        (0, 0, [(3,), (2, 2)], dtype('float32'))
    """

    t: int
    mu: tuple
    nu: tuple
    G: tuple
    V: tuple
    H: tuple
    R: tuple
    skipped: int = 0


class Schedule(NamedTuple):
    """What batch t does (ALICE.md steps 1-2, R8), as computed by :func:`schedule`.

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


def schedule(t: int, config: AliceConfig) -> Schedule:
    """The schedule of batch t (ALICE.md steps 1-2; R8 for the sample/quick pattern).

    beta_kt = min(beta_k, (t-1)/t) for k = 1, 2, 3 with beta3 = 1 - (q+1)(1 - beta2); warm-up
    iff t <= 1/(1 - beta1) (exact for the decimal beta1, see
    :func:`alice_ref.maths.schedule.warmup_length`); sample step iff warm-up or t mod (q+1) = 0; state
    update iff t > 1/(1 - beta1).

    Args:
        t: the batch number, an integer >= 1 (``state.t + 1`` for the next batch).
        config: the hyperparameters (beta1, beta2 and quick_steps q are used).

    Returns:
        A Schedule namedtuple for batch t.

    Raises:
        ValueError: t is not an integer >= 1.

    Example:
        With beta1 = 0.75 warm-up is batches 1-4; after it every (q+1)-th batch samples:

        >>> c = AliceConfig(betas=(0.75, 0.999), quick_steps=3)  # warm-up: t <= 4
        >>> [(t, schedule(t, c).sample, schedule(t, c).update) for t in (4, 5, 8)]
        [(4, True, False), (5, False, True), (8, True, True)]
        >>> schedule(5, c).beta1, schedule(5, c).beta3  # min(0.75, 4/5), min(0.996, 4/5)
        (0.75, 0.8)
    """
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 1:
        raise ValueError(f"t must be an integer >= 1, got {t!r}")
    return Schedule(int(t), is_sample_step(t, config.beta1, config.quick_steps),
                    t > config.warmup, ema_beta(config.beta1, t), ema_beta(config.beta2, t),
                    ema_beta(config.beta3, t))


def _state_dtype(xp, x):
    """float16/bfloat16 parameters keep float32 state; other floating dtypes keep their own.

    Compared by name: ``dtype in (xp.float16, None)`` would be wrong because NumPy's
    ``np.dtype(None)`` is float64 (so float64 == None is True).
    """
    if str(x.dtype).rsplit(".", 1)[-1] in ("float16", "bfloat16"):
        return xp.float32
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"parameters must have a real floating dtype, got {x.dtype}")
    return x.dtype


def init(params, config: AliceConfig | None = None) -> AliceState:
    """Initial Alice state (ALICE.md, "State"): mu = nu = the parameters, every average 0.

    mu = nu = params, copied into the state dtype (the parameter's floating dtype; float32 for
    float16/bfloat16); G = V = H = R = 0; t = skipped = 0.

    Args:
        params: a sequence of array-API arrays with real floating dtypes (any namespace).
        config: accepted for symmetry with the other functions; the initial state does not
            depend on it.

    Returns:
        The initial AliceState.

    Raises:
        TypeError: an entry that is not an array-API array, or whose dtype is not real
            floating (an integer array, say).

    Example:
        State dtypes, a copied centre, and an integer parameter refused:

        >>> import numpy as np
        >>> p = [np.ones(3, dtype=np.float16), np.zeros((2, 2))]
        >>> s = init(p)
        >>> s.t, s.mu[0].dtype, s.mu[1].dtype  # float16 parameters keep float32 state
        (0, dtype('float32'), dtype('float64'))
        >>> s.nu[0].tolist(), s.G[1].tolist(), s.mu[1] is p[1]
        ([1.0, 1.0, 1.0], [[0.0, 0.0], [0.0, 0.0]], False)
        >>> init([np.arange(3, dtype=np.int32)])
        Traceback (most recent call last):
        ...
        TypeError: parameters must have a real floating dtype, got int32
    """
    params = list(params)
    for i, p in enumerate(params):
        if not is_array_api_obj(p):
            raise TypeError(f"params[{i}] must be an array-API array, got {type(p).__name__}")
    mu = []
    for p in params:
        xp = array_namespace(p)
        mu.append(xp.astype(p, _state_dtype(xp, p), copy=True))
    # Separate arrays for every field, so in-place fast paths (alice_ref.engines.cpu) may update them.
    fresh = lambda: tuple(array_namespace(m).zeros_like(m) for m in mu)  # noqa: E731
    nu = tuple(array_namespace(m).asarray(m, copy=True) for m in mu)
    return AliceState(0, tuple(mu), nu, fresh(), fresh(), fresh(), fresh(), 0)


def params_of(state: AliceState, like=None) -> list:
    """The parameters to report: the centre mu (ALICE.md step 6), optionally cast.

    Args:
        state: an AliceState.
        like: optional sequence of arrays (the model's parameters), one per parameter: mu[i] is
            cast to like[i].dtype.

    Returns:
        A list of arrays: the state's own mu arrays when ``like`` is None, else cast copies.

    Raises:
        ValueError: ``like`` has not one array per parameter.

    Example:
        The centre in the state dtype, or in the model's:

        >>> import numpy as np
        >>> p = [np.ones(2, dtype=np.float16)]
        >>> s = init(p)
        >>> params_of(s)[0].dtype, params_of(s, like=p)[0].dtype
        (dtype('float32'), dtype('float16'))
    """
    if like is None:
        return list(state.mu)
    like = list(like)
    if len(like) != len(state.mu):
        raise ValueError(f"like has {len(like)} arrays but the state has {len(state.mu)} "
                         "parameters")
    return [array_namespace(m).astype(m, p.dtype) for m, p in zip(state.mu, like)]


def probe_points(state: AliceState, z, sigma: float, like=None):
    """Evaluation points of a batch (ALICE.md step 3): nu + sigma z, nu - sigma z and nu.

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
    if like is not None:
        cast = lambda xs: xs if xs is None else [  # noqa: E731
            array_namespace(x).astype(x, p.dtype) for x, p in zip(xs, like)]
        plus, minus, nu = cast(plus), cast(minus), cast(nu)
    return plus, minus, nu


# -- per-element kernels (traceable; betas may be arrays) ---------------------------------------

def ema(S, x, beta):
    """Exponential moving average EMA_beta(S, x) = x + beta (S - x) (ALICE.md, "One batch").

    Equals beta S + (1 - beta) x. With the bias-corrected weight beta_t = min(beta, (t-1)/t)
    the first sample (t = 1, weight 0) replaces S, and while (t-1)/t < beta the result is the
    running mean of the samples. Elementwise on numbers or arrays (beta may be a traced array);
    nothing is checked.

    Args:
        S: the current average.
        x: the new sample.
        beta: the weight of the old average, in [0, 1).

    Returns:
        The new average (S and x broadcast).

    Example:
        Half way, no memory (the weight of batch 1), and three quarters:

        >>> ema(1.0, 3.0, 0.5), ema(1.0, 3.0, 0.0), ema(1.0, 3.0, 0.75)
        (2.0, 3.0, 1.5)
    """
    return x + beta * (S - x)


def absorb_gradient(G, V, g_zero, nu, beta1, beta2, w1: float = 0.0, w2: float = 0.0):
    """Absorb g0 into the gradient averages of one parameter (ALICE.md steps 3-4).

    G' = EMA_beta1(G, g0 + w1 s(nu) + w2 nu) with s(nu) = -1 where nu < 0, else +1 (the L1 and
    L2 regularisation gradients at nu); V' = EMA_beta2(V, g0^2) uses the raw gradient.
    Elementwise and traceable (beta1, beta2 may be arrays); nothing is checked.

    Args:
        G: the gradient average.
        V: the squared-gradient average.
        g_zero: the gradient g0 = g(nu) of this batch.
        nu: the evaluation point (for the regularisation terms).
        beta1: the batch's gradient weight (Schedule.beta1).
        beta2: the batch's squared-gradient weight (Schedule.beta2).
        w1: L1 regularisation weight.
        w2: L2 regularisation weight.

    Returns:
        The pair (G', V').

    Example:
        Batch 1 (weights 0) with L1 and L2 regularisation:

        >>> import numpy as np
        >>> g0, nu, z = np.array([1.0, -2.0, 0.0]), np.array([-1.0, 0.0, 2.0]), np.zeros(3)
        >>> G, V = absorb_gradient(z, z, g0, nu, 0.0, 0.0, w1=0.5, w2=0.25)
        >>> G.tolist(), V.tolist()  # G = g0 + 0.5 s(nu) + 0.25 nu; V = g0^2 (no regulariser)
        ([0.25, -1.5, 1.0], [1.0, 4.0, 0.0])
    """
    xp = array_namespace(G)
    g = g_zero
    if w1 != 0.0:
        one = xp.ones_like(nu)
        g = g + w1 * xp.where(nu < 0, -one, one)
    if w2 != 0.0:
        g = g + w2 * nu
    return ema(G, g, beta1), ema(V, g_zero * g_zero, beta2)


def absorb_curvature(H, R, g_plus, g_minus, g_zero, sigma: float, beta3, hess_comp: str = "abs",
                     w2: float = 0.0):
    """Absorb a sample step's curvature and glass samples of one parameter (ALICE.md step 3, R3).

    h_hat = (g+ - g-)/(2 sigma); H' = EMA_beta3(H, |h_hat| + w2) for 'abs' and 'zero' (which
    still tracks H), or EMA_beta3(H, h_hat^2 + w2^2) for 'rms'; R' = EMA_beta3(R, rho_hat) with
    rho_hat = 2 (gbar - g0)^2 / sigma, gbar = (g+ + g-)/2 (the three-point kernel of R3,
    unbiased for rho under R1).

    Args:
        H: the curvature average.
        R: the glass density average.
        g_plus: g(nu + sigma z).
        g_minus: g(nu - sigma z).
        g_zero: g(nu).
        sigma: the perturbation length (> 0).
        beta3: the batch's curvature weight (Schedule.beta3).
        hess_comp: 'zero', 'abs' or 'rms' ('zero' tracks H as 'abs' does).
        w2: L2 regularisation weight (its curvature is added to the sample).

    Returns:
        The pair (H', R').

    Raises:
        ValueError: an unknown hess_comp, sigma <= 0, or gradients of different shapes.
        TypeError: sigma is not a real number, or a gradient is not a floating array.

    Example:
        Batch 1 (weight 0), so the averages are the samples:

        >>> import numpy as np
        >>> gp, gm, g0 = np.array([3.0, 1.0]), np.array([1.0, 1.0]), np.array([1.0, 0.0])
        >>> z = np.zeros(2)
        >>> H, R = absorb_curvature(z, z, gp, gm, g0, 0.5, 0.0)
        >>> H.tolist(), R.tolist()  # |gp - gm| / (2 sigma); 2 ((gp + gm)/2 - g0)^2 / sigma
        ([2.0, 0.0], [4.0, 4.0])
        >>> absorb_curvature(z, z, gp, gm, g0, 0.5, 0.0, "rms", w2=0.5)[0].tolist()
        [4.25, 0.25]
    """
    if hess_comp not in HESS_COMPS:
        raise ValueError(f"hess_comp must be one of {HESS_COMPS}, got {hess_comp!r}")
    if hess_comp == "rms":
        h = curvature_magnitude(g_plus, g_minus, sigma, "rms") + w2 * w2
    else:
        h = curvature_magnitude(g_plus, g_minus, sigma, "abs") + w2
    return ema(H, h, beta3), ema(R, glass_density(g_plus, g_minus, g_zero, sigma), beta3)


def alice_update(mu, G, V, H, R, config: AliceConfig, lr: float | None = None):
    """State update of one parameter (ALICE.md step 5; R5, R6, R7): returns (mu', nu').

    h = 0 ('zero'), H ('abs') or sqrt(H) ('rms'); rho = R if grad_glass else 0;
    alpha = (3/(4 pi)) rho / (|G| + eps), h_opt = h + alpha + sqrt(alpha (alpha + 2h)) + eps and
    d = |G| / h_opt (R5); d is clipped to [tau_lo f, tau_hi f] with f = 1, |G| or
    |G| / (sqrt(V) + eps) for 'fixed', 'sgdm', 'adam' (R6; a NaN d becomes the upper bound);
    delta = -d where G > 0, else +d; mu' = mu + phi delta, nu' = mu + omega delta (R7: phi =
    1 - beta1 makes the look-ahead exact for omega = 1). The inputs are trusted (AliceConfig
    and the driver check them) so that the function stays traceable: it raises nothing itself.

    Args:
        mu: the centre of one parameter.
        G: its gradient average.
        V: its squared-gradient average.
        H: its curvature average.
        R: its glass density average.
        config: the hyperparameters (hess_comp, grad_glass, limit_method, eps, phi, omega and
            the bounds).
        lr: the current learning rate for :meth:`AliceConfig.bounds` (None: config.lr).

    Returns:
        The pair (mu', nu').

    Example:
        Without glass the step is Newton's |G|/H, clipped to the R6 bounds:

        >>> import numpy as np
        >>> c = AliceConfig(lr=0.5, betas=(0.5, 0.999), limit_method="fixed", grad_glass=False)
        >>> mu, V, R = np.zeros(2), np.zeros(2), np.zeros(2)
        >>> G, H = np.array([2.0, -8.0]), np.array([4.0, 1.0])
        >>> mu1, nu1 = alice_update(mu, G, V, H, R, c)  # d = |G|/H = (0.5, 8), clipped at 2 lr
        >>> mu1.round(6).tolist(), nu1.round(6).tolist()  # phi = 1 - beta1 = 0.5, omega = 1
        ([-0.25, 0.5], [-0.5, 1.0])
    """
    delta = alice_step(G, V, H, R, config, lr)
    return mu + config.phi * delta, mu + config.omega * delta


def alice_step(G, V, H, R, config: AliceConfig, lr: float | None = None):
    """The step delta of :func:`alice_update` (R5, R6): -sign(G) d, d = |G| / h_opt clipped.

    alice_update returns (mu + phi delta, mu + omega delta) with this delta (R7); compilers
    that would otherwise recompute the step for each of the two outputs (XLA on CPU) can
    materialise it once.

    Args:
        G: gradient average of one parameter.
        V: squared-gradient average.
        H: curvature average.
        R: glass density average.
        config: the hyperparameters.
        lr: the current learning rate for the bounds (None: config.lr).

    Returns:
        delta, an array like G.

    Example:
        Newton's |G|/H (up to eps) with the sign of -G, clipped at lr_max = 2 lr = 1:

        >>> import numpy as np
        >>> c = AliceConfig(lr=0.5, limit_method="fixed", grad_glass=False)
        >>> z = np.zeros(2)
        >>> alice_step(np.array([2.0, -8.0]), z, np.array([4.0, 1.0]), z, c).round(6).tolist()
        [-0.5, 1.0]
    """
    xp = array_namespace(G)
    zero = xp.zeros_like(G)
    h = zero if config.hess_comp == "zero" else (xp.sqrt(H) if config.hess_comp == "rms" else H)
    rho = R if config.grad_glass else zero
    lo, hi = config.bounds(lr)
    return _bounded_step(xp, G, h, rho, V, lo, hi, config.limit_method, config.eps)


# -- whole-state functions (Python schedule) -----------------------------------------------------

def _as_state(xs, ref, name):
    xs = list(xs)
    if len(xs) != len(ref):
        raise ValueError(f"{name} has {len(xs)} arrays but the state has {len(ref)} parameters")
    out = []
    for i, (x, r) in enumerate(zip(xs, ref)):
        if not is_array_api_obj(x):
            raise TypeError(f"{name}[{i}] must be an array, got {type(x).__name__}")
        if tuple(x.shape) != tuple(r.shape):
            raise ValueError(f"{name}[{i}] has shape {tuple(x.shape)}, parameter {i} has "
                             f"shape {tuple(r.shape)}")
        xp = array_namespace(r)
        out.append(x if x.dtype == r.dtype else xp.astype(x, r.dtype))
    return out


def absorb_sample(state: AliceState, sched: Schedule, g_plus, g_minus, g_zero, config: AliceConfig,
                  lr: float | None = None) -> AliceState:
    """Absorb a sample step's three gradients (ALICE.md step 3): H, R, G, V and t change.

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

    Returns:
        The new AliceState.

    Raises:
        ValueError: a sequence whose length is not the number of parameters, an array whose
            shape is not its parameter's, or sigma <= 0.
        TypeError: an entry that is not an array.

    Example:
        Batch 1 (weights 0) stores the samples:

        >>> import numpy as np
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
    H, R = zip(*[absorb_curvature(H, R, a, b, c, sigma, sched.beta3, config.hess_comp, config.w2)
                 for H, R, a, b, c in zip(state.H, state.R, gp, gm, g0)]) if gp else ((), ())
    state = state._replace(H=tuple(H), R=tuple(R))
    return _absorb_g0(state, sched, g0, config)


def absorb_quick(state: AliceState, sched: Schedule, g_zero, config: AliceConfig) -> AliceState:
    """Absorb a quick step's gradient g0 = g(nu) (ALICE.md step 4): G, V and t change.

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
    """The state update (ALICE.md step 5; R5, R6, R7) on every parameter after warm-up.

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


# -- checkpoints and reporting -------------------------------------------------------------------

_FIELDS = ("mu", "nu", "G", "V", "H", "R")


def state_to_dict(state: AliceState) -> dict:
    """Flatten a state into a plain dict of scalars and arrays (for checkpoints).

    The keys are 't', 'skipped', 'n_params' and 'f/i' for each field f in mu, nu, G, V, H, R
    and parameter i; the arrays are the state's own (not copied). The inverse is
    :func:`state_from_dict`. Raises nothing itself.

    Args:
        state: an AliceState.

    Returns:
        A dict with 3 + 6 n_params entries.

    Example:
        One parameter gives nine entries:

        >>> import numpy as np
        >>> sorted(state_to_dict(init([np.zeros(2)])))
        ['G/0', 'H/0', 'R/0', 'V/0', 'mu/0', 'n_params', 'nu/0', 'skipped', 't']
    """
    d = {"t": int(state.t), "skipped": int(state.skipped), "n_params": len(state.mu)}
    for f in _FIELDS:
        for i, x in enumerate(getattr(state, f)):
            d[f"{f}/{i}"] = x
    return d


def state_from_dict(d: dict, like=None) -> AliceState:
    """Rebuild an AliceState from :func:`state_to_dict`'s dict (checkpoint restore).

    Arrays go to the namespace and device of ``like`` when given (their dtypes are kept), else
    are taken as they are; a missing 'skipped' reads as 0.

    Args:
        d: the dict (any mapping with those keys).
        like: optional sequence of arrays, one per parameter, giving the namespace, device and
            expected shapes.

    Returns:
        The AliceState.

    Raises:
        ValueError: a missing key, a ``like`` of the wrong length, or an array whose shape is
            not that of its ``like`` entry.

    Example:
        A round trip, and a dict that lacks a key:

        >>> import numpy as np
        >>> s = state_from_dict(state_to_dict(init([np.array([1.0, 2.0])])), like=[np.zeros(2)])
        >>> s.t, s.mu[0].tolist()
        (0, [1.0, 2.0])
        >>> state_from_dict({"n_params": 1})
        Traceback (most recent call last):
        ...
        ValueError: checkpoint dict lacks key 'mu/0'
    """
    try:
        n = int(d["n_params"])
        fields = {f: [d[f"{f}/{i}"] for i in range(n)] for f in _FIELDS}
        t, skipped = int(d["t"]), int(d.get("skipped", 0))
    except KeyError as e:
        raise ValueError(f"checkpoint dict lacks key {e.args[0]!r}") from None
    if like is not None:
        like = list(like)
        if len(like) != n:
            raise ValueError(f"checkpoint has {n} parameters but like has {len(like)}")
        conv = {}
        for f, xs in fields.items():
            conv[f] = []
            for x, p in zip(xs, like):
                xp = array_namespace(p)
                a = xp.asarray(x, device=device(p))
                if tuple(a.shape) != tuple(p.shape):
                    raise ValueError(f"checkpoint {f} has shape {tuple(a.shape)}, parameter "
                                     f"has {tuple(p.shape)}")
                conv[f].append(a)
        fields = conv
    return AliceState(t, *(tuple(fields[f]) for f in _FIELDS), skipped)


def attributes(state: AliceState) -> list[dict]:
    """The official optimiser's "attributes": per parameter, the means of R and of H.

    glass_density = mean(R), the averaged glass density estimate (rho of R1, estimated as in
    R3); curvature = mean(H), the averaged curvature magnitude. An empty parameter reports 0.0.
    Raises nothing itself.

    Args:
        state: an AliceState.

    Returns:
        A list with one dict {'glass_density': float, 'curvature': float} per parameter.

    Example:
        Means of H and R per parameter; an empty parameter reports zeros:

        >>> import numpy as np
        >>> H, R = (np.array([1.0, 3.0]), np.zeros(0)), (np.array([2.0, 4.0]), np.zeros(0))
        >>> attributes(init([np.zeros(2), np.zeros(0)])._replace(H=H, R=R))
        [{'glass_density': 3.0, 'curvature': 2.0}, {'glass_density': 0.0, 'curvature': 0.0}]
    """
    out = []
    for H, R in zip(state.H, state.R):
        xp = array_namespace(H)
        nonempty = math.prod(H.shape) > 0
        out.append({"glass_density": float(xp.mean(R)) if nonempty else 0.0,
                    "curvature": float(xp.mean(H)) if nonempty else 0.0})
    return out
