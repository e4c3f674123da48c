"""``alice-ref verify``: numerical checks of results R1-R8 on synthetic landscapes with known truth.

Each check compares a prediction (algebra, enumeration, a landscape's known rho and H, or an
independent brute-force computation) with a measurement made through the library's public
functions, and prints one row: result, paper anchor, claim, measured, relation, predicted,
tolerance, verdict. The relation ('=', '<=', '>=', 'min') says how measured must stand to
predicted, so a bound is never shown as a prediction; the anchor names the abstract's claim
(A1-A8, :mod:`.paper`) and the official algorithm's step the row checks (docs/paper-map.md).

- Monte Carlo rows are seeded (``--seed``); the tolerance is 5 standard errors computed from the
  samples themselves (two-sided unless the claim is an inequality). Samples are independent by
  construction: on a separable-glass landscape every sample uses its own window of a coordinate,
  and windows never overlap, so their glass is independent (R1).
- Exact rows (identities, enumeration over all sign patterns, optimiser bookkeeping) have a
  tolerance derived from float64 rounding of the quantities involved; it is stated in the row.

Only the base install is used (NumPy and array-api-compat): no torch, JAX or matplotlib.
The mathematics is in docs/derivations.md; results are numbered as in docs/spec/math.md.

Layout: the checks of result Rk are in ``rk.py`` and registered in :data:`CHECKS` here; rows and
shared helpers in ``_rows.py``; the brute-force oracles (also used by the tests) in
:mod:`alice_ref.tools.verify.oracles`; the table and JSON in ``table.py``; the command line in
``command.py``.

Programmatic use::

    rows = run_checks(seed=0, quick=True)
    print(format_table(rows)); all(r.verdict == "pass" for r in rows)
"""

from __future__ import annotations

import numpy as np

from ._rows import Row, _Ctx
from .command import DESCRIPTION, HELP, RESULTS, add_arguments, main, register, run
from .paper import ABSTRACT, RESULT_ANCHORS
from .r1 import _r1_quadratic, _r1_relu, _r1_separable
from .r2 import _r2_enumeration, _r2_gaussian_probes
from .r3 import _r3_enumeration, _r3_kernel_algebra, _r3_reml_variance, _r3_separable
from .r4 import _r4
from .r5 import _r5
from .r6 import _r6
from .r7 import _r7
from .r8 import _r8
from .table import format_markdown, format_table, rows_to_json

__all__ = ["Row", "CHECKS", "run_checks", "run_check", "format_table", "format_markdown",
           "rows_to_json", "ABSTRACT", "RESULT_ANCHORS",
           "add_arguments", "run", "register", "main", "HELP", "DESCRIPTION", "RESULTS"]

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


def run_checks(seed: int = 0, quick: bool = False, only=None, progress=None,
               samples: dict | None = None) -> list[Row]:
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
        samples: optional dict that receives what the checks measured, by name ('R1-separable',
            'R5', ...): the samples ``--report`` draws its figures from.

    Returns:
        The list of Row objects, in the order of CHECKS.

    Example:
        The checks of R6 (step bounds), which take milliseconds:

        >>> calls = []
        >>> rows = run_checks(quick=True, only={"R6"}, progress=lambda *a: calls.append(a))
        >>> {r.result for r in rows}, all(r.verdict == "pass" for r in rows), calls
        ({'R6'}, True, [(0, 1, 'R6', 'step bounds')])
    """
    ctx = _Ctx(seed, quick, samples)
    selected = [c for c in CHECKS if only is None or c[0] in only]
    rows: list[Row] = []
    for i, (result, title, fn) in enumerate(selected):
        if progress is not None:
            progress(i, len(selected), result, title)
        rows.extend(_run_one(ctx, result, title, fn))
    return rows


def run_check(check, seed: int = 0, quick: bool = False, samples: dict | None = None) -> list[Row]:
    """Run one registered check, an entry ``(result, title, function)`` of :data:`CHECKS`.

    It gives the rows that :func:`run_checks` gives for that check with the same seed and
    quick flag (each check derives its generator from the seed and its own tag), a failing row
    if it raises.

    Example:
        R6 (step bounds) alone:

        >>> rows = run_check(CHECKS[-3], quick=True)
        >>> CHECKS[-3][:2], len(rows), all(r.verdict == "pass" for r in rows)
        (('R6', 'step bounds'), 4, True)
    """
    result, title, fn = check
    return _run_one(_Ctx(seed, quick, samples), result, title, fn)


def _run_one(ctx, result, title, fn) -> list[Row]:
    rows: list[Row] = []
    try:
        with np.errstate(all="ignore"):
            rows.extend(fn(ctx))
    except Exception as e:  # noqa: BLE001 - a broken core must give a failing row
        rows.append(Row(result, f"{title}: raised {type(e).__name__}: {e}", "-", "error", "-",
                        "fail", "=", RESULT_ANCHORS[result][0]))
    return rows
