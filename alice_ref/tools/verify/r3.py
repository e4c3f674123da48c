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
    return [_exact_row("R3", "The 3-point REML kernel on offsets (-1, 0, 1) at order 1 is "
                       "Alice's: Q = w w^T / 2 with w = (1, -2, 1) and one degree of freedom "
                       "(glass_kernel).", 0.0, err, 64 * EPS * 2.0, "64 eps |Q|",
                       anchor="A4; Alg. 2, steps 7-11")]


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
    row = _exact_row("R3", f"On a quadratic the 'abs' curvature |g+ - g-|/(2 sigma), averaged "
                     f"over all 2^{n} patterns, equals E|(H z)_i|, which is >= |H_ii| (sums over "
                     f"i shown, every i checked).", float(want.sum()), float(got.sum()), tol,
                     "matvec gamma_n / sigma", anchor="A1; Alg. 2, steps 5-6")
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
    for _ in range(ctx.size(8, 1)):
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
    ctx.keep("R3-separable", **{k: float(v.mean()) for k, v in a.items()})
    return [
        _mc_row("R3", "Alice's glass_density 2((g+ + g-)/2 - g0)^2 / sigma is unbiased on "
                "separable glass with h != 0 and b != 0: E rho_hat / rho = 1.", 1.0, a["rho"],
                anchor="A4; Alg. 2, steps 7-11"),
        _mc_row("R3", "The Hessian kernel z (g+ - g-)/(2 sigma) stays unbiased under glass: its "
                "mean is the mean of h_i over the samples.", float(a["h"].mean()), a["hess"],
                anchor="A4; Alg. 2, steps 5-6"),
        _mc_row("R3", "The 'abs' curvature |g+ - g-|/(2 sigma) has a mean of at least |h_i| "
                "(Jensen): the bound is the mean of |h_i| over the samples.",
                float(a["habs"].mean()), a["abs"], side="ge", anchor="A1; Alg. 2, steps 5-6"),
        _mc_row("R3", "The 'rms' curvature ((g+ - g-)/(2 sigma))^2 has mean h_i^2 + rho_i/(2 "
                "sigma): the glass leaks into 'rms'.", float(a["prms"].mean()), a["rms"],
                anchor="A1; Alg. 2, steps 5-6"),
        _mc_row("R3", "The 5-point REML kernel at order 2 (glass_density_from_line) is unbiased "
                "on separable glass: E rho_hat / rho = 1.", 1.0, a["reml"],
                anchor="A4 (optimal kernel)"),
    ]


def _brownian_line(rng, offsets, sigma, rho, m):
    """Brownian glass at the offsets along one line, m samples: two independent random walks
    leave 0, one per side, with Var increment = sigma rho |step| (R1); 0 at offset 0."""
    out = np.zeros((m, offsets.size))
    for side in (1.0, -1.0):
        idx = [k for k in np.argsort(side * offsets) if side * offsets[k] > 0]
        prev, walk = 0.0, np.zeros(m)
        for k in idx:
            walk = walk + rng.normal(scale=math.sqrt(sigma * rho * (abs(offsets[k]) - prev)),
                                     size=m)
            prev = abs(offsets[k])
            out[:, k] = walk
    return out


# (offsets, order) designs with r = K - (order + 1) degrees of freedom 1, 2, 3, 5
REML_DESIGNS = (((-1.0, 0.0, 1.0), 1), ((-2.0, -1.0, 0.0, 1.0, 2.0), 2),
                ((-2.0, -1.0, 0.0, 1.0, 2.0), 1), ((-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0), 1))


def _r3_reml_variance(ctx):
    """R3: relative variance 2/r of the REML kernel under Brownian glass, for r = 1, 2, 3, 5."""
    rng = ctx.rng("R3-reml-variance")
    m, sigma, rho = ctx.size(300_000, 40_000), 0.1, 3.0
    rows, dofs, got, ses = [], [], [], []
    for offs, order in REML_DESIGNS:
        offs = np.array(offs)
        dof = offs.size - (order + 1)  # r = K - (m + 1), by algebra
        coef = rng.normal(scale=10.0, size=(m, order + 1))  # the smooth part, a polynomial
        smooth = sum(coef[:, j:j + 1] * offs**j for j in range(order + 1))
        G = smooth + _brownian_line(rng, offs, sigma, rho, m)
        r = _kernels.glass_density_from_line(tuple(offs), [G[:, k] for k in range(offs.size)],
                                             sigma, order=order)
        pred = 2.0 / dof
        dev = ((r - rho) / rho) ** 2 - pred
        rows.append(_mc_row("R3", f"The REML kernel on {offs.size} offsets at order {order} (r = "
                            f"{dof} degrees of freedom) has relative variance E(rho_hat - rho)^2 "
                            f"/ rho^2 = 2/r under Gaussian (Brownian) glass.", pred, dev,
                            anchor="A4 (optimal kernel)"))
        dofs.append(dof)
        got.append(pred + float(dev.mean()))
        ses.append(float(dev.std(ddof=1) / math.sqrt(dev.size)))
    ctx.keep("R3-reml", dof=np.array(dofs), rel_var=np.array(got), se=np.array(ses))
    return rows
