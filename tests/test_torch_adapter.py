"""alice_torch.Alice: the PyTorch adapter (docs/spec/algorithm.md#one-batch,
docs/spec/api.md#alice_torch-adapter).

Truth comes from (a) the recorded runs of the official optimiser (conformance vectors), (b) the
NumPy-side functional core driven with the same probes and gradients, (c) algebra on landscapes
whose answer is known (a linear loss makes the step sit exactly on its bound), (d) the recorded
RNG positions of torch's own generator.
"""

import math
import pathlib
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from alice_torch import Alice, NonFiniteGradientError  # noqa: E402

import alice_ref  # noqa: E402
from alice_ref.conformance import load_official, official_meta  # noqa: E402

_ROOT = pathlib.Path(__file__).resolve().parents[1]
FIELDS = ("mu", "nu", "G", "V", "H", "R")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def mlp(dtype=torch.float64, seed=0, dropout=0.0, n_in=3, hidden=5):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(n_in, hidden), torch.nn.ReLU()]
    if dropout:
        layers.append(torch.nn.Dropout(dropout))
    layers.append(torch.nn.Linear(hidden, 1))
    return torch.nn.Sequential(*layers).to(dtype)


def data(dtype=torch.float64, n=16, n_in=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, generator=g, dtype=torch.float64)
    noise = torch.randn(n, 1, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(1, keepdim=True)) + 0.1 * noise
    return x.to(dtype), y.to(dtype)


def standard_closure(opt, model, x, y):
    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss
    return closure


def rel(a, b):
    """max |a - b| / max |b| (the scale of the reference), 0 when both are 0."""
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    s = b.abs().max().item()
    d = (a - b).abs().max().item()
    return d / s if s > 0 else d


# -- construction ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, name", [
    ({"lr": 0.0}, "lr"), ({"betas": (1.0, 0.9)}, "betas[0]"), ({"eps": 0.0}, "eps"),
    ({"w1": -1.0}, "w1"), ({"phi": 2.0}, "phi"), ({"omega": 0.0}, "omega"),
    ({"limit_method": "sgd"}, "limit_method"), ({"lr_min": 0.1, "lr_max": 0.01}, "lr_max"),
    ({"hess_comp": "diag"}, "hess_comp"), ({"quick_steps": -1}, "quick_steps"),
    ({"hess_comp": "zero", "grad_glass": False}, "grad_glass"),
    ({"nonfinite": "ignore"}, "nonfinite"),
    ({"betas": (0.9, 0.5)}, "quick_steps"),
])
def test_invalid_hyperparameters_named(kw, name):
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises((ValueError, TypeError), match=re.escape(name)):
        Alice([p], **kw)


def test_groups_resolve_and_validate_per_group():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = Alice([{"params": [a]}, {"params": [b], "lr": 0.1, "lr_min": 0.01}], lr=0.01,
                betas=(0.75, 0.999), device=torch.device("cuda"))  # device accepted, ignored
    g0, g1 = opt.param_groups
    assert (g0["lr_max"], g1["lr_max"]) == (0.02, 0.2)  # None -> 2 lr of each group
    assert g0["phi"] == g1["phi"] == 0.25
    with pytest.raises(ValueError, match="parameter group 1: lr_max"):
        Alice([{"params": [a]}, {"params": [b], "lr_min": 1.0}], lr=0.01)
    with pytest.raises(ValueError, match="betas is shared"):
        Alice([{"params": [a]}, {"params": [b], "betas": (0.5, 0.9)}])
    with pytest.raises(TypeError, match="closure"):
        opt.step()


# -- parity with the official optimiser (recorded runs) ------------------------------------------

