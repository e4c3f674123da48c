"""Wall and CPU time of ``alice-ref verify`` (default and --quick), as a user runs it.

Each run is a fresh ``python -m alice_ref verify`` process (imports included); CPU time is the
child's user + system time. Usage::

    python benchmarks/verify_speed.py [--repeat 3] [--seed 0]

Prints one line per mode: the median wall and CPU seconds over the repeats, and the verdict
line of the last run. Wall > CPU means the machine was busy (other processes on the cores).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time


def one(args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "alice_ref", "verify", "--no-progress", *args],
                          capture_output=True, text=True, env={**os.environ,
                                                                "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode, proc.stdout.strip().splitlines()[-1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for label, extra in (("default", []), ("--quick", ["--quick"])):
        runs = [one(["--seed", str(a.seed), *extra]) for _ in range(a.repeat)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"verify {label:8s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  (median of {a.repeat}; "
              f"exit {runs[-1][2]}: {runs[-1][3]})")


if __name__ == "__main__":
    main()
