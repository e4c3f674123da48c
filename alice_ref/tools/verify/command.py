"""The ``alice-ref verify`` command line (R1-R8): options, the run, the subcommand hook."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .table import format_table, rows_to_json

HELP = "check results R1-R8 numerically on synthetic landscapes"
DESCRIPTION = """\
Check results R1-R8 of "Curvature in the Looking-Glass" (arXiv 2411.16914) numerically on
synthetic landscapes with known truth (separable glass with rho = lam s^2, quadratics, a ReLU
teacher-student network) and on the Alice optimiser itself. Prints one row per claim: result,
anchor (the abstract's claim A1-A8 and the official Alg. 2 / Alg. 3 step it checks; see
docs/paper-map.md), claim, measured, relation (=, <=, >=, min: how measured must stand to
predicted), predicted, tolerance, verdict. Monte Carlo rows are seeded and use 5 standard
errors computed from the samples; exact rows use a float64 rounding bound. --report DIR also
writes the table as Markdown and one figure per result drawn from the rows' own samples.
Progress goes to stderr. Exit status 0 iff every row passes, 1 otherwise, 2 for bad arguments
(checked before any work starts)."""


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
        >>> sorted(a.only), a.quick, a.seed, a.json_path, a.report
        (['R3', 'R5'], True, 0, None, None)
    """
    parser.add_argument("--quick", action="store_true",
                        help="fewer Monte Carlo samples (same rows, wider tolerances); ~2 s")
    parser.add_argument("--json", metavar="PATH", dest="json_path",
                        help="also write the rows as a JSON list of {result, claim, predicted, "
                             "measured, tolerance, verdict, relation, anchor} to PATH ('-' for "
                             "stdout)")
    parser.add_argument("--report", metavar="DIR", default=None,
                        help="write verify.md (the table), verify.json and one figure per "
                             "result (verify_r1.png ... verify_r8.png) into DIR (needs "
                             "matplotlib)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress lines on stderr")
    parser.add_argument("--seed", type=_seed_arg, default=0, metavar="N",
                        help="base seed of every Monte Carlo check (default 0)")
    parser.add_argument("--only", type=_only, default=None, metavar="R3,R5",
                        help="run only the checks of these results")


def _progress_printer(stream, enabled=True):
    """Progress on ``stream``: one rewritten line on a terminal, else one line per check (so a
    piped or logged run shows what it is doing). Returns (progress, done)."""
    if not enabled:
        return None, lambda: None
    tty = hasattr(stream, "isatty") and stream.isatty()
    start = time.perf_counter()

    def progress(i, n, result, title):
        text = f"verify [{i + 1}/{n}] {result}: {title} ({time.perf_counter() - start:.1f} s)"
        stream.write(f"\r\033[K{text} ..." if tty else text + "\n")
        stream.flush()

    def done():
        if tty:
            stream.write("\r\033[K")
            stream.flush()

    return progress, done


def _writable_file(path: str) -> str | None:
    """Why ``path`` cannot be written as a file, or None when it can (nothing is created)."""
    if os.path.isdir(path):
        return "it is a directory"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"its directory {parent!r} does not exist"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "it is not writable"
    if not os.access(parent, os.W_OK):
        return f"its directory {parent!r} is not writable"
    return None


def check_arguments(args: argparse.Namespace) -> str | None:
    """Every argument checked before any work starts: the message of the first problem, or None.

    --json PATH must be writable (its directory must exist); --report DIR must be a writable
    directory or creatable in an existing one, and matplotlib must be importable. Nothing is
    created here.

    Args:
        args: the parsed options.

    Returns:
        A message naming the option and the problem, or None.

    Example:
        >>> import argparse
        >>> check_arguments(argparse.Namespace(json_path="/nonexistent/x.json", report=None))
        "--json '/nonexistent/x.json': its directory '/nonexistent' does not exist"
    """
    if args.json_path and args.json_path != "-":
        why = _writable_file(args.json_path)
        if why:
            return f"--json {args.json_path!r}: {why}"
    report = getattr(args, "report", None)
    if report:
        if os.path.exists(report) and not os.path.isdir(report):
            return f"--report {report!r}: it exists and is not a directory"
        target = report if os.path.isdir(report) else os.path.dirname(os.path.abspath(report))
        if not os.path.isdir(target):
            return f"--report {report!r}: its parent directory {target!r} does not exist"
        if not os.access(target, os.W_OK):
            return f"--report {report!r}: {target!r} is not writable"
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return "--report needs matplotlib: pip install 'alice-ref[plot]'"
    return None


def run(args: argparse.Namespace) -> int:
    """Entry of ``alice-ref verify``: run the checks, print the table and a summary line.

    The table and the summary go to stdout, or to stderr when ``--json -`` puts the JSON on
    stdout; progress goes to stderr (one line per check when stderr is not a terminal) unless
    ``--no-progress``. Every argument is checked before any check runs.

    Args:
        args: the parsed options (seed, quick, only, json_path, report, no_progress), as
            :func:`add_arguments` defines them.

    Returns:
        The exit status: 0 iff there is at least one row and every row passes, 1 otherwise,
        and 2 for an unusable --json or --report path (before any work) or a failed write.

    Example:
        The R6 checks pass, and the summary line says so:

        >>> import argparse, contextlib, io
        >>> args = argparse.Namespace(seed=0, quick=True, only={"R6"}, json_path=None,
        ...                           report=None, no_progress=True)
        >>> out = io.StringIO()
        >>> with contextlib.redirect_stdout(out):
        ...     status = run(args)
        >>> status, " 0 fail " in out.getvalue().splitlines()[-1]
        (0, True)
    """
    from . import run_checks  # the registry lives in the package, which imports this module

    problem = check_arguments(args)
    if problem:
        print(f"alice-ref verify: error: {problem}", file=sys.stderr)
        return 2
    report = getattr(args, "report", None)
    progress, done = _progress_printer(sys.stderr, not getattr(args, "no_progress", False))
    samples = {} if report else None
    start = time.perf_counter()
    try:
        rows = run_checks(seed=args.seed, quick=args.quick, only=args.only, progress=progress,
                          samples=samples)
    finally:
        done()
    elapsed = time.perf_counter() - start
    n_fail = sum(r.verdict != "pass" for r in rows)
    to_stdout_json = args.json_path == "-"
    out = sys.stderr if to_stdout_json else sys.stdout
    summary = (f"{len(rows)} rows: {len(rows) - n_fail} pass, {n_fail} fail "
               f"(seed {args.seed}{', quick' if args.quick else ''}; {elapsed:.1f} s)")
    print(format_table(rows), file=out)
    print(f"\n{summary}", file=out)
    status = 0 if n_fail == 0 and rows else 1
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
    if report:
        from .report import write_report

        try:
            files = write_report(report, rows, samples, summary=summary, seed=args.seed,
                                 quick=args.quick)
        except OSError as e:
            print(f"alice-ref verify: cannot write --report {report!r}: {e}", file=sys.stderr)
            return 2
        print(f"wrote {len(files)} files to {report}", file=sys.stderr)
    return status


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