def test_replay_official_runs():
    """The recorded uniforms u came from torch's default generator (seed 10 + config, after 97
    draws); the adapter, drawing its own probes, must put each evaluation where the official
    optimiser did and reach the same state batch after batch (float32; README: ~1e-5)."""
    d = load_official()
    meta = official_meta(d)
    worst = 0.0
    for c, cfg in enumerate(meta["configs"]):
        hp = dict(cfg["config"], betas=tuple(cfg["config"]["betas"]))
        sizes = cfg["param_sizes"]
        params = [torch.nn.Parameter(x.clone())
                  for x in torch.split(torch.from_numpy(d[f"c{c}_params0"]), sizes)]
        torch.manual_seed(10 + c)
        torch.rand(97)
        opt = Alice(params, **hp)
        nu_prev = d[f"c{c}_params0"].astype(np.float64)
        for b in range(meta["batches"]):
            grads = d[f"c{c}_b{b}_grads"]
            u = d[f"c{c}_b{b}_u"] if f"c{c}_b{b}_u" in d else None
            z = None if u is None else np.where(u < 0.5, -1.0, 1.0)
            where = [nu_prev] if u is None else [nu_prev + hp["lr"] * z, nu_prev - hp["lr"] * z,
                                                 nu_prev]
            k = [0]

            def closure(params=params, where=where, k=k, grads=grads, sizes=sizes):
                x = torch.cat([p.detach().flatten() for p in params]).double().numpy()
                np.testing.assert_allclose(x, where[k[0]], rtol=1e-6, atol=1e-7)
                for p, g in zip(params, torch.split(torch.from_numpy(grads[k[0]]), sizes)):
                    p.grad = g.reshape(p.shape).clone()
                k[0] += 1
                return torch.tensor(0.0)

            opt.step(closure)
            assert k[0] == grads.shape[0]
            for f in FIELDS:
                mine = torch.cat([opt.state[p][f].flatten() for p in params])
                worst = max(worst, rel(mine, d[f"c{c}_b{b}_{f}"]))
            got_mu = torch.cat([p.detach().flatten() for p in params])
            assert torch.equal(got_mu, torch.cat([opt.state[p]["mu"].flatten() for p in params]))
            nu_prev = d[f"c{c}_b{b}_nu"].astype(np.float64)
    assert worst < 1e-5, worst


# -- equality with the functional core -------------------------------------------------------------

def _core_run(model_fn, params0, batches, probes_gen, like_dtype=None, **hp):
    """The NumPy-side driver alice_ref.run_batch with the adapter's probes (same torch.Generator
    stream, same order) and gradients from a pure function of the parameters."""
    config = alice_ref.AliceConfig(**hp)
    like = [p.detach().clone() if like_dtype is None else p.detach().to(like_dtype)
            for p in params0]
    state = alice_ref.init(like, config)
    for _ in range(batches):
        sched = alice_ref.schedule(state.t + 1, config)
        probes = None
        if sched.sample:
            probes = []
            for p in like:
                u = torch.rand(p.numel(), dtype=p.dtype, generator=probes_gen)
                z = torch.where(u < 0.5, -1.0, 1.0).to(state.mu[0].dtype)
                probes.append(z.reshape(p.shape))
        state, _ = alice_ref.run_batch(state, config, model_fn, None, like=like, probes=probes)
    return state


@pytest.mark.parametrize("hp", [
    {"lr": 0.05, "betas": (0.75, 0.999), "quick_steps": 3},
    {"lr": 0.02, "betas": (0.5, 0.99), "quick_steps": 1, "hess_comp": "rms", "grad_glass": False,
     "limit_method": "sgdm", "w1": 1e-3, "w2": 1e-2, "lr_max": 0.2},
    {"lr": 0.03, "betas": (0.875, 0.999), "quick_steps": 2, "hess_comp": "zero",
     "limit_method": "fixed", "lr_min": 1e-3, "lr_max": 0.02, "phi": 0.3, "omega": 0.7},
])
def test_equals_functional_core_float64(hp):
    model = mlp()
    x, y = data()
    names = [n for n, _ in model.named_parameters()]
    params0 = [p.detach().clone() for p in model.parameters()]

    def value_and_grad(points):
        pts = {n: q.detach().requires_grad_(True) for n, q in zip(names, points)}
        loss = torch.nn.functional.mse_loss(torch.func.functional_call(model, pts, (x,)), y)
        return loss, list(torch.autograd.grad(loss, list(pts.values())))

    n = 14
    expected = _core_run(value_and_grad, params0, n, torch.Generator().manual_seed(5), **hp)
    opt = Alice(model.parameters(), generator=torch.Generator().manual_seed(5), **hp)
    for _ in range(n):
        opt.step(standard_closure(opt, model, x, y))
    assert opt.t == expected.t == n
    for k, p in enumerate(model.parameters()):
        for f in FIELDS:
            assert rel(opt.state[p][f], getattr(expected, f)[k]) <= 1e-13, f
        assert torch.equal(p.detach(), opt.state[p]["mu"])


