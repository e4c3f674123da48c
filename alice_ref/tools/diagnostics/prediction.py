"""Loss prediction: actual loss changes against the quadratic model and R4's glass bound.

:func:`loss_prediction` takes random steps delta of several sizes and compares
dL = L(nu + delta) - L(nu) with Q = g.delta + sum_i h_i delta_i^2 / 2 (h the measured diagonal)
and with R4's bound B = loss_deviation_bound(delta, rho) = GLASS_COEFF sum_i sqrt(rho_i)
|delta_i|^{3/2}.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from alice_ref._xp import array_namespace, from_numpy
from alice_ref.checks import check_count
from alice_ref.driver import draw_rademacher
from alice_ref.maths.bounds import loss_deviation_bound
from alice_ref.tools._output import json_safe
from alice_ref.tools.diagnostics.curvature import (
    CurvatureReport,
    curvature_probe,  # noqa: F401  (the examples use it)
)
from alice_ref.tools.diagnostics.problem import (
    Problem,
    _check_problem,
    _evaluate,
    _rng,
    _scalar,
    _size,
    from_flat,  # noqa: F401  (the examples use it)
)

__all__ = ["DIRECTIONS", "NOMINAL_COVERAGE", "POOLS", "LossPredictionReport",
           "StepSizePrediction", "loss_prediction"]

# Coverage of |X| <= B when X is Gaussian (Brownian glass, R4) and B >= E|X| = sqrt(2/pi) sd(X):
# P(|X| <= E|X|) = 2 Phi(sqrt(2/pi)) - 1 = erf(sqrt(2/pi) / sqrt(2)) = erf(1/sqrt(pi)) ~= 0.5751.
# R4's bound sums per-coordinate terms, B = c sum_i sqrt(rho_i)|delta_i|^{3/2} >= c sqrt(sum_i
# rho_i |delta_i|^3) = E|X|, so this is a lower bound on the coverage under R4's model (equality
# for a single coordinate); with many coordinates B exceeds E|X| by ~sqrt(n) and coverage -> 1.
NOMINAL_COVERAGE = math.erf(1.0 / math.sqrt(math.pi))

DIRECTIONS = ("rademacher", "coordinate")
POOLS = ("group", "element")


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
        return json_safe(dataclasses.asdict(self))


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
    check_count("n_steps", n_steps, lo=2)
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

