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

from ._xp import array_namespace, device, is_array_api_obj
from .kernels import curvature_magnitude, glass_density
from .schedule import curvature_beta, ema_beta, is_sample_step, warmup_length
from .steps import LIMIT_METHODS, _bounded_step

__all__ = ["AliceConfig", "AliceState", "Schedule", "HESS_COMPS", "NONFINITE_POLICIES",
           "schedule", "init", "probe_points", "ema", "absorb_gradient", "absorb_curvature",
           "alice_update", "absorb_sample", "absorb_quick", "apply_update", "params_of",
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

    ``phi=None`` resolves to 1 - beta1 (R7's exact value for omega = 1) and ``lr_max=None`` to
    2 lr. Every check raises ValueError/TypeError naming the argument and its value.
    ``nonfinite`` ('raise' | 'skip') is the driver's policy for NaN/Inf gradients.

    >>> c = AliceConfig(lr=0.01, betas=(0.75, 0.999))
    >>> c.phi, c.lr_max, c.beta3, c.warmup
    (0.25, 0.02, 0.996, 4.0)
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

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
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
                      doc="Warm-up threshold 1/(1 - beta1) in float64.")

    def bounds(self, lr: float | None = None) -> tuple[float, float]:
        """(tau_lo, tau_hi) for the current learning rate ``lr`` (R6).

        With scale_bounds_with_lr the ratios lr_min/lr and lr_max/lr of the construction lr
        are kept, so a schedule that changes lr moves the bounds; otherwise (lr_min, lr_max).
        """
        if lr is None or not self.scale_bounds_with_lr:
            return self.lr_min, self.lr_max
        return self.lr_min / self.lr * lr, self.lr_max / self.lr * lr

    def replace(self, **changes) -> AliceConfig:
        """A new validated config with some fields changed (phi/lr_max stay as resolved)."""
        return dataclasses.replace(self, **changes)


class AliceState(NamedTuple):
    """Alice's state: batch counter t, skipped-batch count and per-parameter arrays.

    mu: centre (the reported parameters); nu: look-ahead evaluation point; G: gradient average
    (with regularisation); V: squared raw-gradient average; H: curvature average; R: glass
    density average. Each is a tuple with one array per parameter, in the state dtype.
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
    """What batch t does (ALICE.md steps 1-2): the averages' weights, sample/quick, update."""

    t: int
    sample: bool
    update: bool
    beta1: float
    beta2: float
    beta3: float


def schedule(t: int, config: AliceConfig) -> Schedule:
    """Schedule of batch t >= 1: beta_kt = min(beta_k, (t-1)/t); warm-up iff t <= 1/(1-beta1)
    (float64); sample step iff warm-up or t mod (q+1) = 0 (R8); state update after warm-up.

    >>> s = schedule(5, AliceConfig(betas=(0.75, 0.999), quick_steps=3))
    >>> s.sample, s.update, s.beta1
    (False, True, 0.75)
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
    """Initial state: mu = nu = the parameters (copied, state dtype), all averages 0, t = 0."""
    params = list(params)
    for i, p in enumerate(params):
        if not is_array_api_obj(p):
            raise TypeError(f"params[{i}] must be an array-API array, got {type(p).__name__}")
    mu = []
    for p in params:
        xp = array_namespace(p)
        mu.append(xp.astype(p, _state_dtype(xp, p), copy=True))
    zeros = tuple(array_namespace(m).zeros_like(m) for m in mu)
    return AliceState(0, tuple(mu), tuple(mu), zeros, zeros, zeros, zeros, 0)


def params_of(state: AliceState, like=None) -> list:
    """The parameters to report (mu), cast to the dtypes of the arrays in ``like`` if given."""
    if like is None:
        return list(state.mu)
    return [array_namespace(m).astype(m, p.dtype) for m, p in zip(state.mu, like)]


def probe_points(state: AliceState, z, sigma: float, like=None):
    """Evaluation points (nu + sigma z, nu - sigma z, nu) of a sample step, per parameter.

    Computed in the state dtype, then cast to the dtypes of ``like`` (the model's parameters).
    With ``z=None`` (a quick step) only nu is returned in third place; the others are None.
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
    """Exponential moving average S <- x + beta (S - x) (ALICE.md's EMA_beta)."""
    return x + beta * (S - x)


def absorb_gradient(G, V, g_zero, nu, beta1, beta2, w1: float = 0.0, w2: float = 0.0):
    """G <- EMA_beta1(G, g0 + w1 s(nu) + w2 nu), s(nu) = -1 if nu < 0 else +1;
    V <- EMA_beta2(V, g0^2) (ALICE.md steps 3-4)."""
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
    """Sample-step curvature update (R3): H <- EMA_beta3(H, |h_hat| + w2), or
    EMA_beta3(H, h_hat^2 + w2^2) for 'rms', h_hat = (g+ - g-)/(2 sigma); R <- EMA_beta3(R, rho_hat)
    with rho_hat = glass_density(g+, g-, g0, sigma). 'zero' tracks H like 'abs'."""
    if hess_comp == "rms":
        h = curvature_magnitude(g_plus, g_minus, sigma, "rms") + w2 * w2
    else:
        h = curvature_magnitude(g_plus, g_minus, sigma, "abs") + w2
    return ema(H, h, beta3), ema(R, glass_density(g_plus, g_minus, g_zero, sigma), beta3)


def alice_update(mu, G, V, H, R, config: AliceConfig, lr: float | None = None):
    """State update of one parameter (ALICE.md step 5): returns (mu', nu').

    h = 0 ('zero'), H ('abs') or sqrt(H) ('rms'); rho = R if grad_glass else 0;
    delta = bounded_step(G, h, rho, V, tau_lo, tau_hi, limit_method, eps) (R5, R6);
    nu' = mu + omega delta; mu' = mu + phi delta (R7).
    """
    xp = array_namespace(mu)
    zero = xp.zeros_like(mu)
    h = zero if config.hess_comp == "zero" else (xp.sqrt(H) if config.hess_comp == "rms" else H)
    rho = R if config.grad_glass else zero
    lo, hi = config.bounds(lr)
    delta = _bounded_step(xp, G, h, rho, V, lo, hi, config.limit_method, config.eps)
    return mu + config.phi * delta, mu + config.omega * delta


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
    """Absorb a sample step's g+, g-, g0 (sequences, one array per parameter; ALICE.md step 3)."""
    sigma = config.lr if lr is None else lr
    gp = _as_state(g_plus, state.mu, "g_plus")
    gm = _as_state(g_minus, state.mu, "g_minus")
    g0 = _as_state(g_zero, state.mu, "g_zero")
    H, R = zip(*[absorb_curvature(H, R, a, b, c, sigma, sched.beta3, config.hess_comp, config.w2)
                 for H, R, a, b, c in zip(state.H, state.R, gp, gm, g0)]) if gp else ((), ())
    state = state._replace(H=tuple(H), R=tuple(R))
    return _absorb_g0(state, sched, g0, config)


def absorb_quick(state: AliceState, sched: Schedule, g_zero, config: AliceConfig) -> AliceState:
    """Absorb a quick step's g0 (ALICE.md step 4): G and V only."""
    return _absorb_g0(state, sched, _as_state(g_zero, state.mu, "g_zero"), config)


def _absorb_g0(state, sched, g0, config):
    GV = [absorb_gradient(G, V, g, n, sched.beta1, sched.beta2, config.w1, config.w2)
          for G, V, g, n in zip(state.G, state.V, g0, state.nu)]
    G, V = (tuple(x) for x in zip(*GV)) if GV else ((), ())
    return state._replace(t=sched.t, G=G, V=V)


def apply_update(state: AliceState, sched: Schedule, config: AliceConfig,
                 lr: float | None = None) -> AliceState:
    """ALICE.md step 5 on every parameter when ``sched.update`` (after warm-up), else unchanged."""
    if not sched.update:
        return state
    MN = [alice_update(m, G, V, H, R, config, lr)
          for m, G, V, H, R in zip(state.mu, state.G, state.V, state.H, state.R)]
    mu, nu = (tuple(x) for x in zip(*MN)) if MN else ((), ())
    return state._replace(mu=mu, nu=nu)


# -- checkpoints and reporting -------------------------------------------------------------------

_FIELDS = ("mu", "nu", "G", "V", "H", "R")


def state_to_dict(state: AliceState) -> dict:
    """A plain dict of scalars and arrays: {'t', 'skipped', 'n_params', 'mu/0', ..., 'R/k'}."""
    d = {"t": int(state.t), "skipped": int(state.skipped), "n_params": len(state.mu)}
    for f in _FIELDS:
        for i, x in enumerate(getattr(state, f)):
            d[f"{f}/{i}"] = x
    return d


def state_from_dict(d: dict, like=None) -> AliceState:
    """Inverse of :func:`state_to_dict`. Arrays go to the namespace and device of ``like`` (a
    sequence of arrays, one per parameter) when given, else are taken as they are."""
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
    """Per parameter array, the mean glass density (mean of R) and mean curvature (mean of H),
    the official optimiser's "attributes"."""
    out = []
    for H, R in zip(state.H, state.R):
        xp = array_namespace(H)
        nonempty = math.prod(H.shape) > 0
        out.append({"glass_density": float(xp.mean(R)) if nonempty else 0.0,
                    "curvature": float(xp.mean(H)) if nonempty else 0.0})
    return out
