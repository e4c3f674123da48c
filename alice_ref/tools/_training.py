"""Training runs of ``alice-ref train`` at a budget of gradient evaluations (R8's costs).

One run = one optimiser, learning rate and seed on the ``default`` task (NumPy
ReluTeacherStudent, :func:`run_default`) or on ``digits`` (torch MLP, :func:`run_digits`),
stopping before the batch that would exceed the budget; an Alice sample batch costs 3
evaluations, a quick batch 1 (R8). The NumPy baselines :class:`AdamNumpy` and
:class:`SGDMomentumNumpy` are textbook updates written here, not library optimisers.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from alice_ref.core import AliceConfig
from alice_ref.driver import Alice as AliceDriver
from alice_ref.driver import NonFiniteGradientError
from alice_ref.landscapes import ReluTeacherStudent
from alice_ref.maths.schedule import is_sample_step
from alice_ref.tools._tasks import load_digits_data, make_mlp

__all__ = ["ALIASES", "ALICE_VARIANTS", "ADAHESSIAN_EPS", "AdamNumpy", "SGDMomentumNumpy",
           "run_default", "run_digits"]

# Alice variants: AliceConfig overrides (docs/spec/algorithm.md#hyperparameters), named as the
# paper's experiment scripts name them (T4-T7: quick_steps 0, phi 0.1 = 1 - beta1, omega 1,
# limit 'adam', lr_max = 2 lr, w1 = w2 = 0, all defaults but q). A variant that differs from its
# T-number says so in its name: '-q3' (three quick steps per sample step, the library default),
# '-rms-glass' (rms curvature with the glass kept; T7 drops it).
ALICE_VARIANTS = {
    "t4-alice-glass": {"hess_comp": "zero", "grad_glass": True, "quick_steps": 0},
    "t5-alice-abs": {"hess_comp": "abs", "grad_glass": False, "quick_steps": 0},
    "t6-alice-glass-abs": {"hess_comp": "abs", "grad_glass": True, "quick_steps": 0},
    "t7-alice-rms": {"hess_comp": "rms", "grad_glass": False, "quick_steps": 0},
    "t4-alice-glass-q3": {"hess_comp": "zero", "grad_glass": True, "quick_steps": 3},
    "t5-alice-abs-q3": {"hess_comp": "abs", "grad_glass": False, "quick_steps": 3},
    "t6-alice-glass-abs-q3": {"hess_comp": "abs", "grad_glass": True, "quick_steps": 3},
    "t7-alice-rms-glass-q3": {"hess_comp": "rms", "grad_glass": True, "quick_steps": 3},
}
# The baselines: T1 Adam, T2 SGD-momentum 0.9, T3 AdaHessian (eps 1e-8 as the scripts; the
# '-eps1e-4' variant uses the AdaHessian paper's 1e-4, which keeps early steps tame here).
ADAHESSIAN_EPS = {"t3-adahessian": 1e-8, "t3-adahessian-eps1e-4": 1e-4}
# The names before issue 19, accepted on the command line: old name -> variant.
ALIASES = {"alice": "t6-alice-glass-abs-q3", "alice-abs": "t5-alice-abs-q3",
           "alice-glass": "t4-alice-glass-q3", "alice-rms": "t7-alice-rms-glass-q3",
           "adam": "t1-adam", "sgdm": "t2-sgdm", "adahessian": "t3-adahessian-eps1e-4"}
DIVERGENCE_FACTOR = 10.0  # a run whose final loss exceeds 10x its initial loss has diverged
N_CHECKPOINTS = 40


# -- NumPy baselines (labelled: textbook updates written here, not library optimisers) ------------

class AdamNumpy:
    """Numpy baseline: Adam (Kingma & Ba) with bias correction, betas (0.9, 0.999), eps 1e-8.

    m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
    theta <- theta - lr mh / (sqrt(vh) + eps) with mh = m / (1 - b1^t), vh = v / (1 - b2^t).

    Args:
        theta: the start (copied).
        lr: the learning rate.
        betas: (b1, b2).
        eps: denominator guard.

    Example:
        Adam's first step is lr sign(g) in every coordinate:

        >>> import numpy as np
        >>> opt = AdamNumpy(np.array([1.0, -2.0]), lr=0.1)
        >>> opt.step(lambda th: 2 * th)
        >>> np.round(opt.theta, 6).tolist(), opt.t
        ([0.9, -1.9], 1)
    """

    cost = 1

    def __init__(self, theta, lr, betas=(0.9, 0.999), eps=1e-8):
        self.theta, self.lr, self.b1, self.b2, self.eps = theta.copy(), lr, *betas, eps
        self.m, self.v, self.t = np.zeros_like(theta), np.zeros_like(theta), 0

    def step(self, grad_fn):
        """One step, with one gradient evaluation ``grad_fn(theta)``.

        Args:
            grad_fn: ``grad_fn(theta) -> gradient`` (one minibatch).

        Example:
            With a constant gradient mh / sqrt(vh) = 1, so each step moves by lr:

            >>> import numpy as np
            >>> opt = AdamNumpy(np.array([1.0]), lr=0.1)
            >>> opt.step(np.ones_like); opt.step(np.ones_like)
            >>> np.round(opt.theta, 6).tolist()
            [0.8]
        """
        g = grad_fn(self.theta)
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        mh, vh = self.m / (1 - self.b1 ** self.t), self.v / (1 - self.b2 ** self.t)
        self.theta = self.theta - self.lr * mh / (np.sqrt(vh) + self.eps)


class SGDMomentumNumpy:
    """Numpy baseline: SGD with heavy-ball momentum as torch.optim.SGD (buf = m buf + g).

    buf <- momentum buf + g, theta <- theta - lr buf.

    Args:
        theta: the start (copied).
        lr: the learning rate.
        momentum: the momentum m.

    Example:
        The first step is plain gradient descent:

        >>> import numpy as np
        >>> opt = SGDMomentumNumpy(np.array([1.0, -2.0]), lr=0.25)
        >>> opt.step(lambda th: 2 * th)
        >>> opt.theta.tolist()
        [0.5, -1.0]
    """

    cost = 1

    def __init__(self, theta, lr, momentum=0.9):
        self.theta, self.lr, self.mom = theta.copy(), lr, momentum
        self.buf = np.zeros_like(theta)

    def step(self, grad_fn):
        """One step, with one gradient evaluation ``grad_fn(theta)``.

        Args:
            grad_fn: ``grad_fn(theta) -> gradient`` (one minibatch).

        Example:
            With a constant gradient 1 the buffer grows 1, 1.5 (momentum 0.5):

            >>> import numpy as np
            >>> opt = SGDMomentumNumpy(np.array([0.0]), lr=1.0, momentum=0.5)
            >>> opt.step(np.ones_like); opt.step(np.ones_like)
            >>> opt.buf.tolist(), opt.theta.tolist()
            ([1.5], [-2.5])
        """
        self.buf = self.mom * self.buf + grad_fn(self.theta)
        self.theta = self.theta - self.lr * self.buf


def next_alice_cost(t_done: int, cfg: AliceConfig) -> int:
    """Evaluations of Alice's next batch (R8): 3 for a sample step, 1 for a quick step."""
    return 3 if is_sample_step(t_done + 1, cfg.beta1, cfg.quick_steps) else 1


