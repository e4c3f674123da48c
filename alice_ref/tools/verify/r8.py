"""R8, cost schedule: the driver's gradient evaluations per batch are sample_cost(q), the
curvature averages refresh only on sample steps with beta3, and impossible beta3 is rejected."""

from __future__ import annotations

import math

import numpy as np

from alice_ref import core as _alice
from alice_ref import driver as _driver
from alice_ref.landscapes import ReluTeacherStudent
from alice_ref.maths import schedule as _cost

from ._rows import EPS, _alice_loop, _exact_row, _flag_row, _seed


def _count_evaluations(q_steps, n_count, rng):
    """Gradient evaluations (calls of value_and_grad) that the driver alice_ref.Alice makes over
    n_count batches after warm-up, on minibatches of a ReLU teacher-student net. The counted
    window starts and ends on multiples of q + 1."""
    land = ReluTeacherStudent(seed=_seed(rng), n_samples=128)
    x0 = land.init_params(seed=_seed(rng))
    opt = _driver.Alice([x0], lr=0.01, betas=(0.9, 0.999), quick_steps=q_steps, seed=_seed(rng))
    calls = [0]
    batch = [None]

    def value_and_grad(p):
        calls[0] += 1
        return land.loss(p[0], batch[0]), [land.grad(p[0], batch[0])]

    period = q_steps + 1
    t0 = int(math.ceil((math.floor(opt.config.warmup) + 1) / period) * period)
    for t in range(t0 + n_count):
        if t == t0:
            calls[0] = 0
        batch[0] = rng.choice(128, size=32, replace=False)
        opt.step(value_and_grad)
    return calls[0]


def _r8(ctx):
    """R8: evaluation counts sample_cost(q), beta3 on sample steps, invalid beta3 rejected."""
    rng = ctx.rng("R8")
    rows = []
    periods = ctx.size(40, 10)
    q = 3
    n = periods * (q + 1)
    count = _count_evaluations(q, n, rng)
    pred = n * _cost.sample_cost(q)
    anchor = "A7; Alg. 2 on sample steps only"
    rows.append(_flag_row("R8", f"With quick_steps q = {q} the driver makes N (3 + q)/(q + 1) "
                          f"gradient evaluations over N = {n} post-warm-up batches "
                          f"(sample_cost).", pred, count, count == pred, "exact count",
                          anchor=anchor))
    total_pred, total, ok = 0.0, 0, True
    per_q = [(3, count / n, _cost.sample_cost(3))]
    for q in (0, 1, 2, 7):
        n = ctx.size(10, 3) * (q + 1)
        c = _count_evaluations(q, n, rng)
        p = n * _cost.sample_cost(q)
        total_pred, total, ok = total_pred + p, total + c, ok and c == p
        per_q.append((q, c / n, _cost.sample_cost(q)))
    ctx.keep("R8", cost=np.array(sorted(per_q)))
    rows.append(_flag_row("R8", "For each q in {0, 1, 2, 7} the evaluation count is N "
                          "sample_cost(q) (sums over q shown).", total_pred, total, ok,
                          "exact count", anchor=anchor))
    # beta3 in the loop: R <- rho_hat + beta3 (R - rho_hat) on sample steps only
    beta2, q = 0.99, 3
    beta3 = 1.0 - (q + 1) * (1.0 - beta2)  # by algebra; keeps (q+1)/(1-beta3) = 1/(1-beta2)
    cfg = _alice.AliceConfig(lr=0.01, betas=(0.9, beta2), quick_steps=q)
    land = ReluTeacherStudent(seed=_seed(rng))
    num = den = 0.0
    quick_same, n_sample = True, 0
    for rec in _alice_loop(land, cfg, 80, rng, land.init_params(seed=_seed(rng))):
        sched, R0, R1 = rec["sched"], rec["before"].R[0], rec["absorbed"].R[0]
        if not sched.sample:
            quick_same = (quick_same and np.array_equal(R0, R1)
                          and np.array_equal(rec["before"].H[0], rec["absorbed"].H[0]))
            continue
        if sched.t < 1.0 / (1.0 - beta3):
            continue
        rho_hat = 2.0 * ((rec["gp"] + rec["gm"]) / 2.0 - rec["g0"]) ** 2 / cfg.lr
        u, v = R0 - rho_hat, R1 - rho_hat
        num, den, n_sample = num + float(u @ v), den + float(u @ u), n_sample + 1
    fit = num / den if den > 0 and quick_same else math.nan
    rows.append(_exact_row("R8", f"The curvature averages R and H refresh only on sample steps, "
                           f"with weight beta3 = 1 - (q+1)(1 - beta2) = {beta3:g} (q = {q}, beta2 "
                           f"= {beta2}), fitted over {n_sample} steps.", beta3, fit, 64 * EPS,
                           "64 eps", anchor="A7; Alg. 2, steps 5-6 and 9-11"))
    try:
        _alice.AliceConfig(betas=(0.9, 0.7), quick_steps=3)
        got = "accepted"
    except ValueError:
        got = "ValueError"
    rows.append(_flag_row("R8", "When (q+1)(1 - beta2) >= 1 no beta3 is valid, and "
                          "AliceConfig(betas=(0.9, 0.7), quick_steps=3) is rejected.",
                          "ValueError", got, got == "ValueError",
                          anchor="docs/spec/algorithm.md#hyperparameters"))
    return rows
