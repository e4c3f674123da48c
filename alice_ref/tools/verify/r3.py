"""R3, glass kernel: the 3-point REML kernel's algebra, the 'abs' curvature by enumeration, the
estimators on separable glass, and the REML relative variance 2/r."""

from __future__ import annotations

import math

import numpy as np

from alice_ref.landscapes import SeparableGlass
from alice_ref.maths import estimators as _kernels
from alice_ref.maths import probes as _sampling

from ._rows import EPS, _enumerated_pairs, _exact_row, _mc_row, _seed, _signs, _windows


def _r3_kernel_algebra(ctx):
    """R3: the 3-point REML kernel is Alice's, Q = w w^T / 2."""
    Q, dof = _kernels.glass_kernel([-1.0, 0.0, 1.0], order=1)
    w = np.array([1.0, -2.0, 1.0])
    err = float(np.max(np.abs(Q - np.outer(w, w) / 2.0)))
    if dof != 1:
        err = math.inf
    return [_exact_row("R3", "3-point REML kernel on offsets (-1, 0, 1), order 1, is Alice's: "
                       "Q = w w^T / 2, w = (1, -2, 1), dof = 1 (glass_kernel)", 0.0, err,
                       64 * EPS * 2.0, "64 eps |Q|")]


def _r3_enumeration(ctx):
    """R3: the 'abs' curvature over all sign patterns is E|(H z)_i| >= |H_ii|."""
    rng = ctx.rng("R3-enumeration")
    n, sigma = 8, 0.5
    q, _, Z, gp, gm, g_err = _enumerated_pairs(rng, n, sigma)
    A = q.hessian
    got = _kernels.curvature_magnitude(gp, gm, sigma, "abs").mean(axis=0)
    want = np.abs(Z @ A).mean(axis=0)  # E_z |(H z)_i|, by enumeration from H itself
    tol = float(2.0 * g_err.max() / (2.0 * sigma) * (1 + 4 * EPS) + 8 * EPS * want.max())
    err = float(np.max(np.abs(got - want)))
    row = _exact_row("R3", f"'abs' curvature on a quadratic: mean over all 2^{n} patterns of "
                     f"|g+ - g-|/(2 sigma) = E|(H z)_i| >= |H_ii| (sums over i shown; max_i "
                     f"|diff| checked)", float(want.sum()), float(got.sum()), tol,
                     "matvec gamma_n / sigma")
    ok = row.verdict == "pass" and err <= tol and bool(np.all(got >= np.abs(np.diag(A)) - tol))
    row.verdict = "pass" if ok else "fail"
    return [row]


def _r3_separable(ctx):
    """R3: the glass, Hessian, 'abs', 'rms' and 5-point REML estimators on separable glass."""
    rng = ctx.rng("R3-separable")
    nc, nwin, sigma = ctx.size(128, 32), ctx.size(400, 300), 0.05
    centres, box = _windows(nwin, 2.0 * sigma)
    nu = np.repeat(centres[:, None], nc, axis=1)
    offs = (-2.0, -1.0, 0.0, 1.0, 2.0)
    acc = {k: [] for k in ("rho", "hess", "h", "abs", "habs", "rms", "prms", "reml")}
    for _ in range(ctx.size(16, 1)):
        h = rng.uniform(-3, 5, nc)
        land = SeparableGlass(nc, lam=rng.uniform(50, 150, nc), s=rng.uniform(0.1, 0.3, nc), h=h,
                              b=rng.normal(size=nc), box=box, seed=_seed(rng))
        rho = land.rho
        z = _signs(rng, (nwin, nc))
        gp, gm, g0 = land.grad(nu + sigma * z), land.grad(nu - sigma * z), land.grad(nu)
        hm = np.broadcast_to(h, gp.shape)
        acc["rho"].append(_kernels.glass_density(gp, gm, g0, sigma) / rho - 1.0)
        acc["h"].append(hm)
        acc["hess"].append(_sampling.hessian_diag(gp, gm, z, sigma) - hm)
        acc["habs"].append(np.abs(hm))
        acc["abs"].append(_kernels.curvature_magnitude(gp, gm, sigma, "abs") - np.abs(hm))
        pr = np.broadcast_to(h**2 + rho / (2.0 * sigma), gp.shape)
        acc["prms"].append(pr)
        acc["rms"].append(_kernels.curvature_magnitude(gp, gm, sigma, "rms") - pr)
        # 5-point REML kernel, order 2 (annihilates the third-order term too); any jump law
        z5 = _signs(rng, (nwin, nc))
        grads = [land.grad(nu + s * sigma * z5) for s in offs]
        acc["reml"].append(_kernels.glass_density_from_line(offs, grads, sigma, order=2) / rho
                           - 1.0)
    a = {k: np.concatenate(v) for k, v in acc.items()}
    return [
        _mc_row("R3", "glass_density 2((g+ + g-)/2 - g0)^2 / sigma is unbiased: E rho_hat / rho "
                "= 1 (separable glass, h != 0, b != 0)", 1.0, a["rho"]),
        _mc_row("R3", "Hessian kernel z(g+ - g-)/(2 sigma) stays unbiased under glass: E = h_i "
                "(mean over samples of h_i)", float(a["h"].mean()), a["hess"]),
        _mc_row("R3", "'abs' curvature |g+ - g-|/(2 sigma) has mean >= |h_i| (Jensen; mean over "
                "samples of |h_i|)", float(a["habs"].mean()), a["abs"], side="ge"),
        _mc_row("R3", "'rms' curvature ((g+ - g-)/(2 sigma))^2 has mean h_i^2 + rho_i/(2 sigma): "
                "the glass leaks into 'rms'", float(a["prms"].mean()), a["rms"]),
        _mc_row("R3", "REML kernel, offsets (-2..2), order 2 (glass_density_from_line) is "
                "unbiased: E rho_hat / rho = 1 (separable glass)", 1.0, a["reml"]),
    ]


def _r3_reml_variance(ctx):
    """R3: relative variance 2/r of the REML kernel under Brownian glass."""
    rng = ctx.rng("R3-reml-variance")
    m, sigma, rho = ctx.size(2_000_000, 100_000), 0.1, 3.0
    offs = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    order = 2
    dof = offs.size - (order + 1)  # r = K - (m + 1), by algebra
    # Brownian glass along the line: two independent walks leaving nu (Cov = sigma rho C, R1)
    inc = rng.normal(scale=math.sqrt(sigma * rho), size=(m, 4))
    right = np.cumsum(inc[:, :2], axis=1)
    left = np.cumsum(inc[:, 2:], axis=1)
    glass = np.stack([left[:, 1], left[:, 0], np.zeros(m), right[:, 0], right[:, 1]], axis=1)
    coef = rng.normal(scale=10.0, size=(m, 3))  # smooth part: g0 + H delta + T[delta, delta]/2
    smooth = coef[:, :1] + coef[:, 1:2] * offs + coef[:, 2:] * offs**2
    G = smooth + glass
    r = _kernels.glass_density_from_line(tuple(offs), [G[:, k] for k in range(offs.size)], sigma,
                                         order=order)
    pred = 2.0 / dof
    return [_mc_row("R3", "REML kernel (offsets -2..2, order 2, r = 2 dof) under Gaussian "
                    "(Brownian) glass: relative variance E(rho_hat - rho)^2 / rho^2 = 2/r", pred,
                    ((r - rho) / rho) ** 2 - pred)]
