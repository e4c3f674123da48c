"""alice_torch.Alice as a native torch.optim citizen (issue 14): copies, hooks, schedulers
(lr = 0, cyclic momentum), the standard constructor flags, what Alice refuses and how it says
so, and the peer-suite runner (tests/peer/run_torch_suite.py).

Truth comes from equivalences, not recorded numbers: maximize is Alice on -L, weight_decay is
w2, a copy steps as the original, a group at lr = 0 is as if it were absent from the batch.
"""

from __future__ import annotations

import copy
import pathlib
import pickle
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
from alice_torch import Alice  # noqa: E402

torch.set_num_threads(1)
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(3, 4, generator=g, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64))
    x = torch.randn(4, generator=g, dtype=torch.float64)
    return w, b, x


def _closure(opt, w, b, x, sign=1.0):
    def closure():
        opt.zero_grad()
        loss = sign * (w.mv(x) + b).pow(2).sum()
        loss.backward()
        return loss
    return closure


def _seeded(params, seed=1, **kw):
    return Alice(params, generator=torch.Generator().manual_seed(seed), **kw)


# -- copies -------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_steps_as_the_original(how):
    """docs/spec/algorithm.md#state: t, the averages and the probe generator all travel."""
    w, b, x = _problem()
    opt = _seeded([w, b], lr=0.05, betas=(0.5, 0.999))
    for _ in range(3):
        opt.step(_closure(opt, w, b, x))
    blob = {"opt": opt, "w": w, "b": b}
    twin = copy.deepcopy(blob) if how == "deepcopy" else pickle.loads(pickle.dumps(blob))
    o2, w2, b2 = twin["opt"], twin["w"], twin["b"]
    assert (o2.t, o2.betas, o2.quick_steps) == (opt.t, opt.betas, opt.quick_steps)
    assert set(k for k in vars(o2) if not k.startswith("_")) == \
        set(k for k in vars(opt) if not k.startswith("_"))
    for _ in range(4):
        opt.step(_closure(opt, w, b, x))
        o2.step(_closure(o2, w2, b2, x))
    assert torch.equal(w, w2) and torch.equal(b, b2) and o2.t == opt.t == 7


# -- hooks --------------------------------------------------------------------------------------

def test_state_dict_post_hook_sees_and_changes_alice_entry():
    w, b, x = _problem()
    opt = Alice([w, b])
    seen = {}

    def post(o, sd):
        seen["alice"] = dict(sd["alice"])
        sd["alice"]["t"] = 5
        return sd

    opt.register_state_dict_pre_hook(lambda o: seen.setdefault("pre", o.t))
    opt.register_state_dict_post_hook(post)
    sd = opt.state_dict()
    assert seen["pre"] == 0 and seen["alice"]["t"] == 0 and sd["alice"]["t"] == 5


def test_load_state_dict_hooks_see_and_change_the_real_thing():
    w, b, x = _problem()
    opt = Alice([w, b], betas=(0.5, 0.999))
    for _ in range(2):
        opt.step(_closure(opt, w, b, x))
    sd = opt.state_dict()
    new = Alice([w, b], betas=(0.5, 0.999))
    seen = {}

    def pre(o, state_dict):
        state_dict = copy.deepcopy(state_dict)
        state_dict["alice"]["t"] = 7  # an edit of Alice's own entry is honoured
        state_dict["param_groups"][0]["lr"] = 0.002
        return state_dict

    def post(o):
        seen.update(t=o.t, lr=o.param_groups[0]["lr"], has_state=all("mu" in o.state[p]
                                                                       for p in (w, b)))

    new.register_load_state_dict_pre_hook(pre)
    new.register_load_state_dict_post_hook(post)
    new.load_state_dict(sd)
    assert seen == {"t": 7, "lr": 0.002, "has_state": True}
    assert new.t == 7 and sd["alice"]["t"] == 2  # the caller's dict is not edited


# -- schedulers ---------------------------------------------------------------------------------

def test_lr_zero_step_changes_nothing_but_counts():
    """docs/torch.md#learning-rate-zero: sigma = 0, no probe, no move; the batch is counted."""
    w, b, x = _problem()
    opt = Alice([w, b], lr=0.05, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0,
                                              total_iters=4)
    for _ in range(4):
        opt.step(_closure(opt, w, b, x))
        sched.step()
    assert opt.param_groups[0]["lr"] == 0
    before = {p: {k: v.clone() for k, v in opt.state[p].items()} for p in (w, b)}
    wb = (w.detach().clone(), b.detach().clone())
    opt.step(_closure(opt, w, b, x))
    assert opt.t == 5
    assert torch.equal(w, wb[0]) and torch.equal(b, wb[1])
    for p in (w, b):
        assert all(torch.equal(opt.state[p][k], v) for k, v in before[p].items())


