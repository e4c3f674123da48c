"""Run pytorch-optimizer's own generic optimizer tests against alice_torch.Alice.

pytorch-optimizer's wheel ships no tests; its source distribution on PyPI does. Fetch and
unpack it outside this repository, e.g.::

    pip install pytorch-optimizer==4.1.0
    pip download --no-deps --no-binary :all: pytorch-optimizer==4.1.0 -d /work/peer/po
    mkdir -p /work/peer/po/src
    tar xzf /work/peer/po/pytorch_optimizer-4.1.0.tar.gz -C /work/peer/po/src

and pass the unpacked root (the folder holding ``tests/``) with ``--src`` or the environment
variable ``ALICE_PYTORCH_OPTIMIZER_SRC``; nothing of their code is in this repository. Without
it the runner says so and exits 0 (docs/torch.md, "PyTorch's generic optimizer tests").

Their ``tests/`` run unchanged with pytest and this module as a plugin (``-p``), which, before
their test modules are imported,

- registers Alice in pytorch_optimizer's registry (``OPTIMIZERS``, read by ``load_optimizer``
  and ``tests.optimizer_cases.VALID_OPTIMIZER_NAMES``) as ``alice_ref`` (``alice`` is already
  another optimizer there) and adds one training recipe (:data:`RECIPE`) to
  ``tests.recipes.OPTIMIZER_RECIPES``;
- keeps only the test cases parametrised with ``alice_ref`` (the others test other optimizers).

Without ``--as-is`` it also adapts what Alice needs, and declares skips (:data:`SKIPS`):

- ``Trainer.run`` (backward, then ``step()``) gets a closure that recomputes the trainer's loss
  and calls ``backward()``, as the closure-driven optimizers of the suite do;
- the import-time capability probe of ``tests.optimizer_cases`` (``step(lambda: 0.1)`` on a
  complex parameter and on a sparse gradient) is answered "unsupported" for Alice, which
  refuses both (RuntimeError); as-is, the probe's RuntimeError stops the collection.

Usage::

    python tests/peer/run_pytorch_optimizer_suite.py --src DIR [--as-is] [--list] [-k EXPR]

It prints ``N passed, N failed, N skipped`` last (and, with ``--list``, every test id and its
outcome). Exit status 0 whatever the counts; 2 if the suite could not be run.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import types
import xml.etree.ElementTree as ET

ENV = "ALICE_PYTORCH_OPTIMIZER_SRC"
ROOT = pathlib.Path(__file__).resolve().parents[2]
NAME = "alice_ref"
# (name, options, iterations) as their recipes. beta1 = 0.5: Alice leaves the parameters in
# place during its warm-up of 1/(1 - beta1) batches (10 for the default 0.9, the whole of a
# 10-iteration test_training; docs/spec/algorithm.md#one-batch, step 5).
RECIPE = (NAME, {"lr": 5e-1, "betas": (0.5, 0.999)}, 10)

_NO_BACKWARD = ("closure required: the test sets .grad, then passes a closure that calls no "
                "backward(); Alice zeroes the gradients before each of its evaluations and "
                "refuses an evaluation that produced none (RuntimeError)")
# Why a test cannot hold for Alice, by test function name; each is a property of Alice
# (docs/torch.md, "What Alice refuses").
SKIPS = {
    "test_missing_and_frozen_gradients": _NO_BACKWARD,
    "test_maximize": _NO_BACKWARD,
    "test_closure": _NO_BACKWARD + "; the test's parameter has no gradient at all",
    "test_sparse_not_supported": _NO_BACKWARD + " (the RuntimeError it raises is for the "
                                 "missing gradient, not the sparse one)",
    "test_complex_not_supported": (
        "complex parameters are refused at construction with RuntimeError (torch's error type "
        "for an unsupported parameter), not with pytorch_optimizer's NoComplexParameterError "
        "at step()"),
    "test_learning_rate": (
        "pytorch_optimizer's own exception class: Alice does not depend on pytorch_optimizer "
        "and raises ValueError for lr < 0, not NegativeLRError"),
}


# -- the pytest plugin (this module, loaded with -p) ----------------------------------------------

def _adapt(alice_cls):
    """Give Trainer.run a closure for Alice; answer the capability probe for Alice."""
    import torch
    from pytorch_optimizer.base.exception import NoComplexParameterError, NoSparseGradientError

    from tests import utils

    run = utils.Trainer.run

    def run_with_closure(self, *args, closure_fn=None, use_amp=False, **kwargs):
        def closure():  # the loss of the test's step (Trainer.run's), recomputed
            with torch.autocast(self.x_data.device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = self.compute_loss()
            loss.backward()
            return loss

        given = closure_fn
        if isinstance(self.optimizer, alice_cls):  # the test's closure, where it gives one
            closure_fn = lambda loss: (given(loss) if given else None) or closure  # noqa: E731
        return run(self, *args, closure_fn=closure_fn, use_amp=use_amp, **kwargs)

    utils.Trainer.run = run_with_closure

    build = utils.build_optimizer

    def probe_build(name, params, **options):
        if name != NAME:
            return build(name, params, **options)
        error = (NoComplexParameterError(NAME) if any(p.is_complex() for p in params) else
                 NoSparseGradientError(NAME))

        def step(closure=None):  # noqa: ARG001 (the probe's step(lambda: 0.1))
            raise error
        return types.SimpleNamespace(step=step)  # the probe only calls step()

    utils.build_optimizer = probe_build  # bound by tests.optimizer_cases at its import
    try:
        import tests.optimizer_cases  # noqa: F401 (runs the probe)
    finally:
        utils.build_optimizer = build
    import tests.optimizer_cases as cases
    cases.build_optimizer = build


def pytest_configure(config):  # noqa: ARG001 (pytest hook signature)
    """Register Alice (and, unless as-is, adapt) before the test modules are imported."""
    import torch
    torch.set_num_threads(1)
    from alice_torch import Alice
    from pytorch_optimizer.optimizer import OPTIMIZERS
    OPTIMIZERS[NAME] = Alice
    from tests import recipes
    recipes.OPTIMIZER_RECIPES.append(RECIPE)
    if os.environ.get("ALICE_PEER_AS_IS") != "1":
        _adapt(Alice)


def _is_alice(value) -> bool:
    return value == NAME or (isinstance(value, tuple) and bool(value) and value[0] == NAME)


def pytest_collection_modifyitems(config, items):
    """Keep Alice's cases; mark the declared skips (unless as-is)."""
    import pytest
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        alice = spec is not None and any(_is_alice(v) for v in spec.params.values())
        (keep if alice else drop).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)
    if os.environ.get("ALICE_PEER_AS_IS") != "1":
        for item in keep:
            why = SKIPS.get(item.originalname)
            if why:
                item.add_marker(pytest.mark.skip(reason=why))


