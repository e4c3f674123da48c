"""One batch of alice_torch.Alice, written once: :func:`run_batch`
(docs/spec/algorithm.md#one-batch, steps 1-6), the probe draws and RNG replay
(docs/spec/algorithm.md#reference-compatible-randomness), the closure, the gradient checks, the
undo, and :class:`NonFiniteGradientError`.

What differs between the generic path (the core on torch tensors) and the fused one (the CPU
engine on NumPy views) is a strategy of :mod:`alice_torch._strategies`; the mathematics is
:mod:`alice_ref`'s.
"""

from __future__ import annotations

import torch

from alice_ref import NonFiniteGradientError as _CoreNonFiniteGradientError
from alice_ref.core import schedule

from . import _groups
from ._strategies import choose

__all__ = ["EVALUATIONS", "NonFiniteGradientError", "run_batch", "draw_uniforms", "undo"]

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
    (absorb, then Alg. 3); step 6 (parameters at mu). Any exception undoes everything
    (:func:`undo`); a NonFiniteGradientError under nonfinite='skip' is counted instead.
    """
    pair = _closure_form(closure)
    groups = _groups.trainable(opt.param_groups)
    configs = [_groups.group_config(opt._configs, g.index, g.group, opt._base) for g in groups]
    sigmas = [_groups.sigma(g.index, g.group) for g in groups]
    params = [p for g in groups for p in g.params]
    names = [n for g in groups for n in g.names]
    _groups.ensure_state(opt.state, params)
    sched = schedule(opt.t + 1, opt._base)  # steps 1-2
    strategy = choose(opt, groups, configs, sigmas, sched)
    # A failed batch (non-finite gradient, or an exception from the closure) is undone
    # completely, random generators included, as alice_ref.run_batch does: a skipped batch
    # is as if it never happened and a retried one draws the same probes and dropout masks.
    entry = (None if opt.generator is None else opt.generator.get_state(),
             _rng_snapshot(params))
    try:
        strategy.points(draw_uniforms(params, opt.generator) if sched.sample else None)
        replay = _rng_snapshot(params) if sched.sample else None
        grads = {}
        for which in (EVALUATIONS if sched.sample else EVALUATIONS[2:]):
            strategy.load_point(EVALUATIONS.index(which))
            if replay is not None:
                _rng_restore(replay)  # same dropout masks etc. in all three
            loss, outputs = _run_closure(opt, closure, pair)
            grads[which] = _gradients(strategy, params, names, which, sched.t, loss, outputs)
        strategy.update(grads["g0"], grads.get("g+"), grads.get("g-"))
    except NonFiniteGradientError as e:
        undo(opt, groups, entry)
        if opt.nonfinite == "raise":
            raise
        opt.skipped += 1
        return (e.loss, e.outputs) if pair else e.loss
    except BaseException:
        undo(opt, groups, entry)  # never leave the model at a probe point
        raise
    strategy.centre()  # step 6
    opt.t = sched.t
    return (loss, outputs) if pair else loss


def undo(opt, groups, entry) -> None:
    """Parameters back at mu, the probe generator and torch's generators where they were."""
    for g in groups:
        _groups.centre(g.params, _groups.state_of(opt.state, g.params, opt.t, opt.skipped))
    if entry[0] is not None:
        opt.generator.set_state(entry[0])
    _rng_restore(entry[1])


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
    grads = []
    for p in params:
        g = p.grad
        if g is None:  # as the official code: a parameter without gradient gets zeros
            g = torch.zeros_like(p)
        elif g.is_sparse:
            raise TypeError("Alice does not support sparse gradients")
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
