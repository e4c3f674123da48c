"""R6, step bounds: the limits of bounded_step as curvature vanishes or explodes, and Alice with
hess_comp='zero' on a quadratic stepping like Adam."""

from __future__ import annotations

import math

import numpy as np

from alice_ref import core as _alice
from alice_ref.landscapes import Quadratic
from alice_ref.maths import step as _steps

from ._rows import EPS, _alice_loop, _exact_row, _seed
from .oracles import r5_argmin


def _r6(ctx):
    """R6: bounded_step at vanishing and huge curvature; hess_comp='zero' steps like Adam."""
    rng = ctx.rng("R6")
    k, eps = 1000, 1e-8
    G = rng.normal(size=k)
    V = 10.0 ** rng.uniform(-2, 1, k)
    lo, hi = 0.001, 0.02
    small = 1e-12 * rng.random(k)  # curvature that (almost) vanishes
    ref = {"adam": -hi * G / (np.sqrt(V) + eps), "sgdm": -hi * G, "fixed": -hi * np.sign(G)}
    err = 0.0
    for lim, want in ref.items():
        got = _steps.bounded_step(G, small, small, V, lo, hi, lim, eps)
        err = max(err, float(np.max(np.abs(got - want) / np.abs(want))))
    anchor = "A8; Alg. 3, steps 4-8"
    rows = [_exact_row("R6", "As curvature vanishes the upper bound binds: the step is -tau_hi G/"
                       "(sqrt V + eps) for 'adam' (Adam with lr tau_hi), -tau_hi G for 'sgdm' and "
                       "-tau_hi sgn G for 'fixed' (largest relative error).", 0.0, err, 8 * EPS,
                       "8 eps", anchor=anchor)]
    big = 1e12 * (1.0 + rng.random(k))
    refl = {"adam": -lo * G / (np.sqrt(V) + eps), "sgdm": -lo * G, "fixed": -lo * np.sign(G)}
    err = 0.0
    for lim, want in refl.items():
        got = _steps.bounded_step(G, big, big, V, lo, hi, lim, eps)
        err = max(err, float(np.max(np.abs(got - want) / np.abs(want))))
    rows.append(_exact_row("R6", "Under huge curvature the lower bound binds: the step is -tau_lo "
                           "f sgn G for each limit method (largest relative error).", 0.0, err,
                           8 * EPS, "8 eps", anchor=anchor))
    # moderate curvature: between the bounds the step is R5's minimiser, clipped to them
    a = 10.0 ** np.linspace(-4.0, 1.0, k)
    Gm = a * np.where(rng.random(k) < 0.5, -1.0, 1.0)
    hm, rm = np.full(k, 10.0), np.full(k, 1.0)
    dbf = r5_argmin(a, hm, rm, widen=1e-9)  # brute force from the model's values (oracles)
    tiny = 1e-30  # the eps guards of h_opt and of the Adam bound, negligible here
    fs = {"fixed": np.ones(k), "sgdm": a, "adam": a / (np.sqrt(V) + tiny)}
    err, kept = 0.0, None
    for lim, f in fs.items():
        got = _steps.bounded_step(Gm, hm, rm, V, lo, hi, lim, tiny)
        want = -np.sign(Gm) * np.clip(dbf, lo * f, hi * f)
        err = max(err, float(np.max(np.abs(got - want) / np.abs(want))))
        if lim == "fixed":
            kept = np.abs(got)
    rows.append(_exact_row("R6", "Between the bounds the step is R5's: |bounded_step| = clip("
                           "argmin of m, tau_lo f, tau_hi f) for each limit method, argmin by "
                           "golden section (largest relative error).", 0.0, err, 1e-6,
                           "argmin from values ~ sqrt(eps); 1e-6", anchor=anchor))
    ctx.keep("R6", g=a, step=kept, dstar=dbf, lo=lo, hi=hi, h=10.0, rho=1.0)
    # in the optimiser: hess_comp 'zero' on a quadratic (rho_hat = 0 up to rounding) is Adam
    q = Quadratic(8, seed=_seed(rng))
    cfg = _alice.AliceConfig(lr=0.05, betas=(0.9, 0.999), hess_comp="zero", grad_glass=True)
    _, tau_hi = cfg.bounds()
    worst, tol, nupd = 0.0, 0.0, 0
    for rec in _alice_loop(q, cfg, ctx.size(80, 40), rng, rng.normal(size=8)):
        if not rec["sched"].update:
            continue
        nupd += 1
        mu0, mu1 = rec["absorbed"].mu[0], rec["updated"].mu[0]
        Gs, Vs = rec["absorbed"].G[0], rec["absorbed"].V[0]
        want = -cfg.phi * tau_hi * Gs / (np.sqrt(Vs) + cfg.eps)
        worst = max(worst, float(np.max(np.abs((mu1 - mu0) - want))))
        tol = max(tol, float(8 * EPS * max(np.abs(mu0).max(), np.abs(mu1).max())
                             + 16 * EPS * np.abs(want).max()))
    rows.append(_exact_row("R6", f"In the Alice loop with hess_comp='zero' on a quadratic (no "
                           f"glass) every one of {nupd} updates is Adam's mu += -phi tau_hi G/"
                           f"(sqrt V + eps).", 0.0, worst if nupd else math.inf, tol,
                           "8 eps |mu| + 16 eps |step|", anchor="A8; Alg. 3, steps 4-10"))
    return rows
