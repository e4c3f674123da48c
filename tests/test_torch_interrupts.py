"""Ctrl-C at any point of alice_torch.Alice.step (fused and generic paths, sample and quick
steps), load_state_dict and import_mu leaves the optimiser whole (issue 13, item 1 and 2).

docs/spec/algorithm.md#beyond-the-official-code: no exception may leave the state half-changed.
The harness of tests/test_driver_interrupts.py: a signal handler that raises KeyboardInterrupt
is installed, and a profiler sends the signal at the k-th call (Python or C) made during the
call under test, for every k: afterwards parameters, every state tensor, the counters, the
parameter groups and every random generator must be exactly as before the call or exactly as
after a completed call, never a mix; and the next step must run.
"""

from __future__ import annotations

import signal

import pytest
from helpers import every_interrupt

torch = pytest.importorskip("torch")

from alice_torch import Alice  # noqa: E402

from alice_ref.engines import cpu  # noqa: E402

pytestmark = [pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX only"),
              pytest.mark.usefixtures("torch_one_thread")]

FIELDS = ("mu", "nu", "G", "V", "H", "R")
HP = dict(lr=0.05, betas=(0.5, 0.999), quick_steps=1)
PATHS = [pytest.param(False, id="generic"),
         pytest.param(None, id="fused", marks=pytest.mark.skipif(
             not cpu.AVAILABLE, reason="numba not installed"))]


_MADE: dict = {}


def _make(fused, warm, seed=1):
    """A fresh optimiser after ``warm`` steps (the first time by stepping, then from a state
    dict of that one: much faster, and the same state bit for bit)."""
    key = (fused, warm, seed)
    if key not in _MADE:
        torch.manual_seed(0)
        opt = _new(fused, seed)
        for _ in range(warm):
            _step(opt)
        _MADE[key] = ([p.detach().clone() for p in opt.param_groups[0]["params"]],
                      opt.state_dict(), torch.get_rng_state())
    params, sd, rng = _MADE[key]
    opt = _new(fused, seed, params)
    if warm:
        opt.load_state_dict(sd)
    torch.set_rng_state(rng)
    return opt


def _new(fused, seed, values=None):
    values = values or [torch.linspace(-1.0, 1.0, 5), torch.ones(3)]
    ps = [torch.nn.Parameter(v.clone()) for v in values]
    return Alice(ps, generator=torch.Generator().manual_seed(seed), fused=fused, **HP)


def _step(opt):
    a, b = opt.param_groups[0]["params"]

    def closure():
        opt.zero_grad()
        noise = torch.rand(3)  # uses torch's generator: the replay must put it back
        loss = (a ** 2).sum() + (b * noise).sum()
        loss.backward()
        return loss
    return opt.step(closure)


def _snapshot(opt):
    out = {"params": [p.detach().clone() for g in opt.param_groups for p in g["params"]],
           "t": opt.t, "skipped": opt.skipped, "rng": torch.get_rng_state(),
           "gen": opt.generator.get_state(),
           "groups": [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
           "state": {}}
    for k, p in enumerate(p for g in opt.param_groups for p in g["params"]):
        st = opt.state.get(p)
        out["state"][k] = None if st is None else {f: st[f].clone() for f in st}
    return out


def _same(a, b) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, dict):
            if not _same(x, y):
                return False
        elif isinstance(x, list):
            if len(x) != len(y) or not all(
                    _same(u, v) if isinstance(u, dict) else
                    (torch.equal(u, v) if isinstance(u, torch.Tensor) else u == v)
                    for u, v in zip(x, y)):
                return False
        elif isinstance(x, torch.Tensor):
            if not (isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)):
                return False
        elif x != y:
            return False
    return True


def _every_interrupt(make, call, check_next=None):
    return every_interrupt(make, call, _snapshot, _same, check_next)


def _goes_on(opt):
    _step(opt)
    for p in (p for g in opt.param_groups for p in g["params"]):
        assert all(bool(torch.isfinite(opt.state[p][f]).all()) for f in FIELDS)


_NO_NUMBA = pytest.mark.skipif(not cpu.AVAILABLE, reason="numba not installed")


@pytest.mark.parametrize("fused, warm", [
    pytest.param(False, 2, id="generic-quick-step"), pytest.param(False, 3, id="generic-sample"),
    pytest.param(None, 2, id="fused-quick-step", marks=_NO_NUMBA),
    pytest.param(None, 3, id="fused-sample-step", marks=_NO_NUMBA),
    pytest.param(None, 0, id="fused-first-step", marks=_NO_NUMBA)])
def test_an_interrupt_at_every_call_of_a_step_leaves_it_whole(fused, warm, interrupt_handler):
    """warm 2: batch 3 is a quick step with update; 3: batch 4 a sample step with update; 0:
    the first batch (whose state is made, and installed only by the commit)."""
    _step(_make(fused, warm + 1))  # compile and cache whatever the steps need first
    _every_interrupt(lambda: _make(fused, warm), _step, _goes_on)


@pytest.mark.parametrize("fused", PATHS)
def test_an_interrupt_at_every_call_of_load_state_dict_leaves_it_whole(fused, interrupt_handler):
    src = _make(fused, 5, seed=7)
    src.param_groups[0]["lr"] = 0.04
    sd = src.state_dict()
    _every_interrupt(lambda: _make(fused, 3), lambda opt: opt.load_state_dict(sd), _goes_on)


def test_an_interrupt_at_every_call_of_import_mu_leaves_it_whole(interrupt_handler):
    mu = [torch.full((5,), 0.25), torch.full((3,), -0.5)]
    _every_interrupt(lambda: _make(None, 3), lambda opt: opt.import_mu(mu), _goes_on)
