"""Curvature diagnostics of a model: glass density, curvature, power law (R1), loss prediction (R4).

The diagnostics read a model through one callable, ``value_and_grad(params) -> (loss, grads)``,
over a list of arrays (any array-API namespace: NumPy, torch, JAX, CuPy, strict), exactly the
convention of :func:`alice_ref.driver.run_batch`. Parameters are gathered into named *groups*
(a layer, a weight matrix, a pytree leaf): ``groups`` maps a group name to the positions of its
arrays in ``params``. Random signs are drawn here, at the edge, from a seeded NumPy Generator
(:func:`alice_ref.driver.draw_rademacher`) and converted to each array's namespace; every
formula is one of the core's (``glass_density``, ``hessian_diag``, ``curvature_magnitude``,
``power_law_exponent``, ``loss_deviation_bound``). Per-element estimator values are computed in
the arrays' namespace and then summarised in NumPy float64; the reports are plain dataclasses
whose ``to_dict()`` is JSON-serialisable.

Three diagnostics (ideas from Duersch et al., "Curvature in the Looking-Glass", arXiv 2411.16914;
result numbers are this library's):

* :func:`curvature_probe` -- per group, with ``n_probes`` antithetic Rademacher pairs at scale
  sigma: mean glass density (R3, ``glass_density``), mean signed Hessian diagonal (R2,
  ``hessian_diag``), mean 'abs' and 'rms' curvature magnitudes (R3, ``curvature_magnitude``) and
  the glass-to-Hessian ratio in step units (R5): alpha / h with alpha = ALPHA_COEFF rho / |g|.
* :func:`power_law_sweep` -- per group, y(t) = E_z mean_i (g_i(nu + t z) - g_i(nu))^2 over a
  geometric range of perturbation lengths t, and the fitted exponent p of y ~ t^p (R1): p = 1
  where glass dominates, p = 2 where the Hessian dominates (4 for third-order terms alone).
* :func:`loss_prediction` -- for random steps delta of several sizes, the actual change
  dL = L(nu + delta) - L(nu) against the quadratic model Q = g.delta + sum_i h_i delta_i^2 / 2
  (h the measured diagonal) and against R4's glass bound B = loss_deviation_bound(delta, rho).

Standard errors (the same rule everywhere): every summary is a function of per-probe,
per-element values. Its standard error combines a delete-one-probe jackknife (``se_probes``:
Monte Carlo error of the average over random signs) and a delete-one-block jackknife over
contiguous blocks of the group's elements (``se_elements``: spread between the group's elements,
treating them as a sample of the layer's population; contiguous blocks keep strongly correlated
neighbours, such as one unit's row of a weight matrix, together), ``se = sqrt(se_probes^2 +
se_elements^2)``. For a mean this is the conservative two-way (probe x element) error: the
interaction term is counted twice. On a separable landscape at a fixed point the probes alone
carry no information about the landscape's randomness (a coordinate's estimate does not depend
on its sign), which is why the element term is needed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, NamedTuple

import numpy as np

from alice_ref._xp import array_namespace, from_numpy, is_array_api_obj, to_numpy
from alice_ref.driver import draw_rademacher
from alice_ref.maths.bounds import GLASS_COEFF, loss_deviation_bound
from alice_ref.maths.estimators import curvature_magnitude, glass_density
from alice_ref.maths.glass import power_law_exponent
from alice_ref.maths.probes import hessian_diag
from alice_ref.maths.step import ALPHA_COEFF

__all__ = [
    "DIRECTIONS",
    "NOMINAL_COVERAGE",
    "POOLS",
    "CurvatureReport",
    "DiagnosticsReport",
    "Estimate",
    "GroupCurvature",
    "GroupPowerLaw",
    "LossPredictionReport",
    "PowerLawReport",
    "Problem",
    "StepSizePrediction",
    "curvature_probe",
    "diagnose",
    "from_flat",
    "from_jax",
    "from_torch",
    "loss_prediction",
    "power_law_sweep",
]

# Coverage of |X| <= B when X is Gaussian (Brownian glass, R4) and B >= E|X| = sqrt(2/pi) sd(X):
# P(|X| <= E|X|) = 2 Phi(sqrt(2/pi)) - 1 = erf(sqrt(2/pi) / sqrt(2)) = erf(1/sqrt(pi)) ~= 0.5751.
# R4's bound sums per-coordinate terms, B = c sum_i sqrt(rho_i)|delta_i|^{3/2} >= c sqrt(sum_i
# rho_i |delta_i|^3) = E|X|, so this is a lower bound on the coverage under R4's model (equality
# for a single coordinate); with many coordinates B exceeds E|X| by ~sqrt(n) and coverage -> 1.
NOMINAL_COVERAGE = math.erf(1.0 / math.sqrt(math.pi))

ValueAndGrad = Callable[[list], tuple[Any, Sequence]]


# -- problem description -------------------------------------------------------------------------

class Problem(NamedTuple):
    """What the diagnostics need from a model: its gradient, a point and named groups.

    Build one directly or with :func:`from_flat`, :func:`from_torch` or :func:`from_jax`.

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


# -- two-way jackknife ---------------------------------------------------------------------------

def _block_edges(n: int, max_blocks: int) -> np.ndarray:
    b = max(1, min(int(n), int(max_blocks)))
    return np.linspace(0, n, b + 1).round().astype(int)


