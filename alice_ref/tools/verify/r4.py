"""R4, expected loss-deviation bound: Var X = sum_i rho_i |delta_i|^3 / 3, the Brownian limit
c sqrt(rho) |d|^1.5 and Jensen's bound, on separable glass."""

from __future__ import annotations

import numpy as np

from alice_ref.landscapes import SeparableGlass
from alice_ref.maths import bounds as _bounds

from ._rows import _mc_row, _seed, _signs, _windows


def _glass_loss_part(land, nu, delta):
    """X = L(nu + delta) - L(nu) - g(nu).delta - sum_i h_i delta_i^2 / 2 (separable glass)."""
    return (land.loss(nu + delta) - land.loss(nu) - np.sum(land.grad(nu) * delta, axis=-1)
            - 0.5 * np.sum(land.hess_diag * delta**2, axis=-1))


def _r4(ctx):
    """R4: Var X, the Brownian limit of E|X| and Jensen's bound on separable glass."""
    rows = []
    reps = ctx.size(4, 1)
    anchor = "A3; Alg. 3 model term 0.46 sqrt(|delta| rho)"
    # Var X = sum_i rho_i |delta_i|^3 / 3, any jump law (here Gaussian jumps, 4 coordinates)
    rng = ctx.rng("R4-variance")
    w = ctx.size(20_000, 6_000)
    lam, s = np.array([20.0, 50.0, 100.0, 200.0]), np.array([1.0, 0.5, 0.3, 0.2])
    d = np.array([0.05, 0.1, 0.15, 0.2])
    centres, box = _windows(w, d.max())
    nu = np.repeat(centres[:, None], 4, axis=1)
    pred = float(np.sum(lam * s**2 * d**3) / 3.0)
    devs = []
    for _ in range(reps):
        land = SeparableGlass(4, lam=lam, s=s, h=[1.0, -2.0, 0.5, 3.0], b=rng.normal(size=4),
                              box=box, seed=_seed(rng))
        X = _glass_loss_part(land, nu, d * _signs(rng, (w, 4)))
        devs.append(X**2 - pred)
    rows.append(_mc_row("R4", "The glass part X of L(nu + delta) - L(nu) has Var X = sum_i "
                        "rho_i |delta_i|^3 / 3 (4 coordinates, Gaussian jumps).", pred,
                        np.concatenate(devs), anchor="A3"))
    # Brownian limit: E|X| = c sqrt(rho) |d|^1.5, c = sqrt(2/(3 pi)) (one coordinate, lam d = 100)
    rng = ctx.rng("R4-brownian")
    w, dd = ctx.size(12_000, 4_000), 0.5
    centres, box = _windows(w, dd)
    devs = []
    for _ in range(reps):
        land = SeparableGlass(1, lam=200.0, s=0.1, h=1.0, box=box, jumps="rademacher",
                              seed=_seed(rng))
        X = _glass_loss_part(land, centres[:, None], dd * _signs(rng, (w, 1)))
        bound = float(_bounds.loss_deviation_bound(np.array([dd]), land.rho))
        devs.append(np.abs(X) / bound - 1.0)
    rows.append(_mc_row("R4", "In the Brownian limit (about 100 jumps in reach) E|X| equals "
                        "loss_deviation_bound(d, rho) = c sqrt(rho) |d|^1.5 with c = sqrt(2/(3 "
                        "pi)).", 1.0, np.concatenate(devs), anchor=anchor))
    ratio = np.concatenate(devs) + 1.0
    brownian = dict(ratio=float(ratio.mean()),
                    se=float(ratio.std(ddof=1) / np.sqrt(ratio.size)),
                    jensen=_bounds.JENSEN_COEFF / _bounds.GLASS_COEFF)
    # Jensen, any jump law: E|X| <= sqrt(1/3) sqrt(rho) |d|^1.5 (sparse Rademacher jumps)
    rng = ctx.rng("R4-jensen")
    w, dd = ctx.size(100_000, 20_000), 0.1
    centres, box = _windows(w, dd)
    land = SeparableGlass(1, lam=5.0, s=1.0, box=box, jumps="rademacher", seed=_seed(rng))
    X = _glass_loss_part(land, centres[:, None], dd * _signs(rng, (w, 1)))
    jb = float(_bounds.loss_deviation_bound(np.array([dd]), land.rho)) \
        * _bounds.JENSEN_COEFF / _bounds.GLASS_COEFF
    rows.append(_mc_row("R4", "For any jump law (here sparse glass, half a jump in reach) "
                        "Jensen bounds E|X| by sqrt(1/3) sqrt(rho) |d|^1.5.", jb, np.abs(X) - jb,
                        side="le", anchor=anchor))
    bound = float(_bounds.loss_deviation_bound(np.array([dd]), land.rho))
    ax = np.abs(X) / bound
    ctx.keep("R4", brownian=brownian,
             sparse=dict(ratio=float(ax.mean()), se=float(ax.std(ddof=1) / np.sqrt(ax.size)),
                         jensen=jb / bound))
    return rows
