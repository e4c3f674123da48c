"""Bad input: every core function raises ValueError or TypeError naming the argument
(docs/spec/design.md#house-rules), on every backend for array arguments."""

import math

import numpy as np
import pytest

import alice_ref as ar
from alice_ref.landscapes import Quadratic, ReluTeacherStudent, SeparableGlass


def f64(xp, v):
    return xp.asarray(np.asarray(v, dtype=np.float64))


BAD_SIGMAS = [(0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
              ("0.1", TypeError), (True, TypeError), (None, TypeError)]


@pytest.mark.parametrize("sigma, err", BAD_SIGMAS)
def test_bad_sigma(xp, sigma, err):
    """R2/R3: sigma must be a real number > 0."""
    g = f64(xp, [1.0, 2.0])
    for call in (lambda: ar.hessian_diag(g, g, g, sigma),
                 lambda: ar.curvature_magnitude(g, g, sigma),
                 lambda: ar.glass_density(g, g, g, sigma),
                 lambda: ar.glass_density_from_line([-1, 0, 1], [g, g, g], sigma)):
        with pytest.raises(err, match="sigma"):
            call()


def test_array_arguments_type_shape_dtype(xp):
    """Core: non-arrays, non-floating arrays and mismatched shapes are named."""
    g, g3 = f64(xp, [1.0, 2.0]), f64(xp, [1.0, 2.0, 3.0])
    ints = xp.asarray([1, 2])
    with pytest.raises(TypeError, match="g_plus"):
        ar.hessian_diag([1.0, 2.0], g, g, 1.0)
    with pytest.raises(TypeError, match="g_plus"):
        ar.hessian_diag(ints, g, g, 1.0)
    with pytest.raises(TypeError, match="g_minus"):
        ar.curvature_magnitude(g, ints, 1.0)
    with pytest.raises(ValueError, match="z"):
        ar.hessian_diag(g, g, g3, 1.0)
    with pytest.raises(ValueError, match="g_zero"):
        ar.glass_density(g, g, g3, 1.0)
    with pytest.raises(TypeError, match="u"):
        ar.rademacher_from_uniform([0.1, 0.7])
    with pytest.raises(ValueError, match="rho"):
        ar.loss_deviation_bound(g, g3)
    with pytest.raises(ValueError, match="h"):
        ar.effective_curvature(g, g3, g)
    with pytest.raises(TypeError, match="rho"):
        ar.optimal_step(g, g, "rho")
    with pytest.raises(ValueError, match="v"):
        ar.bounded_step(g, g, g, g3, 0.0, 1.0)


def test_negative_curvature_density_and_moments(xp):
    """R4/R5/R6: h, rho, v and lr_min must be >= 0 (named)."""
    g, neg = f64(xp, [1.0, 2.0]), f64(xp, [1.0, -2.0])
    with pytest.raises(ValueError, match="rho"):
        ar.loss_deviation_bound(g, neg)
    with pytest.raises(ValueError, match=r"h must be >= 0 .*min -2\.0"):  # names the value
        ar.effective_curvature(g, neg, g)
    with pytest.raises(ValueError, match="rho"):
        ar.optimal_step(g, g, neg)
    for name, args in (("h", (g, neg, g, g)), ("rho", (g, g, neg, g)), ("v", (g, g, g, neg))):
        with pytest.raises(ValueError, match=name):
            ar.bounded_step(*args, 0.0, 1.0)
    with pytest.raises(ValueError, match="lr_min"):
        ar.bounded_step(g, g, g, g, -0.1, 1.0)
    with pytest.raises(ValueError, match="lr_max"):
        ar.bounded_step(g, g, g, g, 0.5, 0.1)


@pytest.mark.parametrize("eps, err", [(-1e-8, ValueError), (math.nan, ValueError),
                                      ("1e-8", TypeError), (None, TypeError)])
def test_bad_eps(eps, err):
    """R5/R6: eps must be a real number >= 0."""
    g = np.array([1.0])
    with pytest.raises(err, match="eps"):
        ar.effective_curvature(g, g, g, eps=eps)
    with pytest.raises(err, match="eps"):
        ar.optimal_step(g, g, g, eps=eps)
    with pytest.raises(err, match="eps"):
        ar.bounded_step(g, g, g, g, 0.0, 1.0, eps=eps)


def test_bad_modes(xp):
    """R3/R6: mode, limit and the Adam second moment are checked."""
    g = f64(xp, [1.0])
    with pytest.raises(ValueError, match="mode"):
        ar.curvature_magnitude(g, g, 1.0, "square")
    with pytest.raises(ValueError, match="limit"):
        ar.bounded_step(g, g, g, g, 0.0, 1.0, limit="sgd")
    with pytest.raises(ValueError, match="v is required"):
        ar.bounded_step(g, g, g, None, 0.0, 1.0, limit="adam")


def test_rademacher_variance_input():
    """R2: fourth_moment >= 1, H square and symmetric."""
    H = np.eye(2)
    for m4 in (0.5, math.nan, -1.0):
        with pytest.raises(ValueError, match="fourth_moment"):
            ar.rademacher_variance(H, m4)
    with pytest.raises(ValueError, match="square"):
        ar.rademacher_variance(np.ones((2, 3)))
    with pytest.raises(ValueError, match="square"):
        ar.rademacher_variance(np.ones(3))
    with pytest.raises(ValueError, match="symmetric"):
        ar.rademacher_variance(np.array([[1.0, 2.0], [0.0, 1.0]]))
    for m4 in ("3", None):
        with pytest.raises(TypeError, match="fourth_moment"):
            ar.rademacher_variance(H, m4)


@pytest.mark.parametrize("offsets, order, match", [
    ((0.0, 1.0), 1, "degree of freedom"),
    ((-1.0, 0.0, 1.0), 2, "degree of freedom"),
    ((1.0,), 0, "degree of freedom"),
    ((0.0, 0.0, 1.0), 1, "sees no glass"),
    ((0.0, 0.0, 0.0, 0.0), 0, "sees no glass"),
    ((-1.0, 0.0, 1.0), -1, "order"),
    ((-1.0, 0.0, 1.0), 1.5, "order"),
    ((-1.0, 0.0, 1.0), True, "order"),
    ((-1.0, math.nan, 1.0), 1, "offsets"),
    ((), 0, "offsets"),
])
def test_glass_kernel_bad_designs(offsets, order, match):
    """R3: designs with no degree of freedom, singular N^T C N, bad order or offsets."""
    with pytest.raises(ValueError, match=match):
        ar.glass_kernel(offsets, order)


def test_glass_kernel_bad_offset_types():
    """R3: offsets must be a sequence of numbers."""
    for bad in (3.0, ["a", 0, 1], [None, 0, 1]):
        with pytest.raises(TypeError, match="offsets"):
            ar.glass_kernel(bad)


def test_glass_density_from_line_bad_grads(xp):
    """R3: one gradient per offset, all of one shape."""
    g, g3 = f64(xp, [1.0, 2.0]), f64(xp, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="grads"):
        ar.glass_density_from_line([-1, 0, 1], [g, g], 1.0)
    with pytest.raises(ValueError, match=r"grads\[2\]"):
        ar.glass_density_from_line([-1, 0, 1], [g, g, g3], 1.0)
    with pytest.raises(TypeError, match=r"grads\[0\]"):
        ar.glass_density_from_line([-1, 0, 1], [[1.0], g, g], 1.0)
    with pytest.raises(ValueError, match="degree of freedom"):
        ar.glass_density_from_line([0, 1], [g, g], 1.0)


def test_glass_line_covariance_and_power_law_input():
    """R1: offsets non-empty, 1-D, finite; power-law data positive, >= 3 points, 2 distinct t."""
    for bad in ([], [[1.0, 2.0]], [1.0, math.inf]):
        with pytest.raises(ValueError, match="offsets"):
            ar.glass_line_covariance(bad)
    with pytest.raises(ValueError, match="at least 3"):
        ar.power_law_exponent([1.0, 2.0], [1.0, 4.0])
    with pytest.raises(ValueError, match="same length"):
        ar.power_law_exponent([1.0, 2.0, 3.0], [1.0, 4.0])
    with np.errstate(invalid="ignore", divide="ignore"):
        for t, y in (([1.0, 2.0, 3.0], [1.0, -4.0, 9.0]), ([0.0, 2.0, 3.0], [1.0, 4.0, 9.0])):
            with pytest.raises(ValueError, match="positive"):
                ar.power_law_exponent(t, y)
    with pytest.raises(ValueError, match="distinct"):
        ar.power_law_exponent([2.0, 2.0, 2.0], [1.0, 4.0, 9.0])


def test_nesterov_input():
    """R7: 0 < beta < 1 and omega > 0."""
    for beta in (0.0, 1.0, 1.5, -0.1, math.nan):
        with pytest.raises(ValueError, match="beta"):
            ar.exact_phi(beta, 1.0)
    with pytest.raises(TypeError, match="beta"):
        ar.exact_phi("0.9", 1.0)
    for omega, err in ((0.0, ValueError), (-1.0, ValueError), ("1", TypeError)):
        with pytest.raises(err, match="omega"):
            ar.exact_phi(0.9, omega)


def test_schedule_input():
    """R8: quick_steps an integer >= 0; 0 < beta2 < 1; (q+1)(1 - beta2) < 1; 0 <= beta1 < 1."""
    for q in (-1, 1.5, True, "3", None):
        with pytest.raises(ValueError, match="quick_steps"):
            ar.sample_cost(q)
        with pytest.raises(ValueError, match="quick_steps"):
            ar.curvature_beta(0.999, q)
    for b2 in (0.0, 1.0, 1.2, math.nan):
        with pytest.raises(ValueError, match="beta2"):
            ar.curvature_beta(b2, 0)
    with pytest.raises(TypeError, match="beta2"):
        ar.curvature_beta("0.999", 3)
    with pytest.raises(ValueError, match="quick_steps"):
        ar.curvature_beta(0.5, 1)  # (1+1)(1-0.5) = 1
    for b1 in (1.0, 1.5, -0.5, math.nan):
        with pytest.raises(ValueError, match="beta1"):
            ar.warmup_length(b1)
    with pytest.raises(ValueError, match="quick_steps"):
        ar.is_sample_step(20, 0.9, -2)


def test_landscape_input(xp):
    """Landscapes: constructor arguments and theta's last dimension are checked."""
    for kwargs, match in (({"n": 0}, "n"), ({"jumps": "cauchy"}, "jumps"),
                          ({"box": (1.0, 0.0)}, "box"), ({"lam": -1.0}, "lam"),
                          ({"s": -1.0}, "s"), ({"h": math.nan}, "h"), ({"b": math.inf}, "b"),
                          ({"n": 2.5}, "n must be an integer"), ({"n": "3"}, "n must be"),
                          ({"n": 3, "lam": [1.0, 2.0]}, "lam must be a scalar or 3 values"),
                          ({"n": 3, "s": [1.0, -1.0, 1.0]}, r"s must be >= 0, got \[1.0")):
        with pytest.raises(ValueError, match=match):
            SeparableGlass(**kwargs)
    for kwargs, match in (({"n": 0}, "n"), ({"n": 4.0}, "n must be an integer"),
                          ({"eig_range": (0.0, 1.0)}, "eig_range"),
                          ({"eig_range": (2.0, 1.0)}, "eig_range")):
        with pytest.raises(ValueError, match=match):
            Quadratic(**kwargs)
    for land in (SeparableGlass(3, seed=0), Quadratic(3, seed=0), ReluTeacherStudent(seed=0)):
        with pytest.raises(ValueError, match="theta"):
            land.grad(f64(xp, np.zeros(land.n + 1)))
        with pytest.raises(ValueError, match="theta"):
            land.loss(f64(xp, np.zeros(land.n + 1)))
