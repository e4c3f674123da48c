"""``alice-ref train``: Alice variants against baselines at equal gradient-evaluation budgets.

Tasks: ``default`` -- the embedded ReLU teacher-student landscape (NumPy, minibatches of its
256 samples) trained with the NumPy Alice driver (alice_ref.Alice); ``digits`` -- a ReLU MLP on
scikit-learn's bundled digits, trained with ``alice_torch.Alice`` when importable (else the
core's driver over torch tensors; the summary says which) and torch.optim baselines.

Optimisers: ``alice`` (hess_comp='abs', grad_glass=True: Hessian + glass), ``alice-abs``
(grad_glass=False: Hessian only), ``alice-glass`` (hess_comp='zero': glass only), ``alice-rms``
(hess_comp='rms'), ``adam``, ``sgdm`` (SGD with momentum 0.9) and, for digits, ``adahessian``
(pytorch_optimizer.AdaHessian when installed, else skipped with a note). For the NumPy task the
Adam and SGD-momentum baselines are the few lines in this file (textbook updates, labelled
"numpy baseline"); for digits they are torch.optim's.

Budgets count gradient evaluations, not batches: an Alice sample step costs 3 (g+, g-, g0), a
quick step 1, so Alice averages (3+q)/(q+1) per batch after warm-up (R8); Adam and SGD cost 1;
AdaHessian costs 2 (a gradient and one Hessian-vector product). A run stops before the batch
that would exceed the budget. The loss on the full training set at the reported parameters
(Alice's centre mu) is measured at ~40 checkpoints and is not counted.

Exit codes: 0 done (a diverged run is reported, not an error); 2 bad arguments; 3 an optional
dependency of the chosen task is missing.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
import warnings

import numpy as np

from alice_ref.core.batch import AliceConfig
from alice_ref.driver import Alice as AliceDriver
from alice_ref.driver import NonFiniteGradientError
from alice_ref.landscapes import ReluTeacherStudent
from alice_ref.maths.schedule import is_sample_step
from alice_ref.tools.diagnostics import (
    _clean as _json_safe,  # one JSON-safe converter for all commands
)
from alice_ref.tools.probe import (
    EXIT_MISSING,
    EXIT_OK,
    EXIT_USAGE,
    MissingDependency,
    Progress,
    load_digits_data,
    make_mlp,
    new_figure,
    write_json,
)

__all__ = [
    "ALICE_VARIANTS",
    "DEFAULT_LR",
    "OPTIMIZERS",
    "AdamNumpy",
    "SGDMomentumNumpy",
    "main",
    "register",
    "run",
]

# Alice variants: AliceConfig overrides (ALICE.md's hyperparameters).
ALICE_VARIANTS = {
    "alice": {"hess_comp": "abs", "grad_glass": True},
    "alice-abs": {"hess_comp": "abs", "grad_glass": False},
    "alice-glass": {"hess_comp": "zero", "grad_glass": True},
    "alice-rms": {"hess_comp": "rms", "grad_glass": True},
}
OPTIMIZERS = tuple(ALICE_VARIANTS) + ("adam", "sgdm", "adahessian")
# Learning rates per task (Alice: lr = sigma and the step-bound scale; its centre moves by
# phi * delta with |delta| <= 2 lr |G|/sqrt(V), so Alice at lr moves like Adam at ~0.2 lr).
# Centres of the `--tune` grids, set from tuning runs at the default budgets (the docs' results
# were produced with --tune: grid x TUNE_FACTORS, worst final loss over TUNE_SEEDS, which are
# not reported seeds); see docs/diagnostics.md.
DEFAULT_LR = {
    "default": {"alice": 0.025, "alice-abs": 0.1, "alice-glass": 0.05, "alice-rms": 0.025,
                "adam": 0.02, "sgdm": 0.2, "adahessian": 0.1},
    "digits": {"alice": 0.025, "alice-abs": 0.1, "alice-glass": 0.05, "alice-rms": 0.025,
               "adam": 0.04, "sgdm": 0.4, "adahessian": 0.2},
}
DEFAULT_BUDGET = {"default": 3000, "digits": 1000}
TUNE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
TUNE_SEEDS = (1000, 1001)  # tuning seeds, disjoint from the reported seeds
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


def _next_alice_cost(t_done: int, cfg: AliceConfig) -> int:
    """Evaluations of Alice's next batch (R8): 3 for a sample step, 1 for a quick step."""
    return 3 if is_sample_step(t_done + 1, cfg.beta1, cfg.quick_steps) else 1