class _Sums:
    """Per-probe, per-block sums of named per-element quantities of one group (K x B each)."""

    def __init__(self, n: int, max_blocks: int):
        self.n = int(n)
        self.edges = _block_edges(n, max_blocks)
        self.sizes = np.diff(self.edges).astype(np.float64)
        self.rows: dict[str, list] = {}

    def add(self, name: str, values: np.ndarray):
        """Record one probe's per-element values of quantity ``name``."""
        c = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
        self.rows.setdefault(name, []).append(c[self.edges[1:]] - c[self.edges[:-1]])

    def estimate(self, stat: Callable[[dict], float]) -> Estimate:
        """stat(means) on all data, with delete-one-probe and delete-one-block jackknife SEs.

        ``means`` maps each quantity to its mean over the probes and elements kept.
        """
        M = {k: np.asarray(v) for k, v in self.rows.items()}
        K = len(next(iter(M.values())))
        tot = {k: m.sum() for k, m in M.items()}
        value = _safe(stat, {k: t / (K * self.n) for k, t in tot.items()})
        se_p = _jack([_safe(stat, {k: (tot[k] - M[k][j].sum()) / ((K - 1) * self.n) for k in M})
                      for j in range(K)]) if K > 1 else math.nan
        B = len(self.sizes)
        se_e = _jack([_safe(stat, {k: (tot[k] - M[k][:, b].sum()) / (K * (self.n - self.sizes[b]))
                                   for k in M}) for b in range(B)]) if B > 1 else 0.0
        return Estimate.of(value, se_p, se_e)


