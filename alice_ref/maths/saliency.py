"""R4 applied to pruning and quantization: the predicted loss change of moving weights by delta.

R4 (docs/spec/math.md#r4-expected-loss-deviation-bound) splits the change of the loss when the
parameters move from nu to nu + delta into

    L(nu + delta) - L(nu) = g.delta + 1/2 delta^T H delta + X(delta) + (smooth remainder),

with the glass part X of mean zero and, for separable glass, E|X_i| = c sqrt(rho_i)
|delta_i|^{3/2}, c = GLASS_COEFF = sqrt(2/(3 pi)) (Brownian glass; E|X| <= c sum_i sqrt(rho_i)
|delta_i|^{3/2} for several coordinates). This module evaluates the three terms per element,

    first = g delta,   second = 1/2 h delta^2,   glass = c sqrt(rho) |delta|^{3/2},

with h the Hessian *diagonal* (the off-diagonal part of delta^T H delta is dropped, as Optimal
Brain Damage drops it), for pruning (delta = -theta) and for quantization (delta the rounding
error). The form used is R4's pessimistic model M(delta) - L = first + second + glass: the glass
term is an *upper bound on the expected size* of a deviation whose sign is random, so it
predicts the magnitude |dL - Q| around the quadratic prediction Q = first + second, not the
sign of one weight's true change (E X = 0: the mean loss change is Q).

Quantization: rounding to a grid of step D with a uniformly distributed offset gives a rounding
error delta ~ U(-D/2, D/2). For a = D/2 and p > -1, E|delta|^p = (1/a) int_0^a x^p dx =
a^p / (p + 1), hence E delta = 0, E delta^2 = a^2 / 3 = D^2 / 12 and E|delta|^{3/2} =
(2/5) (D/2)^{3/2}; the expected terms are first = 0, second = h D^2 / 24 and glass =
(2/5) c sqrt(rho) (D/2)^{3/2} (the glass bound is linear in |delta|^{3/2}, so its expectation
over delta is exact: E_delta[c sqrt(rho) |delta|^{3/2}] = c sqrt(rho) E|delta|^{3/2}).

Groups (a row, a channel, a layer) move together: first and second add up; the glass terms add
up as the bound of R4 (``glass="bound"``, E|sum X_i| <= sum E|X_i|), or, for independent
Gaussian X_i, E|sum X_i| = c sqrt(sum_i rho_i |delta_i|^3) = sqrt(sum_i glass_i^2)
(``glass="gaussian"``).

Pure array-API functions (docs/spec/design.md#the-package-layout, layer 1); the estimates of
g, h and rho come from the diagnostics' probes (alice_ref.tools.diagnostics.curvature_probe,
R2/R3) or an Alice state (:func:`estimates_from_state`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from alice_ref._xp import array_namespace, is_array_api_obj, prepare
from alice_ref.checks import check_choice, check_nonnegative
from alice_ref.maths.bounds import glass_term, three_halves

__all__ = ["CRITERIA", "LossChange", "estimates_from_state", "group_change", "loss_change",
           "predicted_change", "pruning_change", "pruning_saliency", "quantization_change",
           "quantization_sensitivity", "score_from_change", "uniform_rounding_moments"]

CRITERIA = ("magnitude", "first_order", "obd", "quadratic", "glass")
GLASS_COMBINE = ("bound", "gaussian")


class LossChange(NamedTuple):
    """The three terms of R4's predicted loss change, kept separate (arrays of one shape).

    Attributes:
        first: g delta (first order).
        second: 1/2 h delta^2 (diagonal Hessian).
        glass: c sqrt(rho) |delta|^{3/2} (R4's bound on the expected glass size, >= 0).

    Example:
        ``quadratic`` = first + second; ``total`` = quadratic + glass (R4's model M - L):

        >>> import numpy as np
        >>> c = LossChange(np.array([1.0]), np.array([2.0]), np.array([0.5]))
        >>> float(c.quadratic[0]), float(c.total[0])
        (3.0, 3.5)
    """

    first: Any
    second: Any
    glass: Any

    @property
    def quadratic(self):
        """first + second: the quadratic (Taylor-2, diagonal) prediction Q, the mean change."""
        return self.first + self.second

    @property
    def total(self):
        """first + second + glass: R4's pessimistic model M(delta) - L(nu)."""
        return self.first + self.second + self.glass


def _glass_term(xp, d, r):
    # R4: c sqrt(rho) |delta|^{3/2}, per element (its sum is loss_deviation_bound(delta, rho)).
    return glass_term(xp, r, three_halves(xp, d))


def loss_change(delta, g, h, rho) -> LossChange:
    """Per-element predicted loss change for a move delta, the three terms of R4 separately.

    first = g delta, second = 1/2 h delta^2, glass = c sqrt(rho) |delta|^{3/2}, c =
    GLASS_COEFF = sqrt(2/(3 pi)) (docs/spec/math.md#r4-expected-loss-deviation-bound); the sum
    of ``glass`` over elements is ``loss_deviation_bound(delta, rho)``. h may be negative (a
    noisy or indefinite diagonal estimate); g, h, rho may be Python numbers.

    Args:
        delta: the move (an array; its namespace is used).
        g: gradient at the point.
        h: Hessian diagonal (or curvature estimate) at the point.
        rho: glass density (>= 0).

    Returns:
        A :class:`LossChange` of arrays of delta's shape.

    Raises:
        ValueError: a negative rho or mismatched shapes. TypeError: non-floating arrays.

    Example:
        delta = 4, g = 1, h = 0.5, rho = 1: first 4, second 4, glass 8 c:

        >>> import numpy as np
        >>> from alice_ref.maths.bounds import GLASS_COEFF
        >>> t = loss_change(np.array([4.0]), 1.0, 0.5, 1.0)
        >>> float(t.first[0]), float(t.second[0]), float(t.glass[0] / GLASS_COEFF)
        (4.0, 4.0, 8.0)
    """
    xp, (d, gg, hh, r) = prepare(delta=delta, g=g, h=h, rho=rho)
    check_nonnegative("rho", r)
    return LossChange(gg * d, 0.5 * hh * d * d, _glass_term(xp, d, r))


def pruning_change(theta, g, h, rho) -> LossChange:
    """Predicted loss change of setting each weight to zero alone: :func:`loss_change` at
    delta = -theta (R4).

    first = -g theta, second = 1/2 h theta^2 (Optimal Brain Damage's saliency), glass =
    c sqrt(rho) |theta|^{3/2}.

    Args:
        theta: the weights.
        g: gradient.
        h: Hessian diagonal.
        rho: glass density (>= 0).

    Returns:
        A :class:`LossChange` of theta's shape.

    Example:
        >>> import numpy as np
        >>> t = pruning_change(np.array([2.0]), 1.0, 1.0, 0.0)
        >>> float(t.first[0]), float(t.second[0]), float(t.glass[0])
        (-2.0, 2.0, 0.0)
    """
    xp, (th,) = prepare(theta=theta)
    return loss_change(-th, g, h, rho)


def uniform_rounding_moments(step):
    """E delta^2 and E|delta|^{3/2} of the rounding error delta ~ U(-D/2, D/2), D = step.

    With a = D/2, E|delta|^p = a^p / (p + 1): E delta^2 = D^2 / 12 and E|delta|^{3/2} =
    (2/5) (D/2)^{3/2} (module docstring; used by R4's expected quantization terms).

    Args:
        step: the grid step D (an array, >= 0).

    Returns:
        (E delta^2, E|delta|^{3/2}), arrays of step's shape.

    Raises:
        ValueError: a negative step.

    Example:
        D = 2: a = 1, so E delta^2 = 1/3 and E|delta|^{3/2} = 2/5:

        >>> import numpy as np
        >>> m2, m32 = uniform_rounding_moments(np.array([2.0]))
        >>> float(m2[0]) == 4 / 12, float(m32[0]) == 0.4
        (True, True)
    """
    xp, (d,) = prepare(step=step)
    check_nonnegative("step", d)
    a = d / 2.0
    return a * a / 3.0, 0.4 * a * xp.sqrt(a)


def quantization_change(step, g, h, rho) -> LossChange:
    """Expected terms of the loss change of rounding to a grid of step D (R4).

    delta ~ U(-D/2, D/2) independent of g: first = E[g delta] = 0, second = 1/2 h E delta^2 =
    h D^2 / 24, glass = c sqrt(rho) E|delta|^{3/2} = (2/5) c sqrt(rho) (D/2)^{3/2}
    (:func:`uniform_rounding_moments`). The glass entry is R4's bound on E|X| averaged over the
    rounding error; the true change of one rounding has a random sign.

    Args:
        step: the grid step D per element (an array, >= 0).
        g: gradient (only its shape matters: E[g delta] = 0).
        h: Hessian diagonal.
        rho: glass density (>= 0).

    Returns:
        A :class:`LossChange` of step's shape (``first`` is zero).

    Raises:
        ValueError: a negative step or rho, mismatched shapes.

    Example:
        D = 2, h = 3, rho = 1: second = 3 * 4 / 24 = 0.5, glass = 0.4 c:

        >>> import numpy as np
        >>> from alice_ref.maths.bounds import GLASS_COEFF
        >>> t = quantization_change(np.array([2.0]), 5.0, 3.0, 1.0)
        >>> float(t.first[0]), float(t.second[0]), float(t.glass[0] / GLASS_COEFF)
        (0.0, 0.5, 0.4)
    """
    xp, (d, gg, hh, r) = prepare(step=step, g=g, h=h, rho=rho)
    check_nonnegative("rho", r)
    m2, m32 = uniform_rounding_moments(d)
    return LossChange(xp.zeros_like(d + gg), 0.5 * hh * m2, glass_term(xp, r, m32))


def group_change(change: LossChange, axis=None, glass: str = "bound") -> LossChange:
    """Predicted change of moving a group of elements together (a row, a channel, a layer).

    first and second are summed over ``axis`` (the diagonal model: no cross terms); the glass
    terms combine as R4's bound, sum_i glass_i (``glass="bound"``), or, for independent
    Gaussian X_i, as E|sum_i X_i| = c sqrt(sum_i rho_i |delta_i|^3) = sqrt(sum_i glass_i^2)
    (``glass="gaussian"``, never above the bound).

    Args:
        change: per-element terms (:class:`LossChange`).
        axis: axis or tuple of axes to reduce (None: all).
        glass: 'bound' or 'gaussian'.

    Returns:
        A :class:`LossChange` with ``axis`` reduced.

    Raises:
        ValueError: an unknown ``glass``.

    Example:
        Glass terms 3 and 4: bound 7, Gaussian sum 5:

        >>> import numpy as np
        >>> t = LossChange(np.array([1.0, 2.0]), np.array([0.5, 0.5]), np.array([3.0, 4.0]))
        >>> [float(v) for v in group_change(t)], float(group_change(t, glass="gaussian").glass)
        ([3.0, 1.0, 7.0], 5.0)
    """
    check_choice("glass", glass, GLASS_COMBINE)
    xp = array_namespace(change.first, change.second, change.glass)
    gl = change.glass
    g_sum = xp.sum(gl, axis=axis) if glass == "bound" else xp.sqrt(xp.sum(gl * gl, axis=axis))
    return LossChange(xp.sum(change.first, axis=axis), xp.sum(change.second, axis=axis), g_sum)


def score_from_change(change: LossChange, criterion: str, magnitude=None):
    """A criterion's damage score from R4's terms: larger means more damage (keep the weight).

    * 'magnitude': ``magnitude`` itself (|theta| for a weight, sum |theta| for a group);
    * 'first_order': |first| (SNIP-like |g theta|; Taylor channel pruning for a group);
    * 'obd': second (Optimal Brain Damage's 1/2 h theta^2, which assumes g = 0);
    * 'quadratic': first + second (diagonal Taylor-2, the mean change Q);
    * 'glass': first + second + glass (R4's pessimistic model M - L: the glass-aware score).

    Args:
        change: per-element or per-group terms (:class:`LossChange`).
        criterion: one of :data:`CRITERIA`.
        magnitude: the magnitude score (needed for 'magnitude' only).

    Returns:
        The scores.

    Raises:
        ValueError: an unknown criterion, or 'magnitude' without ``magnitude``.

    Example:
        >>> import numpy as np
        >>> t = LossChange(np.array([-1.0]), np.array([2.0]), np.array([0.5]))
        >>> [float(score_from_change(t, c, np.array([7.0]))[0]) for c in CRITERIA]
        [7.0, 1.0, 2.0, 1.0, 1.5]
    """
    check_choice("criterion", criterion, CRITERIA)
    if criterion == "magnitude":
        if magnitude is None:
            raise ValueError("criterion 'magnitude' needs the magnitude argument")
        return magnitude
    if criterion == "first_order":
        return array_namespace(change.first).abs(change.first)
    return predicted_change(change, criterion)


def pruning_saliency(theta, g, h, rho, criterion: str = "glass"):
    """The pruning score of each weight under a criterion: larger means more damage (keep it).

    :func:`score_from_change` of :func:`pruning_change` (delta = -theta, R4) with magnitude
    |theta|: 'magnitude' |theta|; 'first_order' |g theta|; 'obd' 1/2 h theta^2; 'quadratic'
    -g theta + 1/2 h theta^2; 'glass' -g theta + 1/2 h theta^2 + c sqrt(rho) |theta|^{3/2}.

    Args:
        theta: the weights.
        g: gradient.
        h: Hessian diagonal.
        rho: glass density (>= 0).
        criterion: one of :data:`CRITERIA`.

    Returns:
        The scores, of theta's shape.

    Raises:
        ValueError: an unknown criterion, a negative rho, mismatched shapes.

    Example:
        theta = -2, g = 1, h = 1, rho = 0: first = 2, second = 2:

        >>> import numpy as np
        >>> th = np.array([-2.0])
        >>> [float(pruning_saliency(th, 1.0, 1.0, 0.0, c)[0]) for c in CRITERIA]
        [2.0, 2.0, 2.0, 4.0, 4.0]
    """
    check_choice("criterion", criterion, CRITERIA)
    xp, (th,) = prepare(theta=theta)
    return score_from_change(pruning_change(th, g, h, rho), criterion, xp.abs(th))


def predicted_change(change: LossChange, criterion: str):
    """The loss change a criterion predicts from R4's terms, or None ('magnitude' predicts none).

    'first_order': first; 'obd': second; 'quadratic': first + second; 'glass': first + second
    + glass (R4's model M - L: the mean change plus the expected size of the glass deviation).

    Args:
        change: per-element or per-group terms (:class:`LossChange`).
        criterion: one of :data:`CRITERIA`.

    Returns:
        An array, or None for 'magnitude'.

    Raises:
        ValueError: an unknown criterion.

    Example:
        >>> import numpy as np
        >>> t = LossChange(np.array([1.0]), np.array([2.0]), np.array([0.5]))
        >>> [None if (p := predicted_change(t, c)) is None else float(p[0]) for c in CRITERIA]
        [None, 1.0, 2.0, 3.0, 3.5]
    """
    check_choice("criterion", criterion, CRITERIA)
    return {"magnitude": None, "first_order": change.first, "obd": change.second,
            "quadratic": change.quadratic, "glass": change.total}[criterion]


def quantization_sensitivity(step, g, h, rho, criterion: str = "glass"):
    """Per-element expected damage of rounding to a grid of step D under a criterion (R4).

    With delta ~ U(-D/2, D/2) (:func:`uniform_rounding_moments`):

    * 'magnitude': E delta^2 = D^2 / 12 (the unweighted rounding-noise power; no curvature);
    * 'first_order': E|g delta| = |g| D / 4;
    * 'obd' and 'quadratic': 1/2 h E delta^2 = h D^2 / 24 (HAWQ-style: curvature times noise
      power; E[g delta] = 0, so the two coincide);
    * 'glass': h D^2 / 24 + (2/5) c sqrt(rho) (D/2)^{3/2} (:func:`quantization_change`, total).

    Summed over a layer, this is the layer's sensitivity at that step.

    Args:
        step: grid step D per element (array, >= 0).
        g: gradient. h: Hessian diagonal. rho: glass density (>= 0).
        criterion: one of :data:`CRITERIA`.

    Returns:
        An array of step's shape.

    Raises:
        ValueError: an unknown criterion, a negative step or rho.

    Example:
        D = 2, g = -1, h = 3, rho = 0:

        >>> import numpy as np
        >>> D = np.array([2.0])
        >>> [round(float(quantization_sensitivity(D, -1.0, 3.0, 0.0, c)[0]), 6)
        ...  for c in CRITERIA]
        [0.333333, 0.5, 0.5, 0.5, 0.5]
    """
    check_choice("criterion", criterion, CRITERIA)
    xp, (d, gg) = prepare(step=step, g=g)
    t = quantization_change(d, g, h, rho)
    if criterion == "magnitude":
        return uniform_rounding_moments(d)[0]
    if criterion == "first_order":
        return xp.abs(gg) * d / 4.0  # E|delta| = a / 2 = D / 4
    return t.second if criterion in ("obd", "quadratic") else t.total


def estimates_from_state(state, curvature: str = "abs") -> tuple:
    """(theta, g, h, rho) per parameter from an Alice state: (mu, G, H, R).

    mu is the centre (the reported weights), G the gradient average, H the curvature average
    and R the glass-density average (R3; docs/spec/algorithm.md#state). For
    ``curvature="rms"`` Alice's H averages h^2, so h = sqrt(H). Any object with the fields
    ``mu, G, H, R`` (tuples of arrays) works: this layer does not import the optimiser core.

    Args:
        state: an ``alice_ref.AliceState`` (or any object with mu, G, H, R).
        curvature: the state's curvature mode, 'abs' or 'rms'.

    Returns:
        (thetas, gs, hs, rhos): four lists with one array per parameter.

    Raises:
        ValueError: an unknown curvature mode. TypeError: a state without those fields.

    Example:
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> s = SimpleNamespace(mu=(np.ones(2),), G=(np.zeros(2),), H=(np.full(2, 4.0),),
        ...                     R=(np.ones(2),))
        >>> [float(x[0][0]) for x in estimates_from_state(s, "rms")]
        [1.0, 0.0, 2.0, 1.0]
    """
    check_choice("curvature", curvature, ("abs", "rms"))
    try:
        fields = [list(getattr(state, k)) for k in ("mu", "G", "H", "R")]
    except (AttributeError, TypeError) as e:
        raise TypeError(f"state must have fields mu, G, H, R (an AliceState), got "
                        f"{type(state).__name__}") from e
    for k, arrs in zip(("mu", "G", "H", "R"), fields):
        if not all(is_array_api_obj(a) for a in arrs):
            raise TypeError(f"state.{k} must hold arrays")
    if curvature == "rms":
        fields[2] = [array_namespace(a).sqrt(a) for a in fields[2]]
    return tuple(fields)
