"""Step functions for the conformance kit over three real implementations.

Each is a ``make_step(config) -> step(state, probes, grads) -> state`` for
:func:`alice_ref.conformance.check`:

- :func:`core_step`: alice_ref's own core, through its batch driver ``alice_ref.run_batch``
  (probes injected with ``probes=``, the gradients returned by ``value_and_grad``);
- :func:`torch_step`: ``alice_torch.Alice`` through its public API only (constructor,
  ``step(closure)``, ``state_dict()``): the closure writes the recorded gradient into each
  parameter's ``.grad``;
- :func:`jax_step`: ``alice_jax.alice`` through ``init``/``update`` with ``grad_fn`` returning
  the recorded g+ and g-, and its probe hook ``_probe_fn`` returning the recorded z.

Probes. The state after a batch does not depend on z once the gradients are given (h_hat =
(g+ - g-)/(2 sigma) has no z: docs/spec/algorithm.md#one-batch, step 3): z only says where the
gradients were taken. alice_torch draws its own z from its ``generator`` (it has no public
seam to inject them), so :func:`torch_step` checks instead that its three evaluations are at
nu + sigma z', nu - sigma z' and nu for a sign vector z' of its own.
"""

from __future__ import annotations

import numpy as np

from alice_ref.core import FIELDS, AliceConfig, AliceState
from alice_ref.driver import run_batch

__all__ = ["core_step", "torch_step", "jax_step", "config_kwargs"]


def config_kwargs(config: dict) -> dict:
    """The hyperparameters as keyword arguments (betas a tuple), e.g. for AliceConfig."""
    kw = dict(config)
    kw["betas"] = tuple(kw["betas"])
    return kw


def _as_core_state(state) -> AliceState:
    if isinstance(state, AliceState):
        return state
    return AliceState(int(state["t"]), *(tuple(state[f]) for f in FIELDS))


def core_step(config: dict, *, engine=None):
    """alice_ref's core as a conformance step (``alice_ref.run_batch`` on the given arrays).

    Args:
        config: the case's hyperparameters (official names).
        engine: passed to run_batch (None: the engine it selects; 'core': the reference).

    Returns:
        ``step(state, probes, grads) -> AliceState``; raises ValueError when the core's
        schedule asks for a different number of gradients than the recording gives.
    """
    cfg = AliceConfig(**config_kwargs(config))

    def step(state, probes, grads):
        state = _as_core_state(state)
        calls = []

        def value_and_grad(points):
            if len(calls) >= len(grads):
                raise ValueError(f"batch t = {state.t + 1}: the core evaluates more than the "
                                 f"{len(grads)} recorded gradients")
            calls.append(1)
            return 0.0, list(grads[len(calls) - 1])

        new, _ = run_batch(state, cfg, value_and_grad, None, probes=probes, engine=engine)
        if len(calls) != len(grads):
            raise ValueError(f"batch t = {new.t}: the core evaluated {len(calls)} times, the "
                             f"recording has {len(grads)} gradients")
        return new
    return step


def torch_step(config: dict, *, fused=None, seed: int = 0):
    """``alice_torch.Alice`` as a conformance step, through its public API.

    The first call builds the optimiser on float parameters holding the case's initial mu
    (one flat ``torch.nn.Parameter`` per parameter, in the case's dtype) with
    ``generator=torch.Generator().manual_seed(seed)``; each call runs ``opt.step(closure)``,
    where the closure puts the recorded gradient of each evaluation into ``p.grad``; the state
    comes from ``opt.state_dict()``. The closure also checks where Alice evaluates:
    nu + sigma z', nu - sigma z', nu, with z' in {-1, +1} (its own draws).

    Args:
        config: the case's hyperparameters. fused: Alice's ``fused`` option. seed: the seed
            of the probe generator.
    """
    import torch
    from alice_torch import Alice

    held = {}

    def step(state, probes, grads):
        if "opt" not in held:
            params = [torch.nn.Parameter(torch.as_tensor(np.array(_np(m))).clone())
                      for m in state["mu"]]
            held["params"] = params
            held["opt"] = Alice(params, generator=torch.Generator().manual_seed(seed),
                                fused=fused, **config_kwargs(config))
        opt, params = held["opt"], held["params"]
        sigma = opt.param_groups[0]["lr"]
        nu = [opt.state[p]["nu"].detach().clone() if "nu" in opt.state[p] else p.detach().clone()
              for p in params]
        calls = []

        def closure():
            k = len(calls)
            if k >= len(grads):
                raise ValueError(f"alice_torch evaluated more than the {len(grads)} recorded "
                                 f"gradients")
            where = [p.detach() - n for p, n in zip(params, nu)]
            if k == 0 and len(grads) == 3:
                held["z"] = [torch.sign(w) for w in where]
            want = ([sigma * z for z in held["z"]], [-sigma * z for z in held["z"]],
                    [torch.zeros_like(w) for w in where])[k if len(grads) == 3 else 2]
            for w, v in zip(where, want):
                if not torch.allclose(w, v.to(w.dtype), rtol=1e-5, atol=1e-6 * sigma):
                    raise ValueError(f"alice_torch evaluation {k} is not at the expected point")
            calls.append(k)
            for p, g in zip(params, grads[k]):
                p.grad = torch.as_tensor(np.array(_np(g))).to(p.dtype).reshape(p.shape)
            return torch.zeros((), dtype=torch.float64)

        opt.step(closure)
        if len(calls) != len(grads):
            raise ValueError(f"alice_torch evaluated {len(calls)} times, the recording has "
                             f"{len(grads)} gradients")
        sd = opt.state_dict()
        out = {"t": sd["alice"]["t"]}
        for f in FIELDS:
            out[f] = [sd["state"][i][f] for i in range(len(params))]
        return out
    return step


