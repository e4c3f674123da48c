"""R1, gradient glass: eps_i(delta)^2 grows like rho_i |delta_i| (power law p = 1), against
p = 2 on a quadratic (no glass) and p = 1 on a ReLU teacher-student network (real glass)."""

from __future__ import annotations

import math

import numpy as np

from alice_ref.landscapes import Quadratic, ReluTeacherStudent, SeparableGlass
from alice_ref.maths import glass as _glass

from ._rows import (
    _exact_row,
    _exponent_with_se,
    _glass_part,
    _matvec_err,
    _mc_row,
    _seed,
    _signs,
    _stat_row,
    _windows,
)


def _r1_separable(ctx):
    """R1: on separable glass E eps_i(delta)^2 = rho_i |delta_i|, and its power law p = 1."""
    rng = ctx.rng("R1-separable")
    nb, nwin = ctx.size(64, 16), ctx.size(400, 200)
    base, mult = 0.01, np.array([1.0, 2.0, 4.0, 8.0])
    n = nb * mult.size
    centres, box = _windows(nwin, base * mult[-1])
    dist = np.repeat(base * mult, nb)  # |delta_i|: block k of coordinates uses scale t_k
    nu = np.repeat(centres[:, None], n, axis=1)
    ys = []
    for _ in range(ctx.size(10, 1)):  # independent landscapes (bounded memory)
        land = SeparableGlass(n, lam=rng.uniform(50, 200, n), s=rng.uniform(0.5, 1.5, n),
                              h=rng.uniform(-2, 5, n), b=rng.normal(size=n), box=box,
                              seed=_seed(rng))
        delta = dist * _signs(rng, (nwin, n))
        eps_ = _glass_part(land, nu + delta) - _glass_part(land, nu)
        ys.append(eps_**2 / land.rho)  # E = |delta| (R1)
    y = np.concatenate(ys, axis=0)
    rows = [_mc_row("R1", "On separable glass the glass variance grows linearly with distance: "
                    "E eps_i(delta)^2 / (rho_i |delta_i|) = 1 with rho = lam s^2.", 1.0,
                    y / dist - 1.0, anchor="A2; Alg. 2, steps 9-11")]
    blocks = y.reshape(y.shape[0], mult.size, nb).transpose(1, 0, 2).reshape(mult.size, -1)
    means = blocks.mean(axis=1)
    ses = blocks.std(axis=1, ddof=1) / math.sqrt(blocks.shape[1])
    p, se = _exponent_with_se(base * mult, means, ses)
    rows.append(_stat_row("R1", "On separable glass the glass variance follows a power law t^p "
                          "with p = 1 (power_law_exponent over 4 scales).", 1.0, p, se,
                          n=y.size, anchor="A1, A2"))
    ctx.keep("R1-separable", t=base * mult, mean=means, se=ses, p=p, p_se=se)
    return rows


def _r1_quadratic(ctx):
    """R1: on a quadratic (no glass) ||g(nu + t z) - g(nu)||^2 ~ t^2."""
    rng = ctx.rng("R1-quadratic")
    q = Quadratic(8, seed=_seed(rng))
    nu, z = rng.normal(size=8), _signs(rng, 8)
    t = 0.01 * np.array([1.0, 2.0, 4.0, 8.0])
    pts = nu + t[:, None] * z
    dg = q.grad(pts) - q.grad(nu)
    y = np.sum(dg**2, axis=-1)
    p, _ = _glass.power_law_exponent(t, y)
    err = np.sqrt(np.sum((_matvec_err(q.hessian, q.b, pts) + _matvec_err(q.hessian, q.b, nu))**2,
                         axis=-1))
    rel = err / np.sqrt(y)  # relative error of ||dg||, so of log y: 2 rel
    lt = np.log(t)
    tol = float(np.sum(np.abs(lt - lt.mean())) / np.sum((lt - lt.mean())**2) * 2.5 * rel.max())
    ctx.keep("R1-quadratic", t=t, y=y, p=p)
    return [_exact_row("R1", "On a quadratic (no glass) ||g(nu + t z) - g(nu)||^2 follows t^p "
                       "with p = 2, the Hessian regime (power_law_exponent).", 2.0, p, tol,
                       "log-fit of gamma_n matvec errors", anchor="A1")]


def _r1_relu(ctx):
    """R1: on a ReLU teacher-student net the even part ~ t^1 at small t (real glass)."""
    rng = ctx.rng("R1-relu")
    land = ReluTeacherStudent(seed=_seed(rng))
    th0 = land.init_params(seed=_seed(rng))
    m, chunk = ctx.size(3000, 500), 500
    t = 1e-3 * np.array([1.0, 2.0, 4.0, 8.0])
    means, ses = [], []
    for tk in t:
        ys = []
        for _ in range(m // chunk):  # chunks keep the (chunk, samples, hidden) arrays small
            nu = th0 + 0.3 * rng.normal(size=(chunk, land.n))
            dz = tk * _signs(rng, (chunk, land.n))
            e = (land.grad(nu + dz) + land.grad(nu - dz)) / 2.0 - land.grad(nu)
            ys.append(np.sum(e * e, axis=-1))
        y = np.concatenate(ys)
        means.append(y.mean())
        ses.append(y.std(ddof=1) / math.sqrt(y.size))
    p, se = _exponent_with_se(t, np.array(means), np.array(ses))
    ctx.keep("R1-relu", t=t, mean=np.array(means), se=np.array(ses), p=p, p_se=se)
    return [_stat_row("R1", "On a ReLU teacher-student net the even part E||(g+ + g-)/2 - g0||^2 "
                      "follows t^p with p = 1 at small t (real glass), not 4 (smooth third "
                      "order).", 1.0, p, se, n=m * t.size, anchor="A1, A2")]