def _checkpoints(budget: int) -> list:
    return sorted({round(budget * k / N_CHECKPOINTS) for k in range(N_CHECKPOINTS + 1)})


# -- default task (NumPy) ------------------------------------------------------------------------

def _run_default(name, lr, seed, budget, batch, tick):
    """One training run on the ReLU teacher-student; returns the run record."""
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported, not warned
        return _run_default_body(name, lr, seed, budget, batch, tick)


def _run_default_body(name, lr, seed, budget, batch, tick):
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

    checks = _checkpoints(budget)
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
        opt = (AdamNumpy if name == "adam" else SGDMomentumNumpy)(theta0, lr)
        params = lambda: opt.theta
    record(params())
    diverged = False
    while True:
        cost = _next_alice_cost(opt.state.t, cfg) if name in ALICE_VARIANTS else opt.cost
        if evals + cost > budget:
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

def _digits_setup():
    import torch

    data = load_digits_data()
    return torch, data


def _alice_torch_or_none():
    try:
        import alice_torch
    except ImportError:
        return None
    return alice_torch


def _adahessian_or_none():
    try:
        from pytorch_optimizer import AdaHessian
    except ImportError:
        return None
    return AdaHessian


def _run_digits(name, lr, seed, budget, batch, tick, ctx):
    """One training run on digits; torch's global RNG (AdaHessian's Hutchinson probes) is seeded
    per run and restored afterwards, so a run does not depend on the runs before it."""
    torch = ctx[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 11)
        return _run_digits_body(name, lr, seed, budget, batch, tick, ctx)


def _run_digits_body(name, lr, seed, budget, batch, tick, ctx):
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
        at = _alice_torch_or_none()
        if at is not None:
            impl = "alice_torch.Alice"
            opt = at.Alice(model.parameters(), lr=lr, generator=torch.Generator().manual_seed(
                seed), **ALICE_VARIANTS[name])
            current = lambda: list(model.parameters())
        else:
            impl = "alice_ref.driver.Alice on torch tensors"
            opt = AliceDriver([p.detach().clone() for p in model.parameters()], cfg, seed=seed)
            current = lambda: opt.params
    elif name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    elif name == "sgdm":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        impl = "pytorch_optimizer.AdaHessian"
        # eps 1e-4 as in the AdaHessian paper (Yao et al. 2021); pytorch_optimizer defaults to
        # 1e-16, with which near-zero early Hessian estimates blow up some seeds here.
        opt = _adahessian_or_none()(model.parameters(), lr=lr, eps=1e-4)
    if name not in ALICE_VARIANTS:
        current = lambda: list(model.parameters())

    def metrics():
        with torch.no_grad():
            ps = dict(zip(names, current()))
            loss = float(F.cross_entropy(functional_call(model, ps, (Xtr,)), ytr))
            acc = float((functional_call(model, ps, (Xte,)).argmax(1) == yte).float().mean())
        return loss, acc

    checks = _checkpoints(budget)
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
            cost = _next_alice_cost(t_done, cfg)
        else:
            cost = 2 if name == "adahessian" else 1
        if evals + cost > budget:
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
                    loss.backward(create_graph=(name == "adahessian"))
                    return loss
                if name == "adahessian":
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


