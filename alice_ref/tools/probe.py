"""``alice-ref probe``: curvature diagnostics of a model (alice_ref.tools.diagnostics).

Tasks: ``default`` -- the embedded ReLU teacher-student landscape in NumPy
(landscapes.ReluTeacherStudent; groups W, c, v, d; no extra install) -- and ``digits`` -- a
one-hidden-layer ReLU MLP on scikit-learn's bundled handwritten digits (real data, no download;
extra ``data`` = scikit-learn, plus torch). Prints a table, writes ``probe.json`` and, when
matplotlib is installed (extra ``plot``), ``power_law.png``, ``two_term.png`` and
``coverage.png`` to ``--out``.

Exit codes: 0 done; 1 the run failed (e.g. a non-finite loss); 2 bad arguments (argparse);
3 an optional dependency of the chosen task is missing (the message names the extra).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from alice_ref.landscapes import ReluTeacherStudent
from alice_ref.tools import diagnostics as D
from alice_ref.tools._output import Progress, log_axis, new_figure, write_json
from alice_ref.tools._tasks import (
    EXIT_FAIL,
    EXIT_MISSING,
    EXIT_OK,
    EXIT_USAGE,
    MissingDependency,
    cli_torch,
    load_digits_data,
    make_mlp,
)

__all__ = [
    "DEFAULT_GROUPS",
    "add_arguments",
    "format_report",
    "main",
    "plot_report",
    "register",
    "run",
]

DEFAULT_GROUPS = ("W", "c", "v", "d")  # ReluTeacherStudent.param_sizes order


# -- the probe -----------------------------------------------------------------------------------

def _default_problem(args):
    L = ReluTeacherStudent(seed=args.seed)
    theta = L.init_params(seed=args.seed + 1)
    rng = np.random.default_rng(args.seed + 2)
    if args.pretrain:
        theta = _pretrain_numpy(L, theta, args.pretrain, args.batch, rng)
    batch = None if args.batch == 0 else np.sort(rng.choice(L.X.shape[0], args.batch,
                                                           replace=False))
    prob = D.from_flat(lambda th: (L.loss(th, batch), L.grad(th, batch)), theta,
                       L.param_sizes, DEFAULT_GROUPS, lambda th: L.loss(th, batch))
    meta = {"task": "default", "model": "ReluTeacherStudent(n_in=6, n_hidden=12, "
            "teacher_hidden=8, n_samples=256)", "batch": args.batch or int(L.X.shape[0]),
            "pretrain_adam_steps": args.pretrain}
    return prob, meta


def _pretrain_numpy(L, theta, steps, batch, rng, lr=1e-2):
    """Plain Adam (lr 1e-2, betas 0.9/0.999) minibatch steps to probe a trained point."""
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    n = L.X.shape[0]
    for t in range(1, steps + 1):
        idx = None if batch == 0 else rng.choice(n, batch, replace=False)
        g = L.grad(theta, idx)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        theta = theta - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return theta


def _digits_problem(args):
    torch = cli_torch()  # threads: 1 by default (alice_ref.tools._tasks.cli_torch)
    from alice_torch.problems import from_torch

    Xtr, ytr, _, _ = load_digits_data()
    model = make_mlp(args.seed)
    loss_fn = torch.nn.functional.cross_entropy
    g = torch.Generator().manual_seed(args.seed + 2)
    if args.pretrain:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(args.pretrain):
            idx = torch.randint(len(ytr), (args.batch or len(ytr),), generator=g)
            opt.zero_grad()
            loss_fn(model(Xtr[idx]), ytr[idx]).backward()
            opt.step()
    idx = torch.randperm(len(ytr), generator=g)[:args.batch] if args.batch else \
        torch.arange(len(ytr))
    prob = D.Problem(*from_torch(model, loss_fn, Xtr[idx], ytr[idx], groups="parameters"))
    meta = {"task": "digits", "model": "MLP 64-64-10 (ReLU), cross-entropy, float32",
            "data": "sklearn.datasets.load_digits (train split)",
            "batch": len(idx), "pretrain_adam_steps": args.pretrain}
    return prob, meta


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``alice-ref probe`` to a parser.

    Args:
        p: the parser.

    Example:
        The defaults (None: resolved by the task and ``--quick``):

        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> a = p.parse_args([])
        >>> a.task, a.sigma, a.samples, a.direction
        ('default', 0.01, None, 'both')
    """
    p.add_argument("--task", choices=("default", "digits"), default="default",
                   help="default: NumPy ReLU teacher-student (no extra install); digits: torch "
                        "MLP on scikit-learn's bundled digits (extras data, torch)")
    p.add_argument("--seed", type=int, default=0, help="seed of model, batch and probes")
    p.add_argument("--samples", type=int, default=None,
                   help="antithetic probe pairs for density/curvature (default 32, quick 6)")
    p.add_argument("--steps", type=int, default=None,
                   help="random steps per step size for the loss prediction (default 48, "
                        "quick 8)")
    p.add_argument("--sigma", type=float, default=1e-2,
                   help="probe length sigma (Alice's lr); sweep sigma*2^k, k=-3..3; steps "
                        "sigma*(1/4..4)")
    p.add_argument("--batch", type=int, default=None,
                   help="fixed minibatch size the loss is probed on (0: all training data; "
                        "default 32 for default, 64 for digits)")
    p.add_argument("--pretrain", type=int, default=0,
                   help="Adam (lr 1e-2) minibatch steps before probing (0: probe at init)")
    p.add_argument("--direction", choices=D.DIRECTIONS + ("both",), default="both",
                   help="random steps of the loss prediction: rademacher (every element "
                        "+-tau), coordinate (one element +-tau) or both (default)")
    p.add_argument("--out", default=None, help="directory for probe.json and the PNG plots")
    p.add_argument("--quick", action="store_true", help="few probes/steps (smoke test)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers):
    """Add the ``probe`` subcommand to an argparse subparsers object; returns its parser.

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
        >>> args = parser.parse_args(["probe", "--quick", "--sigma", "0.05"])
        >>> args.quick, args.sigma, args.func is run
        (True, 0.05, True)
    """
    p = subparsers.add_parser(
        "probe", help="curvature diagnostics: glass density, curvature, power law, loss "
                      "prediction per layer",
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv=None) -> int:
    """Stand-alone entry: ``python -m alice_ref.tools.probe [options]``.

    Args:
        argv: the options (None: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 ok, 1 failure, 2 bad options, 3 missing optional package.

    Example:
        Bad options are refused before any work (the message goes to stderr):

        >>> main(["--samples", "1", "--no-progress"])
        2
    """
    parser = argparse.ArgumentParser(prog="alice-ref probe", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _validate(args):
    if args.samples is None:
        args.samples = 6 if args.quick else 32
    if args.steps is None:
        args.steps = 8 if args.quick else 48
    if args.batch is None:
        args.batch = 32 if args.task == "default" else 64
    for name in ("samples", "steps"):
        if getattr(args, name) < 2:
            raise ValueError(f"--{name} must be >= 2, got {getattr(args, name)}")
    if args.batch < 0 or args.pretrain < 0:
        raise ValueError("--batch and --pretrain must be >= 0")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if not (args.sigma > 0 and math.isfinite(args.sigma)):
        raise ValueError(f"--sigma must be > 0, got {args.sigma}")
    if args.task == "default" and args.batch > 256:
        raise ValueError(f"--batch must be <= 256 for the default task, got {args.batch}")


def run(args) -> int:
    """Handler of ``alice-ref probe``: run the diagnostics, print, write files; the exit code.

    Runs :func:`alice_ref.tools.diagnostics.diagnose` (R1-R4) on the chosen task, prints
    :func:`format_report`, and with ``--out`` writes probe.json and the plots.

    Args:
        args: the parsed options (see :func:`add_arguments`).

    Returns:
        0 ok, 2 bad options, 3 missing optional package.

    Example:
        A sigma that is not positive is a usage error:

        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> run(p.parse_args(["--sigma", "0", "--no-progress"]))
        2
    """
    try:
        _validate(args)
    except ValueError as e:
        print(f"alice-ref probe: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.pretrain and not args.no_progress:
        print(f"alice-ref probe: pretraining with {args.pretrain} Adam steps before probing...",
              file=sys.stderr, flush=True)
    try:
        prob, meta = (_digits_problem if args.task == "digits" else _default_problem)(args)
    except MissingDependency as e:
        print(f"alice-ref probe: {e}", file=sys.stderr)
        return EXIT_MISSING
    sigma = args.sigma
    n_sweep = max(2, args.samples // 2)
    scales = [sigma * 2.0 ** k for k in range(-3, 4)]
    steps = [sigma * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)]
    directions = list(D.DIRECTIONS) if args.direction == "both" else [args.direction]
    total = ((1 + 2 * args.samples) + (1 + n_sweep * len(scales))
             + args.steps * len(steps) * len(directions))
    bar = Progress(total, f"probe {args.task}", enabled=not args.no_progress)
    base = {"curvature": 0, "power_law": 1 + 2 * args.samples}
    for k, d in enumerate(directions):
        base[f"loss_prediction:{d}"] = (2 + 2 * args.samples + n_sweep * len(scales)
                                        + k * args.steps * len(steps))
    meta.update({"sigma": sigma, "seed": args.seed, "directions": directions,
                 "groups": list(prob.groups)})
    t0 = time.perf_counter()
    try:
        rep = D.diagnose(prob, sigma, n_probes=args.samples, scales=scales,
                         sweep_probes=n_sweep, step_sizes=steps, n_steps=args.steps,
                         direction=directions, seed=args.seed,
                         callback=lambda stage, d, t: bar.set(base[stage] + d), meta=meta)
    except (FloatingPointError, ValueError) as e:
        bar.close()
        print(f"alice-ref probe: failed: {e}", file=sys.stderr)
        return EXIT_FAIL
    bar.close()
    if not math.isfinite(rep.curvature.loss):
        print("alice-ref probe: failed: the loss at the probe point is not finite",
              file=sys.stderr)
        return EXIT_FAIL
    rep.meta["seconds"] = round(time.perf_counter() - t0, 3)
    rep.meta["evaluations"] = (rep.curvature.evaluations + rep.power_law.evaluations
                               + sum(r.evaluations for r in rep.loss_prediction))
    print(format_report(rep))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        d = rep.to_dict()
        written = [os.path.join(args.out, "probe.json")]
        if not args.no_plot:
            plots = plot_report(rep, args.out)
            if not plots:
                print("alice-ref probe: note: matplotlib is not installed, so no plots were "
                      "written (pip install 'alice-ref[plot]', or --no-plot to silence this)",
                      file=sys.stderr)
            written += plots
        d["meta"]["files"] = [os.path.basename(w) for w in written]
        write_json(written[0], d)
        print("wrote " + ", ".join(written))
    return EXIT_OK


# -- output --------------------------------------------------------------------------------------

def _pm(e, fmt="{:.3g}"):
    if e.value is None or not math.isfinite(e.value):
        return "n/a"
    se = "n/a" if not math.isfinite(e.se) else fmt.format(e.se)
    return f"{fmt.format(e.value)} ± {se}"


def format_report(rep: D.DiagnosticsReport) -> str:
    """The plain-text tables printed by ``alice-ref probe``.

    Per group: glass density and curvature (R2, R3) with alpha/|h| (R5), the power-law
    exponent (R1), and per step direction the loss-prediction table against R4's bound.

    Args:
        rep: a :class:`alice_ref.tools.diagnostics.DiagnosticsReport` (``meta['task']`` names it).

    Returns:
        The tables, lines joined by newlines.

    Example:
        On a quadratic every group is in the Hessian regime, p = 2 exactly:

        >>> import numpy as np
        >>> problem = D.from_flat(lambda th: (float(th @ th), 2 * th),
        ...                       np.array([1.0, -2.0, 0.5, 3.0]), [2, 2], names=["a", "b"])
        >>> text = format_report(D.diagnose(problem, 0.5, n_probes=2, n_steps=2,
        ...                                 meta={"task": "toy"}))
        >>> text.splitlines()[0][:36]
        'task toy: loss 14.25 at the probe po'
        >>> text.splitlines()[10].split()
        ['a', '2.000', '0.000', '[2.000,', '2.000]', '0.000', 'hessian']
    """
    c, pl = rep.curvature, rep.power_law
    lines = [(f"task {rep.meta.get('task', '?')}: loss {c.loss:.6g} at the probe point, "
             f"sigma {c.sigma:g}, {c.n_probes} probe pairs "
             f"(± is the two-way standard error)"), ""]
    hdr = (f"{'group':<12} {'n':>6} {'glass density rho':>22} {'hessian mean':>20} "
           f"{'|h| (abs)':>10} {'h^2 (rms)':>10} {'alpha/|h|':>18}")
    lines += [hdr, "-" * len(hdr)]
    for g in c.groups:
        lines.append(f"{g.name[:12]:<12} {g.size:>6} {_pm(g.glass_density):>22} "
                     f"{_pm(g.hessian_mean):>20} {g.curvature_abs.value:>10.3g} "
                     f"{g.curvature_rms.value:>10.3g} {_pm(g.glass_to_hessian):>18}")
    lines += ["", (f"power law E||g(nu+tz)-g(nu)||^2 ~ t^p, t = {pl.scales[0]:.3g}.."
              f"{pl.scales[-1]:.3g} ({int(pl.ci_level * 100)}% CI; 1 = glass, 2 = Hessian)")]
    hdr = f"{'group':<12} {'p':>7} {'se':>7} {'CI':>18} {'fit se':>7}  regime"
    lines += [hdr, "-" * len(hdr)]
    for g in pl.groups:
        ci = f"[{g.ci[0]:.3f}, {g.ci[1]:.3f}]" if math.isfinite(g.se) else "n/a"
        lines.append(f"{g.name[:12]:<12} {g.p:>7.3f} {g.se:>7.3f} {ci:>18} {g.fit_se:>7.3f}  "
                     f"{g.regime}")
    lines += ["", (f"two-term fit y = a t + b t^2 (a: glass, b: Hessian; crossover t* = a/b, "
              f"glass dominates below; ± se, {int(pl.ci_level * 100)}% CI)")]
    hdr = (f"{'group':<12} {'a':>20} {'b':>20} {'t*':>20} {'t* CI':>22}")
    lines += [hdr, "-" * len(hdr)]
    for g in pl.groups:
        tw = g.two_term
        if tw is None:
            lines.append(f"{g.name[:12]:<12} {'n/a':>20} {'n/a':>20} {'n/a':>20} {'n/a':>22}")
            continue
        lines.append(f"{g.name[:12]:<12} {_fmt(tw['a']) + ' ± ' + _fmt(tw['a_se']):>20} "
                     f"{_fmt(tw['b']) + ' ± ' + _fmt(tw['b_se']):>20} "
                     f"{_fmt(tw['t_star']) + ' ± ' + _fmt(tw['t_star_se']):>20} "
                     f"{_ci(tw['t_star_ci']):>22}")
    for lp in rep.loss_prediction:
        lines += ["", (f"loss prediction, {lp.direction} steps (rho pooled per {lp.pool}): "
                  f"coverage = P(|dL - Q| <= B), nominal >= {D.NOMINAL_COVERAGE:.3f}; "
                  f"ratio = mean|dL - Q| / mean B (R4: <= 1)")]
        hdr = (f"{'tau':>9} {'coverage':>14} {'dL<=Q+B':>8} {'ratio':>14} {'mean|dL|':>10} "
               f"{'|dL-lin|':>10} {'|dL-Q|':>10}")
        lines += [hdr, "-" * len(hdr)]
        for s in lp.steps:
            lines.append(f"{s.tau:>9.3g} {s.coverage:>7.2f} ± {s.coverage_se:<4.2f} "
                         f"{s.upper_coverage:>8.2f} {s.mean_ratio:>6.3f} ± "
                         f"{s.mean_ratio_se:<5.3f} {s.mean_abs_dl:>10.3g} {s.mae_linear:>10.3g} "
                         f"{s.mae_quadratic:>10.3g}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3g}"


def _ci(c) -> str:
    return "n/a" if c is None or not all(math.isfinite(x) for x in c) else \
        f"[{c[0]:.3g}, {c[1]:.3g}]"


def _power_fit(g, t):
    """The single power law through the mean curve (the log-log fit's line) at t."""
    lt, ly = np.log(np.asarray(g.t)), np.log(np.asarray(g.y))
    a = ly.mean() - g.p * lt.mean()
    return np.exp(a + g.p * np.log(t))


def _shared_legend(fig, axes, ncol):
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if labels:
        fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center",
                   ncol=min(ncol, len(labels)), fontsize=7.5, frameon=False)


def plot_report(rep: D.DiagnosticsReport, out: str) -> list:
    """Plot a report: power_law.png, two_term.png (R1) and coverage.png (R4).

    power_law.png: per group, y(t) on log-log axes with the single power law t^p and the
    two-term fit a t + b t^2. two_term.png: per group, y(t) with the fit's glass part a t and
    Hessian part b t^2, the crossover t* = a / b, and below it the local slope
    d log y / d log t bending from 1 (glass) to 2 (Hessian). coverage.png: the loss
    prediction against R4's bound.

    Args:
        rep: a :class:`alice_ref.tools.diagnostics.DiagnosticsReport`.
        out: the directory to write into (must exist).

    Returns:
        The paths written; [] without matplotlib.

    Example:
        Three PNG files (none without matplotlib) for a rough loss sum theta^2 + cos(20 theta)/20
        (glass makes the bounds on the log axes positive):

        >>> import os, tempfile
        >>> import numpy as np
        >>> problem = D.from_flat(lambda th: (float(th @ th + np.cos(20 * th).sum() / 20),
        ...                                   2 * th - np.sin(20 * th)), np.ones(4), [4])
        >>> files = plot_report(D.diagnose(problem, 0.5, n_probes=2, n_steps=2),
        ...                     tempfile.mkdtemp())
        >>> sorted(os.path.basename(f) for f in files) in (
        ...     [], ["coverage.png", "power_law.png", "two_term.png"])
        True
    """
    groups = rep.power_law.groups
    ncols = min(4, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = new_figure(3.3 * ncols, 3.0 * nrows + 0.6, ncols, nrows)
    if fig is None:
        return []
    files = []
    sigma = rep.curvature.sigma
    for ax, g in zip(axes.ravel(), groups):
        t, y, se = np.asarray(g.t), np.asarray(g.y), np.asarray(g.y_se)
        ok = y > 0
        se = np.where(np.isfinite(se), se, 0.0)
        ax.errorbar(t[ok], y[ok], yerr=[np.minimum(se[ok], 0.9 * y[ok]), se[ok]], fmt="o",
                    color="C0", ms=4, capsize=2, label="measured y(t) ± se", zorder=3)
        tt = np.geomspace(t.min(), t.max(), 100)
        title = f"{g.name} (n={g.size}): {g.regime}"
        if math.isfinite(g.p) and ok.all():
            ax.plot(tt, _power_fit(g, tt), "-", color="C1", lw=1.3,
                    label="single power law c t^p")
            tw = g.two_term
            if tw is not None:
                m = tw["a"] * tt + tw["b"] * tt**2
                ax.plot(tt[m > 0], m[m > 0], "-.", color="C2", lw=1.3,
                        label="two-term fit a t + b t^2")
            for q, style in ((1.0, ":"), (2.0, "--")):
                ax.plot(t, y[len(y) // 2] * (t / t[len(t) // 2]) ** q, style, color="gray",
                        lw=0.8, label=f"slope {q:g} (guide)")
            title += f"\np = {g.p:.2f} [{g.ci[0]:.2f}, {g.ci[1]:.2f}]"
        ax.axvline(sigma, color="k", lw=0.6, alpha=0.4, label="sigma")
        log_axis(ax, "x")
        log_axis(ax, "y", values=[y[ok]])
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel("perturbation length t", fontsize=8)
        ax.tick_params(labelsize=7.5)
    for ax in axes.ravel()[len(groups):]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("y(t) = E mean (g(nu+tz) - g(nu))^2", fontsize=8)
    _shared_legend(fig, axes.ravel()[:len(groups)], 6)
    fig.suptitle(f"R1 power law per group ({rep.meta.get('task', '')}, sigma {sigma:g})",
                 fontsize=10)
    files.append(os.path.join(out, "power_law.png"))
    fig.savefig(files[-1], dpi=110)

    files.append(_plot_two_term(rep, out))

    fig, axes = new_figure(12.0, 4.7, 3, 1)
    for k, lp in enumerate(rep.loss_prediction):
        steps, col = lp.steps, f"C{k}"
        tau = np.array([s.tau for s in steps])
        lab = lp.direction
        ax = axes[0, 0]
        ax.errorbar(tau, [s.coverage for s in steps], yerr=[s.coverage_se for s in steps],
                    fmt="o-", color=col, capsize=2, label=f"{lab}: |dL - Q| <= B")
        ax.plot(tau, [s.upper_coverage for s in steps], "s--", color=col, ms=4, alpha=0.6,
                label=f"{lab}: dL <= Q + B")
        ax = axes[0, 1]
        ax.errorbar(tau, [s.mean_ratio for s in steps], yerr=[s.mean_ratio_se for s in steps],
                    fmt="o-", color=col, capsize=2, label=lab)
        ax = axes[0, 2]
        dl = np.array([s.mean_abs_dl for s in steps])
        rel = lambda v, dl=dl: np.asarray(v) / dl
        ax.plot(tau, rel([s.mae_linear for s in steps]), "o:", color=col,
                label=f"{lab}: |dL - g.d| (linear)")
        ax.plot(tau, rel([s.mae_quadratic for s in steps]), "s-", color=col,
                label=f"{lab}: |dL - Q| (diag. quadratic)")
        ax.plot(tau, rel([s.mean_bound for s in steps]), "^--", color=col, alpha=0.6,
                label=f"{lab}: B (R4 glass bound)")
    ax = axes[0, 0]
    ax.axhline(D.NOMINAL_COVERAGE, color="gray", ls=":", label="nominal 0.575 (Gaussian glass)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("fraction of random steps")
    ax.set_title("coverage of R4's bound", fontsize=9)
    axes[0, 1].axhline(1.0, color="gray", ls=":", label="R4 in expectation: <= 1")
    log_axis(axes[0, 1], "y", values=[[s.mean_ratio for s in lp.steps]
                                      for lp in rep.loss_prediction] + [[1.0]])
    axes[0, 1].set_title("mean|dL - Q| / mean B", fontsize=9)
    log_axis(axes[0, 2], "y")
    axes[0, 2].set_title("errors relative to mean |dL|", fontsize=9)
    taus = sorted({s.tau for lp in rep.loss_prediction for s in lp.steps})
    for ax in axes[0]:
        if log_axis(ax, "x", values=[taus]) == "log":
            ax.set_xticks(taus, [f"{v:.3g}" for v in taus])
        ax.set_xlabel("step size tau (per element)")
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                  frameon=False)
    fig.suptitle(f"loss prediction ({rep.meta.get('task', '')}, sigma {sigma:g})",
                 fontsize=10)
    files.append(os.path.join(out, "coverage.png"))
    fig.savefig(files[-1], dpi=110)
    return files


def _plot_two_term(rep: D.DiagnosticsReport, out: str) -> str:
    """two_term.png: per group, y(t) = a t + b t^2 against the single power law (R1)."""
    groups = rep.power_law.groups
    n = len(groups)
    fig, axes = new_figure(3.4 * n, 6.4, n, 2)
    sigma = rep.curvature.sigma
    for j, g in enumerate(groups):
        top, bot = axes[0, j], axes[1, j]
        t, y, se = np.asarray(g.t), np.asarray(g.y), np.asarray(g.y_se)
        se = np.where(np.isfinite(se), se, 0.0)
        ok = y > 0
        top.errorbar(t[ok], y[ok], yerr=[np.minimum(se[ok], 0.9 * y[ok]), se[ok]], fmt="o",
                     color="C0", ms=4, capsize=2, label="measured y(t) ± se", zorder=3)
        tt = np.geomspace(t.min(), t.max(), 200)
        tw = g.two_term
        title = f"{g.name} (n={g.size})"
        if math.isfinite(g.p) and ok.all():
            top.plot(tt, _power_fit(g, tt), "-", color="C1", lw=1.2,
                     label="single power law c t^p")
            bot.axhline(g.p, color="C1", lw=1.2, label="single power law: p")
        if tw is not None:
            a, b = tw["a"], tw["b"]
            m = a * tt + b * tt**2
            top.plot(tt[m > 0], m[m > 0], "-.", color="C2", lw=1.6,
                     label="two-term fit a t + b t^2")
            if a > 0:
                top.plot(tt, a * tt, ":", color="C3", lw=1.0, label="glass part a t (slope 1)")
            if b > 0:
                top.plot(tt, b * tt**2, "--", color="C4", lw=1.0,
                         label="Hessian part b t^2 (slope 2)")
            pos = a + b * tt > 0
            bot.plot(tt[pos], (a + 2 * b * tt[pos]) / (a + b * tt[pos]), "-.", color="C2",
                     lw=1.6, label="two-term fit: (a + 2bt)/(a + bt)")
            title += (f"\na = {_fmt(a)} ± {_fmt(tw['a_se'])}, b = {_fmt(b)} ± {_fmt(tw['b_se'])}"
                      f"\nt* = a/b = {_fmt(tw['t_star'])} {_ci(tw['t_star_ci'])}")
            ts = tw["t_star"]
            if math.isfinite(ts) and ts > 0:
                lo, hi = tw["t_star_ci"]
                for ax in (top, bot):
                    ax.axvline(ts, color="C2", lw=1.0, alpha=0.8, label="crossover t* = a/b")
                    if math.isfinite(lo) and math.isfinite(hi):
                        ax.axvspan(max(lo, tt[0] / 4), min(hi, tt[-1] * 4), color="C2",
                                   alpha=0.1, lw=0, label="t* 95% CI")
        # the measured local slope between neighbouring t (errors treated as independent)
        if ok.all() and t.size > 1:
            mid = np.sqrt(t[1:] * t[:-1])
            lr = np.log(t[1:] / t[:-1])
            slope = np.log(y[1:] / y[:-1]) / lr
            sse = np.sqrt((se[1:] / y[1:]) ** 2 + (se[:-1] / y[:-1]) ** 2) / lr
            bot.errorbar(mid, slope, yerr=sse, fmt="o", color="C0", ms=4, capsize=2,
                         label="measured slope between neighbours", zorder=3)
        for q, style in ((1.0, ":"), (2.0, "--")):
            bot.axhline(q, color="gray", ls=style, lw=0.8)
        for ax in (top, bot):
            ax.axvline(sigma, color="k", lw=0.6, alpha=0.4, label="sigma")
            log_axis(ax, "x", values=[t])
            ax.set_xlim(t.min() / 1.3, t.max() * 1.3)
            ax.tick_params(labelsize=7.5)
        if log_axis(top, "y", values=[y[ok]]) == "log":  # the parts may run far off the data
            top.set_ylim(y[ok].min() / 3, y[ok].max() * 2)
        bot.set_ylim(0.5, 2.6)
        bot.set_xlabel("perturbation length t", fontsize=8)
        top.set_title(title, fontsize=8)
    axes[0, 0].set_ylabel("y(t) = E mean (g(nu+tz) - g(nu))^2", fontsize=8)
    axes[1, 0].set_ylabel("local slope d log y / d log t", fontsize=8)
    _shared_legend(fig, axes.ravel(), 5)
    fig.suptitle(f"R1 two-term fit y = a t + b t^2 per group ({rep.meta.get('task', '')}, "
                 f"sigma {sigma:g}): glass below t*, Hessian above", fontsize=10)
    path = os.path.join(out, "two_term.png")
    fig.savefig(path, dpi=110)
    return path


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
