"""Per-group glass density and curvature from antithetic probes (R2, R3) and R5's ratio.

:func:`curvature_probe` draws ``n_probes`` Rademacher pairs at scale sigma and reports, per
group, the mean glass density rho (R3, ``glass_density``), the mean signed Hessian diagonal (R2,
``hessian_diag``), the 'abs' and 'rms' curvature magnitudes (R3, ``curvature_magnitude``) and
alpha / |h| with alpha = ALPHA_COEFF rho / |g| (R5), each an :class:`Estimate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from alice_ref._xp import to_numpy
from alice_ref.checks import check_count, check_real
from alice_ref.driver import draw_rademacher
from alice_ref.maths.estimators import curvature_magnitude, glass_density
from alice_ref.maths.probes import hessian_diag
from alice_ref.maths.step import ALPHA_COEFF
from alice_ref.tools._output import json_safe
from alice_ref.tools.diagnostics.estimate import Estimate, _Sums
from alice_ref.tools.diagnostics.problem import (
    Problem,
    _check_problem,
    _evaluate,
    _flat,
    _rng,
    _scalar,
    _size,
    from_flat,  # noqa: F401  (the examples use it)
)

__all__ = ["CurvatureReport", "GroupCurvature", "curvature_probe"]


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
        return json_safe(d)


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
    sigma = check_real("sigma", sigma, lo=0.0, lo_open=True, finite=True)
    check_count("n_probes", n_probes, lo=2)  # two probes at least for standard errors
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

