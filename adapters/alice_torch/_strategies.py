"""The two implementations behind alice_torch's one batch (:func:`alice_torch._batch.run_batch`),
and :func:`choose`, which picks one per batch.

- :class:`Generic`: the functional core (:func:`alice_ref.probe_points`,
  :func:`alice_ref.absorb_sample` / :func:`alice_ref.absorb_quick`,
  :func:`alice_ref.apply_update`) on torch tensors through array-api-compat; any device and
  dtype.
- :class:`Fused`: :mod:`alice_ref.engines.cpu` in place on the NumPy views of the parameters,
  state and gradients, with torch's sqrt (:func:`alice_torch._numerics.torch_sqrt`): the same
  operations in the same order, bit-identical to :class:`Generic` (tests/test_fast_paths.py).

A strategy works on ``states`` (parameter -> its state dict: the optimiser's, or a new one not
yet installed for a parameter without state or one edited between steps,
:func:`alice_torch._batch.run_batch`) and answers, in this order: ``points(uniforms)`` (the
probes from the draws, None on a quick step), ``load_point(k)`` (parameters <- point k),
``gradient(g, p)`` and ``first_nonfinite(grads)`` (keeping and checking an evaluation's
gradients), ``prepare(g0, gp, gm)`` (whatever can be computed, or can fail, without writing the
state: the generic path's whole new state) and ``commit()`` (the writes: run inside the batch's
commit section, it cannot fail; parameters at mu). Both take the same probe draws, give the
same evaluation points and write neither ``states`` nor ``optimizer.state`` before
``commit``; ``states_by_param`` is what ``commit`` installs in ``optimizer.state``.
"""

from __future__ import annotations

import torch

from alice_ref.core import (
    FIELDS,
    absorb_quick,
    absorb_sample,
    apply_update,
    probe_points,
    realised_displacements,
)
from alice_ref.engines import cpu as _cpu
from alice_ref.engines import select
from alice_ref.maths.probes import rademacher_from_uniform

from . import _cuda, _groups
from ._numerics import (
    first_nonfinite,
    first_nonfinite_cpu,
    numpy_view,
    state_dtype,
    torch_sqrt,
    touched,
)

__all__ = ["choose", "Generic", "Fused"]

_FUSED_DTYPES = (torch.float32, torch.float64)


def choose(opt, groups, configs, sigmas, sched, states):
    """The strategy of this batch: :class:`Fused` when ``opt.fused`` is not False, every
    trainable parameter is a dense C-contiguous float32/float64 CPU tensor whose state has its
    dtype and device, and :func:`alice_ref.engines.select` picks 'cpu' for their NumPy views;
    :class:`alice_torch._cuda.CudaFused` when every one is a CUDA tensor and the CuPy kernels
    can run (:func:`alice_torch._cuda.why_not`); else :class:`Generic`.

    Raises:
        ValueError: ``fused=True`` and the fused path cannot run (the message says why).
    """
    params = [p for g in groups for p in g.params]
    if opt.fused is not False and _cuda.cuda_params(params):  # CUDA: the CuPy kernels
        strategy, why = _cuda.make(Generic, opt, groups, configs, sigmas, sched, states)
        if strategy is not None:
            return strategy
        if opt.fused:
            raise ValueError(f"fused=True on CUDA tensors needs the CuPy kernels: {why}; use "
                             f"fused=None to fall back to the generic path")
        return Generic(opt, groups, configs, sigmas, sched, states)
    if opt.fused is not False and all(_fusable(opt, p, states[p]) for p in params):
        try:
            engine = select([numpy_view(p) for p in params], "cpu" if opt.fused else None)
        except ValueError as e:
            raise ValueError(f"fused=True needs the compiled CPU engine: {e}") from None
        if engine == "cpu":
            return Fused(opt, groups, configs, sigmas, sched, states)
    return Generic(opt, groups, configs, sigmas, sched, states)


