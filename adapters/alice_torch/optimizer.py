"""``alice_torch.Alice``: the Alice optimiser as a ``torch.optim.Optimizer`` (thin adapter).

Everything numerical is done by :mod:`alice_ref` on torch tensors (through array-api-compat):
:func:`alice_ref.schedule` (the function) decides sample/quick step and the averages' weights,
:func:`alice_ref.probe_points` gives the evaluation points, :func:`alice_ref.absorb_sample`,
:func:`alice_ref.absorb_quick` and :func:`alice_ref.apply_update` update the state, and
:func:`alice_ref.params_of` casts the centre mu back to the parameters' dtypes. This module only
does what is PyTorch's business: parameter groups, closures and autograd, the random generators
(probe draws and the dropout replay of docs/spec/algorithm.md#reference-compatible-randomness),
non-finite handling, and ``state_dict``/``load_state_dict``.

On CPU (float32/float64, contiguous parameters) the same per-element arithmetic runs by default
through :mod:`alice_ref.engines.cpu`, in place on the tensors' NumPy views, one cache-sized block at a
time (compiled by numba when the ``fast`` extra is installed, else ufuncs: the attribute
``fused_engine`` picks, None = the best installed), with torch's own sqrt: bit-identical to the
generic path above (tests/test_fast_paths.py) and several times faster (docs/performance.md).
``Alice(..., fused=False)`` keeps the generic path.

Per-parameter state (``optimizer.state[p]``): ``mu`` (centre, what the parameter holds between
steps), ``nu`` (look-ahead evaluation point), ``G``, ``V``, ``H``, ``R`` (the averages of
docs/spec/algorithm.md#state), in the state dtype (float32 for float16/bfloat16 parameters, else
the parameter's).
Optimiser-wide: the batch counter ``t`` and the count of ``skipped`` batches.
"""

from __future__ import annotations

import math
import numbers
import threading
import warnings
from itertools import chain

import numpy as np
import torch

from alice_ref import (
    AliceConfig,
    AliceState,
    absorb_quick,
    absorb_sample,
    apply_update,
    params_of,
    probe_points,
    rademacher_from_uniform,
    schedule,
)
from alice_ref import NonFiniteGradientError as _CoreNonFiniteGradientError
from alice_ref import attributes as _core_attributes
from alice_ref import init as _core_init
from alice_ref.engines import cpu as _fast

__all__ = ["Alice", "NonFiniteGradientError"]

# Hyperparameters a parameter group may set for itself. betas and quick_steps are shared by all
# groups because they decide, for the whole model, whether a batch is a sample or a quick step.
_GROUP_KEYS = ("lr", "lr_min", "lr_max", "eps", "w1", "w2", "phi", "omega", "limit_method",
               "scale_bounds_with_lr", "hess_comp", "grad_glass")
_SHARED_KEYS = ("betas", "quick_steps", "nonfinite")
_FIELDS = ("mu", "nu", "G", "V", "H", "R")
_EVALUATIONS = ("g+", "g-", "g0")
# Key in a parameter group: the lr at which that group's lr_min / lr_max were given. With
# scale_bounds_with_lr the bounds are lr_min/bounds_lr * lr and lr_max/bounds_lr * lr
# (AliceConfig.bounds), so an lr scheduler moves them.
_BOUNDS_LR = "bounds_lr"


class NonFiniteGradientError(_CoreNonFiniteGradientError):
    """A gradient evaluation had NaN/Inf; nothing changed (raised by :meth:`Alice.step`).

    Parameters, optimiser state and the random generators (the probe generator and torch's
    default ones) are as they were before the batch, so the batch can be retried or skipped.
    Under ``nonfinite='skip'`` it is not raised: the batch is counted in ``Alice.skipped``. A
    subclass of :class:`alice_ref.NonFiniteGradientError` (so of FloatingPointError).

    Args:
        index: position of the parameter among the trainable parameters, in param-group order.
        name: the parameter's name if the group was built from named parameters, else a
            description ("#j of group i (shape, dtype)").
        evaluation: 'g+', 'g-' or 'g0' (the order of docs/spec/algorithm.md#one-batch, step 3:
            nu + sigma z, nu - sigma z, nu).
        t: the batch that failed (``Alice.t + 1``).
        loss: the loss of the failing evaluation.
        outputs: the model outputs of the failing evaluation (the closure-pair form), or None.

    Each argument is kept as an attribute of the same name.

    Example:
        Batch 1 is a sample step, whose first evaluation is g+; the counter stays at 0:

        >>> import torch
        >>> x = torch.nn.Parameter(torch.ones(2))
        >>> opt = Alice([x])
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (x * float("nan")).sum()
        ...     loss.backward()
        ...     return loss
        >>> try:
        ...     opt.step(closure)
        ... except NonFiniteGradientError as e:
        ...     print(e.index, e.evaluation, e.t, opt.t, x.tolist())
        0 g+ 1 0 [1.0, 1.0]
    """

    def __init__(self, index: int, name: str, evaluation: str, t: int, loss=None, outputs=None):
        super().__init__(index, evaluation, t)
        self.name, self.loss, self.outputs = name, loss, outputs
        self.args = ((f"non-finite gradient in parameter {name} at evaluation {evaluation} "
                      f"({_WHERE[evaluation]}) of batch {t}; parameters, optimiser state and "
                      f"RNG state are unchanged (Alice(..., nonfinite='skip') skips such "
                      f"batches)"),)

    def __str__(self):
        return self.args[0]

    def __reduce__(self):  # picklable (e.g. across DDP / multiprocessing workers)
        return (type(self), (self.index, self.name, self.evaluation, self.t))


_WHERE = {"g+": "at nu + sigma z", "g-": "at nu - sigma z", "g0": "at nu"}

_STATE_DTYPES: dict = {}