# -- the runner ---------------------------------------------------------------------------------

def outcomes(xml_path: pathlib.Path) -> list[tuple[str, str]]:
    """(test id, 'passed' | 'failed' | 'skipped') per test case of a JUnit XML report."""
    out = []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        tags = {c.tag for c in case}
        kind = ("failed" if tags & {"failure", "error"} else
                "skipped" if "skipped" in tags else "passed")
        out.append((f"{case.get('classname')}::{case.get('name')}", kind))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=os.environ.get(ENV),
                    help=f"unpacked pytorch-optimizer sdist, holding tests/ (default: ${ENV})")
    ap.add_argument("--as-is", action="store_true",
                    help="register Alice only: no closure adaptation, no probe answer, no skips")
    ap.add_argument("--list", action="store_true", help="print every test id and outcome")
    ap.add_argument("-k", default=None, help="pytest -k expression")
    args = ap.parse_args(argv)
    src = pathlib.Path(args.src).resolve() if args.src else None
    if src is None or not (src / "tests" / "optimizer_cases.py").is_file():
        print(f"pytorch-optimizer's source (with tests/optimizer_cases.py) not given or not "
              f"found ({args.src!r}): pass --src or set {ENV}; the wheel does not ship the "
              f"tests, so nothing was run.")
        return 0
    # Their package `tests` must win over this repository's: their root first, ours not at all.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(src), str(ROOT / "adapters"), str(pathlib.Path(__file__).parent)]),
        OMP_NUM_THREADS="1", ALICE_PEER_AS_IS="1" if args.as_is else "0")
    with tempfile.TemporaryDirectory() as tmp:
        xml = pathlib.Path(tmp) / "report.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-p", pathlib.Path(__file__).stem, f"--junitxml={xml}", "-rN",
               "--rootdir", str(src), "-c", os.devnull, str(src / "tests")]
        if args.k:
            cmd += ["-k", args.k]
        proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
        if not xml.exists():
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
            print("the suite could not be run")
            return 2
        res = outcomes(xml)
    if args.list:
        for name, kind in res:
            print(f"{kind:8s} {name}")
    n = {k: sum(1 for _, r in res if r == k) for k in ("passed", "failed", "skipped")}
    print(f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