# -- closures --------------------------------------------------------------------------------------

def test_both_closure_forms_same_trajectory():
    x, y = data()
    runs = []
    for form in ("pair", "standard"):
        model = mlp()
        opt = Alice(model.parameters(), lr=0.05, betas=(0.75, 0.999),
                    generator=torch.Generator().manual_seed(3))
        for _ in range(9):
            if form == "pair":
                loss, out = opt.step((lambda m=model: m(x),
                                      lambda o: torch.nn.functional.mse_loss(o, y)))
                assert out.shape == (16, 1)
            else:
                loss = opt.step(standard_closure(opt, model, x, y))
            assert loss.ndim == 0 and torch.isfinite(loss)
        runs.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_pair_returns_loss_and_outputs_at_nu():
    x, y = data()
    model = mlp()
    opt = Alice(model.parameters(), lr=0.05, betas=(0.75, 0.999))
    seen = []

    def model_func():
        seen.append([p.detach().clone() for p in model.parameters()])
        return model(x)

    for _ in range(6):
        nu_before = [opt.state[p]["nu"].clone() if "nu" in opt.state[p] else p.detach().clone()
                     for p in model.parameters()]
        loss, out = opt.step((model_func, lambda o: torch.nn.functional.mse_loss(o, y)))
        for a, b in zip(seen[-1], nu_before):  # the last evaluation is at nu
            assert torch.equal(a, b)
        with torch.no_grad():
            ref = torch.func.functional_call(
                model, dict(zip([n for n, _ in model.named_parameters()], nu_before)), (x,))
        assert torch.equal(out, ref)
        assert torch.equal(loss.detach(), torch.nn.functional.mse_loss(ref, y))


# -- randomness ------------------------------------------------------------------------------------

def test_dropout_same_mask_and_default_rng_position():
    """With torch's default generator: probes are drawn first (per parameter, in order), the
    RNG state is then saved and restored before each of the three evaluations, so all three see
    the same dropout mask, and afterwards the generator is where the third evaluation left it."""
    x, y = data(n=8)
    model = mlp(dropout=0.5)
    model.train()
    opt = Alice(model.parameters(), lr=0.05, betas=(0.75, 0.999), quick_steps=3)
    log = []

    def closure():
        opt.zero_grad()
        start = torch.get_rng_state()
        h = model[1](model[0](x))
        mask = model[2](torch.ones_like(h)) != 0
        loss = torch.nn.functional.mse_loss(model[3](model[2](h)), y)
        loss.backward()
        log.append((start, mask, torch.get_rng_state()))
        return loss

    for t in range(1, 9):
        before = torch.get_rng_state()
        log.clear()
        opt.step(closure)
        sample = t <= 4 or t % 4 == 0
        assert len(log) == (3 if sample else 1)
        if sample:
            gen = torch.Generator().set_state(before)
            for p in model.parameters():
                torch.rand(p.numel(), dtype=p.dtype, generator=gen)
            after_draws = gen.get_state()
            for start, mask, _ in log:
                assert torch.equal(start, after_draws)
                assert torch.equal(mask, log[0][1])
        else:
            assert torch.equal(log[0][0], before)
        assert torch.equal(torch.get_rng_state(), log[-1][2])


