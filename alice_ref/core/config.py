"""Alice's hyperparameters, validated once (docs/spec/algorithm.md#hyperparameters).

:class:`AliceConfig` is immutable; every field is checked on construction (and by
:meth:`AliceConfig.replace`), before anything else happens, with the checks of
:mod:`alice_ref.checks`.
"""

from __future__ import annotations

import dataclasses
import functools
import math

from alice_ref.checks import check_bool, check_choice, check_count, check_real
from alice_ref.maths.schedule import curvature_beta, warmup_length
from alice_ref.maths.step import LIMIT_METHODS

__all__ = ["AliceConfig", "HESS_COMPS", "LIMIT_METHODS", "NONFINITE_POLICIES"]

HESS_COMPS = ("zero", "abs", "rms")
NONFINITE_POLICIES = ("raise", "skip")


@dataclasses.dataclass(frozen=True)
class AliceConfig:
    """Validated, immutable Alice hyperparameters (official names and defaults).

    The table of docs/spec/algorithm.md#hyperparameters.

    ``phi=None`` resolves to 1 - beta1 (R7's exact look-ahead fraction for omega = 1) and
    ``lr_max=None`` to 2 lr; the derived curvature weight beta3 = 1 - (q+1)(1 - beta2) (R8) must
    lie in (0, 1). Every field is checked on construction (and by :meth:`replace`), before
    anything else happens.

    Args:
        lr: learning rate (> 0): the perturbation length sigma and the scale of the step bounds.
        betas: (beta1, beta2), each in (0, 1): gradient and squared-gradient average weights.
        eps: denominator guard (> 0).
        w1: L1 regularisation weight (>= 0).
        w2: L2 regularisation weight (>= 0).
        phi: fraction of the step taken by the centre mu, 0 < phi < 2; None -> 1 - beta1 (R7).
        omega: look-ahead multiplier (> 0): nu = mu + omega delta.
        limit_method: 'fixed', 'sgdm' or 'adam': the factor f of the step bounds (R6).
        lr_min: lower step bound tau_lo (>= 0).
        lr_max: upper step bound tau_hi (>= lr_min); None -> 2 lr.
        scale_bounds_with_lr: keep lr_min/lr and lr_max/lr fixed when a schedule changes lr
            (see :meth:`bounds`).
        hess_comp: 'zero', 'abs' or 'rms': the curvature h the step uses.
        grad_glass: use the glass density rho in the step (R5).
        quick_steps: q, an integer >= 0: quick steps after each sample step (R8).
        nonfinite: 'raise' or 'skip': the driver's policy for NaN/Inf gradients.

    Raises:
        TypeError: a number that is not a real scalar, or a flag that is not a bool.
        ValueError: a value outside its range above (the message names the argument and the
            value), hess_comp='zero' with grad_glass=False (nothing would bound the step), or
            (q+1)(1 - beta2) >= 1 (beta3 would not be an average weight).

    Example:
        Defaults resolved from lr and beta1, and a bad value refused:

        >>> c = AliceConfig(lr=0.01, betas=(0.75, 0.999))
        >>> c.phi, c.lr_max, c.beta3, c.warmup  # 1 - beta1, 2 lr, 1 - 4 (1 - beta2), 1/(1 - beta1)
        (0.25, 0.02, 0.996, 4.0)
        >>> AliceConfig(lr=0.0)
        Traceback (most recent call last):
        ...
        ValueError: lr must be > 0.0, got 0.0
    """

    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    w1: float = 0.0
    w2: float = 0.0
    phi: float | None = None
    omega: float = 1.0
    limit_method: str = "adam"
    lr_min: float = 0.0
    lr_max: float | None = None
    scale_bounds_with_lr: bool = True
    hess_comp: str = "abs"
    grad_glass: bool = True
    quick_steps: int = 3
    nonfinite: str = "raise"
    _defaulted: frozenset = dataclasses.field(default=frozenset(), init=False, repr=False,
                                              compare=False)

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        put("_defaulted", frozenset(k for k in ("phi", "lr_max") if getattr(self, k) is None))
        real = lambda name, v, **rng: check_real(name, v, finite=True, **rng)  # noqa: E731
        put("lr", real("lr", self.lr, lo=0.0, lo_open=True))
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        b1, b2 = self.betas
        put("betas", tuple(real(f"betas[{i}]", b, lo=0.0, lo_open=True, hi=1.0, hi_open=True)
                           for i, b in enumerate((b1, b2))))
        put("eps", real("eps", self.eps, lo=0.0, lo_open=True))
        put("w1", real("w1", self.w1, lo=0.0))
        put("w2", real("w2", self.w2, lo=0.0))
        phi = 1.0 - self.betas[0] if self.phi is None else self.phi
        put("phi", real("phi", phi, lo=0.0, lo_open=True, hi=2.0, hi_open=True))
        put("omega", real("omega", self.omega, lo=0.0, lo_open=True))
        check_choice("limit_method", self.limit_method, LIMIT_METHODS)
        put("lr_min", real("lr_min", self.lr_min, lo=0.0))
        lr_max = real("lr_max", 2.0 * self.lr if self.lr_max is None else self.lr_max)
        if lr_max < self.lr_min:
            raise ValueError(f"lr_max must be >= lr_min = {self.lr_min!r}, got {lr_max!r}"
                             + (" (the default 2 lr)" if self.lr_max is None else ""))
        put("lr_max", lr_max)
        check_bool("scale_bounds_with_lr", self.scale_bounds_with_lr)
        check_choice("hess_comp", self.hess_comp, HESS_COMPS)
        check_bool("grad_glass", self.grad_glass)
        if self.hess_comp == "zero" and not self.grad_glass:
            raise ValueError("hess_comp='zero' with grad_glass=False leaves no curvature: the "
                             "step would be unbounded; enable one of them")
        put("quick_steps", check_count("quick_steps", self.quick_steps))
        curvature_beta(self.betas[1], self.quick_steps)  # (q+1)(1 - beta2) < 1, R8
        check_choice("nonfinite", self.nonfinite, NONFINITE_POLICIES)

    beta1 = property(lambda self: self.betas[0], doc="beta1: gradient-average weight.")
    beta2 = property(lambda self: self.betas[1], doc="beta2: squared-gradient weight.")
    beta3 = property(lambda self: curvature_beta(self.betas[1], self.quick_steps),
                     doc="beta3 = 1 - (q+1)(1 - beta2), the curvature-average weight (R8).")
    warmup = property(lambda self: warmup_length(self.betas[0]),
                      doc="Warm-up threshold 1/(1 - beta1), exact for the decimal beta1 "
                          "(alice_ref.maths.schedule.warmup_length).")

    def check_dtype(self, dtype, lr: float | None = None) -> None:
        """Refuse hyperparameters that the state dtype cannot carry.

        The scalars are validated as float64 but used rounded to the state dtype (float32 for
        most models), where a value below the dtype's range rounds to 0 (eps or sigma = 0 give
        0/0 = NaN in H, R or the step) and one near its top overflows in a product (nu = inf
        from finite gradients). Every nonzero scalar of the update (lr = sigma, eps, lr_min,
        lr_max and the current bounds, w1, w2, phi, omega) must lie in [sqrt(tiny), sqrt(max)]
        of the dtype (float32: [1.1e-19, 1.8e19]; float64: [1.5e-154, 1.3e154]), so that no
        product of two of them underflows to 0 or overflows.

        Args:
            dtype: the state's floating dtype (any object with a NumPy-compatible name).
            lr: the current learning rate (None: self.lr).

        Raises:
            ValueError: naming the hyperparameter, its value and the dtype's range.

        Example:
            >>> AliceConfig(eps=1e-30).check_dtype("float64")
            >>> AliceConfig(eps=1e-30).check_dtype("float32")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: eps = 1e-30 cannot be carried by float32 state: ... [1.1e-19, 1.8e+19] there
        """
        lo_ok, hi_ok = _dtype_range(str(dtype).rsplit(".", 1)[-1])
        lo, hi = self.bounds(lr)
        for name, v in (("lr", self.lr if lr is None else lr), ("eps", self.eps),
                        ("lr_min", self.lr_min), ("lr_max", self.lr_max), ("lr_min (scaled)", lo),
                        ("lr_max (scaled)", hi), ("w1", self.w1), ("w2", self.w2),
                        ("phi", self.phi), ("omega", self.omega)):
            if v != 0.0 and not lo_ok <= abs(v) <= hi_ok:
                raise ValueError(f"{name} = {v!r} cannot be carried by {dtype} state: nonzero "
                                 f"hyperparameters must lie in [{lo_ok:.2g}, {hi_ok:.2g}] there")

    def bounds(self, lr: float | None = None) -> tuple[float, float]:
        """Step bounds (tau_lo, tau_hi) for the current learning rate, R6.

        With ``scale_bounds_with_lr`` the ratios to the construction lr are kept:
        tau_lo = lr_min lr_now / lr and tau_hi = lr_max lr_now / lr, so a schedule that changes
        the learning rate moves the bounds; otherwise, or when ``lr`` is None, they are
        (lr_min, lr_max). The step d is then clipped to [tau_lo f, tau_hi f]
        (docs/spec/algorithm.md#one-batch, step 5; Alg. 3, steps 4-7).

        Args:
            lr: the current learning rate lr_now, or None for the construction lr. Not checked
                here (the driver checks it: finite and > 0).

        Returns:
            The pair (tau_lo, tau_hi) as floats.

        Example:
            Bounds that follow the learning rate, and fixed ones:

            >>> c = AliceConfig(lr=0.5, lr_min=0.25)  # lr_max resolves to 2 lr = 1.0
            >>> c.bounds(), c.bounds(0.25)  # halving the learning rate halves both bounds
            ((0.25, 1.0), (0.125, 0.5))
            >>> c.replace(scale_bounds_with_lr=False).bounds(0.25)
            (0.25, 1.0)
        """
        if lr is None or not self.scale_bounds_with_lr:
            return self.lr_min, self.lr_max
        return self.lr_min / self.lr * lr, self.lr_max / self.lr * lr

    def replace(self, **changes) -> AliceConfig:
        """A new validated config with some fields changed (``dataclasses.replace``).

        phi and lr_max that were left to their defaults (None) are derived again from the new
        lr and betas; values given explicitly are kept.

        Args:
            **changes: field names and their new values.

        Returns:
            A new AliceConfig; ``self`` is unchanged.

        Raises:
            TypeError: an unknown field name, or a value of the wrong type.
            ValueError: a value out of range, as for the constructor.

        Example:
            Defaulted fields follow the change; every change is validated:

            >>> c = AliceConfig(lr=0.01, betas=(0.75, 0.999))
            >>> c2 = c.replace(lr=0.02)
            >>> c2.lr, c2.lr_max, c.lr  # lr_max = 2 lr by default, so it follows
            (0.02, 0.04, 0.01)
            >>> AliceConfig(lr=0.01, lr_max=0.05).replace(lr=0.02).lr_max  # explicit: kept
            0.05
            >>> c.replace(quick_steps=-1)
            Traceback (most recent call last):
            ...
            ValueError: quick_steps must be an integer >= 0, got -1
        """
        return dataclasses.replace(
            self, **{k: None for k in self._defaulted if k not in changes}, **changes)


@functools.lru_cache(maxsize=None)
def _dtype_range(name: str) -> tuple[float, float]:
    """[sqrt(tiny), sqrt(max)] of a floating dtype (float16/bfloat16 state is float32)."""
    import numpy as np

    info = np.finfo(np.float64 if name == "float64" else np.float32)
    return math.sqrt(float(info.tiny)), math.sqrt(float(info.max))
