"""Rows of ``alice-ref verify`` and the helpers every check shares (R1-R8).

:class:`Row` is one verified claim; ``_stat_row`` / ``_mc_row`` (Monte Carlo, 5 standard errors),
``_exact_row`` (float64 rounding bound) and ``_flag_row`` (yes/no, counts) build it. ``_Ctx`` holds
the seed and the sample sizes of one run; the rest are the landscapes' windows, signs and rounding
bounds, the enumeration of R2/R3, and the loop of the functional Alice core used by R6-R8.
"""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass

import numpy as np

# Core modules are used through their module objects (not `from ... import name`) so that a
# monkeypatched core function is the one verify exercises (tests rely on it).
from alice_ref import core as _alice
from alice_ref import driver as _driver
from alice_ref.landscapes import Quadratic
from alice_ref.maths import glass as _glass
from alice_ref.maths import probes as _sampling

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
        relation: the kind of claim, how measured stands to predicted: '=' (equal within the
            tolerance), '<=' or '>=' (predicted is a bound, one-sided tolerance) or 'min'
            (measured is the minimiser that predicted names, found by brute force).
        anchor: what of the paper the row checks: an abstract claim (A1-A8 of
            :data:`alice_ref.tools.verify.paper.ABSTRACT`) and/or a step of the official
            algorithm ("Alg. 2, steps 9-11"); docs/paper-map.md lists them.

    Example:
        A row as the R8 cost check might write it:

        >>> from alice_ref.tools.verify import rows_to_json
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
    relation: str = "="
    anchor: str = ""


# -- row constructors ---------------------------------------------------------------------------

def _num(x):
    """A JSON-friendly value: finite floats stay floats, anything else becomes a string."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, float, np.integer, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else str(x)
    return str(x)


RELATIONS = ("=", "<=", ">=", "min")
_SIDE_RELATION = {"two": "=", "ge": ">=", "le": "<="}


def _stat_row(result, claim, predicted, measured, se, side="two", n=None, anchor=""):
    """Row for an estimate with standard error ``se``: |measured - predicted| <= 5 SE (two-sided,
    relation '='), or measured >= predicted - 5 SE ('ge', relation '>=': predicted is a lower
    bound), or measured <= predicted + 5 SE ('le', relation '<=': an upper bound)."""
    tol = K_SE * float(se)
    m, p = float(measured), float(predicted)
    if side == "two":
        ok = abs(m - p) <= tol
        t = f"+-{tol:.3g} (5 SE)"
    elif side == "ge":
        ok = m >= p - tol
        t = f"-{tol:.3g} (5 SE, one-sided)"
    elif side == "le":
        ok = m <= p + tol
        t = f"+{tol:.3g} (5 SE, one-sided)"
    else:  # pragma: no cover - programming error
        raise ValueError(side)
    if n is not None:
        t += f", n={n}"
    ok = bool(ok) and math.isfinite(tol) and math.isfinite(m)
    return Row(result, claim, _num(p), _num(m), t, "pass" if ok else "fail",
               _SIDE_RELATION[side], anchor)


def _mc_row(result, claim, predicted, deviations, side="two", anchor=""):
    """Monte Carlo row from i.i.d. per-sample deviations (sample minus its own prediction), whose
    mean is 0 under the claim: measured = predicted + mean, SE = sd / sqrt(n)."""
    d = np.asarray(deviations, dtype=np.float64).ravel()
    se = float(np.std(d, ddof=1) / math.sqrt(d.size))
    return _stat_row(result, claim, predicted, float(predicted) + float(np.mean(d)), se, side,
                     n=d.size, anchor=anchor)


def _exact_row(result, claim, predicted, measured, tol, basis, anchor="", relation="="):
    """Exact row: |measured - predicted| <= tol, tol a float64 rounding bound described by basis
    (relation '=', or 'min' when measured is a minimiser checked against a brute-force one)."""
    m, p, tol = float(measured), float(predicted), float(tol)
    ok = math.isfinite(m) and abs(m - p) <= tol
    return Row(result, claim, _num(p), _num(m), f"+-{tol:.2g} (rounding: {basis})",
               "pass" if ok else "fail", relation, anchor)


def _flag_row(result, claim, predicted, measured, ok, basis="exact", anchor=""):
    """Row for a yes/no or integer-count claim (relation '=')."""
    return Row(result, claim, _num(predicted), _num(measured), basis, "pass" if ok else "fail",
               "=", anchor)


# -- shared helpers -----------------------------------------------------------------------------

class _Ctx:
    """Seeds and sample sizes of one run, and the samples the checks keep for ``--report``.

    ``keep(name, **arrays)`` stores what a check measured (NumPy arrays and numbers) under
    ``samples[name]`` when the run keeps samples; the report's figures are drawn from them.
    """

    def __init__(self, seed: int, quick: bool, samples: dict | None = None):
        self.seed, self.quick = int(seed), bool(quick)
        self.samples = samples

    def keep(self, name: str, **data) -> None:
        if self.samples is not None:
            self.samples[name] = data

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