def test_lr_zero_group_is_as_if_absent():
    """A group at lr = 0 sits the batch out: the other group moves exactly as if alone."""
    w, b, x = _problem()
    w2, b2 = (p.detach().clone().requires_grad_() for p in (w, b))
    both = _seeded([{"params": [w]}, {"params": [b]}], lr=0.05, betas=(0.5, 0.999))
    both.param_groups[1]["lr"] = 0.0  # as a schedule leaves it (the constructor wants lr > 0)
    alone = _seeded([w2], lr=0.05, betas=(0.5, 0.999))
    for _ in range(5):
        both.step(_closure(both, w, b, x))
        alone.step(_closure(alone, w2, b2, x))
    assert torch.equal(w, w2) and torch.equal(b, b2) and both.t == alone.t == 5


@pytest.mark.parametrize("make", [
    lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=3),
    lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=3),
])
def test_schedules_that_reach_zero_run_on(make):
    w, b, x = _problem()
    opt = Alice([w, b], lr=0.05)
    sched = make(opt)
    for _ in range(6):
        opt.step(_closure(opt, w, b, x))
        sched.step()
    assert opt.t == 6


@pytest.mark.parametrize("make", [
    lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=12),
    lambda o: torch.optim.lr_scheduler.CyclicLR(o, base_lr=0.01, max_lr=0.05, step_size_up=3),
])
def test_cyclic_momentum_drives_beta1(make):
    """betas live in defaults and groups (torch's place); a momentum schedule's beta1 is used."""
    w, b, x = _problem()
    opt = Alice([w, b], lr=0.01)
    assert opt.defaults["betas"] == opt.param_groups[0]["betas"] == opt.betas
    sched = make(opt)  # cycle_momentum=True by default
    seen = set()
    for _ in range(8):
        opt.step(_closure(opt, w, b, x))
        assert opt.betas == tuple(opt.param_groups[0]["betas"])
        seen.add(opt.betas[0])
        sched.step()
    assert len(seen) > 1 and opt.t == 8


def test_groups_with_different_betas_are_refused_at_step():
    w, b, x = _problem()
    opt = Alice([{"params": [w]}, {"params": [b]}])
    opt.param_groups[1]["betas"] = (0.8, 0.999)
    with pytest.raises(ValueError, match="shared by all groups"):
        opt.step(_closure(opt, w, b, x))
    assert opt.t == 0


# -- the standard flags -------------------------------------------------------------------------

def test_maximize_is_alice_on_minus_loss():
    w, b, x = _problem()
    w2, b2 = (p.detach().clone().requires_grad_() for p in (w, b))
    up = _seeded([w, b], lr=0.05, betas=(0.5, 0.999), maximize=True)
    down = _seeded([w2, b2], lr=0.05, betas=(0.5, 0.999))
    first = _closure(up, w, b, x)().item()
    for _ in range(6):
        up.step(_closure(up, w, b, x))
        down.step(_closure(down, w2, b2, x, sign=-1.0))
    assert torch.equal(w, w2) and torch.equal(b, b2)
    assert _closure(up, w, b, x)().item() > first
    assert w.grad is None or True  # (the negating hooks are removed after the step)
    up.zero_grad()
    (w.sum()).backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_weight_decay_is_w2_exactly():
    w, b, x = _problem()
    w2, b2 = (p.detach().clone().requires_grad_() for p in (w, b))
    a = _seeded([w, b], lr=0.05, betas=(0.5, 0.999), weight_decay=0.1)
    c = _seeded([w2, b2], lr=0.05, betas=(0.5, 0.999), w2=0.1)
    for _ in range(5):
        a.step(_closure(a, w, b, x))
        c.step(_closure(c, w2, b2, x))
    assert torch.equal(w, w2) and a.param_groups[0]["w2"] == 0.1
    g = Alice([{"params": [w], "weight_decay": 0.2}, {"params": [b]}])
    assert g.param_groups[0]["w2"] == 0.2 and g.param_groups[1]["w2"] == 0.0
    with pytest.raises(ValueError, match="alias of w2"):
        Alice([w], weight_decay=0.1, w2=0.2)


