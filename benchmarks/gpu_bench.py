#!/usr/bin/env python
"""GPU timings (run by benchmarks/gpu_check.sh; needs cupy and/or a CUDA build of torch).

    python benchmarks/gpu_bench.py [--out DIR] [--sizes 4194304,67108864] [--quick]

- CuPy: the fused kernel (alice_ref.engines.cuda, one launch per batch and parameter) against
  the generic core on CuPy arrays (~40 launches), quick and sample batches, and the effective
  bandwidth of each against a device triad a = b + s c and a copy, measured in the same run.
- torch CUDA: per-batch time of alice_torch.Alice(quick_steps=3) on its fused CUDA path (the
  CuPy kernels on the tensors' memory through DLPack, adapters/alice_torch/_cuda.py; the
  generic path if cupy is missing, which the json says) and on its generic path (fused=False)
  against torch.optim.Adam(foreach=True) and Adam(fused=True) on the nearly-free-gradient
  problem of benchmarks/bench.py.

Writes DIR/gpu_bench.json and DIR/gpu_bench.md (default benchmarks/results/) and prints the
table. Interleaved rounds, medians, CUDA events / synchronisation around each measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters")]

import numpy as np  # noqa: E402

import alice_ref as ar  # noqa: E402


def _interleaved(fns: dict, rounds: int, sync) -> dict:
    times = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            sync()
            t0 = time.perf_counter()
            fns[k]()
            sync()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _cupy_size(cp, ck, n, rounds, sync, triad_k, cfg, quick, sample) -> dict:
    rng = cp.random.default_rng(0)
    st = [rng.standard_normal(n, dtype=cp.float32) for _ in range(6)]
    for k in (3, 4, 5):
        st[k] = cp.abs(st[k])
    g = [rng.standard_normal(n, dtype=cp.float32) for _ in range(3)]
    p = cp.empty(n, cp.float32)
    a, b, c = (cp.empty(n, cp.float32) for _ in range(3))
    core_state = ar.AliceState(12, *([x.copy()] for x in st), 0)
    fns = {
        "triad": lambda: triad_k(b, c, np.float32(3.0), a),
        "copy": lambda: cp.copyto(a, b),
        "fused_quick": lambda: ck.absorb_and_update(cfg, quick, *st, g[2], lr=cfg.lr, param=p),
        "fused_sample": lambda: ck.absorb_and_update(cfg, sample, *st, g[2], g[0], g[1],
                                                     lr=cfg.lr, param=p),
        "core_quick": lambda: ar.apply_update(
            ar.absorb_quick(core_state, quick, [g[2]], cfg), quick, cfg, cfg.lr),
        "core_sample": lambda: ar.apply_update(
            ar.absorb_sample(core_state, sample, [g[0]], [g[1]], [g[2]], cfg, cfg.lr),
            sample, cfg, cfg.lr),
    }
    for f in fns.values():  # compile, warm the memory pool
        f()
    t = _interleaved(fns, rounds, sync)
    bw = 3 * 4 * n / t["triad"]
    rows = {}
    for k, words in (("fused_quick", 11), ("fused_sample", 15), ("core_quick", 11),
                     ("core_sample", 15)):
        rows[k] = {"ms": t[k] * 1e3, "elements_per_s": n / t[k],
                   "fraction_of_triad_bound": words * 4 * n / t[k] / bw}
    return {"triad_GBps": bw / 1e9, "copy_GBps": 2 * 4 * n / t["copy"] / 1e9, "rows": rows,
            "fused_speedup_quick": t["core_quick"] / t["fused_quick"],
            "fused_speedup_sample": t["core_sample"] / t["fused_sample"]}


def bench_cupy(sizes, rounds) -> dict:
    try:
        import cupy as cp

        from alice_ref.engines import cuda as ck
    except Exception as e:  # noqa: BLE001
        return {"skipped": f"cupy not importable: {type(e).__name__}: {e}"}
    if not ck.available():
        return {"skipped": "cupy sees no CUDA device"}
    out = {"device": cp.cuda.runtime.getDeviceProperties(0)["name"].decode(), "sizes": {}}
    sync = cp.cuda.Device().synchronize
    triad_k = cp.ElementwiseKernel("T b, T c, T s", "T a", "a = b + s * c", "triad")
    cfg = ar.AliceConfig(lr=1e-3, betas=(0.9, 0.999), quick_steps=3)
    quick, sample = ar.schedule(13, cfg), ar.schedule(12, cfg)
    for n in sizes:
        out["sizes"][n] = _cupy_size(cp, ck, n, rounds, sync, triad_k, cfg, quick, sample)
        cp.get_default_memory_pool().free_all_blocks()
    return out


def bench_torch_cuda(n, rounds) -> dict:
    try:
        import torch
        from alice_torch import Alice
    except Exception as e:  # noqa: BLE001
        return {"skipped": f"torch/alice_torch not importable: {type(e).__name__}: {e}"}
    if not torch.cuda.is_available():
        return {"skipped": "torch has no CUDA device"}
    dev = torch.device("cuda")
    g = torch.Generator(device="cpu").manual_seed(0)
    shapes = [(1024, n // 4096)] * 4
    p0 = [torch.randn(*s, generator=g).mul_(0.1) for s in shapes]
    cs = [torch.randn(*s, generator=g).to(dev) for s in shapes]
    runs = {}
    from alice_torch import _cuda
    probe = [torch.zeros(2, device=dev)]
    fused_why = _cuda.why_not(probe, {probe[0]: {"mu": probe[0]}})
    for name in ("alice", "alice_generic", "adam_foreach", "adam_fused"):
        ps = [torch.nn.Parameter(p.clone().to(dev)) for p in p0]
        if name.startswith("alice"):
            opt = Alice(ps, lr=1e-3, quick_steps=3, fused=False if name != "alice" else None)
        else:
            opt = torch.optim.Adam(ps, lr=1e-3, foreach=name == "adam_foreach",
                                   fused=name == "adam_fused" or None)

        def closure(opt=opt, ps=ps):
            opt.zero_grad(set_to_none=True)
            loss = sum((p * c).sum() for p, c in zip(ps, cs))
            loss.backward()
            return loss
        steps = 4 if name.startswith("alice") else 1

        def run(opt=opt, closure=closure, steps=steps):
            for _ in range(steps):
                opt.step(closure)
        for _ in range(12 if name.startswith("alice") else 3):
            opt.step(closure)
        runs[name] = (run, steps)
    t = _interleaved({k: v[0] for k, v in runs.items()}, rounds, torch.cuda.synchronize)
    per = {k: t[k] / runs[k][1] * 1e3 for k in runs}
    return {"device": torch.cuda.get_device_name(0), "params": n, "ms_per_batch": per,
            "alice_path": "fused CuPy kernels" if fused_why is None else
            f"generic (the fused path cannot run: {fused_why})",
            "alice_generic_over_adam_foreach": per["alice_generic"] / per["adam_foreach"],
            "alice_over_adam_foreach": per["alice"] / per["adam_foreach"],
            "alice_over_adam_fused": per["alice"] / per["adam_fused"]}


def markdown(res) -> str:
    L = ["| measurement | value |", "|---|---|"]
    c = res["cupy"]
    if "skipped" in c:
        L.append(f"| CuPy | skipped: {c['skipped']} |")
    else:
        for n, r in c["sizes"].items():
            L.append(f"| CuPy {int(n) / 1e6:.0f}M float32: triad / copy bandwidth | "
                     f"{r['triad_GBps']:.0f} / {r['copy_GBps']:.0f} GB/s |")
            for k, v in r["rows"].items():
                L.append(f"| CuPy {int(n) / 1e6:.0f}M {k} | {v['ms']:.3f} ms = "
                         f"{v['fraction_of_triad_bound']:.0%} of the triad bound |")
            L.append(f"| CuPy {int(n) / 1e6:.0f}M fused speed-up over the core (quick / "
                     f"sample) | {r['fused_speedup_quick']:.1f}x / "
                     f"{r['fused_speedup_sample']:.1f}x |")
    t = res["torch"]
    if "skipped" in t:
        L.append(f"| torch CUDA | skipped: {t['skipped']} |")
    else:
        ms = t["ms_per_batch"]
        L.append(f"| torch CUDA {t['params'] / 1e6:.1f}M: Alice ({t['alice_path']}) / "
                 f"Adam(foreach) per batch | {t['alice_over_adam_foreach']:.2f} "
                 f"({ms['alice']:.2f} / {ms['adam_foreach']:.2f} ms) |")
        L.append(f"| torch CUDA: Alice generic path (fused=False) / Adam(foreach) | "
                 f"{t['alice_generic_over_adam_foreach']:.2f} ({ms['alice_generic']:.2f} ms) |")
        L.append(f"| torch CUDA: Alice / Adam(fused) | {t['alice_over_adam_fused']:.2f} "
                 f"({ms['adam_fused']:.2f} ms) |")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "benchmarks" /
                                                                  "results"))
    ap.add_argument("--sizes", default="4194304,67108864")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    rounds = 5 if a.quick else 15
    res = {"cupy": bench_cupy(sizes, rounds), "torch": bench_torch_cuda(sizes[0], rounds)}
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_bench.json").write_text(json.dumps(res, indent=2, default=str))
    md = markdown(res)
    (out / "gpu_bench.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
