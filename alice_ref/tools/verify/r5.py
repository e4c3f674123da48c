"""R5, optimal Hessian-glass step: first-order condition, the brute-force argmin of the model
(:mod:`.oracles`), the Newton and pure-glass limits, monotonicity."""

from __future__ import annotations

import math

import numpy as np

from alice_ref.maths import step as _steps

from ._rows import EPS, _exact_row, _flag_row
from .oracles import r5_argmin


def _r5_inputs(rng, k):
    a = 10.0 ** rng.uniform(-4, 3, k)
    h = 10.0 ** rng.uniform(-4, 3, k)
    rho = 10.0 ** rng.uniform(-4, 3, k)
    h[rng.random(k) < 0.1] = 0.0
    rho[rng.random(k) < 0.1] = 0.0
    both = (h == 0) & (rho == 0)
    h[both] = 1.0
    g = a * np.where(rng.random(k) < 0.5, -1.0, 1.0)
    return g, a, h, rho


def _r5(ctx):
    """R5: optimal_step against its first-order condition, brute force, limits, monotonicity."""
    rng = ctx.rng("R5")
    c = math.sqrt(2.0 / (3.0 * math.pi))  # R4's Brownian-glass constant, by algebra
    k = ctx.size(200_000, 20_000)
    g, a, h, rho = _r5_inputs(rng, k)
    delta = _steps.optimal_step(g, h, rho)
    dstar = np.abs(delta)
    rows = []
    foc = np.abs(-a + h * dstar + 1.5 * c * np.sqrt(rho) * np.sqrt(dstar)) / a
    sign_ok = bool(np.all(np.sign(delta) == -np.sign(g)))
    anchor = "A5; Alg. 3, steps 1-3"
    rows.append(_exact_row("R5", "The first-order condition -|g| + h d* + (3/2) c sqrt(rho d*) = 0 "
                           "holds for d* = |optimal_step|, whose sign is -sgn g (largest "
                           "relative residual).", 0.0,
                           float(foc.max()) if sign_ok else math.inf, 32 * EPS,
                           "32 eps, no cancellation in h_opt", anchor=anchor))
    kb = ctx.size(20_000, 2_000)
    g, a, h, rho = _r5_inputs(rng, kb)
    dbf = r5_argmin(a, h, rho, widen=1e-9)  # brute force from m's values (oracles)
    rel = np.abs(np.abs(_steps.optimal_step(g, h, rho)) - dbf) / dbf
    rows.append(_exact_row("R5", "optimal_step minimises the model m(d) = -|g| d + h d^2/2 + c "
                           "sqrt(rho) d^1.5: largest relative distance to the golden-section "
                           "argmin.", 0.0, float(rel.max()), 1e-6,
                           "argmin from values ~ sqrt(eps); 1e-6", anchor=anchor,
                           relation="min"))
    # three of these cases for the report: Hessian-, glass- and mixed-dominated
    ratio = (h * a) / np.where(rho > 0, np.sqrt(rho) * np.sqrt(a), 1e-300)
    picks = [int(np.argmax(ratio)), int(np.argmin(np.where(rho > 0, ratio, np.inf))),
             int(np.argmin(np.abs(np.log(np.where(ratio > 0, ratio, 1e-300)))))]
    ctx.keep("R5", a=a[picks], h=h[picks], rho=rho[picks],
             dstar=np.abs(_steps.optimal_step(g[picks], h[picks], rho[picks])), brute=dbf[picks])
    # limits
    g, a, h, rho = _r5_inputs(rng, k)
    newton = _steps.optimal_step(g, h, np.zeros(k))
    e1 = np.abs(newton - (-g / np.where(h > 0, h, np.inf))) / np.abs(g / np.where(h > 0, h, 1.0))
    e1 = np.where(h > 0, e1, 0.0)
    rp = np.where(rho > 0, rho, 1.0)
    glass_only = _steps.optimal_step(g, np.zeros(k), rp)
    e2 = np.abs(np.abs(glass_only) - 2.0 * math.pi * a**2 / (3.0 * rp)) / (2.0 * math.pi * a**2
                                                                          / (3.0 * rp))
    rows.append(_exact_row("R5", "In the limits, rho = 0 gives Newton's -g/h and h = 0 gives "
                           "|d*| = 2 pi g^2 / (3 rho) (largest relative error).", 0.0,
                           float(max(e1.max(), e2.max())), 16 * EPS, "16 eps", anchor=anchor))
    # monotonicity and h_opt >= max(h, 2 alpha)
    hopt = _steps.effective_curvature(g, h, rho)
    alpha = 3.0 * rho / (4.0 * math.pi * a)
    viol = int(np.sum(hopt < np.maximum(h, 2.0 * alpha) * (1.0 - 4 * EPS)))
    d0 = np.abs(_steps.optimal_step(g, h, rho))
    hp = np.where(h > 0, h * 1.01, 1e-3)
    rq = np.where(rho > 0, rho * 1.01, 1e-3)
    viol += int(np.sum(~(np.abs(_steps.optimal_step(g, hp, rho)) < d0)))
    viol += int(np.sum(~(np.abs(_steps.optimal_step(g, h, rq)) < d0)))
    rows.append(_flag_row("R5", "h_opt >= max(h, 2 alpha) with alpha = 3 rho/(4 pi |g|), and d* "
                          f"decreases strictly in h and in rho: violations among {3 * k} "
                          "comparisons.", 0, viol, viol == 0, "exact count (4 eps slack on >=)",
                          anchor=anchor))
    return rows
