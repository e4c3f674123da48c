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

Modules: ``problem`` (:class:`Problem`, :func:`from_flat`; torch and JAX models:
``alice_torch.problems.from_torch``, ``alice_jax.problems.from_jax``), ``estimate``
(:class:`Estimate`, the jackknife), ``curvature``, ``power_law``, ``prediction`` (the three
diagnostics) and ``report`` (:func:`diagnose`, running all three); every public name is
importable from this package.
"""

from alice_ref.maths.bounds import GLASS_COEFF as GLASS_COEFF  # the reports' constants
from alice_ref.maths.step import ALPHA_COEFF as ALPHA_COEFF
from alice_ref.tools.diagnostics.curvature import CurvatureReport, GroupCurvature, curvature_probe
from alice_ref.tools.diagnostics.estimate import Estimate
from alice_ref.tools.diagnostics.power_law import GroupPowerLaw, PowerLawReport, power_law_sweep
from alice_ref.tools.diagnostics.prediction import (
    DIRECTIONS,
    NOMINAL_COVERAGE,
    POOLS,
    LossPredictionReport,
    StepSizePrediction,
    loss_prediction,
)
from alice_ref.tools.diagnostics.problem import Problem, from_flat
from alice_ref.tools.diagnostics.report import DiagnosticsReport, diagnose

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
    "loss_prediction",
    "power_law_sweep",
]
