"""Batch driver for NumPy/CuPy (or any array-API) users of the functional Alice core.

``value_and_grad(params) -> (loss, grads)`` evaluates the current minibatch at the given
parameters (a list of arrays, the model's dtypes). :func:`run_batch` performs the 3 (sample step)
or 1 (quick step) evaluations in ALICE.md's order, checks them for non-finite values before any
state changes, absorbs them and updates the state. Probes come from a seeded NumPy Generator.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np

from ._xp import array_namespace, device, to_numpy
from .alice import (AliceConfig, AliceState, absorb_quick, absorb_sample, apply_update, attributes,
                    init, params_of, probe_points, schedule, state_from_dict, state_to_dict)

__all__ = ["NonFiniteGradientError", "draw_rademacher", "run_batch", "Alice", "minimize"]

EVALUATIONS = ("g+", "g-", "g0")


class NonFiniteGradientError(FloatingPointError):
    """A gradient evaluation contained NaN or Inf; the optimiser state was left unchanged."""

    def __init__(self, index: int, evaluation: str, t: int):
        self.index, self.evaluation, self.t = index, evaluation, t
        super().__init__(f"non-finite gradient in parameter {index} at evaluation {evaluation} of "
                         f"batch {t}; the optimiser state is unchanged (nonfinite='skip' ignores "
                         f"such batches)")


def draw_rademacher(rng: np.random.Generator, like: Sequence) -> list:
    """One Rademacher vector per parameter, in order: u ~ U[0,1) per element, z = -1 where
    u < 0.5 else +1 (the official convention), in each array's namespace, device and dtype."""
    out = []
    for p in like:
        xp = array_namespace(p)
        u = rng.random(size=tuple(p.shape))
        out.append(xp.asarray(np.where(u < 0.5, -1.0, 1.0), dtype=p.dtype, device=device(p)))
    return out