def _fusable(opt, p, st) -> bool:
    mu = st["mu"]
    if (p.device.type == "cpu" and p.dtype in _FUSED_DTYPES and p.is_contiguous()
            and not p.is_sparse and mu.dtype == p.dtype and mu.device == p.device):
        return True
    if opt.fused:
        raise ValueError(
            f"fused=True needs C-contiguous float32/float64 CPU parameters, got one of shape "
            f"{tuple(p.shape)}, {p.dtype} on {p.device}"
            f"{'' if p.is_contiguous() else ' (not contiguous)'} (state {mu.dtype}); use "
            f"fused=None to fall back to the generic path")
    return False


class Generic:
    """The core on torch tensors: new state per batch (:meth:`prepare`), installed by
    :meth:`commit`."""

    first_nonfinite = staticmethod(first_nonfinite)  # one synchronisation per device

    def __init__(self, opt, groups, configs, sigmas, sched, states):
        self.opt, self.groups, self.configs, self.sigmas, self.sched = (
            opt, groups, configs, sigmas, sched)
        self.states_by_param = states
        self.states = [_groups.state_of(states, g.params, opt.t, opt.skipped) for g in groups]
        self.pts = self.new = None

    def points(self, uniforms) -> None:
        """The evaluation points (plus, minus, nu) per group (:func:`alice_ref.probe_points`,
        cast to the parameters' dtypes), with z = -1 where u < 0.5 else +1 (R2; Alg. 2,
        step 1) in the state dtype; ``uniforms`` None on a quick step (nu only)."""
        zs = None
        if uniforms is not None:
            params = [p for g in self.groups for p in g.params]
            zs = iter([rademacher_from_uniform(u).reshape(p.shape).to(state_dtype(p.dtype))
                       for p, u in zip(params, uniforms)])
        self.pts = [probe_points(st, None if zs is None else [next(zs) for _ in g.params], s,
                                 like=g.params)
                    for st, s, g in zip(self.states, self.sigmas, self.groups)]
        # points stored in a narrower dtype (bfloat16/float16 parameters, float32 state) are
        # rounded: H and R then use the realised displacements, |point - nu| as stored
        # (alice_ref.absorb_curvature's d_plus, d_minus), not the nominal sigma
        self.disp = [realised_displacements(pt, st) for pt, st in zip(self.pts, self.states)]

    def load_point(self, k: int) -> None:
        """Parameters <- point k (0: nu + sigma z, 1: nu - sigma z, 2: nu)."""
        for g, pt in zip(self.groups, self.pts):
            _groups.load(g.params, pt[k])

    @staticmethod
    def gradient(g, p):
        """A copy: the next evaluation may zero or reuse .grad in place."""
        return g.clone()

    def prepare(self, g0, gp=None, gm=None) -> None:
        """Steps 3-5: absorb (Alg. 2, steps 5-11, or a quick step's G, V), then Alg. 3, into a
        new state (nothing is written)."""
        sched, new = self.sched, []
        for st, c, s, g0_, gp_, gm_, d in zip(self.states, self.configs, self.sigmas,
                                              *(self._split(g) for g in (g0, gp, gm)),
                                              self.disp):
            st = (absorb_quick(st, sched, g0_, c) if gp_ is None else
                  absorb_sample(st, sched, gp_, gm_, g0_, c, s, displacements=d))
            new.append(apply_update(st, sched, c, s))
        self.new = new

    def commit(self) -> None:
        """Install the new state; parameters <- mu (step 6)."""
        for g, st in zip(self.groups, self.new):
            _groups.commit(self.opt.state, g.params, st)
            _groups.centre(g.params, st)

    def _split(self, flat):
        """A flat per-parameter list as one list per group (None stays None per group)."""
        if flat is None:
            return [None] * len(self.groups)
        out, k = [], 0
        for g in self.groups:
            out.append(flat[k:k + len(g.params)])
            k += len(g.params)
        return out


