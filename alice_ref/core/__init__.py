"""Layer 2: the optimiser core, in the order of the algorithm (docs/spec/algorithm.md).

- :mod:`alice_ref.core.config`: :class:`AliceConfig`, the validated hyperparameters;
- :mod:`alice_ref.core.state`: :class:`AliceState`, :data:`FIELDS`, :func:`init`, the
  checkpoint layout and the reported attributes;
- :mod:`alice_ref.core.elements`: one parameter's update, elementwise and traceable
  (:func:`absorb_gradient`, :func:`absorb_curvature`, :func:`alice_step`, :func:`alice_update`);
- :mod:`alice_ref.core.batch`: one batch of a whole state: :func:`schedule` (steps 1-2),
  :func:`probe_points`, :func:`absorb_sample` / :func:`absorb_quick` (steps 3-4, Alg. 2),
  :func:`apply_update` (step 5, Alg. 3).
"""

from alice_ref.core.batch import (
    Schedule,
    absorb_quick,
    absorb_sample,
    apply_update,
    probe_points,
    realised_displacements,
    schedule,
)
from alice_ref.core.config import HESS_COMPS, LIMIT_METHODS, NONFINITE_POLICIES, AliceConfig
from alice_ref.core.elements import absorb_curvature, absorb_gradient, alice_step, alice_update, ema
from alice_ref.core.state import (
    FIELDS,
    AliceState,
    attributes,
    init,
    params_of,
    state_dtype,
    state_from_dict,
    state_to_dict,
)

__all__ = ["AliceConfig", "HESS_COMPS", "LIMIT_METHODS", "NONFINITE_POLICIES", "AliceState",
           "FIELDS", "init", "params_of", "state_dtype", "state_to_dict", "state_from_dict",
           "attributes", "Schedule", "schedule", "probe_points", "realised_displacements", "ema",
           "absorb_gradient", "absorb_curvature", "alice_update", "alice_step", "absorb_sample",
           "absorb_quick", "apply_update"]
