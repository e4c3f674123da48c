"""``alice-ref train``: Alice variants against baselines at equal gradient-evaluation budgets.

Tasks: ``default`` -- the embedded ReLU teacher-student landscape (NumPy, minibatches of its
256 samples) trained with the NumPy Alice driver (alice_ref.Alice); ``digits`` -- a ReLU MLP on
scikit-learn's bundled digits, trained with ``alice_torch.Alice`` when importable (else the
core's driver over torch tensors; the summary says which) and torch.optim baselines.

Optimisers, named as the paper's experiment scripts name them (T1-T7): ``t1-adam``, ``t2-sgdm``
(SGD with momentum 0.9), ``t3-adahessian`` (digits only; eps 1e-8 as the scripts;
pytorch_optimizer.AdaHessian when installed, else alice_ref's own), and the Alice variants with
quick_steps 0 as the scripts: ``t4-alice-glass`` (hess_comp 'zero'), ``t5-alice-abs`` ('abs',
no glass), ``t6-alice-glass-abs`` ('abs' + glass), ``t7-alice-rms`` ('rms', no glass). Variants
that differ say so in their names: ``t4-alice-glass-q3`` ... ``t6-alice-glass-abs-q3`` (three
quick steps per sample step, the library default), ``t7-alice-rms-glass-q3`` ('rms' with the
glass kept), ``t3-adahessian-eps1e-4`` (eps 1e-4). The names before (alice, alice-abs,
alice-glass, alice-rms, adam, sgdm, adahessian) are accepted as aliases of the -q3 variants, T1,
T2 and the eps-1e-4 AdaHessian. Learning rates are per task (tuned, below), not the scripts'
CIFAR ones; ``alice-ref experiment`` runs the scripts' protocol. For the NumPy task the Adam and
SGD-momentum baselines are the few lines of alice_ref.tools._training (textbook updates,
labelled "numpy baseline"); for digits they are torch.optim's.

``--equal evaluations`` (default): equal budgets of gradient evaluations, not batches: an Alice
sample step costs 3 (g+, g-, g0), a quick step 1, so Alice averages (3+q)/(q+1) per batch after
warm-up (R8); Adam and SGD cost 1; AdaHessian costs 2 (a gradient and one Hessian-vector
product). A run stops before the batch that would exceed the budget. ``--equal epochs``: every
optimiser runs ``--epochs`` passes over the training data (the scripts' protocol), whatever it
costs. The loss on the full training set at the reported parameters (Alice's centre mu) is
measured at ~40 checkpoints and is not counted.

Exit codes: 0 done (a diverged run is reported, not an error); 2 bad arguments; 3 an optional
dependency of the chosen task is missing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from alice_ref.tools import _training as T
from alice_ref.tools._output import (
    Progress,
    json_safe,
    line_styles,
    log_axis,
    new_figure,
    write_csv,
    write_json,
)
from alice_ref.tools._tasks import EXIT_MISSING, EXIT_OK, EXIT_USAGE, MissingDependency
from alice_ref.tools._training import ALICE_VARIANTS, AdamNumpy, SGDMomentumNumpy

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

OPTIMIZERS = ("t1-adam", "t2-sgdm", "t3-adahessian") + tuple(ALICE_VARIANTS) + (
    "t3-adahessian-eps1e-4",)
DEFAULT_OPTIMIZERS = ("t1-adam", "t2-sgdm", "t3-adahessian", "t4-alice-glass", "t5-alice-abs",
                      "t6-alice-glass-abs", "t7-alice-rms")
# Learning rates per task (Alice: lr = sigma and the step-bound scale; its centre moves by
# phi * delta with |delta| <= 2 lr |G|/sqrt(V), so Alice at lr moves like Adam at ~0.2 lr).
# Centres of the `--tune` grids, set from tuning runs at the default budgets (the docs' results
# were produced with --tune: grid x TUNE_FACTORS, worst final loss over TUNE_SEEDS, which are
# not reported seeds); see docs/diagnostics.md.
_OLD_LR = {  # tuned under the former names (q = 3); the T-variants start from the same grid
    "default": {"alice": 0.025, "alice-abs": 0.1, "alice-glass": 0.05, "alice-rms": 0.025,
                "adam": 0.02, "sgdm": 0.2, "adahessian": 0.1},
    "digits": {"alice": 0.025, "alice-abs": 0.1, "alice-glass": 0.05, "alice-rms": 0.025,
               "adam": 0.04, "sgdm": 0.4, "adahessian": 0.2},
}
_BASE = {"t4-alice-glass": "alice-glass", "t5-alice-abs": "alice-abs",
         "t6-alice-glass-abs": "alice", "t7-alice-rms": "alice-rms", "t3-adahessian": "adahessian"}
DEFAULT_LR = {task: {name: lrs[_BASE.get(name) or next(k for k, v in T.ALIASES.items()
                                                       if v == name)]
                     for name in OPTIMIZERS} for task, lrs in _OLD_LR.items()}
DEFAULT_BUDGET = {"default": 3000, "digits": 1000}
TUNE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
TUNE_SEEDS = (1000, 1001)  # tuning seeds, disjoint from the reported seeds
CSV_COLUMNS = ["optimizer", "seed", "lr", "evaluations", "batches", "final_loss", "diverged",
               "seconds"]
DIGITS_COLUMNS = ["final_test_accuracy", "impl"]  # train.csv's extra columns for digits


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
                   help=f"comma list from {','.join(OPTIMIZERS)} or the old names "
                        f"{','.join(T.ALIASES)} (default: T1-T7, those that apply)")
    p.add_argument("--equal", choices=("evaluations", "epochs"), default="evaluations",
                   help="equal gradient-evaluation budgets (default) or equal epochs")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per run with --equal epochs (default 10, quick 1)")
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
        try:
            seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--seeds must be a count N or a comma list of integers >= 0, "
                             f"got {args.seeds!r}") from None
        if not seeds or min(seeds) < 0:
            raise ValueError(f"--seeds must list integers >= 0, got {args.seeds!r}")
    else:
        try:
            k = int(args.seeds)
        except ValueError:
            raise ValueError(f"--seeds must be a count N or a comma list of integers >= 0, "
                             f"got {args.seeds!r}") from None
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
        names = list(DEFAULT_OPTIMIZERS)
    else:
        names = [T.ALIASES.get(s.strip(), s.strip()) for s in args.optimizers.split(",")
                 if s.strip()]
        bad = [s for s in names if s not in OPTIMIZERS]
        if bad or not names:
            raise ValueError(f"--optimizers must name some of {', '.join(OPTIMIZERS)}, got "
                             f"{args.optimizers!r}")
    lrs = dict(DEFAULT_LR[args.task])
    for item in args.lr:
        k, _, v = item.partition("=")
        k = T.ALIASES.get(k, k)
        if k not in OPTIMIZERS or not v:
            raise ValueError(f"--lr must be NAME=LR with NAME in {', '.join(OPTIMIZERS)}, got "
                             f"{item!r}")
        try:
            lrs[k] = float(v)
        except ValueError:
            raise ValueError(f"--lr {item!r}: LR must be a number, got {v!r}") from None
        if not lrs[k] > 0:
            raise ValueError(f"--lr {k} must be > 0, got {v}")
    epochs = getattr(args, "epochs", None)
    if getattr(args, "equal", "evaluations") == "epochs":
        epochs = epochs if epochs is not None else (1 if args.quick else 10)
        if epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {epochs}")
        max_batches = epochs * (n_max // batch)
        budget = 3 * max_batches  # no evaluation budget binds: Alice costs at most 3 a batch
    elif epochs is not None:
        raise ValueError("--epochs needs --equal epochs")
    else:
        max_batches = None
    args.max_batches = max_batches
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
            ctx = T.digits_setup()
        except MissingDependency as e:
            print(f"alice-ref train: {e}", file=sys.stderr)
            return EXIT_MISSING
        if any(n in T.ADAHESSIAN_EPS for n in names) and not isinstance(T.adahessian_or_none(),
                                                                          type):
            notes.append("AdaHessian: pytorch_optimizer is not installed; alice_ref's own "
                         "AdaHessian (alice_ref.tools.experiment.adahessian) ran")
        if any(n in ALICE_VARIANTS for n in names) and T.alice_torch_or_none() is None:
            notes.append("alice_torch is not importable: Alice variants ran on the core's "
                         "driver (alice_ref.Alice) over torch tensors")
    elif any(n in T.ADAHESSIAN_EPS for n in names):
        names = [n for n in names if n not in T.ADAHESSIAN_EPS]
        notes.append("t3-adahessian skipped: only available for --task digits (it needs torch "
                     "Hessian-vector products)")
    if not names:
        print("alice-ref train: error: no optimiser left to run", file=sys.stderr)
        for n in notes:
            print(f"note: {n}", file=sys.stderr)
        return EXIT_USAGE

    def one(name, lr, seed, tick):
        if args.task == "default":
            return T.run_default(name, lr, seed, budget, batch, tick, args.max_batches)
        return T.run_digits(name, lr, seed, budget, batch, tick, ctx, args.max_batches)

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
           "equal": args.equal, "max_batches": args.max_batches,
           "learning_rates": {n: lrs[n] for n in names}, "tuning": tuning, "notes": notes,
           "summary": summary, "seconds": round(time.perf_counter() - t0, 3),
           "runs": runs}
    print(format_summary(out))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        files = [os.path.join(args.out, "train.csv"), os.path.join(args.out, "train.json")]
        write_csv(files[0], runs, CSV_COLUMNS + (DIGITS_COLUMNS if args.task == "digits" else []))
        if not args.no_plot:
            files += plot_curves(out, args.out)
        out["files"] = [os.path.basename(f) for f in files]
        write_json(files[1], json_safe(out))
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
    fig, axes = new_figure(11.0 if digits else 6.5, 4.8, 2 if digits else 1, 1)
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
            st = line_styles(k, m)  # own colour, dashes and marker: overlapping curves show
            ax.plot(e, Y.mean(0), lw=1.4, ms=4.5, label=f"{row['optimizer']} (lr {row['lr']:.3g})",
                    **st)
            ax.fill_between(e, Y.min(0), Y.max(0), color=st["color"], alpha=0.12, lw=0)
        if logy:
            log_axis(ax, "y")
        else:
            ax.set_ylim(0.9, 1.0)  # accuracy: the interesting range (early points fall below)
        ax.set_xlabel("gradient evaluations")
        ax.set_ylabel(label)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center",
               ncol=min(4 if digits else 3, max(1, len(labels))),
               fontsize=8, frameon=False)
    fig.suptitle(f"{out['task']}: mean over {len(out['seeds'])} seeds (band: min-max), "
                 f"batch {out['batch']}", fontsize=10)
    path = os.path.join(directory, "train_curves.png")
    fig.savefig(path, dpi=110)
    return [path]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