def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The core's state dtype for parameters of ``dtype`` (float32 for float16/bfloat16)."""
    if dtype not in _STATE_DTYPES:
        _STATE_DTYPES[dtype] = _core_init([torch.empty(0, dtype=dtype)]).mu[0].dtype
    return _STATE_DTYPES[dtype]


_ZERO_MASKS = threading.local()


def _torch_sqrt(x, out):
    """torch's square root on NumPy arrays (no copy): the generic path computes sqrt with torch,
    whose CPU result is not always the correctly rounded one NumPy gives, and the fused path
    must agree with it bit for bit.

    torch's CPU sqrt is ~4x slower on zeros than on other numbers (common here: sqrt(alpha
    (alpha + 2h)) is 0 wherever rho = 0 and h = 0), so a block of zeros is copied (sqrt(0) =
    0), and a block with some zeros gets 1 in their place and 1 taken off the result:
    sqrt(1) - 1 = 0 = sqrt(0), exactly. (The operands are never -0: alpha, h and V are sums of
    squares, magnitudes and +0.)"""
    if x.size > _SERIAL:  # pieces below torch's grain size run inline, on this thread
        for s in range(0, x.size, _SERIAL):
            _torch_sqrt(x[s:s + _SERIAL], out[s:s + _SERIAL])
        return
    if np.minimum.reduce(x) == 0:
        if np.maximum.reduce(x) == 0:  # all zeros (e.g. rho = h = 0 throughout): sqrt(0) = 0
            if out is not x:
                np.copyto(out, x)
            return
        masks = getattr(_ZERO_MASKS, "buf", None)
        if masks is None or masks.size < x.size:
            masks = _ZERO_MASKS.buf = np.empty(_SERIAL, np.bool_)
        q = masks[:x.size]
        np.equal(x, 0, q)
        np.add(x, q, out)
        torch.from_numpy(out).sqrt_()
        np.subtract(out, q, out)
        return
    torch.sqrt(torch.from_numpy(x), out=torch.from_numpy(out))


_SERIAL = 32768  # at::internal::GRAIN_SIZE: smaller element-wise ops never fork threads


def _all_true(flags) -> bool:
    """All 0-d boolean tensors true, with one device synchronisation per device."""
    by_device: dict = {}
    for f in flags:
        by_device.setdefault(f.device, []).append(f)
    return all(bool(torch.stack(fs).all()) for fs in by_device.values())


def _shared(key, value):
    """Comparable form of an optimiser-wide hyperparameter (betas may come as a list)."""
    if key == "betas":
        try:
            return tuple(float(_scalar(b)) for b in value)
        except (TypeError, ValueError):
            return value
    return value


def _scalar(x):
    """Group values may be 0-d tensors (as in the official code); the core takes Python scalars."""
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        return x.item()
    return x


