"""Run PyTorch's own generic optimizer tests (``TestOptimRenewed``) against alice_torch.Alice
(issue 14, "Native in each ecosystem").

PyTorch's wheel ships the test database (``torch/testing/_internal/common_optimizers.py``:
``OptimizerInfo``, ``optim_db``) but not the tests themselves (``test/test_optim.py`` of the
pytorch/pytorch repository). This runner therefore takes the path of a copy of that file (from
the PyTorch release matching the installed torch) from ``--file`` or the environment variable
``ALICE_TORCH_TEST_OPTIM``; nothing of its code is in this repository. Without the file it says
so and exits 0: CI cannot fetch it, so the count is tracked wherever the file is available
(docs/torch.md, "PyTorch's generic optimizer tests").

The file is run unchanged with pytest and this module as a plugin (``-p``), which, before the
file is collected,

- replaces the entries of ``optim_db`` by one ``OptimizerInfo`` for :class:`alice_torch.Alice`
  (:data:`ALICE_INFO`), so every ``@optims(optim_db)`` test runs on Alice only;
- stands in for the three sibling modules the file imports (``optim.test_lrscheduler``,
  ``optim.test_optim``, ``optim.test_swa_utils``: other classes, not run here).

``ALICE_INFO`` declares ``step_requires_closure=True`` (like LBFGS) and skips, each with its
reason, the tests that contradict a property of Alice (:data:`SKIPS`); ``--no-skips`` runs those
too.

Usage::

    python tests/peer/run_torch_suite.py --file /path/to/test_optim.py [--list] [--no-skips]

It prints ``N passed, N failed, N skipped`` last (and, with ``--list``, every test id and its
outcome). Exit status 0 whatever the counts (the count is what is tracked); 2 if the suite
could not be run.
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

ENV = "ALICE_TORCH_TEST_OPTIM"
ROOT = pathlib.Path(__file__).resolve().parents[2]

# Why a TestOptimRenewed test cannot hold for Alice, by test name. Each reason is a property of
# the algorithm (docs/spec/algorithm.md#one-batch, step 3) documented in docs/torch.md.
_CLOSURE = ("closure required: Alice evaluates the gradient itself at 1 or 3 points per step "
            "(docs/torch.md, 'The step: two closure forms'); this test calls step() without one")
_NO_BACKWARD = ("closure required: the test's closure calls no backward and relies on .grad set "
                "before step(); Alice zeroes the gradients before each of its evaluations and "
                "refuses an evaluation that produced none")
_PROBES = ("stochastic probes: two optimizers draw their Rademacher probes one after the other "
           "from torch's default generator, so their evaluation points differ unless each has "
           "its own identically seeded generator, which a shared kwargs dict cannot give")
SKIPS = {
    "test_param_groups_weight_decay": _CLOSURE,
    "test_param_groups_lr": _CLOSURE,
    "test_foreach_matches_forloop": _CLOSURE,
    "test_fused_matches_forloop": _CLOSURE,
    "test_fused_error_on_params_on_meta": _CLOSURE,
    "test_step_is_noop_for_zero_grads": _NO_BACKWARD,
    "test_load_nontensor_step": _NO_BACKWARD,
    "test_deepcopy_copies_all_public_attrs": _NO_BACKWARD,  # (tests/test_torch_ecosystem.py)
    "test_non_empty_state": _NO_BACKWARD,
    "test_state_dict_deterministic": _PROBES,
    "test_tensor_lr": _PROBES,
    "test_complex": "complex parameters are refused (RuntimeError, docs/torch.md); " + _PROBES,
    "test_complex_2d": "complex parameters are refused (RuntimeError, docs/torch.md); " + _PROBES,
    "test_second_order_optims_return_consistent_types": (
        "LBFGS-specific: the test sets LBFGS's tolerance_grad, which Alice does not have"),
}


def alice_inputs(device=None, dtype=None):
    """Alice's configurations (no foreach/fused/differentiable: the tests add those)."""
    import torch
    from torch.testing._internal.common_optimizers import OptimizerInput
    return [
        OptimizerInput(params=None, kwargs={}, desc="default"),
        OptimizerInput(params=None, kwargs={"lr": 0.01}, desc="non-default lr"),
        OptimizerInput(params=None, kwargs={"lr": torch.tensor(0.001)}, desc="Tensor lr"),
        OptimizerInput(params=None, kwargs={"weight_decay": 0.1}, desc="weight_decay (w2)"),
        OptimizerInput(params=None, kwargs={"maximize": True}, desc="maximize"),
        OptimizerInput(params=None, kwargs={"betas": (0.5, 0.999), "quick_steps": 0},
                       desc="sample step every batch"),
    ]


