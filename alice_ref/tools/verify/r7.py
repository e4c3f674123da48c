"""R7, Nesterov exactness: in the Alice loop on a quadratic G = grad L(mu) at phi = exact_phi,
the lag follows nesterov_lag otherwise, and the warm-up lasts 1/(1 - beta1) batches."""

from __future__ import annotations

import math

import numpy as np

from alice_ref import core as _alice
from alice_ref.landscapes import Quadratic
from alice_ref.maths import nesterov as _nesterov

from ._rows import EPS, _alice_loop, _exact_row, _flag_row, _seed


def _r7(ctx):
    """R7: G = grad L(mu) at phi = exact_phi, the lag off it (nesterov_lag), the warm-up."""
    rng = ctx.rng("R7")
    q = Quadratic(8, seed=_seed(rng))
    A, b = q.hessian, q.b
    nb = ctx.size(120, 60)
    x0 = rng.normal(size=8)
    rows, curves = [], {}
    anchor = "A6; Alg. 3, steps 9-10"
    for omega in (1.0, 2.0):
        beta1 = 0.9
        phi = _nesterov.exact_phi(beta1, omega)
        cfg = _alice.AliceConfig(lr=0.05, betas=(beta1, 0.999), omega=omega, phi=phi)
        worst, tol, n_steps, curve = 0.0, 0.0, 0, []
        for rec in _alice_loop(q, cfg, nb, rng, x0):
            st = rec["absorbed"]  # G has absorbed g(nu); mu is still the centre nu looked from
            n_steps += int(not np.array_equal(rec["updated"].mu[0], st.mu[0]))
            mu, G = st.mu[0], st.G[0]
            curve.append((rec["sched"].t, float(np.max(np.abs(G - q.grad(mu))))))
            worst = max(worst, curve[-1][1])
            mu_max = max(np.abs(mu).max(), np.abs(st.nu[0]).max())
            scale = float(np.abs(A).sum(axis=1).max() * mu_max + np.abs(b).max()
                          + np.abs(G).max())
            tol = max(tol, 16 * A.shape[0] * EPS * scale / (1.0 - beta1))
        curves[f"exact, omega = {omega:g}"] = np.array(curve)
        rows.append(_exact_row("R7", f"In the Alice loop on a quadratic with omega = {omega:g} and "
                               f"phi = exact_phi = omega(1 - beta1) = {phi:g} the average G equals "
                               f"grad L(mu) at every one of {nb} batches ({n_steps} steps; "
                               f"largest |G - g(mu)|).", 0.0, worst if n_steps else math.inf, tol,
                               "16 n eps scale / (1 - beta1)", anchor=anchor))
    # phi off the exact value: the lag follows nesterov_lag's closed form
    beta1, omega = 0.9, 1.0
    phi = 0.5 * (1.0 - beta1)
    cfg = _alice.AliceConfig(lr=0.05, betas=(beta1, 0.999), omega=omega, phi=phi)
    lag_pred, prev_mu, prev_delta = None, None, None
    worst, tol, biggest, n_cmp, lag_curve = 0.0, 0.0, 0.0, 0, []
    for rec in _alice_loop(q, cfg, nb, rng, x0):
        st, sched = rec["absorbed"], rec["sched"]
        lag = st.G[0] - q.grad(st.mu[0])
        if prev_delta is not None:
            lag_pred = _nesterov.nesterov_lag(lag_pred, A @ prev_delta, beta1, omega, phi)
            worst = max(worst, float(np.max(np.abs(lag - lag_pred))))
            lag_curve.append((sched.t, float(np.max(np.abs(lag))),
                              float(np.max(np.abs(lag_pred)))))
            biggest = max(biggest, float(np.max(np.abs(lag))))
            scale = float(np.abs(A).sum(axis=1).max() * np.abs(st.mu[0]).max() + np.abs(b).max()
                          + np.abs(st.G[0]).max())
            tol = max(tol, 16 * A.shape[0] * EPS * scale / (1.0 - beta1)
                      + 4 * EPS * scale / (omega * (1.0 - beta1)))
            n_cmp += 1
        if sched.update:
            if lag_pred is None:
                lag_pred = lag  # first post-warm-up batch: G = g(mu) up to rounding
            prev_mu = st.mu[0]
            prev_delta = (rec["updated"].nu[0] - prev_mu) / omega
        else:
            prev_delta = None
    ctx.keep("R7", exact=curves, lag=np.array(lag_curve), phi=phi)
    rows.append(_exact_row("R7", f"With phi = {phi:g} != omega(1 - beta1) the lag G - g(mu) "
                           f"follows nesterov_lag, ((1 - beta) omega - phi) H delta + beta lag: "
                           f"largest deviation over {n_cmp} batches, where the largest |lag| is "
                           f"{biggest:.3g}.", 0.0, worst if n_cmp else math.inf, tol,
                           "16 n eps scale / (1 - beta1)", anchor=anchor))
    # warm-up: the first update happens at batch 1/(1 - beta1) + 1, where beta_t = beta1
    want, got, betas_ok = [], [], True
    for beta1, w in ((0.5, 2), (0.75, 4), (0.875, 8), (0.9, 10)):
        cfg = _alice.AliceConfig(lr=0.05, betas=(beta1, 0.999))
        first = None
        for rec in _alice_loop(q, cfg, 14, rng, x0):
            moved = not np.array_equal(rec["updated"].mu[0], rec["before"].mu[0])
            if moved and first is None:
                first = rec["sched"].t
            if moved and rec["sched"].beta1 != beta1:
                betas_ok = False
        want.append(w)
        got.append(-1 if first is None else first - 1)
    fmt = lambda xs: ",".join(str(x) for x in xs)  # noqa: E731
    rows.append(_flag_row("R7", "Alice averages for 1/(1 - beta1) warm-up batches (beta1 = 0.5, "
                          "0.75, 0.875, 0.9; the official float32 code gives 9 at 0.9), then "
                          "steps with beta_t = beta1 on every update.", fmt(want), fmt(got),
                          got == want and betas_ok, "exact batch counts",
                          anchor="A6; docs/spec/algorithm.md#one-batch, step 2"))
    return rows
