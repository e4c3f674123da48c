"""``alice_torch.Alice``: the Alice optimiser as a ``torch.optim.Optimizer``.

The class validates and gathers, as torch.optim's optimisers do: constructor, parameter groups
(each validated by :class:`alice_ref.core.AliceConfig`, :mod:`alice_torch._groups`), ``step``,
the reported attributes, export/import of mu and ``state_dict``/``load_state_dict``. ``step``
hands the batch to the one orchestration, :func:`alice_torch._batch.run_batch`
(docs/spec/algorithm.md#one-batch, steps 1-6), which runs it through one of two strategies
(:mod:`alice_torch._strategies`): the functional core on torch tensors (generic), or
:mod:`alice_ref.engines.cpu` in place on the tensors' NumPy views with torch's sqrt (fused,
the default for C-contiguous float32/float64 CPU parameters; bit-identical to the generic
path, tests/test_fast_paths.py, and several times faster, docs/performance.md).

Per-parameter state (``optimizer.state[p]``): the fields :data:`alice_ref.core.FIELDS`, ``mu``
(centre, what the parameter holds between steps), ``nu`` (look-ahead evaluation point), ``G``,
``V``, ``H``, ``R`` (the averages of docs/spec/algorithm.md#state), in the state dtype (float32
for float16/bfloat16 parameters, else the parameter's). Optimiser-wide: the batch counter ``t``
and the count of ``skipped`` batches.
"""

from __future__ import annotations

import warnings
from collections import defaultdict

import torch

from alice_ref._atomic import commit_section
from alice_ref.checks import check_bool
from alice_ref.core import AliceConfig
from alice_ref.core import attributes as _core_attributes
from alice_ref.engines import cpu as _cpu

from . import _batch, _checkpoint, _conventions, _groups
from ._batch import NonFiniteGradientError, run_batch
from ._numerics import state_dtype

__all__ = ["Alice", "NonFiniteGradientError"]

