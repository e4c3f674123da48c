"""alice_torch.Alice's checkpoints: the ``'alice'`` entry of its state dict (counters, shared
hyperparameters, probe generator) and the checks and conversions a saved state dict goes
through before :meth:`alice_torch.Alice.load_state_dict` changes anything.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from copy import deepcopy
from itertools import chain
from typing import NamedTuple

import torch

from alice_ref.checks import check_count
from alice_ref.core import FIELDS

from . import _dtensor, _groups
from ._numerics import state_dtype

__all__ = ["extra", "checked", "Loaded"]


def extra(opt) -> dict:
    """The ``'alice'`` entry: t, skipped, betas, quick_steps, nonfinite, generator state."""
    return {"t": opt.t, "skipped": opt.skipped, "betas": tuple(opt.betas),
            "quick_steps": opt.quick_steps, "nonfinite": opt.nonfinite,
            "generator": None if opt.generator is None else opt.generator.get_state()}


class Loaded(NamedTuple):
    """A checked state dict, converted and ready to install (nothing of it is installed)."""

    param_groups: list  # the new param_groups (the optimiser's own parameters in them)
    state: dict  # parameter -> {field: tensor in the state dtype, on the parameter's device}
    counters: tuple | None  # (t, skipped), or None: no 'alice' entry
    generator: object  # the probe generator state to apply, or None
    warnings: list  # messages to warn with after the load


def checked(opt, state_dict) -> Loaded:
    """Everything :meth:`alice_torch.Alice.load_state_dict` installs, checked and converted
    first, so that a refused state dict leaves the optimiser exactly as it was.

    Checks: the structure (a dict with 'state' and 'param_groups'); the ``'alice'`` entry (t
    and skipped integers >= 0, betas and quick_steps equal to ``opt``'s, a generator state that
    the probe generator accepts); each group (as many, of the same sizes; every per-group
    hyperparameter present and valid, :class:`alice_ref.AliceConfig`, its lr a valid sigma,
    all of them carried by the state dtype, :meth:`alice_ref.AliceConfig.check_dtype`); each
    parameter's state (none, or exactly the fields mu, nu, G, V, H, R, each a real floating
    tensor of the parameter's shape, finite once in the state dtype, V, H, R >= 0).

    Raises:
        TypeError: a state dict that is not a dict, a field that is not a tensor or not of a
            real floating dtype.
        ValueError: anything else above that does not hold (the message names it).
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
    for k in ("state", "param_groups"):
        if k not in state_dict:
            raise ValueError(f"state_dict has no {k!r} entry (not an optimiser state dict)")
    alice = state_dict.get("alice")
    if alice is None:  # torch.distributed.checkpoint keeps only the groups: Alice's entry is
        alice = _group_extra(state_dict["param_groups"])  # there for DTensor parameters
    counters = gen_state = None
    notes = []
    if alice is not None:
        counters, gen_state = _check_extra(opt, alice, notes)
    else:
        notes.append("state dict without Alice's 'alice' entry: batch counter reset to 0")
    groups = _check_groups(opt, state_dict["param_groups"])
    saved_state = state_dict["state"]
    if not isinstance(saved_state, Mapping):
        raise TypeError(f"state_dict['state'] must be a dict, got "
                        f"{type(saved_state).__name__}")
    id_map = dict(zip(chain.from_iterable(g["params"] for g in state_dict["param_groups"]),
                      chain.from_iterable(g["params"] for g in opt.param_groups)))
    loaded = {}
    for pid, st in saved_state.items():
        if pid not in id_map:
            raise ValueError(f"checkpoint state for unknown parameter id {pid!r}")
        new = _check_param_state(pid, st, id_map[pid])
        if new is not None:
            loaded[id_map[pid]] = new
    return Loaded(groups, loaded, counters, gen_state, notes)


def _group_extra(groups):
    """The ``'alice'`` entry that :meth:`alice_torch.Alice.state_dict` also puts in every
    parameter group when the parameters are DTensors (get_optimizer_state_dict keeps only
    'state' and 'param_groups'), or None."""
    if isinstance(groups, (list, tuple)):
        for g in groups:
            if isinstance(g, Mapping) and g.get("alice") is not None:
                return g["alice"]
    return None


def _check_extra(opt, alice, notes):
    if not isinstance(alice, Mapping):
        raise TypeError(f"checkpoint 'alice' entry must be a dict, got {type(alice).__name__}")
    for k in ("t", "skipped", "betas", "quick_steps"):
        if k not in alice:
            raise ValueError(f"checkpoint 'alice' entry has no {k!r}")
    for k in ("betas", "quick_steps"):
        mine, theirs = _groups.shared(k, getattr(opt, k)), _groups.shared(k, alice[k])
        if theirs != mine:
            raise ValueError(f"checkpoint has {k}={theirs!r}, this optimiser {mine!r}")
    counters = tuple(check_count(f"checkpoint {k}", _groups.scalar(alice[k]))
                     for k in ("t", "skipped"))
    gen_state = alice.get("generator")
    if gen_state is not None:
        if not isinstance(gen_state, torch.Tensor) or gen_state.dtype != torch.uint8:
            raise TypeError(f"checkpoint generator state must be a uint8 tensor "
                            f"(torch.Generator.get_state()), got {type(gen_state).__name__}")
        if opt.generator is None:
            notes.append("the checkpoint holds a probe generator state but this optimiser "
                         "draws from torch's default generator; restore that with "
                         "torch.set_rng_state")
            gen_state = None
        else:
            trial = torch.Generator(device=opt.generator.device)
            try:
                trial.set_state(gen_state)
            except (RuntimeError, TypeError, ValueError) as e:
                raise ValueError(f"checkpoint generator state cannot be applied to the probe "
                                 f"generator (device {opt.generator.device}): {e}") from None
            gen_state = gen_state.clone()
    return counters, gen_state


