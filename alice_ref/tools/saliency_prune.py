"""``alice-ref prune``: does the glass-aware saliency (R4) predict pruning damage? Measured.

On a ReLU network on the digits (``--net mlp|cnn``, ``--state trained|init``): estimates g, h,
rho per weight from the diagnostics' probes, then (1) for ``--samples`` random weights and for
every hidden channel, the true change of the training loss when that weight (channel) alone is
set to zero, against each criterion of :data:`alice_ref.maths.saliency.CRITERIA` (Spearman
correlation of the score, relative error of the predicted change, bootstrap intervals), and
(2) pruning curves: test accuracy after one-shot global pruning at each sparsity, without and
with a short masked fine-tune. Writes ``TAG_prune.json``, ``TAG_weights.csv``,
``TAG_channels.csv``, ``TAG_curves.csv`` and PNGs to ``--out``.

Exit codes: 0 done; 1 failed; 2 bad arguments; 3 torch or scikit-learn missing.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time

import numpy as np

from alice_ref.maths.saliency import (
    CRITERIA,
    group_change,
    predicted_change,
    pruning_change,
    score_from_change,
)
from alice_ref.tools._output import new_figure, write_csv, write_json
from alice_ref.tools._tasks import EXIT_OK
from alice_ref.tools.saliency_common import (
    add_common_arguments,
    bootstrap_ci,
    default_sigma,
    estimate,
    fmt_ci,
    relative_error,
    resolve_common,
    spearman,
    start,
)

__all__ = ["add_arguments", "main", "register", "run"]

CURVE_CRITERIA = CRITERIA + ("random",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``alice-ref prune`` to a parser.

    Args:
        p: the parser.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> a = p.parse_args(["--net", "cnn"])
        >>> a.net, a.samples, a.sparsities
        ('cnn', None, None)
    """
    add_common_arguments(p)
    p.add_argument("--samples", type=int, default=None,
                   help="weights whose single pruning is measured (default 300, quick 20)")
    p.add_argument("--sparsities", default=None,
                   help="comma-separated percentages for the curves (default 0,10,...,90; "
                        "'none' for no curves)")
    p.add_argument("--finetune", type=int, default=None,
                   help="masked Adam steps (lr 3e-3, batch 64) after pruning (default 60, "
                        "quick 3)")


