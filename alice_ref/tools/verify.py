"""``alice-ref verify``: numerical checks of results R1-R8 on synthetic landscapes with known truth.

Each check compares a prediction (algebra, enumeration, a landscape's known rho and H, or an
independent brute-force computation) with a measurement made through the library's public
functions, and prints one row: result, claim, predicted, measured, tolerance, verdict.

- Monte Carlo rows are seeded (``--seed``); the tolerance is 5 standard errors computed from the
  samples themselves (two-sided unless the claim is an inequality). Samples are independent by
  construction: on a separable-glass landscape every sample uses its own window of a coordinate,
  and windows never overlap, so their glass is independent (R1).
- Exact rows (identities, enumeration over all sign patterns, optimiser bookkeeping) have a
  tolerance derived from float64 rounding of the quantities involved; it is stated in the row.

Only the base install is used (NumPy and array-api-compat): no torch, JAX or matplotlib.
The mathematics is in docs/derivations.md; results are numbered as in MATH.md.

Programmatic use::

    rows = run_checks(seed=0, quick=True)
    print(format_table(rows)); all(r.verdict == "pass" for r in rows)
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from alice_ref import driver as _driver

# Core modules are used through their module objects (not `from ... import name`) so that a
# monkeypatched core function is the one verify exercises (tests rely on it).
from alice_ref.core import batch as _alice
from alice_ref.landscapes import Quadratic, ReluTeacherStudent, SeparableGlass
from alice_ref.maths import bounds as _bounds
from alice_ref.maths import estimators as _kernels
from alice_ref.maths import glass as _glass
from alice_ref.maths import nesterov as _nesterov
from alice_ref.maths import probes as _sampling
from alice_ref.maths import schedule as _cost
from alice_ref.maths import step as _steps

__all__ = ["Row", "CHECKS", "run_checks", "format_table", "rows_to_json", "add_arguments", "run",
           "register", "main", "HELP", "DESCRIPTION"]

HELP = "check results R1-R8 numerically on synthetic landscapes"
DESCRIPTION = """\
Check results R1-R8 of "Curvature in the Looking-Glass" (arXiv 2411.16914) numerically on
synthetic landscapes with known truth (separable glass with rho = lam s^2, quadratics, a ReLU
teacher-student network) and on the Alice optimiser itself. Prints one row per claim: result,
claim, predicted, measured, tolerance, verdict. Monte Carlo rows are seeded and use 5 standard
errors computed from the samples; exact rows use a float64 rounding bound. Exit status 0 iff
every row passes, 1 otherwise."""

EPS = float(np.finfo(np.float64).eps)
K_SE = 5.0  # Monte Carlo tolerance: K_SE standard errors


@dataclass
class Row:
    """One verified claim: a row of the ``alice-ref verify`` table.

    Attributes:
        result: the result it checks, 'R1' to 'R8'.
        claim: what is claimed, in words.
        predicted: the prediction (algebra, enumeration, a landscape's truth, brute force): a
            float or a short string.
        measured: what the library's public functions gave: a float or a short string.
        tolerance: the allowed deviation and its basis (5 standard errors, or a float64
            rounding bound) as a string; every check writes a string, and
            :func:`format_table` needs one.
        verdict: 'pass' or 'fail'.

    Example:
        A row as the R8 cost check might write it:

        >>> r = Row("R8", "mean cost at q = 3", 1.5, 1.5, "exact", "pass")
        >>> r.verdict, rows_to_json([r])[0]["predicted"]
        ('pass', 1.5)
    """

    result: str
    claim: str
    predicted: float | str
    measured: float | str
    tolerance: float | str
    verdict: str


# -- row constructors ---------------------------------------------------------------------------

def _num(x):
    """A JSON-friendly value: finite floats stay floats, anything else becomes a string."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, float, np.integer, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else str(x)
    return str(x)


def _stat_row(result, claim, predicted, measured, se, side="two", n=None):
    """Row for an estimate with standard error ``se``: |measured - predicted| <= 5 SE (two-sided),
    or measured >= predicted - 5 SE ('ge'), or measured <= predicted + 5 SE ('le')."""
    tol = K_SE * float(se)
    m, p = float(measured), float(predicted)
    if side == "two":
        ok = abs(m - p) <= tol
        t = f"+-{tol:.3g} (5 SE)"
    elif side == "ge":
        ok = m >= p - tol
        t = f">= pred - {tol:.3g} (5 SE, one-sided)"
    elif side == "le":
        ok = m <= p + tol
        t = f"<= pred + {tol:.3g} (5 SE, one-sided)"
    else:  # pragma: no cover - programming error
        raise ValueError(side)
    if n is not None:
        t += f", n={n}"
    ok = bool(ok) and math.isfinite(tol) and math.isfinite(m)
    return Row(result, claim, _num(p), _num(m), t, "pass" if ok else "fail")


def _mc_row(result, claim, predicted, deviations, side="two"):
    """Monte Carlo row from i.i.d. per-sample deviations (sample minus its own prediction), whose
    mean is 0 under the claim: measured = predicted + mean, SE = sd / sqrt(n)."""
    d = np.asarray(deviations, dtype=np.float64).ravel()
    se = float(np.std(d, ddof=1) / math.sqrt(d.size))
    return _stat_row(result, claim, predicted, float(predicted) + float(np.mean(d)), se, side,
                     n=d.size)


def _exact_row(result, claim, predicted, measured, tol, basis):
    """Exact row: |measured - predicted| <= tol, tol a float64 rounding bound described by basis."""
    m, p, tol = float(measured), float(predicted), float(tol)
    ok = math.isfinite(m) and abs(m - p) <= tol
    return Row(result, claim, _num(p), _num(m), f"+-{tol:.2g} (rounding: {basis})",
               "pass" if ok else "fail")


def _flag_row(result, claim, predicted, measured, ok, basis="exact"):
    """Row for a yes/no or integer-count claim."""
    return Row(result, claim, _num(predicted), _num(measured), basis, "pass" if ok else "fail")


# -- shared helpers -----------------------------------------------------------------------------

class _Ctx:
    """Seeds and sample sizes of one run."""

    def __init__(self, seed: int, quick: bool):
        self.seed, self.quick = int(seed), bool(quick)

    def rng(self, tag: str) -> np.random.Generator:
        """An independent generator per check, stable under reordering of the checks."""
        return np.random.default_rng([self.seed, zlib.crc32(tag.encode())])

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def _signs(rng, shape):
    """Rademacher signs via the library's official convention (u < 0.5 -> -1)."""
    return _sampling.rademacher_from_uniform(rng.random(size=shape))


def _windows(n_win: int, half: float):
    """Centres of n_win disjoint windows [c - half, c + half] (2% gaps) and a box holding them."""
    step = 2.04 * half
    return step * (np.arange(n_win) + 0.5), (0.0, step * n_win)


def _seed(rng) -> int:
    return int(rng.integers(2**31 - 1))


def _glass_part(land, theta):
    """g(theta) minus the smooth gradient b + h theta of a SeparableGlass landscape."""
    return land.grad(theta) - land.smooth_grad(theta)


def _matvec_err(A, b, x):
    """Elementwise bound on the float64 rounding of x @ A + b (gamma_n bound, with margin)."""
    n = A.shape[0]
    return 2.0 * (n + 2) * EPS * (np.abs(x) @ np.abs(A) + np.abs(b))


def _exponent_with_se(t, means, ses):
    """Power-law exponent via glass.power_law_exponent, with the delta-method Monte Carlo SE for
    independent block means: p = sum_k c_k log y_k, Var p = sum_k c_k^2 (se_k / y_k)^2."""
    p, _ = _glass.power_law_exponent(t, means)
    lt = np.log(np.asarray(t, dtype=np.float64))
    c = (lt - lt.mean()) / float(((lt - lt.mean()) ** 2).sum())
    se = math.sqrt(float(np.sum(c**2 * (np.asarray(ses) / np.asarray(means)) ** 2)))
    return p, se


# -- R1 gradient glass ---------------------------------------------------------------------------

def _r1_separable(ctx):
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
    rows = [_mc_row("R1", "separable glass: E eps_i(delta)^2 / (rho_i |delta_i|) = 1, rho = lam "
                    "s^2 (glass variance grows linearly with distance)", 1.0, y / dist - 1.0)]
    blocks = y.reshape(y.shape[0], mult.size, nb).transpose(1, 0, 2).reshape(mult.size, -1)
    means = blocks.mean(axis=1)
    ses = blocks.std(axis=1, ddof=1) / math.sqrt(blocks.shape[1])
    p, se = _exponent_with_se(base * mult, means, ses)
    rows.append(_stat_row("R1", "separable glass: power law E eps_i(t sigma z)^2 / rho_i ~ t^p "
                          "with p = 1 (glass-dominated; power_law_exponent over 4 scales)", 1.0,
                          p, se, n=y.size))
    return rows


def _r1_quadratic(ctx):
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
    return [_exact_row("R1", "quadratic (no glass): ||g(nu+t sigma z)-g(nu)||^2 ~ t^p with p = 2 "
                       "(Hessian-dominated; power_law_exponent)", 2.0, p, tol,
                       "log-fit of gamma_n matvec errors")]


def _r1_relu(ctx):
    rng = ctx.rng("R1-relu")
    land = ReluTeacherStudent(seed=_seed(rng))
    th0 = land.init_params(seed=_seed(rng))
    m, chunk = ctx.size(6000, 1000), 500
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
    return [_stat_row("R1", "ReLU teacher-student net: even part E||(g+ + g-)/2 - g0||^2 ~ t^p "
                      "with p = 1 at small t (real glass), not 4 (smooth third order)", 1.0, p, se,
                      n=m * t.size)]


# -- R2 optimal sampling distribution ------------------------------------------------------------

def _enumerated_pairs(rng, n, sigma):
    """A random Quadratic, a point nu and the antithetic gradients g(nu +- sigma z) for all 2^n
    sign patterns z (rows of Z), with the elementwise float64 rounding bound g_err of g+-."""
    q = Quadratic(n, seed=_seed(rng))
    nu = rng.normal(size=n)
    Z = np.array(list(itertools.product([-1.0, 1.0], repeat=n)))  # all 2^n sign patterns
    gp, gm = q.grad(nu + sigma * Z), q.grad(nu - sigma * Z)
    g_err = np.maximum(_matvec_err(q.hessian, q.b, nu + sigma * Z),
                       _matvec_err(q.hessian, q.b, nu - sigma * Z))
    return q, nu, Z, gp, gm, g_err


def _r2_enumeration(ctx):
    rng = ctx.rng("R2-enumeration")
    n, sigma = 8, 0.5
    q, nu, Z, gp, gm, g_err = _enumerated_pairs(rng, n, sigma)
    A = q.hessian
    g0 = np.broadcast_to(q.grad(nu), gp.shape)
    D = _sampling.hessian_diag(gp, gm, Z, sigma)
    tol_d = float(2.0 * g_err.max() / (2.0 * sigma) * (1 + 4 * EPS))
    mean_err = float(np.max(np.abs(D.mean(axis=0) - np.diag(A))))
    var_enum = D.var(axis=0)
    var_pred = _sampling.rademacher_variance(A, fourth_moment=1.0)
    tol_v = float(4.0 * np.abs(D).max() * tol_d + 8 * EPS * var_pred.max())
    rho_hat = _kernels.glass_density(gp, gm, g0, sigma)
    tol_rho = float(2.0 * (2.0 * g_err.max()) ** 2 / sigma)
    return [
        _exact_row("R2", f"Hutchinson z*(g+ - g-)/(2 sigma) is unbiased for diag(H): max_i |mean "
                   f"over all 2^{n} sign patterns - H_ii| (hessian_diag)", 0.0, mean_err, tol_d,
                   "matvec gamma_n / sigma"),
        _exact_row("R2", f"Hutchinson variance = sum_(j!=i) H_ij^2 + (E z^4 - 1) H_ii^2: max_i "
                   f"|enumerated Var - rademacher_variance(H)|, sum_i Var = {var_pred.sum():.4g}",
                   0.0, float(np.max(np.abs(var_enum - var_pred))), tol_v, "4 max|D| tol(D)"),
        _exact_row("R2", "antithetic parity: on a quadratic the even part (g+ + g-)/2 - g0 has no "
                   "Hessian term, so glass_density = 0 (max over all patterns)", 0.0,
                   float(np.max(rho_hat)), tol_rho, "2 (2 tol(g))^2 / sigma"),
    ]


def _r2_gaussian_probes(ctx):
    rng = ctx.rng("R2-gaussian-hutchinson")
    n, sigma = 8, 0.5
    q = Quadratic(n, seed=_seed(rng))
    A = q.hessian
    m = ctx.size(1_000_000, 50_000)
    nu = rng.normal(size=n)
    Z = rng.normal(size=(m, n))
    D = _sampling.hessian_diag(q.grad(nu + sigma * Z), q.grad(nu - sigma * Z), Z, sigma)
    S = np.sum((D - np.diag(A)) ** 2, axis=-1)  # E S = sum_i Var D_i
    pred = float(_sampling.rademacher_variance(A, fourth_moment=3.0).sum())
    rad = float(np.sum(A * A) - np.sum(np.diag(A) ** 2))  # Rademacher: E z^4 = 1, by algebra
    row = _mc_row("R2", f"Gaussian probes (E z^4 = 3): sum_i Var of Hutchinson = "
                  f"rademacher_variance(H, 3); Rademacher's is smaller ({rad:.4g})", pred, S - pred)
    se = float(np.std(S, ddof=1) / math.sqrt(m))
    if not float(np.mean(S)) > rad + K_SE * se:
        row.verdict = "fail"
    rows = [row]

    # Glass seen by Gaussian probes: E eps_i(sigma z)^2 = sigma rho E|z| = sigma rho sqrt(2/pi)
    rng = ctx.rng("R2-gaussian-glass")
    nc, nwin, sig = ctx.size(128, 32), ctx.size(250, 250), 0.1
    centres, box = _windows(nwin, 6.0 * sig)  # |z| > 6 has probability 2e-9
    nu = np.repeat(centres[:, None], nc, axis=1)
    ratios = []
    for _ in range(ctx.size(10, 1)):
        land = SeparableGlass(nc, lam=rng.uniform(20, 60, nc), s=rng.uniform(0.5, 1.5, nc),
                              h=rng.uniform(0, 3, nc), box=box, seed=_seed(rng))
        dz = sig * rng.normal(size=(nwin, nc))
        e = _glass_part(land, nu + dz) - _glass_part(land, nu)
        ratios.append(e**2 / (sig * land.rho))
    ez = math.sqrt(2.0 / math.pi)
    rows.append(_mc_row("R2", "glass probing: E eps_i(sigma z)^2 / (sigma rho_i) = E|z|, = "
                        "sqrt(2/pi) for Gaussian z < 1 for Rademacher (separable glass)",
                        ez, np.concatenate(ratios) - ez))
    return rows


# -- R3 glass kernel ----------------------------------------------------------------------------

def _r3_kernel_algebra(ctx):
    Q, dof = _kernels.glass_kernel([-1.0, 0.0, 1.0], order=1)
    w = np.array([1.0, -2.0, 1.0])
    err = float(np.max(np.abs(Q - np.outer(w, w) / 2.0)))
    if dof != 1:
        err = math.inf
    return [_exact_row("R3", "3-point REML kernel on offsets (-1, 0, 1), order 1, is Alice's: "
                       "Q = w w^T / 2, w = (1, -2, 1), dof = 1 (glass_kernel)", 0.0, err,
                       64 * EPS * 2.0, "64 eps |Q|")]


def _r3_enumeration(ctx):
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


# -- R4 expected loss-deviation bound --------------------------------------------------------------

def _glass_loss_part(land, nu, delta):
    """X = L(nu + delta) - L(nu) - g(nu).delta - sum_i h_i delta_i^2 / 2 (separable glass)."""
    return (land.loss(nu + delta) - land.loss(nu) - np.sum(land.grad(nu) * delta, axis=-1)
            - 0.5 * np.sum(land.hess_diag * delta**2, axis=-1))


def _r4(ctx):
    rows = []
    reps = ctx.size(8, 1)
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
    rows.append(_mc_row("R4", "glass part X of L(nu+delta)-L(nu): Var X = sum_i rho_i "
                        "|delta_i|^3 / 3 (E X = 0; 4 coordinates, Gaussian jumps)", pred,
                        np.concatenate(devs)))
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
    rows.append(_mc_row("R4", "Brownian limit (lam|d| = 100 jumps): E|X| / loss_deviation_bound"
                        "(d, rho) = E|X| / (c sqrt(rho)|d|^1.5) -> 1, c = sqrt(2/(3 pi))", 1.0,
                        np.concatenate(devs)))
    # Jensen, any jump law: E|X| <= sqrt(1/3) sqrt(rho) |d|^1.5 (sparse Rademacher jumps)
    rng = ctx.rng("R4-jensen")
    w, dd = ctx.size(100_000, 20_000), 0.1
    centres, box = _windows(w, dd)
    land = SeparableGlass(1, lam=5.0, s=1.0, box=box, jumps="rademacher", seed=_seed(rng))
    X = _glass_loss_part(land, centres[:, None], dd * _signs(rng, (w, 1)))
    jb = float(_bounds.loss_deviation_bound(np.array([dd]), land.rho)) \
        * _bounds.JENSEN_COEFF / _bounds.GLASS_COEFF
    rows.append(_mc_row("R4", "Jensen, any jump law (sparse glass, lam|d| = 0.5): E|X| <= "
                        "sqrt(1/3) sqrt(rho) |d|^1.5", jb, np.abs(X) - jb, side="le"))
    return rows


# -- R5 optimal Hessian-glass step ----------------------------------------------------------------

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


def _golden_min(f, lo, hi, iters=200):
    """Vectorised golden-section search of a convex f on [lo, hi] (brute force, values only)."""
    r = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo.copy(), hi.copy()
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        left = fc < fd
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        c_new, d_new = b - r * (b - a), a + r * (b - a)
        c, d = c_new, d_new
        fc, fd = f(c), f(d)
    return (a + b) / 2.0


def _r5(ctx):
    rng = ctx.rng("R5")
    c = math.sqrt(2.0 / (3.0 * math.pi))  # R4's Brownian-glass constant, by algebra
    k = ctx.size(200_000, 20_000)
    g, a, h, rho = _r5_inputs(rng, k)
    delta = _steps.optimal_step(g, h, rho)
    dstar = np.abs(delta)
    rows = []
    foc = np.abs(-a + h * dstar + 1.5 * c * np.sqrt(rho) * np.sqrt(dstar)) / a
    sign_ok = bool(np.all(np.sign(delta) == -np.sign(g)))
    rows.append(_exact_row("R5", "first-order condition -|g| + h d* + (3/2) c sqrt(rho d*) = 0 "
                           "for d* = |optimal_step| (max relative residual; sign = -sgn g)", 0.0,
                           float(foc.max()) if sign_ok else math.inf, 32 * EPS,
                           "32 eps, no cancellation in h_opt"))
    kb = ctx.size(20_000, 2_000)
    g, a, h, rho = _r5_inputs(rng, kb)
    ub = np.minimum(np.where(h > 0, a / np.where(h > 0, h, 1.0), np.inf),
                    np.where(rho > 0, (a / (1.5 * c * np.sqrt(np.where(rho > 0, rho, 1.0))))**2,
                             np.inf))
    m_fun = lambda dd: -a * dd + 0.5 * h * dd**2 + c * np.sqrt(rho) * dd * np.sqrt(dd)  # noqa: E731
    dbf = _golden_min(m_fun, np.zeros(kb), ub * (1.0 + 1e-9))
    rel = np.abs(np.abs(_steps.optimal_step(g, h, rho)) - dbf) / dbf
    rows.append(_exact_row("R5", "optimal_step equals the brute-force argmin of m(d) = -|g| d + "
                           "h d^2/2 + c sqrt(rho) d^1.5 (golden section; max relative error)",
                           0.0, float(rel.max()), 1e-6, "argmin from values ~ sqrt(eps); 1e-6"))
    # limits
    g, a, h, rho = _r5_inputs(rng, k)
    newton = _steps.optimal_step(g, h, np.zeros(k))
    e1 = np.abs(newton - (-g / np.where(h > 0, h, np.inf))) / np.abs(g / np.where(h > 0, h, 1.0))
    e1 = np.where(h > 0, e1, 0.0)
    rp = np.where(rho > 0, rho, 1.0)
    glass_only = _steps.optimal_step(g, np.zeros(k), rp)
    e2 = np.abs(np.abs(glass_only) - 2.0 * math.pi * a**2 / (3.0 * rp)) / (2.0 * math.pi * a**2
                                                                          / (3.0 * rp))
    rows.append(_exact_row("R5", "limits: rho = 0 gives Newton -g/h; h = 0 gives |d*| = 2 pi g^2 "
                           "/ (3 rho) (max relative error)", 0.0,
                           float(max(e1.max(), e2.max())), 16 * EPS, "16 eps"))
    # monotonicity and h_opt >= max(h, 2 alpha)
    hopt = _steps.effective_curvature(g, h, rho)
    alpha = 3.0 * rho / (4.0 * math.pi * a)
    viol = int(np.sum(hopt < np.maximum(h, 2.0 * alpha) * (1.0 - 4 * EPS)))
    d0 = np.abs(_steps.optimal_step(g, h, rho))
    hp = np.where(h > 0, h * 1.01, 1e-3)
    rq = np.where(rho > 0, rho * 1.01, 1e-3)
    viol += int(np.sum(~(np.abs(_steps.optimal_step(g, hp, rho)) < d0)))
    viol += int(np.sum(~(np.abs(_steps.optimal_step(g, h, rq)) < d0)))
    rows.append(_flag_row("R5", "h_opt >= max(h, 2 alpha), alpha = 3 rho/(4 pi |g|); d* strictly "
                          f"decreasing in h and in rho (violations among {3 * k} comparisons)",
                          0, viol, viol == 0, "exact count (4 eps slack on >=)"))
    return rows


# -- R6 step bounds --------------------------------------------------------------------------------

def _r6(ctx):
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
    rows = [_exact_row("R6", "curvature -> 0: the upper bound binds, step = -tau_hi G/(sqrt V + "
                       "eps) ('adam': Adam with lr tau_hi), -tau_hi G ('sgdm'), -tau_hi sgn G "
                       "('fixed'); max relative error", 0.0, err, 8 * EPS, "8 eps")]
    big = 1e12 * (1.0 + rng.random(k))
    refl = {"adam": -lo * G / (np.sqrt(V) + eps), "sgdm": -lo * G, "fixed": -lo * np.sign(G)}
    err = 0.0
    for lim, want in refl.items():
        got = _steps.bounded_step(G, big, big, V, lo, hi, lim, eps)
        err = max(err, float(np.max(np.abs(got - want) / np.abs(want))))
    rows.append(_exact_row("R6", "huge curvature: the lower bound binds, step = -tau_lo f sgn G "
                           "for each limit method (max relative error)", 0.0, err, 8 * EPS,
                           "8 eps"))
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
    rows.append(_exact_row("R6", f"Alice loop, hess_comp='zero' on a quadratic (no glass): every "
                           f"one of {nupd} updates is mu += -phi tau_hi G/(sqrt V + eps) "
                           f"(Adam-like)",
                           0.0, worst if nupd else math.inf, tol, "8 eps |mu| + 16 eps |step|"))
    return rows


# -- R7 Nesterov exactness ------------------------------------------------------------------------

def _alice_loop(land, config, n_batches, rng, x0):
    """Run the functional Alice core on a landscape; yield one record per batch with the state
    before the batch, after absorbing the gradients, and after the update."""
    state = _alice.init([np.asarray(x0, dtype=np.float64)], config)
    for _ in range(n_batches):
        sched = _alice.schedule(state.t + 1, config)
        if sched.sample:
            z = _driver.draw_rademacher(rng, state.mu)
            plus, minus, nu = _alice.probe_points(state, z, config.lr)
            gp, gm, g0 = land.grad(plus[0]), land.grad(minus[0]), land.grad(nu[0])
            absorbed = _alice.absorb_sample(state, sched, [gp], [gm], [g0], config)
        else:
            nu = _alice.probe_points(state, None, config.lr)[2]
            gp = gm = None
            g0 = land.grad(nu[0])
            absorbed = _alice.absorb_quick(state, sched, [g0], config)
        updated = _alice.apply_update(absorbed, sched, config)
        yield {"sched": sched, "before": state, "absorbed": absorbed, "updated": updated,
               "gp": gp, "gm": gm, "g0": g0}
        state = updated


def _r7(ctx):
    rng = ctx.rng("R7")
    q = Quadratic(8, seed=_seed(rng))
    A, b = q.hessian, q.b
    nb = ctx.size(120, 60)
    x0 = rng.normal(size=8)
    rows = []
    for omega in (1.0, 2.0):
        beta1 = 0.9
        phi = _nesterov.exact_phi(beta1, omega)
        cfg = _alice.AliceConfig(lr=0.05, betas=(beta1, 0.999), omega=omega, phi=phi)
        worst, tol, n_steps = 0.0, 0.0, 0
        for rec in _alice_loop(q, cfg, nb, rng, x0):
            st = rec["absorbed"]  # G has absorbed g(nu); mu is still the centre nu looked from
            n_steps += int(not np.array_equal(rec["updated"].mu[0], st.mu[0]))
            mu, G = st.mu[0], st.G[0]
            worst = max(worst, float(np.max(np.abs(G - q.grad(mu)))))
            mu_max = max(np.abs(mu).max(), np.abs(st.nu[0]).max())
            scale = float(np.abs(A).sum(axis=1).max() * mu_max + np.abs(b).max()
                          + np.abs(G).max())
            tol = max(tol, 16 * A.shape[0] * EPS * scale / (1.0 - beta1))
        rows.append(_exact_row("R7", f"Alice loop on a quadratic, omega = {omega:g}, phi = "
                               f"exact_phi = omega(1 - beta1) = {phi:g}: the average G equals "
                               f"grad L(mu) at every batch ({nb} batches, {n_steps} steps; "
                               f"max |G - g(mu)|)", 0.0, worst if n_steps else math.inf, tol,
                               "16 n eps scale / (1 - beta1)"))
    # phi off the exact value: the lag follows nesterov_lag's closed form
    beta1, omega = 0.9, 1.0
    phi = 0.5 * (1.0 - beta1)
    cfg = _alice.AliceConfig(lr=0.05, betas=(beta1, 0.999), omega=omega, phi=phi)
    lag_pred, prev_mu, prev_delta = None, None, None
    worst, tol, biggest, n_cmp = 0.0, 0.0, 0.0, 0
    for rec in _alice_loop(q, cfg, nb, rng, x0):
        st, sched = rec["absorbed"], rec["sched"]
        lag = st.G[0] - q.grad(st.mu[0])
        if prev_delta is not None:
            lag_pred = _nesterov.nesterov_lag(lag_pred, A @ prev_delta, beta1, omega, phi)
            worst = max(worst, float(np.max(np.abs(lag - lag_pred))))
            biggest = max(biggest, float(np.max(np.abs(lag))))
            scale = float(np.abs(A).sum(axis=1).max() * np.abs(st.mu[0]).max() + np.abs(b).max()
                          + np.abs(st.G[0]).max())
            tol = max(tol, 16 * A.shape[0] * EPS * scale / (1.0 - beta1)
                      + 4 * EPS * scale / (omega * (1.0 - beta1)))
            n_cmp += 1
        if sched.update:
            if lag_pred is None:
                lag_pred = lag  # first post-warm-up batch: G = g(mu) up to rounding
            prev_mu = st.mu[0]
            prev_delta = (rec["updated"].nu[0] - prev_mu) / omega
        else:
            prev_delta = None
    rows.append(_exact_row("R7", f"phi = {phi:g} != omega(1 - beta1): the lag G - g(mu) follows "
                           f"nesterov_lag, ((1-beta)omega - phi) H delta + beta lag "
                           f"(max |lag| = {biggest:.3g}; max deviation over {n_cmp} batches)", 0.0,
                           worst if n_cmp else math.inf, tol, "16 n eps scale / (1 - beta1)"))
    # warm-up: the first update happens at batch 1/(1 - beta1) + 1, where beta_t = beta1
    want, got, betas_ok = [], [], True
    for beta1, w in ((0.5, 2), (0.75, 4), (0.875, 8), (0.9, 10)):
        cfg = _alice.AliceConfig(lr=0.05, betas=(beta1, 0.999))
        first = None
        for rec in _alice_loop(q, cfg, 14, rng, x0):
            moved = not np.array_equal(rec["updated"].mu[0], rec["before"].mu[0])
            if moved and first is None:
                first = rec["sched"].t
            if moved and rec["sched"].beta1 != beta1:
                betas_ok = False
        want.append(w)
        got.append(-1 if first is None else first - 1)
    fmt = lambda xs: ",".join(str(x) for x in xs)  # noqa: E731
    rows.append(_flag_row("R7", "warm-up: Alice averages for 1/(1 - beta1) batches (beta1 = 0.5, "
                          "0.75, 0.875, 0.9; float64, where the official float32 code gives 9 at "
                          "0.9), then steps with beta_t = beta1 on every update", fmt(want),
                          fmt(got), got == want and betas_ok, "exact batch counts"))
    return rows


# -- R8 cost schedule ------------------------------------------------------------------------------

def _count_evaluations(q_steps, n_count, rng):
    """Gradient evaluations (calls of value_and_grad) that the driver alice_ref.Alice makes over
    n_count batches after warm-up, on minibatches of a ReLU teacher-student net. The counted
    window starts and ends on multiples of q + 1."""
    land = ReluTeacherStudent(seed=_seed(rng), n_samples=128)
    x0 = land.init_params(seed=_seed(rng))
    opt = _driver.Alice([x0], lr=0.01, betas=(0.9, 0.999), quick_steps=q_steps, seed=_seed(rng))
    calls = [0]
    batch = [None]

    def value_and_grad(p):
        calls[0] += 1
        return land.loss(p[0], batch[0]), [land.grad(p[0], batch[0])]

    period = q_steps + 1
    t0 = int(math.ceil((math.floor(opt.config.warmup) + 1) / period) * period)
    for t in range(t0 + n_count):
        if t == t0:
            calls[0] = 0
        batch[0] = rng.choice(128, size=32, replace=False)
        opt.step(value_and_grad)
    return calls[0]


def _r8(ctx):
    rng = ctx.rng("R8")
    rows = []
    periods = ctx.size(40, 10)
    q = 3
    n = periods * (q + 1)
    count = _count_evaluations(q, n, rng)
    pred = n * _cost.sample_cost(q)
    rows.append(_flag_row("R8", f"quick_steps q = {q}: gradient evaluations made by the driver "
                          f"over {n} post-warm-up batches = N (3 + q)/(q + 1) (sample_cost)",
                          pred, count, count == pred, "exact count"))
    total_pred, total, ok = 0.0, 0, True
    for q in (0, 1, 2, 7):
        n = ctx.size(10, 3) * (q + 1)
        c = _count_evaluations(q, n, rng)
        p = n * _cost.sample_cost(q)
        total_pred, total, ok = total_pred + p, total + c, ok and c == p
    rows.append(_flag_row("R8", "quick_steps q in {0, 1, 2, 7}: evaluation counts = N sample_cost"
                          "(q) for each (sums shown)", total_pred, total, ok, "exact count"))
    # beta3 in the loop: R <- rho_hat + beta3 (R - rho_hat) on sample steps only
    beta2, q = 0.99, 3
    beta3 = 1.0 - (q + 1) * (1.0 - beta2)  # by algebra; keeps (q+1)/(1-beta3) = 1/(1-beta2)
    cfg = _alice.AliceConfig(lr=0.01, betas=(0.9, beta2), quick_steps=q)
    land = ReluTeacherStudent(seed=_seed(rng))
    num = den = 0.0
    quick_same, n_sample = True, 0
    for rec in _alice_loop(land, cfg, 80, rng, land.init_params(seed=_seed(rng))):
        sched, R0, R1 = rec["sched"], rec["before"].R[0], rec["absorbed"].R[0]
        if not sched.sample:
            quick_same = (quick_same and np.array_equal(R0, R1)
                          and np.array_equal(rec["before"].H[0], rec["absorbed"].H[0]))
            continue
        if sched.t < 1.0 / (1.0 - beta3):
            continue
        rho_hat = 2.0 * ((rec["gp"] + rec["gm"]) / 2.0 - rec["g0"]) ** 2 / cfg.lr
        u, v = R0 - rho_hat, R1 - rho_hat
        num, den, n_sample = num + float(u @ v), den + float(u @ u), n_sample + 1
    fit = num / den if den > 0 and quick_same else math.nan
    rows.append(_exact_row("R8", f"curvature averages (R, H) refresh only on sample steps, with "
                           f"beta3 = 1 - (q+1)(1 - beta2) (q = {q}, beta2 = {beta2}: time constant "
                           f"(q+1)/(1-beta3) = 1/(1-beta2)); fitted weight over {n_sample} steps",
                           beta3, fit, 64 * EPS, "64 eps"))
    try:
        _alice.AliceConfig(betas=(0.9, 0.7), quick_steps=3)
        got = "accepted"
    except ValueError:
        got = "ValueError"
    rows.append(_flag_row("R8", "(q+1)(1 - beta2) >= 1 leaves no valid beta3: AliceConfig(betas="
                          "(0.9, 0.7), quick_steps=3) is rejected", "ValueError", got,
                          got == "ValueError"))
    return rows


# -- registry and running -------------------------------------------------------------------------

# (result, title, function); a check returns one or more rows of its result.
CHECKS = (
    ("R1", "gradient glass on separable glass", _r1_separable),
    ("R1", "power law on a quadratic", _r1_quadratic),
    ("R1", "power law on a ReLU network", _r1_relu),
    ("R2", "Hutchinson by enumeration", _r2_enumeration),
    ("R2", "Gaussian vs Rademacher probes", _r2_gaussian_probes),
    ("R3", "3-point kernel algebra", _r3_kernel_algebra),
    ("R3", "'abs' curvature by enumeration", _r3_enumeration),
    ("R3", "estimators on separable glass", _r3_separable),
    ("R3", "REML relative variance", _r3_reml_variance),
    ("R4", "loss-deviation bound", _r4),
    ("R5", "optimal step", _r5),
    ("R6", "step bounds", _r6),
    ("R7", "Nesterov exactness", _r7),
    ("R8", "cost schedule", _r8),
)


def run_checks(seed: int = 0, quick: bool = False, only=None, progress=None) -> list[Row]:
    """Run the numerical checks of R1-R8 (all, or those of the results in ``only``).

    Each check compares a prediction with a measurement made through the library's public
    functions (see the module docstring): Monte Carlo rows pass when the measurement is within
    5 standard errors of the prediction, exact rows within a float64 rounding bound. A check
    that raises yields one failing row naming the exception, so a broken core gives failing
    rows rather than an error.

    Args:
        seed: base seed of every Monte Carlo check (each check derives its own generator).
        quick: fewer Monte Carlo samples (the same rows, wider tolerances).
        only: None for all checks, or a collection of result names such as {'R3', 'R5'}
            (upper case, as in CHECKS).
        progress: optional ``progress(i, n, result, title)``, called before each check.

    Returns:
        The list of Row objects, in the order of CHECKS.

    Example:
        The checks of R6 (step bounds), which take milliseconds:

        >>> calls = []
        >>> rows = run_checks(quick=True, only={"R6"}, progress=lambda *a: calls.append(a))
        >>> {r.result for r in rows}, all(r.verdict == "pass" for r in rows), calls
        ({'R6'}, True, [(0, 1, 'R6', 'step bounds')])
    """
    ctx = _Ctx(seed, quick)
    selected = [c for c in CHECKS if only is None or c[0] in only]
    rows: list[Row] = []
    for i, (result, title, fn) in enumerate(selected):
        if progress is not None:
            progress(i, len(selected), result, title)
        try:
            with np.errstate(all="ignore"):
                rows.extend(fn(ctx))
        except Exception as e:  # noqa: BLE001 - a broken core must give a failing row
            rows.append(Row(result, f"{title}: raised {type(e).__name__}: {e}", "-", "error", "-",
                            "fail"))
    return rows


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def format_table(rows, claim_width: int = 58, tol_width: int = 26) -> str:
    """Format rows as a plain-text table: result, claim, predicted, measured, tolerance, verdict.

    Claims and tolerances wrap within their columns, floats print with 6 significant digits and
    the verdict in upper case.

    Args:
        rows: Row objects.
        claim_width: the width of the claim column.
        tol_width: the width of the tolerance column.

    Returns:
        The table as one string: a header line, a rule, then the rows.

    Example:
        One row under the header and the rule:

        >>> lines = format_table([Row("R8", "cost", 1.5, 1.5, "exact", "pass")]).splitlines()
        >>> lines[0].split()
        ['result', 'claim', 'predicted', 'measured', 'tolerance', 'verdict']
        >>> lines[2].split()
        ['R8', 'cost', '1.5', '1.5', 'exact', 'PASS']
    """
    import textwrap

    head = ("result", "claim", "predicted", "measured", "tolerance", "verdict")
    cells = [(r.result, textwrap.wrap(r.claim, claim_width) or [""], _fmt(r.predicted),
              _fmt(r.measured), textwrap.wrap(str(r.tolerance), tol_width) or [""], r.verdict)
             for r in rows]
    wp = max([len(head[2])] + [len(c[2]) for c in cells])
    wm = max([len(head[3])] + [len(c[3]) for c in cells])
    line = lambda a, b, c, d, e, f: (  # noqa: E731
        f"{a:<6}  {b:<{claim_width}}  {c:>{wp}}  {d:>{wm}}  {e:<{tol_width}}  {f}").rstrip()
    out = [line(*head), "-" * (6 + claim_width + wp + wm + tol_width + 7 * 2 + 2)]
    for res, claim, p, m, tol, v in cells:
        for k in range(max(len(claim), len(tol))):
            first = k == 0
            out.append(line(res if first else "", claim[k] if k < len(claim) else "",
                            p if first else "", m if first else "",
                            tol[k] if k < len(tol) else "", v.upper() if first else ""))
    return "\n".join(out)


def rows_to_json(rows) -> list[dict]:
    """Rows as JSON-ready dicts {result, claim, predicted, measured, tolerance, verdict}.

    Finite numbers in predicted, measured and tolerance become floats; NaN and infinities
    become strings (JSON has no NaN), as do booleans.

    Args:
        rows: Row objects.

    Returns:
        A list of dicts, one per row, in order.

    Example:
        A NaN prediction becomes the string 'nan':

        >>> d = rows_to_json([Row("R1", "claim", float("nan"), 1.0, "+-0.5", "fail")])[0]
        >>> d["predicted"], d["measured"], d["verdict"]
        ('nan', 1.0, 'fail')
    """
    return [{k: (_num(v) if k in ("predicted", "measured", "tolerance")
                 and not isinstance(v, str) else v) for k, v in asdict(r).items()} for r in rows]


# -- command line ----------------------------------------------------------------------------------

RESULTS = tuple(f"R{k}" for k in range(1, 9))


def _only(text: str):
    items = [s.strip().upper() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in RESULTS]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"--only takes a comma-separated list of results among {', '.join(RESULTS)}; "
            f"got {text!r}")
    return set(items)


