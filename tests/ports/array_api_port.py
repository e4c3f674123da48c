"""A port of Alice written from docs/spec/algorithm.md alone, on the Python array API standard.

This is the worked port of docs/porting.md: what a porter writes for a library alice_ref's
test matrix does not cover (here dask.array, through array-api-compat). It imports nothing from
alice_ref: every line comes from the spec's "One batch", and each function cites its step.
The state is a dict {'t', 'mu', 'nu', 'G', 'V', 'H', 'R'}, each field a list with one array
per parameter. The kit's tests replace single functions of this module to build the mutants
(tests/test_conformance_kit.py).
"""

from __future__ import annotations

import math
from fractions import Fraction

from array_api_compat import array_namespace

GLASS = 3.0 / (4.0 * math.pi)  # 3/(4 pi): Alg. 3, step 1


def warmup_batches(beta1: float) -> int:
    """The last warm-up batch: t <= 1/(1 - beta1), computed exactly from the decimal beta1
    (docs/spec/algorithm.md#known-quirk-the-warm-up-length)."""
    return math.floor(1 / (1 - Fraction(repr(float(beta1)))))


def weights(t: int, config: dict):
    """docs/spec/algorithm.md#one-batch, step 1: beta_kt = min(beta_k, (t-1)/t)."""
    b1, b2 = config["betas"]
    b3 = 1.0 - (config["quick_steps"] + 1) * (1.0 - b2)
    w = (t - 1) / t
    return min(b1, w), min(b2, w), min(b3, w)


def is_warmup(t: int, config: dict) -> bool:
    """docs/spec/algorithm.md#one-batch, step 2: warm-up iff t <= 1/(1 - beta1)."""
    return t <= warmup_batches(config["betas"][0])


def is_update(t: int, config: dict) -> bool:
    """docs/spec/algorithm.md#one-batch, step 5: the state update runs iff t > 1/(1 - beta1)."""
    return t > warmup_batches(config["betas"][0])


def is_sample(t: int, config: dict) -> bool:
    """docs/spec/algorithm.md#one-batch, step 2: sample step iff warm-up or t mod (q+1) = 0."""
    return is_warmup(t, config) or t % (config["quick_steps"] + 1) == 0


def ema(S, x, beta):
    """EMA_beta(S, x) = x + beta (S - x)."""
    return x + beta * (S - x)


def curvature_sample(gp, gm, sigma, config):
    """docs/spec/algorithm.md#one-batch, step 3: h = (g+ - g-)/(2 sigma), kept as h^2 + w2^2
    ('rms') or |h| + w2."""
    xp = array_namespace(gp)
    h = (gp - gm) / (2.0 * sigma)
    w2 = config["w2"]
    return h * h + w2 * w2 if config["hess_comp"] == "rms" else xp.abs(h) + w2


def glass_sample(gp, gm, g0, sigma):
    """docs/spec/algorithm.md#one-batch, step 3: rho = 2 (gbar - g0)^2 / sigma."""
    gbar = (gp + gm) / 2.0
    return 2.0 * (gbar - g0) ** 2 / sigma


def gradient_sample(g0, nu, config):
    """docs/spec/algorithm.md#one-batch, step 3: g0 + w1 s(nu) + w2 nu, s(nu) = -1 if nu < 0
    else +1."""
    xp = array_namespace(g0)
    s = xp.where(nu < 0, -xp.ones_like(nu), xp.ones_like(nu))
    return g0 + config["w1"] * s + config["w2"] * nu


def clip_and_sign(d, G, lo, hi):
    """docs/spec/algorithm.md#one-batch, step 5: d <- lo where d < lo, else hi where not
    (d < hi); delta = -d where G > 0, else +d."""
    xp = array_namespace(d)
    d = xp.where(d < lo, lo, xp.where(d < hi, d, hi))
    return xp.where(G > 0, -d, d)


def step_of(G, V, H, R, config):
    """docs/spec/algorithm.md#one-batch, step 5 (Alg. 3): the bounded optimal step delta."""
    xp = array_namespace(G)
    eps = config["eps"]
    a = xp.abs(G)
    rho = R if config["grad_glass"] else xp.zeros_like(R)
    h = {"zero": xp.zeros_like(H), "abs": H, "rms": xp.sqrt(H)}[config["hess_comp"]]
    alpha = GLASS * rho / (a + eps)
    h_opt = alpha + h + xp.sqrt(alpha * (alpha + 2.0 * h)) + eps
    d = a / h_opt
    lr = config["lr"]
    lr_max = 2.0 * lr if config["lr_max"] is None else config["lr_max"]
    # the optimiser's lr does not change here, so both bound conventions give lr_min, lr_max
    f = {"fixed": xp.ones_like(a), "sgdm": a, "adam": a / (xp.sqrt(V) + eps)}[
        config["limit_method"]]
    return clip_and_sign(d, G, config["lr_min"] * f, lr_max * f)


def make_step(config: dict):
    """The conformance kit's entry: ``step(state, probes, grads) -> state``."""
    phi = 1.0 - config["betas"][0] if config["phi"] is None else config["phi"]
    omega, sigma = config["omega"], config["lr"]

    def step(state, probes, grads):
        t = state["t"] + 1
        b1, b2, b3 = weights(t, config)
        sample = is_sample(t, config)
        if sample != (len(grads) == 3):
            raise ValueError(f"batch {t}: my schedule says {'sample' if sample else 'quick'}, "
                             f"the recording gives {len(grads)} gradients")
        g0s = grads[-1]
        new = {"t": t, "H": list(state["H"]), "R": list(state["R"])}
        if sample:
            gps, gms = grads[0], grads[1]
            new["H"] = [ema(H, curvature_sample(gp, gm, sigma, config), b3)
                        for H, gp, gm in zip(state["H"], gps, gms)]
            new["R"] = [ema(R, glass_sample(gp, gm, g0, sigma), b3)
                        for R, gp, gm, g0 in zip(state["R"], gps, gms, g0s)]
        new["V"] = [ema(V, g0 * g0, b2) for V, g0 in zip(state["V"], g0s)]
        new["G"] = [ema(G, gradient_sample(g0, nu, config), b1)
                    for G, g0, nu in zip(state["G"], g0s, state["nu"])]
        new["mu"], new["nu"] = list(state["mu"]), list(state["nu"])
        if is_update(t, config):
            deltas = [step_of(G, V, H, R, config) for G, V, H, R in
                      zip(new["G"], new["V"], new["H"], new["R"])]
            new["nu"] = [mu + omega * d for mu, d in zip(state["mu"], deltas)]
            new["mu"] = [mu + phi * d for mu, d in zip(state["mu"], deltas)]
        return new
    return step
