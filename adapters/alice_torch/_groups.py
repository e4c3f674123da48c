"""Parameter groups of alice_torch.Alice: which hyperparameters a group may set, their
validated :class:`alice_ref.core.AliceConfig`, the trainable parameters in group order, and
their per-parameter state in ``optimizer.state`` (fields :data:`alice_ref.core.FIELDS`).

Validation is :class:`alice_ref.core.AliceConfig`'s and :func:`alice_ref.checks.check_lr`'s;
nothing here checks a scalar by hand.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from alice_ref.checks import check_lr
from alice_ref.core import FIELDS, AliceConfig, AliceState, params_of

from . import _dtensor
from ._numerics import state_dtype

__all__ = ["GROUP_KEYS", "SHARED_KEYS", "BOUNDS_LR", "Group", "scalar", "shared",
           "check_shared", "check_no_duplicates", "make_config", "group_config", "sigma",
           "trainable",
           "ensure_state", "initial_state", "has_state", "state_of", "commit", "load",
           "centre"]

# Hyperparameters a parameter group may set for itself. betas and quick_steps are shared by all
# groups because they decide, for the whole model, whether a batch is a sample or a quick step.
GROUP_KEYS = ("lr", "lr_min", "lr_max", "eps", "w1", "w2", "phi", "omega", "limit_method",
              "scale_bounds_with_lr", "hess_comp", "grad_glass")
SHARED_KEYS = ("betas", "quick_steps", "nonfinite")
# Key in a parameter group: the lr at which that group's lr_min / lr_max were given. With
# scale_bounds_with_lr the bounds are lr_min/bounds_lr * lr and lr_max/bounds_lr * lr
# (AliceConfig.bounds), so an lr scheduler moves them.
BOUNDS_LR = "bounds_lr"


class Group(NamedTuple):
    """The trainable part of one parameter group."""

    index: int  # position in optimizer.param_groups
    group: dict  # the param group itself
    params: list  # its parameters with requires_grad, in order
    names: list  # how NonFiniteGradientError names each of them


def scalar(x):
    """Group values may be 0-d tensors (as in the official code); the core takes Python scalars."""
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        return x.item()
    return x


def shared(key, value):
    """Comparable form of an optimiser-wide hyperparameter (betas may come as a list)."""
    if key == "betas":
        try:
            return tuple(float(scalar(b)) for b in value)
        except (TypeError, ValueError):
            return value
    return value


def check_shared(param_group: dict, opt) -> None:
    """ValueError if ``param_group`` sets a shared hyperparameter unlike the optimiser."""
    for k in SHARED_KEYS:
        if k in param_group and shared(k, param_group[k]) != shared(k, getattr(opt, k)):
            raise ValueError(f"{k} is shared by all parameter groups (it sets the sample/"
                             f"quick schedule of the whole model); got {param_group[k]!r} "
                             f"for a group, {getattr(opt, k)!r} for the optimiser")


def check_no_duplicates(param_group: dict, param_groups) -> None:
    """ValueError if ``param_group`` lists a parameter twice, or one of ``param_groups``' (it
    would be updated twice per batch; torch only warns for the first case)."""
    if not isinstance(param_group, dict) or "params" not in param_group:
        return  # torch's own errors
    params = param_group["params"]
    if isinstance(params, torch.Tensor):
        params = [params]
    elif isinstance(params, set):
        return  # torch refuses sets itself (they have no order)
    else:
        params = list(params)
        param_group["params"] = params  # a generator can be read once only
    seen = {}
    for j, p in enumerate(params):
        if isinstance(p, tuple) and len(p) == 2:  # (name, parameter)
            p = p[1]
        if isinstance(p, torch.Tensor):
            if id(p) in seen:
                raise ValueError(f"parameter #{j} of the group is the same tensor as #"
                                 f"{seen[id(p)]}: a parameter may appear once (it would be "
                                 f"updated twice per batch)")
            seen[id(p)] = j
    for i, g in enumerate(param_groups):
        for p in g["params"]:
            if id(p) in seen:
                raise ValueError(f"some parameters appear in more than one parameter group "
                                 f"(torch's wording): parameter #{seen[id(p)]} of the new group "
                                 f"is already in parameter group {i}")


def make_config(group, base: AliceConfig) -> AliceConfig:
    """The validated config of a group: its own keys, the shared ones of ``base``, and lr =
    the group's bounds lr (the lr its lr_min / lr_max were given at)."""
    vals = {k: scalar(group[k]) for k in GROUP_KEYS}
    vals["lr"] = scalar(group.get(BOUNDS_LR, vals["lr"]))
    return AliceConfig(betas=base.betas, quick_steps=base.quick_steps, nonfinite=base.nonfinite,
                       **vals)


