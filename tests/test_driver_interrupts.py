"""Ctrl-C at any point of a step of alice_ref.Alice leaves it whole.

docs/spec/algorithm.md#beyond-the-official-code: no exception may leave the state half-changed.

A signal handler that raises KeyboardInterrupt is installed, and a profiler sends the signal at
the k-th call (Python or C) made during one step, for every k: the optimiser must afterwards be
exactly as before the step (state, counters, generator) or exactly as after a completed step,
never a mix; and the next step must run.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
from helpers import every_interrupt

import alice_ref as ar
from alice_ref.core import FIELDS
from alice_ref.engines import cpu

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX only")

CFG = dict(lr=0.05, betas=(0.5, 0.999), quick_steps=1)


def _grad(p):
    x = p[0]
    return float(x @ x), [2.0 * x + np.sign(x)]


def _snapshot(opt):
    d = opt.state_dict()
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def _same(a, b) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, np.ndarray):
            if not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def _make(engine, warm):
    opt = ar.Alice([np.linspace(-1.0, 1.0, 5).astype(np.float32), np.ones(3, np.float32)],
                   seed=1, engine=engine, **CFG)
    for _ in range(warm):
        opt.step(lambda p: (0.0, [2.0 * p[0], p[1]]))
    return opt


def _step(opt):
    opt.step(lambda p: (0.0, [2.0 * p[0], p[1]]))


def _goes_on(opt):
    _step(opt)
    assert all(np.all(np.isfinite(getattr(opt.state, f)[0])) for f in FIELDS)


@pytest.mark.parametrize("engine", ["core", pytest.param("cpu", marks=pytest.mark.skipif(
    not cpu.AVAILABLE, reason="numba not installed"))])
@pytest.mark.parametrize("warm", [2, 3], ids=["quick-step", "sample-step"])
def test_an_interrupt_at_every_call_leaves_the_step_whole(engine, warm, interrupt_handler):
    _step(_make(engine, warm))  # compile and cache whatever this step needs first
    every_interrupt(lambda: _make(engine, warm), _step, _snapshot, _same, _goes_on)
