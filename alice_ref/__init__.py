"""alice_ref: reference implementation of "Curvature in the Looking-Glass" (arXiv 2411.16914).

Backend-neutral (Python array API) estimators of Hessian and gradient-glass curvature, the optimal
Hessian-glass step, Nesterov exactness and the Alice optimiser. Results R1-R8 are documented in
docs/derivations.md; the idea and the optimiser are those of Duersch, Catanach, Safonov and Wendt.
"""

from alice_ref import landscapes
from alice_ref.core import (
                    AliceConfig,
                    AliceState,
                    Schedule,
                    absorb_curvature,
                    absorb_gradient,
                    absorb_quick,
                    absorb_sample,
                    alice_step,
                    alice_update,
                    apply_update,
                    attributes,
                    ema,
                    init,
                    params_of,
                    probe_points,
                    schedule,
                    state_from_dict,
                    state_to_dict,
)
from alice_ref.driver import Alice, NonFiniteGradientError, draw_rademacher, minimize, run_batch
from alice_ref.maths.bounds import GLASS_COEFF, JENSEN_COEFF, loss_deviation_bound
from alice_ref.maths.estimators import (
                    curvature_magnitude,
                    glass_density,
                    glass_density_from_line,
                    glass_kernel,
)
from alice_ref.maths.glass import glass_line_covariance, power_law_exponent
from alice_ref.maths.nesterov import exact_phi, nesterov_lag
from alice_ref.maths.probes import hessian_diag, rademacher_from_uniform, rademacher_variance
from alice_ref.maths.saliency import CRITERIA as SALIENCY_CRITERIA
from alice_ref.maths.saliency import (
                    LossChange,
                    group_change,
                    loss_change,
                    pruning_change,
                    pruning_saliency,
                    quantization_change,
                    quantization_sensitivity,
                    uniform_rounding_moments,
)
from alice_ref.maths.schedule import (
                    curvature_beta,
                    ema_beta,
                    is_sample_step,
                    sample_cost,
                    warmup_length,
)
from alice_ref.maths.step import ALPHA_COEFF, bounded_step, effective_curvature, optimal_step

__version__ = "0.1.0"

__all__ = [
    "GLASS_COEFF", "JENSEN_COEFF", "ALPHA_COEFF",
    "hessian_diag", "rademacher_from_uniform", "rademacher_variance",
    "curvature_magnitude", "glass_density", "glass_kernel", "glass_density_from_line",
    "glass_line_covariance", "power_law_exponent",
    "loss_deviation_bound", "effective_curvature", "optimal_step", "bounded_step",
    "exact_phi", "nesterov_lag",
    "sample_cost", "curvature_beta", "warmup_length", "is_sample_step", "ema_beta",
    "landscapes",
    "AliceConfig", "AliceState", "Schedule", "schedule", "init", "probe_points", "ema",
    "absorb_gradient", "absorb_curvature", "alice_update", "alice_step", "absorb_sample",
    "absorb_quick",
    "apply_update", "params_of", "state_to_dict", "state_from_dict", "attributes",
    "Alice", "NonFiniteGradientError", "draw_rademacher", "run_batch", "minimize",
    "SALIENCY_CRITERIA", "LossChange", "loss_change", "pruning_change", "quantization_change",
    "group_change", "pruning_saliency", "quantization_sensitivity", "uniform_rounding_moments",
]