class Fused:
    """:mod:`alice_ref.engines.cpu` in place on NumPy views, updated in :meth:`commit`.

    The workspace (``opt._workspace``) and the threads (``opt.fused_threads``) are the
    optimiser's: alice_ref.engines.cpu can share blocks among threads (NumPy releases the GIL
    inside each ufunc), but the Python between the calls serialises them: measured on 2 cores
    next to torch's own threads it was slower, so the default is one.
    """

    first_nonfinite = staticmethod(first_nonfinite_cpu)  # one cheap sum per tensor

    def __init__(self, opt, groups, configs, sigmas, sched, states):
        self.opt, self.groups, self.configs, self.sigmas, self.sched = (
            opt, groups, configs, sigmas, sched)
        self.params = [p for g in groups for p in g.params]
        self.states_by_param = states = _own_state(states, self.params)
        # Per group and parameter: (param, mu, nu, G, V, H, R), flat NumPy views.
        self.views = [[(numpy_view(p),) + tuple(numpy_view(states[p][f]) for f in FIELDS)
                       for p in g.params] for g in groups]
        self.ws, self.threads = opt._workspace, opt.fused_threads
        self.masks = self.grads = None

    def points(self, uniforms) -> None:
        """The probe signs as packed masks, 1 bit per element (u < 0.5 gives -sigma; Alg. 2,
        step 1); the points themselves are written at :meth:`load_point`."""
        if uniforms is None:
            return
        it = iter(uniforms)
        self.masks = [[_cpu.negative_mask(next(it).detach().numpy(), packed=True,
                                          workspace=self.ws) for _ in g.params]
                      for g in self.groups]

    def load_point(self, k: int) -> None:
        """Parameters <- point k, in place: nu + sigma z (k = 0), nu - sigma z (1), nu (2)."""
        for i, (vs, sigma) in enumerate(zip(self.views, self.sigmas)):
            for j, v in enumerate(vs):  # v = (param, mu, nu, G, V, H, R)
                if k < 2:
                    _cpu.probe_point(v[2], self.masks[i][j], sigma, 1 - 2 * k, v[0],
                                     workspace=self.ws, threads=self.threads)
                else:
                    v[0][...] = v[2]
        touched(self.params)

    @staticmethod
    def gradient(g, p):
        """The gradient tensor itself when nothing else can write to it (the next evaluation
        starts from ``zero_grad(set_to_none=True)``, so autograd allocates new ones); views
        (e.g. DDP's gradient_as_bucket_view), strided or other-dtype ones are copied."""
        if (g._base is not None or not g.is_contiguous() or g.dtype != p.dtype
                or g.untyped_storage().nbytes() != g.numel() * g.element_size()):
            g = g.to(dtype=p.dtype, memory_format=torch.contiguous_format, copy=True)
        return g

    def prepare(self, g0, gp=None, gm=None) -> None:
        """The gradients' NumPy views, per parameter (nothing is written yet)."""
        self.grads = [[None if x is None else numpy_view(x[k]) for x in (g0, gp, gm)]
                      for k in range(len(self.params))]

    def commit(self) -> None:
        """Steps 3-5 in place: :func:`alice_ref.engines.cpu.absorb_and_update` per parameter,
        which also writes mu into the parameter (step 6); then tell autograd. Every argument
        was checked when it was made (dtypes, sizes, contiguity: :func:`choose`,
        :meth:`gradient`), so nothing here can fail half-way."""
        k = 0
        for vs, cfg, sigma in zip(self.views, self.configs, self.sigmas):
            for v in vs:
                _cpu.absorb_and_update(cfg, self.sched, *v[1:], *self.grads[k], lr=sigma,
                                       param=v[0], workspace=self.ws, sqrt=torch_sqrt,
                                       threads=self.threads)
                k += 1
        touched(self.params)


def _own_state(states, params) -> dict:
    """``states`` where each state field of each parameter has its own contiguous storage (the
    fused path updates them in place; a state loaded by hand may alias mu and nu): a parameter
    whose fields need copies gets a new dict (installed at the commit), the others keep
    theirs; nothing in ``states`` is changed."""
    out = dict(states)
    for p in params:
        st = states[p]
        seen = {p.untyped_storage().data_ptr()}
        new = None
        for f in FIELDS:
            x = st[f]
            key = x.untyped_storage().data_ptr()
            if key in seen or not x.is_contiguous():
                new = dict(st) if new is None else new
                x = new[f] = x.to(memory_format=torch.contiguous_format, copy=True)
                key = x.untyped_storage().data_ptr()
            seen.add(key)
        if new is not None:
            out[p] = new
    return out
