"""alice_torch.Alice refuses what it cannot carry out, before anything changes (issue 13).

docs/spec/design.md (house rules: bad input gets a clear error naming the argument before
anything changes) and docs/spec/algorithm.md#beyond-the-official-code; docs/torch.md
(reliability sections): checkpoints checked whole, a failed first batch leaves no state,
parameters listed twice or shared by two optimisers refused, hyperparameters checked in the
state dtype, parameters edited between steps adopted as the new centre.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from alice_torch import Alice, NonFiniteGradientError  # noqa: E402
from torch.nn.utils import prune  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FIELDS = ("mu", "nu", "G", "V", "H", "R")
HP = dict(lr=0.05, betas=(0.5, 0.999), quick_steps=1)


def _closure(opt, params, scale=1.0):
    def closure():
        opt.zero_grad()
        loss = sum(((p - 0.3) ** 2).sum() * scale for p in params)
        loss.backward()
        return loss
    return closure


def _trained(steps=4, fused=None, **hp):
    ps = [torch.nn.Parameter(torch.linspace(-1.0, 1.0, 5)), torch.nn.Parameter(torch.ones(3))]
    opt = Alice(ps, generator=torch.Generator().manual_seed(0), fused=fused, **{**HP, **hp})
    for _ in range(steps):
        opt.step(_closure(opt, ps))
    return opt, ps


def _snap(opt):
    return ({k: {f: v.clone() for f, v in st.items()} for k, st in enumerate(
                opt.state[p] for g in opt.param_groups for p in g["params"])},
            [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups],
            opt.t, opt.skipped, opt.generator.get_state())


def _unchanged(a, b):
    sa, ga, *ra = a
    sb, gb, *rb = b
    assert ga == gb and ra[:2] == rb[:2] and torch.equal(ra[2], rb[2])
    assert sa.keys() == sb.keys()
    for k in sa:
        assert all(torch.equal(sa[k][f], sb[k][f]) for f in FIELDS)


# -- item 2, 3: load_state_dict checks everything first ------------------------------------

def _bad_state_dicts():
    def edit(fn):
        src, _ = _trained()
        sd = src.state_dict()
        fn(sd)
        return sd

    def group(k, v):
        return lambda sd: sd["param_groups"][0].__setitem__(k, v)

    def field(f, v):
        return lambda sd: sd["state"][0].__setitem__(f, v(sd["state"][0][f]))

    ps = [torch.nn.Parameter(torch.ones(5)), torch.nn.Parameter(torch.ones(3))]
    adam = torch.optim.Adam(ps)
    adam.zero_grad()
    sum(p.sum() for p in ps).backward()
    adam.step()
    return {
        "generator state": edit(lambda sd: sd["alice"].__setitem__(
            "generator", torch.zeros(3, dtype=torch.uint8))),
        "lr_max=-1": edit(group("lr_max", -1.0)),
        "hess_comp bogus": edit(group("hess_comp", "bogus")),
        "lr NaN": edit(group("lr", math.nan)),
        "lr_min missing": edit(lambda sd: sd["param_groups"][0].pop("lr_min")),
        "eps below float32": edit(group("eps", 1e-46)),
        "no G": edit(lambda sd: sd["state"][0].pop("G")),
        "no mu": edit(lambda sd: sd["state"][0].pop("mu")),
        "mu a list": edit(field("mu", lambda x: x.tolist())),
        "t=-5": edit(lambda sd: sd["alice"].__setitem__("t", -5)),
        "t=2.7": edit(lambda sd: sd["alice"].__setitem__("t", 2.7)),
        "skipped=-1": edit(lambda sd: sd["alice"].__setitem__("skipped", -1)),
        "Adam's": adam.state_dict(),
        "int64 G": edit(field("G", lambda x: torch.ones(x.shape, dtype=torch.int64))),
        "bool V": edit(field("V", lambda x: torch.ones(x.shape, dtype=torch.bool))),
        "complex H": edit(field("H", lambda x: x.to(torch.complex64))),
        "NaN R": edit(field("R", lambda x: torch.full_like(x, math.nan))),
        "negative V": edit(field("V", lambda x: -1.0 - x)),
        "overflows float32": edit(field("mu", lambda x: torch.full(x.shape, 1e300,
                                                                   dtype=torch.float64))),
    }


BAD = _bad_state_dicts()


@pytest.mark.parametrize("name", list(BAD))
def test_load_state_dict_refuses_before_changing_anything(name):
    opt, ps = _trained(steps=3)
    before = _snap(opt)
    with pytest.raises((ValueError, TypeError)):
        opt.load_state_dict(BAD[name])
    _unchanged(before, _snap(opt))
    opt.step(_closure(opt, ps))  # and it goes on


def test_load_state_dict_still_resumes_bit_identically():
    a, ps = _trained(steps=3)
    b = Alice(ps, generator=torch.Generator().manual_seed(9), **HP)
    b.load_state_dict(a.state_dict())
    b.step(_closure(b, ps))
    c, qs = _trained(steps=4)
    assert all(torch.equal(p, q) for p, q in zip(ps, qs))
    for p, q in zip(ps, qs):
        assert all(torch.equal(b.state[p][f], c.state[q][f]) for f in FIELDS)


# -- item 4: a failed first batch leaves no state ------------------------------------------

@pytest.mark.parametrize("fused", [None, False])
def test_failed_first_batch_leaves_no_state_and_repair_works(fused):
    p = torch.nn.Parameter(torch.tensor([1.0, math.nan, 2.0]))
    opt = Alice([p], fused=fused, **HP)
    with pytest.raises(NonFiniteGradientError):
        opt.step(_closure(opt, [p]))
    assert p not in opt.state or not opt.state[p]
    with torch.no_grad():
        p[1] = 0.5  # the user repairs it
    for _ in range(4):
        opt.step(_closure(opt, [p]))
    assert bool(torch.isfinite(p).all()) and opt.t == 4


# -- items 6, 12: a parameter listed twice, or shared by two optimisers --------------------

def test_a_parameter_listed_twice_is_refused():
    p = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="appear once"):
        Alice([p, p], **HP)
    opt = Alice([p], **HP)
    with pytest.raises(ValueError, match="already in parameter group 0"):
        opt.add_param_group({"params": [p]})
    assert len(opt.param_groups) == 1


def test_two_optimisers_stepping_one_parameter_in_turn_are_refused():
    p = torch.nn.Parameter(torch.ones(3))
    a, b = Alice([p], **HP), Alice([p], **HP)
    a.step(_closure(a, [p]))
    b.step(_closure(b, [p]))  # b takes over (as when resuming into a new optimiser)
    with pytest.raises(ValueError, match="another Alice optimiser"):
        a.step(_closure(a, [p]))


# -- item 7: hyperparameters in the state dtype --------------------------------------------

@pytest.mark.parametrize("hp", [{"eps": 1e-46}, {"lr": 1e-46}, {"lr_max": 3.5e38},
                                {"w1": 1e38}, {"w2": 1e38}, {"omega": 1e38}, {"lr": 1e38}])
def test_hyperparameters_float32_cannot_carry_are_refused_before_a_step(hp):
    p = torch.nn.Parameter(torch.ones(3))
    opt = Alice([p], **{**HP, **hp})
    with pytest.raises(ValueError, match="float32"):
        opt.step(_closure(opt, [p]))
    assert opt.t == 0 and torch.equal(p, torch.ones(3)) and not opt.state.get(p)
    q = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt64 = Alice([q], **{**HP, **hp})
    if hp not in ({"lr_max": 3.5e38}, {"lr": 1e38}):  # float64 carries these (lr_max < 2^128)
        opt64.step(_closure(opt64, [q]))


# -- item 8: betas ----------------------------------------------------------------------------

@pytest.mark.parametrize("betas", [None, 0.9, torch.tensor(0.9), {0.9, 0.999},
                                   {0.9: 1, 0.999: 2}])
def test_betas_must_be_a_pair(betas):
    with pytest.raises(TypeError, match="betas must be a pair"):
        Alice([torch.nn.Parameter(torch.ones(2))], betas=betas)


# -- item 11: parameters edited between steps ----------------------------------------------

@pytest.mark.parametrize("fused", [None, False])
def test_a_pruning_mask_applied_between_steps_is_kept(fused):
    model = torch.nn.Linear(4, 3)
    opt = Alice(model.parameters(), fused=fused, **HP)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))

    def closure():
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        return loss
    for _ in range(4):
        opt.step(closure)
    mask = (torch.arange(12).reshape(3, 4) % 3 != 0).float()
    prune.custom_from_mask(model, "weight", mask)
    prune.remove(model, "weight")  # the mask written into the weight
    w = model.weight
    assert w is opt.param_groups[0]["params"][0] and torch.equal(w * mask, w)
    assert torch.equal(opt.state[w]["mu"] * mask, opt.state[w]["mu"]) is False
    opt.step(closure)  # batch 5: a sample step, the update moves mu from the pruned weight
    st = opt.state[w]
    moved = (st["mu"] - w).abs().max()
    assert torch.equal(st["mu"], w.detach()) and moved == 0
    # the pruned entries moved by one step at most (from 0), not back to the old values
    assert float((w.detach() * (1 - mask)).abs().max()) <= 2 * HP["lr"] + 1e-7


def test_a_rollback_through_model_load_state_dict_is_adopted():
    model = torch.nn.Linear(2, 1)
    opt = Alice(model.parameters(), fused=None, **HP)
    x = torch.ones(4, 2)

    def closure():
        opt.zero_grad()
        loss = ((model(x) - 3.0) ** 2).mean()
        loss.backward()
        return loss
    opt.step(closure)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(4):
        opt.step(closure)
    model.load_state_dict(saved)
    assert opt.export_mu()[0].ne(saved["weight"]).any()
    opt.step(closure)  # batch 6 is a quick step: nu = mu = the rolled-back weights, then moves
    mu = opt.state[model.weight]["mu"]
    assert (mu - saved["weight"]).abs().max() <= 2 * HP["lr"] + 1e-7


def test_unedited_parameters_are_not_adopted():
    """float16 parameters hold mu rounded: not an edit, the float32 state is kept."""
    p = torch.nn.Parameter(torch.full((3,), 1.0 + 2 ** -12, dtype=torch.float16))
    opt = Alice([p], **HP)
    for _ in range(5):
        opt.step(_closure(opt, [p], scale=1e-3))
    assert not torch.equal(opt.state[p]["mu"], p.detach().float())  # more precise than p


def test_import_mu_is_checked_first():
    opt, ps = _trained()
    before = _snap(opt)
    for bad, err in (([torch.ones(5), torch.ones(2)], ValueError),
                     ([torch.ones(5), torch.tensor([1, 2, 3])], TypeError),
                     ([torch.ones(5), torch.tensor([1.0, math.nan, 0.0])], ValueError),
                     (3, TypeError)):
        with pytest.raises(err):
            opt.import_mu(bad)
        _unchanged(before, _snap(opt))
