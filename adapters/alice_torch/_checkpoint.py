"""alice_torch.Alice's checkpoints: the ``'alice'`` entry of its state dict (counters, shared
hyperparameters, probe generator) and the checks and conversions a saved state dict goes
through before :meth:`alice_torch.Alice.load_state_dict` changes anything.
"""

from __future__ import annotations

from itertools import chain

import torch

from . import _groups
from ._numerics import state_dtype

__all__ = ["extra", "checked"]


def extra(opt) -> dict:
    """The ``'alice'`` entry: t, skipped, betas, quick_steps, nonfinite, generator state."""
    return {"t": opt.t, "skipped": opt.skipped, "betas": tuple(opt.betas),
            "quick_steps": opt.quick_steps, "nonfinite": opt.nonfinite,
            "generator": None if opt.generator is None else opt.generator.get_state()}


def checked(opt, state_dict: dict):
    """(torch's part of ``state_dict``, its ``'alice'`` entry or None, {parameter: state}):
    the per-parameter state tensors copied in the state dtype onto each parameter's device.

    Raises:
        ValueError: betas or quick_steps differ from ``opt``'s, parameter groups of other
            sizes, state for an unknown parameter id or of the wrong shape.
    """
    state_dict = dict(state_dict)
    alice = state_dict.pop("alice", None)
    saved_state = state_dict.get("state", {})
    if alice is not None:
        for k in ("betas", "quick_steps"):
            mine, theirs = _groups.shared(k, getattr(opt, k)), _groups.shared(k, alice[k])
            if theirs != mine:
                raise ValueError(f"checkpoint has {k}={theirs!r}, this optimiser {mine!r}")
    # Everything is checked and converted before anything changes (a refused checkpoint
    # leaves the optimiser as it was).
    saved_groups = state_dict["param_groups"]
    if len(saved_groups) != len(opt.param_groups) or any(
            len(a["params"]) != len(b["params"])
            for a, b in zip(saved_groups, opt.param_groups)):
        raise ValueError(f"checkpoint has parameter groups of sizes "
                         f"{[len(g['params']) for g in saved_groups]}, this optimiser "
                         f"{[len(g['params']) for g in opt.param_groups]}")
    id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                      chain.from_iterable(g["params"] for g in opt.param_groups)))
    loaded = {}
    for pid, st in saved_state.items():
        if pid not in id_map:
            raise ValueError(f"checkpoint state for unknown parameter id {pid!r}")
        p = id_map[pid]
        new = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                if tuple(v.shape) != tuple(p.shape):
                    raise ValueError(f"checkpoint {k} of parameter {pid} has shape "
                                     f"{tuple(v.shape)}, the parameter {tuple(p.shape)}")
                v = v.detach().to(device=p.device, dtype=state_dtype(p.dtype), copy=True)
            new[k] = v
        loaded[p] = new
    return state_dict, alice, loaded
