"""alice_torch.Alice on DTensor parameters (FSDP2's ``fully_shard``; docs/scaling.md).

A DTensor parameter is a shard of a global tensor: each rank holds its local tensor
(``p._local_tensor``, a view of FSDP's sharded storage, float32 under a bfloat16
``MixedPrecisionPolicy``). Alice's state lives as DTensors with the parameter's mesh and
placements, so each rank holds the state of its own elements only (1/world of the unsharded
state), and ``torch.distributed.checkpoint`` can reshard it.

The batch (:func:`alice_torch._batch.run_batch`) runs unchanged on the *local* tensors: the
strategies (generic and fused, :mod:`alice_torch._strategies`) see the local parameters, their
local gradients (FSDP reduce-scatters them in backward) and local state (:class:`Local`); the
evaluations go through FSDP's own forward and backward (all-gathers and reduce-scatters happen
there, never here). The probes keep the reference randomness whatever the world size: every
rank draws u for the *global* numel of each parameter, as one process does
(docs/spec/algorithm.md#reference-compatible-randomness), and keeps its shard's slice
(:func:`local_uniforms`): a full draw per rank, the price of the official signs.
"""

from __future__ import annotations

import torch

from alice_ref.core import FIELDS

try:  # torch.distributed may be absent (some builds): then nothing is a DTensor
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
except ImportError:  # pragma: no cover - torch without distributed
    DTensor = None
    compute_local_shape_and_global_offset = None

__all__ = ["is_dtensor", "any_dtensor", "local", "wrap", "local_uniforms", "initial_state",
           "localise", "Local", "load_field"]


def is_dtensor(x) -> bool:
    """Whether ``x`` is a DTensor (a DTensor parameter included)."""
    return DTensor is not None and isinstance(x, DTensor)


def any_dtensor(params) -> bool:
    return any(is_dtensor(p) for p in params)


def local(x):
    """The local tensor of a DTensor (the same object every time, a view of its storage), or
    ``x`` itself."""
    return x._local_tensor if is_dtensor(x) else x


def wrap(x, like):
    """The local tensor ``x`` as a DTensor sharded like the DTensor ``like`` (no
    communication: the global shape and stride are ``like``'s)."""
    with torch.no_grad():
        return DTensor.from_local(x, like.device_mesh, like.placements, run_check=False,
                                  shape=like.shape, stride=like.stride())


def _local_index(p) -> tuple:
    """The slices of the global tensor ``p`` that this rank holds."""
    shape, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
    return tuple(slice(o, o + s) for o, s in zip(offset, shape))


def local_uniforms(params, uniforms):
    """Per parameter its draw u (the global numel, from :func:`alice_torch._batch.draw_uniforms`),
    reduced to the local shard's elements for a DTensor (flat, in the local tensor's order), so
    that each global element gets the sign one process would give it."""
    for p, u in zip(params, uniforms):
        if is_dtensor(p):
            u = u.reshape(p.shape)[_local_index(p)].reshape(-1)
        yield u


def initial_state(p, value=None) -> dict:
    """:func:`alice_torch._groups.initial_state` for a DTensor parameter: the local state from
    the local tensor (or ``value``'s local part), each field a DTensor like ``p``."""
    from ._groups import initial_state as plain

    x = local(p) if value is None else local_part(value, p)
    st = plain(local(p), x)
    return {f: wrap(st[f], p) for f in FIELDS}


def local_part(v, p):
    """This rank's part of ``v`` for the DTensor parameter ``p``: ``v`` a DTensor placed like
    ``p`` (its local tensor), placed otherwise (redistributed: a collective), or a plain
    tensor of the global shape (sliced)."""
    if is_dtensor(v):
        if v.device_mesh != p.device_mesh or tuple(v.placements) != tuple(p.placements):
            v = v.redistribute(p.device_mesh, p.placements)
        return v._local_tensor
    return v[_local_index(p)]


def load_field(v, p, dt):
    """A checkpoint field ``v`` for the DTensor parameter ``p``: a new local tensor in the state
    dtype ``dt`` (checked by the caller), to be wrapped with :func:`wrap`."""
    lp = local(p)
    x = torch.empty(lp.shape, dtype=dt, device=lp.device)
    x.copy_(local_part(v.detach(), p))
    return x


class _View:
    """The optimiser as the strategies see it in a batch on local tensors: its own ``state``
    (local tensor -> local state dict), everything else the optimiser's."""

    def __init__(self, opt, state):
        self._opt, self.state = opt, state

    def __getattr__(self, name):
        return getattr(self._opt, name)


class Local:
    """A batch's DTensor parameters seen locally: ``groups`` (the trainable groups with local
    tensors for the DTensor parameters), ``states`` (local tensor -> a new dict of the local
    state tensors) and ``view`` (the optimiser for the strategies: :class:`_View`). Ordinary
    tensors pass through as they are."""

    def __init__(self, opt, groups, params, states):
        self.params = params
        self.locals = [local(p) for p in params]
        self.groups = [g._replace(params=[local(p) for p in g.params]) for g in groups]
        self.states = {local(p): ({f: local(states[p][f]) for f in FIELDS} if is_dtensor(p)
                                  else states[p]) for p in params}
        self.view = _View(opt, {})

    def commit(self, opt, strategy) -> None:
        """The batch's commit on local tensors (cannot fail): the strategy's state installed in
        the view, the strategy's commit (steps 3-6, parameters at mu), then each parameter's
        new state in ``opt.state`` (DTensors like the parameter)."""
        new = strategy.states_by_param
        self.view.state = {lp: new[lp] for lp in self.locals}
        strategy.commit()
        for p, lp in zip(self.params, self.locals):
            st = self.view.state[lp]
            if is_dtensor(p):
                opt.state[p] = {f: wrap(st[f], p) for f in FIELDS}
            elif opt.state.get(p) is not st:
                opt.state[p] = st


def localise(opt, groups, params, states):
    """:class:`Local` when some parameter is a DTensor, else None (the ordinary batch)."""
    return Local(opt, groups, params, states) if any_dtensor(params) else None
