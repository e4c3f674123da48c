"""alice_torch.Alice checkpoints: resuming mid-run from (model, optimiser, RNG) state dicts is
bit-identical to an uninterrupted run (docs/spec/algorithm.md#beyond-the-official-code, "Full
checkpointing")."""

import io

import pytest

torch = pytest.importorskip("torch")

from alice_torch import Alice  # noqa: E402

FIELDS = ("mu", "nu", "G", "V", "H", "R")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def make(dtype, seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.25),
                               torch.nn.Linear(8, 1)).to(dtype)


def batch(t, dtype):
    g = torch.Generator().manual_seed(1000 + t)  # data depend on the batch index only
    x = torch.randn(12, 4, generator=g)
    return x.to(dtype), torch.cos(x.sum(1, keepdim=True)).to(dtype)


def build(dtype, seed, own_generator):
    model = make(dtype, seed)
    gen = torch.Generator().manual_seed(7) if own_generator else None
    opt = Alice(model.named_parameters(), lr=0.03, betas=(0.75, 0.999), quick_steps=3,
                generator=gen)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.97)
    return model, opt, sched


def train(model, opt, sched, t0, t1, dtype):
    for t in range(t0, t1):
        x, y = batch(t, dtype)

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x).float(), y.float())
            loss.backward()
            return loss
        opt.step(closure)
        sched.step()


@pytest.mark.parametrize("dtype, own_generator", [(torch.float32, False), (torch.float64, True),
                                                  (torch.bfloat16, True)])
@pytest.mark.parametrize("split", [6, 9])  # mid warm-up/sample cycle, and mid quick-step cycle
def test_resume_is_bit_identical(dtype, own_generator, split):
    n = 14
    torch.manual_seed(123)
    model, opt, sched = build(dtype, 0, own_generator)
    model.train()
    train(model, opt, sched, 0, n, dtype)
    ref_params = [p.detach().clone() for p in model.parameters()]
    ref_state = [{f: opt.state[p][f].clone() for f in FIELDS} for p in model.parameters()]

    torch.manual_seed(123)
    model, opt, sched = build(dtype, 0, own_generator)
    train(model, opt, sched, 0, split, dtype)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "rng": torch.get_rng_state()}, buf)
    del model, opt, sched
    torch.manual_seed(999)  # a different world until the checkpoint is restored
    torch.rand(17)

    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    model, opt, sched = build(dtype, 1, own_generator)  # different initial weights
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["opt"])
    sched.load_state_dict(ck["sched"])
    torch.set_rng_state(ck["rng"])
    assert opt.t == split
    for p in model.parameters():
        assert all(opt.state[p][f].dtype == (torch.float64 if dtype == torch.float64 else
                                             torch.float32) for f in FIELDS)
    train(model, opt, sched, split, n, dtype)

    for p, q in zip(model.parameters(), ref_params):
        assert torch.equal(p.detach(), q)
    for p, ref in zip(model.parameters(), ref_state):
        for f in FIELDS:
            assert torch.equal(opt.state[p][f], ref[f]), f
    assert opt.t == n


def test_load_rejects_other_schedule_and_shapes():
    model, opt, _ = build(torch.float32, 0, True)
    train(model, opt, torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0), 0, 2, torch.float32)
    sd = opt.state_dict()
    other = Alice(model.parameters(), lr=0.03, betas=(0.5, 0.999))
    with pytest.raises(ValueError, match="betas"):
        other.load_state_dict(sd)
    small = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Dropout(0.25),
                                torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="shape"):
        Alice(small.parameters(), lr=0.03, betas=(0.75, 0.999)).load_state_dict(sd)


def test_rejected_checkpoint_changes_nothing():
    """A checkpoint refused for a wrong-shape state tensor leaves the optimiser exactly as it
    was: state, param groups (lr included), counter (bad input is refused before any change)."""
    model, opt, sched = build(torch.float32, 0, False)
    train(model, opt, sched, 0, 3, torch.float32)
    before = {id(p): {f: opt.state[p][f].clone() for f in FIELDS} for p in model.parameters()}
    groups_before = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    sd = opt.state_dict()
    p0 = next(iter(sd["state"]))
    sd["state"][p0] = dict(sd["state"][p0], G=torch.zeros(99))  # wrong shape
    sd["param_groups"][0]["lr"] = 123.0
    sd["alice"] = dict(sd["alice"], t=50)
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(sd)
    assert opt.t == 3
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] \
        == groups_before
    for p in model.parameters():
        for f in FIELDS:
            assert torch.equal(opt.state[p][f], before[id(p)][f]), f
