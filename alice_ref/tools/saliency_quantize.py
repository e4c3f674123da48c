"""``alice-ref quantize``: per-layer quantization sensitivity (R4) and mixed precision, measured.

On a ReLU network on the digits (``--net mlp|cnn``): estimates g, h, rho per weight from the
diagnostics' probes; for every prunable layer l and bit width b, the sensitivity
S_l(b) = sum over the layer of :func:`alice_ref.maths.saliency.quantization_sensitivity` at the
grid step D_l(b) = max|w_l| / (2^(b-1) - 1) (delta ~ U(-D/2, D/2)) under each criterion, against
the true change of the training loss when layer l alone is rounded to b bits. Then, for each
average bit budget, the bits per layer that minimise sum_l S_l(b_l) subject to
sum_l n_l b_l <= budget * n (exhaustive search), against uniform bits and against the same
search on the measured single-layer changes ('oracle'). Writes ``TAG_quantize.json``,
``TAG_layers.csv``, ``TAG_allocation.csv`` and a PNG to ``--out``.

Exit codes: 0 done; 1 failed; 2 bad arguments; 3 torch or scikit-learn missing.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time

import numpy as np

from alice_ref.maths.saliency import CRITERIA, quantization_sensitivity
from alice_ref.tools._output import json_safe, new_figure, write_csv, write_json
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

__all__ = ["add_arguments", "allocate", "main", "register", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``alice-ref quantize`` to a parser.

    Args:
        p: the parser.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> a = p.parse_args([])
        >>> a.bits, a.budgets
        ('2-8', '2.5,3,4')
    """
    add_common_arguments(p)
    p.add_argument("--bits", default="2-8", help="range of bit widths per layer (min-max)")
    p.add_argument("--budgets", default="2.5,3,4",
                   help="comma-separated average bits per weight to allocate")


def register(subparsers):
    """Add the ``quantize`` subcommand; returns its parser (handler in ``func``).

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser(prog="alice-ref")
        >>> _ = register(parser.add_subparsers())
        >>> args = parser.parse_args(["quantize", "--quick"])
        >>> args.quick, args.func is run
        (True, True)
    """
    p = subparsers.add_parser(
        "quantize", help="per-layer quantization sensitivity (R4 glass-aware vs Hessian) and "
                         "mixed precision under a bit budget",
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv=None) -> int:
    """Stand-alone entry: ``python -m alice_ref.tools.saliency_quantize [options]``.

    Example:
        >>> main(["--bits", "1-4", "--no-progress"])
        2
    """
    parser = argparse.ArgumentParser(prog="alice-ref quantize",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _validate(args):
    resolve_common(args)
    try:
        lo, hi = (int(v) for v in args.bits.split("-"))
        args.bit_list = list(range(lo, hi + 1))
        args.budget_list = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--bits must be MIN-MAX and --budgets numbers, got {args.bits!r}, "
                         f"{args.budgets!r}") from None
    if lo < 2 or hi < lo or hi > 16:
        raise ValueError(f"--bits must satisfy 2 <= MIN <= MAX <= 16, got {args.bits!r}")
    if args.quick:
        args.bit_list = args.bit_list[:3]
    if any(not lo <= b <= hi for b in args.budget_list):
        raise ValueError(f"--budgets must lie within --bits {args.bits}")


def allocate(sens: dict, sizes: dict, bits: list, budget: float):
    """Bits per layer minimising sum_l sens[l][b_l] s.t. sum_l n_l b_l <= budget * sum_l n_l.

    Exhaustive search (ties: fewer bits in total, then the first found).

    Args:
        sens: layer -> {bits: sensitivity}.
        sizes: layer -> number of weights.
        bits: candidate bit widths.
        budget: average bits per weight.

    Returns:
        layer -> bits, or None when no allocation fits.

    Example:
        The sensitive layer gets the bits:

        >>> s = {"a": {2: 10.0, 4: 1.0}, "b": {2: 1.0, 4: 0.5}}
        >>> allocate(s, {"a": 1, "b": 1}, [2, 4], 3.0)
        {'a': 4, 'b': 2}
    """
    names = list(sens)
    n = np.array([sizes[k] for k in names], dtype=np.float64)
    best, best_key = None, None
    for combo in itertools.product(bits, repeat=len(names)):
        used = float(n @ np.array(combo, dtype=np.float64))
        if used > budget * n.sum() + 1e-9:
            continue
        key = (sum(sens[k][b] for k, b in zip(names, combo)), used)
        if best_key is None or key < best_key:
            best, best_key = dict(zip(names, combo)), key
    return best


