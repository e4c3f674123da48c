"""The ``alice-ref verify`` table and its JSON rows (R1-R8): :func:`format_table`,
:func:`rows_to_json`."""

from __future__ import annotations

from dataclasses import asdict

from ._rows import Row, _num  # noqa: F401 - Row: for the doctests


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
