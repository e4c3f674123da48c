"""The ``alice-ref`` command line: a registry of subcommands over argparse.

Each subcommand lives in its own module, named in :data:`SUBCOMMANDS`, that provides
``register(subparsers) -> parser``: it adds its parser to an argparse subparsers object under the
subcommand's name and stores its handler as ``func`` (``parser.set_defaults(func=run)``, where
``run(args) -> int`` returns the exit status). :mod:`alice_ref.tools.verify` is the model.

Modules are imported when the parser is built, so a subcommand that needs heavy or optional
dependencies (torch, matplotlib, tqdm) must import them inside its handler and fail there with a
clear message: ``alice-ref --help`` and ``alice-ref verify`` work on the base install (NumPy +
array-api-compat). Adding ``probe`` or ``train`` is one line in :data:`SUBCOMMANDS`.

``python -m alice_ref ...`` is the same command (alice_ref/__main__.py).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from alice_ref import __version__

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

# subcommand name -> module providing register(subparsers). Order = order in --help.
SUBCOMMANDS: dict[str, str] = {
    "verify": "alice_ref.tools.verify",
    "probe": "alice_ref.tools.probe",
    "train": "alice_ref.tools.train",
    "experiment": "alice_ref.tools.experiment",
    "prune": "alice_ref.tools.saliency_prune",
    "quantize": "alice_ref.tools.saliency_quantize",
    "conformance": "alice_ref.tools.conformance",
}


def build_parser() -> argparse.ArgumentParser:
    """Build the ``alice-ref`` parser with one subparser per entry of :data:`SUBCOMMANDS`.

    Each module named in SUBCOMMANDS is imported and its ``register(subparsers)`` called; the
    parser also has ``--version``.

    Returns:
        The argparse.ArgumentParser (prog 'alice-ref'); a parsed subcommand's handler is in
        ``args.func``.

    Raises:
        ImportError: a registered module cannot be imported.
        RuntimeError: a module's ``register`` did not add its subcommand.

    Example:
        The ``verify`` subcommand is registered, with its handler:

        >>> from alice_ref.tools import verify
        >>> args = build_parser().parse_args(["verify", "--only", "R6", "--quick"])
        >>> args.command, args.func is verify.run, args.only, args.quick
        ('verify', True, {'R6'}, True)
    """
    parser = argparse.ArgumentParser(
        prog="alice-ref",
        description="Reference implementation of 'Curvature in the Looking-Glass' "
                    "(arXiv 2411.16914): gradient-glass estimators, optimal steps and the Alice "
                    "optimiser.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        module.register(sub)
        if name not in sub.choices:  # pragma: no cover - a misregistered module
            raise RuntimeError(f"{module_name}.register did not add the subcommand {name!r}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``alice-ref`` with ``argv``: parse it and call the subcommand's handler.

    No subcommand prints the help to stderr and returns 2 (a usage error, like argparse's); a
    closed output pipe (``alice-ref verify | head``) ends quietly with status 1.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: the handler's, 2 without a subcommand.

    Raises:
        SystemExit: bad options (status 2, from argparse), ``--help`` or ``--version``
            (status 0).

    Example:
        No subcommand is a usage error; ``verify`` returns 0 when its rows pass:

        >>> import contextlib, io
        >>> with contextlib.redirect_stderr(io.StringIO()):
        ...     no_command = main([])
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     verified = main(["verify", "--only", "R6", "--quick"])
        >>> no_command, verified
        (2, 0)
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly (Python docs' recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