def test_user_generator_leaves_default_rng_to_the_model():
    x, y = data()
    model = mlp()
    gen = torch.Generator().manual_seed(11)
    opt = Alice(model.parameters(), lr=0.05, betas=(0.75, 0.999), generator=gen)
    g_before = gen.get_state()
    d_before = torch.get_rng_state()
    opt.step(standard_closure(opt, model, x, y))  # t = 1: sample step, no model randomness
    assert torch.equal(torch.get_rng_state(), d_before)
    ref = torch.Generator().set_state(g_before)
    for p in model.parameters():
        torch.rand(p.numel(), dtype=p.dtype, generator=ref)
    assert torch.equal(gen.get_state(), ref.get_state())


# -- groups, schedulers, frozen and unused parameters ----------------------------------------------

def _linear_problem(c=(0.5, -2.0, 3.0)):
    """L(theta) = c . theta: constant gradient c, so H = R = 0 and every step after warm-up sits
    exactly on its upper bound: delta = -sign(c) tau_hi (limit 'fixed')."""
    c = torch.tensor(c, dtype=torch.float64)
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))

    def closure():
        loss = (c * p).sum()
        loss.backward()
        return loss
    return p, c, closure


@pytest.mark.parametrize("scale", [True, False])
def test_lr_scheduler_moves_sigma_and_bounds(scale):
    p, c, inner = _linear_problem()
    lr0, lr_max, phi = 0.1, 0.3, 0.5
    opt = Alice([p], lr=lr0, lr_max=lr_max, phi=phi, betas=(0.5, 0.999), quick_steps=0,
                limit_method="fixed", scale_bounds_with_lr=scale,
                generator=torch.Generator().manual_seed(0))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    points = []

    def closure():
        points.append(p.detach().clone())
        return inner()

    for t in range(1, 7):
        lr = opt.param_groups[0]["lr"]
        assert lr == pytest.approx(lr0 * 0.5 ** (t - 1), rel=1e-15)
        mu_before = p.detach().clone()
        nu_before = opt.state[p]["nu"].clone() if t > 1 else mu_before
        points.clear()
        opt.step(closure)
        # sample step at sigma = the current lr
        assert torch.allclose((points[0] - nu_before).abs(), torch.full((3,), lr, dtype=p.dtype),
                              rtol=1e-12, atol=0)
        if t > 2:  # after warm-up (1/(1 - 0.5) = 2)
            hi = lr_max / lr0 * lr if scale else lr_max
            expected = mu_before - phi * hi * torch.sign(c)
            assert torch.allclose(p.detach(), expected, rtol=1e-14, atol=1e-15)
        sched.step()


def test_groups_use_their_own_sigma():
    a = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = Alice([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}], betas=(0.5, 0.999))
    seen = []

    def closure():
        seen.append((a.detach().clone(), b.detach().clone()))
        ((a - 1) ** 2 + (b + 1) ** 2).sum().backward()
        return torch.tensor(0.0)

    opt.step(closure)
    assert torch.equal(seen[0][0].abs(), torch.full((4,), 0.1, dtype=torch.float64))
    assert torch.equal(seen[0][1].abs(), torch.full((4,), 0.01, dtype=torch.float64))


def test_frozen_and_unused_parameters():
    """requires_grad=False: never perturbed, never updated, no state (as the official code).
    A trainable parameter that gets no gradient is treated as having gradient 0 (official):
    then G = H = R = V = 0, every bound is 0 and mu stays where it is."""
    x, y = data()
    model = mlp()
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    unused = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    unused0 = unused.detach().clone()
    opt = Alice(list(model.parameters()) + [unused], lr=0.05, betas=(0.75, 0.999))

    def closure():
        assert torch.equal(model[0].weight, frozen)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(8):
        opt.step(closure)
    assert torch.equal(model[0].weight, frozen) and len(opt.state[model[0].weight]) == 0
    assert torch.equal(unused.detach(), unused0)
    assert torch.equal(opt.state[unused]["G"], torch.zeros(3, dtype=torch.float64))
    assert not torch.equal(model[2].weight.detach(), before[2])


# -- attributes, mu --------------------------------------------------------------------------------

