"""``alice-ref verify --report DIR``: the table as Markdown, the rows as JSON, one figure per
result (R1-R8), each drawn from the very samples its rows used (``_Ctx.keep``).

Files: ``verify.md`` (summary, the abstract's claims A1-A8, the table, the figures),
``verify.json`` (the rows), ``verify_r1.png`` ... ``verify_r8.png`` (those of the results that
ran). matplotlib is needed (checked before any work by the command).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from alice_ref.tools._output import new_figure

from .paper import ABSTRACT, RESULT_ANCHORS
from .table import format_markdown, rows_to_json

__all__ = ["write_report", "FIGURES"]

FIG_W = 4.2  # inches per panel


def _plain_log(ax):
    """Log axes with plain major labels and no minor labels (no overlapping '2 x 10^-2')."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log":
            continue
        decades = math.log10(max(lim) / min(lim))
        subs = (1.0, 2.0, 5.0) if decades < 3 else ((1.0,) if decades < 8 else None)
        if subs is not None:
            axis.set_major_locator(LogLocator(base=10.0, subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _errbar(ax, x, y, se, **kw):
    ax.errorbar(x, y, yerr=5.0 * np.asarray(se), fmt="o", capsize=3, ms=4, **kw)


def _r1(s, fig_axes):
    fig, axes = fig_axes(3)
    if "R1-separable" in s:
        d = s["R1-separable"]
        ax = axes[0]
        _errbar(ax, d["t"], d["mean"], d["se"], label="measured (bars: 5 SE)")
        tt = np.geomspace(d["t"][0] * 0.8, d["t"][-1] * 1.25, 20)
        ax.plot(tt, tt, "k--", lw=1, label="rho |delta|: slope 1")
        ax.set(xscale="log", yscale="log", xlabel="|delta|", ylabel="E eps^2 / rho",
               title=f"separable glass: p = {d['p']:.3f} +- {5 * d['p_se']:.3f}")
        ax.legend(fontsize=7, loc="upper left")
        _plain_log(ax)
    if "R1-quadratic" in s:
        d = s["R1-quadratic"]
        ax = axes[1]
        ax.plot(d["t"], d["y"], "o", ms=4, label="measured")
        ax.plot(d["t"], d["y"][0] * (d["t"] / d["t"][0]) ** 2, "k--", lw=1, label="slope 2")
        ax.set(xscale="log", yscale="log", xlabel="t", ylabel="||g(nu + t z) - g(nu)||^2",
               title=f"quadratic (no glass): p = {d['p']:.4f}")
        ax.legend(fontsize=7, loc="upper left")
        _plain_log(ax)
    if "R1-relu" in s:
        d = s["R1-relu"]
        ax = axes[2]
        _errbar(ax, d["t"], d["mean"], d["se"], label="measured (bars: 5 SE)")
        ax.plot(d["t"], d["mean"][0] * d["t"] / d["t"][0], "k--", lw=1, label="slope 1 (glass)")
        ax.plot(d["t"], d["mean"][0] * (d["t"] / d["t"][0]) ** 4, "k:", lw=1,
                label="slope 4 (smooth)")
        ax.set(xscale="log", yscale="log", xlabel="t", ylabel="E||(g+ + g-)/2 - g0||^2",
               title=f"ReLU net: p = {d['p']:.3f} +- {5 * d['p_se']:.3f}")
        ax.legend(fontsize=7, loc="upper left")
        _plain_log(ax)
    return fig


def _r2(s, fig_axes):
    fig, axes = fig_axes(3)
    if "R2-enumeration" in s:
        d = s["R2-enumeration"]
        ax = axes[0]
        i = np.arange(d["var_enum"].size)
        ax.bar(i, d["var_enum"], color="C0", alpha=0.6, label="enumerated (all 2^n z)")
        ax.plot(i, d["var_pred"], "k_", ms=14, mew=2, label="sum_(j!=i) H_ij^2")
        ax.set(xlabel="coordinate i", ylabel="Var of Hutchinson's D_i",
               title="Rademacher: variance per coordinate")
        ax.set_ylim(0, 1.4 * float(max(d["var_enum"].max(), d["var_pred"].max())))
        ax.legend(fontsize=7, loc="upper left")
    if "R2-hutchinson" in s:
        d = s["R2-hutchinson"]
        ax = axes[1]
        ax.bar([0], [d["rad"]], color="C0", alpha=0.6, label="Rademacher (exact)")
        ax.bar([1], [d["gauss"]], color="C1", alpha=0.6, yerr=[5 * d["gauss_se"]], capsize=4,
               label="Gaussian (Monte Carlo, 5 SE)")
        ax.plot([1], [d["gauss_pred"]], "k_", ms=20, mew=2, label="predicted, E z^4 = 3")
        ax.set_xticks([0, 1], ["Rademacher", "Gaussian"])
        ax.set(ylabel="sum_i Var D_i", title="Hutchinson: total variance per probe law")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_ylim(0, 1.35 * max(d["gauss"], d["gauss_pred"]))
    if "R2-glass" in s:
        d = s["R2-glass"]
        ax = axes[2]
        ax.bar([0], [d["rad_pred"]], color="C0", alpha=0.6, label="Rademacher: E|z| = 1")
        ax.bar([1], [d["gauss"]], color="C1", alpha=0.6, yerr=[5 * d["gauss_se"]], capsize=4,
               label="Gaussian (measured, 5 SE)")
        ax.plot([1], [d["gauss_pred"]], "k_", ms=20, mew=2, label="sqrt(2/pi)")
        ax.set_xticks([0, 1], ["Rademacher", "Gaussian"])
        ax.set(ylabel="E eps(sigma z)^2 / (sigma rho)", title="glass seen per probe law")
        ax.set_ylim(0, 1.35)
        ax.legend(fontsize=7, loc="upper right")
    return fig


def _r3(s, fig_axes):
    fig, axes = fig_axes(2)
    if "R3-reml" in s:
        d = s["R3-reml"]
        ax = axes[0]
        _errbar(ax, d["dof"], d["rel_var"], d["se"], label="measured (bars: 5 SE)")
        r = np.linspace(0.8, d["dof"].max() * 1.1, 50)
        ax.plot(r, 2.0 / r, "k--", lw=1, label="2 / r")
        ax.set(xscale="log", yscale="log", xlabel="degrees of freedom r",
               ylabel="E(rho_hat - rho)^2 / rho^2", title="REML kernel variance")
        ax.legend(fontsize=7, loc="upper right")
        _plain_log(ax)
        from matplotlib.ticker import FixedLocator, NullLocator
        ax.xaxis.set_major_locator(FixedLocator(d["dof"]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(int(v)) for v in d["dof"]])
    if "R3-separable" in s:
        d = s["R3-separable"]
        ax = axes[1]
        names = ["rho (3-pt)", "h (Hutch.)", "'abs'", "'rms'", "rho (5-pt)"]
        meas = [1.0 + d["rho"], d["h"] + d["hess"], d["habs"] + d["abs"], d["prms"] + d["rms"],
                1.0 + d["reml"]]
        pred = [1.0, d["h"], d["habs"], d["prms"], 1.0]
        ratio = [m / p for m, p in zip(meas, pred)]
        ax.bar(range(5), ratio, color="C0", alpha=0.6)
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.set_xticks(range(5), names, fontsize=7)
        ax.set(ylabel="measured mean / prediction (or bound)",
               title="separable glass ('abs': a bound, >= 1)")
    return fig


def _r4(s, fig_axes):
    fig, axes = fig_axes(1, w=5.5)
    if "R4" in s:
        d = s["R4"]
        ax = axes[0]
        for k, key in enumerate(("brownian", "sparse")):
            e = d[key]
            ax.bar([k], [e["ratio"]], color=f"C{k}", alpha=0.6, yerr=[5 * e["se"]], capsize=4)
            ax.plot([k - 0.4, k + 0.4], [e["jensen"]] * 2, "r-", lw=2,
                    label="Jensen bound sqrt(1/3)/c" if k == 0 else None)
        ax.axhline(1.0, color="k", ls="--", lw=1, label="c sqrt(rho)|d|^1.5 (Brownian limit)")
        ax.set_xticks([0, 1], ["Brownian glass\n(100 jumps in reach)",
                               "sparse glass\n(0.5 jumps in reach)"])
        ax.set(ylabel="E|X| / (c sqrt(rho) |d|^1.5)")
        ax.set_ylim(0, 1.6)
        ax.legend(fontsize=7, loc="upper left")
    return fig


def _r5(s, fig_axes):
    from .oracles import r5_model

    fig, axes = fig_axes(3)
    if "R5" in s:
        d = s["R5"]
        titles = ("Hessian-dominated", "glass-dominated", "mixed")
        for k, ax in enumerate(axes):
            a, h, rho, ds, bf = (float(d[x][k]) for x in ("a", "h", "rho", "dstar", "brute"))
            dd = np.linspace(0.0, 2.5 * ds, 300)
            m = r5_model(dd, a, h, rho)
            scale = abs(float(r5_model(np.array(ds), a, h, rho))) or 1.0
            ax.plot(dd / ds, m / scale, "C0-", lw=1.5, label="m(d)")
            ax.axvline(1.0, color="k", ls="--", lw=1, label="d* (closed form)")
            ax.plot([bf / ds], [float(r5_model(np.array(bf), a, h, rho)) / scale], "rx", ms=9,
                    mew=2, label="brute-force argmin")
            ax.set(xlabel="d / d*", ylabel="m(d) / |m(d*)|",
                   title=f"{titles[k]}: h = {h:.2g}, rho = {rho:.2g}, |g| = {a:.2g}")
            ax.title.set_fontsize(8)
            ax.legend(fontsize=7, loc="upper center")
    return fig


def _r6(s, fig_axes):
    fig, axes = fig_axes(1, w=5.5)
    if "R6" in s:
        d = s["R6"]
        ax = axes[0]
        ax.plot(d["g"], d["dstar"], "C0--", lw=1, label="R5 argmin d* (brute force)")
        ax.plot(d["g"], d["step"], "C1-", lw=2, alpha=0.8, label="|bounded_step| ('fixed')")
        ax.axhline(d["lo"], color="k", ls=":", lw=1, label="tau_lo")
        ax.axhline(d["hi"], color="k", ls="-.", lw=1, label="tau_hi")
        ax.set(xscale="log", yscale="log", xlabel=f"|g| (h = {d['h']:g}, rho = {d['rho']:g}, "
               "limit 'fixed')", ylabel="|step|")
        ax.set_ylim(d["lo"] / 20, d["hi"] * 20)
        ax.legend(fontsize=7, loc="lower right")
        _plain_log(ax)
    return fig


def _r7(s, fig_axes):
    fig, axes = fig_axes(2)
    if "R7" in s:
        d = s["R7"]
        floor = 1e-18
        ax = axes[0]
        for label, c in d["exact"].items():
            ax.plot(c[:, 0], np.maximum(c[:, 1], floor), "o-", ms=2, lw=1, label=label)
        ax.set(yscale="log", xlabel="batch t", ylabel="max |G - g(mu)| (floor 1e-18)",
               title="phi = omega(1 - beta1): no lag (rounding only)")
        ax.set_ylim(floor / 10, 1.0)
        ax.legend(fontsize=7, loc="upper right")
        ax = axes[1]
        c = d["lag"]
        if c.size:
            ax.plot(c[:, 0], c[:, 1], "C1-", lw=2, label="measured max |lag|")
            ax.plot(c[:, 0], c[:, 2], "k.", ms=4, label="nesterov_lag prediction")
        ax.set(yscale="log", xlabel="batch t", ylabel="max |G - g(mu)|",
               title=f"phi = {d['phi']:g} (not exact): the lag")
        ax.legend(fontsize=7, loc="lower right")
        _plain_log(ax)
    return fig


def _r8(s, fig_axes):
    fig, axes = fig_axes(1, w=5.0)
    if "R8" in s:
        c = s["R8"]["cost"]
        ax = axes[0]
        qq = np.arange(0, int(c[:, 0].max()) + 1)
        ax.plot(qq, (3.0 + qq) / (qq + 1.0), "k--", lw=1, label="(3 + q)/(q + 1)")
        ax.plot(c[:, 0], c[:, 1], "o", ms=6, mfc="none", mew=2, label="driver's count / N")
        ax.set(xlabel="quick steps q", ylabel="gradient evaluations per batch")
        ax.set_ylim(0.8, 3.2)
        ax.legend(fontsize=7, loc="upper right")
    return fig


# result -> (figure builder, sample names it draws from, caption)
FIGURES = {
    "R1": (_r1, ("R1-separable", "R1-quadratic", "R1-relu"),
           "glass variance against distance (slope 1), a quadratic (slope 2), a ReLU net"),
    "R2": (_r2, ("R2-enumeration", "R2-hutchinson", "R2-glass"),
           "estimator variance and glass seen, per probe law"),
    "R3": (_r3, ("R3-reml", "R3-separable"),
           "kernel variance against degrees of freedom; estimators on separable glass"),
    "R4": (_r4, ("R4",), "E|X| against the bound"),
    "R5": (_r5, ("R5",), "the model m(d), its closed-form minimiser and the brute-force one"),
    "R6": (_r6, ("R6",), "the step against |g|, with its bounds"),
    "R7": (_r7, ("R7",), "the lag over batches, exact and non-exact phi"),
    "R8": (_r8, ("R8",), "cost per batch against q"),
}


def write_report(directory, rows, samples, summary="", seed=0, quick=False) -> list[str]:
    """Write the report folder: verify.md, verify.json and one PNG per result that ran.

    Args:
        directory: the folder (created if missing).
        rows: the Row objects of the run.
        samples: the dict the run filled (``run_checks(samples=...)``).
        summary: the summary line of the run.
        seed: the run's seed (recorded).
        quick: whether it was a quick run (recorded).

    Returns:
        The paths written.

    Example:
        The R6 figure from a quick run (needs matplotlib):

        >>> import tempfile
        >>> from alice_ref.tools.verify import run_checks
        >>> s = {}
        >>> rows = run_checks(quick=True, only={"R6"}, samples=s)
        >>> [p.rsplit("/", 1)[-1] for p in write_report(tempfile.mkdtemp(), rows, s)]
        ['verify_r6.png', 'verify.json', 'verify.md']
    """
    os.makedirs(directory, exist_ok=True)
    written, figures = [], []

    def fig_axes(n, w=FIG_W):
        fig, axes = new_figure(w * n if n > 1 else w, 3.6, ncols=n)
        return fig, list(axes[0])

    ran = {r.result for r in rows}
    for result, (build, names, caption) in FIGURES.items():
        if result not in ran or not any(n in samples for n in names):
            continue
        fig = build(samples, fig_axes)
        fig.suptitle(f"{result}: {caption}", fontsize=10)
        path = os.path.join(directory, f"verify_{result.lower()}.png")
        fig.savefig(path, dpi=100)
        written.append(path)
        figures.append((result, caption, os.path.basename(path)))
    jpath = os.path.join(directory, "verify.json")
    with open(jpath, "w", encoding="utf-8") as f:
        json.dump({"seed": seed, "quick": quick, "summary": summary, "abstract": ABSTRACT,
                   "rows": rows_to_json(rows)}, f, indent=2)
        f.write("\n")
    written.append(jpath)
    lines = ["# alice-ref verify report", "", f"{summary}", "",
             f"Seed {seed}{', quick' if quick else ''}. Each row: the result it checks (R1-R8), "
             "its anchor in the paper (an abstract claim A1-A8 and the official algorithm's "
             "step), the claim, and `measured rel predicted` with rel one of `=` (within the "
             "tolerance), `<=` / `>=` (predicted is a bound; one-sided tolerance) and `min` "
             "(measured is a minimiser, predicted the brute-force one's distance).", "",
             "## The abstract's claims", ""]
    lines += [f"- **{k}**: {v}." for k, v in ABSTRACT.items()]
    lines += ["", "## Results and anchors", "", "| result | abstract | algorithm |",
              "|---|---|---|"]
    lines += [f"| {k} | {a} | {b} |" for k, (a, b) in RESULT_ANCHORS.items() if k in ran]
    lines += ["", "## The rows", "", format_markdown(rows), "", "## Figures", ""]
    for result, caption, name in figures:
        lines += [f"### {result}: {caption}", "", f"![{result}]({name})", ""]
    mpath = os.path.join(directory, "verify.md")
    with open(mpath, "w", encoding="utf-8") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    written.append(mpath)
    return written