def test_standard_flags_accepted_or_refused_clearly():
    w, b, x = _problem()
    Alice([w], foreach=True)
    Alice([w], foreach=False, differentiable=False, capturable=False)
    for flag in ("differentiable", "capturable"):
        with pytest.raises(ValueError, match=f"{flag}=True is not supported"):
            Alice([w], **{flag: True})
    with pytest.raises(TypeError, match="maximize"):
        Alice([w], maximize="yes")
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        Alice([w], lr=torch.tensor([0.1, 0.1]))
    Alice([w], lr=torch.tensor(0.1))


# -- what Alice refuses -------------------------------------------------------------------------

def test_complex_parameters_refused_with_runtime_error():
    z = torch.nn.Parameter(torch.randn(3, dtype=torch.complex64))
    with pytest.raises(RuntimeError, match="complex"):
        Alice([z])


def test_sparse_gradients_refused_with_runtime_error():
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = Alice(emb.parameters())

    def closure():
        opt.zero_grad()
        loss = emb(torch.tensor([1, 2])).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="sparse"):
        opt.step(closure)
    assert opt.t == 0


def test_closure_without_backward_is_an_error_and_changes_nothing():
    w, b, x = _problem()
    opt = Alice([w, b])
    w0 = w.detach().clone()
    with pytest.raises(RuntimeError, match="loss.backward"):
        opt.step(lambda: (w.mv(x) + b).pow(2).sum())
    assert opt.t == 0 and torch.equal(w, w0)


def test_step_without_closure_says_why_and_shows_both_forms():
    w, b, x = _problem()
    opt = Alice([w, b])
    with pytest.raises(TypeError) as e:
        opt.step()
    msg = str(e.value)
    assert "GradScaler" in msg and "lambda: model(x)" in msg and "loss.backward()" in msg
    assert "bfloat16" in msg


def test_refused_fused_step_creates_no_state():
    w = torch.nn.Parameter(torch.randn(4, 6)[:, ::2])  # not contiguous: no fused path
    opt = Alice([w], fused=True)

    def closure():
        opt.zero_grad()
        loss = w.pow(2).sum()
        loss.backward()
        return loss

    with pytest.raises(ValueError):
        opt.step(closure)
    assert len(opt.state) == 0 and opt.t == 0


def test_bf16_autocast_without_grad_scaler():
    """docs/torch.md#mixed-precision: autocast inside the closure, no GradScaler."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    opt = Alice(model.parameters(), lr=0.01, betas=(0.5, 0.999))

    def closure():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(4):
        opt.step(closure)
    assert opt.t == 4 and all(p.dtype == torch.float32 for p in model.parameters())


# -- the peer-suite runner ----------------------------------------------------------------------

def test_peer_runner_without_the_file_says_so_and_exits_0(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tests/peer/run_torch_suite.py"),
                        "--file", str(tmp_path / "missing.py")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "nothing was run" in r.stdout


@pytest.mark.parametrize("kw", [dict(eps=-1e-6), dict(betas=(-0.1, 0.1)), dict(lr=-1e-2)])
def test_hyperparameters_are_checked_before_the_params(kw):
    """As torch.optim.Adam: a bad hyperparameter is named even when params is unusable (None);
    pytorch-optimizer's generic validation tests rely on it."""
    name = next(iter(kw))
    with pytest.raises(ValueError, match=name):
        Alice(None, **kw)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_parameters_use_the_realised_probe_displacement(dtype):
    """bf16/fp16 probe points are rounded when stored: with the nominal sigma, L = sum (w-1)^2
    (H = 2, no glass) near w = 1 at lr 1e-2 gave H = 1.56 and spurious R; with the realised
    displacements |point - nu| (alice_ref.absorb_curvature's d_plus, d_minus) batch 1 gives H = 2
    and R = 0 exactly. At lr 1e-3 bf16 points round back onto nu: no sample, H = R = 0 kept."""
    for lr, want_h in ((1e-2, 2.0), (1e-3, 2.0 if dtype == torch.float16 else 0.0)):
        w = torch.nn.Parameter((1.0 + torch.tensor([0.0, 2.0, 1.0, -3.0]) * 2.0 ** -8).to(dtype))
        opt = Alice([w], lr=lr, betas=(0.5, 0.999))

        def closure(w=w, opt=opt):
            opt.zero_grad()
            loss = ((w.float() - 1.0) ** 2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        st = opt.state[w]
        assert st["H"].dtype == torch.float32
        assert torch.equal(st["R"], torch.zeros(4)), (lr, st["R"])
        assert torch.equal(st["H"], torch.full((4,), want_h)), (lr, st["H"])