def test_attributes_export_import():
    x, y = data()
    model = mlp()
    opt = Alice([{"params": list(model[0].parameters())},
                 {"params": list(model[2].parameters()), "lr": 0.02}],
                lr=0.05, betas=(0.75, 0.999))
    assert opt.attributes() == [{"glass_density": 0.0, "curvature": 0.0}] * 2
    for _ in range(5):
        opt.step(standard_closure(opt, model, x, y))
    att = opt.attributes()
    for group, a in zip(opt.param_groups, att):
        ps = group["params"]
        n = sum(p.numel() for p in ps)
        R = sum(opt.state[p]["R"].sum().item() for p in ps) / n
        H = sum(opt.state[p]["H"].sum().item() for p in ps) / n
        assert isinstance(a["glass_density"], float) and a["glass_density"] == pytest.approx(R)
        assert a["curvature"] == pytest.approx(H) and H > 0
    rho, h = opt.get_attributes()
    assert [r.item() for r in rho] == pytest.approx([a["glass_density"] for a in att])
    assert [c.item() for c in h] == pytest.approx([a["curvature"] for a in att])
    mu = opt.export_mu()
    assert all(torch.equal(m, p.detach()) for m, p in zip(mu, model.parameters()))
    new = [m + 1.0 for m in mu]
    opt.import_mu(new)
    for m, p in zip(new, model.parameters()):
        assert torch.equal(p.detach(), m) and torch.equal(opt.state[p]["mu"], m)
        assert torch.equal(opt.state[p]["nu"], m)
    with pytest.raises(ValueError, match="import_mu"):
        opt.import_mu(new[:-1])


# -- non-finite gradients --------------------------------------------------------------------------

def _poisoned(opt, model, x, y, when):
    """A standard closure whose gradient of the 3rd parameter (a weight) is NaN at evaluation
    number ``when`` (counted over the whole run) and clean otherwise."""
    count = [0]

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if count[0] == when:
            list(model.parameters())[2].grad[0, 1] = math.nan
        count[0] += 1
        return loss
    return closure


def _snapshot(opt, model):
    return ([p.detach().clone() for p in model.parameters()],
            {k: {f: opt.state[p][f].clone() for f in FIELDS if f in opt.state[p]}
             for k, p in enumerate(model.parameters())},
            opt.t)


def _same(a, b):
    pa, sa, ta = a
    pb, sb, tb = b
    return ta == tb and all(torch.equal(u, v) for u, v in zip(pa, pb)) and all(
        sa[k].keys() == sb[k].keys() and all(torch.equal(sa[k][f], sb[k][f]) for f in sa[k])
        for k in sa)


@pytest.mark.parametrize("which, when", [("g+", 6), ("g-", 7), ("g0", 8), ("g0", 14)])
def test_nonfinite_raise_leaves_everything_unchanged(which, when):
    # evaluations: batches 1-4 are sample steps (3 each) -> numbers 0..11; batch 5 quick (12)...
    x, y = data()
    model = mlp()
    opt = Alice(model.named_parameters(), lr=0.05, betas=(0.75, 0.999),
                generator=torch.Generator().manual_seed(0))
    closure = _poisoned(opt, model, x, y, when)
    snap = None
    with pytest.raises(NonFiniteGradientError) as info:
        for _ in range(10):
            snap, gen_state = _snapshot(opt, model), opt.generator.get_state()
            opt.step(closure)
    msg = str(info.value)
    assert "'2.weight'" in msg and f"evaluation {which} " in msg
    assert info.value.evaluation == which and info.value.t == snap[2] + 1
    assert isinstance(info.value, alice_ref.NonFiniteGradientError)
    assert _same(_snapshot(opt, model), snap)
    assert torch.equal(opt.generator.get_state(), gen_state)  # a retry draws the same probes
    for _ in range(3):  # training continues
        opt.step(closure)
    assert opt.t == snap[2] + 3 and all(torch.isfinite(p).all() for p in model.parameters())


