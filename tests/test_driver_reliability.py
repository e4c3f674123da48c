"""The NumPy driver under odd inputs (issue "Reliability"): nothing half-changed, and every
error names what the caller passed."""

from __future__ import annotations

import numpy as np
import pytest

import alice_ref as ar
from alice_ref.landscapes import Quadratic

CFG = dict(lr=0.05, betas=(0.5, 0.999), quick_steps=1)


def _run(vg_factory, engine, n_batches=12):
    q = Quadratic(6, seed=2)
    opt = ar.Alice([np.linspace(-1, 1, 6)], seed=4, engine=engine, **CFG)
    vg = vg_factory(q)
    for _ in range(n_batches):
        opt.step(vg)
    return opt


@pytest.mark.parametrize("engine", ["core", None])
def test_a_reused_gradient_buffer_gives_the_fresh_arrays_result(engine):
    """A value_and_grad that writes every gradient into one buffer (as a preallocating model
    does) must give what fresh arrays give: the driver owns g+ and g- as they arrive. Before,
    g+ = g- = g0 silently (H = R = 0)."""
    def fresh(q):
        return lambda p: (q.loss(p[0]), [q.grad(p[0])])

    def reused(q):
        buf = np.empty(6)

        def vg(p):
            buf[...] = q.grad(p[0])
            return q.loss(p[0]), [buf]
        return vg
    a, b = _run(fresh, engine), _run(reused, engine)
    assert float(np.max(a.state.H[0])) > 0  # the quadratic's curvature is seen
    for f in ar.core.FIELDS:
        np.testing.assert_array_equal(getattr(a.state, f)[0], getattr(b.state, f)[0], err_msg=f)


def test_huge_integer_hyperparameters_name_the_argument():
    for name in ("lr", "eps", "w1", "omega", "lr_max"):
        with pytest.raises(ValueError, match=name):
            ar.AliceConfig(**{name: 10 ** 400})


@pytest.mark.parametrize("betas", [{0.9, 0.999}, {0.9: 1, 0.999: 2}, 0.9, None, "ab",
                                   (0.9, 0.999, 0.5)])
def test_betas_must_be_a_pair(betas):
    with pytest.raises(ValueError, match="betas must be a pair"):
        ar.AliceConfig(betas=betas)


def test_gradient_errors_name_the_evaluation_not_internals():
    opt = ar.Alice([np.zeros(2)], **CFG)
    before = opt.state_dict()
    with pytest.raises(ValueError, match=r"grads\[0\] at nu \+ sigma z \(g\+\) has shape \(3,\)"):
        opt.step(lambda p: (0.0, [np.zeros(3)]))
    with pytest.raises(TypeError, match="pair"):
        opt.step(lambda p: 0.0)
    with pytest.raises(TypeError, match="one array per parameter"):
        opt.step(lambda p: (0.0, np.zeros(2)))
    after = opt.state_dict()
    assert before["t"] == after["t"] == 0
    assert before["rng"] == after["rng"]  # the generator is put back too


@pytest.mark.parametrize("hyper", [dict(eps=1e-46), dict(lr=1e-46), dict(lr_max=3.4e38),
                                   dict(w1=1e38), dict(w2=1e38), dict(omega=1e38)])
def test_hyperparameters_are_checked_in_the_state_dtype(hyper):
    """float32 state cannot carry these (0/0 = NaN in H, R or the step, or nu = inf from finite
    gradients); they are refused before anything changes, naming the argument. float64 state
    carries them."""
    name = next(iter(hyper))
    opt = ar.Alice([np.ones(3, np.float32)], **hyper)
    with pytest.raises(ValueError, match=f"{name} = .* float32"):
        opt.step(lambda p: (0.0, [p[0]]))
    assert opt.state.t == 0 and np.array_equal(opt.state.mu[0], np.ones(3))
    ar.Alice([np.ones(3)], **hyper).step(lambda p: (0.0, [p[0]]))  # float64: fine


def test_a_bare_array_is_not_taken_for_a_list_of_rows():
    with pytest.raises(TypeError, match="wrap it in a list"):
        ar.Alice(np.zeros((2, 3)))
    assert ar.Alice([np.zeros((2, 3))]).state.mu[0].shape == (2, 3)


@pytest.mark.parametrize("engine", ["core", None])
def test_half_parameters_use_the_realised_probe_displacement(engine):
    """float16 parameters (float32 state): the probe points are rounded when stored, so H and R
    divide by the distances travelled (alice_ref.core.realised_displacements): on
    L = sum (w - 1)^2 (H = 2, no glass) batch 1 gives H = 2 and R = 0 exactly (with the nominal
    sigma, H was off by the rounding and R spurious)."""
    w = (1.0 + np.array([0.0, 2.0, 1.0, -3.0]) * 2.0 ** -9).astype(np.float16)
    opt = ar.Alice([w], lr=3e-3, betas=(0.5, 0.999), engine=engine)
    opt.step(lambda p: (0.0, [2.0 * (p[0].astype(np.float32) - 1.0)]))
    np.testing.assert_array_equal(opt.state.H[0], np.full(4, 2.0, np.float32))
    np.testing.assert_array_equal(opt.state.R[0], np.zeros(4, np.float32))