class Alice(torch.optim.Optimizer):
    """The Alice optimiser (Duersch et al., "Curvature in the Looking-Glass", arXiv 2411.16914).

    Drop-in replacement for the official ``alice.Alice`` (Alice 1.1); semantics:
    docs/spec/algorithm.md#one-batch.

    Args:
        params: parameters or parameter groups (dicts). A group may set its own ``lr``,
            ``lr_min``, ``lr_max``, ``eps``, ``w1``, ``w2``, ``phi``, ``omega``, ``limit_method``,
            ``scale_bounds_with_lr``, ``hess_comp`` and ``grad_glass``.
        lr: perturbation length sigma and scale of the step bounds (> 0).
        betas: (beta1, beta2), each in (0, 1); shared by all groups.
        eps: denominator guard (> 0).
        w1, w2: L1 and L2 regularisation weights (>= 0).
        phi: fraction of the step taken by the centre mu (0 < phi < 2); None -> 1 - beta1.
        omega: look-ahead multiplier (> 0).
        limit_method: 'fixed', 'sgdm' or 'adam' (how lr_min/lr_max bound the step).
        lr_min, lr_max: step bounds (0 <= lr_min <= lr_max); lr_max None -> 2 lr (per group).
        scale_bounds_with_lr: keep lr_min/lr and lr_max/lr fixed, so changing a group's lr
            (e.g. with torch.optim.lr_scheduler) moves its bounds.
        hess_comp: 'zero', 'abs' or 'rms' curvature.
        grad_glass: use the glass density in the step.
        quick_steps: quick steps (one evaluation) after each sample step (three evaluations).
        device: accepted for compatibility with the official code and ignored: the state of
            each parameter lives on that parameter's device.
        generator: a ``torch.Generator`` for the probe draws (default: torch's default
            generator of each parameter's device, as in the official code). Seed it identically
            on every rank under DistributedDataParallel.
        nonfinite: 'raise' (default) or 'skip': what a NaN/Inf gradient does (see
            :class:`NonFiniteGradientError`); skipped batches are counted in ``skipped``.
        fused: which implementation of the per-element arithmetic runs (same results, bit for
            bit: tests/test_fast_paths.py). None (default): the fused in-place path
            (:mod:`alice_ref.engines.cpu` on the NumPy views of the tensors, cache-blocked, no
            temporaries) whenever every trainable parameter is a C-contiguous float32/float64
            CPU tensor, else the generic path. False: always the generic path (the
            functional core on torch tensors). True: the fused path, and a ValueError at
            ``step`` when a parameter is not eligible.

    ``step(closure)`` takes either the official pair ``(model_func, loss_func)`` and returns
    ``(loss, outputs)``, or a standard PyTorch closure (zero grads, compute the loss, backward,
    return the loss) and returns the loss. Both are those of the evaluation at nu. Between steps
    the parameters hold the centre mu.

    Raises:
        TypeError: a hyperparameter of the wrong type, a ``generator`` that is not a
            ``torch.Generator``, or ``fused`` not None/True/False.
        ValueError: a hyperparameter out of range (the message names it; see
            :class:`alice_ref.AliceConfig`), or a group that sets ``betas``/``quick_steps``
            differently from the optimiser.

    Example:
        On L(p) = sum p^2 with beta1 = 0.5 the warm-up is 1/(1 - beta1) = 2 batches, so the
        parameters move first at batch 3: h = 2 (exact for a quadratic), no glass, so the step
        |G|/h = (1, 2) is clipped to lr_max = 2 lr = 0.2 (adam bound, f = |G|/sqrt(V) = 1) and
        mu moves by phi = 1 - beta1 = 0.5 of it, against the sign of the gradient (R5, R6, R7):

        >>> import torch
        >>> p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
        >>> opt = Alice([p], lr=0.1, betas=(0.5, 0.999))
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (p ** 2).sum()
        ...     loss.backward()
        ...     return loss
        >>> for _ in range(2):
        ...     _ = opt.step(closure)
        >>> p.tolist()  # warm-up: the averages fill, the parameters stay
        [1.0, -2.0]
        >>> _ = opt.step(closure)
        >>> [round(v, 6) for v in p.tolist()], opt.t
        ([0.9, -1.9], 3)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, w1=0., w2=0., phi=None,
                 omega=1., limit_method='adam', lr_min=0., lr_max=None, scale_bounds_with_lr=True,
                 hess_comp='abs', grad_glass=True, quick_steps=3, device=None, generator=None,
                 nonfinite='raise', fused=None):
        del device  # official argument: state follows each parameter's device
        # Validates every hyperparameter (ValueError/TypeError naming it) before anything else.
        base = AliceConfig(lr=_scalar(lr), betas=tuple(_scalar(b) for b in betas), eps=eps,
                           w1=w1, w2=w2, phi=phi, omega=omega, limit_method=limit_method,
                           lr_min=lr_min, lr_max=lr_max, scale_bounds_with_lr=scale_bounds_with_lr,
                           hess_comp=hess_comp, grad_glass=grad_glass, quick_steps=quick_steps,
                           nonfinite=nonfinite)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got "
                            f"{type(generator).__name__}")
        if not (fused is None or isinstance(fused, bool)):
            raise TypeError(f"fused must be None, True or False, got {fused!r}")
        self.fused = fused
        self.fused_threads = 1  # threads of the fused path (alice_ref.engines.cpu ``threads``)
        self._workspace = _fast.Workspace()
        self._base = base
        self.betas, self.quick_steps, self.nonfinite = base.betas, base.quick_steps, base.nonfinite
        self.generator = generator
        self.t = 0  # batches absorbed (the core's counter)
        self.skipped = 0  # batches skipped for non-finite gradients (nonfinite='skip')
        self._configs: dict = {}
        # lr_max and phi stay None here so that each group resolves them from its own lr.
        defaults = {"lr": base.lr, "lr_min": base.lr_min, "lr_max": lr_max, "eps": base.eps,
                    "w1": base.w1, "w2": base.w2, "phi": phi, "omega": base.omega,
                    "limit_method": base.limit_method,
                    "scale_bounds_with_lr": base.scale_bounds_with_lr,
                    "hess_comp": base.hess_comp, "grad_glass": base.grad_glass}
        super().__init__(params, defaults)

    # -- parameter groups and their validated configs ---------------------------------------

    def add_param_group(self, param_group: dict) -> None:
        """Add a parameter group (torch API), validated by :class:`alice_ref.AliceConfig`.

        Missing hyperparameters take the optimiser's defaults; ``lr_max`` and ``phi`` left to
        their defaults resolve from the group's own lr: lr_max = 2 lr, phi = 1 - beta1.

        Args:
            param_group: a dict with ``'params'`` and optionally any of the per-group keys
                listed in :class:`Alice` (``betas``, ``quick_steps`` and ``nonfinite`` only if
                equal to the optimiser's: they are shared).

        Raises:
            ValueError: a shared hyperparameter that differs from the optimiser's, or a value
                out of range (the message names the group).
            TypeError: a value of the wrong type.

        Example:
            A group with twice the learning rate gets twice the upper step bound:

            >>> import torch
            >>> opt = Alice([torch.nn.Parameter(torch.ones(2))], lr=0.1, betas=(0.5, 0.999))
            >>> opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(3))], "lr": 0.2})
            >>> opt.param_groups[1]["lr_max"], opt.param_groups[1]["phi"]
            (0.4, 0.5)
        """
        for k in _SHARED_KEYS:
            if k in param_group and _shared(k, param_group[k]) != _shared(k, getattr(self, k)):
                raise ValueError(f"{k} is shared by all parameter groups (it sets the sample/"
                                 f"quick schedule of the whole model); got {param_group[k]!r} "
                                 f"for a group, {getattr(self, k)!r} for the optimiser")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for k in _SHARED_KEYS:
            group.pop(k, None)
        try:
            cfg = self._make_config({**{k: group[k] for k in _GROUP_KEYS},
                                     _BOUNDS_LR: group["lr"]})
        except (TypeError, ValueError) as e:
            self.param_groups.pop()
            raise type(e)(f"parameter group {len(self.param_groups)}: {e}") from None
        group.update(lr=cfg.lr, lr_min=cfg.lr_min, lr_max=cfg.lr_max, phi=cfg.phi)
        group.setdefault(_BOUNDS_LR, cfg.lr)

    def _make_config(self, group) -> AliceConfig:
        vals = {k: _scalar(group[k]) for k in _GROUP_KEYS}
        vals["lr"] = _scalar(group.get(_BOUNDS_LR, vals["lr"]))
        return AliceConfig(betas=self.betas, quick_steps=self.quick_steps,
                           nonfinite=self.nonfinite, **vals)

    def _group_config(self, i: int, group) -> AliceConfig:
        key = tuple(_scalar(group[k]) for k in _GROUP_KEYS[1:]) + (
            _scalar(group.get(_BOUNDS_LR, group["lr"])),)
        cfg = self._configs.get(key)
        if cfg is None:
            try:
                cfg = self._make_config(group)
            except (TypeError, ValueError) as e:
                raise type(e)(f"parameter group {i}: {e}") from None
            self._configs[key] = cfg
        return cfg

    @staticmethod
    def _sigma(i: int, group) -> float:
        lr = _scalar(group["lr"])
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (
                math.isfinite(lr) and lr > 0):
            raise ValueError(f"parameter group {i}: lr must be a finite number > 0 (it is the "
                             f"perturbation length sigma), got {lr!r}")
        return float(lr)

    def _trainable(self):
        """[(group index, group, [params], [names])] of the parameters with requires_grad, in
        param-group order; the official code leaves the others alone entirely."""
        out = []
        for i, group in enumerate(self.param_groups):
            names = group.get("param_names")
            ps, ns = [], []
            for j, p in enumerate(group["params"]):
                if p.requires_grad:
                    ps.append(p)
                    ns.append(repr(names[j]) if names else
                              f"#{j} of group {i} (shape {tuple(p.shape)}, {p.dtype})")
            out.append((i, group, ps, ns))
        return out

    def _ensure_state(self, params) -> None:
        for p in params:
            st = self.state[p]
            if "mu" not in st:
                s = _core_init([p.detach()])
                for f in _FIELDS:  # own storage per field: nothing here is ever updated in place
                    st[f] = getattr(s, f)[0].clone()

    def _state_of(self, params) -> AliceState:
        return AliceState(self.t, *(tuple(self.state[p][f] for p in params) for f in _FIELDS),
                          self.skipped)

    def _commit(self, params, state: AliceState) -> None:
        for k, p in enumerate(params):
            st = self.state[p]
            for f in _FIELDS:
                st[f] = getattr(state, f)[k]

    @staticmethod
    def _load(params, values) -> None:
        with torch.no_grad():
            for p, x in zip(params, values):
                p.copy_(x)

    def _center(self, groups, states) -> None:
        """Leave every trainable parameter at mu (in its own dtype)."""
        for (_, _, ps, _), st in zip(groups, states):
            self._load(ps, params_of(st, like=ps))

    # -- randomness --------------------------------------------------------------------------

    def _draw_uniforms(self, params) -> list:
        """u = torch.rand(numel, dtype, device, generator) per parameter, in order
        (docs/spec/algorithm.md#reference-compatible-randomness)."""
        gen = self.generator
        us = []
        for p in params:
            if gen is None:
                u = torch.rand(p.numel(), dtype=p.dtype, device=p.device)
            else:  # drawn on the generator's device, then moved to the parameter's
                u = torch.rand(p.numel(), dtype=p.dtype, device=gen.device,
                               generator=gen).to(p.device)
            us.append(u)
        return us

    def _draw_probes(self, params) -> list:
        """z per parameter: z = -1 where u < 0.5 else +1 (alice_ref.rademacher_from_uniform)
        from :meth:`_draw_uniforms`, in the state dtype."""
        return [rademacher_from_uniform(u).reshape(p.shape).to(_state_dtype(p.dtype))
                for p, u in zip(params, self._draw_uniforms(params))]

    @staticmethod
    def _rng_snapshot(params):
        cuda = sorted({p.device.index if p.device.index is not None else
                       torch.cuda.current_device() for p in params if p.device.type == "cuda"})
        return torch.get_rng_state(), {d: torch.cuda.get_rng_state(d) for d in cuda}

    @staticmethod
    def _rng_restore(snapshot) -> None:
        cpu, cuda = snapshot
        torch.set_rng_state(cpu)
        for d, s in cuda.items():
            torch.cuda.set_rng_state(s, d)

    # -- one evaluation ----------------------------------------------------------------------

    def _run_closure(self, closure, pair):
        """Zero the gradients and run one closure form; return (loss, outputs or None)."""
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            if not pair:
                return closure(), None
            model_func, loss_func = closure
            outputs = model_func()
            loss = loss_func(outputs)
            loss.backward()
            return loss, outputs

    def _evaluate(self, closure, pair, groups, points, which, t):
        """Put the parameters at ``points``, run the closure, return (loss, outputs, grads)."""
        for (_, _, ps, _), pts in zip(groups, points):
            self._load(ps, pts)
        loss, outputs = self._run_closure(closure, pair)
        grads, flags = [], []
        for _, _, ps, _ in groups:
            gs = []
            for p in ps:
                g = p.grad
                if g is None:  # as the official code: a parameter without gradient gets zeros
                    g = torch.zeros_like(p)
                elif g.is_sparse:
                    raise TypeError("Alice does not support sparse gradients")
                else:  # a copy: the next evaluation may zero or reuse .grad in place
                    g = g.detach().clone()
                gs.append(g)
                flags.append(torch.isfinite(g).all())
            grads.append(gs)
        if flags and not _all_true(flags):
            k = 0
            for gs, (_, _, _, names) in zip(grads, groups):
                for g, name in zip(gs, names):
                    if not bool(torch.isfinite(g).all()):
                        raise NonFiniteGradientError(k, name, which, t, loss, outputs)
                    k += 1
        return loss, outputs, grads

    # -- the step ----------------------------------------------------------------------------

    def step(self, closure=None):
        """One Alice batch: evaluate the gradient at 3 or 1 points, update the state.

        The batch is docs/spec/algorithm.md#one-batch, steps 1-6.

        Batch t = ``self.t + 1`` is a sample step (every (q+1)-th batch, R8: evaluations
        g+ = g(nu + sigma z), g- = g(nu - sigma z), g0 = g(nu) with Rademacher z, R2; the
        curvature H and glass density R averages absorb them, R3) or a quick step (g0 only);
        G and V absorb g0. After the warm-up of 1/(1 - beta1) batches the step
        d = |G| / h_opt (R5), clipped to [lr_min f, lr_max f] (R6), moves mu <- mu + phi delta
        and nu <- mu + omega delta with delta = -sign(G) d (R7). The parameters are left at mu.

        Args:
            closure: the official pair ``(model_func, loss_func)`` (``loss_func(model_func())``
                is the loss; backward is called here), or a standard PyTorch closure (zero
                grads, compute the loss, backward, return the loss).

        Returns:
            For the pair, ``(loss, outputs)``; for a closure, the loss: those of the
            evaluation at nu. A skipped batch (nonfinite='skip') returns those of the
            evaluation that found the non-finite gradient.

        Raises:
            TypeError: no closure, or one that is neither callable nor a pair of callables; a
                sparse gradient.
            ValueError: a group lr that is not finite and > 0; ``fused=True`` with a parameter
                the fused path cannot take.
            NonFiniteGradientError: a NaN/Inf gradient under nonfinite='raise' (nothing
                changed). Any exception from the closure also leaves everything unchanged.

        Example:
            The official pair form; the first batches are warm-up (10 for beta1 = 0.9), so the
            parameter stays while the batch counter advances:

            >>> import torch
            >>> model = torch.nn.Linear(2, 1)
            >>> x, y = torch.ones(4, 2), torch.zeros(4, 1)
            >>> opt = Alice(model.parameters(), lr=0.01)
            >>> before = model.weight.detach().clone()
            >>> loss, out = opt.step((lambda: model(x), lambda o: ((o - y) ** 2).mean()))
            >>> tuple(out.shape), opt.t, torch.equal(model.weight, before)
            ((4, 1), 1, True)
        """
        if closure is None:
            raise TypeError("Alice.step needs a closure: either the pair (model_func, loss_func) "
                            "or a function that zeroes grads, computes the loss, calls backward "
                            "and returns the loss (Alice evaluates gradients at 1 or 3 points)")
        pair = isinstance(closure, (tuple, list))
        if pair and not (len(closure) == 2 and all(callable(f) for f in closure)):
            raise TypeError("closure must be a callable or a pair (model_func, loss_func) of "
                            "callables")
        if not pair and not callable(closure):
            raise TypeError(f"closure must be callable, got {type(closure).__name__}")

        groups = self._trainable()
        configs = [self._group_config(i, g) for i, g, _, _ in groups]
        sigmas = [self._sigma(i, g) for i, g, _, _ in groups]
        all_params = [p for _, _, ps, _ in groups for p in ps]
        self._ensure_state(all_params)
        t = self.t + 1
        sched = schedule(t, self._base)
        if self._use_fused(all_params):
            return self._step_fused(closure, pair, groups, configs, sigmas, all_params, sched)
        states = [self._state_of(ps) for _, _, ps, _ in groups]
        # A failed batch (non-finite gradient, or an exception from the closure) is undone
        # completely, random generators included, as alice_ref.run_batch does: a skipped batch
        # is as if it never happened and a retried one draws the same probes and dropout masks.
        entry_rng = (None if self.generator is None else self.generator.get_state(),
                     self._rng_snapshot(all_params))

        try:
            if sched.sample:
                zs = iter(self._draw_probes(all_params))
                pts = [probe_points(st, [next(zs) for _ in ps], s, like=ps)
                       for st, s, (_, _, ps, _) in zip(states, sigmas, groups)]
                snapshot = self._rng_snapshot(all_params)
                grads = []
                for k, which in enumerate(_EVALUATIONS):
                    self._rng_restore(snapshot)  # same dropout masks etc. in all three
                    loss, outputs, g = self._evaluate(closure, pair, groups,
                                                      [pt[k] for pt in pts], which, t)
                    grads.append(g)
                new = [absorb_sample(st, sched, gp, gm, g0, c, s) for st, c, s, gp, gm, g0
                       in zip(states, configs, sigmas, *grads)]
            else:
                nus = [probe_points(st, None, s, like=ps)[2]
                       for st, s, (_, _, ps, _) in zip(states, sigmas, groups)]
                loss, outputs, g0 = self._evaluate(closure, pair, groups, nus, "g0", t)
                new = [absorb_quick(st, sched, g, c) for st, c, g in zip(states, configs, g0)]
            new = [apply_update(st, sched, c, s) for st, c, s in zip(new, configs, sigmas)]
        except NonFiniteGradientError as e:
            self._undo(groups, states, entry_rng)
            if self.nonfinite == "raise":
                raise
            self.skipped += 1
            return (e.loss, e.outputs) if pair else e.loss
        except BaseException:
            self._undo(groups, states, entry_rng)  # never leave the model at a probe point
            raise

        for (_, _, ps, _), st in zip(groups, new):
            self._commit(ps, st)
        self.t = t
        self._center(groups, new)
        return (loss, outputs) if pair else loss

    def _undo(self, groups, states, entry_rng) -> None:
        self._center(groups, states)
        if entry_rng[0] is not None:
            self.generator.set_state(entry_rng[0])
        self._rng_restore(entry_rng[1])

    # -- the fused path (alice_ref.engines.cpu on the tensors' NumPy views) ------------------------

    def _use_fused(self, params) -> bool:
        """Whether this step runs the fused path: ``fused`` is not False and every trainable
        parameter is a C-contiguous float32/float64 CPU tensor whose state (if any) has its
        dtype (then its gradients and probe points are too, and NumPy views them without a
        copy)."""
        if self.fused is False:
            return False
        if not _fast.AVAILABLE:
            if self.fused:
                raise ValueError("fused=True needs the compiled CPU engine: pip install "
                                 "'alice-ref[fast]' (numba)")
            return False
        for p in params:
            mu = self.state[p].get("mu")
            if not (p.device.type == "cpu" and p.dtype in (torch.float32, torch.float64)
                    and p.is_contiguous() and not p.is_sparse
                    and (mu is None or (mu.dtype == p.dtype and mu.device == p.device))):
                if self.fused:
                    raise ValueError(
                        f"fused=True needs C-contiguous float32/float64 CPU parameters, got one "
                        f"of shape {tuple(p.shape)}, {p.dtype} on {p.device}"
                        f"{'' if p.is_contiguous() else ' (not contiguous)'} (state "
                        f"{None if mu is None else mu.dtype}); use fused=None to fall back to "
                        f"the generic path")
                return False
        return True

    def _own_state(self, params) -> None:
        """Each state field of each parameter gets its own contiguous storage (the fused path
        updates them in place; import_mu, for one, makes mu and nu the same tensor)."""
        for p in params:
            st = self.state[p]
            seen = {p.untyped_storage().data_ptr()}
            for f in _FIELDS:
                x = st[f]
                key = x.untyped_storage().data_ptr()
                if key in seen or not x.is_contiguous():
                    x = x.to(memory_format=torch.contiguous_format, copy=True)
                    st[f] = x
                    key = x.untyped_storage().data_ptr()
                seen.add(key)

    @staticmethod
    def _np(x):
        """The NumPy view of a CPU tensor (no copy; writes go to the tensor)."""
        return x.detach().numpy()

    @staticmethod
    def _touched(params) -> None:
        """Tell autograd the parameters changed (they were written through NumPy views)."""
        for p in params:
            torch.autograd.graph.increment_version(p)

    def _evaluate_fused(self, closure, pair, groups, which, t):
        """Run the closure with the parameters already at the evaluation point; return
        (loss, outputs, grads as flat NumPy arrays). The gradient tensors are taken over, not
        copied, when nothing else can write to them (the next evaluation starts from
        ``zero_grad(set_to_none=True)``, so autograd allocates new ones); views (e.g. DDP's
        gradient_as_bucket_view) are copied."""
        loss, outputs = self._run_closure(closure, pair)
        grads, k = [], 0
        for _, _, ps, names in groups:
            gs = []
            for p, name in zip(ps, names):
                g = p.grad
                if g is None:  # as the official code: a parameter without gradient gets zeros
                    g = torch.zeros_like(p, memory_format=torch.contiguous_format)
                elif g.is_sparse:
                    raise TypeError("Alice does not support sparse gradients")
                else:
                    g = g.detach()
                    if (g._base is not None or not g.is_contiguous() or g.dtype != p.dtype
                            or g.untyped_storage().nbytes() != g.numel() * g.element_size()):
                        g = g.to(dtype=p.dtype, memory_format=torch.contiguous_format,
                                 copy=True)
                # One cheap reduction per tensor; the exact test only when the sum is not
                # finite (a NaN/Inf element makes it so; so may an overflow of finite ones).
                if not math.isfinite(g.sum().item()) and not bool(torch.isfinite(g).all()):
                    raise NonFiniteGradientError(k, name, which, t, loss, outputs)
                gs.append(self._np(g).reshape(-1))
                k += 1
            grads.append(gs)
        return loss, outputs, grads

    def _step_fused(self, closure, pair, groups, configs, sigmas, all_params, sched):
        """:meth:`step` on the fused path: the same draws, evaluations, checks and undo as the
        generic path; the state is updated in place by :func:`alice_ref.engines.cpu.absorb_and_update`
        once every evaluation has passed (so a failed batch changes nothing)."""
        t = sched.t
        self._own_state(all_params)
        views = [[(self._np(p).reshape(-1),) + tuple(self._np(self.state[p][f]).reshape(-1)
                                                     for f in _FIELDS) for p in ps]
                 for _, _, ps, _ in groups]
        entry_rng = (None if self.generator is None else self.generator.get_state(),
                     self._rng_snapshot(all_params))
        ws = self._workspace
        # alice_ref.engines.cpu can share blocks among threads (NumPy releases the GIL inside each
        # ufunc), but the Python between the calls serialises them: measured on 2 cores next
        # to torch's own threads it was slower, so the fused path uses one (fused_threads).
        th = self.fused_threads
        try:
            if sched.sample:
                masks = self._draw_masks(groups)
                snapshot = self._rng_snapshot(all_params)
                grads = []
                for k, which in enumerate(_EVALUATIONS):
                    for vs, ms, sigma in zip(views, masks, sigmas):
                        for v, m in zip(vs, ms):  # v = (param, mu, nu, G, V, H, R)
                            if k < 2:
                                _fast.probe_point(v[2], m, sigma, 1 - 2 * k, v[0], workspace=ws,
                                                  threads=th)
                            else:
                                v[0][...] = v[2]
                    self._touched(all_params)
                    self._rng_restore(snapshot)  # same dropout masks etc. in all three
                    loss, outputs, g = self._evaluate_fused(closure, pair, groups, which, t)
                    grads.append(g)
            else:
                for vs in views:
                    for v in vs:
                        v[0][...] = v[2]
                self._touched(all_params)
                loss, outputs, g0 = self._evaluate_fused(closure, pair, groups, "g0", t)
                grads = [None, None, g0]
        except NonFiniteGradientError as e:
            self._undo_fused(groups, entry_rng)
            if self.nonfinite == "raise":
                raise
            self.skipped += 1
            return (e.loss, e.outputs) if pair else e.loss
        except BaseException:
            self._undo_fused(groups, entry_rng)  # never leave the model at a probe point
            raise

        for j, (vs, cfg, sigma) in enumerate(zip(views, configs, sigmas)):
            for i, v in enumerate(vs):
                gp = None if grads[0] is None else grads[0][j][i]
                gm = None if grads[1] is None else grads[1][j][i]
                _fast.absorb_and_update(cfg, sched, *v[1:], grads[2][j][i], gp, gm, lr=sigma,
                                        param=v[0], workspace=ws, sqrt=_torch_sqrt, threads=th)
        self._touched(all_params)
        self.t = t
        return (loss, outputs) if pair else loss

    def _draw_masks(self, groups) -> list:
        """The probe signs of a sample step as packed masks (1 bit per element), per group and
        parameter: the draws of :meth:`_draw_uniforms`, in the same order, each into one reused
        buffer per dtype (``torch.rand(..., out=)`` draws the same numbers), so the step
        allocates one parameter's u instead of all of them."""
        gen = self.generator
        on_cpu = gen is None or gen.device.type == "cpu"
        sizes: dict = {}
        for _, _, ps, _ in groups:
            for p in ps:
                sizes[p.dtype] = max(sizes.get(p.dtype, 0), p.numel())
        bufs = {d: torch.empty(n, dtype=d) for d, n in sizes.items()} if on_cpu else {}
        out = []
        for _, _, ps, _ in groups:
            ms = []
            for p in ps:
                if on_cpu:
                    u = torch.rand(p.numel(), dtype=p.dtype, generator=gen,
                                   out=bufs[p.dtype][:p.numel()])
                else:
                    u = self._draw_uniforms([p])[0]
                ms.append(_fast.negative_mask(self._np(u), packed=True,
                                              workspace=self._workspace))
            out.append(ms)
        return out

    def _undo_fused(self, groups, entry_rng) -> None:
        with torch.no_grad():
            for _, _, ps, _ in groups:
                for p in ps:
                    p.copy_(self.state[p]["mu"])
        if entry_rng[0] is not None:
            self.generator.set_state(entry_rng[0])
        self._rng_restore(entry_rng[1])

    # -- reporting, mu, checkpoints ----------------------------------------------------------

    def attributes(self) -> list[dict]:
        """Mean glass density and curvature per parameter group (the reported attributes).

        Per group: glass_density = mean_i R_i and curvature = mean_i H_i over the elements of
        the group's trainable parameters, where R and H are the running averages of the glass
        density rho_hat (R3) and the curvature magnitude ('abs': |h| + w2, 'rms': h^2 + w2^2).

        Returns:
            A list with one dict ``{'glass_density': float, 'curvature': float}`` per
            parameter group (0.0 for both before the first step).

        Example:
            For L(p) = sum p^2 the Hessian diagonal is exactly 2 and there is no glass:

            >>> import torch
            >>> p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
            >>> opt = Alice([p], lr=0.1)
            >>> opt.attributes()
            [{'glass_density': 0.0, 'curvature': 0.0}]
            >>> def closure():
            ...     opt.zero_grad()
            ...     loss = (p ** 2).sum()
            ...     loss.backward()
            ...     return loss
            >>> _ = opt.step(closure)
            >>> a = opt.attributes()[0]
            >>> a["glass_density"], round(a["curvature"], 9)
            (0.0, 2.0)
        """
        out = []
        for _, _, ps, _ in self._trainable():
            with_state = [p for p in ps if "mu" in self.state[p]]
            per = _core_attributes(self._state_of(with_state)) if with_state else []
            n = [p.numel() for p in with_state]
            tot = sum(n)
            out.append({k: (sum(a[k] * m for a, m in zip(per, n)) / tot if tot else 0.0)
                        for k in ("glass_density", "curvature")})
        return out

    def get_attributes(self):
        """The official method: :meth:`attributes` as two lists of 0-d tensors.

        Returns:
            (glass densities, curvatures): two lists with one 0-d float32 tensor per parameter
            group, the means of R and of H over the group's elements.

        Example:
            Before the first step both are zero:

            >>> import torch
            >>> opt = Alice([torch.nn.Parameter(torch.ones(3))])
            >>> opt.get_attributes()
            ([tensor(0.)], [tensor(0.)])
        """
        a = self.attributes()
        return ([torch.tensor(x["glass_density"]) for x in a],
                [torch.tensor(x["curvature"]) for x in a])

    def export_mu(self) -> list:
        """Copies of the centre mu of each trainable parameter, in param-group order.

        Between steps the parameters hold mu (cast to their dtype), so for float32/float64
        parameters ``export_mu()`` equals the parameters; for float16/bfloat16 ones it is the
        float32 state, more precise than the parameters.

        Returns:
            A list of new tensors in the state dtype (float32 for float16/bfloat16 parameters,
            else the parameter's). Before the first step: copies of the parameters.

        Example:
            Equal to the parameters, in the state dtype:

            >>> import torch
            >>> p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float16))
            >>> mu = Alice([p]).export_mu()
            >>> mu[0].tolist(), mu[0].dtype
            ([1.0, -2.0], torch.float32)
        """
        out = []
        for _, _, ps, _ in self._trainable():
            for p in ps:
                st = self.state[p]
                out.append(st["mu"].clone() if "mu" in st else
                           p.detach().to(_state_dtype(p.dtype), copy=True))
        return out

    def import_mu(self, mu) -> None:
        """Set the centre mu (and the look-ahead nu, and the parameters) of each parameter.

        mu <- nu <- the given tensors (copied, cast to the state dtype and the parameter's
        device), parameters <- mu in their dtype; the averages G, V, H, R and the counter are
        kept (state is created first if there was none).

        Args:
            mu: tensors, one per trainable parameter in param-group order (as
                :meth:`export_mu` returns), each of its parameter's shape.

        Raises:
            ValueError: the wrong number of tensors, or one that is not a tensor of the
                parameter's shape.

        Example:
            The parameters follow, and :meth:`export_mu` gives the values back:

            >>> import torch
            >>> p = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
            >>> opt = Alice([p])
            >>> opt.import_mu([torch.tensor([0.5, 2.0])])
            >>> p.tolist(), opt.export_mu()[0].tolist()
            ([0.5, 2.0], [0.5, 2.0])
        """
        groups = self._trainable()
        params = [p for _, _, ps, _ in groups for p in ps]
        mu = list(mu)
        if len(mu) != len(params):
            raise ValueError(f"import_mu got {len(mu)} tensors for {len(params)} trainable "
                             f"parameters")
        new = []
        for k, (p, m) in enumerate(zip(params, mu)):
            if not isinstance(m, torch.Tensor) or tuple(m.shape) != tuple(p.shape):
                raise ValueError(f"mu[{k}] must be a tensor of shape {tuple(p.shape)}, got "
                                 f"{tuple(m.shape) if isinstance(m, torch.Tensor) else type(m)}")
            new.append(m.detach().to(device=p.device, dtype=_state_dtype(p.dtype), copy=True))
        self._ensure_state(params)
        for p, m in zip(params, new):
            self.state[p]["mu"] = m
            self.state[p]["nu"] = m
        self._center(groups, [self._state_of(ps) for _, _, ps, _ in groups])

    def state_dict(self) -> dict:
        """torch's optimiser state dict plus an ``'alice'`` entry for Alice's own state.

        With the model's state dict and torch's RNG state this resumes bit-identically.

        Returns:
            ``torch.optim.Optimizer.state_dict()`` (per-parameter mu, nu, G, V, H, R and the
            groups) plus ``'alice'``: the batch counter ``t``, the ``skipped`` count, the shared
            ``betas``, ``quick_steps`` and ``nonfinite``, and the probe ``generator``'s state
            (None when the default generator is used).

        Example:
            A fresh optimiser's extra entry:

            >>> import torch
            >>> opt = Alice([torch.nn.Parameter(torch.ones(2))], betas=(0.5, 0.999))
            >>> opt.state_dict()["alice"]  # doctest: +NORMALIZE_WHITESPACE
            {'t': 0, 'skipped': 0, 'betas': (0.5, 0.999), 'quick_steps': 3,
             'nonfinite': 'raise', 'generator': None}
        """
        d = super().state_dict()
        d["alice"] = {"t": self.t, "skipped": self.skipped, "betas": tuple(self.betas),
                      "quick_steps": self.quick_steps, "nonfinite": self.nonfinite,
                      "generator": (None if self.generator is None else
                                    self.generator.get_state())}
        return d

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the optimiser from :meth:`state_dict`.

        State tensors keep the state dtype (torch's default would cast them to the parameters'
        dtype, losing the float32 state of half-precision parameters) and move to each
        parameter's device. The parameters themselves are not touched (load the model's state
        dict too).

        Args:
            state_dict: a dict from :meth:`state_dict` (one without the ``'alice'`` entry is
                accepted with a warning: the batch counter restarts at 0).

        Raises:
            ValueError: ``betas`` or ``quick_steps`` differ from this optimiser's, or a state
                tensor for an unknown parameter or of the wrong shape.

        Example:
            A new optimiser continues where the old one stopped:

            >>> import torch
            >>> p = torch.nn.Parameter(torch.ones(2))
            >>> opt = Alice([p], betas=(0.5, 0.999))
            >>> def closure():
            ...     opt.zero_grad()
            ...     loss = (p ** 2).sum()
            ...     loss.backward()
            ...     return loss
            >>> _ = opt.step(closure)
            >>> new = Alice([p], betas=(0.5, 0.999))
            >>> new.load_state_dict(opt.state_dict())
            >>> new.t, torch.equal(new.state[p]["G"], opt.state[p]["G"])
            (1, True)
        """
        state_dict = dict(state_dict)
        extra = state_dict.pop("alice", None)
        saved_state = state_dict.get("state", {})
        if extra is not None:
            for k in ("betas", "quick_steps"):
                mine, theirs = _shared(k, getattr(self, k)), _shared(k, extra[k])
                if theirs != mine:
                    raise ValueError(f"checkpoint has {k}={theirs!r}, this optimiser {mine!r}")
        # Everything is checked and converted before anything changes (a refused checkpoint
        # leaves the optimiser as it was).
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"])
                for a, b in zip(saved_groups, self.param_groups)):
            raise ValueError(f"checkpoint has parameter groups of sizes "
                             f"{[len(g['params']) for g in saved_groups]}, this optimiser "
                             f"{[len(g['params']) for g in self.param_groups]}")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in self.param_groups)))
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
                    v = v.detach().to(device=p.device, dtype=_state_dtype(p.dtype), copy=True)
                new[k] = v
            loaded[p] = new
        counters = None if extra is None else (int(extra["t"]), int(extra["skipped"]))
        super().load_state_dict({**state_dict, "state": {}})
        for group in self.param_groups:  # a state dict without it: bounds from the current lr
            group.setdefault(_BOUNDS_LR, _scalar(group["lr"]))
        for p, new in loaded.items():
            self.state[p] = new
        self._configs = {}
        if extra is not None:
            self.t, self.skipped = counters
            gen_state = extra.get("generator")
            if gen_state is not None:
                if self.generator is None:
                    warnings.warn("the checkpoint holds a probe generator state but this "
                                  "optimiser draws from torch's default generator; restore "
                                  "that with torch.set_rng_state", stacklevel=2)
                else:
                    self.generator.set_state(gen_state)
        else:
            warnings.warn("state dict without Alice's 'alice' entry: batch counter reset to 0",
                          stacklevel=2)
            self.t, self.skipped = 0, 0