def run(args) -> int:
    """Handler of ``alice-ref quantize``: measure, print the tables, write the files.

    Args:
        args: the parsed options (see :func:`add_arguments`).

    Returns:
        0 ok, 2 bad options, 3 missing optional package.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> run(p.parse_args(["--budgets", "9", "--no-progress"]))
        2
    """
    steps_of = lambda a: a.train_steps if a.state == "trained" else 0  # noqa: E731
    opened = start("quantize", args, _validate, lambda a: steps_of(a) + 1 + 2 * a.probes)
    if isinstance(opened, int):
        return opened
    model, data, meta, bar, t0 = opened
    steps = steps_of(args)
    from alice_torch.saliency import accuracy, loss_at, prunable, quantize, quantize_step

    Xtr, ytr, Xte, yte = data
    sigma = args.sigma or default_sigma(model)
    est, loss0, _ = estimate(model, Xtr, ytr, sigma, args.probes, args.seed + 5,
                             callback=lambda d, t: bar.set(steps + d))
    bar.close()
    layers = [n + ".weight" for n, _ in prunable(model)]
    params = dict(model.named_parameters())
    sizes = {k: int(params[k].numel()) for k in layers}
    sens = {c: {k: {} for k in layers} for c in CRITERIA}
    true = {k: {} for k in layers}
    rows = []
    for k in layers:
        th, g, h, r = est[k]
        for b in args.bit_list:
            d = quantize_step(params[k], b)
            true[k][b] = loss_at(model, Xtr, ytr, {k: quantize(params[k].detach(), b)}) - loss0
            row = {"layer": k, "size": sizes[k], "bits": b, "step": d, "true_dL": true[k][b]}
            for c in CRITERIA:
                v = float(np.sum(quantization_sensitivity(np.full(th.shape, d), g, h, r, c)))
                sens[c][k][b] = row[c] = v
            rows.append(row)
    truth = np.array([r["true_dL"] for r in rows])
    stats = []
    for c in CRITERIA:
        s = np.array([r[c] for r in rows])
        stats.append({"criterion": c,
                      "spearman": bootstrap_ci(spearman, [s, truth], args.bootstrap, args.seed),
                      "relative_error": None if c == "magnitude" else
                      bootstrap_ci(relative_error, [s, truth], args.bootstrap, args.seed)})

    def evaluate(bits_of):
        rep = {k: quantize(params[k].detach(), bits_of[k]) for k in layers}
        avg = sum(sizes[k] * bits_of[k] for k in layers) / sum(sizes.values())
        return {"bits": dict(bits_of), "avg_bits": avg,
                "train_dL": loss_at(model, Xtr, ytr, rep) - loss0,
                "test_acc": accuracy(model, Xte, yte, rep)}

    alloc = []
    for B in args.budget_list:
        uni = int(math.floor(B + 1e-9))
        if uni in args.bit_list:
            alloc.append(dict(budget=B, method="uniform", **evaluate({k: uni for k in layers})))
        for c in CRITERIA + ("oracle",):
            table = true if c == "oracle" else sens[c]
            bits_of = allocate(table, sizes, args.bit_list, B)
            if bits_of is not None:
                alloc.append(dict(budget=B, method=c, **evaluate(bits_of)))
    res = {"meta": dict(meta, sigma=sigma, probes=args.probes, loss=loss0,
                        test_acc=accuracy(model, Xte, yte), bits=args.bit_list,
                        budgets=args.budget_list, quantizer="symmetric uniform, round to "
                        "nearest, D = max|w| / (2^(b-1) - 1), per layer",
                        seconds=round(time.perf_counter() - t0, 2)),
           "layer_stats": stats, "layers": rows, "allocation": alloc}
    print(format_tables(res))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        p = lambda s: os.path.join(args.out, f"{args.tag}_{s}")  # noqa: E731
        written = [p("quantize.json"), p("layers.csv"), p("allocation.csv")]
        write_csv(written[1], rows, ["layer", "size", "bits", "step", "true_dL", *CRITERIA])
        write_csv(written[2], [dict(r, bits=" ".join(f"{k.rsplit('.', 1)[0]}:{v}"
                                                      for k, v in r["bits"].items()))
                               for r in alloc],
                  ["budget", "method", "bits", "avg_bits", "train_dL", "test_acc"])
        if not args.no_plot:
            written += _plot(res, args, p)
        res["meta"]["files"] = [os.path.basename(w) for w in written]
        write_json(written[0], json_safe(res))
        print("wrote " + ", ".join(written))
    return EXIT_OK


