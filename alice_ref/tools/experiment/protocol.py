"""The protocol of the paper's experiment scripts (official ``experiments/resnet18/``).

Presets:

- ``methods``: T1 Adam (lr 1e-3), T2 SGD-momentum (lr 0.1, momentum 0.9), T3 AdaHessian (lr 0.15,
  betas (0.9, 0.999), eps 1e-8) and Alice (lr 5e-3, lr_max 1e-2, phi 0.1, omega 1, limit 'adam',
  w1 = w2 = 0, quick_steps 0) in four variants: T4 glass only (hess_comp 'zero'), T5 'abs'
  Hessian without glass, T6 glass + 'abs', T7 'rms' Hessian without glass. 90 epochs, lr x 0.1
  from epoch 80, 30 seeds.
- ``naq``: the ablation: the four Alice variants with limit 'fixed', lr = lr_max = 5e-3 and
  phi in {1.0, 0.1}; 60 epochs (no lr drop: none is named for it), 10 seeds.
- ``power-law``: T6 as in ``methods``; per layer group (stem, layer1-4, linear) the mean glass
  density rho and curvature h of Alice's state at every log point, and after every epoch the
  variance exponent p and the two-term fit a t + b t^2 of E||g(nu + t z) - g(nu)||^2 (R1) on a
  fixed training batch.

Common: CIFAR-10, the masked ResNet-18 (:mod:`.models`), augmentation pad 4 + random flip +
random crop 32, no normalisation, batch 100, cross-entropy; every 100 steps a log row with the
train loss and accuracy averaged over those batches and the full test set's in eval mode.

Reduced scale (no ``--data``): the same protocol on scikit-learn's embedded 8x8 digits with the
small masked ResNet (one block per stage, widths 8-64), pad 1 + crop 8 (no flip: digits are not
mirror-symmetric), batch 100 (14 steps per epoch), 20 epochs with the drop at epoch 18 (80/90 of
the run), 5 seeds, a log row every 5 steps (``naq``: 14 epochs, 3 seeds; ``power-law``: 2
seeds); the hyperparameters are the scripts'.

Resuming: after every epoch each (method, seed) run saves a checkpoint (model, optimiser,
generators, log rows); a rerun skips finished runs and continues partial ones from their last
epoch, giving the same rows as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings

import numpy as np

from alice_ref.tools._tasks import need_torch

from .models import GROUPS, layer_group, resnet18_masked, small_resnet_masked

__all__ = ["ALICE_COMMON", "METHODS", "NAQ_METHODS", "PRESETS", "Scale", "methods_of",
           "make_optimizer", "run_one", "scale_of", "COLUMNS"]

# The scripts' Alice hyperparameters (T4-T7), shared by every variant.
ALICE_COMMON = dict(lr=5e-3, lr_max=1e-2, phi=0.1, omega=1.0, limit_method="adam", w1=0.0,
                    w2=0.0, quick_steps=0)
ALICE_VARIANTS = {  # T4-T7: (hess_comp, grad_glass)
    "T4": ("zero", True), "T5": ("abs", False), "T6": ("abs", True), "T7": ("rms", False)}
METHODS = {
    "T1": {"label": "T1 Adam", "kind": "adam", "lr": 1e-3},
    "T2": {"label": "T2 SGD-momentum", "kind": "sgdm", "lr": 0.1, "momentum": 0.9},
    "T3": {"label": "T3 AdaHessian", "kind": "adahessian", "lr": 0.15, "betas": (0.9, 0.999),
           "eps": 1e-8},
    "T4": {"label": "T4 Alice glass only", "kind": "alice", **ALICE_COMMON,
           "hess_comp": "zero", "grad_glass": True},
    "T5": {"label": "T5 Alice abs Hessian", "kind": "alice", **ALICE_COMMON,
           "hess_comp": "abs", "grad_glass": False},
    "T6": {"label": "T6 Alice glass + abs", "kind": "alice", **ALICE_COMMON,
           "hess_comp": "abs", "grad_glass": True},
    "T7": {"label": "T7 Alice rms Hessian", "kind": "alice", **ALICE_COMMON,
           "hess_comp": "rms", "grad_glass": False},
}
NAQ_METHODS = {
    f"NAQ-phi{phi:g}-{t}": {"label": f"NAQ phi {phi:g} {METHODS[t]['label'][3:]}",
                            **{**METHODS[t], "limit_method": "fixed", "lr": 5e-3,
                               "lr_max": 5e-3, "phi": phi}}
    for phi in (1.0, 0.1) for t in ("T4", "T5", "T6", "T7")}


@dataclasses.dataclass(frozen=True)
class Scale:
    """One preset at one scale: schedule, data handling, model and logging."""

    epochs: int
    drop_epoch: int | None  # lr x 0.1 from this epoch (0-based count of epochs done)
    batch: int
    log_every: int  # steps per log row
    seeds: int
    model: str  # 'resnet18' or 'small'
    pad: int
    flip: bool


PRESETS = ("methods", "naq", "power-law")
_REAL = {"methods": Scale(90, 80, 100, 100, 30, "resnet18", 4, True),
         "naq": Scale(60, None, 100, 100, 10, "resnet18", 4, True),
         "power-law": Scale(90, 80, 100, 100, 3, "resnet18", 4, True)}
_DIGITS = {"methods": Scale(20, 18, 100, 5, 5, "small", 1, False),
           "naq": Scale(14, None, 100, 5, 3, "small", 1, False),
           "power-law": Scale(20, 18, 100, 5, 2, "small", 1, False)}
COLUMNS = ["method", "seed", "epoch", "step", "evaluations", "lr", "train_loss", "train_acc",
           "test_loss", "test_acc", "seconds"]


def scale_of(preset: str, digits: bool) -> Scale:
    """The preset's schedule at real scale (CIFAR-10) or reduced scale (digits).

    Example:
        >>> scale_of("methods", digits=False).epochs, scale_of("naq", digits=False).seeds
        (90, 10)
    """
    return (_DIGITS if digits else _REAL)[preset]


def methods_of(preset: str) -> dict:
    """The methods a preset runs, name -> hyperparameters.

    Example:
        >>> list(methods_of("methods")), len(methods_of("naq")), list(methods_of("power-law"))
        (['T1', 'T2', 'T3', 'T4', 'T5', 'T6', 'T7'], 8, ['T6'])
    """
    if preset == "methods":
        return dict(METHODS)
    if preset == "naq":
        return dict(NAQ_METHODS)
    return {"T6": METHODS["T6"]}


def build_model(scale: Scale, seed: int, in_channels: int):
    if scale.model == "resnet18":
        return resnet18_masked(seed, in_channels=in_channels)
    return small_resnet_masked(seed, in_channels=in_channels)


def make_optimizer(spec: dict, model, seed: int):
    """The optimiser of a method spec over the model's parameters, and its generator (or None).

    Alice gets one parameter group per layer group (so its attributes are per group).
    """
    torch = need_torch()
    kind = spec["kind"]
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec["lr"]), None
    if kind == "sgdm":
        return torch.optim.SGD(model.parameters(), lr=spec["lr"],
                               momentum=spec["momentum"]), None
    gen = torch.Generator().manual_seed(int(seed) + 12345)
    if kind == "adahessian":
        from .adahessian import make_adahessian

        return make_adahessian(model.parameters(), lr=spec["lr"], betas=spec["betas"],
                               eps=spec["eps"], generator=gen), gen
    import alice_torch

    groups = [{"params": [p for n, p in model.named_parameters() if layer_group(n) == g],
               "name": g} for g in GROUPS]
    groups = [g for g in groups if g["params"]]
    kw = {k: spec[k] for k in ("lr", "lr_max", "phi", "omega", "limit_method", "w1", "w2",
                               "quick_steps", "hess_comp", "grad_glass")}
    return alice_torch.Alice(groups, generator=gen, **kw), gen


def _cost(kind: str) -> int:
    """Gradient evaluations per step: Alice with q = 0 samples every batch (3, R8), AdaHessian
    a gradient and a Hessian-vector product (2), Adam and SGD 1."""
    return {"alice": 3, "adahessian": 2}.get(kind, 1)


def augment(torch, x, pad, flip, gen):
    """Zero-pad by ``pad``, random crop back to size, random horizontal flip (per image)."""
    n, _, h, w = x.shape
    if pad:
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
        x = xp[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None],
               rows, cols]
    if flip:
        f = torch.rand(n, generator=gen) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    return x


def _evaluate(torch, model, x, y, batch=500):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            out = model(x[i:i + batch])
            loss += float(torch.nn.functional.cross_entropy(out, y[i:i + batch], reduction="sum"))
            correct += int((out.argmax(1) == y[i:i + batch]).sum())
    model.train()
    return loss / len(y), correct / len(y)


def _power_law(torch, model, x, y, lr):
    """Per layer group: the variance exponent and the two-term fit on one fixed batch (R1)."""
    import alice_torch.problems as tp

    from alice_ref.tools.diagnostics import power_law as pl
    from alice_ref.tools.diagnostics.problem import Problem

    model.eval()
    try:
        vg, params, groups, loss = tp.from_torch(model, torch.nn.functional.cross_entropy, x, y)
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        by_group = {}
        for name, idx in groups.items():
            by_group.setdefault(layer_group(name), []).extend(idx)
        problem = Problem(vg, params, {g: by_group[g] for g in GROUPS if g in by_group}, loss)
        rep = pl.power_law_sweep(problem, [lr * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)],
                                 n_probes=4, seed=0)
        del names
    finally:
        model.train()
    out = {}
    for g in rep.groups:
        fit = getattr(g, "two_term", None)
        out[g.name] = {"p": g.p, "p_se": g.se,
                       "a": None if fit is None else fit["a"],
                       "b": None if fit is None else fit["b"],
                       "t_star": None if fit is None else fit["t_star"]}
    return out


def _save(torch, path, obj):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)  # atomic: an interruption leaves the previous checkpoint


def run_one(preset: str, name: str, spec: dict, seed: int, scale: Scale, data, out_dir: str, *,
            tick=lambda n: None, stop_after_epochs: int | None = None) -> dict:
    """One (method, seed) run of a preset, resumable; returns {'status', 'rows', 'power'}.

    status is 'done' (finished now), 'skipped' (finished before), or 'interrupted' (stopped
    after ``stop_after_epochs`` epochs of this call, checkpoint saved). ``data`` is
    (x_train, y_train, x_test, y_test) as float tensors in [0, 1] and int64 labels.
    """
    torch = need_torch()
    ck_dir = os.path.join(out_dir, "checkpoints")
    os.makedirs(ck_dir, exist_ok=True)
    ck = os.path.join(ck_dir, f"{name}_seed{seed}.pt")
    done = os.path.join(ck_dir, f"{name}_seed{seed}.done.pt")
    if os.path.exists(done):
        d = torch.load(done, weights_only=False)
        tick(d["total_steps"])
        return {"status": "skipped", "rows": d["rows"], "power": d["power"]}
    xtr, ytr, xte, yte = data
    n = len(ytr)
    steps_per_epoch = n // scale.batch if n >= scale.batch else 1
    batch = min(scale.batch, n)
    model = build_model(scale, seed, xtr.shape[1])
    opt, ogen = make_optimizer(spec, model, seed)
    base_lr = [g["lr"] for g in opt.param_groups]
    gen = torch.Generator().manual_seed(1000 * int(seed) + 7)  # shuffling and augmentation
    state = {"epoch": 0, "step": 0, "evals": 0, "rows": [], "power": [], "acc": [0.0, 0.0, 0],
             "seconds": 0.0}
    if os.path.exists(ck):
        c = torch.load(ck, weights_only=False)
        model.load_state_dict(c["model"])
        opt.load_state_dict(c["optimizer"])
        gen.set_state(c["gen"])
        if ogen is not None:
            ogen.set_state(c["ogen"])
        if spec["kind"] == "alice":
            opt.t = c["alice_t"] if "alice_t" in c else opt.t
        state = c["state"]
        tick(state["step"])
    cost = _cost(spec["kind"])
    F = torch.nn.functional
    fixed = (xtr[:batch], ytr[:batch])  # the power-law preset's probe batch (no augmentation)
    epochs_here = 0
    model.train()
    while state["epoch"] < scale.epochs:
        if stop_after_epochs is not None and epochs_here >= stop_after_epochs:
            return {"status": "interrupted", "rows": state["rows"], "power": state["power"]}
        t0 = time.perf_counter()
        factor = 0.1 if scale.drop_epoch is not None and state["epoch"] >= scale.drop_epoch \
            else 1.0
        for g, lr0 in zip(opt.param_groups, base_lr):
            g["lr"] = lr0 * factor
        perm = torch.randperm(n, generator=gen)
        for k in range(steps_per_epoch):
            idx = perm[k * batch:(k + 1) * batch]
            xb = augment(torch, xtr[idx], scale.pad, scale.flip, gen)
            yb = ytr[idx]
            last = {}

            def closure(xb=xb, yb=yb, last=last):
                opt.zero_grad()
                out = model(xb)
                loss = F.cross_entropy(out, yb)
                if spec["kind"] == "adahessian":
                    with warnings.catch_warnings():  # create_graph=True, as AdaHessian needs
                        warnings.simplefilter("ignore", UserWarning)
                        loss.backward(create_graph=True)
                else:
                    loss.backward()
                last["loss"] = float(loss.detach())
                last["acc"] = float((out.argmax(1) == yb).float().mean())
                return loss

            opt.step(closure)
            state["step"] += 1
            state["evals"] += cost
            a = state["acc"]
            a[0], a[1], a[2] = a[0] + last["loss"], a[1] + last["acc"], a[2] + 1
            tick(1)
            if state["step"] % scale.log_every == 0:
                tl, ta = _evaluate(torch, model, xte, yte)
                row = {"method": name, "seed": seed, "epoch": state["epoch"] + (k + 1)
                       / steps_per_epoch, "step": state["step"], "evaluations": state["evals"],
                       "lr": opt.param_groups[0]["lr"], "train_loss": a[0] / a[2],
                       "train_acc": a[1] / a[2], "test_loss": tl, "test_acc": ta,
                       "seconds": round(state["seconds"] + time.perf_counter() - t0, 3)}
                if spec["kind"] == "alice" and preset == "power-law":
                    for g, at in zip(opt.param_groups, opt.attributes()):
                        row[f"rho_{g['name']}"] = at["glass_density"]
                        row[f"h_{g['name']}"] = at["curvature"]
                state["rows"].append(row)
                state["acc"] = [0.0, 0.0, 0]
        if preset == "power-law":
            pw = _power_law(torch, model, *fixed, opt.param_groups[0]["lr"])
            state["power"].append({"epoch": state["epoch"] + 1, "groups": pw})
        state["epoch"] += 1
        state["seconds"] += time.perf_counter() - t0
        epochs_here += 1
        c = {"model": model.state_dict(), "optimizer": opt.state_dict(), "gen": gen.get_state(),
             "ogen": None if ogen is None else ogen.get_state(), "state": state}
        if spec["kind"] == "alice":
            c["alice_t"] = opt.t
        _save(torch, ck, c)
    _save(torch, done, {"rows": state["rows"], "power": state["power"],
                        "total_steps": state["step"]})
    os.remove(ck)
    return {"status": "done", "rows": state["rows"], "power": state["power"]}


def summarise(rows_by_method: dict) -> list[dict]:
    """Final log row per seed, then mean and std over seeds, per method."""
    out = []
    for name, rows in rows_by_method.items():
        finals = {}
        for r in rows:
            if r["seed"] not in finals or r["step"] > finals[r["seed"]]["step"]:
                finals[r["seed"]] = r
        f = list(finals.values())
        rec = {"method": name, "n_seeds": len(f)}
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            v = np.array([r[key] for r in f if r[key] is not None and math.isfinite(r[key])])
            rec[f"{key}_mean"] = float(v.mean()) if v.size else math.nan
            rec[f"{key}_std"] = float(v.std(ddof=1)) if v.size > 1 else 0.0
        rec["evaluations"] = int(max(r["evaluations"] for r in f)) if f else 0
        out.append(rec)
    return out