def _check_groups(opt, saved_groups) -> list:
    """The new param_groups: each saved group's values (deep-copied, validated) with this
    optimiser's parameters (torch's rule)."""
    if not isinstance(saved_groups, (list, tuple)) or not all(
            isinstance(g, Mapping) and "params" in g for g in saved_groups):
        raise ValueError("checkpoint param_groups must be a list of dicts with 'params'")
    if len(saved_groups) != len(opt.param_groups) or any(
            len(a["params"]) != len(b["params"])
            for a, b in zip(saved_groups, opt.param_groups)):
        raise ValueError(f"checkpoint has parameter groups of sizes "
                         f"{[len(g['params']) for g in saved_groups]}, this optimiser "
                         f"{[len(g['params']) for g in opt.param_groups]}")
    out = []
    for i, (saved, mine) in enumerate(zip(saved_groups, opt.param_groups)):
        where = f"checkpoint parameter group {i}"
        missing = [k for k in _groups.GROUP_KEYS if k not in saved]
        if missing:
            raise ValueError(f"{where} has no {', '.join(map(repr, missing))} (not a state "
                             f"dict of alice_torch.Alice?)")
        try:
            _groups.check_shared(saved, opt)
            cfg = _groups.make_config(saved, opt._base)
            sigma = _groups.sigma(i, saved)
            for dt in sorted({str(state_dtype(p.dtype)) for p in mine["params"]}):
                cfg.check_dtype(dt.replace("torch.", ""), sigma)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{where}: {e}") from None
        new = deepcopy({k: v for k, v in saved.items() if k not in ("params", "alice")})
        new["params"] = mine["params"]
        if "param_names" in mine and "param_names" not in new:
            new["param_names"] = mine["param_names"]
        new.setdefault(_groups.BOUNDS_LR, _groups.scalar(new["lr"]))
        out.append(new)
    return out


def _check_param_state(pid, st, p):
    """The state of one parameter in the state dtype on its device, or None for none."""
    if not isinstance(st, Mapping):
        raise TypeError(f"checkpoint state of parameter {pid} must be a dict, got "
                        f"{type(st).__name__}")
    if not st:
        return None
    if set(st) != set(FIELDS):
        raise ValueError(f"checkpoint state of parameter {pid} has fields {sorted(st)}; "
                         f"Alice's state is exactly {', '.join(FIELDS)} (a state dict of "
                         f"another optimiser?)")
    new = {}
    dt = state_dtype(p.dtype)
    for f in FIELDS:
        v = st[f]
        what = f"checkpoint {f} of parameter {pid}"
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{what} must be a tensor, got {type(v).__name__}")
        if not v.is_floating_point():
            raise TypeError(f"{what} has dtype {v.dtype}; Alice's state is real floating "
                            f"point ({dt} for this parameter)")
        if tuple(v.shape) != tuple(p.shape):
            raise ValueError(f"{what} has shape {tuple(v.shape)}, the parameter "
                             f"{tuple(p.shape)}")
        if _dtensor.is_dtensor(p):  # FSDP2: this rank's shard (resharded if need be)
            x = _dtensor.load_field(v, p, dt)
        else:
            x = torch.empty(p.shape, dtype=dt, device=p.device)
            x.copy_(v.detach())
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{what} is not finite in {dt} (NaN or Inf)")
        if f in ("V", "H", "R") and bool((x < 0).any()):
            raise ValueError(f"{what} has negative entries (an average of squares or "
                             f"magnitudes is >= 0)")
        new[f] = _dtensor.wrap(x, p) if _dtensor.is_dtensor(p) else x
    return new


def with_extra(opt, sd) -> dict:
    """torch's state dict plus the ``'alice'`` entry; with DTensor parameters (FSDP2) also in
    every parameter group, where torch.distributed.checkpoint's get_optimizer_state_dict keeps
    it (it keeps only 'state' and 'param_groups')."""
    sd["alice"] = extra(opt)
    if _dtensor.any_dtensor(opt._params()):
        for g in sd["param_groups"]:
            g["alice"] = extra(opt)
    return sd


def hooked_state_dict(opt, build) -> dict:
    """torch's state_dict protocol around ``build()`` (torch's dict plus Alice's entry): the
    pre-hooks, then ``build`` with torch's own hook calls switched off, then the post-hooks on
    the complete dict (one that returns a dict replaces it)."""
    pre, post = opt._optimizer_state_dict_pre_hooks, opt._optimizer_state_dict_post_hooks
    for hook in list(pre.values()):
        hook(opt)
    opt._optimizer_state_dict_pre_hooks = OrderedDict()
    opt._optimizer_state_dict_post_hooks = OrderedDict()
    try:
        sd = build()
    finally:
        opt._optimizer_state_dict_pre_hooks, opt._optimizer_state_dict_post_hooks = pre, post
    for hook in list(post.values()):
        out = hook(opt, sd)
        if out is not None:
            sd = out
    return sd
