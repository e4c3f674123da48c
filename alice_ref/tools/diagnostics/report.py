"""All three diagnostics of one problem with one seeded Generator: :func:`diagnose`.

Curvature (R2, R3, R5), power law (R1), then loss prediction (R4) once per step direction;
:meth:`DiagnosticsReport.to_dict` is the JSON written by ``alice-ref probe``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from alice_ref.maths.bounds import GLASS_COEFF
from alice_ref.maths.step import ALPHA_COEFF
from alice_ref.tools._output import json_safe
from alice_ref.tools.diagnostics.curvature import CurvatureReport, curvature_probe
from alice_ref.tools.diagnostics.power_law import PowerLawReport, power_law_sweep
from alice_ref.tools.diagnostics.prediction import DIRECTIONS, NOMINAL_COVERAGE, loss_prediction
from alice_ref.tools.diagnostics.problem import (
    Problem,
    _rng,
    from_flat,  # noqa: F401  (the examples use it)
)

__all__ = ["DiagnosticsReport", "diagnose"]


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
        return {"meta": json_safe(self.meta), "curvature": self.curvature.to_dict(),
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

