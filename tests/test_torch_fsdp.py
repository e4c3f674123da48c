"""alice_torch.Alice under FSDP2 (``fully_shard``, DTensor parameters; issue 18, docs/scaling.md).

Spawned gloo ranks on loopback (2, then 4), a float64 ReLU MLP whose rows do not divide evenly
among the ranks, 20 batches (beta1 = 0.75, q = 3: sample and quick batches both occur), each
rank a quarter/half of every batch. Checked: the ranks agree; the trajectory equals one process
on the whole batches with the same probe seed (<= 1e-6 relative), on the fused and the generic
path; the state is sharded (bytes per rank ~ 1/world); a bfloat16 MixedPrecisionPolicy keeps
float32 shards and state; mis-seeded probe generators are refused; resume through
torch.distributed.checkpoint is bit-exact at the same world size and reshards 2 -> 4.
"""

import os
import pathlib
import socket
import sys
import time

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)
try:
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
except ImportError:  # pragma: no cover - older torch
    pytest.skip("FSDP2 (torch.distributed.fsdp.fully_shard) is not available",
                allow_module_level=True)

pytestmark = [pytest.mark.usefixtures("torch_one_thread"),
              pytest.mark.skipif(sys.platform == "win32", reason="gloo spawn test is POSIX")]

FIELDS = ("mu", "nu", "G", "V", "H", "R")
HP = {"lr": 0.05, "betas": (0.75, 0.999), "quick_steps": 3}
STEPS, SAVE_AT, BATCH, SEED = 20, 10, 16, 1234


def _model(dtype=torch.float64):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3),
                               torch.nn.ReLU(), torch.nn.Linear(3, 1)).to(dtype)


def _batches(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(STEPS):
        x = torch.randn(BATCH, 5, generator=g, dtype=torch.float64)
        out.append((x.to(dtype), torch.sin(x.sum(1, keepdim=True)).to(dtype)))
    return out


def _alice(params, seed=SEED, **kw):
    from alice_torch import Alice

    return Alice(params, generator=torch.Generator().manual_seed(seed), **HP, **kw)


def _train(module, opt, batches, rank=0, world=1):
    n = BATCH // world
    for x, y in batches:
        x, y = x[rank * n:(rank + 1) * n], y[rank * n:(rank + 1) * n]

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(module(x), y)
            loss.backward()
            return loss
        opt.step(closure)


def _sharded(dtype=torch.float64, mp=None):
    model = _model(dtype)
    kw = {} if mp is None else {"mp_policy": mp}
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, **kw)
    fully_shard(model, **kw)
    return model


def _full(opt, model):
    """Parameters and state as full tensors (a collective: every rank calls it)."""
    ps = list(model.parameters())
    return {"params": [p.full_tensor().detach().clone() for p in ps],
            "state": [{f: opt.state[p][f].full_tensor().clone() for f in FIELDS} for p in ps],
            "t": opt.t}


def _state_bytes(opt):
    return sum(v._local_tensor.numel() * v._local_tensor.element_size()
               for st in opt.state.values() for v in st.values())


def _dcp_save(model, opt, path):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    sd = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)}
    dcp.save(sd, checkpoint_id=str(path))