def _check_lr(lr) -> float:
    """The current learning rate as a float: TypeError unless a real scalar (a 0-d array from a
    scheduler is fine), ValueError unless finite and > 0."""
    if isinstance(lr, (bool, str, bytes)):
        raise TypeError(f"lr must be a real number, got {lr!r}")
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise TypeError(f"lr must be a real number, got {lr!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"lr must be finite and > 0, got {lr!r}")
    return value


def _rng_position(rng):
    """A copy of a NumPy Generator's position (None for other sources of probes)."""
    bg = getattr(rng, "bit_generator", None)
    return None if bg is None else copy.deepcopy(bg.state)


def _restore_rng(rng, saved) -> None:
    if saved is not None:
        rng.bit_generator.state = saved


def _first_nonfinite(grads) -> int | None:
    for i, g in enumerate(grads):
        xp = array_namespace(g)
        if not bool(xp.all(xp.isfinite(g))):
            return i
    return None


def run_batch(state: AliceState, config: AliceConfig, value_and_grad: Callable, rng,
              *, like: Sequence | None = None, lr: float | None = None, probes=None):
    """One Alice batch. Returns (new_state, loss at nu).

    ``like``: the model's parameters (their dtypes are used for evaluation points; default the
    state's). ``lr``: the current learning rate = sigma (default config.lr). ``probes``: optional
    list of z arrays overriding the draw from ``rng`` (tests use it to inject signs). With
    nonfinite='raise' a NaN/Inf gradient raises NonFiniteGradientError naming the parameter and
    the evaluation; with 'skip' the batch is ignored and counted in ``state.skipped``. In both
    cases the returned/kept state is exactly the old one, and a NumPy Generator ``rng`` is put
    back where it was before the batch (so a skipped batch is as if it never happened, and a
    retried one draws the same probes). ``lr`` must be a finite number > 0 (ValueError/TypeError
    before anything changes).
    """
    sched = schedule(state.t + 1, config)
    if lr is not None:
        lr = _check_lr(lr)
    sigma = config.lr if lr is None else lr
    like = list(state.mu) if like is None else list(like)
    saved_rng = _rng_position(rng) if sched.sample and probes is None else None

    def evaluate(points, which):
        loss, grads = value_and_grad(points)
        grads = list(grads)
        bad = _first_nonfinite(grads)
        if bad is not None:
            raise NonFiniteGradientError(bad, which, sched.t)
        return loss, grads

    try:
        if sched.sample:
            z = draw_rademacher(rng, state.mu) if probes is None else list(probes)
            plus, minus, nu = probe_points(state, z, sigma, like)
            _, gp = evaluate(plus, "g+")
            _, gm = evaluate(minus, "g-")
            loss, g0 = evaluate(nu, "g0")
            new = absorb_sample(state, sched, gp, gm, g0, config, sigma)
        else:
            loss, g0 = evaluate(probe_points(state, None, sigma, like)[2], "g0")
            new = absorb_quick(state, sched, g0, config)
    except NonFiniteGradientError:
        _restore_rng(rng, saved_rng)
        if config.nonfinite == "raise":
            raise
        return state._replace(skipped=state.skipped + 1), None
    except BaseException:
        _restore_rng(rng, saved_rng)  # any failed evaluation leaves the RNG where it was, too
        raise
    return apply_update(new, sched, config, lr), loss


class Alice:
    """Stateful convenience wrapper around the functional core for NumPy/CuPy users.

    >>> import numpy as np
    >>> from alice_ref.landscapes import Quadratic
    >>> q = Quadratic(4, seed=0)
    >>> opt = Alice([np.zeros(4)], lr=0.05, betas=(0.75, 0.999), seed=0)
    >>> for _ in range(200):
    ...     _ = opt.step(lambda p: (q.loss(p[0]), [q.grad(p[0])]))
    >>> bool(q.loss(opt.params[0]) < q.loss(np.zeros(4)))
    True
    """

    def __init__(self, params, config: AliceConfig | None = None, *, seed=0, rng=None, **hyper):
        if config is not None and hyper:
            raise TypeError("give either config or hyperparameters, not both")
        self.config = config if config is not None else AliceConfig(**hyper)
        self._like = list(params)
        self.state = init(self._like, self.config)
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.lr = self.config.lr

    @property
    def params(self) -> list:
        """mu, in the parameters' dtypes (what inference and checkpoints see)."""
        return params_of(self.state, self._like)

    @property
    def mu(self) -> list:
        """The centre mu in the state dtype."""
        return list(self.state.mu)

    def step(self, value_and_grad: Callable, probes=None):
        """Run one batch (see :func:`run_batch`); returns the loss at nu (None if skipped)."""
        self.state, loss = run_batch(self.state, self.config, value_and_grad, self.rng,
                                     like=self._like, lr=self.lr, probes=probes)
        return loss

    def attributes(self) -> list[dict]:
        """Per parameter array: mean glass density and mean curvature."""
        return attributes(self.state)

    def state_dict(self) -> dict:
        """Everything needed for a bit-identical resume: state arrays, counters, lr, RNG state."""
        d = {k: (np.array(to_numpy(v), copy=True) if hasattr(v, "shape") else v)
             for k, v in state_to_dict(self.state).items()}
        d["lr"] = self.lr
        d["rng"] = copy.deepcopy(self.rng.bit_generator.state)
        return d

    def load_state_dict(self, d: dict) -> None:
        """Restore from :meth:`state_dict` (arrays go to the parameters' namespace and device)."""
        new = state_from_dict(d, like=self.state.mu)
        new = new._replace(**{f: tuple(array_namespace(p).astype(x, p.dtype)
                                       for x, p in zip(getattr(new, f), self.state.mu))
                              for f in ("mu", "nu", "G", "V", "H", "R")})
        self.rng.bit_generator.state = copy.deepcopy(d["rng"])
        self.lr = float(d.get("lr", self.config.lr))
        self.state = new


def minimize(value_and_grad: Callable, params, n_batches: int, *, config: AliceConfig | None = None,
             seed=0, callback: Callable | None = None, **hyper):
    """Run ``n_batches`` Alice batches from ``params``. ``callback(t, loss, opt)`` is called after
    each batch (e.g. to drive a progress bar); returning True stops early. Returns the Alice
    wrapper (``.params``, ``.state``) and the list of losses at nu."""
    if int(n_batches) < 0:
        raise ValueError(f"n_batches must be >= 0, got {n_batches!r}")
    opt = Alice(params, config, seed=seed, **hyper)
    losses = []
    for _ in range(int(n_batches)):
        loss = opt.step(value_and_grad)
        losses.append(loss)
        if callback is not None and callback(opt.state.t, loss, opt):
            break
    return opt, losses
