"""The ``alice-ref verify`` table and its JSON rows (R1-R8): :func:`format_table`,
:func:`rows_to_json`."""

from __future__ import annotations

from dataclasses import asdict

from ._rows import Row, _num  # noqa: F401 - Row: for the doctests


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


HEAD = ("result", "anchor", "claim", "measured", "rel", "predicted", "tolerance", "verdict")


def format_table(rows, claim_width: int = 50, tol_width: int = 22, anchor_width: int = 16) -> str:
    """Format rows as a plain-text table: result, anchor, claim, measured, relation, predicted,
    tolerance, verdict.

    A row reads "measured rel predicted": '=' within the tolerance, '<=' / '>=' against a bound
    (the tolerance is then one-sided), 'min' for a minimiser against a brute-force one. Claims,
    anchors and tolerances wrap within their columns, floats print with 6 significant digits and
    the verdict in upper case.

    Args:
        rows: Row objects.
        claim_width: the width of the claim column.
        tol_width: the width of the tolerance column.
        anchor_width: the width of the anchor column.

    Returns:
        The table as one string: a header line, a rule, then the rows.

    Example:
        One row under the header and the rule:

        >>> lines = format_table([Row("R8", "cost", 1.5, 1.5, "exact", "pass", "=", "A7")])
        >>> lines.splitlines()[0].split()
        ['result', 'anchor', 'claim', 'measured', 'rel', 'predicted', 'tolerance', 'verdict']
        >>> lines.splitlines()[2].split()
        ['R8', 'A7', 'cost', '1.5', '=', '1.5', 'exact', 'PASS']
    """
    import textwrap

    cells = [(r.result, textwrap.wrap(r.anchor, anchor_width) or [""],
              textwrap.wrap(r.claim, claim_width) or [""], _fmt(r.measured), r.relation,
              _fmt(r.predicted), textwrap.wrap(str(r.tolerance), tol_width) or [""], r.verdict)
             for r in rows]
    wm = max([len(HEAD[3])] + [len(c[3]) for c in cells])
    wp = max([len(HEAD[5])] + [len(c[5]) for c in cells])
    line = lambda a, an, b, m, rel, p, e, f: (  # noqa: E731
        f"{a:<6}  {an:<{anchor_width}}  {b:<{claim_width}}  {m:>{wm}}  {rel:<3}  {p:>{wp}}  "
        f"{e:<{tol_width}}  {f}").rstrip()
    out = [line(*HEAD), "-" * (6 + anchor_width + claim_width + wm + 3 + wp + tol_width
                               + 7 + 2 * 7)]
    for res, anc, claim, m, rel, p, tol, v in cells:
        for k in range(max(len(claim), len(tol), len(anc))):
            first = k == 0
            pick = lambda xs, k=k: xs[k] if k < len(xs) else ""  # noqa: E731
            out.append(line(res if first else "", pick(anc), pick(claim), m if first else "",
                            rel if first else "", p if first else "", pick(tol),
                            v.upper() if first else ""))
    return "\n".join(out)


def format_markdown(rows) -> str:
    """The rows as a Markdown table (the report's ``verify.md``), one line per row.

    Args:
        rows: Row objects.

    Returns:
        The table: header, alignment line, one line per row ('|' in a cell escaped).

    Example:
        >>> print(format_markdown([Row("R8", "cost", 1.5, 1.5, "exact", "pass", "=", "A7")]))
        | result | anchor | claim | measured | rel | predicted | tolerance | verdict |
        |---|---|---|---:|:-:|---:|---|---|
        | R8 | A7 | cost | 1.5 | = | 1.5 | exact | PASS |
    """
    esc = lambda x: str(x).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(HEAD) + " |", "|---|---|---|---:|:-:|---:|---|---|"]
    for r in rows:
        rel = {"<=": "&le;", ">=": "&ge;"}.get(r.relation, r.relation)
        out.append("| " + " | ".join([r.result, esc(r.anchor), esc(r.claim), esc(_fmt(r.measured)),
                                      rel, esc(_fmt(r.predicted)), esc(r.tolerance),
                                      r.verdict.upper()]) + " |")
    return "\n".join(out)


def rows_to_json(rows) -> list[dict]:
    """Rows as JSON-ready dicts {result, claim, predicted, measured, tolerance, verdict,
    relation, anchor}.

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