def test_nonfinite_skip_is_as_if_the_batch_never_happened():
    """nonfinite='skip': the batch is counted and undone, generators included (as the core
    driver), so skipping it equals a run that never saw it (the data here repeat each batch)."""
    x, y = data()
    runs = []
    for poison, calls in ((7, 6), (-1, 5)):
        model = mlp(dropout=0.3)
        torch.manual_seed(4)
        opt = Alice(model.parameters(), lr=0.05, betas=(0.75, 0.999), nonfinite="skip")
        closure = _poisoned(opt, model, x, y, poison)
        for k in range(calls):
            snap, rng = _snapshot(opt, model), torch.get_rng_state()
            loss = opt.step(closure)
            if poison >= 0 and k == 2:  # batch 3 evaluates numbers 6, 7 (poisoned), 8
                assert opt.skipped == 1 and _same(_snapshot(opt, model), snap)
                assert torch.equal(torch.get_rng_state(), rng) and torch.isfinite(loss)
        runs.append(_snapshot(opt, model))
        assert opt.t == 5
    assert _same(runs[0], runs[1])


def test_closure_exception_restores_mu():
    x, y = data()
    model = mlp()
    opt = Alice(model.parameters(), lr=0.05, betas=(0.75, 0.999))
    opt.step(standard_closure(opt, model, x, y))
    before = _snapshot(opt, model)
    calls = [0]

    def closure():
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return standard_closure(opt, model, x, y)()

    with pytest.raises(KeyboardInterrupt):
        opt.step(closure)
    assert _same(_snapshot(opt, model), before)


# -- dtypes and devices ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes_state_and_core_equality(dtype):
    """float32 state for half parameters; the parameters hold mu in their own dtype; and the
    result equals the core driven with the same probes and gradients."""
    model = mlp(dtype=dtype)
    x, y = data(dtype=dtype)
    names = [n for n, _ in model.named_parameters()]
    params0 = [p.detach().clone() for p in model.parameters()]

    def value_and_grad(points):
        pts = {n: q.detach().requires_grad_(True) for n, q in zip(names, points)}
        loss = torch.nn.functional.mse_loss(torch.func.functional_call(model, pts, (x,)), y)
        return loss, list(torch.autograd.grad(loss, list(pts.values())))

    hp = {"lr": 0.05, "betas": (0.75, 0.999)}
    expected = _core_run(value_and_grad, params0, 9, torch.Generator().manual_seed(2), **hp)
    opt = Alice(model.parameters(), generator=torch.Generator().manual_seed(2), **hp)
    for _ in range(9):
        opt.step(standard_closure(opt, model, x, y))
    for k, p in enumerate(model.parameters()):
        assert p.dtype == dtype
        for f in FIELDS:
            assert opt.state[p][f].dtype == torch.float32
            assert torch.equal(opt.state[p][f], getattr(expected, f)[k]), f
        assert torch.equal(p.detach(), opt.state[p]["mu"].to(dtype))


@CUDA
def test_cuda_matches_cpu_and_replays_dropout():
    """Same probes (a CPU generator: drawn on CPU, moved to the GPU), float64: the CUDA run
    follows the CPU run up to the GPU's summation order; state stays on the device."""
    x, y = data(dtype=torch.float64)
    res = []
    for dev in ("cpu", "cuda"):
        model = mlp().to(dev)
        opt = Alice(model.parameters(), lr=0.05, betas=(0.75, 0.999),
                    generator=torch.Generator().manual_seed(0))
        for _ in range(9):
            opt.step(standard_closure(opt, model, x.to(dev), y.to(dev)))
        assert all(opt.state[p][f].device.type == dev for p in model.parameters()
                   for f in FIELDS)
        res.append([p.detach().cpu() for p in model.parameters()])
    for a, b in zip(*res):
        assert rel(b, a) < 1e-6
    model = mlp(dropout=0.5).cuda()
    opt = Alice(model.parameters(), lr=0.05, betas=(0.75, 0.999))
    masks = []

    def closure():
        opt.zero_grad()
        h = model[1](model[0](x.cuda()))
        masks.append(model[2](torch.ones_like(h)) != 0)
        loss = torch.nn.functional.mse_loss(model[3](model[2](h)), y.cuda())
        loss.backward()
        return loss

    opt.step(closure)
    assert len(masks) == 3 and all(torch.equal(m, masks[0]) for m in masks)
