"""One parameter's update, elementwise and traceable (betas may be arrays), R3 and R5-R7.

docs/spec/algorithm.md#one-batch, steps 3-5: :func:`ema`, :func:`absorb_gradient` (step 3-4,
G and V), :func:`absorb_curvature` (step 3, Alg. 2: H and R from the three-point kernel of R3),
:func:`alice_step` / :func:`alice_update` (step 5, Alg. 3: the bounded optimal step of R5, R6 and
the look-ahead of R7). :mod:`alice_ref.core.batch` applies them to a whole state; the engines
(:mod:`alice_ref.engines`) transliterate them.
"""

from __future__ import annotations

from alice_ref._xp import array_namespace, is_array_api_obj
from alice_ref.core.config import HESS_COMPS, AliceConfig
from alice_ref.maths.estimators import curvature_magnitude, glass_density
from alice_ref.maths.step import _bounded_step

__all__ = ["ema", "absorb_gradient", "absorb_curvature", "alice_update", "alice_step"]


def ema(S, x, beta):
    """Exponential moving average EMA_beta(S, x) = x + beta (S - x).

    The EMA of docs/spec/algorithm.md#one-batch.

    Equals beta S + (1 - beta) x. With the bias-corrected weight beta_t = min(beta, (t-1)/t)
    the first sample (t = 1, weight 0) replaces S, and while (t-1)/t < beta the result is the
    running mean of the samples. Elementwise on numbers or arrays (beta may be a traced array);
    nothing is checked.

    Args:
        S: the current average.
        x: the new sample.
        beta: the weight of the old average, in [0, 1).

    Returns:
        The new average (S and x broadcast).

    Example:
        Half way, no memory (the weight of batch 1), and three quarters:

        >>> ema(1.0, 3.0, 0.5), ema(1.0, 3.0, 0.0), ema(1.0, 3.0, 0.75)
        (2.0, 3.0, 1.5)
    """
    return x + beta * (S - x)


def absorb_gradient(G, V, g_zero, nu, beta1, beta2, w1: float = 0.0, w2: float = 0.0):
    """Absorb g0 into the gradient averages of one parameter.

    docs/spec/algorithm.md#one-batch, steps 3-4; on a sample step, Alg. 2, steps 9-11 (the V
    and G averages).

    G' = EMA_beta1(G, g0 + w1 s(nu) + w2 nu) with s(nu) = -1 where nu < 0, else +1 (the L1 and
    L2 regularisation gradients at nu); V' = EMA_beta2(V, g0^2) uses the raw gradient.
    Elementwise and traceable (beta1, beta2 may be arrays); nothing is checked.

    Args:
        G: the gradient average.
        V: the squared-gradient average.
        g_zero: the gradient g0 = g(nu) of this batch.
        nu: the evaluation point (for the regularisation terms).
        beta1: the batch's gradient weight (Schedule.beta1).
        beta2: the batch's squared-gradient weight (Schedule.beta2).
        w1: L1 regularisation weight.
        w2: L2 regularisation weight.

    Returns:
        The pair (G', V').

    Example:
        Batch 1 (weights 0) with L1 and L2 regularisation:

        >>> import numpy as np
        >>> g0, nu, z = np.array([1.0, -2.0, 0.0]), np.array([-1.0, 0.0, 2.0]), np.zeros(3)
        >>> G, V = absorb_gradient(z, z, g0, nu, 0.0, 0.0, w1=0.5, w2=0.25)
        >>> G.tolist(), V.tolist()  # G = g0 + 0.5 s(nu) + 0.25 nu; V = g0^2 (no regulariser)
        ([0.25, -1.5, 1.0], [1.0, 4.0, 0.0])
    """
    xp = array_namespace(G)
    g = g_zero
    if w1 != 0.0:
        one = xp.ones_like(nu)
        g = g + w1 * xp.where(nu < 0, -one, one)
    if w2 != 0.0:
        g = g + w2 * nu
    return ema(G, g, beta1), ema(V, g_zero * g_zero, beta2)


