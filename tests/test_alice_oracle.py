"""The Alice core against an obviously-correct scalar transcription of the specification.

:class:`ScalarAlice` below is written from docs/spec/algorithm.md#one-batch, steps 1-6, and the
randomness convention (docs/spec/algorithm.md#reference-compatible-randomness), one Python
float per parameter element, plain loops and the math module. It shares no code with
alice_ref. On random small problems in float64 the core (through the batch driver, on NumPy and
on the strict array-API namespace) must match it to rounding after every batch, for every hess_comp
x grad_glass x limit_method combination, with regularisation, phi and omega off their defaults and
q in {0, 1, 3}; hypothesis draws further random configurations, including learning-rate schedules
with and without scale_bounds_with_lr.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import to_np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alice_ref as ar


class ScalarAlice:
    """docs/spec/algorithm.md#one-batch, transcribed literally for lists of Python floats (one
    list per parameter)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, w1=0.0, w2=0.0, phi=None,
                 omega=1.0, limit_method="adam", lr_min=0.0, lr_max=None,
                 scale_bounds_with_lr=True, hess_comp="abs", grad_glass=True, quick_steps=3):
        self.lr0 = lr
        self.beta1, self.beta2 = betas
        self.eps, self.w1, self.w2, self.omega = eps, w1, w2, omega
        self.phi = 1.0 - self.beta1 if phi is None else phi          # phi: None -> 1 - beta1
        self.limit_method, self.hess_comp, self.grad_glass = limit_method, hess_comp, grad_glass
        self.lr_min = lr_min
        self.lr_max = 2.0 * lr if lr_max is None else lr_max         # lr_max: None -> 2 lr
        self.scale = scale_bounds_with_lr
        # "the ratios lr_min/lr and lr_max/lr are fixed when the optimiser is built"
        self.ratio_lo, self.ratio_hi = self.lr_min / lr, self.lr_max / lr
        self.q = quick_steps
        self.beta3 = 1.0 - (self.q + 1) * (1.0 - self.beta2)
        # State: mu = nu = the parameters, all averages 0, t = 0.
        self.mu = [list(map(float, p)) for p in params]
        self.nu = [list(map(float, p)) for p in params]
        zeros = lambda: [[0.0] * len(p) for p in params]  # noqa: E731
        self.G, self.V, self.H, self.R = zeros(), zeros(), zeros(), zeros()
        self.t = 0

    @staticmethod
    def ema(S, x, beta):
        return x + beta * (S - x)  # EMA_beta(S, x): S <- x + beta (S - x)

    def batch(self, grad, rng, lr=None):
        """One batch. ``grad(list of lists) -> list of lists``; ``rng`` a NumPy Generator used
        as the reference convention uses torch.rand: per parameter in order, u ~ U[0,1),
        z = -1 where u < 0.5 else +1. Returns the number of gradient evaluations."""
        lr = self.lr0 if lr is None else lr
        # 1.
        self.t += 1
        t = self.t
        b1t = min(self.beta1, (t - 1) / t)
        b2t = min(self.beta2, (t - 1) / t)
        b3t = min(self.beta3, (t - 1) / t)
        # 2.
        warmup = t <= 1.0 / (1.0 - self.beta1)
        sample = warmup or t % (self.q + 1) == 0
        n_eval = 0
        if sample:
            # 3.
            sigma = lr
            z = []
            for p in self.nu:
                u = rng.random(size=len(p))
                z.append([-1.0 if float(ui) < 0.5 else 1.0 for ui in u])
            gp = grad([[n + sigma * zi for n, zi in zip(np_, zp)] for np_, zp in zip(self.nu, z)])
            gm = grad([[n - sigma * zi for n, zi in zip(np_, zp)] for np_, zp in zip(self.nu, z)])
            g0 = grad([list(p) for p in self.nu])
            n_eval = 3
            for k in range(len(self.nu)):
                for i in range(len(self.nu[k])):
                    h_hat = (gp[k][i] - gm[k][i]) / (2.0 * sigma)
                    if self.hess_comp == "rms":
                        x = h_hat ** 2 + self.w2 ** 2
                    else:  # 'abs', and also 'zero' (tracked, only the step ignores it)
                        x = abs(h_hat) + self.w2
                    self.H[k][i] = self.ema(self.H[k][i], x, b3t)
                    g_bar = (gp[k][i] + gm[k][i]) / 2.0
                    rho_hat = 2.0 * (g_bar - g0[k][i]) ** 2 / sigma
                    self.R[k][i] = self.ema(self.R[k][i], rho_hat, b3t)
        else:
            # 4.
            g0 = grad([list(p) for p in self.nu])
            n_eval = 1
        for k in range(len(self.nu)):
            for i in range(len(self.nu[k])):
                nu = self.nu[k][i]
                self.V[k][i] = self.ema(self.V[k][i], g0[k][i] ** 2, b2t)
                s = -1.0 if nu < 0 else 1.0
                self.G[k][i] = self.ema(self.G[k][i], g0[k][i] + self.w1 * s + self.w2 * nu, b1t)
        # 5.
        if t > 1.0 / (1.0 - self.beta1):
            if self.scale:
                tau_lo, tau_hi = self.ratio_lo * lr, self.ratio_hi * lr
            else:
                tau_lo, tau_hi = self.lr_min, self.lr_max
            for k in range(len(self.nu)):
                for i in range(len(self.nu[k])):
                    G, V, H, R = self.G[k][i], self.V[k][i], self.H[k][i], self.R[k][i]
                    a = abs(G)
                    rho = R if self.grad_glass else 0.0
                    h = {"zero": 0.0, "abs": H, "rms": math.sqrt(H)}[self.hess_comp]
                    alpha = (3.0 / (4.0 * math.pi)) * rho / (a + self.eps)
                    h_opt = alpha + h + math.sqrt(alpha * (alpha + 2.0 * h)) + self.eps
                    d = a / h_opt
                    f = {"fixed": 1.0, "sgdm": a,
                         "adam": a / (math.sqrt(V) + self.eps)}[self.limit_method]
                    lo, hi = tau_lo * f, tau_hi * f
                    if d < lo:
                        d = lo
                    elif not d < hi:
                        d = hi
                    delta = -d if G > 0 else d
                    mu = self.mu[k][i]
                    self.nu[k][i] = mu + self.omega * delta
                    self.mu[k][i] = mu + self.phi * delta
        return n_eval


