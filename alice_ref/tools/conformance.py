"""The ``alice-ref conformance`` command: export the conformance cases, check a port's results.

- ``alice-ref conformance export DIR [--cases PAT ...]``: the cases as .npz + JSON (schema:
  alice_ref/conformance/README.md), for a port in any language;
- ``alice-ref conformance run DIR --impl IMPL --results RESULTS``: run a Python step function
  over DIR and write its results in the same schema (what a port in another language does
  with its own code);
- ``alice-ref conformance check DIR --results RESULTS``: compare a port's results with DIR;
  ``alice-ref conformance check --impl IMPL [--cases PAT ...]`` runs a Python step in-process.

IMPL is 'core', 'torch', 'jax' (alice_ref.conformance.steps) or ``module:function`` /
``path/to/file.py:function`` naming a ``make_step(config)``. Exit status 0 when every case
passes, 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

HELP = "export the conformance cases, or check an implementation of Alice against them"
DESCRIPTION = """\
The conformance kit of the Alice optimiser (docs/porting.md): the recorded official Alice 1.1
batches and alice_ref's own recorded vectors, as cases any implementation can be checked on.

  export DIR [--cases PAT ...]          write the cases as .npz + JSON (any language reads them)
  run DIR --impl IMPL --results RES     run a Python make_step over DIR, write its results
  check DIR --results RES               compare a port's results with DIR
  check --impl IMPL [--cases PAT ...]   check a Python make_step in-process

IMPL is 'core', 'torch', 'jax' or module:function / path/to/file.py:function naming a
make_step(config) -> step(state, probes, grads) -> state. Exit status 0 when every case
passes, 1 otherwise, 2 for a usage error."""


def load_impl(spec: str):
    """The ``make_step`` named by IMPL ('core', 'torch', 'jax', 'mod:func', 'file.py:func').

    Raises:
        ValueError: a spec without ':' that is not a built-in name, or a missing function.
    """
    from alice_ref.conformance import steps
    if spec == "core":
        return steps.core_step
    if spec == "torch":
        return steps.torch_step
    if spec == "jax":
        import jax
        jax.config.update("jax_enable_x64", True)  # the float64 cases
        return steps.jax_step
    target, sep, func = spec.rpartition(":")
    if not sep or not target or not func:
        raise ValueError(f"--impl must be core, torch, jax, module:function or "
                         f"file.py:function, got {spec!r}")
    if target.endswith(".py"):
        path = os.path.abspath(target)
        name = "_alice_port_" + os.path.splitext(os.path.basename(path))[0]
        mspec = importlib.util.spec_from_file_location(name, path)
        if mspec is None or not os.path.exists(path):
            raise ValueError(f"--impl: no file {target!r}")
        module = importlib.util.module_from_spec(mspec)
        sys.modules[name] = module
        mspec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    try:
        return getattr(module, func)
    except AttributeError:
        raise ValueError(f"--impl: {target} has no {func!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``export``, ``run`` and ``check`` actions of ``alice-ref conformance``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", title="actions")
    p = sub.add_parser("export", help="write the cases as .npz + JSON to DIR")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--cases", nargs="+", metavar="PAT",
                   help="case names or prefixes ending in '*' (default: all)")
    p = sub.add_parser("run", help="run a Python make_step over DIR, write RESULTS")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--impl", required=True, metavar="IMPL")
    p.add_argument("--results", required=True, metavar="RESULTS")
    p = sub.add_parser("check", help="compare RESULTS with DIR, or check --impl in-process")
    p.add_argument("dir", metavar="DIR", nargs="?")
    p.add_argument("--results", metavar="RESULTS")
    p.add_argument("--impl", metavar="IMPL")
    p.add_argument("--cases", nargs="+", metavar="PAT",
                   help="with --impl and no DIR: case names or prefixes ending in '*'")


def run(args: argparse.Namespace) -> int:
    """Entry of ``alice-ref conformance``; returns the exit status (0 pass, 1 fail, 2 usage).

    Example:
        Export two cases, run the core over them, check its results:

        >>> import argparse, contextlib, io, tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> cases, res = os.path.join(d, "cases"), os.path.join(d, "res")
        >>> ns = lambda **kw: argparse.Namespace(**{"cases": None, "impl": None,
        ...                                        "results": None, **kw})
        >>> with contextlib.redirect_stdout(io.StringIO()) as out:
        ...     codes = [run(ns(action="export", dir=cases,
        ...                     cases=["official-c2", "f64-rms-glass-adam*"])),
        ...              run(ns(action="run", dir=cases, impl="core", results=res)),
        ...              run(ns(action="check", dir=cases, results=res))]
        >>> codes, "PASS: 4 cases" in out.getvalue()
        ([0, 0, 0], True)
    """
    from alice_ref import conformance as kit

    err = lambda msg: (print(f"alice-ref conformance: {msg}", file=sys.stderr), 2)[1]  # noqa
    action = getattr(args, "action", None)
    try:
        if action == "export":
            names = kit.export(args.dir, args.cases)
            print(f"wrote {len(names)} cases to {args.dir} (cases.json + one .npz each)")
            return 0
        if action == "run":
            names = kit._files.run_to_results(load_impl(args.impl), args.dir, args.results)
            print(f"wrote results of {len(names)} cases to {args.results}")
            return 0
        if action == "check":
            if args.impl and not args.results:
                if args.dir:
                    report = kit.check(load_impl(args.impl), kit.load_exported(args.dir))
                else:
                    report = kit.check(load_impl(args.impl), args.cases)
            elif args.results and args.dir and not args.impl:
                report = kit.check_results(args.dir, args.results)
            else:
                return err("check needs DIR --results RESULTS, or --impl IMPL [DIR]")
            print(report.summary())
            return 0 if report.passed else 1
    except ValueError as e:
        return err(str(e))
    return err("choose an action: export, run or check (see --help)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``conformance`` subcommand (the hook :mod:`alice_ref.tools.cli` calls).

    Example:
        >>> import argparse
        >>> sub = argparse.ArgumentParser(prog="alice-ref").add_subparsers()
        >>> p = register(sub)
        >>> p.prog, p.get_default("func") is run
        ('alice-ref conformance', True)
    """
    p = subparsers.add_parser("conformance", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p
