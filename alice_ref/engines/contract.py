"""What an engine promises, and the one packing of its per-call scalars.

An engine is a compiled transliteration of the core's per-element batch update (absorb the
batch's gradients, docs/spec/algorithm.md#one-batch, steps 3-4 = Alg. 2; then the state update,
step 5 = Alg. 3): :func:`alice_ref.core.absorb_sample` / :func:`alice_ref.core.absorb_quick`
followed by :func:`alice_ref.core.apply_update`, done in place, in one pass over the state. The
contract:

- **Bit-identical to the core** run on the same namespace, for float32 and float64 state, for
  every hyperparameter switch and every state the algorithm can reach (V, H, R >= 0): the same
  IEEE operations in the same order on the same operands. No fast math (no reassociation, no
  FMA contraction, no reciprocals), correctly rounded square roots (or the caller's, see
  ``sqrt=`` of :mod:`alice_ref.engines.cpu`), x/0 gives inf or NaN as in NumPy, and every
  constant rounded once to the state dtype (:func:`pack_scalars`), as NEP 50 does per call.
  The clip and the sign are the core's ``where`` expressions literally. Proven by
  tests/test_fast_paths.py for each engine.
- **In place and atomic per call**: arguments are checked before anything is written; the
  state arrays must not share memory.
- **One transliteration per hardware class**: :mod:`alice_ref.engines.cpu` (numba) and
  :mod:`alice_ref.engines.cuda` (CuPy). Everything else calls the core.
"""

from __future__ import annotations

import numpy as np

from alice_ref.maths.step import ALPHA_COEFF

__all__ = ["SCALARS", "pack_scalars"]

#: The per-call scalars of an engine, in the order engines receive them.
SCALARS = ("b1", "b2", "b3", "two_sigma", "sigma", "two", "w1", "w2", "w2sq", "eps", "alpha_c",
           "phi", "omega", "lo", "hi", "zero")


def pack_scalars(config, sched, lr, dtype) -> np.ndarray:
    """The scalars of one batch in :data:`SCALARS` order, each rounded once to ``dtype``.

    b1, b2, b3 are the schedule's bias-corrected weights (step 1); sigma = lr (or config.lr)
    and two_sigma = 2 sigma (R3's kernels); w1, w2, w2^2 the regularisers; eps; alpha_c =
    3/(4 pi) (R5); phi, omega (R7); lo, hi the step bounds of :meth:`AliceConfig.bounds` (R6).

    Example:
        float32 rounding of the defaults at batch 1:

        >>> from alice_ref import AliceConfig, schedule
        >>> c = AliceConfig(lr=0.5)
        >>> k = pack_scalars(c, schedule(1, c), None, np.float32)
        >>> k.dtype, dict(zip(SCALARS, k.tolist()))["two_sigma"], len(k)
        (dtype('float32'), 1.0, 16)
    """
    c = config
    sigma = c.lr if lr is None else lr
    lo, hi = c.bounds(lr)
    values = dict(b1=sched.beta1, b2=sched.beta2, b3=sched.beta3, two_sigma=2.0 * sigma,
                  sigma=sigma, two=2.0, w1=c.w1, w2=c.w2, w2sq=c.w2 * c.w2, eps=c.eps,
                  alpha_c=ALPHA_COEFF, phi=c.phi, omega=c.omega, lo=lo, hi=hi, zero=0.0)
    return np.array([values[s] for s in SCALARS], np.float64).astype(dtype)