def _safe(stat, means):
    try:
        with np.errstate(all="ignore"):  # 0/0 (e.g. no gradient) becomes nan, reported as None
            v = float(stat(means))
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _jack(values) -> float:
    """Jackknife standard error from leave-one-out values (nan if any is nan)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or not np.all(np.isfinite(v)):
        return math.nan
    return float(math.sqrt((v.size - 1) / v.size * np.sum((v - v.mean()) ** 2)))


@dataclasses.dataclass
class Estimate:
    """A summary value with its standard errors (see the module docstring for the rule).

    se = sqrt(se_probes^2 + se_elements^2): the two-way (probe x element) jackknife error.

    Attributes:
        value: the summary (NaN when undefined, e.g. 0/0).
        se: the combined standard error.
        se_probes: delete-one-probe jackknife error (Monte Carlo error of the random signs).
        se_elements: delete-one-block jackknife error over the group's elements.

    Example:
        Built with :meth:`of`, which combines the two parts:

        >>> Estimate.of(1.0, 0.3, 0.4)
        Estimate(value=1.0, se=0.5, se_probes=0.3, se_elements=0.4)
    """

    value: float
    se: float
    se_probes: float
    se_elements: float

    @classmethod
    def of(cls, value, se_probes, se_elements):
        """An Estimate with se = sqrt(se_probes^2 + se_elements^2) over the finite parts.

        Args:
            value: the summary value.
            se_probes: delete-one-probe jackknife error (NaN if unavailable: it is left out).
            se_elements: delete-one-block jackknife error (NaN if unavailable: left out).

        Returns:
            The Estimate; se is NaN when value is not finite or neither part is finite.

        Example:
            A 3-4-5 triangle, a missing part left out, and an undefined value:

            >>> Estimate.of(2.0, 0.3, 0.4).se, Estimate.of(2.0, float("nan"), 0.4).se
            (0.5, 0.4)
            >>> Estimate.of(float("nan"), 0.3, 0.4).se
            nan
        """
        parts = [s for s in (se_probes, se_elements) if math.isfinite(s)]
        se = math.sqrt(sum(s * s for s in parts)) if parts and math.isfinite(value) else math.nan
        return cls(float(value), se, float(se_probes), float(se_elements))


# -- 1. curvature probe --------------------------------------------------------------------------

@dataclasses.dataclass
class GroupCurvature:
    """Per-group curvature summary (means over the group's elements), from :func:`curvature_probe`.

    Attributes:
        name: the group's name.
        size: its number of elements.
        glass_density: mean rho_hat (R3).
        hessian_mean: mean signed Hutchinson diagonal (R2).
        curvature_abs: mean 'abs' magnitude |h| (R3).
        curvature_rms: mean 'rms' magnitude h^2 (R3; includes the glass leak rho / (2 sigma)).
        grad_abs: mean |g(nu)|.
        alpha: ALPHA_COEFF rho / grad_abs (R5's glass curvature for this group's typical
            gradient).
        glass_to_hessian: alpha / curvature_abs: above 1 the glass term, not the Hessian, sets
            the size of Alice's step (R5).

    Example:
        On L = sum theta_i^2 the Hessian diagonal is exactly 2 and there is no glass, so every
        probe agrees (zero standard errors):

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> g = curvature_probe(problem, sigma=0.5, n_probes=4).groups[0]
        >>> g.name, g.size, g.glass_density.value, g.hessian_mean.value, g.curvature_rms.value
        ('a', 2, 0.0, 2.0, 4.0)
        >>> g.grad_abs, g.hessian_mean.se  # mean |2 theta| over (1, -2)
        (3.0, 0.0)
    """

    name: str
    size: int
    glass_density: Estimate
    hessian_mean: Estimate
    curvature_abs: Estimate
    curvature_rms: Estimate
    grad_abs: float
    alpha: Estimate
    glass_to_hessian: Estimate


@dataclasses.dataclass
class CurvatureReport:
    """Result of :func:`curvature_probe`: per-group summaries and per-element means.

    Attributes:
        sigma: the probe scale.
        n_probes: the number of antithetic pairs.
        evaluations: gradient evaluations used (1 + 2 n_probes).
        loss: the loss at the probed point.
        groups: one :class:`GroupCurvature` per group.
        hess_diag: per-element mean Hutchinson diagonal, one NumPy float64 array per parameter
            (not serialised; for :func:`loss_prediction`).
        rho: per-element mean glass density, likewise.
        grad: the gradient at the point, likewise.

    Example:
        One gradient at the point and two per probe:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> rep = curvature_probe(problem, sigma=0.5, n_probes=4)
        >>> rep.evaluations, rep.loss, [g.name for g in rep.groups]
        (9, 14.25, ['a', 'b'])
        >>> rep.hess_diag[1].tolist()
        [2.0, 2.0]
    """

    sigma: float
    n_probes: int
    evaluations: int
    loss: float
    groups: list
    hess_diag: list = dataclasses.field(default_factory=list, repr=False)
    rho: list = dataclasses.field(default_factory=list, repr=False)
    grad: list = dataclasses.field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        """The report as JSON-serialisable data, without the per-element arrays.

        Returns:
            A dict of plain Python values (non-finite floats become None); ``hess_diag``,
            ``rho`` and ``grad`` are left out.

        Example:
            Ready for ``json.dumps``:

            >>> import json
            >>> import numpy as np
            >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), np.ones(2), [2])
            >>> d = curvature_probe(problem, sigma=0.5, n_probes=2).to_dict()
            >>> sorted(d), d["groups"][0]["hessian_mean"]["value"]
            (['evaluations', 'groups', 'loss', 'n_probes', 'sigma'], 2.0)
            >>> len(json.dumps(d)) > 0
            True
        """
        d = dataclasses.asdict(self)
        for k in ("hess_diag", "rho", "grad"):
            d.pop(k)
        return _clean(d)


def curvature_probe(problem: Problem, sigma: float, n_probes: int = 16, seed=0, *,
                    max_blocks: int = 20, callback: Callable | None = None) -> CurvatureReport:
    """Per-group glass density and curvature at problem.params from antithetic probes (R2, R3).

    For k = 1..n_probes: draw z (Rademacher), evaluate g+ = g(nu + sigma z), g- = g(nu - sigma z)
    (g0 = g(nu) once); per element rho_hat = glass_density(g+, g-, g0, sigma),
    h_hat = hessian_diag(g+, g-, z, sigma), and curvature_magnitude(.., 'abs' | 'rms').
    Group summaries are means over probes and elements with two-way jackknife errors (module
    docstring); glass_to_hessian = alpha / mean |h| with alpha = ALPHA_COEFF rho / mean |g|
    (R5).

    Args:
        problem: the model (:class:`Problem`).
        sigma: the perturbation length (> 0); Alice's is its learning rate.
        n_probes: antithetic probe pairs (>= 2). Cost: 1 + 2 n_probes gradient evaluations.
        seed: int or NumPy Generator (the signs).
        max_blocks: at most this many element blocks per group for the element jackknife.
        callback: ``callback(done, total)``, called after each evaluation (progress bars).

    Returns:
        A :class:`CurvatureReport`.

    Raises:
        ValueError: sigma not finite and > 0, n_probes < 2, or malformed groups.
        TypeError: problem is not a Problem, or params are not arrays.

    Example:
        On L = sum theta_i^2 (gradient linear: no glass, Hessian diagonal 2) the estimates are
        exact:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> rep = curvature_probe(problem, sigma=0.5, n_probes=4)
        >>> [(g.name, g.glass_density.value, g.hessian_mean.value, g.curvature_abs.value)
        ...  for g in rep.groups]
        [('a', 0.0, 2.0, 2.0), ('b', 0.0, 2.0, 2.0)]
    """
    params, groups = _check_problem(problem)
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not (
            math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    sigma = float(sigma)
    if isinstance(n_probes, bool) or not isinstance(n_probes, numbers.Integral) or n_probes < 2:
        raise ValueError(f"n_probes must be an integer >= 2 (standard errors), got {n_probes!r}")
    rng, count, total = _rng(seed), [0], 1 + 2 * n_probes
    tick = (lambda: callback(count[0], total)) if callback else (lambda: None)
    loss, g0 = _evaluate(problem, params, count)
    tick()
    sums = {name: _Sums(sum(_size(params[i]) for i in idx), max_blocks)
            for name, idx in groups.items()}
    acc_h = [np.zeros(_size(p)) for p in params]
    acc_r = [np.zeros(_size(p)) for p in params]
    for _ in range(n_probes):
        z = draw_rademacher(rng, params)
        _, gp = _evaluate(problem, [p + sigma * zi for p, zi in zip(params, z)], count)
        tick()
        _, gm = _evaluate(problem, [p - sigma * zi for p, zi in zip(params, z)], count)
        tick()
        q = {"rho": [glass_density(a, b, c, sigma) for a, b, c in zip(gp, gm, g0)],
             "h": [hessian_diag(a, b, zi, sigma) for a, b, zi in zip(gp, gm, z)],
             "abs": [curvature_magnitude(a, b, sigma, "abs") for a, b in zip(gp, gm)],
             "rms": [curvature_magnitude(a, b, sigma, "rms") for a, b in zip(gp, gm)]}
        for i in range(len(params)):
            acc_h[i] += np.asarray(to_numpy(q["h"][i]), dtype=np.float64).reshape(-1)
            acc_r[i] += np.asarray(to_numpy(q["rho"][i]), dtype=np.float64).reshape(-1)
        for name, idx in groups.items():
            for k, arrs in q.items():
                sums[name].add(k, _flat(arrs, idx))
            sums[name].add("gabs", np.abs(_flat(g0, idx)))
    out = []
    for name, idx in groups.items():
        s = sums[name]
        gabs = float(np.mean(np.abs(_flat(g0, idx))))

        def alpha(m):
            return ALPHA_COEFF * m["rho"] / m["gabs"]

        out.append(GroupCurvature(
            name=name, size=s.n,
            glass_density=s.estimate(lambda m: m["rho"]),
            hessian_mean=s.estimate(lambda m: m["h"]),
            curvature_abs=s.estimate(lambda m: m["abs"]),
            curvature_rms=s.estimate(lambda m: m["rms"]),
            grad_abs=gabs,
            alpha=s.estimate(alpha),
            glass_to_hessian=s.estimate(lambda m: alpha(m) / m["abs"])))
    shapes = [tuple(p.shape) for p in params]
    return CurvatureReport(
        sigma=sigma, n_probes=n_probes, evaluations=count[0], loss=_scalar(loss), groups=out,
        hess_diag=[(a / n_probes).reshape(s) for a, s in zip(acc_h, shapes)],
        rho=[(a / n_probes).reshape(s) for a, s in zip(acc_r, shapes)],
        grad=[np.asarray(to_numpy(g), dtype=np.float64).reshape(s) for g, s in zip(g0, shapes)])


def _size(p) -> int:
    return int(math.prod(tuple(p.shape)))


# -- 2. power-law sweep --------------------------------------------------------------------------

@dataclasses.dataclass
class GroupPowerLaw:
    """Per group: the sweep y(t) = E_z mean_i (g_i(nu + t z) - g_i(nu))^2 and its exponent (R1).

    Attributes:
        name: the group's name.
        size: its number of elements.
        t: the perturbation lengths.
        y: y(t) at each length; y_se its standard errors.
        y_se: standard errors of y.
        p: least-squares slope of log y on log t (R1's power law).
        se: two-way jackknife error of p (module docstring).
        se_probes: its probe part.
        se_elements: its element part.
        fit_se: power_law_exponent's residual error (large when y(t) is not one power law,
            e.g. glass at small t and Hessian at large t).
        ci: [p - z se, p + z se] at the report's ci_level.
        regime: 'glass' (ci entirely below 1.5), 'hessian' (ci entirely in [1.5, 3]),
            'third-order' (ci above 3), 'mixed', or 'unknown' (no finite ci).

    Example:
        A quadratic: g(nu + t z) - g(nu) = 2 t z, so y = 4 t^2 and p = 2:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> g = power_law_sweep(problem, [0.25, 0.5, 1.0], n_probes=2).groups[0]
        >>> g.y, round(g.p, 12), g.regime
        ([0.25, 1.0, 4.0], 2.0, 'hessian')
    """

    name: str
    size: int
    t: list
    y: list
    y_se: list
    p: float
    se: float
    se_probes: float
    se_elements: float
    fit_se: float
    ci: list
    regime: str


@dataclasses.dataclass
class PowerLawReport:
    """Result of :func:`power_law_sweep`.

    Attributes:
        scales: the perturbation lengths t.
        n_probes: probe directions.
        ci_level: the confidence level of each group's ci.
        evaluations: gradient evaluations used (1 + n_probes len(scales)).
        groups: one :class:`GroupPowerLaw` per group.

    Example:
        The cost of a sweep:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> power_law_sweep(problem, [0.25, 0.5, 1.0], n_probes=2).evaluations
        7
    """

    scales: list
    n_probes: int
    ci_level: float
    evaluations: int
    groups: list

    def to_dict(self) -> dict:
        """The report as JSON-serialisable data (non-finite floats become None).

        Returns:
            A dict of plain Python values.

        Example:
            The top-level keys:

            >>> import numpy as np
            >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
            >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
            ...                     names=["a", "b"])
            >>> sorted(power_law_sweep(problem, [0.25, 0.5, 1.0], n_probes=2).to_dict())
            ['ci_level', 'evaluations', 'groups', 'n_probes', 'scales']
        """
        return _clean(dataclasses.asdict(self))


def _z_of_level(level: float) -> float:
    """Two-sided normal quantile: the z with P(|N(0,1)| <= z) = level (bisection on erf)."""
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if math.erf(mid / math.sqrt(2.0)) < level:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _regime(ci) -> str:
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "unknown"
    if hi < 1.5:
        return "glass"
    if lo >= 1.5 and hi <= 3.0:
        return "hessian"
    if lo > 3.0:
        return "third-order"
    return "mixed"


def power_law_sweep(problem: Problem, scales: Sequence[float], n_probes: int = 8, seed=0, *,
                    ci_level: float = 0.95, max_blocks: int = 20,
                    callback: Callable | None = None) -> PowerLawReport:
    """Exponent p of E||g(nu + t z) - g(nu)||^2 ~ t^p per group, R1.

    ``scales``: the perturbation lengths t (at least 3 distinct positive values; use a geometric
    range around Alice's sigma). Each probe draws one z and evaluates all scales along it (common
    random numbers); cost 1 + n_probes * len(scales) evaluations. Every parameter is perturbed
    at once (as in Alice's probes); each group's gradient change is measured. The fit is on the
    mean curve (power_law_exponent); ci = p +- z * se at ``ci_level``. p = 1 where glass
    dominates, 2 where the Hessian does (R1).

    Args:
        problem: the model (:class:`Problem`).
        scales: the perturbation lengths t.
        n_probes: probe directions (>= 2).
        seed: int or NumPy Generator (the signs).
        ci_level: confidence level of the intervals, in (0, 1).
        max_blocks: at most this many element blocks per group for the element jackknife.
        callback: ``callback(done, total)``, called after each evaluation.

    Returns:
        A :class:`PowerLawReport`.

    Raises:
        ValueError: fewer than 3 scales or 2 distinct ones, a scale not positive and finite,
            n_probes < 2, ci_level outside (0, 1), or malformed groups.

    Example:
        A quadratic has exponent 2 in every group:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> rep = power_law_sweep(problem, [0.25, 0.5, 1.0], n_probes=2)
        >>> [(g.name, round(g.p, 12), g.regime) for g in rep.groups]
        [('a', 2.0, 'hessian'), ('b', 2.0, 'hessian')]
    """
    params, groups = _check_problem(problem)
    ts = [float(t) for t in scales]
    if len(ts) < 3 or len(set(ts)) < 2 or not all(t > 0 and math.isfinite(t) for t in ts):
        raise ValueError(f"scales must hold at least 3 positive finite values with 2 distinct, "
                         f"got {scales!r}")
    if isinstance(n_probes, bool) or not isinstance(n_probes, numbers.Integral) or n_probes < 2:
        raise ValueError(f"n_probes must be an integer >= 2, got {n_probes!r}")
    if not 0.0 < float(ci_level) < 1.0:
        raise ValueError(f"ci_level must be in (0, 1), got {ci_level!r}")
    rng, count, total = _rng(seed), [0], 1 + n_probes * len(ts)
    tick = (lambda: callback(count[0], total)) if callback else (lambda: None)
    _, g0 = _evaluate(problem, params, count)
    tick()
    sums = {name: _Sums(sum(_size(params[i]) for i in idx), max_blocks)
            for name, idx in groups.items()}
    for _ in range(n_probes):
        z = draw_rademacher(rng, params)
        for j, t in enumerate(ts):
            _, g = _evaluate(problem, [p + t * zi for p, zi in zip(params, z)], count)
            tick()
            d2 = [(a - b) * (a - b) for a, b in zip(g, g0)]
            for name, idx in groups.items():
                sums[name].add(f"y{j}", _flat(d2, idx))
    zq = _z_of_level(float(ci_level))
    out = []
    for name in groups:
        s = sums[name]
        keys = [f"y{j}" for j in range(len(ts))]
        ys = [s.estimate(lambda m, k=k: m[k]) for k in keys]
        y = [e.value for e in ys]
        try:
            p_fit, fit_se = power_law_exponent(ts, y)
        except ValueError:
            p_fit, fit_se = math.nan, math.nan
        est = s.estimate(lambda m, keys=keys: power_law_exponent(ts, [m[k] for k in keys])[0])
        ci = [est.value - zq * est.se, est.value + zq * est.se]
        out.append(GroupPowerLaw(
            name=name, size=s.n, t=ts, y=y, y_se=[e.se for e in ys], p=p_fit, se=est.se,
            se_probes=est.se_probes, se_elements=est.se_elements, fit_se=fit_se, ci=ci,
            regime=_regime(ci)))
    return PowerLawReport(scales=ts, n_probes=n_probes, ci_level=float(ci_level),
                          evaluations=count[0], groups=out)


# -- 3. loss prediction --------------------------------------------------------------------------

@dataclasses.dataclass
class StepSizePrediction:
    """Loss prediction for random steps of one size tau (per element |delta_i| = tau).

    With dev = dL - Q (the deviation from the quadratic model) and B = R4's bound:
    coverage = fraction of steps with |dev| <= B (coverage_se: binomial error);
    nominal_coverage = NOMINAL_COVERAGE, the least coverage under R4's Brownian-glass model;
    upper_coverage = fraction with dL <= Q + B (the pessimistic model M of R4 lies above the
    actual loss); mean_ratio = mean|dev| / mean B (R4 holds in expectation iff <= 1;
    mean_ratio_se by the delta method); mae_linear, mae_quadratic = mean |dL - g.delta|,
    mean |dL - Q|; mean_abs_dl = mean |dL|; rel_mae_quadratic = mae_quadratic / mean_abs_dl.
    mean_bound is the mean of B.

    Example:
        On a quadratic the quadratic model is exact (Q = dL) and the linear one misses by
        sum_i delta_i^2 = 4 tau^2 = 1 for four elements and tau = 0.5:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> curv = curvature_probe(problem, sigma=0.5, n_probes=2)
        >>> s = loss_prediction(problem, curv, [0.5], n_steps=4).steps[0]
        >>> s.tau, s.mae_quadratic, s.mae_linear, s.mean_bound, s.coverage
        (0.5, 0.0, 1.0, 0.0, 1.0)
    """

    tau: float
    n_steps: int
    coverage: float
    coverage_se: float
    nominal_coverage: float
    upper_coverage: float
    mean_ratio: float
    mean_ratio_se: float
    mean_bound: float
    mae_linear: float
    mae_quadratic: float
    mean_abs_dl: float
    rel_mae_quadratic: float


@dataclasses.dataclass
class LossPredictionReport:
    """Result of :func:`loss_prediction`.

    Attributes:
        direction: 'rademacher' or 'coordinate'.
        pool: 'group' or 'element' (how rho was taken for the bound).
        evaluations: loss evaluations used.
        steps: one :class:`StepSizePrediction` per step size.

    Example:
        One loss evaluation per step and size:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> curv = curvature_probe(problem, sigma=0.5, n_probes=2)
        >>> rep = loss_prediction(problem, curv, [0.25, 0.5], n_steps=3)
        >>> rep.direction, rep.pool, rep.evaluations, [s.tau for s in rep.steps]
        ('rademacher', 'group', 6, [0.25, 0.5])
    """

    direction: str
    pool: str
    evaluations: int
    steps: list

    def to_dict(self) -> dict:
        """The report as JSON-serialisable data (non-finite floats become None).

        Returns:
            A dict of plain Python values.

        Example:
            The top-level keys:

            >>> import numpy as np
            >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
            >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
            ...                     names=["a", "b"])
            >>> curv = curvature_probe(problem, sigma=0.5, n_probes=2)
            >>> sorted(loss_prediction(problem, curv, [0.5], n_steps=2).to_dict())
            ['direction', 'evaluations', 'pool', 'steps']
        """
        return _clean(dataclasses.asdict(self))


DIRECTIONS = ("rademacher", "coordinate")
POOLS = ("group", "element")


def loss_prediction(problem: Problem, curvature: CurvatureReport, step_sizes: Sequence[float],
                    n_steps: int = 32, seed=0, *, direction: str = "rademacher",
                    pool: str = "group", callback: Callable | None = None) -> LossPredictionReport:
    """Actual loss changes against the quadratic model and R4's glass-aware bound.

    For each tau in ``step_sizes`` and n_steps random steps delta (``direction`` 'rademacher':
    delta = tau z over all elements; 'coordinate': delta = +-tau on one uniformly chosen
    element): dL = L(nu + delta) - L(nu), Q = g.delta + sum_i h_i delta_i^2 / 2 with g and h
    from ``curvature`` (h the per-element Hutchinson mean), B = loss_deviation_bound(delta, rho)
    (R4) with rho the group mean glass density broadcast to the group's elements (``pool``
    'group', pooled: a single probe point gives a noisy per-element rho) or the per-element mean
    ('element'). Elements outside every group get rho = 0. Cost n_steps * len(step_sizes) loss
    evaluations (problem.loss if given, else value_and_grad).

    Args:
        problem: the model (:class:`Problem`), the same one ``curvature`` was measured on.
        curvature: a :class:`CurvatureReport` from :func:`curvature_probe` at problem.params.
        step_sizes: the per-element step lengths tau (positive, finite).
        n_steps: random steps per size (>= 2).
        seed: int or NumPy Generator (the directions).
        direction: 'rademacher' or 'coordinate'.
        pool: 'group' or 'element'.
        callback: ``callback(done, total)``, called after each evaluation.

    Returns:
        A :class:`LossPredictionReport`.

    Raises:
        ValueError: an unknown direction or pool, a bad step size, n_steps < 2, or a
            curvature report of another problem.

    Example:
        On a quadratic the quadratic model predicts every change exactly:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> curv = curvature_probe(problem, sigma=0.5, n_probes=2)
        >>> rep = loss_prediction(problem, curv, [0.5, 1.0], n_steps=4, direction="coordinate")
        >>> [s.mae_quadratic for s in rep.steps]
        [0.0, 0.0]
    """
    params, groups = _check_problem(problem)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    taus = [float(t) for t in step_sizes]
    if not taus or not all(t > 0 and math.isfinite(t) for t in taus):
        raise ValueError(f"step_sizes must be positive finite numbers, got {step_sizes!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 2:
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}")
    if len(curvature.hess_diag) != len(params):
        raise ValueError("curvature must come from curvature_probe on the same problem")
    rng, count, total = _rng(seed), [0], len(taus) * n_steps
    tick = (lambda: callback(count[0], total)) if callback else (lambda: None)

    def loss_at(points):
        if problem.loss is not None:
            v = problem.loss(list(points))
            count[0] += 1
        else:
            v = _evaluate(problem, points, count)[0]
        return _scalar(v)

    rho_np = [np.zeros_like(r) for r in curvature.rho]
    for name, idx in groups.items():
        g = next(c for c in curvature.groups if c.name == name)
        for i in idx:
            rho_np[i] = (np.full_like(curvature.rho[i], max(g.glass_density.value, 0.0))
                         if pool == "group" else curvature.rho[i])
    h = [from_numpy(a, like=p) for a, p in zip(curvature.hess_diag, params)]
    gr = [from_numpy(a, like=p) for a, p in zip(curvature.grad, params)]
    rho = [from_numpy(a, like=p) for a, p in zip(rho_np, params)]
    sizes = [_size(p) for p in params]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    L0 = curvature.loss
    steps = []
    for tau in taus:
        rows = []
        for _ in range(n_steps):
            if direction == "rademacher":
                delta = [tau * z for z in draw_rademacher(rng, params)]
            else:
                k = int(rng.integers(offsets[-1]))
                sign = 1.0 if rng.random() < 0.5 else -1.0
                delta = []
                for i, p in enumerate(params):
                    e = np.zeros(sizes[i])
                    if offsets[i] <= k < offsets[i + 1]:
                        e[k - offsets[i]] = sign * tau
                    delta.append(from_numpy(e.reshape(tuple(p.shape)), like=p))
            dl = loss_at([p + d for p, d in zip(params, delta)]) - L0
            tick()
            lin = sum(_scalar(array_namespace(d).sum(g * d)) for g, d in zip(gr, delta))
            quad = lin + sum(_scalar(array_namespace(d).sum(hh * d * d)) / 2.0
                             for hh, d in zip(h, delta))
            bound = sum(_scalar(loss_deviation_bound(d, r)) for d, r in zip(delta, rho))
            rows.append((dl, lin, quad, bound))
        steps.append(_step_stats(tau, np.asarray(rows, dtype=np.float64)))
    return LossPredictionReport(direction=direction, pool=pool, evaluations=count[0], steps=steps)


def _step_stats(tau, a) -> StepSizePrediction:
    dl, lin, quad, bound = a.T
    n = len(dl)
    dev = np.abs(dl - quad)
    cov = float(np.mean(dev <= bound))
    mb = float(np.mean(bound))
    ratio = float(np.mean(dev) / mb) if mb > 0 else math.nan
    if mb > 0:
        # delta method for a ratio of means: Var(r) ~ Var(dev - r B) / (n mean(B)^2)
        ratio_se = float(np.std(dev - ratio * bound, ddof=1) / (math.sqrt(n) * mb))
    else:
        ratio_se = math.nan
    mabs = float(np.mean(np.abs(dl)))
    mq = float(np.mean(dev))
    return StepSizePrediction(
        tau=float(tau), n_steps=n, coverage=cov, coverage_se=math.sqrt(cov * (1 - cov) / n),
        nominal_coverage=NOMINAL_COVERAGE, upper_coverage=float(np.mean(dl <= quad + bound)),
        mean_ratio=ratio, mean_ratio_se=ratio_se, mean_bound=mb,
        mae_linear=float(np.mean(np.abs(dl - lin))), mae_quadratic=mq, mean_abs_dl=mabs,
        rel_mae_quadratic=mq / mabs if mabs > 0 else math.nan)


# -- all three -----------------------------------------------------------------------------------

@dataclasses.dataclass
class DiagnosticsReport:
    """All three diagnostics of one problem (see :func:`diagnose`).

    Attributes:
        curvature: the :class:`CurvatureReport`.
        power_law: the :class:`PowerLawReport`.
        loss_prediction: one :class:`LossPredictionReport` per step direction.
        meta: free-form description of the run (serialised as given).

    Example:
        The parts of a small run:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> rep = diagnose(problem, 0.5, n_probes=2, n_steps=2)
        >>> rep.curvature.evaluations, [r.direction for r in rep.loss_prediction]
        (5, ['rademacher', 'coordinate'])
    """

    curvature: CurvatureReport
    power_law: PowerLawReport
    loss_prediction: list
    meta: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        """The whole report as JSON-serialisable data, with the constants it used.

        Returns:
            A dict with 'meta', 'curvature', 'power_law', 'loss_prediction' (a list) and
            'constants' (GLASS_COEFF, ALPHA_COEFF, NOMINAL_COVERAGE).

        Example:
            The top-level keys:

            >>> import numpy as np
            >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
            >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
            ...                     names=["a", "b"])
            >>> d = diagnose(problem, 0.5, n_probes=2, n_steps=2, meta={"run": 1}).to_dict()
            >>> sorted(d), d["meta"]
            (['constants', 'curvature', 'loss_prediction', 'meta', 'power_law'], {'run': 1})
        """
        return {"meta": _clean(self.meta), "curvature": self.curvature.to_dict(),
                "power_law": self.power_law.to_dict(),
                "loss_prediction": [r.to_dict() for r in self.loss_prediction],
                "constants": {"GLASS_COEFF": GLASS_COEFF, "ALPHA_COEFF": ALPHA_COEFF,
                              "NOMINAL_COVERAGE": NOMINAL_COVERAGE}}


def diagnose(problem: Problem, sigma: float, *, n_probes: int = 16,
             scales: Sequence[float] | None = None, sweep_probes: int | None = None,
             step_sizes: Sequence[float] | None = None, n_steps: int = 32,
             direction: str | Sequence[str] = DIRECTIONS, pool: str = "group",
             ci_level: float = 0.95, seed=0, callback: Callable | None = None,
             meta: Mapping | None = None) -> DiagnosticsReport:
    """Run curvature_probe, power_law_sweep and loss_prediction (once per direction) with one
    seeded Generator, in that order.

    Defaults: scales = sigma * 2^k, k = -3..3; step_sizes = sigma * (1/4, 1/2, 1, 2, 4);
    sweep_probes = n_probes // 2 (at least 2); both step directions. ``callback(stage, done,
    total)`` reports progress, stage 'curvature', 'power_law' or 'loss_prediction:<direction>'.
    The results: R2/R3 (curvature), R1 (power law), R4 (loss prediction).

    Args:
        problem: the model (:class:`Problem`).
        sigma: the probe scale (> 0).
        n_probes: probe pairs of :func:`curvature_probe`.
        scales: perturbation lengths of :func:`power_law_sweep` (default above).
        sweep_probes: probe directions of the sweep (default above).
        step_sizes: step sizes of :func:`loss_prediction` (default above).
        n_steps: random steps per size.
        direction: one direction or a sequence of them (default both).
        pool: 'group' or 'element'.
        ci_level: confidence level of the power-law intervals.
        seed: int or NumPy Generator, shared by the three stages in order.
        callback: ``callback(stage, done, total)``.
        meta: free-form description stored in the report.

    Returns:
        A :class:`DiagnosticsReport`.

    Raises:
        ValueError: as the three diagnostics.

    Example:
        Costs with the defaults: 1 + 2 n_probes, 1 + 7 sweep_probes and 5 n_steps per
        direction:

        >>> import numpy as np
        >>> theta = np.array([1.0, -2.0, 0.5, 3.0])
        >>> problem = from_flat(lambda th: (float(th @ th), 2 * th), theta, [2, 2],
        ...                     names=["a", "b"])
        >>> rep = diagnose(problem, 0.5, n_probes=2, n_steps=2)
        >>> rep.curvature.evaluations, rep.power_law.evaluations
        (5, 15)
        >>> [r.evaluations for r in rep.loss_prediction]
        [10, 10]
    """
    rng = _rng(seed)
    scales = [sigma * 2.0 ** k for k in range(-3, 4)] if scales is None else list(scales)
    step_sizes = [sigma * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)] if step_sizes is None \
        else list(step_sizes)
    sweep_probes = max(2, n_probes // 2) if sweep_probes is None else sweep_probes
    directions = [direction] if isinstance(direction, str) else list(direction)

    def cb(stage):
        return None if callback is None else (lambda d, t: callback(stage, d, t))

    curv = curvature_probe(problem, sigma, n_probes, rng, callback=cb("curvature"))
    law = power_law_sweep(problem, scales, sweep_probes, rng, ci_level=ci_level,
                          callback=cb("power_law"))
    preds = [loss_prediction(problem, curv, step_sizes, n_steps, rng, direction=d, pool=pool,
                             callback=cb(f"loss_prediction:{d}")) for d in directions]
    return DiagnosticsReport(curv, law, preds, dict(meta or {}))


def _clean(x):
    """JSON-safe copy: NumPy scalars to Python, non-finite floats to None, tuples to lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