class SmoothProblem:
    """A smooth non-quadratic gradient field in pure Python (so R, the even-order part, is not 0):
    g_i(theta) = b_i + h_i theta_i + c_i cos(theta_i) + sum_j A_ij sin(theta_j) (bounded
    nonlinearity, so no run overflows)."""

    def __init__(self, sizes, seed):
        r = np.random.default_rng(seed)
        self.sizes = list(sizes)
        n = sum(self.sizes)
        self.b = r.normal(size=n).tolist()
        self.h = r.uniform(0.2, 3.0, size=n).tolist()
        self.c = r.normal(scale=1.0, size=n).tolist()
        self.A = (r.normal(scale=0.3, size=(n, n))).tolist()
        self.theta0 = r.normal(size=n).tolist()

    def split(self, flat):
        out, o = [], 0
        for s in self.sizes:
            out.append(flat[o:o + s])
            o += s
        return out

    def grad_flat(self, x):
        sx = [math.sin(v) for v in x]
        return [self.b[i] + self.h[i] * x[i] + self.c[i] * math.cos(x[i])
                + sum(self.A[i][j] * sx[j] for j in range(len(x))) for i in range(len(x))]

    def grad_lists(self, params):
        return self.split(self.grad_flat([v for p in params for v in p]))

    def value_and_grad(self, xp):
        def vg(params):
            flat = [float(v) for p in params for v in to_np(p).ravel()]
            return 0.0, [xp.asarray(g, dtype=xp.float64) for g in self.split(self.grad_flat(flat))]
        return vg


def assert_matches(state, oracle, where):
    for f in ("mu", "nu", "G", "V", "H", "R"):
        got = np.concatenate([to_np(x).ravel() for x in getattr(state, f)])
        ref = np.array([v for p in getattr(oracle, f) for v in p])
        # float64 rounding: a few ulps of the array's scale, accumulated over the run
        tol = 1e-11 * (np.abs(ref) + np.max(np.abs(ref), initial=0.0) + 1e-300)
        bad = np.abs(got - ref) > tol
        assert not bad.any(), f"{where}: {f} differs: got {got[bad]}, oracle {ref[bad]}"
    assert state.t == oracle.t


def run_both(xp, problem, hyper, n_batches=20, lrs=None, seed=0):
    cfg = ar.AliceConfig(**hyper)
    oracle = ScalarAlice(problem.split(problem.theta0), **hyper)
    params = [xp.asarray(p, dtype=xp.float64) for p in problem.split(problem.theta0)]
    state = ar.init(params, cfg)
    rng_core, rng_oracle = np.random.default_rng(seed), np.random.default_rng(seed)
    vg = problem.value_and_grad(xp)
    for b in range(n_batches):
        lr = None if lrs is None else lrs[b]
        n_calls = []

        def counted(points, n_calls=n_calls):
            n_calls.append(1)
            return vg(points)

        state, _ = ar.run_batch(state, cfg, counted, rng_core, lr=lr)
        expected_calls = oracle.batch(problem.grad_lists, rng_oracle, lr=lr)
        assert len(n_calls) == expected_calls, f"batch {b + 1}"
        assert_matches(state, oracle, f"batch {b + 1} of {hyper}")
    return state, oracle