def absorb_curvature(H, R, g_plus, g_minus, g_zero, sigma: float, beta3, hess_comp: str = "abs",
                     w2: float = 0.0, *, d_plus=None, d_minus=None):
    """Absorb a sample step's curvature and glass samples of one parameter (R3).

    docs/spec/algorithm.md#one-batch, step 3; Alg. 2, steps 5-6 (H) and steps 7-11 (R).

    h_hat = (g+ - g-)/(2 sigma); H' = EMA_beta3(H, |h_hat| + w2) for 'abs' and 'zero' (which
    still tracks H), or EMA_beta3(H, h_hat^2 + w2^2) for 'rms'; R' = EMA_beta3(R, rho_hat) with
    rho_hat = 2 (gbar - g0)^2 / sigma, gbar = (g+ + g-)/2 (the three-point kernel of R3,
    unbiased for rho under R1).

    Realised displacements (an extension for probe points that are rounded when stored, e.g.
    bfloat16 parameters with float32 state): with ``d_plus`` and ``d_minus`` the points are
    nu + d+ z and nu - d- z (d+- >= 0: the stored point minus nu, in units of |z| = 1, per
    element; scalars or arrays, traced allowed) and sigma is not used. The secant slope is
    h_hat = (g+ - g-)/(d+ + d-); the three-point kernel of R3 on the unequal offsets
    (-d-, 0, d+) that annihilates constant and linear terms is D = (d- g+ + d+ g-)/(d+ + d-) - g0,
    with Var D = rho d+ d- / (d+ + d-) under R1 (two independent walks), so
    rho_hat = D^2 (d+ + d-)/(d+ d-) is unbiased. Where d+ = d- the formulas are evaluated as the
    default path's ((g+ + g-)/2, 2 D^2 / d), so d+ = d- = sigma gives the default bits. An
    element whose points coincide with nu carries no sample: H is kept where d+ + d- = 0, R
    where d+ d- = 0.

    Args:
        H: the curvature average.
        R: the glass density average.
        g_plus: g(nu + sigma z).
        g_minus: g(nu - sigma z).
        g_zero: g(nu).
        sigma: the perturbation length (> 0).
        beta3: the batch's curvature weight (Schedule.beta3).
        hess_comp: 'zero', 'abs' or 'rms' ('zero' tracks H as 'abs' does).
        w2: L2 regularisation weight (its curvature is added to the sample).
        d_plus: optional realised displacement of the + point (with d_minus; see above).
        d_minus: optional realised displacement of the - point (with d_plus).

    Returns:
        The pair (H', R').

    Raises:
        ValueError: an unknown hess_comp, sigma <= 0, gradients of different shapes, or only
            one of d_plus, d_minus.
        TypeError: sigma is not a real number, or a gradient is not a floating array.

    Example:
        Batch 1 (weight 0), so the averages are the samples:

        >>> import numpy as np
        >>> gp, gm, g0 = np.array([3.0, 1.0]), np.array([1.0, 1.0]), np.array([1.0, 0.0])
        >>> z = np.zeros(2)
        >>> H, R = absorb_curvature(z, z, gp, gm, g0, 0.5, 0.0)
        >>> H.tolist(), R.tolist()  # |gp - gm| / (2 sigma); 2 ((gp + gm)/2 - g0)^2 / sigma
        ([2.0, 0.0], [4.0, 4.0])
        >>> absorb_curvature(z, z, gp, gm, g0, 0.5, 0.0, "rms", w2=0.5)[0].tolist()
        [4.25, 0.25]

        Realised displacements: points at nu + 0.25 z and nu - 0.75 z of g = 2 x (H = 2, no
        glass) give back H = 2 and R = 0 exactly; coinciding points carry no sample:

        >>> gp, gm, g0 = np.array([0.5, 0.0]), np.array([-1.5, 0.0]), np.array([0.0, 0.0])
        >>> d_plus, d_minus = np.array([0.25, 0.0]), np.array([0.75, 0.0])
        >>> H, R = absorb_curvature(z + 9, z + 9, gp, gm, g0, 0.5, 0.0, d_plus=d_plus,
        ...                         d_minus=d_minus)
        >>> H.tolist(), R.tolist()  # element 1: both points are nu, H and R kept (9)
        ([2.0, 9.0], [0.0, 9.0])
    """
    if hess_comp not in HESS_COMPS:
        raise ValueError(f"hess_comp must be one of {HESS_COMPS}, got {hess_comp!r}")
    if (d_plus is None) != (d_minus is None):
        raise ValueError("d_plus and d_minus must be given together (or neither)")
    if d_plus is not None:
        return _absorb_curvature_realised(H, R, g_plus, g_minus, g_zero, d_plus, d_minus,
                                          beta3, hess_comp, w2)
    if hess_comp == "rms":
        h = curvature_magnitude(g_plus, g_minus, sigma, "rms") + w2 * w2
    else:
        h = curvature_magnitude(g_plus, g_minus, sigma, "abs") + w2
    return ema(H, h, beta3), ema(R, glass_density(g_plus, g_minus, g_zero, sigma), beta3)


