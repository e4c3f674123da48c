"""torch's conventions for optimisers, checked for alice_torch.Alice: the standard
constructor flags (maximize, foreach, differentiable, capturable, a weight_decay alias of w2),
complex parameters refused with torch's error type, and step()'s entry checks (a closure, the
betas read back from the groups, where torch's momentum schedules write them).
"""

from __future__ import annotations

import torch

from alice_ref._atomic import commit_section
from alice_ref.checks import check_bool, check_real

from . import _groups

__all__ = ["standard_flags", "refuse_complex", "step_entry", "dcp_init"]

_scalar = _groups.scalar

_WHY_CLOSURE = (
    "Alice.step() needs a closure: Alice evaluates the gradient itself, at nu + sigma z, "
    "nu - sigma z and nu on a sample step (at nu on a quick step), so a gradient computed "
    "before step() (loss.backward(); opt.step(), or GradScaler's scaler.step(opt)) cannot be "
    "used. Pass one of\n"
    "  opt.step((lambda: model(x), lambda out: loss_fn(out, y)))  # returns (loss, outputs)\n"
    "  def closure():\n"
    "      opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); return loss\n"
    "  opt.step(closure)  # returns the loss\n"
    "For mixed precision run the model under torch.autocast(..., dtype=torch.bfloat16) inside "
    "the closure, without a GradScaler (docs/torch.md#mixed-precision).")


def standard_flags(params, lr, w2, weight_decay, maximize, foreach, differentiable,
                    capturable):
    """Check torch's standard constructor flags; (params, w2) with ``weight_decay`` (also a
    group's) mapped onto w2, which it equals exactly: both add (w/2)|theta|^2 to the loss."""
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    check_bool("maximize", maximize)
    if foreach is not None:
        check_bool("foreach", foreach)
    for name, value in (("differentiable", differentiable), ("capturable", capturable)):
        if check_bool(name, value):
            raise ValueError(
                f"{name}=True is not supported by Alice: " + (
                    "its step is not differentiable (Rademacher probes, sign and clipping)"
                    if name == "differentiable" else
                    "its step runs the closure 1 or 3 times with RNG replay in Python, which "
                    "a CUDA graph cannot capture") + f"; use {name}=False")

    def alias(where, w2_value, wd):
        wd = check_real(f"{where}weight_decay", _scalar(wd), lo=0.0, finite=True)
        if _scalar(w2_value) not in (0, 0.0, wd):
            raise ValueError(f"{where}weight_decay={wd!r} and w2={w2_value!r}: weight_decay is "
                             f"an alias of w2 (the L2 weight); give one of them")
        return wd

    if weight_decay is not None:
        w2 = alias("", w2, weight_decay)
    # torch's own TypeError for a bare tensor or a non-iterable comes later, after every
    # hyperparameter has been checked (as torch.optim.Adam does)
    if not isinstance(params, torch.Tensor) and hasattr(params, "__iter__"):
        params = list(params)
        for i, g in enumerate(params):
            if isinstance(g, dict) and "weight_decay" in g:
                g = dict(g)
                g["w2"] = alias(f"parameter group {i}: ", g.get("w2", 0.0), g.pop("weight_decay"))
                params[i] = g
    return params, w2


def refuse_complex(param_groups) -> None:
    """RuntimeError (torch's error type for an unsupported parameter) for complex parameters."""
    for i, g in enumerate(param_groups):
        for j, p in enumerate(g["params"]):
            if isinstance(p, torch.Tensor) and p.is_complex():
                raise RuntimeError(
                    f"Alice does not support complex parameters (#{j} of group {i}, shape "
                    f"{tuple(p.shape)}, {p.dtype}): keep the real and imaginary parts as a "
                    f"real parameter of shape (..., 2) and build the complex tensor from it "
                    f"with torch.view_as_complex in the model")


def step_entry(opt, closure) -> None:
    """step()'s checks before the batch: a closure, no complex parameters, valid per-group
    flags, and the betas read back from the groups (where torch's momentum schedules, e.g.
    OneCycleLR/CyclicLR with cycle_momentum, write them; all groups must agree)."""
    if closure is None:
        raise TypeError(_WHY_CLOSURE)
    refuse_complex(opt.param_groups)
    for i, g in enumerate(opt.param_groups):
        check_bool(f"parameter group {i}: maximize", g.get("maximize", False))
    seen = {_groups.shared("betas", g["betas"]) for g in opt.param_groups if "betas" in g}
    if len(seen) > 1:
        raise ValueError(f"the parameter groups have different betas {sorted(seen)}: betas are "
                         f"shared by all groups (beta1 sets the warm-up and, with beta2, the "
                         f"averages of the one sample/quick schedule); set them for all groups")
    if seen and (new := seen.pop()) != tuple(opt.betas):
        try:
            base = opt._base.replace(betas=new)
        except (TypeError, ValueError) as e:
            raise type(e)(f"betas from the parameter groups: {e}") from None
        opt._base, opt.betas, opt._configs = base, base.betas, {}


def dcp_init(opt) -> bool:
    """torch.distributed.checkpoint's ``_init_optim_state`` (get/set_optimizer_state_dict on an
    optimiser without state) calls ``step()`` without a closure, every group at lr = 0: there is
    nothing to evaluate (every group sits such a batch out), so the state is created from the
    parameters (as at a first step) and no batch is counted. True when that was the call."""
    if not opt.param_groups or not all(_groups.frozen(g) for g in opt.param_groups):
        return False
    params = opt._params()
    with commit_section():
        _groups.ensure_state(opt.state, params)
    return True