def _seed_arg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"--seed must be an integer >= 0, got {text!r}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``alice-ref verify`` to an argparse parser.

    The options are --quick, --json PATH ('-' for stdout), --seed N (an integer >= 0) and
    --only R3,R5 (results among R1-R8, any case, parsed into a set). A bad --seed or --only
    makes ``parse_args`` exit with status 2 and a message naming the option.

    Args:
        parser: an argparse.ArgumentParser (or a subparser).

    Example:
        Parsing a selection of results:

        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_arguments(p)
        >>> a = p.parse_args(["--only", "r5,R3", "--quick"])
        >>> sorted(a.only), a.quick, a.seed, a.json_path
        (['R3', 'R5'], True, 0, None)
    """
    parser.add_argument("--quick", action="store_true",
                        help="fewer Monte Carlo samples (same rows, wider tolerances); < 10 s")
    parser.add_argument("--json", metavar="PATH", dest="json_path",
                        help="also write the rows as a JSON list of {result, claim, predicted, "
                             "measured, tolerance, verdict} to PATH ('-' for stdout)")
    parser.add_argument("--seed", type=_seed_arg, default=0, metavar="N",
                        help="base seed of every Monte Carlo check (default 0)")
    parser.add_argument("--only", type=_only, default=None, metavar="R3,R5",
                        help="run only the checks of these results")


def _progress_printer(stream):
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None, lambda: None

    def progress(i, n, result, title):
        stream.write(f"\r\033[Kverify [{i + 1}/{n}] {result}: {title} ...")
        stream.flush()

    def done():
        stream.write("\r\033[K")
        stream.flush()

    return progress, done


def run(args: argparse.Namespace) -> int:
    """Entry of ``alice-ref verify``: run the checks, print the table and a summary line.

    The table and the summary go to stdout, or to stderr when ``--json -`` puts the JSON on
    stdout; on a terminal a progress line is shown on stderr.

    Args:
        args: the parsed options (seed, quick, only, json_path), as :func:`add_arguments`
            defines them.

    Returns:
        The exit status: 0 iff there is at least one row and every row passes, 1 otherwise,
        and 2 when the --json file cannot be written.

    Example:
        The R6 checks pass, and the summary line says so:

        >>> import argparse, contextlib, io
        >>> args = argparse.Namespace(seed=0, quick=True, only={"R6"}, json_path=None)
        >>> out = io.StringIO()
        >>> with contextlib.redirect_stdout(out):
        ...     status = run(args)
        >>> status, " 0 fail " in out.getvalue().splitlines()[-1]
        (0, True)
    """
    progress, done = _progress_printer(sys.stderr)
    start = time.perf_counter()
    try:
        rows = run_checks(seed=args.seed, quick=args.quick, only=args.only, progress=progress)
    finally:
        done()
    elapsed = time.perf_counter() - start
    n_fail = sum(r.verdict != "pass" for r in rows)
    to_stdout_json = args.json_path == "-"
    out = sys.stderr if to_stdout_json else sys.stdout
    print(format_table(rows), file=out)
    print(f"\n{len(rows)} rows: {len(rows) - n_fail} pass, {n_fail} fail "
          f"(seed {args.seed}{', quick' if args.quick else ''}; {elapsed:.1f} s)", file=out)
    if args.json_path:
        payload = json.dumps(rows_to_json(rows), indent=2)
        if to_stdout_json:
            print(payload)
        else:
            try:
                with open(args.json_path, "w", encoding="utf-8") as f:
                    f.write(payload + "\n")
            except OSError as e:
                print(f"alice-ref verify: cannot write --json {args.json_path!r}: {e}",
                      file=sys.stderr)
                return 2
    return 0 if n_fail == 0 and rows else 1


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``verify`` subcommand to an argparse subparsers object (handler in ``func``).

    This is the registration hook that :mod:`alice_ref.tools.cli` calls for each subcommand.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        The new subparser; its ``func`` default is :func:`run`.

    Example:
        Registering under a parent parser:

        >>> import argparse
        >>> sub = argparse.ArgumentParser(prog="alice-ref").add_subparsers()
        >>> p = register(sub)
        >>> p.prog, p.get_default("func") is run
        ('alice-ref verify', True)
    """
    p = subparsers.add_parser("verify", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def main(argv=None) -> int:
    """Stand-alone entry: ``python -m alice_ref.tools.verify [options]``, as ``alice-ref verify``.

    Args:
        argv: the options (default: ``sys.argv[1:]``).

    Returns:
        The exit status of :func:`run`.

    Raises:
        SystemExit: bad options (status 2, from argparse) or ``--help`` (status 0).

    Example:
        Running the R6 checks, with the table discarded:

        >>> import contextlib, io
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     status = main(["--only", "R6", "--quick"])
        >>> status
        0
    """
    parser = argparse.ArgumentParser(prog="alice-ref verify", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
