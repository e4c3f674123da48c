#!/usr/bin/env python
"""Alice's cost against Adam's, and the NumPy update against the memory-bandwidth floor.

    python benchmarks/bench.py [--quick] [--threads N] [--out DIR] [--markdown DOC]
                               [--only numpy,driver,torch,jax,memory]

Everything that is compared is measured in the same run, interleaved (rounds that rotate the
order of the contenders) and summarised by medians, so a machine shared with other work moves
all contenders alike. Results: DIR/bench.json and DIR/bench.md (default benchmarks/results/),
and the markdown tables on stdout: first one table of ratios (median, interquartile range
and min - max over the interleaved rounds, per backend), then the details. ``--markdown DOC``
writes the ratio table between DOC's ``<!-- bench:begin -->`` / ``<!-- bench:end -->`` markers.
See docs/performance.md for what the numbers mean.

Sections
- torch: per-batch time of alice_torch.Alice(quick_steps=3) (fused default path, and the
  generic core path) vs torch.optim.Adam(foreach=True) (and Adam(fused=True), for reference) on
  (a) 4M parameters whose gradient is nearly free (loss = sum_k (p_k * c_k).sum()) and (b) a
  small ReLU CNN with a real cross-entropy loss. One "batch" of Alice is averaged over whole
  cycles of q + 1 = 4 batches (one sample step, three quick steps) after warm-up.
- jax: jitted alice_jax.alice vs optax.adam on the same two problems (skipped if alice_jax is
  missing).
- numpy: elements per second of the per-element batch update (generic core; alice_ref.engines.cpu)
  against a STREAM triad a = b + s c measured in the same run; the fraction of the bandwidth
  bound is (elements/s x words the update must move x bytes per word) / triad bytes/s.
- driver: ms per batch of alice_ref.Alice on 4M float32 parameters, the engine that
  alice_ref.engines.select picks against engine='core'.
- memory: optimiser-state bytes per parameter byte (torch and jax), against the official
  implementation's 7 words beyond the parameter.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, smaller CNN (~1 min)")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads for torch and NumPy (alice_ref.engines.cpu); 0 = each "
                         "library's default (default 1: reproducible on a shared machine). XLA "
                         "keeps its defaults: its single-thread flags make its CPU code for "
                         "division and select ~5x slower (docs/performance.md)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--only", default="numpy,driver,torch,jax,memory",
                    help="comma-separated sections to run")
    ap.add_argument("--params", type=int, default=4 * 1024 * 1024,
                    help="parameters of the linear problem (a multiple of 4 * 1024)")
    ap.add_argument("--markdown", metavar="DOC", default=None,
                    help="also rewrite the ratio table between the '<!-- bench:begin -->' and "
                         "'<!-- bench:end -->' markers of DOC (e.g. docs/performance.md)")
    return ap.parse_args(argv)


ARGS = _args()
if ARGS.threads > 0:  # before numpy / torch / jax load their thread pools
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

sys.path[:0] = [str(ROOT), str(ROOT / "adapters")]  # also when not pip-installed
import alice_ref  # noqa: E402
from alice_ref.engines import cpu as fast  # noqa: E402

# -- helpers --------------------------------------------------------------------------------------

def median(xs):
    return statistics.median(xs) if xs else float("nan")


class Timings(dict):
    """{name: per-call seconds, median over rounds}; ``.rounds[name]`` the per-round times (in
    round order, so that ratios can be taken round by round: :func:`ratio`)."""

    rounds: dict


def interleaved(contenders: dict, rounds: int, reps: int = 1) -> Timings:
    """{name: per-call seconds (median over rounds)}; each round runs every contender ``reps``
    times, in an order that rotates from round to round."""
    names = list(contenders)
    times = {n: [] for n in names}
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                f = contenders[n]
                t0 = time.perf_counter()
                for _ in range(reps):
                    f()
                times[n].append((time.perf_counter() - t0) / reps)
    finally:
        gc.enable()
    out = Timings({n: median(ts) for n, ts in times.items()})
    out.rounds = times
    return out


#: The ratio rows of this run, in order: {backend, what, median, q1, q3, lo, hi, rounds, target,
#: met}; printed as the one table of :func:`ratio_table`.
RATIOS: list = []


def ratio(backend: str, what: str, per_round, target: float | None = None,
          higher_is_better: bool = False) -> dict:
    """Record a ratio measured round by round (interleaved, one process): its median, quartiles
    and min-max over the rounds."""
    xs = sorted(per_round)
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    row = {"backend": backend, "what": what, "median": statistics.median(xs), "q1": q[0],
           "q3": q[2], "lo": xs[0], "hi": xs[-1], "rounds": len(xs), "target": target}
    row["met"] = (None if target is None else
                  (row["median"] >= target if higher_is_better else row["median"] <= target))
    row["cmp"] = ">=" if higher_is_better else "<="
    RATIOS.append(row)
    return row


def round_ratio(t: Timings, a: str, b: str, scale: float = 1.0) -> list:
    """Per-round ratios t[a] / t[b] (times ``scale``, e.g. batches per call of b / of a)."""
    return [x / y * scale for x, y in zip(t.rounds[a], t.rounds[b])]


def ratio_table(rows) -> str:
    """The one table of ratios: per backend, median over interleaved rounds, interquartile
    range and min-max."""
    L = ["| backend | ratio | median | IQR | min - max | rounds | target | met |",
         "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = ".0%" if r["what"].startswith("fraction") else ".2f"
        tgt = "" if r["target"] is None else f"{r['cmp']} {r['target']:{fmt}}"
        met = "" if r["met"] is None else ("yes" if r["met"] else "no")
        L.append(f"| {r['backend']} | {r['what']} | **{r['median']:{fmt}}** | "
                 f"{r['q1']:{fmt}} - {r['q3']:{fmt}} | {r['lo']:{fmt}} - {r['hi']:{fmt}} | "
                 f"{r['rounds']} | {tgt} | {met} |")
    return "\n".join(L) + "\n"


def rewrite_doc(path, table: str, header: str) -> None:
    """Replace what lies between the bench markers of ``path`` by ``header`` and ``table``."""
    doc = pathlib.Path(path)
    text = doc.read_text()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    if text.count(begin) != 1 or text.count(end) != 1:
        raise SystemExit(f"{path}: needs one {begin} and one {end} marker")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    doc.write_text(f"{head}{begin}\n{header}\n\n{table}{end}{tail}")


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform(),
            "threads": ARGS.threads or "library defaults"}
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    for mod in ("torch", "jax", "optax"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            info[mod] = None
    return info


# -- NumPy: triad bandwidth and the update --------------------------------------------------------

def bench_numpy(n: int, rounds: int) -> dict:
    dt = np.float32
    item = np.dtype(dt).itemsize
    rng = np.random.default_rng(0)
    a, b, c = (rng.random(n, dtype=dt) for _ in range(3))
    s = dt(3.0)
    ch = fast.DEFAULT_CHUNK

    th = ARGS.threads or (os.cpu_count() or 1)
    tmps = [np.empty(ch, dt) for _ in range(th)]
    pool = ThreadPoolExecutor(th) if th > 1 else None

    def parts(body):  # the same split over threads as alice_ref.engines.cpu, for a fair bound
        per = -(-n // th)
        if pool is None:
            body(0, n, 0)
        else:
            list(pool.map(lambda k: body(k * per, min(n, (k + 1) * per), k), range(th)))

    def triad():  # a = b + s c, blocked so the product stays in cache: 3 words of traffic
        def body(lo, hi, k):
            for i in range(lo, hi, ch):
                e = min(i + ch, hi)
                t = tmps[k][:e - i]
                np.multiply(c[i:e], s, t)
                np.add(b[i:e], t, a[i:e])
        parts(body)

    def add():  # STREAM "add" a = b + c (one ufunc per thread; same 3 words)
        parts(lambda lo, hi, k: np.add(b[lo:hi], c[lo:hi], a[lo:hi]))

    def copy():
        parts(lambda lo, hi, k: np.copyto(a[lo:hi], b[lo:hi]))

    state = [rng.standard_normal(n).astype(dt) for _ in range(6)]
    for k in (3, 4, 5):
        state[k] = np.abs(state[k])
    g = [rng.standard_normal(n).astype(dt) for _ in range(3)]
    p = np.empty(n, dt)
    cfg = alice_ref.AliceConfig(lr=1e-3, betas=(0.9, 0.999), quick_steps=3)
    quick = alice_ref.schedule(13, cfg)  # after warm-up, 13 mod 4 != 0: a quick step
    sample = alice_ref.schedule(12, cfg)
    assert quick.update and not quick.sample and sample.sample and sample.update

    def np_sqrt(x, out):  # a caller's sqrt: the split form the PyTorch adapter runs
        np.sqrt(x, out=out)

    paths = {"numba": None, "numba_split": np_sqrt} if fast.AVAILABLE else {}

    def updater(hook, sched, sample):
        gs = (g[0], g[1]) if sample else ()
        return lambda: fast.absorb_and_update(cfg, sched, *state, g[2], *gs, lr=cfg.lr,
                                              param=p, threads=th, sqrt=hook)

    contenders = {"triad": triad, "add": add, "copy": copy}
    for name, hook in paths.items():
        contenders[f"{name}_quick"] = updater(hook, quick, False)
        contenders[f"{name}_sample"] = updater(hook, sample, True)

    core_state = alice_ref.AliceState(12, *([x.copy()] for x in state), 0)

    def core_quick():
        st = alice_ref.absorb_quick(core_state, quick, [g[2]], cfg)
        alice_ref.apply_update(st, quick, cfg, cfg.lr)

    def core_sample():
        st = alice_ref.absorb_sample(core_state, sample, [g[0]], [g[1]], [g[2]], cfg, cfg.lr)
        alice_ref.apply_update(st, sample, cfg, cfg.lr)

    for f in (*contenders.values(), core_quick, core_sample):  # compile, fault pages in
        f()
    t = interleaved(contenders, rounds)
    t.update(interleaved({"core_quick": core_quick, "core_sample": core_sample},
                         max(2, rounds // 4)))
    triad_bw = 3 * item * n / t["triad"]
    # The stricter bound is the best streaming rate measured: the blocked NumPy triad pays
    # Python per block, the single-ufunc add (same 3 words per element) does not.
    best_bw = max(triad_bw, 3 * item * n / t["add"], 2 * item * n / t["copy"])
    wq = fast.state_words(sample=False)  # 11: g0 G V H R mu in, G V mu nu param out
    ws = fast.state_words(sample=True)  # 15
    rows, mixes = [], {}
    for name in (*paths, "core"):
        for kind, words in (("quick", wq), ("sample", ws)):
            eps_ = n / t[f"{name}_{kind}"]
            rows.append({"path": f"{name}_{kind}", "elements_per_s": eps_, "words": words,
                         "fraction_of_triad_bound": eps_ * words * item / triad_bw,
                         "fraction_of_best_stream_bound": eps_ * words * item / best_bw,
                         "ms_per_call": t[f"{name}_{kind}"] * 1e3})
        mix_t = (t[f"{name}_sample"] + 3 * t[f"{name}_quick"]) / 4
        mix_words = (ws + 3 * wq) / 4
        mixes[name] = {"words": mix_words, "ms": mix_t * 1e3,
                       "fraction_of_triad_bound": n * mix_words * item / mix_t / triad_bw,
                       "fraction_of_best_stream_bound": n * mix_words * item / mix_t / best_bw}
    for name in paths:
        mixes[name]["speedup_over_core"] = mixes["core"]["ms"] / mixes[name]["ms"]
        mix_words = (ws + 3 * wq) / 4
        fr = [mix_words / 3 * tr * 4 / (sr + 3 * qr) for tr, sr, qr in zip(
            t.rounds["triad"], t.rounds[f"{name}_sample"], t.rounds[f"{name}_quick"])]
        ratio("numpy", f"fraction of the triad bound, engine {name}, q=3 mix "
              f"({mix_words:.0f} words/element)", fr, 0.5, higher_is_better=True)
    return {"n": n, "dtype": "float32", "threads": th, "triad_GBps": triad_bw / 1e9,
            "best_stream_GBps": best_bw / 1e9, "add_GBps": 3 * item * n / t["add"] / 1e9,
            "copy_GBps": 2 * item * n / t["copy"] / 1e9, "rows": rows, "q3_mix": mixes}


# -- NumPy driver: alice_ref.Alice per batch -----------------------------------------------------

def bench_driver(n: int, rounds: int) -> dict:
    """ms per batch of alice_ref.Alice(q=3) on n float32 parameters, the engine that
    alice_ref.engines.select picks (threads 1 and 2) against engine='core' (the reference, the
    path every batch took before the engines were wired in), for a free gradient (the linear
    loss sum(c theta): g = c) and one that allocates (g = c theta, the gradient of the
    quadratic sum(c theta^2)/2). Batches are timed in whole q + 1 = 4 cycles after warm-up."""
    rng = np.random.default_rng(0)
    c = rng.standard_normal(n).astype(np.float32)
    grads = {"free": lambda p: (0.0, [c]), "allocating": lambda p: (0.0, [p[0] * c])}
    setups = {"core": dict(engine="core"), "engine": {},
              "engine_2threads": dict(threads=2)}
    res = {"n": n, "dtype": "float32", "engine": alice_ref.engines.select(
        [np.zeros(1, np.float32)]), "ms_per_batch": {}, "speedup_over_core": {}}
    for gname, vg in grads.items():
        opts, contenders = {}, {}
        for name, kw in setups.items():
            opt = alice_ref.Alice([np.zeros(n, np.float32)], lr=1e-3, seed=0, **kw)
            for _ in range(12):  # warm-up (10 batches for beta1 = 0.9), compile, fault in
                opt.step(vg)
            opts[name] = opt

            def cycle(opt=opt, vg=vg):
                for _ in range(4):
                    opt.step(vg)
            contenders[name] = cycle
        t = interleaved(contenders, rounds)
        ms = {k: v / 4 * 1e3 for k, v in t.items()}
        res["ms_per_batch"][gname] = ms
        res["speedup_over_core"][gname] = {k: ms["core"] / ms[k] for k in ms if k != "core"}
    return res


# -- torch ----------------------------------------------------------------------------------------

def _torch_linear(torch, n):
    shapes = [(1024, n // 4096)] * 4
    g = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(*s, generator=g) * 0.1) for s in shapes]
    cs = [torch.randn(*s, generator=g) for s in shapes]
    return ps, cs


def _torch_cnn(torch, quick):
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))
    g = torch.Generator().manual_seed(1)
    bs = 32 if quick else 64
    x = torch.randn(bs, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (bs,), generator=g)
    return model, x, y


def bench_torch(quick: bool) -> dict:
    import torch
    from alice_torch import Alice
    if ARGS.threads:
        torch.set_num_threads(ARGS.threads)
    out = {"torch_threads": torch.get_num_threads()}
    cycle = 4  # q + 1: one sample step and three quick steps
    rounds = 5 if quick else 11

    # (a) 4M parameters, nearly free gradient; each optimiser has its own copy of them
    ps0, cs = _torch_linear(torch, ARGS.params)
    n = sum(p.numel() for p in ps0)
    opts = {}

    def make(name, cls, **kw):
        ps = [torch.nn.Parameter(p.detach().clone()) for p in ps0]
        opt = cls(ps, lr=1e-3, **kw)

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = sum((p * c).sum() for p, c in zip(ps, cs))
            loss.backward()
            return loss
        steps = cycle if isinstance(opt, Alice) else 1

        def run():
            for _ in range(steps):
                opt.step(closure)
        for _ in range(12 if isinstance(opt, Alice) else 3):  # past warm-up, aligned
            opt.step(closure)
        assert not isinstance(opt, Alice) or opt.t % cycle == 0
        opts[name] = (opt, run, steps, ps)

    make("alice_fused", Alice, quick_steps=3)
    make("adam_foreach", torch.optim.Adam, foreach=True)
    make("adam_fused", torch.optim.Adam, fused=True)
    make("alice_generic", Alice, quick_steps=3, fused=False)
    fast_names = ["alice_fused", "adam_foreach", "adam_fused"]
    t = interleaved({k: opts[k][1] for k in fast_names}, rounds)
    tg = interleaved({"alice_generic": opts["alice_generic"][1],
                      "adam_foreach_g": opts["adam_foreach"][1]}, 2 if quick else 3)
    per = {k: t[k] / opts[k][2] for k in fast_names}
    per["alice_generic"] = tg["alice_generic"] / cycle
    per_g_adam = tg["adam_foreach_g"]
    label = f"{n / 1e6:.1f}M params, nearly free gradient: Alice(q=3) / "
    ratio("torch", label + "Adam(foreach) per batch",
          round_ratio(t, "alice_fused", "adam_foreach", 1 / cycle), 2.0)
    ratio("torch", label + "Adam(fused=True) per batch",
          round_ratio(t, "alice_fused", "adam_fused", 1 / cycle), 2.5)
    ratio("torch", label.replace("Alice(q=3)", "Alice generic path (fused=False)")
          + "Adam(foreach)", round_ratio(tg, "alice_generic", "adam_foreach_g", 1 / cycle))
    out["linear"] = {
        "params": n, "ms_per_batch": {k: v * 1e3 for k, v in per.items()},
        "alice_fused_over_adam_foreach": per["alice_fused"] / per["adam_foreach"],
        "alice_fused_over_adam_fused": per["alice_fused"] / per["adam_fused"],
        "alice_generic_over_adam_foreach": per["alice_generic"] / per_g_adam,
        "state_bytes_per_param_byte": {k: _torch_state_ratio(torch, opts[k][0], opts[k][3])
                                       for k in ("alice_fused", "adam_foreach")},
    }
    opts.clear()
    gc.collect()

    # (b) small ReLU CNN, cross-entropy
    res = {}
    models = {}
    for name in ("alice_fused", "adam_foreach", "alice_generic"):
        model, x, y = _torch_cnn(torch, quick)
        if name == "alice_fused":
            opt = Alice(model.parameters(), lr=1e-3, quick_steps=3)
        elif name == "alice_generic":
            opt = Alice(model.parameters(), lr=1e-3, quick_steps=3, fused=False)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)

        def closure(model=model, opt=opt, x=x, y=y):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss
        steps = cycle if isinstance(opt, Alice) else 1

        def run(opt=opt, closure=closure, steps=steps):
            for _ in range(steps):
                opt.step(closure)
        for _ in range(12 if isinstance(opt, Alice) else 3):
            opt.step(closure)
        models[name] = (run, steps, sum(p.numel() for p in model.parameters()))
    t = interleaved({k: v[0] for k, v in models.items()}, rounds)
    res = {k: t[k] / models[k][1] * 1e3 for k in models}
    for k in ("alice_fused", "alice_generic"):
        ratio("torch", f"ReLU CNN, Alice(q=3){' generic path' if k != 'alice_fused' else ''} "
              f"/ Adam(foreach) per batch", round_ratio(t, k, "adam_foreach", 1 / cycle))
    out["cnn"] = {"params": models["adam_foreach"][2], "batch": 32 if quick else 64,
                  "ms_per_batch": res,
                  "alice_fused_over_adam_foreach": res["alice_fused"] / res["adam_foreach"],
                  "alice_generic_over_adam_foreach": res["alice_generic"] / res["adam_foreach"]}
    return out


def _torch_state_ratio(torch, opt, ps):
    """Bytes of tensors in the optimiser state (distinct storages) / bytes of the parameters."""
    seen, total = set(), 0
    for p in ps:
        for v in opt.state[p].values():
            if isinstance(v, torch.Tensor) and v.numel() > 1:
                key = v.untyped_storage().data_ptr()
                if key not in seen:
                    seen.add(key)
                    total += v.untyped_storage().nbytes()
    return total / sum(p.numel() * p.element_size() for p in ps)


# -- jax ------------------------------------------------------------------------------------------

def bench_jax(quick: bool) -> dict:
    try:
        import alice_jax
    except Exception as e:  # noqa: BLE001
        return {"skipped": f"alice_jax not importable: {type(e).__name__}: {e}"}
    import jax
    import jax.numpy as jnp
    import optax
    out = {"devices": [str(d) for d in jax.devices()]}
    cycle = 4
    rounds = 5 if quick else 11
    n = ARGS.params
    key = jax.random.PRNGKey(0)
    ks = jax.random.split(key, 8)
    params = {f"w{i}": 0.1 * jax.random.normal(ks[i], (1024, n // 4096)) for i in range(4)}
    cs = {f"w{i}": jax.random.normal(ks[4 + i], (1024, n // 4096)) for i in range(4)}

    def loss_lin(p, data):
        return sum(jnp.sum(p[k] * data[k]) for k in p)

    res = {}
    res["linear"] = _jax_pair(jax, optax, alice_jax, params, loss_lin, cs, rounds, cycle)
    res["linear"]["params"] = n
    st = res["linear"].pop("_states")
    res["linear"]["state_bytes_per_param_byte"] = st

    # small ReLU CNN (NHWC), cross-entropy
    bs = 32 if quick else 64
    k = jax.random.split(jax.random.PRNGKey(1), 8)
    cnn = {"c1": 0.1 * jax.random.normal(k[0], (3, 3, 3, 32)), "b1": jnp.zeros(32),
           "c2": 0.05 * jax.random.normal(k[1], (3, 3, 32, 64)), "b2": jnp.zeros(64),
           "l1": 0.02 * jax.random.normal(k[2], (64 * 8 * 8, 128)), "lb1": jnp.zeros(128),
           "l2": 0.1 * jax.random.normal(k[3], (128, 10)), "lb2": jnp.zeros(10)}
    x = jax.random.normal(k[4], (bs, 32, 32, 3))
    y = jax.random.randint(k[5], (bs,), 0, 10)

    def conv(h, w, b):
        h = jax.lax.conv_general_dilated(h, w, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = jax.nn.relu(h + b)
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                                     "VALID")

    def loss_cnn(p, data):
        x, y = data
        h = conv(x, p["c1"], p["b1"])
        h = conv(h, p["c2"], p["b2"])
        h = h.reshape(h.shape[0], -1)
        h = jax.nn.relu(h @ p["l1"] + p["lb1"])
        logits = h @ p["l2"] + p["lb2"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    res["cnn"] = _jax_pair(jax, optax, alice_jax, cnn, loss_cnn, (x, y), rounds, cycle)
    res["cnn"].pop("_states")
    res["cnn"]["params"] = sum(v.size for v in jax.tree.leaves(cnn))
    res["cnn"]["batch"] = bs
    out.update(res)
    return out


def _jax_pair(jax, optax, alice_jax, params, loss, data, rounds, cycle):
    """Jitted training steps (gradient + update + apply) on ``loss(params, data)``: optax.adam;
    alice_jax with the in-graph ``cond`` (``alice``); the two specialised steps
    (``update(..., sample_step=True/False)``) dispatched from a host-side counter with
    ``tx.is_sample_step`` (``alice_split``); the same on one flattened vector
    (``optax.flatten``, ``alice_split_flat``). Per-batch milliseconds, interleaved."""
    import functools

    from jax.flatten_util import ravel_pytree
    alice = alice_jax.alice(1e-3, quick_steps=3)
    unravel = ravel_pytree(params)[1]
    txs = {"alice": alice, "alice_split": alice, "alice_split_flat": optax.flatten(alice),
           "adam": optax.adam(1e-3)}
    runs, states = {}, {}
    copy = lambda t: jax.tree.map(lambda x: x.copy(), t)  # noqa: E731
    for name, tx in txs.items():
        if name == "adam":
            @jax.jit
            def step(p, s, d, tx=tx):
                g = jax.grad(loss)(p, d)
                u, s = tx.update(g, s, p)
                return optax.apply_updates(p, u), s
        else:
            flat = name.endswith("_flat")

            @functools.partial(jax.jit, static_argnames="sample_step")
            def step(p, s, d, tx=tx, flat=flat, sample_step=None):
                value_fn = lambda q: loss(q, d)  # noqa: E731 - this minibatch
                g = jax.grad(value_fn)(p)
                # optax.flatten hands Alice the flat vector: value_fn unravels it
                vf = (lambda f: loss(unravel(f), d)) if flat else value_fn
                u, s = tx.update(g, s, p, value_fn=vf, sample_step=sample_step)
                return optax.apply_updates(p, u), s
        box = [copy(params), tx.init(copy(params)), 0]  # params, state, batches absorbed
        steps = 1 if name == "adam" else cycle
        split = name.startswith("alice_split")

        def run(box=box, step=step, steps=steps, split=split):
            p, s, c = box
            for _ in range(steps):
                if split:  # the host-side schedule: no device synchronisation
                    p, s = step(p, s, data, sample_step=alice.is_sample_step(c))
                else:
                    p, s = step(p, s, data)
                c += 1
            jax.block_until_ready((p, s))
            box[:] = p, s, c
        for _ in range(1 if name == "adam" else 3):  # compile; then past warm-up, aligned
            run()
        runs[name] = (run, steps)
        states[name] = box
    assert all(int(states[k][1].count) == states[k][2] for k in txs if k != "adam"), \
        "a specialised step refused a batch: the host schedule is off"
    t = interleaved({k: v[0] for k, v in runs.items()}, rounds)
    per = {k: t[k] / runs[k][1] * 1e3 for k in runs}
    pbytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))

    def sbytes(s):
        return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(s) if x.size > 1)
    return {"ms_per_batch": per, "alice_over_adam": per["alice"] / per["adam"],
            "alice_split_over_adam": per["alice_split"] / per["adam"],
            "alice_split_flat_over_adam": per["alice_split_flat"] / per["adam"],
            "_states": {k: sbytes(states[k][1]) / pbytes for k in ("alice", "adam")}}


# -- report ---------------------------------------------------------------------------------------

def markdown(res: dict) -> str:
    m = res["machine"]
    L = [f"Machine: {m['cpu']}, nproc={m['nproc']}; numpy {m['numpy']}, torch {m.get('torch')}, "
         f"jax {m.get('jax')}, optax {m.get('optax')}; threads: {m['threads']}; load average "
         f"at start {tuple(round(x, 2) for x in m.get('loadavg_start', ()))}, at end "
         f"{tuple(round(x, 2) for x in m.get('loadavg_end', ()))}.", ""]
    if res.get("ratios"):
        L += ["Ratios (interleaved rounds in one process per backend; median, interquartile "
              "range and min - max over the rounds):", "", ratio_table(res["ratios"]),
              "Details:", ""]
    L += ["| measurement | value | target | met |", "|---|---|---|---|"]

    def row(what, value, target="", met=None):
        L.append(f"| {what} | {value} | {target} | "
                 f"{'' if met is None else ('yes' if met else 'no')} |")
    t = res.get("torch")
    if t:
        lin = t["linear"]
        r = lin["alice_fused_over_adam_foreach"]
        ms = lin["ms_per_batch"]
        row(f"torch {lin['params'] / 1e6:.1f}M params, Alice(q=3) / Adam(foreach) per batch",
            f"{r:.2f} ({ms['alice_fused']:.1f} / {ms['adam_foreach']:.1f} ms)", "<= 3.0",
            r <= 3.0)
        row("torch same, Alice / Adam(fused=True)",
            f"{lin['alice_fused_over_adam_fused']:.2f} ({ms['adam_fused']:.1f} ms)")
        row("torch same, generic core path (fused=False) / Adam(foreach)",
            f"{lin['alice_generic_over_adam_foreach']:.2f} ({ms['alice_generic']:.1f} ms)")
        c = t["cnn"]
        cm = c["ms_per_batch"]
        row(f"torch ReLU CNN ({c['params'] / 1e3:.0f}k params, batch {c['batch']}), "
            f"Alice / Adam(foreach)",
            f"{c['alice_fused_over_adam_foreach']:.2f} ({cm['alice_fused']:.1f} / "
            f"{cm['adam_foreach']:.1f} ms)")
        row("torch CNN, generic path / Adam(foreach)",
            f"{c['alice_generic_over_adam_foreach']:.2f} ({cm['alice_generic']:.1f} ms)")
    j = res.get("jax")
    if j and "skipped" not in j:
        for k, label in (("linear", f"{j['linear']['params'] / 1e6:.1f}M params"),
                         ("cnn", f"ReLU CNN ({j['cnn']['params'] / 1e3:.0f}k params)")):
            ms = j[k]["ms_per_batch"]
            goal = 2.5 if k == "linear" else 2.0
            for name, what in (("alice", "in-graph cond"),
                               ("alice_split", "host-dispatched sample/quick steps"),
                               ("alice_split_flat", "host-dispatched, optax.flatten")):
                r = j[k][name + "_over_adam"]
                row(f"jax jit {label}, alice_jax(q=3) {what} / optax.adam per batch",
                    f"{r:.2f} ({ms[name]:.2f} / {ms['adam']:.2f} ms)", f"<= {goal}",
                    r <= goal)
    elif j:
        row("jax", j["skipped"])
    nres = res.get("numpy")
    if nres:
        row("memory bandwidth, STREAM triad a = b + s c (NumPy, blocked) / add a = b + c "
            "(one ufunc) / copy", f"{nres['triad_GBps']:.1f} / {nres['add_GBps']:.1f} / "
            f"{nres['copy_GBps']:.1f} GB/s")
        for r in nres["rows"]:
            row(f"NumPy {r['path']} update ({r['words']} words/element)",
                f"{r['elements_per_s'] / 1e6:.0f} Melem/s = {r['fraction_of_triad_bound']:.0%} "
                f"of the triad bound ({r['fraction_of_best_stream_bound']:.0%} of the best "
                f"stream rate)")
        for name, mix in nres["q3_mix"].items():
            target = ">= 50%" if name != "core" else ""
            extra = (f"; {mix['speedup_over_core']:.1f}x the generic core"
                     if "speedup_over_core" in mix else "")
            row(f"NumPy {name}, q=3 mix ({mix['words']:.2f} words/element)",
                f"{mix['fraction_of_triad_bound']:.0%} of the triad bound "
                f"({mix['fraction_of_best_stream_bound']:.0%} of the best stream rate){extra}",
                target, (mix["fraction_of_triad_bound"] >= 0.5) if target else None)
    d = res.get("driver")
    if d:
        for gname, ms in d["ms_per_batch"].items():
            sp = d["speedup_over_core"][gname]
            row(f"alice_ref.Alice(q=3), {d['n'] / 1e6:.1f}M float32, {gname} gradient: "
                f"engine '{d['engine']}' / threads 2 / engine='core', ms per batch",
                f"{ms['engine']:.1f} / {ms['engine_2threads']:.1f} / {ms['core']:.1f} "
                f"({sp['engine']:.1f}x, {sp['engine_2threads']:.1f}x)", ">= 5x", sp["engine"] >= 5)
    mem = res.get("memory")
    if mem:
        for k, v in mem.items():
            if k.startswith("_"):
                continue
            target = "<= 6 words beyond the parameter" if k.startswith("alice") else ""
            row(f"state bytes / parameter bytes: {k}", f"{v:.2f}", target,
                (v <= 6.0) if target else None)
    return "\n".join(L) + "\n"


def main():
    args = vars(ARGS) | {"out": os.path.relpath(ARGS.out, ROOT)}  # no machine paths in results
    res = {"machine": machine(), "args": args}
    only = set(ARGS.only.split(","))
    t0 = time.time()
    if "numpy" in only:
        res["numpy"] = bench_numpy(ARGS.params, 5 if ARGS.quick else 15)
    if "driver" in only:
        res["driver"] = bench_driver(ARGS.params, 3 if ARGS.quick else 9)
    if "torch" in only:
        res["torch"] = bench_torch(ARGS.quick)
    if "jax" in only:
        res["jax"] = bench_jax(ARGS.quick)
    if "memory" in only:
        mem = {}
        t = res.get("torch", {}).get("linear", {}).get("state_bytes_per_param_byte", {})
        if t:
            mem["alice_torch (mu, nu, G, V, H, R)"] = t["alice_fused"]
            mem["torch Adam (exp_avg, exp_avg_sq)"] = t["adam_foreach"]
        j = res.get("jax", {}).get("linear", {}).get("state_bytes_per_param_byte", {})
        if j:
            mem["alice_jax (mu, G, V, H, R; nu is the params)"] = j["alice"]
            mem["optax.adam (mu, nu)"] = j["adam"]
        mem["official Alice 1.1 (7 words beyond the parameter)"] = 7.0
        res["memory"] = mem
    try:
        res["machine"]["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    res["seconds"] = time.time() - t0
    res["ratios"] = RATIOS
    out = pathlib.Path(ARGS.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(res, indent=2, default=float))
    md = markdown(res)
    (out / "bench.md").write_text(md)
    print(md)
    print(f"({res['seconds']:.0f} s; written to {out / 'bench.json'} and {out / 'bench.md'})")
    if ARGS.markdown:
        m = res["machine"]
        header = (f"`python benchmarks/bench.py --only {ARGS.only}"
                  f"{' --quick' if ARGS.quick else ''} --threads {ARGS.threads} --markdown "
                  f"{ARGS.markdown}` ({m['cpu']}, nproc {m['nproc']}, torch {m.get('torch')}, "
                  f"numpy {m['numpy']}; load average at start "
                  f"{tuple(round(x, 2) for x in m.get('loadavg_start', ()))}):")
        rewrite_doc(ARGS.markdown, ratio_table(RATIOS), header)
        print(f"(ratio table written into {ARGS.markdown})")


if __name__ == "__main__":
    main()