_scalar = _groups.scalar


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
            CPU tensor with state of its dtype and :func:`alice_ref.engines.select` picks the
            CPU engine (numba installed), else the generic path. False: always the generic
            path (the functional core on torch tensors). True: the fused path, and a
            ValueError at ``step`` when it cannot run.

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
                 nonfinite='raise', fused=None, *, maximize=False, weight_decay=None,
                 foreach=None, differentiable=False, capturable=False):
        del device  # official argument: state follows each parameter's device
        # torch's standard flags (docs/torch.md#torchs-standard-flags), checked first.
        params, w2 = _conventions.standard_flags(params, lr, w2, weight_decay, maximize, foreach,
                                     differentiable, capturable)
        # Validates every hyperparameter (ValueError/TypeError naming it) before anything else.
        if not isinstance(betas, (tuple, list)):  # a set or dict would have no order
            raise TypeError(f"betas must be a pair (beta1, beta2) as a tuple or list, got "
                            f"{type(betas).__name__} {betas!r}")
        base = AliceConfig(lr=_scalar(lr), betas=tuple(_scalar(b) for b in betas), eps=eps,
                           w1=w1, w2=w2, phi=phi, omega=omega, limit_method=limit_method,
                           lr_min=lr_min, lr_max=lr_max, scale_bounds_with_lr=scale_bounds_with_lr,
                           hess_comp=hess_comp, grad_glass=grad_glass, quick_steps=quick_steps,
                           nonfinite=nonfinite)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got "
                            f"{type(generator).__name__}")
        self.fused = None if fused is None else check_bool("fused", fused)
        self.fused_threads = 1  # threads of the fused path (alice_ref.engines.cpu ``threads``)
        self._workspace = _cpu.Workspace()  # the fused path's scratch blocks
        self._base = base  # the shared hyperparameters (betas, quick_steps, nonfinite)
        self.betas, self.quick_steps, self.nonfinite = base.betas, base.quick_steps, base.nonfinite
        self.generator = generator
        self.t = 0  # batches absorbed (the core's counter)
        self.skipped = 0  # batches skipped for non-finite gradients (nonfinite='skip')
        self._configs: dict = {}  # validated AliceConfig per group values (_groups.group_config)
        # lr_max and phi stay None here so that each group resolves them from its own lr.
        defaults = {"lr": base.lr, "lr_min": base.lr_min, "lr_max": lr_max, "eps": base.eps,
                    "w1": base.w1, "w2": base.w2, "phi": phi, "omega": base.omega,
                    "limit_method": base.limit_method,
                    "scale_bounds_with_lr": base.scale_bounds_with_lr,
                    "hess_comp": base.hess_comp, "grad_glass": base.grad_glass,
                    # torch's conventions: betas as torch.optim.Adam keeps them (shared by all
                    # groups, read back at each step, so cyclic momentum schedules work), and
                    # the standard flags (maximize per group).
                    "betas": base.betas, "maximize": maximize, "foreach": foreach,
                    "differentiable": False, "capturable": False}
        super().__init__(params, defaults)
        _conventions.refuse_complex(self.param_groups)

    def add_param_group(self, param_group: dict) -> None:
        """Add a parameter group (torch API), validated by :class:`alice_ref.AliceConfig`.

        Missing hyperparameters take the optimiser's defaults; ``lr_max`` and ``phi`` left to
        their defaults resolve from the group's own lr: lr_max = 2 lr, phi = 1 - beta1.

        Args:
            param_group: a dict with ``'params'`` and optionally any of the per-group keys
                listed in :class:`Alice` (``betas``, ``quick_steps`` and ``nonfinite`` only if
                equal to the optimiser's: they are shared).

        Raises:
            ValueError: a shared hyperparameter that differs from the optimiser's, a value
                out of range (the message names the group), or a parameter listed twice (in
                this group or another: it would be updated twice per batch).
            TypeError: a value of the wrong type.

        Example:
            A group with twice the learning rate gets twice the upper step bound:

            >>> import torch
            >>> opt = Alice([torch.nn.Parameter(torch.ones(2))], lr=0.1, betas=(0.5, 0.999))
            >>> opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(3))], "lr": 0.2})
            >>> opt.param_groups[1]["lr_max"], opt.param_groups[1]["phi"]
            (0.4, 0.5)
        """
        _groups.check_shared(param_group, self)
        _groups.check_no_duplicates(param_group, self.param_groups)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for k in _groups.SHARED_KEYS:
            group.pop(k, None)
        group["betas"] = tuple(self.betas)  # torch's place for them (shared: check_shared)
        try:
            cfg = _groups.make_config({**{k: group[k] for k in _groups.GROUP_KEYS},
                                       _groups.BOUNDS_LR: group["lr"]}, self._base)
        except (TypeError, ValueError) as e:
            self.param_groups.pop()
            raise type(e)(f"parameter group {len(self.param_groups)}: {e}") from None
        group.update(lr=cfg.lr, lr_min=cfg.lr_min, lr_max=cfg.lr_max, phi=cfg.phi)
        group.setdefault(_groups.BOUNDS_LR, cfg.lr)

    # -- the step ----------------------------------------------------------------------------

    def step(self, closure=None):
        """One Alice batch: evaluate the gradient at 3 or 1 points, update the state.

        The batch is docs/spec/algorithm.md#one-batch, steps 1-6, run by
        :func:`alice_torch._batch.run_batch`.

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
                sparse gradient; a group lr that is not a real number.
            ValueError: a group lr that is not finite and > 0; ``fused=True`` where the fused
                path cannot run.
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
        if closure is None and _conventions.dcp_init(self):
            return None
        _conventions.step_entry(self, closure)
        # maximize: the gradients of those groups' parameters are negated as backward writes
        # them, so Alice minimises -L exactly (the curvature and glass estimates use only |h|,
        # h^2 and (g_bar - g0)^2, which the sign does not change).
        flip = [p for g in self.param_groups if g.get("maximize", False)
                for p in g["params"] if p.requires_grad]
        handles = [p.register_hook(torch.neg) for p in flip]
        try:
            return run_batch(self, closure)
        finally:
            for h in handles:
                h.remove()

    # -- copies ------------------------------------------------------------------------------

    def __getstate__(self) -> dict:
        """Everything an Alice optimiser is (torch's ``__getstate__`` keeps only defaults, state
        and param_groups, losing ``t``, ``betas``, the configs...): copy.deepcopy and pickle give
        an optimiser that steps on as the original would. torch's hooks are left out, as torch
        does, and the fused path's scratch blocks (rebuilt)."""
        return {k: v for k, v in self.__dict__.items()
                if k != "_workspace" and not (k.startswith("_optimizer_") and k.endswith("hooks"))}

    def __setstate__(self, state: dict) -> None:
        """Restore from :meth:`__getstate__` (torch re-creates the hook tables)."""
        super().__setstate__(state)
        self._workspace = _cpu.Workspace()

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
        for g in _groups.trainable(self.param_groups):
            with_state = [p for p in g.params if "mu" in self.state[p]]
            per = (_core_attributes(_groups.state_of(self.state, with_state, self.t, self.skipped))
                   if with_state else [])
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
        for p in self._params():
            st = self.state[p]
            out.append(st["mu"].clone() if "mu" in st else
                       p.detach().to(state_dtype(p.dtype), copy=True))
        return out

    def import_mu(self, mu) -> None:
        """Set the centre mu (and the look-ahead nu, and the parameters) of each parameter.

        mu <- nu <- the given tensors (copied, cast to the state dtype and the parameter's
        device), parameters <- mu in their dtype; the averages G, V, H, R and the counter are
        kept (state is created first if there was none). Everything is checked before anything
        changes; the next step starts from these values (as from a parameter edited between
        steps, docs/torch.md#parameters-edited-between-steps).

        Args:
            mu: tensors, one per trainable parameter in param-group order (as
                :meth:`export_mu` returns), each of its parameter's shape.

        Raises:
            ValueError: the wrong number of tensors, one that is not a tensor of the
                parameter's shape, or one not finite in the state dtype.
            TypeError: not a list of tensors, or a tensor that is not real floating point.

        Example:
            The parameters follow, and :meth:`export_mu` gives the values back:

            >>> import torch
            >>> p = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
            >>> opt = Alice([p])
            >>> opt.import_mu([torch.tensor([0.5, 2.0])])
            >>> p.tolist(), opt.export_mu()[0].tolist()
            ([0.5, 2.0], [0.5, 2.0])
        """
        params = self._params()
        try:
            mu = list(mu)
        except TypeError:
            raise TypeError(f"import_mu takes a list of tensors, got {type(mu).__name__}") from None
        if len(mu) != len(params):
            raise ValueError(f"import_mu got {len(mu)} tensors for {len(params)} trainable "
                             f"parameters")
        new = {}
        for k, (p, m) in enumerate(zip(params, mu)):
            if not isinstance(m, torch.Tensor) or tuple(m.shape) != tuple(p.shape):
                raise ValueError(f"mu[{k}] must be a tensor of shape {tuple(p.shape)}, got "
                                 f"{tuple(m.shape) if isinstance(m, torch.Tensor) else type(m)}")
            if not m.is_floating_point():
                raise TypeError(f"mu[{k}] has dtype {m.dtype}; mu is real floating point")
            st = dict(self.state[p]) if _groups.has_state(self.state, p) else {}
            fresh = _groups.initial_state(p, m)
            if not bool(torch.isfinite(fresh["mu"]).all()):
                raise ValueError(f"mu[{k}] is not finite in {fresh['mu'].dtype}")
            st = st or fresh
            st["mu"], st["nu"] = fresh["mu"], fresh["nu"]
            new[p] = st
        with commit_section():  # all of it or nothing (Ctrl-C included)
            for p, st in new.items():
                self.state[p] = st
            _groups.centre(params, _groups.state_of(self.state, params, self.t, self.skipped))
            _batch.record(self, params)

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
        # torch's state_dict hooks run around the whole dict, 'alice' entry included: pre-hooks
        # before it is built, post-hooks on it (and what they return is the result).
        return _checkpoint.hooked_state_dict(
            self, lambda: _checkpoint.with_extra(self, super(Alice, self).state_dict()))

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the optimiser from :meth:`state_dict`.

        State tensors keep the state dtype (torch's default would cast them to the parameters'
        dtype, losing the float32 state of half-precision parameters) and move to each
        parameter's device. The parameters themselves are not touched (load the model's state
        dict too).

        Args:
            state_dict: a dict from :meth:`state_dict` (one without the ``'alice'`` entry is
                accepted with a warning: the batch counter restarts at 0).

        Everything is checked before anything changes (:func:`alice_torch._checkpoint.checked`):
        a refused state dict, or an interrupt, leaves the optimiser exactly as it was.

        Raises:
            ValueError: ``betas`` or ``quick_steps`` differ from this optimiser's; counters
                that are not integers >= 0; a generator state the probe generator refuses;
                groups of other sizes, or with a hyperparameter missing or invalid (also in the
                state dtype); state for an unknown parameter, with fields other than mu, nu,
                G, V, H, R, of the wrong shape, not finite, or negative V, H or R.
            TypeError: not a dict, or a state field that is not a real floating tensor.

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
        state_dict = dict(state_dict) if isinstance(state_dict, dict) else state_dict
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():  # torch's hooks
            out = pre_hook(self, state_dict)
            if out is not None:
                state_dict = out
        new = _checkpoint.checked(self, state_dict)  # everything checked, nothing changed
        params = [p for g in self.param_groups for p in g["params"]]
        with commit_section():  # all of it or nothing (Ctrl-C included)
            self.param_groups = new.param_groups
            state = defaultdict(dict)
            state.update(new.state)
            self.state = state
            self._configs = {}
            self.t, self.skipped = (0, 0) if new.counters is None else new.counters
            if new.generator is not None:
                self.generator.set_state(new.generator)
            _batch.forget(self, params)
        for message in new.warnings:
            warnings.warn(message, stacklevel=2)
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def _params(self) -> list:
        """The trainable parameters (requires_grad), in param-group order."""
        return [p for g in _groups.trainable(self.param_groups) for p in g.params]


# -- torch's conventions: the standard flags, the step's entry checks, the hooks ---------------