# -- problem builders (thin: they only build the gradient callable) ------------------------------

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


def from_torch(model, loss_fn: Callable, inputs, targets, *, groups: str = "parameters",
               seed: int | None = 0) -> Problem:
    """A Problem for a torch.nn.Module on one fixed batch (torch imported lazily).

    loss = loss_fn(model(inputs), targets), evaluated with torch.func.functional_call at
    detached copies of the trainable parameters (the model itself is not modified). ``groups``:
    'parameters' (one group per named parameter) or 'modules' (parameters grouped by their
    owning module's name). ``seed``: when not None each evaluation runs under
    torch.random.fork_rng with this seed, so dropout-like randomness is the same at every
    evaluation point (as Alice's RNG save/restore); put the model in eval() mode otherwise.

    Args:
        model: a torch.nn.Module.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``.
        inputs: the batch's inputs.
        targets: the batch's targets.
        groups: 'parameters' or 'modules'.
        seed: torch seed for every evaluation, or None.

    Returns:
        A :class:`Problem` over detached copies of the trainable parameters (with ``loss``).

    Raises:
        ValueError: an unknown ``groups``, or a model without trainable parameters.

    Example:
        A linear layer: one group per parameter, or one for the module; the loss
        sum(w x)^2 at w = 0 has zero gradient:

        >>> import torch
        >>> model = torch.nn.Linear(2, 1, bias=False)
        >>> _ = torch.nn.init.zeros_(model.weight)
        >>> x, y = torch.ones(1, 2), torch.zeros(1, 1)
        >>> problem = from_torch(model, torch.nn.functional.mse_loss, x, y)
        >>> problem.groups, from_torch(model, torch.nn.functional.mse_loss, x, y,
        ...                            groups="modules").groups
        ({'weight': [0]}, {'weight': [0]})
        >>> loss, grads = problem.value_and_grad(problem.params)
        >>> float(loss), grads[0].tolist()
        (0.0, [[0.0, 0.0]])
    """
    import torch
    from torch.func import functional_call

    if groups not in ("parameters", "modules"):
        raise ValueError(f"groups must be 'parameters' or 'modules', got {groups!r}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")
    names = [n for n, _ in named]
    params = [p.detach().clone() for _, p in named]

    def run(ps, need_grad):
        # manual_seed also seeds CUDA: fork every CUDA device too, so the caller's RNG is kept
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        ctx = torch.random.fork_rng(devices=cuda) if seed is not None else nullcontext()
        with ctx:
            if seed is not None:
                torch.manual_seed(seed)
            if need_grad:
                leaves = [p.detach().requires_grad_(True) for p in ps]
                loss = loss_fn(functional_call(model, dict(zip(names, leaves)), (inputs,)),
                               targets)
                grads = torch.autograd.grad(loss, leaves, allow_unused=True)
                grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves)]
                return loss.detach(), grads
            with torch.no_grad():
                return loss_fn(functional_call(model, dict(zip(names, list(ps))), (inputs,)),
                               targets).detach()

    if groups == "parameters":
        gmap = {n: [i] for i, n in enumerate(names)}
    else:
        gmap = {}
        for i, n in enumerate(names):
            gmap.setdefault(n.rsplit(".", 1)[0] if "." in n else n, []).append(i)
    return Problem(lambda ps: run(ps, True), params, gmap, lambda ps: run(ps, False))