def checkpoints(budget: int) -> list:
    return sorted({round(budget * k / N_CHECKPOINTS) for k in range(N_CHECKPOINTS + 1)})


# -- default task (NumPy) ------------------------------------------------------------------------

def run_default(name, lr, seed, budget, batch, tick, max_batches=None):
    """One training run on the ReLU teacher-student; returns the run record. It stops before
    the batch that would exceed ``budget`` evaluations or after ``max_batches`` batches."""
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported, not warned
        return _run_default_body(name, lr, seed, budget, batch, tick, max_batches)


def _run_default_body(name, lr, seed, budget, batch, tick, max_batches=None):
    L = ReluTeacherStudent(seed=0)  # the task is fixed; the seed varies init, batches, probes
    theta0 = L.init_params(seed=seed + 1)
    n = L.X.shape[0]
    rng = np.random.default_rng(seed + 7)
    order, pos = rng.permutation(n), 0

    def next_batch():
        nonlocal order, pos
        if pos + batch > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos:pos + batch]
        pos += batch
        return idx

    checks = checkpoints(budget)
    curve_e, curve_l = [], []
    evals, batches = 0, 0

    def record(theta):
        curve_e.append(evals)
        curve_l.append(float(L.loss(theta)))

    if name in ALICE_VARIANTS:
        cfg = AliceConfig(lr=lr, **ALICE_VARIANTS[name])
        opt = AliceDriver([theta0], cfg, seed=seed)
        params = lambda: opt.params[0]
    else:
        opt = (AdamNumpy if name == "t1-adam" else SGDMomentumNumpy)(theta0, lr)
        params = lambda: opt.theta
    record(params())
    diverged = False
    while True:
        cost = next_alice_cost(opt.state.t, cfg) if name in ALICE_VARIANTS else opt.cost
        if evals + cost > budget or (max_batches is not None and batches >= max_batches):
            break
        idx = next_batch()
        if name in ALICE_VARIANTS:
            def vg(ps, idx=idx):
                return L.loss(ps[0], idx), [L.grad(ps[0], idx)]
            try:
                opt.step(vg)
            except NonFiniteGradientError:
                diverged = True
        else:
            opt.step(lambda th, idx=idx: L.grad(th, idx))
        evals += cost
        batches += 1
        tick(cost)
        if not np.all(np.isfinite(params())):
            diverged = True
        if diverged:
            break
        if len(curve_e) < len(checks) and evals >= checks[len(curve_e)]:
            record(params())
    if not curve_e or curve_e[-1] != evals:
        record(params())
    diverged = diverged or not curve_l[-1] <= DIVERGENCE_FACTOR * curve_l[0]
    final = curve_l[-1] if not diverged else math.nan
    return {"evaluations": evals, "batches": batches, "final_loss": final,
            "diverged": diverged, "curve_evals": curve_e, "curve_loss": curve_l}