def alice_error_inputs(device, dtype):
    """torch's errors for every optimizer, plus Alice's own range checks."""
    import torch
    from torch.testing._internal.common_optimizers import (
        ErrorOptimizerInput,
        OptimizerInput,
        get_error_inputs_for_all_optims,
    )
    # torch only warns about a parameter listed twice in a group; Alice refuses it (it would be
    # updated twice per batch), so that entry expects Alice's ValueError instead.
    out = [e for e in get_error_inputs_for_all_optims(device, dtype)
           if e.error_type is not UserWarning]
    p = torch.nn.Parameter(torch.randn(2, device=device, dtype=dtype))
    out += [
        ErrorOptimizerInput(OptimizerInput(params=[p, p], kwargs={},
                                           desc="a param group cannot have duplicate parameters"),
                            error_type=ValueError, error_regex="may appear once"),
        ErrorOptimizerInput(OptimizerInput(params=[p], kwargs={"lr": -1.0}, desc="lr < 0"),
                            error_type=ValueError, error_regex="lr"),
        ErrorOptimizerInput(OptimizerInput(params=[p], kwargs={"betas": (1.0, 0.999)},
                                           desc="beta1 = 1"),
                            error_type=ValueError, error_regex="beta"),
        ErrorOptimizerInput(OptimizerInput(params=[p], kwargs={"differentiable": True},
                                           desc="differentiable"),
                            error_type=ValueError, error_regex="differentiable"),
    ]
    return out


def alice_info(skips: bool = True):
    """The OptimizerInfo of alice_torch.Alice."""
    import unittest

    from alice_torch import Alice
    from torch.testing._internal.common_methods_invocations import DecorateInfo
    from torch.testing._internal.common_optimizers import OptimizerInfo
    return OptimizerInfo(
        Alice,
        optim_inputs_func=alice_inputs,
        optim_error_inputs_func=alice_error_inputs,
        supported_impls=("foreach", "fused"),
        supports_fused_on=("cpu",),
        step_requires_closure=True,
        skips=tuple(DecorateInfo(unittest.skip(why), "TestOptimRenewed", name)
                    for name, why in SKIPS.items()) if skips else (),
    )


# -- the pytest plugin (this module, loaded with -p) ----------------------------------------------

def pytest_configure(config):  # noqa: ARG001 (pytest hook signature)
    """Register Alice in optim_db and stand in for the file's sibling modules."""
    import torch
    torch.set_num_threads(1)
    from torch.testing._internal import common_optimizers
    common_optimizers.optim_db[:] = [alice_info(os.environ.get("ALICE_PEER_NO_SKIPS") != "1")]
    pkg = sys.modules.setdefault("optim", types.ModuleType("optim"))
    pkg.__path__ = []
    for mod, name in (("test_lrscheduler", "TestLRScheduler"),
                      ("test_optim", "TestDifferentiableOptimizer"),
                      ("test_swa_utils", "TestSWAUtils")):
        m = types.ModuleType(f"optim.{mod}")
        setattr(m, name, None)  # not a class: pytest collects nothing from it
        sys.modules[f"optim.{mod}"] = m


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
    ap.add_argument("--file", default=os.environ.get(ENV),
                    help=f"PyTorch's test/test_optim.py (default: ${ENV})")
    ap.add_argument("--list", action="store_true", help="print every test id and outcome")
    ap.add_argument("--no-skips", action="store_true",
                    help="run the tests SKIPS would skip, too")
    ap.add_argument("-k", default=None, help="pytest -k expression")
    args = ap.parse_args(argv)
    if not args.file or not pathlib.Path(args.file).is_file():
        print(f"PyTorch's test/test_optim.py not given or not found ({args.file!r}): pass "
              f"--file or set {ENV}; the wheel does not ship it, so nothing was run.")
        return 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), str(ROOT / "adapters"), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1", ALICE_PEER_NO_SKIPS="1" if args.no_skips else "0")
    with tempfile.TemporaryDirectory() as tmp:
        xml = pathlib.Path(tmp) / "report.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-p", "tests.peer.run_torch_suite", f"--junitxml={xml}", "-rN",
               "--rootdir", tmp, "-c", os.devnull, str(pathlib.Path(args.file).resolve())]
        if args.k:
            cmd += ["-k", args.k]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
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
