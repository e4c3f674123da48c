"""The ``alice-ref verify`` command line (R1-R8): options, the run, the subcommand hook."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .table import format_table, rows_to_json

HELP = "check results R1-R8 numerically on synthetic landscapes"
DESCRIPTION = """\
Check results R1-R8 of "Curvature in the Looking-Glass" (arXiv 2411.16914) numerically on
synthetic landscapes with known truth (separable glass with rho = lam s^2, quadratics, a ReLU
teacher-student network) and on the Alice optimiser itself. Prints one row per claim: result,
claim, predicted, measured, tolerance, verdict. Monte Carlo rows are seeded and use 5 standard
errors computed from the samples; exact rows use a float64 rounding bound. Exit status 0 iff
every row passes, 1 otherwise."""


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
    from . import run_checks  # the registry lives in the package, which imports this module

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