def from_jax(loss_fn: Callable, params, *, jit: bool = True) -> Problem:
    """A Problem for a JAX loss over a pytree of parameters; one group per leaf.

    Each group is named by its leaf's key path (``jax.tree_util.keystr``). jax is imported
    lazily.

    Args:
        loss_fn: ``loss_fn(params) -> scalar`` on a fixed batch.
        params: the point, a pytree of arrays.
        jit: compile the gradient and the loss with ``jax.jit``.

    Returns:
        A :class:`Problem` (with ``loss``) over the pytree's leaves.

    Raises:
        ValueError: a pytree without leaves.

    Example:
        A dict of two leaves; the gradient of sum p^2 is 2 p:

        >>> import jax.numpy as jnp
        >>> problem = from_jax(lambda ps: (ps["w"] ** 2).sum() + (ps["b"] ** 2).sum(),
        ...                    {"w": jnp.ones(2), "b": jnp.zeros(1)}, jit=False)
        >>> problem.groups
        {"['b']": [0], "['w']": [1]}
        >>> [g.tolist() for g in problem.value_and_grad(problem.params)[1]]
        [[0.0], [2.0, 2.0]]
    """
    import jax

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

    return Problem(vg, leaves, {n: [i] for i, n in enumerate(names)},
                   lambda ps: lf(jax.tree_util.tree_unflatten(treedef, list(ps))))
