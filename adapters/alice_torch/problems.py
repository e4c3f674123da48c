"""torch models for the curvature diagnostics (``alice-ref probe``): ``from_torch``.

:func:`from_torch` builds the gradient callable of a torch.nn.Module on a fixed batch with
``torch.func.functional_call`` and returns the fields of ``alice_ref.tools.diagnostics.Problem``
(the adapters sit below the tools layer, which owns the Problem type)::

    from alice_ref.tools import diagnostics as D
    from alice_torch.problems import from_torch

    problem = D.Problem(*from_torch(model, loss_fn, inputs, targets))
    report = D.diagnose(problem, sigma=1e-2)
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch.func import functional_call

__all__ = ["from_torch"]


def from_torch(model, loss_fn: Callable, inputs, targets, *, groups: str = "parameters",
               seed: int | None = 0) -> tuple:
    """The diagnostics problem of a torch.nn.Module on one fixed batch.

    loss = loss_fn(model(inputs), targets), evaluated with torch.func.functional_call at
    detached copies of the trainable parameters (the model itself is not modified). ``groups``:
    'parameters' (one group per named parameter) or 'modules' (parameters grouped by their
    owning module's name). ``seed``: when not None each evaluation runs under
    torch.random.fork_rng with this seed, so dropout-like randomness is the same at every
    evaluation point (as Alice's RNG save/restore); put the model in eval() mode otherwise.

    Args:
        model: a torch.nn.Module.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``.
        inputs: the batch's inputs.
        targets: the batch's targets.
        groups: 'parameters' or 'modules'.
        seed: torch seed for every evaluation, or None.

    Returns:
        ``(value_and_grad, params, groups, loss)`` over detached copies of the trainable
        parameters: the fields of ``alice_ref.tools.diagnostics.Problem``, in order.

    Raises:
        ValueError: an unknown ``groups``, or a model without trainable parameters.

    Example:
        A linear layer: one group per parameter, or one for the module; the loss
        sum(w x)^2 at w = 0 has zero gradient:

        >>> import torch
        >>> model = torch.nn.Linear(2, 1, bias=False)
        >>> _ = torch.nn.init.zeros_(model.weight)
        >>> x, y = torch.ones(1, 2), torch.zeros(1, 1)
        >>> value_and_grad, params, groups, _ = from_torch(model, torch.nn.functional.mse_loss,
        ...                                                x, y)
        >>> groups, from_torch(model, torch.nn.functional.mse_loss, x, y, groups="modules")[2]
        ({'weight': [0]}, {'weight': [0]})
        >>> loss, grads = value_and_grad(params)
        >>> float(loss), grads[0].tolist()
        (0.0, [[0.0, 0.0]])
    """
    if groups not in ("parameters", "modules"):
        raise ValueError(f"groups must be 'parameters' or 'modules', got {groups!r}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")
    names = [n for n, _ in named]
    params = [p.detach().clone() for _, p in named]

    def run(ps, need_grad):
        # manual_seed also seeds CUDA: fork every CUDA device too, so the caller's RNG is kept
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        ctx = torch.random.fork_rng(devices=cuda) if seed is not None else nullcontext()
        with ctx:
            if seed is not None:
                torch.manual_seed(seed)
            if need_grad:
                leaves = [p.detach().requires_grad_(True) for p in ps]
                loss = loss_fn(functional_call(model, dict(zip(names, leaves)), (inputs,)),
                               targets)
                grads = torch.autograd.grad(loss, leaves, allow_unused=True)
                grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves)]
                return loss.detach(), grads
            with torch.no_grad():
                return loss_fn(functional_call(model, dict(zip(names, list(ps))), (inputs,)),
                               targets).detach()

    if groups == "parameters":
        gmap = {n: [i] for i, n in enumerate(names)}
    else:
        gmap = {}
        for i, n in enumerate(names):
            gmap.setdefault(n.rsplit(".", 1)[0] if "." in n else n, []).append(i)
    return (lambda ps: run(ps, True)), params, gmap, (lambda ps: run(ps, False))