def format_tables(res: dict) -> str:
    """The plain-text tables printed by ``alice-ref quantize``.

    Example:
        >>> res = {"meta": {"net": "mlp", "state": "trained", "sigma": 0.1},
        ...        "layer_stats": [{"criterion": "obd", "spearman": [1.0, 1.0, 1.0],
        ...                         "relative_error": None}],
        ...        "allocation": [{"budget": 3.0, "method": "uniform", "bits": {"fc1.weight": 3},
        ...                        "avg_bits": 3.0, "train_dL": 0.01, "test_acc": 0.9}]}
        >>> print(format_tables(res).splitlines()[-1])
        3         uniform      fc1:3                   3.00     0.01   0.900
    """
    m = res["meta"]
    out = [f"quantize: {m['net']} {m['state']}, sigma {m['sigma']:.3g}",
           f"{'criterion':<13} {'Spearman(S_l(b), dL)':<24} rel. error"]
    for r in res["layer_stats"]:
        out.append(f"{r['criterion']:<13} {fmt_ci(r['spearman']):<24} "
                   f"{fmt_ci(r['relative_error'])}")
    out.append(f"{'budget':<9} {'method':<12} {'bits':<22} {'avg':>5} {'train dL':>8} "
               f"{'test acc':>7}")
    for r in res["allocation"]:
        bits = " ".join(f"{k.rsplit('.', 1)[0]}:{v}" for k, v in r["bits"].items())
        out.append(f"{r['budget']:<9g} {r['method']:<12} {bits:<22} {r['avg_bits']:>5.2f} "
                   f"{r['train_dL']:>8.3g} {r['test_acc']:>7.3f}")
    return "\n".join(out)


def _plot(res, args, p) -> list:
    fig, axes = new_figure(6.0, 3.6)
    if fig is None:
        return []
    ax = axes[0, 0]
    rows = res["layers"]
    for k in dict.fromkeys(r["layer"] for r in rows):
        rs = [r for r in rows if r["layer"] == k]
        b = [r["bits"] for r in rs]
        line, = ax.plot(b, [max(r["true_dL"], 1e-12) for r in rs], "ko-", ms=3)
        line.set_label(f"{k.rsplit('.', 1)[0]} true dL")
        for c, st in (("obd", ":"), ("glass", "--")):
            ax.plot(b, [max(r[c], 1e-12) for r in rs], st, label=f"{k.rsplit('.', 1)[0]} {c}")
    ax.set(yscale="log", xlabel="bits (this layer alone)", ylabel="loss change",
           title=f"{args.tag}: per-layer sensitivity")
    ax.legend(fontsize=6, ncol=2)
    path = p("quantize.png")
    fig.savefig(path, dpi=90)
    return [path]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
