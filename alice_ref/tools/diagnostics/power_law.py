"""Power law of the gradient change per group, E||g(nu + t z) - g(nu)||^2 ~ t^p (R1).

:func:`power_law_sweep` measures y(t) = E_z mean_i (g_i(nu + t z) - g_i(nu))^2 over a range of
perturbation lengths t and fits the exponent p: p = 1 where glass dominates, p = 2 where the
Hessian dominates (4 for third-order terms alone). Next to it, the two-term fit
y = a t + b t^2 (glass part a, Hessian part b, :func:`alice_ref.maths.glass.two_term_fit`) and
the crossover t* = a / b below which glass dominates: a curve that bends from slope 1 to slope
2 has one t* inside the sweep, which a single exponent hides.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from alice_ref.checks import check_count
from alice_ref.driver import draw_rademacher
from alice_ref.maths.glass import power_law_exponent, two_term_fit
from alice_ref.tools._output import json_safe
from alice_ref.tools.diagnostics.estimate import _Sums
from alice_ref.tools.diagnostics.problem import (
    Problem,
    _check_problem,
    _evaluate,
    _flat,
    _rng,
    _size,
    from_flat,  # noqa: F401  (the examples use it)
)

__all__ = ["GroupPowerLaw", "PowerLawReport", "power_law_sweep"]


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
        two_term: the fit y = a t + b t^2: {'a', 'b', 't_star' (= a / b), 'a_se', 'b_se',
            't_star_se', 'a_ci', 'b_ci', 't_star_ci'} with the same two-way jackknife errors
            and ci_level as p (None when the fit fails).

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
    two_term: dict | None = None


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
        return json_safe(dataclasses.asdict(self))


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


def _two_term(sums, ts, keys, zq):
    """The fit y = a t + b t^2 of one group's mean curve, with jackknife errors (R1)."""
    def fit(m, k):
        y = [m[key] for key in keys]
        if not all(math.isfinite(v) and v > 0 for v in y):
            return math.nan
        a, b, _ = two_term_fit(ts, y)
        return (a, b, a / b if b != 0 else math.nan)[k]

    est = [sums.estimate(lambda m, k=k: fit(m, k)) for k in range(3)]
    if not math.isfinite(est[0].value) or not math.isfinite(est[1].value):
        return None
    out = {}
    for key, e in zip(("a", "b", "t_star"), est):
        out[key], out[f"{key}_se"] = e.value, e.se
        out[f"{key}_ci"] = [e.value - zq * e.se, e.value + zq * e.se]
    return out


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
    check_count("n_probes", n_probes, lo=2)
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
            regime=_regime(ci), two_term=_two_term(s, ts, keys, zq)))
    return PowerLawReport(scales=ts, n_probes=n_probes, ci_level=float(ci_level),
                          evaluations=count[0], groups=out)