# -- command -------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``alice-ref train`` to a parser.

    Args:
        p: the parser.

    Example:
        ``--lr`` may be repeated:

        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> a = p.parse_args(["--lr", "adam=0.01", "--lr", "sgdm=0.1"])
        >>> a.task, a.lr, a.seeds
        ('default', ['adam=0.01', 'sgdm=0.1'], None)
    """
    p.add_argument("--task", choices=("default", "digits"), default="default",
                   help="default: NumPy ReLU teacher-student (no extra install); digits: torch "
                        "MLP on scikit-learn's bundled digits (extras data, torch)")
    p.add_argument("--seeds", default=None,
                   help="number of seeds N (seeds 0..N-1) or a comma list (default 5, quick 2)")
    p.add_argument("--budget", type=int, default=None,
                   help="gradient evaluations per run (default 3000 for default, 1000 for "
                        "digits; quick 150)")
    p.add_argument("--batch", type=int, default=None,
                   help="minibatch size (default 32 for default, 64 for digits)")
    p.add_argument("--optimizers", default=None,
                   help=f"comma list from {','.join(OPTIMIZERS)} (default: all that apply)")
    p.add_argument("--lr", action="append", default=[], metavar="NAME=LR",
                   help="override one optimiser's learning rate (repeatable)")
    p.add_argument("--tune", action="store_true",
                   help=f"first pick each optimiser's lr from its default x {TUNE_FACTORS} by "
                        f"worst final loss over tuning seeds {TUNE_SEEDS}")
    p.add_argument("--out", default=None,
                   help="directory for train.csv, train.json and train_curves.png")
    p.add_argument("--quick", action="store_true", help="small budget and 2 seeds (smoke test)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers):
    """Add the ``train`` subcommand to an argparse subparsers object; returns its parser.

    The handler is stored as ``func`` (``args.func(args)`` returns the exit code).

    Args:
        subparsers: the object ``ArgumentParser.add_subparsers()`` returns.

    Returns:
        The new subparser.

    Example:
        Building the command line (cheap: nothing runs):

        >>> import argparse
        >>> parser = argparse.ArgumentParser(prog="alice-ref")
        >>> _ = register(parser.add_subparsers())
        >>> args = parser.parse_args(["train", "--quick", "--seeds", "0,3"])
        >>> args.quick, args.seeds, args.func is run
        (True, '0,3', True)
    """
    p = subparsers.add_parser(
        "train", help="train the embedded default model (or digits) with Alice variants and "
                      "baselines at equal gradient-evaluation budgets",
        description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv=None) -> int:
    """Stand-alone entry: ``python -m alice_ref.tools.train [options]``.

    Args:
        argv: the options (None: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 ok, 2 bad options, 3 missing optional package.

    Example:
        Bad options are refused before any work (the message goes to stderr):

        >>> main(["--seeds", "0", "--no-progress"])
        2
    """
    parser = argparse.ArgumentParser(prog="alice-ref train", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _parse(args):
    if args.seeds is None:
        seeds = list(range(2 if args.quick else 5))
    elif "," in str(args.seeds):
        seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    else:
        k = int(args.seeds)
        if k < 1:
            raise ValueError(f"--seeds must be >= 1, got {k}")
        seeds = list(range(k))
    budget = args.budget if args.budget is not None else \
        (150 if args.quick else DEFAULT_BUDGET[args.task])
    if budget < 3:
        raise ValueError(f"--budget must be >= 3 gradient evaluations, got {budget}")
    batch = args.batch if args.batch is not None else (32 if args.task == "default" else 64)
    n_max = 256 if args.task == "default" else 1437
    if not 1 <= batch <= n_max:
        raise ValueError(f"--batch must be in 1..{n_max}, got {batch}")
    if args.optimizers is None:
        names = list(OPTIMIZERS)
    else:
        names = [s.strip() for s in args.optimizers.split(",") if s.strip()]
        bad = [s for s in names if s not in OPTIMIZERS]
        if bad or not names:
            raise ValueError(f"--optimizers must name some of {', '.join(OPTIMIZERS)}, got "
                             f"{args.optimizers!r}")
    lrs = dict(DEFAULT_LR[args.task])
    for item in args.lr:
        k, _, v = item.partition("=")
        if k not in OPTIMIZERS or not v:
            raise ValueError(f"--lr must be NAME=LR with NAME in {', '.join(OPTIMIZERS)}, got "
                             f"{item!r}")
        lrs[k] = float(v)
        if not lrs[k] > 0:
            raise ValueError(f"--lr {k} must be > 0, got {v}")
    return seeds, budget, batch, names, lrs


def run(args) -> int:
    """Handler of ``alice-ref train``: train every optimiser at equal budgets; the exit code.

    Each optimiser gets the same number of gradient evaluations (an Alice sample batch costs
    3, a quick batch 1: R8); prints :func:`format_summary` and with ``--out`` writes
    train.csv, train.json and the plot.

    Args:
        args: the parsed options (see :func:`add_arguments`).

    Returns:
        0 ok, 2 bad options, 3 missing optional package.

    Example:
        A budget below one sample batch (3 evaluations) is a usage error:

        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> run(p.parse_args(["--budget", "2", "--no-progress"]))
        2
    """
    try:
        seeds, budget, batch, names, lrs = _parse(args)
    except ValueError as e:
        print(f"alice-ref train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    notes, ctx = [], None
    if args.task == "digits":
        try:
            ctx = _digits_setup()
        except MissingDependency as e:
            print(f"alice-ref train: {e}", file=sys.stderr)
            return EXIT_MISSING
        if "adahessian" in names and _adahessian_or_none() is None:
            names.remove("adahessian")
            notes.append("adahessian skipped: pytorch_optimizer is not installed "
                         "(pip install pytorch_optimizer)")
        if any(n in ALICE_VARIANTS for n in names) and _alice_torch_or_none() is None:
            notes.append("alice_torch is not importable: Alice variants ran on the core's "
                         "driver (alice_ref.Alice) over torch tensors")
    elif "adahessian" in names:
        names.remove("adahessian")
        notes.append("adahessian skipped: only available for --task digits (it needs torch "
                     "Hessian-vector products via pytorch_optimizer)")
    if not names:
        print("alice-ref train: error: no optimiser left to run", file=sys.stderr)
        for n in notes:
            print(f"note: {n}", file=sys.stderr)
        return EXIT_USAGE

    def one(name, lr, seed, tick):
        if args.task == "default":
            return _run_default(name, lr, seed, budget, batch, tick)
        return _run_digits(name, lr, seed, budget, batch, tick, ctx)

    tuning = {}
    n_tune = len(names) * len(TUNE_FACTORS) * len(TUNE_SEEDS) if args.tune else 0
    bar = Progress((n_tune + len(names) * len(seeds)) * budget, f"train {args.task}",
                   enabled=not args.no_progress)
    t0 = time.perf_counter()
    if args.tune:
        for name in names:
            scores = {}
            for f in TUNE_FACTORS:
                lr = lrs[name] * f
                worst = -math.inf
                for ts in TUNE_SEEDS:
                    r = one(name, lr, ts, bar.update)
                    bar.update(budget - r["evaluations"])
                    v = r["final_loss"]
                    worst = max(worst, v if math.isfinite(v) else math.inf)
                scores[lr] = worst
            finite = {k: v for k, v in scores.items() if math.isfinite(v)}
            best = min(finite, key=finite.get) if finite else lrs[name]
            tuning[name] = {"grid": [{"lr": k, "worst_final_loss": v}
                                     for k, v in scores.items()],
                            "chosen": best}
            lrs[name] = best
    runs = []
    for name in names:
        for seed in seeds:
            ts = time.perf_counter()
            r = one(name, lrs[name], seed, bar.update)
            bar.update(budget - r["evaluations"])
            r.update({"optimizer": name, "seed": seed, "lr": lrs[name],
                      "seconds": round(time.perf_counter() - ts, 3)})
            runs.append(r)
    bar.close()
    summary = _summarise(args.task, names, runs)
    out = {"task": args.task, "budget": budget, "batch": batch, "seeds": seeds,
           "learning_rates": {n: lrs[n] for n in names}, "tuning": tuning, "notes": notes,
           "summary": summary, "seconds": round(time.perf_counter() - t0, 3),
           "runs": runs}
    print(format_summary(out))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        files = [os.path.join(args.out, "train.csv"), os.path.join(args.out, "train.json")]
        _write_csv(files[0], runs, args.task)
        if not args.no_plot:
            files += plot_curves(out, args.out)
        out["files"] = [os.path.basename(f) for f in files]
        write_json(files[1], _json_safe(out))
        print("wrote " + ", ".join(files))
    return EXIT_OK


def _mean_std(v):
    a = np.asarray([x for x in v if math.isfinite(x)], dtype=np.float64)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def _summarise(task, names, runs):
    rows = []
    for name in names:
        rs = [r for r in runs if r["optimizer"] == name]
        m, s = _mean_std([r["final_loss"] for r in rs])
        row = {"optimizer": name, "lr": rs[0]["lr"], "n_seeds": len(rs),
               "diverged": sum(r["diverged"] for r in rs), "final_loss_mean": m,
               "final_loss_std": s, "evaluations": int(np.mean([r["evaluations"] for r in rs])),
               "batches": int(np.mean([r["batches"] for r in rs]))}
        if task == "digits":
            am, asd = _mean_std([r["final_test_accuracy"] for r in rs])
            row.update({"final_test_accuracy_mean": am, "final_test_accuracy_std": asd,
                        "impl": rs[0]["impl"]})
        rows.append(row)
    return rows


def format_summary(out) -> str:
    """The summary table of a run as text (one row per optimiser, mean ± std over seeds).

    Args:
        out: the result dict of :func:`run` (keys task, budget, batch, seeds, summary, notes).

    Returns:
        The table, lines joined by newlines.

    Example:
        One optimiser on the default task:

        >>> out = {"task": "default", "budget": 9, "batch": 4, "seeds": [0], "notes": [],
        ...        "summary": [{"optimizer": "adam", "lr": 0.01, "batches": 9,
        ...                     "final_loss_mean": 0.5, "final_loss_std": 0.0,
        ...                     "diverged": 0, "n_seeds": 1}]}
        >>> format_summary(out).splitlines()[0][:40]
        'task default: budget 9 gradient evaluati'
        >>> format_summary(out).splitlines()[-1].split()[:4]
        ['adam', '0.01', '9', '0.5']
    """
    lines = [(f"task {out['task']}: budget {out['budget']} gradient evaluations per run, batch "
             f"{out['batch']}, seeds {out['seeds']} (mean ± std over seeds)")]
    digits = out["task"] == "digits"
    hdr = (f"{'optimizer':<12} {'lr':>8} {'batches':>8} {'final loss':>22} "
           + (f"{'test accuracy':>18}" if digits else "") + "  diverged")
    lines += [hdr, "-" * len(hdr)]
    for r in out["summary"]:
        acc = (f"{r['final_test_accuracy_mean']:>9.4f} ± {r['final_test_accuracy_std']:<6.4f}"
               if digits else "")
        lines.append(f"{r['optimizer']:<12} {r['lr']:>8.3g} {r['batches']:>8} "
                     f"{r['final_loss_mean']:>11.4g} ± {r['final_loss_std']:<8.2g} {acc}  "
                     f"{r['diverged']}/{r['n_seeds']}")
    for n in out["notes"]:
        lines.append(f"note: {n}")
    return "\n".join(lines)


def _write_csv(path, runs, task):
    cols = ["optimizer", "seed", "lr", "evaluations", "batches", "final_loss", "diverged",
            "seconds"] + (["final_test_accuracy", "impl"] if task == "digits" else [])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in runs:
            w.writerow([r.get(c) for c in cols])


def plot_curves(out, directory) -> list:
    """Plot train_curves.png: loss (and digits test accuracy) against gradient evaluations.

    Mean over seeds with the min-max band, one line per optimiser, the x axis in gradient
    evaluations (equal budgets: an Alice sample batch costs 3, a quick batch 1; R8).

    Args:
        out: the result dict of :func:`run` (with ``--out``, also saved as train.json).
        directory: the directory to write into (must exist).

    Returns:
        The paths written; [] without matplotlib.

    Example:
        After a run with ``--out`` (minutes, so not run by the doctests):

        >>> import json
        >>> plot_curves(json.load(open("results/train.json")), "results")  # doctest: +SKIP
        ['results/train_curves.png']
    """
    digits = out["task"] == "digits"
    fig, axes = new_figure(11.0 if digits else 6.5, 4.0, 2 if digits else 1, 1)
    if fig is None:
        return []
    panels = [("curve_loss", "training loss (full data) at mu", True)]
    if digits:
        panels.append(("curve_test_accuracy", "test accuracy", False))
    for ax, (key, label, logy) in zip(axes[0], panels):
        for k, row in enumerate(out["summary"]):
            rs = [r for r in out["runs"] if r["optimizer"] == row["optimizer"]
                  and not r["diverged"]]
            if not rs:
                continue
            m = min(len(r[key]) for r in rs)
            e = np.asarray(rs[0]["curve_evals"][:m])
            Y = np.asarray([r[key][:m] for r in rs], dtype=np.float64)
            style = "-" if row["optimizer"].startswith("alice") else "--"
            ax.plot(e, Y.mean(0), style, color=f"C{k}", lw=1.4,
                    label=f"{row['optimizer']} (lr {row['lr']:.3g})")
            ax.fill_between(e, Y.min(0), Y.max(0), color=f"C{k}", alpha=0.15, lw=0)
        if logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0.9, 1.0)  # accuracy: the interesting range (early points fall below)
        ax.set_xlabel("gradient evaluations")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{out['task']}: mean over {len(out['seeds'])} seeds (band: min-max), "
                 f"batch {out['batch']}", fontsize=10)
    path = os.path.join(directory, "train_curves.png")
    fig.savefig(path, dpi=110)
    return [path]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
