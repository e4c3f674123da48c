"""Regenerate alice_ref's own conformance vectors (alice_ref_vectors.npz), deterministically.

``python -m alice_ref.conformance.record [PATH]`` (default: the file inside this package)
records, for every mode alice_ref's core adds beyond the official recording, one run of
docs/spec/algorithm.md#one-batch through the core's functions (schedule, probe_points,
absorb_sample / absorb_quick, apply_update; probes injected), on a synthetic gradient field
evaluated at the very points the core asks for. The grid: curvature mode and glass ('zero'
with glass, 'abs' and 'rms' with and without) x limit_method ('fixed', 'sgdm', 'adam') x
quick_steps (0, 1, 3) x state dtype (float32, float64), each with one of three hyperparameter
variants (defaults; w1, w2 > 0 with a large eps; phi, omega, lr_min, lr_max off their defaults
with scale_bounds_with_lr False).

Provenance: these are regression and porting vectors recorded from the core, whose correctness
rests on the maths tests and on its replay of the official recording (the independent check);
they are not evidence for the core itself. Each case is kept only if it is well conditioned:
replaying its gradients in the other precision stays within a quarter of the tolerance
(README.md, "Tolerances"); the recorder fails otherwise.

Deterministic: seeded NumPy generators, only correctly rounded arithmetic (+ - * / sqrt, abs,
floor), and a zip archive written with fixed timestamps and no compression, so that the same
NumPy reproduces the file bit for bit (tests/test_conformance_kit.py checks it).
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from importlib import resources

import numpy as np

from alice_ref.conformance._cases import DEFAULTS, FIELDS, FLOOR, REL, VECTORS_FILE
from alice_ref.core import (
    AliceConfig,
    absorb_quick,
    absorb_sample,
    apply_update,
    init,
    probe_points,
    schedule,
)

__all__ = ["GRID", "case_specs", "record_case", "record", "write_npz", "main"]

#: (hess_comp, grad_glass): every valid pair ('zero' without glass is refused by the spec).
MODES = (("zero", True), ("abs", True), ("abs", False), ("rms", True), ("rms", False))
LIMITS = ("fixed", "sgdm", "adam")
QUICK = (0, 1, 3)
DTYPES = ("float32", "float64")
#: The hyperparameter variants. beta1 exact in binary (no float32 warm-up quirk,
#: docs/spec/algorithm.md#known-quirk-the-warm-up-length); beta2 small enough that
#: beta2_t, beta3_t and (t-1)/t differ within 12 batches; eps large enough to matter in float32.
VARIANTS = (
    {"lr": 0.05, "betas": (0.5, 0.875)},
    {"lr": 0.02, "betas": (0.75, 0.875), "eps": 1e-3, "w1": 1e-3, "w2": 1e-2},
    {"lr": 0.05, "betas": (0.5, 0.9375), "eps": 1e-2, "phi": 0.3, "omega": 0.7, "lr_min": 0.005,
     "lr_max": 0.08, "scale_bounds_with_lr": False},
)
GRID = [(dt, m, lim, q) for dt in DTYPES for m in MODES for lim in LIMITS for q in QUICK]
BATCHES = 10
SHAPES = ((3,), (1,))
SEED = 20241125


def case_specs() -> list:
    """The recorded cases: (name, dtype, config, seed), in file order."""
    out = []
    for i, (dt, (hc, gg), lim, q) in enumerate(GRID):
        j = (MODES.index((hc, gg)) * len(LIMITS) + LIMITS.index(lim))
        v = (j + QUICK.index(q)) % len(VARIANTS)
        cfg = dict(VARIANTS[v], hess_comp=hc, grad_glass=gg, limit_method=lim, quick_steps=q)
        name = f"f{dt[-2:]}-{hc}-{'glass' if gg else 'noglass'}-{lim}-q{q}-v{v}"
        out.append((name, dt, cfg, i))
    return out


def _gradient_field(rng, n, lr):
    """A gradient field with curvature, a cubic term, glass (a triangle wave on the scale of
    sigma) and per-batch minibatch noise: g(x) = h y + y^3/10 + lam (2 tri(y/ell) - 1) + noise,
    y = x - c. Only correctly rounded operations, in float64."""
    c = rng.normal(0.0, 0.5, n)
    h = rng.uniform(0.5, 3.0, n)
    lam = rng.uniform(0.2, 1.0, n)
    ell = 0.625 * lr  # shorter than sigma: every probe crosses kinks, so gbar - g0 is O(lam)

    def grad(x, noise):
        y = np.asarray(x, np.float64) - c
        s = y / ell
        tri = np.abs(s - 2.0 * np.floor(0.5 * s + 0.5))  # in [0, 1], period 2 ell
        return h * y + 0.1 * y * y * y + lam * (2.0 * tri - 1.0) + noise

    x0 = c + rng.normal(0.0, 0.5, n)
    return grad, x0


def _split(flat):
    cuts = np.cumsum([0] + [int(np.prod(s)) for s in SHAPES])
    return [flat[cuts[i]:cuts[i + 1]].reshape(s) for i, s in enumerate(SHAPES)]


def _flat(xs):
    return np.concatenate([np.asarray(x).reshape(-1) for x in xs])


def _rel_error(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    scale = np.abs(ref) + FLOOR * np.max(np.abs(ref), initial=0.0)
    err = np.abs(got - ref)
    return float(np.max(np.where(scale > 0, err / np.where(scale > 0, scale, 1.0),
                                 np.where(err > 0, np.inf, 0.0)), initial=0.0))


def core_batch(state, cfg, grad_at, probes):
    """One batch of the core (docs/spec/algorithm.md#one-batch, steps 1-5): ``grad_at(points)``
    gives the gradient list at each evaluation point, in the order g+, g-, g0."""
    sched = schedule(state.t + 1, cfg)
    plus, minus, nu = probe_points(state, probes if sched.sample else None, cfg.lr)
    if sched.sample:
        gp, gm, g0 = grad_at(plus), grad_at(minus), grad_at(nu)
        state = absorb_sample(state, sched, gp, gm, g0, cfg)
    else:
        state = absorb_quick(state, sched, grad_at(nu), cfg)
    return apply_update(state, sched, cfg)


def _replay(cfg, dtype, params0, us, grads):
    """Run the core on recorded gradients in ``dtype``; the states (6, n) after every batch."""
    state = init(_split(np.asarray(params0, dtype)), cfg)
    out = []
    for u, g in zip(us, grads):
        probes = None if u is None else _split(np.where(u < 0.5, -1.0, 1.0).astype(dtype))
        it = iter(g)
        state = core_batch(state, cfg, lambda p, it=it: _split(next(it).astype(dtype)), probes)
        out.append(np.stack([_flat(getattr(state, f)) for f in FIELDS]))
    return out


def record_case(name, dtype, config, index, attempts=10):
    """Record one case: (arrays, meta entry). The first well-conditioned draw of the seeds
    [SEED, index, a], a = 0, 1, ... is kept; RuntimeError if none of ``attempts`` is."""
    for a in range(attempts):
        try:
            return _record_once(name, dtype, config, index, a)
        except _IllConditioned as e:
            last = e
    raise RuntimeError(str(last))


class _IllConditioned(RuntimeError):
    pass


def _record_once(name, dtype, config, index, attempt):
    dt = np.dtype(dtype)
    n = sum(int(np.prod(s)) for s in SHAPES)
    rng = np.random.default_rng([SEED, index, attempt])
    cfg = AliceConfig(**config)
    grad, x0 = _gradient_field(rng, n, cfg.lr)
    params0 = x0.astype(dt)
    state = init(_split(params0.copy()), cfg)
    us, grads, states = [], [], []
    for _ in range(BATCHES):
        noise = rng.normal(0.0, 0.2, n)
        sample = schedule(state.t + 1, cfg).sample
        u = rng.random(n, dtype=dt) if sample else None
        probes = None if u is None else _split(np.where(u < 0.5, -1.0, 1.0).astype(dt))
        got = []

        def grad_at(points, got=got, noise=noise):
            g = grad(_flat(points), noise).astype(dt)
            got.append(g)
            return _split(g)

        state = core_batch(state, cfg, grad_at, probes)
        us.append(u)
        grads.append(np.stack(got))
        states.append(np.stack([_flat(getattr(state, f)) for f in FIELDS]).astype(dt))
    # conditioning: the other precision's replay of the same gradients
    other = "float64" if dtype == "float32" else "float32"
    twin = _replay(cfg, other, params0, us, grads)
    dev = max(_rel_error(a[i], b[i]) for a, b in zip(twin, states) for i in range(len(FIELDS)))
    if not dev <= REL["float32"] / 4:
        raise _IllConditioned(f"case {name} is ill conditioned: replay in {other} deviates by "
                           f"{dev:.3g} > rel/4 = {REL['float32'] / 4:.3g}")
    # one flat array per case (README.md): params0 (n), u (S, n), grads (K, n), state (B, 6, n)
    parts = [params0, np.stack([u for u in us if u is not None]), np.concatenate(grads),
             np.stack(states)]
    arrays = {"": np.concatenate([np.asarray(x, dt).reshape(-1) for x in parts])}
    given = {k: (list(v) if k == "betas" else v) for k, v in config.items()}
    entry = {"name": name, "dtype": dtype, "config": given,
             "param_shapes": [list(s) for s in SHAPES], "batches": BATCHES,
             "sample_batches": [b + 1 for b, u in enumerate(us) if u is not None],
             "tolerance": {"rel": REL[dtype], "floor": FLOOR},
             "seed": [SEED, index, attempt], "conditioning_ulps32": round(dev / 2.0 ** -23, 2)}
    return arrays, entry


def record() -> dict:
    """Every case: the archive's arrays (``c{c}``, one flat array per case, and ``meta``, JSON),
    in file order."""
    from alice_ref.conformance._cases import DERIVATION
    out, metas = {}, []
    for c, (name, dtype, config, index) in enumerate(case_specs()):
        arrays, entry = record_case(name, dtype, config, index)
        out[f"c{c}"] = arrays[""]
        metas.append(entry)
    meta = {"format": 1, "fields": list(FIELDS), "defaults": {k: (list(v) if k == "betas" else v)
                                                              for k, v in DEFAULTS.items()},
            "provenance": "recorded from alice_ref's core by alice_ref/conformance/record.py; "
                          "regression and porting vectors, not an independent check",
            "tolerance": DERIVATION, "cases": metas}
    # UTF-8 bytes (a NumPy str array would take 4 bytes per character)
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    out["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return out


def write_npz(path, arrays: dict) -> None:
    """Write ``arrays`` as an .npz (np.load reads it) with no compression and fixed zip
    timestamps, so that equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def default_path():
    """The packaged file's path (in a source checkout: alice_ref/conformance/)."""
    return resources.files("alice_ref.conformance") / VECTORS_FILE


def main(argv=None) -> int:
    """``python -m alice_ref.conformance.record [PATH]``: write the vectors; 0 on success."""
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else str(default_path())
    write_npz(path, record())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
