"""Synthetic landscapes with known truth (docs/spec/math.md#how-each-result-is-verified).

Gradients are checked against central finite differences of the loss (exact for piecewise
quadratics away from kinks), truth attributes against their definitions, and every landscape
against every backend of the ``xp`` fixture (namespace, device, dtype, batch dimensions).
"""

import numpy as np
import pytest
from array_api_compat import array_namespace, device
from helpers import to_np

from alice_ref.landscapes import Quadratic, ReluTeacherStudent, SeparableGlass


def central_difference(f, x, h=1e-6):
    out = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        out[i] = (f(x + e) - f(x - e)) / (2 * h)
    return out


LANDSCAPES = {
    "separable": lambda: SeparableGlass(6, lam=5.0, s=[0.5, 1, 2, 1, 1, 3], h=[0, 1, 2, 0.5, 0, 1],
                                        b=[1, -1, 0, 2, 0, 0.5], seed=1),
    "quadratic": lambda: Quadratic(6, seed=2),
    "relu": lambda: ReluTeacherStudent(3, 4, teacher_hidden=3, n_samples=32, seed=3),
}


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_gradient_matches_finite_differences(name):
    """Landscapes: grad is the derivative of loss (central differences, away from kinks)."""
    land = LANDSCAPES[name]()
    rng = np.random.default_rng(4)
    x = land.init_params() if name == "relu" else rng.uniform(-2, 2, land.n)
    np.testing.assert_allclose(land.grad(x), central_difference(land.loss, x), rtol=1e-6,
                               atol=1e-6)


def test_separable_glass_truth():
    """Landscapes: rho = lam s^2, hess_diag = h; no glass outside the box: below it
    g = b + h theta, above it g = b + h theta + (sum of all jumps), a constant offset."""
    lam, s = np.array([3.0, 10.0]), np.array([2.0, 0.5])
    land = SeparableGlass(2, lam=lam, s=s, h=[1.0, 2.0], b=[0.5, -1.0], box=(-1, 1), seed=5)
    np.testing.assert_array_equal(land.rho, lam * s ** 2)
    np.testing.assert_array_equal(land.hess_diag, [1.0, 2.0])
    np.testing.assert_allclose(land.smooth_grad(np.array([0.3, 0.4])), [0.5 + 0.3, -1.0 + 0.8],
                               rtol=1e-15)
    for x in (np.array([-3.0, -1.5]), np.array([-1.0, -1.0])):
        np.testing.assert_allclose(land.grad(x), land.b + land.hess_diag * x, rtol=1e-15)
    off = [land.grad(x) - land.smooth_grad(x) for x in (np.array([1.0, 1.0]),
                                                        np.array([1.5, 7.0]))]
    np.testing.assert_allclose(off[0], off[1], rtol=1e-13)
    assert np.all(land.n_boundaries > 0)


def test_separable_glass_rademacher_jump_sizes():
    """Landscapes: 'rademacher' jumps have |beta| = s exactly: each kink changes g by +-s."""
    land = SeparableGlass(1, lam=20.0, s=0.7, box=(0, 1), jumps="rademacher", seed=6)
    x = np.linspace(0.0, 1.0, 20001)[:, None]
    g = land.grad(x)[:, 0]
    jumps = np.diff(g)
    nz = np.abs(jumps) > 1e-9
    np.testing.assert_allclose(np.abs(jumps[nz]), 0.7, rtol=1e-12)
    assert nz.sum() == land.n_boundaries[0]


def test_quadratic_truth():
    """Landscapes: Quadratic has symmetric Hessian with eigenvalues in eig_range, gradient
    A theta + b, and minimiser -A^{-1} b where the gradient vanishes."""
    land = Quadratic(7, eig_range=(0.5, 5.0), seed=7)
    A = land.hessian
    np.testing.assert_array_equal(A, A.T)
    ev = np.linalg.eigvalsh(A)
    assert ev.min() >= 0.5 * (1 - 1e-12) and ev.max() <= 5.0 * (1 + 1e-12)
    np.testing.assert_allclose(land.grad(land.minimiser), 0.0, atol=1e-12)
    np.testing.assert_allclose(land.hess_diag, np.diag(A), rtol=0)
    assert np.all(land.rho == 0)
    d = Quadratic(4, diagonal=True, seed=1)
    np.testing.assert_array_equal(d.hessian, np.diag(np.diag(d.hessian)))


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_batch_dimensions(name):
    """Landscapes: leading batch dimensions give the row-by-row results."""
    land = LANDSCAPES[name]()
    rng = np.random.default_rng(8)
    X = rng.uniform(-1, 1, (2, 3, land.n))
    L, G = land.loss(X), land.grad(X)
    assert L.shape == (2, 3) and G.shape == (2, 3, land.n)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(L[i, j], land.loss(X[i, j]), rtol=1e-13)
            np.testing.assert_allclose(G[i, j], land.grad(X[i, j]), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_namespace_device_dtype(xp, name, dtype):
    """Landscapes: loss and grad answer in the caller's namespace, device and dtype."""
    land = LANDSCAPES[name]()
    dt = getattr(xp, dtype)
    x = np.random.default_rng(9).uniform(-1, 1, land.n)
    th = xp.asarray(x, dtype=dt)
    for out, ref in ((land.grad(th), land.grad(x)), (land.loss(th), land.loss(x))):
        assert array_namespace(out) is array_namespace(th)
        assert out.dtype == dt and device(out) == device(th)
        np.testing.assert_allclose(to_np(out), ref, rtol=1e-6 if dtype == "float32" else 1e-15,
                                   atol=1e-6 if dtype == "float32" else 0)


def test_to_moves_truth_arrays(xp):
    """Landscapes: to(xp) returns a copy whose truth arrays live in xp; the original is NumPy."""
    land = Quadratic(3, seed=1)
    moved = land.to(xp)
    for name in ("hessian", "hess_diag", "rho", "b", "minimiser"):
        assert array_namespace(getattr(moved, name)) is array_namespace(xp.asarray([1.0]))
        np.testing.assert_array_equal(to_np(getattr(moved, name)), getattr(land, name))
        assert isinstance(getattr(land, name), np.ndarray)
    glass = SeparableGlass(3, seed=1).to(xp)
    assert array_namespace(glass.rho) is array_namespace(xp.asarray([1.0]))


def test_seeded_reproducible():
    """Landscapes: the same seed gives the same landscape, another seed another one."""
    a, b, c = (SeparableGlass(3, lam=20.0, seed=s) for s in (1, 1, 2))
    x = np.array([0.1, 0.2, -0.3])
    np.testing.assert_array_equal(a.grad(x), b.grad(x))
    assert not np.array_equal(a.grad(x), c.grad(x))
    r1, r2 = ReluTeacherStudent(seed=4), ReluTeacherStudent(seed=4)
    np.testing.assert_array_equal(r1.grad(r1.init_params()), r2.grad(r2.init_params()))


def test_relu_minibatch_gradient():
    """Landscapes: ReluTeacherStudent's full gradient is the mean of per-sample gradients."""
    land = ReluTeacherStudent(3, 4, teacher_hidden=3, n_samples=16, seed=3)
    x = land.init_params()
    per = np.mean([land.grad(x, batch=np.array([k])) for k in range(16)], axis=0)
    np.testing.assert_allclose(land.grad(x), per, rtol=1e-12, atol=1e-15)
    halves = (land.grad(x, batch=np.arange(8)) + land.grad(x, batch=np.arange(8, 16))) / 2
    np.testing.assert_allclose(land.grad(x), halves, rtol=1e-12, atol=1e-15)