def register(subparsers):
    """Add the ``prune`` subcommand; returns its parser (handler in ``func``).

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser(prog="alice-ref")
        >>> _ = register(parser.add_subparsers())
        >>> args = parser.parse_args(["prune", "--quick"])
        >>> args.quick, args.func is run
        (True, True)
    """
    p = subparsers.add_parser(
        "prune", help="glass-aware pruning saliency (R4) vs magnitude, SNIP, OBD: measured",
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv=None) -> int:
    """Stand-alone entry: ``python -m alice_ref.tools.saliency_prune [options]``.

    Example:
        Bad options are refused before any work:

        >>> main(["--samples", "1", "--no-progress"])
        2
    """
    parser = argparse.ArgumentParser(prog="alice-ref prune", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _steps(args) -> int:
    return args.train_steps if args.state == "trained" else 0


def _validate(args):
    resolve_common(args)
    q = args.quick
    if args.samples is None:
        args.samples = 20 if q else 300
    if args.finetune is None:
        args.finetune = 3 if q else 60
    if args.sparsities is None:
        args.sparsities = "0,50,90" if q else ",".join(str(10 * k) for k in range(10))
    if args.samples < 3 or args.finetune < 0:
        raise ValueError("--samples must be >= 3 and --finetune >= 0")
    if args.sparsities.strip().lower() == "none":
        args.sparsity_list = []
    else:
        try:
            args.sparsity_list = [float(s) for s in args.sparsities.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--sparsities must be numbers, got {args.sparsities!r}") from None
        if any(not 0 <= s <= 100 for s in args.sparsity_list):
            raise ValueError(f"--sparsities must be in [0, 100], got {args.sparsities!r}")


def _stats(scores: dict, preds: dict, truth: np.ndarray, reps: int, seed: int) -> list:
    """One row per criterion: Spearman(score, dL), Spearman(score, |dL|), relative error."""
    rows = []
    for c in CRITERIA:
        s = scores[c]
        row = {"criterion": c,
               "spearman": bootstrap_ci(spearman, [s, truth], reps, seed),
               "spearman_abs": bootstrap_ci(lambda a, t: spearman(a, np.abs(t)), [s, truth],
                                            reps, seed)}
        p = preds[c]
        row["relative_error"] = (None if p is None else
                                 bootstrap_ci(relative_error, [p, truth], reps, seed))
        rows.append(row)
    return rows


def _calibration(q, glass, truth, reps, seed):
    """mean |dL - Q| / mean glass term: 1 if R4's glass term has the right size (<= 1 bound)."""
    dev = np.abs(truth - q)
    return {"mean_abs_deviation": float(dev.mean()), "mean_glass_term": float(glass.mean()),
            "mean_abs_quadratic": float(np.abs(q).mean()),
            "ratio": bootstrap_ci(lambda d, g: float(d.mean() / g.mean()) if g.mean() > 0
                                  else math.nan, [dev, glass], reps, seed)}


def _sampled_weights(model, est, loss0, X, y, n, rng, tick):
    from alice_torch.saliency import loss_at, prunable

    layers = [(name + ".weight", m) for name, m in prunable(model)]
    sizes = np.array([m.weight.numel() for _, m in layers])
    flat = rng.choice(int(sizes.sum()), size=min(n, int(sizes.sum())), replace=False)
    off = np.concatenate([[0], np.cumsum(sizes)])
    rows, truth = [], []
    for f in np.sort(flat):
        li = int(np.searchsorted(off, f, side="right") - 1)
        pname, j = layers[li][0], int(f - off[li])
        w = dict(model.named_parameters())[pname].detach().clone()
        w.view(-1)[j] = 0.0
        truth.append(loss_at(model, X, y, {pname: w}) - loss0)
        th, g, h, r = (a.reshape(-1)[j] for a in est[pname])
        rows.append({"param": pname, "index": j, "theta": th, "g": g, "h": h, "rho": r})
        tick()
    th, g, h, r = (np.array([row[k] for row in rows]) for k in ("theta", "g", "h", "rho"))
    t = pruning_change(th, g, h, r)
    for row, a, b, c, d in zip(rows, t.first, t.second, t.glass, truth):
        row.update(first=a, second=b, glass=c, true_dL=d)
    return rows, t, np.abs(th), np.asarray(truth)


def _channels(model, est, loss0, X, y, tick):
    """Every output channel of every prunable layer but the last: weight row + bias zeroed."""
    from alice_torch.saliency import loss_at, prunable

    params = dict(model.named_parameters())
    rows, firsts, seconds, glasses, mags, truth = [], [], [], [], [], []
    for name, m in prunable(model)[:-1]:
        wn, bn = name + ".weight", name + ".bias"
        for k in range(m.weight.shape[0]):
            rep = {wn: params[wn].detach().clone()}
            rep[wn][k] = 0.0
            parts = [tuple(a[k].reshape(-1) for a in est[wn])]
            if bn in params:
                rep[bn] = params[bn].detach().clone()
                rep[bn][k] = 0.0
                parts.append(tuple(a[k:k + 1].reshape(-1) for a in est[bn]))
            th, g, h, r = (np.concatenate([p[i] for p in parts]) for i in range(4))
            t = group_change(pruning_change(th, g, h, r))
            tg = group_change(pruning_change(th, g, h, r), glass="gaussian")
            dl = loss_at(model, X, y, rep) - loss0
            rows.append({"layer": name, "channel": k, "size": th.size, "l1": np.abs(th).sum(),
                         "first": float(t.first), "second": float(t.second),
                         "glass": float(t.glass), "glass_gaussian": float(tg.glass),
                         "true_dL": dl})
            firsts.append(float(t.first))
            seconds.append(float(t.second))
            glasses.append(float(t.glass))
            mags.append(float(np.abs(th).sum()))
            truth.append(dl)
            tick()
    from alice_ref.maths.saliency import LossChange

    return rows, LossChange(np.array(firsts), np.array(seconds), np.array(glasses)), \
        np.array(mags), np.array(truth)


def _scores_preds(t, mag):
    return ({c: score_from_change(t, c, mag) for c in CRITERIA},
            {c: predicted_change(t, c) for c in CRITERIA})


def _curves(model, est, data, args, tick):
    import torch
    from alice_torch.saliency import accuracy, global_masks, prunable, train

    Xtr, ytr, Xte, yte = data
    mods = prunable(model)
    rng = np.random.default_rng(args.seed + 7)
    rows = []
    for c in CURVE_CRITERIA:
        scores = {}
        for name, _m in mods:
            th, g, h, r = est[name + ".weight"]
            s = (rng.random(th.shape) if c == "random" else
                 score_from_change(pruning_change(th, g, h, r), c, np.abs(th)))
            scores[name] = torch.from_numpy(np.ascontiguousarray(s, dtype=np.float64))
        for sp in args.sparsity_list:
            masks = global_masks(scores, sp / 100.0)
            rep = {n + ".weight": m.weight.detach() * masks[n] for n, m in mods}
            row = {"criterion": c, "sparsity": sp,
                   "test_acc_oneshot": accuracy(model, Xte, yte, rep),
                   "train_acc_oneshot": accuracy(model, Xtr, ytr, rep)}
            if args.finetune:
                ft = copy.deepcopy(model)
                train(ft, Xtr, ytr, args.finetune, lr=3e-3, batch=64, seed=args.seed + 3,
                      masks={n: masks[n] for n, _ in mods})
                row["test_acc_finetuned"] = accuracy(ft, Xte, yte)
            rows.append(row)
            tick()
    return rows


def run(args) -> int:
    """Handler of ``alice-ref prune``: measure, print the tables, write the files.

    Args:
        args: the parsed options (see :func:`add_arguments`).

    Returns:
        0 ok, 2 bad options, 3 missing optional package.

    Example:
        A non-positive sigma is a usage error:

        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> run(p.parse_args(["--sigma", "-1", "--no-progress"]))
        2
    """
    opened = start("prune", args, _validate, lambda a: (
        _steps(a) + 1 + 2 * a.probes + a.samples + 200
        + len(a.sparsity_list) * len(CURVE_CRITERIA)))
    if isinstance(opened, int):
        return opened
    model, data, meta, bar, t0 = opened
    steps = _steps(args)
    Xtr, ytr, Xte, yte = data
    sigma = args.sigma or default_sigma(model)
    est, loss0, _ = estimate(model, Xtr, ytr, sigma, args.probes, args.seed + 5,
                             callback=lambda d, t: bar.set(steps + d))
    rng = np.random.default_rng(args.seed + 6)
    wrows, wt, wmag, wtruth = _sampled_weights(model, est, loss0, Xtr, ytr, args.samples, rng,
                                               lambda: bar.update())
    crows, ct, cmag, ctruth = _channels(model, est, loss0, Xtr, ytr, lambda: None)
    bar.set(steps + 1 + 2 * args.probes + args.samples + 200)
    res = {"meta": dict(meta, sigma=sigma, probes=args.probes, samples=len(wrows),
                        bootstrap=args.bootstrap, loss=loss0,
                        test_acc=_acc(model, Xte, yte), finetune_steps=args.finetune,
                        truth="dL = L(weight set to 0) - L on the full training set"),
           "weights": {"stats": _stats(*_scores_preds(wt, wmag), wtruth, args.bootstrap,
                                       args.seed),
                       "calibration": _calibration(wt.quadratic, wt.glass, wtruth,
                                                   args.bootstrap, args.seed)},
           "channels": {"n": len(crows),
                        "stats": _stats(*_scores_preds(ct, cmag), ctruth, args.bootstrap,
                                        args.seed),
                        "calibration": _calibration(ct.quadratic, ct.glass, ctruth,
                                                    args.bootstrap, args.seed)}}
    curves = _curves(model, est, data, args, lambda: bar.update()) if args.sparsity_list else []
    bar.close()
    res["curves"] = curves
    res["meta"]["seconds"] = round(time.perf_counter() - t0, 2)
    print(format_tables(res))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        p = lambda s: os.path.join(args.out, f"{args.tag}_{s}")  # noqa: E731
        written = [p("prune.json"), p("weights.csv"), p("channels.csv")]
        write_csv(written[1], wrows, ["param", "index", "theta", "g", "h", "rho", "first",
                                      "second", "glass", "true_dL"])
        write_csv(written[2], crows, ["layer", "channel", "size", "l1", "first", "second",
                                      "glass", "glass_gaussian", "true_dL"])
        if curves:
            written.append(p("curves.csv"))
            write_csv(written[-1], curves, ["criterion", "sparsity", "test_acc_oneshot",
                                            "train_acc_oneshot", "test_acc_finetuned"])
        if not args.no_plot:
            written += _plot(res, wt, wtruth, ct, ctruth, args, p)
        res["meta"]["files"] = [os.path.basename(w) for w in written]
        from alice_ref.tools._output import json_safe

        write_json(written[0], json_safe(res))
        print("wrote " + ", ".join(written))
    return EXIT_OK


def _acc(model, X, y):
    from alice_torch.saliency import accuracy

    return accuracy(model, X, y)


def format_tables(res: dict) -> str:
    """The plain-text tables printed by ``alice-ref prune`` (values [95% bootstrap interval]).

    Example:
        >>> row = {"criterion": "obd", "spearman": [0.5, 0.4, 0.6],
        ...        "spearman_abs": [0.5, 0.4, 0.6], "relative_error": None}
        >>> cal = {"ratio": [0.9, 0.8, 1.0]}
        >>> res = {"meta": {"net": "mlp", "state": "trained", "sigma": 0.1, "samples": 3},
        ...        "weights": {"stats": [row], "calibration": cal},
        ...        "channels": {"n": 2, "stats": [row], "calibration": cal}, "curves": []}
        >>> print(format_tables(res).splitlines()[2])
        obd           0.5 [0.4, 0.6]        0.5 [0.4, 0.6]        n/a
    """
    m = res["meta"]
    out = [f"prune: {m['net']} {m['state']}, sigma {m['sigma']:.3g}, {m['samples']} weights, "
           f"{res['channels']['n']} channels"]
    for part in ("weights", "channels"):
        if part == "channels":
            out.append(f"-- channels ({res['channels']['n']})")
        out.append(f"{'criterion':<13} {'Spearman(dL)':<21} {'Spearman(|dL|)':<21} "
                   "rel. error")
        for r in res[part]["stats"]:
            out.append(f"{r['criterion']:<13} {fmt_ci(r['spearman']):<21} "
                       f"{fmt_ci(r['spearman_abs']):<21} {fmt_ci(r['relative_error'])}")
        out.append(f"  mean|dL - Q| / mean glass term: {fmt_ci(res[part]['calibration']['ratio'])}")
    if res["curves"]:
        out.append("-- test accuracy: one-shot / fine-tuned, by sparsity %")
        sps = sorted({r["sparsity"] for r in res["curves"]})
        out.append(f"{'criterion':<13} " + " ".join(f"{s:>11.0f}" for s in sps))
        for c in CURVE_CRITERIA:
            rs = {r["sparsity"]: r for r in res["curves"] if r["criterion"] == c}
            cells = []
            for s in sps:
                r = rs.get(s, {})
                ft = r.get("test_acc_finetuned")
                cells.append(f"{r.get('test_acc_oneshot', math.nan):.2f}/"
                             f"{'  - ' if ft is None else f'{ft:.2f}'}".rjust(11))
            out.append(f"{c:<13} " + " ".join(cells))
    return "\n".join(out)


def _plot(res, wt, wtruth, ct, ctruth, args, p) -> list:
    fig, axes = new_figure(12.0, 3.6, ncols=3)
    if fig is None:
        return []
    ax = axes[0, 0]
    for name, pred, mk in (("quadratic Q", wt.quadratic, "o"), ("glass Q + c√ρ|θ|^1.5",
                                                                 wt.total, "x")):
        ax.scatter(wtruth, pred, s=8, marker=mk, label=name, alpha=0.6)
    lim = [min(wtruth.min(), 0), max(wtruth.max(), 1e-12)]
    ax.plot(lim, lim, "k-", lw=0.8)
    ax.set(xlabel="true dL (one weight pruned)", ylabel="predicted dL",
           title=f"{args.tag}: single weights")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ax.scatter(wt.glass, np.abs(wtruth - wt.quadratic), s=8, alpha=0.6)
    gl = [max(wt.glass.min(), 1e-12), max(wt.glass.max(), 1e-11)]
    ax.plot(gl, gl, "k-", lw=0.8, label="|dL - Q| = glass term")
    ax.set(xscale="log", yscale="log", xlabel="glass term c√ρ|θ|^1.5",
           ylabel="|dL - Q|", title="deviation from the quadratic model")
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    if res["curves"]:
        for c in CURVE_CRITERIA:
            rs = sorted((r for r in res["curves"] if r["criterion"] == c),
                        key=lambda r: r["sparsity"])
            line, = ax.plot([r["sparsity"] for r in rs], [r["test_acc_oneshot"] for r in rs],
                            "-", label=c)
            if args.finetune:
                ax.plot([r["sparsity"] for r in rs], [r["test_acc_finetuned"] for r in rs],
                        "--", color=line.get_color())
        ax.set(xlabel="sparsity % (global)", ylabel="test accuracy",
               title="one-shot (solid), fine-tuned (dashed)")
        ax.legend(fontsize=7)
    else:
        ax.scatter(ctruth, ct.total, s=10)
        ax.set(xlabel="true dL (channel)", ylabel="glass prediction", title="channels")
    path = p("prune.png")
    fig.savefig(path, dpi=90)
    return [path]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
