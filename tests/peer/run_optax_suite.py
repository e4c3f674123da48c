"""Run optax's own generic optimizer tests against alice_jax (issue 14, "Native in each
ecosystem").

The test files are read at run time from the *installed* optax (its wheel ships them); nothing of
their code is copied into this repository. The runner writes a registered copy of each to a
temporary folder, with one change per file: the list of optimizers under test is replaced by
Alice's entries (``ENTRIES`` below), and runs them with pytest. The one adaptation of the tests
themselves is the one Alice needs, ``value_fn``: the plugin ``_optax_peer_plugin.py`` registers
``optax._src.alias.alice`` (the real ``alice_jax.alice``, same signature) whose ``update`` gets
``value_fn`` from the function the test last differentiated with ``jax.grad`` /
``jax.value_and_grad`` (its objective), or, where a test hands fixed gradients without any
objective, the linear loss ``vdot(grads, params)`` whose gradient is exactly those gradients.

Suites (optax's files, relative to the installed package):

- ``_src/alias_test.py``: ``AliasTest``, the common tests over ``_OPTIMIZERS_UNDER_TEST``;
- ``contrib/_common_test.py``: ``ContribTest`` over ``_MAIN_OPTIMIZERS_UNDER_TEST`` and the
  wrappers' ``_BASE_OPTIMIZERS`` (mechanize(alice));
- ``_src/sharding_test.py``: ``ShardingTest`` over ``OPTIMIZERS`` (8 host devices).

The other files the issue names (``schedules/_inject_test.py``, ``transforms/*_test.py``,
``tree_utils/*_test.py``) have no list of optimizers to register with: they test optax's own
transformations, so they are run only with ``--all`` (unchanged, as an environment check).

Usage::

    python tests/peer/run_optax_suite.py            # the three suites (about 2 minutes)
    python tests/peer/run_optax_suite.py --quick    # without the 10000/30000-step runs
    python tests/peer/run_optax_suite.py --list     # also print every test id and outcome

It prints one line per suite and, last, ``N passed, N failed`` (skips counted apart). Exit
status 0 whatever the counts (the count is what CI tracks); 2 if a suite could not be run.
Needs absl-py and chex (and scikit-learn, scipy for alias_test's imports).
"""

from __future__ import annotations

import argparse
import ast
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = pathlib.Path(__file__).resolve().parent

# Alice's entries: the kwargs a user would pass (sigma = lr = 1e-2 suits these unit-scale
# problems); the second row exercises every-batch sampling (quick_steps=0).
ENTRIES = [
    {"opt_name": "alice", "opt_kwargs": {"learning_rate": 1e-2}},
    {"opt_name": "alice", "opt_kwargs": {"learning_rate": 1e-2, "quick_steps": 0}},
]

SUITES = {
    # name: (file inside optax, {module-level name: replacement expression}, pytest -k)
    "alias": ("_src/alias_test.py", {"_OPTIMIZERS_UNDER_TEST": repr(tuple(ENTRIES))},
              "AliasTest and not test_explicit_dtype"),  # that one is sgd/adam-only
    "contrib": ("contrib/_common_test.py",
                {"_MAIN_OPTIMIZERS_UNDER_TEST": repr(list(ENTRIES)),
                 "_BASE_OPTIMIZERS": repr(list(ENTRIES[:1]))},
                "ContribTest"),
    "sharding": ("_src/sharding_test.py",
                 {"OPTIMIZERS": "{'alice': optax._src.alias.alice(1e-2)}"}, "ShardingTest"),
}
EXTRA = ["schedules/_inject_test.py", "transforms", "tree_utils"]  # --all only, unchanged


def registered_source(path: pathlib.Path, replace: dict) -> str:
    """optax's test file with each named module-level assignment's value replaced."""
    tree = ast.parse(path.read_text())
    seen = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name) and node.targets[0].id in replace:
            name = node.targets[0].id
            if name in seen:  # only the first definition (later ones extend it)
                continue
            node.value = ast.parse(replace[name], mode="eval").body
            seen.add(name)
    # later extensions of a replaced list (``X += [...]``: other optimizers' entries) are dropped
    tree.body = [n for n in tree.body if not (
        isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name)
        and n.target.id in replace)]
    missing = set(replace) - seen
    if missing:
        raise RuntimeError(f"{path}: no assignment to {sorted(missing)} (optax changed?)")
    return ast.unparse(ast.fix_missing_locations(tree))


def run_suite(name, files, workdir, k, quick, env):
    junit = workdir / f"{name}.xml"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
            "_optax_peer_plugin", "--rootdir", str(workdir), "-o", "addopts=",
            f"--junitxml={junit}", *map(str, files)]
    if k:
        args += ["-k", k]
    env = dict(env, OPTAX_PEER_QUICK="1" if quick else "")
    proc = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True,
                          check=False)
    if not junit.exists():
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        return None
    results = []
    for case in ET.parse(junit).iter("testcase"):
        kinds = {c.tag for c in case}
        outcome = ("failed" if kinds & {"failure", "error"} else
                   "skipped" if "skipped" in kinds else "passed")
        results.append((f"{case.get('classname')}::{case.get('name')}", outcome))
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the long convergence runs")
    ap.add_argument("--list", action="store_true", help="print every test and its outcome")
    ap.add_argument("--all", action="store_true", help="also run optax's other files unchanged")
    ap.add_argument("--suite", action="append", choices=sorted(SUITES), help="only these")
    a = ap.parse_args(argv)
    import optax

    root = pathlib.Path(optax.__file__).resolve().parent
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="optax_peer_"))
    shutil.copy(HERE / "_optax_peer_plugin.py", workdir)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(workdir), os.environ.get("PYTHONPATH", "")]), JAX_PLATFORMS="cpu")
    total = {"passed": 0, "failed": 0, "skipped": 0}
    status = 0
    todo = [(n, SUITES[n]) for n in (a.suite or SUITES)]
    if a.all:
        todo += [(e, (e, None, None)) for e in EXTRA]
    for name, (rel, replace, k) in todo:
        src = root / rel
        if replace is None:
            files = [src] if src.is_file() else sorted(src.glob("*_test.py"))
            files = [shutil.copy(f, workdir / f"peer_{f.name}") for f in files]
        else:
            target = workdir / f"peer_{name}_{src.name}"
            target.write_text(registered_source(src, replace))
            files = [target]
        env_s = dict(env)
        if name == "sharding":  # before jax is imported, in the test process
            env_s["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
        results = run_suite(name, files, workdir, k, a.quick, env_s)
        if results is None:
            print(f"{name}: could not run")
            status = 2
            continue
        counts = {o: sum(r[1] == o for r in results) for o in total}
        for o in total:
            total[o] += counts[o]
        print(f"{name} ({rel}): {counts['passed']} passed, {counts['failed']} failed, "
              f"{counts['skipped']} skipped")
        if a.list:
            for test, outcome in results:
                print(f"    {outcome:7s} {test}")
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return status


if __name__ == "__main__":
    sys.exit(main())
