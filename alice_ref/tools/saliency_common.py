"""Shared by ``alice-ref prune`` and ``alice-ref quantize``: networks, estimates, statistics.

The networks are ReLU models on scikit-learn's bundled digits (``_tasks.load_digits_data``):
``mlp`` (``_tasks.make_mlp``, 64-64-10) and ``cnn`` (``alice_torch.saliency.make_cnn``), in
float64, trained with Adam (``--state trained``) or at their initialisation (``--state init``).
The estimates g, h, rho per element come from the diagnostics' probes
(:func:`alice_ref.tools.diagnostics.curvature_probe`: the exact gradient at the point, the mean
Hutchinson diagonal (R2) and the mean glass density (R3) over antithetic Rademacher pairs at
scale sigma) on the full training set, the loss whose change is predicted. The statistics are
Spearman's rank correlation and a relative error with percentile-bootstrap intervals.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from alice_ref.tools import diagnostics as D
from alice_ref.tools._output import Progress
from alice_ref.tools._tasks import (
    EXIT_MISSING,
    EXIT_USAGE,
    MissingDependency,
    cli_torch,
    load_digits_data,
    make_mlp,
    need_torch,
)

__all__ = ["NETS", "add_common_arguments", "bootstrap_ci", "build_model", "estimate",
           "relative_error", "spearman", "start"]

NETS = ("mlp", "cnn")


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``prune`` and ``quantize``: the network, its training and the probes.

    Args:
        p: the parser.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_common_arguments(p)
        >>> a = p.parse_args([])
        >>> a.net, a.state, a.sigma, a.probes
        ('mlp', 'trained', None, None)
    """
    p.add_argument("--net", choices=NETS, default="mlp",
                   help="mlp: 64-64-10 ReLU MLP; cnn: conv(8)-conv(16)-pool-linear ReLU CNN")
    p.add_argument("--state", choices=("trained", "init"), default="trained",
                   help="trained (Adam) or at initialisation")
    p.add_argument("--seed", type=int, default=0, help="seed of model, training and probes")
    p.add_argument("--train-steps", type=int, default=None,
                   help="Adam steps (lr 1e-2, batch 64) for --state trained (default 400)")
    p.add_argument("--sigma", type=float, default=None,
                   help="probe scale (default: median |weight|, the typical pruning move)")
    p.add_argument("--probes", type=int, default=None,
                   help="antithetic Rademacher pairs for h and rho (default 64, quick 4)")
    p.add_argument("--bootstrap", type=int, default=None,
                   help="bootstrap resamples for the intervals (default 1000, quick 50)")
    p.add_argument("--out", default=None, help="directory for the JSON, CSV and PNG files")
    p.add_argument("--tag", default=None, help="file-name prefix (default: NET_STATE)")
    p.add_argument("--quick", action="store_true", help="tiny setting (smoke test)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_common(args) -> None:
    """Fill the defaults that depend on ``--quick`` and check ranges (ValueError)."""
    q = args.quick
    if args.train_steps is None:
        args.train_steps = 30 if q else 400
    if args.probes is None:
        args.probes = 4 if q else 64
    if args.bootstrap is None:
        args.bootstrap = 50 if q else 1000
    if args.tag is None:
        args.tag = f"{args.net}_{args.state}"
    if args.train_steps < 0 or args.probes < 2 or args.bootstrap < 10:
        raise ValueError("--train-steps must be >= 0, --probes >= 2, --bootstrap >= 10")
    if args.sigma is not None and not (args.sigma > 0 and math.isfinite(args.sigma)):
        raise ValueError(f"--sigma must be > 0, got {args.sigma}")


def build_model(args, tick=None):
    """(model, (Xtr, ytr, Xte, yte), meta): the float64 network, trained or at init.

    Raises:
        MissingDependency: torch or scikit-learn is missing.
    """
    torch = need_torch()
    from alice_torch.saliency import make_cnn, train

    Xtr, ytr, Xte, yte = load_digits_data()
    Xtr, Xte = Xtr.double(), Xte.double()
    model = (make_mlp(args.seed) if args.net == "mlp" else make_cnn(args.seed)).double()
    steps = args.train_steps if args.state == "trained" else 0
    if steps:
        train(model, Xtr, ytr, steps, lr=1e-2, batch=64, seed=args.seed + 1, callback=tick)
    torch.set_grad_enabled(True)
    desc = ("MLP 64-64-10 (ReLU)" if args.net == "mlp" else
            "CNN conv3x3(8)-ReLU-conv3x3(16)-ReLU-avgpool2-linear(256->10)")
    meta = {"net": args.net, "model": desc + ", cross-entropy, float64", "state": args.state,
            "train_steps": steps, "optimizer": "Adam lr 1e-2 batch 64" if steps else None,
            "data": "sklearn.datasets.load_digits, stratified 80/20 split (seed 0)",
            "n_train": len(ytr), "n_test": len(yte), "seed": args.seed,
            "n_params": int(sum(p.numel() for p in model.parameters()))}
    return model, (Xtr, ytr, Xte, yte), meta


def start(name: str, args, validate, total):
    """The opening both commands share: the options checked (exit 2), torch with the CLI's
    threads (:func:`alice_ref.tools._tasks.cli_torch`; exit 3 without it), then the network
    built under a progress bar of ``total(args)`` ticks (counted once the options are).

    Returns:
        (model, data, meta, bar, t0), or an exit code when the command cannot go on.
    """
    try:
        validate(args)
    except ValueError as e:
        print(f"alice-ref {name}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    t0 = time.perf_counter()
    bar = None
    try:
        cli_torch()
        bar = Progress(total(args), f"{name} {args.tag}", enabled=not args.no_progress)
        model, data, meta = build_model(args, tick=lambda k: bar.set(k))
    except MissingDependency as e:
        if bar is not None:
            bar.close()
        print(f"alice-ref {name}: {e}", file=sys.stderr)
        return EXIT_MISSING
    return model, data, meta, bar, t0


def estimate(model, X, y, sigma, probes, seed, callback=None):
    """Per-parameter (theta, g, h, rho) as float64 NumPy arrays from the diagnostics' probes.

    g is the exact full-batch gradient at the point; h the mean Hutchinson diagonal (R2) and
    rho the mean glass density (R3) over ``probes`` antithetic pairs at scale ``sigma``
    (:func:`alice_ref.tools.diagnostics.curvature_probe` on (X, y)).

    Returns:
        (dict parameter name -> (theta, g, h, rho), loss at the point, the probe report).
    """
    torch = need_torch()
    from alice_torch.problems import from_torch

    prob = D.Problem(*from_torch(model, torch.nn.functional.cross_entropy, X, y,
                                 groups="parameters"))
    rep = D.curvature_probe(prob, sigma, n_probes=probes, seed=seed, callback=callback)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    out = {}
    for i, n in enumerate(names):
        th = prob.params[i].detach().cpu().numpy().astype(np.float64)
        out[n] = (th, rep.grad[i], rep.hess_diag[i], np.maximum(rep.rho[i], 0.0))
    return out, rep.loss, rep


def default_sigma(model) -> float:
    """Median |weight| over the prunable layers: the typical size of a pruning move."""
    from alice_torch.saliency import prunable

    w = np.concatenate([m.weight.detach().abs().reshape(-1).cpu().numpy()
                        for _, m in prunable(model)])
    return float(np.median(w))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with ties averaged."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=np.float64)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    if np.any(counts > 1):
        sums = np.bincount(inv, weights=r)
        r = sums[inv] / counts[inv]
    return r


def spearman(a, b) -> float:
    """Spearman's rank correlation of a and b (Pearson correlation of their ranks).

    Example:
        >>> spearman([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 15.0, 40.0])
        0.8
    """
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / den if den > 0 else math.nan


def relative_error(pred, truth) -> float:
    """Mean |pred - truth| / mean |truth| (the mean absolute error in units of the mean change).

    Example:
        >>> relative_error([1.0, 3.0], [2.0, 2.0])
        0.5
    """
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    den = float(np.mean(np.abs(t)))
    return float(np.mean(np.abs(p - t))) / den if den > 0 else math.nan


def bootstrap_ci(stat, arrays, reps: int, seed: int = 0, level: float = 0.95) -> list:
    """[value, lo, hi]: stat(*arrays) and its percentile-bootstrap interval over items.

    Example:
        The mean of a constant has a zero-width interval:

        >>> bootstrap_ci(lambda a: float(np.mean(a)), [np.ones(5)], 20)
        [1.0, 1.0, 1.0]
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    n = len(arrays[0])
    value = stat(*arrays)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(int(reps)):
        idx = rng.integers(0, n, n)
        v = stat(*[a[idx] for a in arrays])
        if math.isfinite(v):
            vals.append(v)
    if not vals:
        return [value, math.nan, math.nan]
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return [float(value), float(lo), float(hi)]


def fmt_ci(v) -> str:
    """'value [lo, hi]' with 3 significant digits, 'n/a' for a missing value."""
    if v is None or v[0] is None or not math.isfinite(v[0]):
        return "n/a"
    return f"{v[0]:.3g} [{v[1]:.3g}, {v[2]:.3g}]"
