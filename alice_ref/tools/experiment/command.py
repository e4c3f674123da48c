"""``alice-ref experiment {methods,naq,power-law}``: the paper's experiments as presets.

The protocol is :mod:`alice_ref.tools.experiment.protocol`'s. With ``--data DIR`` (CIFAR-10 in
the python-pickle batch format, read locally, never downloaded) it runs at real scale; without,
at reduced scale on scikit-learn's embedded digits. Output in ``--out`` (default
``experiment-PRESET``): ``PRESET_METHOD.csv`` per method (every log row of every seed),
``summary.csv`` and ``summary.md`` (final rows, mean and std over seeds), ``curves.png`` (mean
and min-max band over seeds of train and test loss and accuracy), for ``power-law`` also
``power_law.csv`` and ``power_law.png``; checkpoints in ``checkpoints/`` make a rerun resume.

Exit codes: 0 done; 2 bad arguments (all checked before any work); 3 a missing optional
dependency (torch; scikit-learn without --data).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from alice_ref.tools._output import Progress, new_figure, write_csv, write_json
from alice_ref.tools._tasks import EXIT_MISSING, EXIT_OK, EXIT_USAGE, MissingDependency

from . import protocol as P

__all__ = ["add_arguments", "register", "run", "main"]

HELP = "run the paper's experiments (methods T1-T7, the NAQ ablation, power laws) as presets"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``alice-ref experiment``.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> a = p.parse_args(["naq", "--seeds", "2", "--epochs", "1"])
        >>> a.preset, a.seeds, a.epochs, a.data
        ('naq', '2', 1, None)
    """
    p.add_argument("preset", choices=P.PRESETS, help="which experiment")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="CIFAR-10 python batches (data_batch_1..5, test_batch) in DIR or "
                        "DIR/cifar-10-batches-py; without it: reduced scale on digits")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output directory (default experiment-PRESET); rerun to resume")
    p.add_argument("--seeds", default=None,
                   help="number of seeds N (0..N-1) or a comma list (default: the preset's)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs (default: the preset's; the lr drop keeps its epoch)")
    p.add_argument("--methods", default=None,
                   help="comma list of the preset's methods (default: all)")
    p.add_argument("--model", choices=("resnet18", "small"), default=None,
                   help="network (default resnet18 on CIFAR-10, small on digits)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 100)")
    p.add_argument("--log-every", type=int, default=None,
                   help="steps per log row (default 100 on CIFAR-10, 5 on digits)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--stop-after-epochs", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-plot", action="store_true", help="skip the figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers):
    """Add the ``experiment`` subcommand; returns its parser (handler in ``func``).

    Example:
        >>> import argparse
        >>> sub = argparse.ArgumentParser(prog="alice-ref").add_subparsers()
        >>> register(sub).prog
        'alice-ref experiment'
    """
    p = subparsers.add_parser("experiment", help=HELP, description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def _parse(args):
    """Everything checked before any work: (scale, methods, seeds, out_dir)."""
    from dataclasses import replace

    digits = args.data is None
    if not digits:
        from .cifar import find_cifar_dir

        find_cifar_dir(args.data)  # FileNotFoundError -> usage error
    scale = P.scale_of(args.preset, digits)
    for opt, v in (("--epochs", args.epochs), ("--batch", args.batch),
                   ("--log-every", args.log_every), ("--threads", args.threads),
                   ("--stop-after-epochs", args.stop_after_epochs)):
        if v is not None and v < 1:
            raise ValueError(f"{opt} must be >= 1, got {v}")
    kw = {}
    if args.epochs is not None:
        kw["epochs"] = args.epochs
        if scale.drop_epoch is not None and scale.drop_epoch >= args.epochs:
            kw["drop_epoch"] = None
    for key, v in (("batch", args.batch), ("log_every", args.log_every),
                   ("model", args.model)):
        if v is not None:
            kw[key] = v
    scale = replace(scale, **kw)
    methods = P.methods_of(args.preset)
    if args.methods:
        names = [s.strip() for s in args.methods.split(",") if s.strip()]
        bad = [s for s in names if s not in methods]
        if bad or not names:
            raise ValueError(f"--methods must name some of {', '.join(methods)}, got "
                             f"{args.methods!r}")
        methods = {k: methods[k] for k in names}
    if args.seeds is None:
        seeds = list(range(scale.seeds))
    else:
        try:
            seeds = ([int(s) for s in args.seeds.split(",") if s.strip()] if "," in args.seeds
                     else list(range(int(args.seeds))))
        except ValueError:
            raise ValueError(f"--seeds must be a count or a comma list, got {args.seeds!r}") \
                from None
        if not seeds or min(seeds) < 0:
            raise ValueError(f"--seeds must give seeds >= 0, got {args.seeds!r}")
    out = args.out or f"experiment-{args.preset}"
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise ValueError(f"--out {out!r}: {parent!r} is not a writable directory")
    return scale, methods, seeds, out


def load_data(data_dir, torch):
    """(x_train, y_train, x_test, y_test) as float tensors in [0, 1] (N, C, H, W) and labels."""
    if data_dir is None:
        from alice_ref.tools._tasks import load_digits_data

        xtr, ytr, xte, yte = load_digits_data()
        return xtr.reshape(-1, 1, 8, 8), ytr, xte.reshape(-1, 1, 8, 8), yte
    from .cifar import load_cifar10

    xtr, ytr, xte, yte = load_cifar10(data_dir)
    f = lambda a: torch.from_numpy(a).float() / 255.0  # noqa: E731  (no normalisation)
    return f(xtr), torch.from_numpy(ytr), f(xte), torch.from_numpy(yte)


def run(args) -> int:
    """Handler of ``alice-ref experiment``: run (or resume) every (method, seed); exit code.

    Example:
        A bad --data directory is refused before any work:

        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> run(p.parse_args(["methods", "--data", "/nonexistent", "--no-progress"]))
        2
    """
    try:
        scale, methods, seeds, out = _parse(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"alice-ref experiment: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        from alice_ref.tools._tasks import need_torch

        torch = need_torch()
        import alice_torch  # noqa: F401
        data = load_data(args.data, torch)
    except (MissingDependency, ImportError) as e:
        print(f"alice-ref experiment: {e}", file=sys.stderr)
        return EXIT_MISSING
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(out, exist_ok=True)
    n = len(data[1])
    steps = max(1, n // min(scale.batch, n)) * scale.epochs
    bar = Progress(steps * len(methods) * len(seeds), f"experiment {args.preset}",
                   enabled=not args.no_progress)
    t0 = time.perf_counter()
    rows, power, status = {}, [], {}
    for name, spec in methods.items():
        rows[name] = []
        for seed in seeds:
            r = P.run_one(args.preset, name, spec, seed, scale, data, out, tick=bar.update,
                          stop_after_epochs=args.stop_after_epochs)
            status[f"{name}/seed{seed}"] = r["status"]
            rows[name].extend(r["rows"])
            for pw in r["power"]:
                for g, v in pw["groups"].items():
                    power.append({"method": name, "seed": seed, "epoch": pw["epoch"],
                                  "group": g, **v})
    bar.close()
    interrupted = [k for k, v in status.items() if v == "interrupted"]
    files = []
    for name, rs in rows.items():
        cols = P.COLUMNS + sorted({k for r in rs for k in r} - set(P.COLUMNS))
        path = os.path.join(out, f"{args.preset}_{name}.csv")
        write_csv(path, rs, cols)
        files.append(path)
    summary = P.summarise(rows)
    scols = list(summary[0]) if summary else []
    write_csv(os.path.join(out, "summary.csv"), summary, scols)
    meta = {"preset": args.preset, "data": "cifar10" if args.data else "digits",
            "scale": vars(scale) if hasattr(scale, "__dict__") else str(scale),
            "seeds": seeds, "methods": {k: v for k, v in methods.items()},
            "status": status, "seconds": round(time.perf_counter() - t0, 1)}
    write_json(os.path.join(out, "experiment.json"), _jsonable(meta))
    md = format_summary(summary, methods, scale, args, seeds)
    with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(md + "\n")
    files += [os.path.join(out, x) for x in ("summary.csv", "summary.md", "experiment.json")]
    if power:
        cols = ["method", "seed", "epoch", "group", "p", "p_se", "a", "b", "t_star"]
        write_csv(os.path.join(out, "power_law.csv"), power, cols)
        files.append(os.path.join(out, "power_law.csv"))
    if not args.no_plot and not interrupted:
        files += plot_curves(rows, methods, out, args.preset)
        if power:
            files += plot_power(rows, power, out)
    print(md)
    if interrupted:
        print(f"interrupted: {len(interrupted)} runs saved a checkpoint; rerun the same command "
              f"to resume", file=sys.stderr)
    print(f"wrote {len(files)} files to {out}", file=sys.stderr)
    return EXIT_OK


def _jsonable(x):
    import dataclasses

    from alice_ref.tools._output import json_safe

    if dataclasses.is_dataclass(x):
        x = dataclasses.asdict(x)
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    return json_safe(x)


def format_summary(summary, methods, scale, args, seeds) -> str:
    """The summary as a Markdown table: final train loss and test accuracy, mean +- std."""
    lines = [f"{args.preset} on {'CIFAR-10' if args.data else 'digits (reduced scale)'}: "
             f"{scale.epochs} epochs, batch {scale.batch}, model {scale.model}, seeds "
             f"{','.join(map(str, seeds))}", "",
             "| method | final train loss | final test loss | final test accuracy | "
             "gradient evaluations |", "|---|---:|---:|---:|---:|"]
    for s in summary:
        lines.append(f"| {methods[s['method']]['label']} | {s['train_loss_mean']:.4f} ± "
                     f"{s['train_loss_std']:.4f} | {s['test_loss_mean']:.4f} ± "
                     f"{s['test_loss_std']:.4f} | {s['test_acc_mean']:.4f} ± "
                     f"{s['test_acc_std']:.4f} | {s['evaluations']} |")
    return "\n".join(lines)


def _band(rs, key):
    import numpy as np

    by_seed = {}
    for r in rs:
        by_seed.setdefault(r["seed"], []).append(r)
    m = min(len(v) for v in by_seed.values())
    x = np.array([r["epoch"] for r in next(iter(by_seed.values()))[:m]])
    Y = np.array([[r[key] for r in v[:m]] for v in by_seed.values()], dtype=float)
    return x, Y


def plot_curves(rows, methods, out, preset) -> list:
    """curves.png: train/test loss and accuracy against epochs, mean and min-max over seeds."""
    fig, axes = new_figure(11.0, 7.5, ncols=2, nrows=2)
    if fig is None:
        return []
    panels = (("train_loss", "train loss (mean over the logged batches)", True),
              ("test_loss", "test loss (eval mode)", True),
              ("train_acc", "train accuracy", False), ("test_acc", "test accuracy", False))
    for ax, (key, label, logy) in zip(axes.ravel(), panels):
        for k, (name, rs) in enumerate(rows.items()):
            if not rs:
                continue
            x, Y = _band(rs, key)
            style = "-" if methods[name]["kind"] == "alice" else "--"
            ax.plot(x, Y.mean(0), style, color=f"C{k % 10}", lw=1.3, label=methods[name]["label"])
            ax.fill_between(x, Y.min(0), Y.max(0), color=f"C{k % 10}", alpha=0.15, lw=0)
        if logy:
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel=label)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    n_seeds = len({r["seed"] for rs in rows.values() for r in rs})
    fig.suptitle(f"{preset}: mean over {n_seeds} seeds (band: min-max)", fontsize=10)
    path = os.path.join(out, "curves.png")
    fig.savefig(path, dpi=110)
    return [path]


def plot_power(rows, power, out) -> list:
    """power_law.png: per layer group the exponent p, the crossover t*, rho and h over epochs."""
    import numpy as np

    fig, axes = new_figure(11.0, 7.5, ncols=2, nrows=2)
    if fig is None:
        return []
    groups = [g for g in P.GROUPS if any(p["group"] == g for p in power)]
    for k, g in enumerate(groups):
        ps = [p for p in power if p["group"] == g]
        ep = sorted({p["epoch"] for p in ps})
        for ax, key in ((axes[0, 0], "p"), (axes[0, 1], "t_star")):
            v = [np.nanmean([np.nan if p[key] is None else p[key] for p in ps
                             if p["epoch"] == e]) for e in ep]
            ax.plot(ep, v, "o-", ms=3, color=f"C{k}", label=g)
        rs = [r for r in rows.get("T6", []) if f"rho_{g}" in r]
        if rs:
            x, R = _band(rs, f"rho_{g}")
            _, H = _band(rs, f"h_{g}")
            axes[1, 0].plot(x, R.mean(0), color=f"C{k}", label=g)
            axes[1, 1].plot(x, H.mean(0), color=f"C{k}", label=g)
    axes[0, 0].axhline(1.0, color="k", ls=":", lw=1)
    axes[0, 0].axhline(2.0, color="k", ls=":", lw=1)
    axes[0, 0].set(xlabel="epoch", ylabel="variance exponent p (1 glass, 2 Hessian)")
    axes[0, 1].set(xlabel="epoch", ylabel="crossover t* = a / b", yscale="log")
    axes[1, 0].set(xlabel="epoch", ylabel="mean glass density rho (Alice's R)", yscale="log")
    axes[1, 1].set(xlabel="epoch", ylabel="mean curvature h (Alice's H)", yscale="log")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("power-law preset (T6): per layer group, mean over seeds", fontsize=10)
    path = os.path.join(out, "power_law.png")
    fig.savefig(path, dpi=110)
    return [path]


def main(argv=None) -> int:
    """Stand-alone entry: ``python -m alice_ref.tools.experiment PRESET [options]``."""
    parser = argparse.ArgumentParser(prog="alice-ref experiment",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
