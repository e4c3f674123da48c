"""Layer 2: the optimiser core (config, state, one batch), in the order of the algorithm."""

from alice_ref.core.batch import *  # noqa: F401,F403
from alice_ref.core.batch import __all__  # noqa: F401