@pytest.fixture(params=["numpy", "array_api_strict"])
def xp_ns(request):
    """NumPy and the strict namespace (the oracle comparison's cost is per backend)."""
    import importlib
    return importlib.import_module(request.param)


COMBOS = [(hc, gg, lm) for hc in ("zero", "abs", "rms") for gg in (True, False)
          for lm in ("fixed", "sgdm", "adam") if not (hc == "zero" and not gg)]


@pytest.mark.parametrize("q", [0, 1, 3])
@pytest.mark.parametrize("hess_comp,grad_glass,limit_method", COMBOS)
def test_core_matches_scalar_oracle(hess_comp, grad_glass, limit_method, q, xp_ns):
    xp = xp_ns
    problem = SmoothProblem([3, 2, 1], seed=17 + q)
    fixed = limit_method == "fixed"
    hyper = dict(lr=0.1, betas=(0.75, 0.9), eps=1e-8, w1=0.03, w2=0.02, phi=0.4, omega=1.3,
                 limit_method=limit_method, lr_min=0.01 if fixed else 0.05,
                 lr_max={"fixed": 0.15, "sgdm": 0.3, "adam": 3.0}[limit_method],
                 hess_comp=hess_comp, grad_glass=grad_glass, quick_steps=q)
    run_both(xp, problem, hyper, n_batches=18)


def test_oracle_bounds_are_exercised():
    """Sanity of the comparison above: the runs visit clipped-low, clipped-high and unclipped
    steps, and both signs of G, so every branch of step 5 is compared (checked on the oracle)."""
    seen = set()
    for lm, lo, hi in (("fixed", 0.01, 0.15), ("adam", 0.05, 3.0), ("sgdm", 0.05, 0.3)):
        problem = SmoothProblem([3, 2, 1], seed=18)
        o = ScalarAlice(problem.split(problem.theta0), lr=0.1, betas=(0.75, 0.9), w1=0.03,
                        w2=0.02, phi=0.4, omega=1.3, limit_method=lm, lr_min=lo, lr_max=hi,
                        quick_steps=1)
        rng = np.random.default_rng(0)
        for _ in range(18):
            o.batch(problem.grad_lists, rng)
            for k in range(len(o.G)):
                for i in range(len(o.G[k])):
                    a, h, R, V = abs(o.G[k][i]), o.H[k][i], o.R[k][i], o.V[k][i]
                    alpha = 3 / (4 * math.pi) * R / (a + 1e-8)
                    d = a / (alpha + h + math.sqrt(alpha * (alpha + 2 * h)) + 1e-8)
                    f = {"fixed": 1.0, "sgdm": a, "adam": a / (math.sqrt(V) + 1e-8)}[lm]
                    seen.add("low" if d < lo * f else "high" if not d < hi * f else "inside")
                    seen.add(o.G[k][i] > 0)
    assert seen == {"low", "high", "inside", True, False}


hypers = st.fixed_dictionaries({
    "lr": st.floats(0.01, 0.3),
    "betas": st.tuples(st.sampled_from([0.5, 0.6, 0.75, 0.8, 0.875]), st.floats(0.8, 0.99)),
    "eps": st.sampled_from([1e-8, 1e-6, 1e-3]),
    "w1": st.sampled_from([0.0, 0.01, 0.2]),
    "w2": st.sampled_from([0.0, 0.01, 0.2]),
    "phi": st.one_of(st.none(), st.floats(0.05, 1.9)),
    "omega": st.floats(0.1, 3.0),
    "limit_method": st.sampled_from(["fixed", "sgdm", "adam"]),
    "lr_min": st.sampled_from([0.0, 0.001, 0.02]),
    "lr_max": st.one_of(st.none(), st.floats(0.05, 1.0)),
    "scale_bounds_with_lr": st.booleans(),
    "hess_comp": st.sampled_from(["zero", "abs", "rms"]),
    "grad_glass": st.booleans(),
    "quick_steps": st.integers(0, 3),
}).filter(lambda h: not (h["hess_comp"] == "zero" and not h["grad_glass"])
          and (h["quick_steps"] + 1) * (1 - h["betas"][1]) < 1
          and (h["lr_max"] if h["lr_max"] is not None else 2 * h["lr"]) >= h["lr_min"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(hyper=hypers, seed=st.integers(0, 2**16), sizes=st.lists(st.integers(1, 4), min_size=1,
                                                                 max_size=3),
       schedule=st.booleans())
def test_core_matches_scalar_oracle_random_configs(hyper, seed, sizes, schedule):
    problem = SmoothProblem(sizes, seed)
    lrs = None
    if schedule:  # a learning-rate schedule: sigma and (with scale_bounds_with_lr) the bounds move
        lrs = [hyper["lr"] * (1.0 + 0.5 * math.sin(0.7 * b)) for b in range(16)]
    run_both(np, problem, hyper, n_batches=16, lrs=lrs, seed=seed)