# -- digits task (torch) -------------------------------------------------------------------------

def digits_setup():
    from alice_ref.tools._tasks import cli_torch

    torch = cli_torch()  # MissingDependency (exit 3) without torch; threads: 1 by default
    data = load_digits_data()
    return torch, data


def alice_torch_or_none():
    try:
        import alice_torch
    except ImportError:
        return None
    return alice_torch


def adahessian_or_none():
    """pytorch_optimizer.AdaHessian when installed, else alice_ref's own (the paper's T3 as the
    AdaHessian paper defines it: alice_ref.tools.experiment.adahessian)."""
    try:
        from pytorch_optimizer import AdaHessian
    except ImportError:
        from alice_ref.tools.experiment.adahessian import make_adahessian

        return make_adahessian
    return AdaHessian


def run_digits(name, lr, seed, budget, batch, tick, ctx, max_batches=None):
    """One training run on digits; torch's global RNG (AdaHessian's Hutchinson probes) is seeded
    per run and restored afterwards, so a run does not depend on the runs before it."""
    torch = ctx[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 11)
        return _run_digits_body(name, lr, seed, budget, batch, tick, ctx, max_batches)


def _run_digits_body(name, lr, seed, budget, batch, tick, ctx, max_batches=None):
    torch, (Xtr, ytr, Xte, yte) = ctx
    from torch.func import functional_call

    F = torch.nn.functional
    model = make_mlp(seed)
    gen = torch.Generator().manual_seed(seed + 7)
    n = len(ytr)
    order, pos = torch.randperm(n, generator=gen), 0

    def next_batch():
        nonlocal order, pos
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + batch]
        pos += batch
        return idx

    names = [k for k, _ in model.named_parameters()]
    impl = "torch.optim"
    if name in ALICE_VARIANTS:
        cfg = AliceConfig(lr=lr, **ALICE_VARIANTS[name])
        at = alice_torch_or_none()
        if at is not None:
            impl = "alice_torch.Alice"
            opt = at.Alice(model.parameters(), lr=lr, generator=torch.Generator().manual_seed(
                seed), **ALICE_VARIANTS[name])
            current = lambda: list(model.parameters())
        else:
            impl = "alice_ref.driver.Alice on torch tensors"
            opt = AliceDriver([p.detach().clone() for p in model.parameters()], cfg, seed=seed)
            current = lambda: opt.params
    elif name == "t1-adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    elif name == "t2-sgdm":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        cls = adahessian_or_none()
        impl = ("pytorch_optimizer.AdaHessian" if isinstance(cls, type)
                else "alice_ref.tools.experiment.adahessian")
        # eps: 1e-8 for T3 as the scripts set it; 1e-4 (the AdaHessian paper's) for the
        # '-eps1e-4' variant: with tiny eps near-zero early Hessian estimates blow up some seeds.
        opt = cls(model.parameters(), lr=lr, eps=ADAHESSIAN_EPS[name])
    if name not in ALICE_VARIANTS:
        current = lambda: list(model.parameters())

    def metrics():
        with torch.no_grad():
            ps = dict(zip(names, current()))
            loss = float(F.cross_entropy(functional_call(model, ps, (Xtr,)), ytr))
            acc = float((functional_call(model, ps, (Xte,)).argmax(1) == yte).float().mean())
        return loss, acc

    checks = checkpoints(budget)
    curve_e, curve_l, curve_a = [], [], []
    evals, batches, diverged = 0, 0, False

    def record():
        loss, acc = metrics()
        curve_e.append(evals)
        curve_l.append(loss)
        curve_a.append(acc)

    record()
    while True:
        if name in ALICE_VARIANTS:
            t_done = opt.t if impl == "alice_torch.Alice" else opt.state.t
            cost = next_alice_cost(t_done, cfg)
        else:
            cost = 2 if name in ADAHESSIAN_EPS else 1
        if evals + cost > budget or (max_batches is not None and batches >= max_batches):
            break
        idx = next_batch()
        xb, yb = Xtr[idx], ytr[idx]
        calls = [0]
        try:
            if impl == "alice_ref.driver.Alice on torch tensors":
                def vg(ps, xb=xb, yb=yb, calls=calls):
                    calls[0] += 1
                    leaves = [p.detach().requires_grad_(True) for p in ps]
                    loss = F.cross_entropy(functional_call(model, dict(zip(names, leaves)),
                                                           (xb,)), yb)
                    return loss.detach(), list(torch.autograd.grad(loss, leaves))
                opt.step(vg)
            else:
                def closure(xb=xb, yb=yb, calls=calls):
                    calls[0] += 1
                    opt.zero_grad()
                    loss = F.cross_entropy(model(xb), yb)
                    loss.backward(create_graph=(name in ADAHESSIAN_EPS))
                    return loss
                if name in ADAHESSIAN_EPS:
                    with warnings.catch_warnings():  # backward(create_graph=True), as it needs
                        warnings.simplefilter("ignore", UserWarning)
                        closure()
                    opt.step()
                    opt.zero_grad(set_to_none=True)  # break the grad <-> graph cycle
                    calls[0] += 1  # the Hessian-vector product inside AdaHessian's step
                else:
                    opt.step(closure)
        except FloatingPointError:  # NonFiniteGradientError (core or alice_torch)
            diverged = True
        cost = max(cost, calls[0])
        evals += cost
        batches += 1
        tick(cost)
        if diverged or not all(bool(torch.isfinite(p).all()) for p in current()):
            diverged = True
            break
        if len(curve_e) < len(checks) and evals >= checks[len(curve_e)]:
            record()
    if curve_e[-1] != evals and not diverged:
        record()
    diverged = diverged or not curve_l[-1] <= DIVERGENCE_FACTOR * curve_l[0]
    return {"evaluations": evals, "batches": batches,
            "final_loss": math.nan if diverged else curve_l[-1],
            "final_test_accuracy": math.nan if diverged else curve_a[-1],
            "diverged": diverged, "impl": impl, "curve_evals": curve_e, "curve_loss": curve_l,
            "curve_test_accuracy": curve_a}