def group_config(cache: dict, i: int, group, base: AliceConfig) -> AliceConfig:
    """:func:`make_config`, cached on the group's values (a scheduler changes only lr, which is
    sigma, not part of the config); errors name the group."""
    key = tuple(scalar(group[k]) for k in GROUP_KEYS[1:]) + (
        scalar(group.get(BOUNDS_LR, group["lr"])),)
    cfg = cache.get(key)
    if cfg is None:
        try:
            cfg = make_config(group, base)
        except (TypeError, ValueError) as e:
            raise type(e)(f"parameter group {i}: {e}") from None
        cache[key] = cfg
    return cfg


def frozen(group) -> bool:
    """lr = 0 exactly (e.g. the end of PolynomialLR, LinearLR(end_factor=0), CosineAnnealingLR
    at T_max): sigma = 0 gives no probe and no step, so the group sits the batch out: its
    parameters stay at mu, its state is unchanged, and the batch is still counted
    (docs/torch.md#learning-rate-zero)."""
    lr = scalar(group["lr"])
    return isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr == 0


def sigma(i: int, group) -> float:
    """The group's current lr, the perturbation length sigma (finite and > 0)."""
    return check_lr(scalar(group["lr"]), name=f"parameter group {i}: lr (sigma)")


def trainable(param_groups) -> list[Group]:
    """The parameters with requires_grad, per group, in param-group order; the official code
    leaves the others alone entirely."""
    out = []
    for i, group in enumerate(param_groups):
        names = group.get("param_names")
        ps, ns = [], []
        for j, p in enumerate(group["params"]):
            if p.requires_grad:
                ps.append(p)
                ns.append(repr(names[j]) if names else
                          f"#{j} of group {i} (shape {tuple(p.shape)}, {p.dtype})")
        out.append(Group(i, group, ps, ns))
    return out


def ensure_state(state, params) -> None:
    """Initial state (:func:`initial_state`) for parameters that have none."""
    for p in params:
        if not has_state(state, p):
            state[p] = initial_state(p)


def has_state(state, p) -> bool:
    """Whether ``state`` (optimizer.state) holds Alice's state for ``p``; never creates an
    entry (optimizer.state is a defaultdict)."""
    st = state.get(p)
    return st is not None and "mu" in st


def initial_state(p, value=None) -> dict:
    """A new state dict for ``p`` (:func:`alice_ref.core.init`: mu = nu = the parameter, or
    ``value``, in the state dtype; averages +0), each field in its own contiguous storage (the
    fused path updates them in place), made without temporaries: 6 arrays of p's size, no
    more (the first batch's peak memory)."""
    if _dtensor.is_dtensor(p):  # FSDP2: the local shard's state, as DTensors like p
        return _dtensor.initial_state(p, value)
    x = p.detach() if value is None else value.detach()
    dt = state_dtype(p.dtype)
    mu = torch.empty(p.shape, dtype=dt, device=p.device)
    mu.copy_(x)
    st = {"mu": mu, "nu": mu.clone()}
    for f in FIELDS[2:]:
        st[f] = torch.zeros(p.shape, dtype=dt, device=p.device)
    return st


def state_of(state, params, t: int, skipped: int) -> AliceState:
    """The :class:`alice_ref.core.AliceState` of ``params`` (their tensors, not copies)."""
    return AliceState(t, *(tuple(state[p][f] for p in params) for f in FIELDS), skipped)


def commit(state, params, new: AliceState) -> None:
    """Store the fields of ``new`` in ``state`` (optimizer.state), parameter by parameter."""
    for k, p in enumerate(params):
        st = state[p]
        for f in FIELDS:
            st[f] = getattr(new, f)[k]


def load(params, values) -> None:
    """Parameters <- values (copied, cast to each parameter's dtype)."""
    with torch.no_grad():
        for p, x in zip(params, values):
            p.copy_(x)


def centre(params, state: AliceState) -> None:
    """Parameters <- mu of ``state``, in their own dtypes (:func:`alice_ref.params_of`)."""
    load(params, params_of(state, like=params))