def _absorb_curvature_realised(H, R, gp, gm, g0, dp, dm, beta3, hess_comp, w2):
    """absorb_curvature on realised displacements d+, d- (see its docstring; R3 on the offsets
    (-d-, 0, d+)). Elementwise and traceable; where d+ = d- it is the default path's formula."""
    xp = array_namespace(H, gp)
    dp = xp.asarray(dp, dtype=gp.dtype) if not is_array_api_obj(dp) else dp
    dm = xp.asarray(dm, dtype=gp.dtype) if not is_array_api_obj(dm) else dm
    span, prod = dp + dm, dp * dm
    has_h, has_r, equal = span > 0, prod > 0, dp == dm
    one = xp.ones_like(span)
    # denominators made safe where the element carries no sample (no 0/0 is ever computed);
    # unchanged (bit for bit) where it does
    span_s, prod_s, dp_s = (xp.where(ok, x, one) for ok, x in
                            ((has_h, span), (has_r, prod), (has_r, dp)))
    h = (gp - gm) / span_s  # the secant slope; (g+ - g-)/(2 sigma) for d+ = d- = sigma
    h = xp.abs(h) + w2 if hess_comp != "rms" else h * h + w2 * w2
    # the kernel that annihilates constant and linear terms on (-d-, 0, d+)
    D = xp.where(equal, (gp + gm) / 2.0, (dm * gp + dp * gm) / span_s) - g0
    rho = xp.where(equal, 2.0 * D * D / dp_s, D * D * span / prod_s)  # Var D = rho d+ d-/span
    return xp.where(has_h, ema(H, h, beta3), H), xp.where(has_r, ema(R, rho, beta3), R)


def alice_update(mu, G, V, H, R, config: AliceConfig, lr: float | None = None):
    """State update of one parameter (R5, R6, R7): returns (mu', nu').

    docs/spec/algorithm.md#one-batch, step 5; Alg. 3, steps 1-10.

    h = 0 ('zero'), H ('abs') or sqrt(H) ('rms'); rho = R if grad_glass else 0;
    alpha = (3/(4 pi)) rho / (|G| + eps), h_opt = h + alpha + sqrt(alpha (alpha + 2h)) + eps and
    d = |G| / h_opt (R5); d is clipped to [tau_lo f, tau_hi f] with f = 1, |G| or
    |G| / (sqrt(V) + eps) for 'fixed', 'sgdm', 'adam' (R6; a NaN d becomes the upper bound);
    delta = -d where G > 0, else +d; mu' = mu + phi delta, nu' = mu + omega delta (R7: phi =
    1 - beta1 makes the look-ahead exact for omega = 1). The inputs are trusted (AliceConfig
    and the driver check them) so that the function stays traceable: it raises nothing itself.

    Args:
        mu: the centre of one parameter.
        G: its gradient average.
        V: its squared-gradient average.
        H: its curvature average.
        R: its glass density average.
        config: the hyperparameters (hess_comp, grad_glass, limit_method, eps, phi, omega and
            the bounds).
        lr: the current learning rate for :meth:`AliceConfig.bounds` (None: config.lr).

    Returns:
        The pair (mu', nu').

    Example:
        Without glass the step is Newton's |G|/H, clipped to the R6 bounds:

        >>> import numpy as np
        >>> c = AliceConfig(lr=0.5, betas=(0.5, 0.999), limit_method="fixed", grad_glass=False)
        >>> mu, V, R = np.zeros(2), np.zeros(2), np.zeros(2)
        >>> G, H = np.array([2.0, -8.0]), np.array([4.0, 1.0])
        >>> mu1, nu1 = alice_update(mu, G, V, H, R, c)  # d = |G|/H = (0.5, 8), clipped at 2 lr
        >>> mu1.round(6).tolist(), nu1.round(6).tolist()  # phi = 1 - beta1 = 0.5, omega = 1
        ([-0.25, 0.5], [-0.5, 1.0])
    """
    delta = alice_step(G, V, H, R, config, lr)
    return mu + config.phi * delta, mu + config.omega * delta


def alice_step(G, V, H, R, config: AliceConfig, lr: float | None = None):
    """The step delta of :func:`alice_update` (R5, R6): -sign(G) d, d = |G| / h_opt clipped.

    alice_update returns (mu + phi delta, mu + omega delta) with this delta (R7); compilers
    that would otherwise recompute the step for each of the two outputs (XLA on CPU) can
    materialise it once.

    Args:
        G: gradient average of one parameter.
        V: squared-gradient average.
        H: curvature average.
        R: glass density average.
        config: the hyperparameters.
        lr: the current learning rate for the bounds (None: config.lr).

    Returns:
        delta, an array like G.

    Example:
        Newton's |G|/H (up to eps) with the sign of -G, clipped at lr_max = 2 lr = 1:

        >>> import numpy as np
        >>> c = AliceConfig(lr=0.5, limit_method="fixed", grad_glass=False)
        >>> z = np.zeros(2)
        >>> alice_step(np.array([2.0, -8.0]), z, np.array([4.0, 1.0]), z, c).round(6).tolist()
        [-0.5, 1.0]
    """
    xp = array_namespace(G)
    zero = xp.zeros_like(G)
    h = zero if config.hess_comp == "zero" else (xp.sqrt(H) if config.hess_comp == "rms" else H)
    rho = R if config.grad_glass else zero
    lo, hi = config.bounds(lr)
    return _bounded_step(xp, G, h, rho, V, lo, hi, config.limit_method, config.eps)
