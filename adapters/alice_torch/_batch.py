"""One batch of alice_torch.Alice, written once: :func:`run_batch`
(docs/spec/algorithm.md#one-batch, steps 1-6), the probe draws and RNG replay
(docs/spec/algorithm.md#reference-compatible-randomness), the closure, the gradient checks, the
undo, and :class:`NonFiniteGradientError`.

What differs between the generic path (the core on torch tensors) and the fused one (the CPU
engine on NumPy views) is a strategy of :mod:`alice_torch._strategies`; the mathematics is
:mod:`alice_ref`'s.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import NamedTuple

import torch
from torch.utils.weak import WeakIdKeyDictionary

from alice_ref import NonFiniteGradientError as _CoreNonFiniteGradientError
from alice_ref._atomic import SignalHold
from alice_ref.core import schedule

from . import _dtensor, _groups
from ._numerics import state_dtype
from ._strategies import choose

__all__ = ["EVALUATIONS", "NonFiniteGradientError", "run_batch", "draw_uniforms", "undo",
           "edited", "forget", "record", "probe_rng_digest", "RANK_CHECK_EVERY"]

#: The evaluations of a sample step, in the order of docs/spec/algorithm.md#one-batch, step 3.
EVALUATIONS = ("g+", "g-", "g0")
_WHERE = {"g+": "at nu + sigma z", "g-": "at nu - sigma z", "g0": "at nu"}


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
        >>> from alice_torch import Alice
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


def run_batch(opt, closure):
    """One Alice batch on ``opt`` (an :class:`alice_torch.Alice`); see :meth:`Alice.step`.

    docs/spec/algorithm.md#one-batch: steps 1-2 (:func:`alice_ref.schedule`); step 3, Alg. 2,
    step 1 (draw z); for each evaluation g+, g-, g0 (a quick step, step 4: g0 only) put the
    parameters at the point, replay the RNG, run the closure, check the gradients; steps 3-5
    (absorb, then Alg. 3); step 6 (parameters at mu).

    In three phases (the pattern of :mod:`alice_ref.driver`): :func:`_plan` validates
    everything and changes nothing; the evaluations change only the parameters (put at the
    probe points) and the random generators, which any exception puts back (:func:`undo`); the
    commit writes the state and the counter, and contains nothing that can fail. Python signal
    handlers (KeyboardInterrupt on Ctrl-C, an alarm's handler) are held back for the whole
    batch except while the closure runs (:class:`alice_ref._atomic.SignalHold`), so an
    interrupt either strikes in the closure, whose exception undoes the batch, or is delivered
    after the batch was undone or committed whole: the optimiser is exactly as before the call
    or exactly as after it. A NonFiniteGradientError under nonfinite='skip' is counted instead
    of raised.
    """
    plan = _plan(opt, closure)
    held = SignalHold()
    with held:
        return _run(opt, closure, plan, held)


class _Plan(NamedTuple):
    """What :func:`_plan` checked and prepared (nothing of it is installed yet)."""

    pair: bool
    groups: list
    params: list
    names: list
    sched: object
    strategy: object
    clean: list  # per parameter: its version matched the one recorded at the last commit
    local: object = None  # DTensor parameters: the batch on local tensors (_dtensor.Local)


def _plan(opt, closure) -> _Plan:
    """Everything that can fail, before anything changes: the closure's form, each group's
    config and sigma (checked in the state dtype they will be used in), shared parameters,
    the ranks' probe generators, the state each parameter starts from, the strategy."""
    pair = _closure_form(closure)
    # A group at lr = 0 sits the batch out (_groups.frozen); the batch is still counted.
    groups = [g for g in _groups.trainable(opt.param_groups) if not _groups.frozen(g.group)]
    configs = [_groups.group_config(opt._configs, g.index, g.group, opt._base) for g in groups]
    sigmas = [_groups.sigma(g.index, g.group) for g in groups]
    for g, c, s in zip(groups, configs, sigmas):
        for dt in sorted({str(state_dtype(p.dtype)) for p in g.params}):
            try:
                c.check_dtype(dt.replace("torch.", ""), s)
            except ValueError as e:
                raise ValueError(f"parameter group {g.index}: {e}") from None
    params = [p for g in groups for p in g.params]
    names = [n for g in groups for n in g.names]
    _check_unique(params, names)
    states, clean = _starting_states(opt, params, names)
    sched = schedule(opt.t + 1, opt._base)  # steps 1-2
    _check_ranks(opt, params, sched)
    local = _dtensor.localise(opt, groups, params, states)  # FSDP2: the strategy sees shards
    if local is None:
        strategy = choose(opt, groups, configs, sigmas, sched, states)
    else:
        strategy = choose(local.view, local.groups, configs, sigmas, sched, local.states)
    return _Plan(pair, groups, params, names, sched, strategy, clean, local)


def _run(opt, closure, plan: _Plan, held):
    """The evaluations and the commit of a planned batch (signal handlers held by ``held``)."""
    params, names, sched, strategy = plan.params, plan.names, plan.sched, plan.strategy
    # A failed batch (non-finite gradient, or an exception from the closure) is undone
    # completely, random generators included, as alice_ref.run_batch does: a skipped batch
    # is as if it never happened and a retried one draws the same probes and dropout masks.
    entry = (None if opt.generator is None else opt.generator.get_state(),
             _rng_snapshot(params))
    done = False
    try:
        strategy.points(_dtensor.local_uniforms(params, draw_uniforms(params, opt.generator))
                        if sched.sample else None)
        replay = _rng_snapshot(params) if sched.sample else None
        grads = {}
        for which in (EVALUATIONS if sched.sample else EVALUATIONS[2:]):
            strategy.load_point(EVALUATIONS.index(which))
            if replay is not None:
                _rng_restore(replay)  # same dropout masks etc. in all three
            with held.released():  # the closure may be interrupted: the except undoes it
                loss, outputs = _run_closure(opt, closure, plan.pair)
            grads[which] = _gradients(strategy, params, names, which, sched.t, loss, outputs)
        strategy.prepare(grads["g0"], grads.get("g+"), grads.get("g-"))
        del grads
        # The commit: nothing below can fail (everything was checked above).
        if plan.local is None:
            for p in params:
                st = strategy.states_by_param[p]
                if opt.state.get(p) is not st:
                    opt.state[p] = st
            strategy.commit()  # steps 3-6
        else:
            plan.local.commit(opt, strategy)  # the same on the local shards
        opt.t = sched.t
        record(opt, params)
        done = True
    except NonFiniteGradientError as e:
        held.hold()  # (it is held; this only makes sure)
        undo(opt, plan, entry)
        if opt.nonfinite == "raise":
            raise
        opt.skipped += 1
        return (e.loss, e.outputs) if plan.pair else e.loss
    except BaseException:
        held.hold()
        if not done:
            undo(opt, plan, entry)  # never leave the model at a probe point
        raise
    return (loss, outputs) if plan.pair else loss


def undo(opt, plan: _Plan, entry) -> None:
    """Parameters back where they were before the batch (mu, or a parameter's edited value),
    the probe generator and torch's generators where they were; the versions recorded for the
    parameters that were not edited follow the restore."""
    states = plan.strategy.states_by_param
    for g in (plan.groups if plan.local is None else plan.local.groups):
        _groups.centre(g.params, _groups.state_of(states, g.params, opt.t, opt.skipped))
    if entry[0] is not None:
        opt.generator.set_state(entry[0])
    _rng_restore(entry[1])
    record(opt, [p for p, c in zip(plan.params, plan.clean) if c])


# -- parameters edited between steps, parameters shared (docs/torch.md#reliability) ----------

# parameter -> (weak reference to the Alice that committed it last, the parameter's version
# counter and data pointer right after that commit: _stamp). Weak both ways: it keeps neither alive.
_LAST = WeakIdKeyDictionary()
# optimiser -> the parameters it has committed (so that a second optimiser taking over a
# parameter, e.g. one resumed from a checkpoint, is told apart from two stepping it in turn).
_STEPPED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def record(opt, params) -> None:
    """After a commit (or an undo): ``opt`` owns ``params`` at their current versions."""
    mine = _STEPPED.get(opt)
    if mine is None:
        mine = _STEPPED[opt] = WeakIdKeyDictionary()
    ref = weakref.ref(opt)
    for p in params:
        _LAST[p] = (ref, _stamp(p))
        mine[p] = True


def forget(opt, params) -> None:
    """Drop what is recorded of ``opt`` and ``params`` (a loaded state dict starts afresh: the
    model's parameters are loaded separately, and must not count as edits)."""
    mine = _STEPPED.get(opt)
    for p in params:
        last = _LAST.get(p)
        if last is not None and last[0]() is opt:
            del _LAST[p]
        if mine is not None and p in mine:
            del mine[p]


def edited(opt, p) -> bool:
    """Whether ``p`` was written since ``opt`` last committed it (torch's version counter:
    any in-place write through the parameter or a view of it counts, and so does replacing
    ``p.data``; writing into ``p.data`` or a NumPy view in place does not)."""
    last = _LAST.get(p)
    return last is not None and last[0]() is opt and last[1] != _stamp(p)


def _stamp(p) -> tuple:
    """What tells a write: torch's version counter (in-place writes) and the data pointer
    (``p.data = x``, as torch.nn.utils.prune.remove does)."""
    p = _dtensor.local(p)  # a DTensor parameter: its local shard (which writes go to)
    return p._version, p.data_ptr()


def _starting_states(opt, params, names):
    """Per parameter the state this batch starts from, and whether it was left as committed.

    A parameter without state gets :func:`alice_torch._groups.initial_state` (not installed
    until the commit: a failed first batch leaves no state behind). A parameter written since
    the last commit (pruned, clamped, rolled back with ``model.load_state_dict``...) is adopted:
    mu = nu = its current value (docs/torch.md#parameters-edited-between-steps); a parameter
    last committed by another live Alice that this one has committed before is refused.
    """
    states, clean = {}, []
    mine = _STEPPED.get(opt)
    for p, name in zip(params, names):
        last = _LAST.get(p)
        other = None if last is None else last[0]()
        if other is not None and other is not opt and mine is not None and p in mine:
            raise ValueError(
                f"parameter {name} is also updated by another Alice optimiser, which wrote it "
                f"after this one: each would silently overwrite the other's update; give each "
                f"parameter to one optimiser (separate parameter groups of one Alice can have "
                f"their own hyperparameters)")
        st = opt.state.get(p)
        if st is None or "mu" not in st:
            states[p] = _groups.initial_state(p)
            clean.append(False)
        elif last is not None and other is opt and last[1] != _stamp(p):
            new = dict(st)  # the averages are kept
            new["mu"] = _adopted(p, st["mu"])
            new["nu"] = new["mu"].clone()
            states[p] = new
            clean.append(False)
        else:
            states[p] = st
            clean.append(True)
    return states, clean


def _adopted(p, like):
    """The parameter's current value as a new centre, in the state's dtype and device."""
    if _dtensor.is_dtensor(p):
        return _dtensor.initial_state(p)["mu"]
    mu = torch.empty(like.shape, dtype=like.dtype, device=like.device)
    mu.copy_(p.detach())
    return mu


def _check_unique(params, names) -> None:
    """ValueError for a parameter listed twice (it would be updated twice per batch)."""
    seen: dict = {}
    for p, n in zip(params, names):
        k = id(p)
        if k in seen:
            raise ValueError(f"parameter {n} is the same tensor as {seen[k]}: a parameter may "
                             f"appear once among the optimiser's parameter groups")
        seen[k] = n


# -- ranks under torch.distributed (docs/torch.md#distributeddataparallel) ----------------------

#: After the first batch of each optimiser, the ranks' probe generators are compared every
#: this many batches (one all-reduce of two int64).
RANK_CHECK_EVERY = 100


def _check_ranks(opt, params, sched) -> None:
    """Under torch.distributed (initialised, world size > 1): one all-reduce (MAX) of a 62-bit
    digest of the probe generator's state and of its negation; ranks that would draw different
    probes raise the same error on every rank. At the first batch of this optimiser and every
    :data:`RANK_CHECK_EVERY` batches."""
    if getattr(opt, "_ranks_checked", False) and sched.t % RANK_CHECK_EVERY:
        return
    dist = getattr(torch, "distributed", None)
    if (dist is None or not dist.is_available() or not dist.is_initialized()
            or dist.get_world_size() < 2):
        return
    h = probe_rng_digest(opt.generator, params)
    device = (torch.device("cuda", torch.cuda.current_device())
              if dist.get_backend() == "nccl" else torch.device("cpu"))
    both = torch.tensor([h, -h], dtype=torch.int64, device=device)
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    hi, lo = int(both[0]), -int(both[1])
    if hi != lo:
        which = ("the probe generator (Alice(..., generator=...))" if opt.generator is not None
                 else "torch's default generator")
        raise RuntimeError(
            f"the ranks would draw different probes at batch {sched.t}: the state of {which} "
            f"differs between ranks (digests {lo} .. {hi}); DistributedDataParallel averages "
            f"the gradients, so the parameters stay equal, but each rank's H and R would "
            f"average other probes. Pass Alice(..., generator=torch.Generator()"
            f".manual_seed(SEED)) with the same SEED on every rank (docs/torch.md)")
    opt._ranks_checked = True


def probe_rng_digest(generator, params) -> int:
    """A 62-bit digest of the state the probe draws come from: ``generator``'s, or the default
    generators of the parameters' devices."""
    if generator is not None:
        states = [generator.get_state()]
    else:
        states = [torch.get_rng_state()] if any(p.device.type != "cuda" for p in params) else []
        states += list(_rng_snapshot(params)[1].values())
    h = hashlib.blake2b(digest_size=8)
    for s in states:
        h.update(s.cpu().numpy().tobytes())
    return int.from_bytes(h.digest(), "little") >> 2


# -- signal handlers held back (the batch's commit section) ----------------------------------

def _closure_form(closure) -> bool:
    """True for the official pair (model_func, loss_func), False for a torch closure."""
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
    return pair


def _run_closure(opt, closure, pair):
    """Zero the gradients and run one closure form; return (loss, outputs or None)."""
    opt.zero_grad(set_to_none=True)
    with torch.enable_grad():
        if not pair:
            return closure(), None
        model_func, loss_func = closure
        outputs = model_func()
        loss = loss_func(outputs)
        loss.backward()
        return loss, outputs


def _gradients(strategy, params, names, which, t, loss, outputs) -> list:
    """The gradients of one evaluation, in the strategy's keeping; NonFiniteGradientError
    naming the first parameter with a NaN/Inf."""
    if params and all(p.grad is None for p in params):
        raise RuntimeError(f"evaluation {which} ({_WHERE[which]}) of batch {t} gave no gradient "
                           f"to any trainable parameter: the closure must call "
                           f"loss.backward() (Alice zeroes the gradients before each "
                           f"evaluation); nothing changed")
    grads = []
    for p in params:
        g, p = _dtensor.local(p.grad), _dtensor.local(p)  # DTensors: the local shards
        if g is None:  # as the official code: a parameter without gradient gets zeros
            g = torch.zeros_like(p)
        elif g.is_sparse:
            raise RuntimeError("Alice does not support sparse gradients")
        else:
            g = strategy.gradient(g.detach(), p)
        grads.append(g)
    bad = strategy.first_nonfinite(grads)
    if bad is not None:
        raise NonFiniteGradientError(bad, names[bad], which, t, loss, outputs)
    return grads


# -- randomness (docs/spec/algorithm.md#reference-compatible-randomness) ----------------------

def draw_uniforms(params, generator):
    """u = torch.rand(numel, dtype) per parameter, in order, from ``generator`` (default: torch's
    default generator of the parameter's device), moved to the parameter's device.

    Lazy: draws on CPU go into one reused buffer per dtype (``torch.rand(..., out=)`` draws the
    same numbers), so each u must be used before the next is drawn.
    """
    gen = generator
    on_cpu = [(p.device.type if gen is None else gen.device.type) == "cpu" for p in params]
    sizes: dict = {}
    for p, c in zip(params, on_cpu):
        if c:
            sizes[p.dtype] = max(sizes.get(p.dtype, 0), p.numel())
    bufs = {d: torch.empty(n, dtype=d) for d, n in sizes.items()}
    for p, c in zip(params, on_cpu):
        if c:
            u = torch.rand(p.numel(), dtype=p.dtype, generator=gen, out=bufs[p.dtype][:p.numel()])
        elif gen is None:
            u = torch.rand(p.numel(), dtype=p.dtype, device=p.device)
        else:
            u = torch.rand(p.numel(), dtype=p.dtype, device=gen.device, generator=gen)
        yield u if u.device == p.device else u.to(p.device)


def _rng_snapshot(params):
    cuda = sorted({p.device.index if p.device.index is not None else
                   torch.cuda.current_device() for p in params if p.device.type == "cuda"})
    return torch.get_rng_state(), {d: torch.cuda.get_rng_state(d) for d in cuda}


def _rng_restore(snapshot) -> None:
    cpu, cuda = snapshot
    torch.set_rng_state(cpu)
    for d, s in cuda.items():
        torch.cuda.set_rng_state(s, d)