def jax_step(config: dict):
    """``alice_jax.alice`` as a conformance step (float64 cases need jax_enable_x64).

    ``tx = alice_jax.alice(lr, _probe_fn=..., **rest)``: its probe hook returns the recorded z
    (the only seam alice_jax has today, documented as a test hook, not public API); each call
    runs ``tx.update(g0, state, nu, grad_fn=...)``, where ``grad_fn`` returns the recorded g+
    then g- (in the order alice_jax traces them), and applies the updates to nu. The state
    read back: count, mu, G, V, H, R and nu.
    """
    import alice_jax
    import jax
    import jax.numpy as jnp
    import optax

    kw = config_kwargs(config)
    cfg = AliceConfig(**kw)
    tx_warmup, kw_q = int(cfg.warmup), cfg.quick_steps  # to name a schedule mismatch
    current = {}

    def probe_fn(key, t, nu):
        return current["z"]

    tx = alice_jax.alice(kw.pop("lr"), _probe_fn=probe_fn, **kw)
    held = {}

    def one_batch(st, params, z, gp, gm, g0):
        current["z"] = z  # traced: alice_jax's probe hook reads it while update is traced
        calls = []

        def grad_fn(point):
            calls.append(1)
            return (gp, gm)[len(calls) - 1] if len(calls) <= 2 else gm

        updates, st = tx.update(g0, st, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), st

    compiled = jax.jit(one_batch)

    def step(state, probes, grads):
        if "state" not in held:
            params = [jnp.asarray(np.array(_np(m))) for m in state["mu"]]
            if params and params[0].dtype != np.asarray(_np(state["mu"][0])).dtype:
                raise TypeError("alice_jax: float64 cases need jax.config.update("
                                "'jax_enable_x64', True)")
            held["params"], held["state"] = params, tx.init(params)
        params, st = held["params"], held["state"]
        g = [[jnp.asarray(np.array(_np(x))) for x in gs] for gs in grads]
        zeros = [jnp.zeros_like(p) for p in params]
        z = ([jnp.asarray(np.array(_np(x))) for x in probes] if probes is not None
             else [jnp.ones_like(p) for p in params])
        gp, gm = (g[0], g[1]) if len(g) == 3 else (zeros, zeros)  # unused on a quick step
        sample = bool(int(st.count) + 1 <= int(tx_warmup) or
                      (int(st.count) + 1) % (kw_q + 1) == 0)
        if sample != (len(g) == 3):
            raise ValueError(f"batch t = {int(st.count) + 1}: alice_jax's schedule and the "
                             f"recording disagree on a sample step")
        params, st = compiled(st, params, z, gp, gm, g[-1])
        held["params"], held["state"] = params, st
        if int(st.skipped):
            raise ValueError("alice_jax skipped the batch (non-finite evaluation)")
        out = {"t": int(st.count), "nu": list(params)}
        for f in ("mu", "G", "V", "H", "R"):
            out[f] = list(getattr(st, f))
        return out
    return step


def _np(x):
    from alice_ref._xp import to_numpy
    return to_numpy(x)