def _dcp_load(path):
    """A new sharded model and optimiser resumed from the checkpoint at ``path``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    model = _sharded()
    with torch.no_grad():  # resumed weights must come from the checkpoint
        for p in model.parameters():
            p.zero_()
    opt = _alice(model.parameters(), seed=SEED + 99)  # generator state: from the checkpoint too
    sd = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)}
    assert opt.t == 0
    dcp.load(sd, checkpoint_id=str(path))
    set_model_state_dict(model, sd["model"])
    set_optimizer_state_dict(model, opt, sd["optim"])
    return model, opt


def _worker(rank, world, port, outdir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    out = {"strategies": set()}
    import alice_torch._batch as batch

    choose = batch.choose

    def recording(*args):  # which implementation ran each batch
        strategy = choose(*args)
        out["strategies"].add(type(strategy).__name__)
        return strategy
    batch.choose = recording
    try:
        out_dir = pathlib.Path(outdir)
        batches = _batches()
        # the fused path (the default for float64 CPU shards), with a checkpoint at SAVE_AT
        model = _sharded()
        opt = _alice(model.parameters())
        _train(model, opt, batches[:SAVE_AT], rank, world)
        out["at_save"] = _full(opt, model)
        if world == 2:
            _dcp_save(model, opt, out_dir / "ckpt")
        _train(model, opt, batches[SAVE_AT:], rank, world)
        out["fused"] = _full(opt, model)
        out["state_bytes"] = _state_bytes(opt)
        out["state_dtypes"] = sorted({str(v.dtype) for st in opt.state.values()
                                      for v in st.values()})
        out["attributes"] = opt.attributes()
        # the generic path
        model = _sharded()
        opt = _alice(model.parameters(), fused=False)
        _train(model, opt, batches, rank, world)
        out["generic"] = _full(opt, model)
        # resume from the world-2 checkpoint (same world: bit-exact; 4 ranks: resharded)
        dist.barrier()
        model, opt = _dcp_load(out_dir / "ckpt")
        out["loaded"] = _full(opt, model)
        _train(model, opt, batches[SAVE_AT:], rank, world)
        out["resumed"] = _full(opt, model)
        # a full (unsharded) state dict of one process, loaded into the shards
        plain = _model()
        popt = _alice(plain.parameters())
        _train(plain, popt, batches[:SAVE_AT])
        model = _sharded()
        opt = _alice(model.parameters())
        opt.load_state_dict(popt.state_dict())
        out["from_full"] = (_full(opt, model), _plain(popt, plain))
        if world == 2:
            # bfloat16 compute copies, float32 shards and state
            mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16)
            model = _sharded(torch.float32, mp)
            opt = _alice(model.parameters())
            _train(model, opt, _batches(torch.float32)[:6], rank, world)
            out["mp"] = {"param_dtypes": sorted({str(p.dtype) for p in model.parameters()}),
                         "state_dtypes": sorted({str(v.dtype) for st in opt.state.values()
                                                 for v in st.values()}),
                         "full": _full(opt, model)}
            # mis-seeded probe generators: refused at the first step, nothing changed
            model = _sharded()
            opt = _alice(model.parameters(), seed=SEED + rank)
            try:
                _train(model, opt, batches[:1], rank, world)
                out["misseeded"] = "no error"
            except RuntimeError as e:
                out["misseeded"] = str(e)
            out["misseeded_t"] = opt.t
        torch.save(out, out_dir / f"w{world}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback_ifname():
    names = [n for _, n in socket.if_nameindex()] if hasattr(socket, "if_nameindex") else []
    return next((n for n in ("lo", "lo0") if n in names), None)


def _spawn(world, outdir):
    import torch.multiprocessing as mp

    ctx = mp.spawn(_worker, args=(world, _free_port(), str(outdir)), nprocs=world, join=False)
    deadline = time.monotonic() + 150
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
            pytest.fail(f"FSDP workers (world {world}) did not finish in 150 s")
    return [torch.load(outdir / f"w{world}_rank{r}.pt", weights_only=False)
            for r in range(world)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """world -> the ranks' results (world 2 first: world 4 resumes its checkpoint), and the
    single-process references."""
    outdir = tmp_path_factory.mktemp("fsdp")
    mp = pytest.MonkeyPatch()
    if "GLOO_SOCKET_IFNAME" not in os.environ and _loopback_ifname():
        mp.setenv("GLOO_SOCKET_IFNAME", _loopback_ifname())  # stay on loopback
    try:
        out = {w: _spawn(w, outdir) for w in (2, 4)}
    finally:
        mp.undo()
    single = {}
    for fused in (None, False):
        model = _model()
        opt = _alice(model.parameters(), fused=fused)
        _train(model, opt, _batches()[:SAVE_AT])
        single[(fused, "at_save")] = _plain(opt, model)
        _train(model, opt, _batches()[SAVE_AT:])
        single[fused] = _plain(opt, model)
        single[(fused, "bytes")] = sum(v.numel() * v.element_size()
                                       for st in opt.state.values() for v in st.values())
        single[(fused, "attributes")] = opt.attributes()
    out["single"] = single
    return out


def _plain(opt, model):
    ps = list(model.parameters())
    return {"params": [p.detach().clone() for p in ps],
            "state": [{f: opt.state[p][f].clone() for f in FIELDS} for p in ps], "t": opt.t}


def _rel(a, b):
    s = b.abs().max().item()
    return (a - b).abs().max().item() / (s if s > 0 else 1.0)


def _worst(run, ref):
    worst = max(_rel(a, b) for a, b in zip(run["params"], ref["params"]))
    for sa, sb in zip(run["state"], ref["state"]):
        worst = max([worst] + [_rel(sa[f], sb[f]) for f in FIELDS])
    return worst


def _equal(a, b):
    return (a["t"] == b["t"] and all(torch.equal(x, y) for x, y in zip(a["params"], b["params"]))
            and all(torch.equal(sa[f], sb[f]) for sa, sb in zip(a["state"], b["state"])
                    for f in FIELDS))


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_agree_and_match_one_process(runs, world):
    ranks = runs[world]
    for key in ("fused", "generic", "resumed"):
        assert all(_equal(r[key], ranks[0][key]) for r in ranks[1:]), key
    for key, fused in (("fused", None), ("generic", False)):
        assert ranks[0][key]["t"] == STEPS
        worst = _worst(ranks[0][key], runs["single"][fused])
        print(f"FSDP2 {world} ranks, {key} path vs one process after {STEPS} batches: "
              f"max relative difference {worst:.2e}")
        assert worst <= 1e-6, (key, worst)
    # both implementations ran on the shards, and agree bit for bit as they do unsharded
    assert ranks[0]["strategies"] == {"Fused", "Generic"}
    assert _equal(ranks[0]["fused"], ranks[0]["generic"])


@pytest.mark.parametrize("world", [2, 4])
def test_state_is_sharded(runs, world):
    full = runs["single"][(None, "bytes")]
    per_rank = [r["state_bytes"] for r in runs[world]]
    print(f"state bytes per rank, world {world}: {per_rank} (one process: {full})")
    assert sum(per_rank) == full
    assert max(per_rank) <= full / world * 1.5  # uneven rows: FSDP's chunks
    assert runs[world][0]["state_dtypes"] == ["torch.float64"]
    ref = runs["single"][(None, "attributes")]
    for a, b in zip(runs[world][0]["attributes"], ref):
        assert a == pytest.approx(b, rel=1e-6)


def test_resume_through_dcp_is_bit_exact_and_reshards(runs):
    w2, w4 = runs[2][0], runs[4][0]
    # same world size: the loaded state and the continued trajectory are bit for bit
    assert _equal(w2["loaded"], w2["at_save"])
    assert _equal(w2["resumed"], w2["fused"])
    # 2 -> 4 ranks: the state arrives resharded bit for bit, and continues as one process
    assert _equal(w4["loaded"], w2["at_save"])
    worst = _worst(w4["resumed"], runs["single"][None])
    print(f"DCP 2 -> 4 ranks at batch {SAVE_AT}, vs one process at {STEPS}: {worst:.2e}")
    assert worst <= 1e-6
    # a full state dict of one process loads into the shards bit for bit (counter included)
    for r in runs[2] + runs[4]:
        sharded, full = r["from_full"]
        assert _equal({**sharded, "params": []}, {**full, "params": []})


def test_mixed_precision_policy_keeps_float32_shards_and_state(runs):
    r0, r1 = runs[2]
    assert r0["mp"]["param_dtypes"] == ["torch.float32"]
    assert r0["mp"]["state_dtypes"] == ["torch.float32"]
    assert _equal(r0["mp"]["full"], r1["mp"]["full"])
    assert r0["mp"]["full"]["t"] == 6


def test_misseeded_probe_generators_are_refused(runs):
    for r in runs[2]:
        assert "different probes" in r["misseeded"] and "manual_seed" in r["misseeded"]
        assert r["misseeded_t"] == 0


def test_state_for_dcp_without_a_closure():
    """torch.distributed.checkpoint's get/set_optimizer_state_dict initialise an optimiser
    without state by ``step()`` without a closure, every group at lr = 0: Alice creates its
    state from the parameters and counts no batch; at lr > 0 that call is still refused."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    model = _model()
    opt = _alice(model.parameters())
    with pytest.raises(TypeError, match="needs a closure"):
        opt.step()
    osd = get_optimizer_state_dict(model, opt)
    assert opt.t == 0 and opt.param_groups[0]["lr"] == HP["lr"]
    assert set(osd["state"]) == {n for n, _ in model.named_parameters()}
    for p in model.parameters():
        assert torch.equal(opt.state[p]["mu"], p.detach()) and not opt.state[p]["G"].any()
    assert "alice" not in osd["param_groups"][0]  # ordinary tensors: the usual state dict
