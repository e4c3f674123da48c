"""A mutation check of the maths: apply each mutant to a temporary copy of the repository and
run the tests that should kill it; report killed / total.

Usage (minutes; not part of the default test run)::

    python benchmarks/mutation_check.py [--list] [--only NAME]

Each mutant is (name, file, original text, mutated text, tests). A mutant is killed when its
tests fail. The list holds the gaps of issue 19 (the power-law exponent's standard error, the
kernel's rank tolerance, the +-1 kernel weights, the 0/0 guards of h_opt, the L1 sign at 0 and
the unit-weight guards) and a few more in the same modules.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
G, E, S, B = ("alice_ref/maths/glass.py", "alice_ref/maths/estimators.py",
              "alice_ref/maths/step.py", "alice_ref/core/batch.py")
T1 = "tests/test_r1_glass.py"
T3 = "tests/test_r3_kernels.py"
T5 = "tests/test_r5_r6_steps.py"
TC = "tests/test_alice_core.py"
SE = "se = math.sqrt(float(resid @ resid) / (lt.size - 2) / sxx)"
MUTANTS = [
    ("se-no-sqrt", G, SE, "se = float(resid @ resid) / (lt.size - 2) / sxx", [T1]),
    ("se-n", G, SE, "se = math.sqrt(float(resid @ resid) / (lt.size) / sxx)", [T1]),
    ("se-n+2", G, SE, "se = math.sqrt(float(resid @ resid) / (lt.size + 2) / sxx)", [T1]),
    ("se-times-sxx", G, SE, "se = math.sqrt(float(resid @ resid) / (lt.size - 2) * sxx)", [T1]),
    ("slope-sign", G, "p = float(tc @ (ly - ly.mean())) / sxx",
     "p = -float(tc @ (ly - ly.mean())) / sxx", [T1]),
    ("cov-same-side", G, "same_side = np.outer(sign, sign) > 0",
     "same_side = np.outer(sign, sign) >= 0", [T1]),
    ("rank-absolute", E, "sv > 1e-12 * max(1.0, sv.max(initial=0.0))", "sv > 1e-12", [T3]),
    ("rank-loose", E, "sv > 1e-12 * max(1.0, sv.max(initial=0.0))",
     "sv > 1e-6 * max(1.0, sv.max(initial=0.0))", [T3]),
    ("weight-unit-skip", E, "if W[k, j] != 0.0)", "if W[k, j] != 1.0)", [T3]),
    ("dof-off-by-one", E, "dof = len(s) - rank", "dof = len(s) - rank + 1", [T3]),
    ("hopt-guard-ge", S, "pos = den > 0", "pos = den >= 0", [T5]),
    ("hopt-inf-ge", S, "xp.where(r > 0, xp.full_like(r, math.inf), r)",
     "xp.where(r >= 0, xp.full_like(r, math.inf), r)", [T5]),
    ("l1-sign-le", B, "xp.where(nu < 0, -one, one)", "xp.where(nu <= 0, -one, one)", [TC]),
    ("w1-guard-one", B, "if w1 != 0.0:", "if w1 != 1.0:", [TC]),
    ("w2-guard-one", B, "if w2 != 0.0:", "if w2 != 1.0:", [TC]),
]


def run_mutant(name, path, old, new, tests, keep_going=False):
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, "repo")
        shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(
            ".git", "site", "__pycache__", ".pytest_cache", ".hypothesis", "*.egg-info"))
        f = os.path.join(dst, path)
        text = open(f, encoding="utf-8").read()
        if text.count(old) != 1:
            return "stale"  # the original text moved: update the mutant
        open(f, "w", encoding="utf-8").write(text.replace(old, new))
        env = {**os.environ, "PYTHONPATH": dst + os.pathsep + os.path.join(dst, "adapters"),
               "NUMBA_DISABLE_JIT": "0"}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                               "no:cacheprovider", "-m", "not slow", *tests], cwd=dst, env=env,
                              capture_output=True, text=True)
        return "killed" if proc.returncode != 0 else "survived"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--only", default=None, help="comma list of mutant names")
    a = p.parse_args(argv)
    chosen = [m for m in MUTANTS if a.only is None or m[0] in a.only.split(",")]
    if a.list:
        for m in chosen:
            print(f"{m[0]:18s} {m[1]}: {m[2]!r} -> {m[3]!r}")
        return 0
    killed = 0
    for m in chosen:
        verdict = run_mutant(*m)
        killed += verdict == "killed"
        print(f"{m[0]:18s} {verdict}", flush=True)
    print(f"killed {killed} of {len(chosen)} mutants")
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
