"""Peak memory of an optimiser step, per parameter, above the weights and the gradients.

One subprocess per configuration (Adam foreach, Alice fused, Alice generic), each building a
model of ``--params`` float32 parameters (4 tensors), allocating its gradients once, then
resetting the kernel's peak-RSS mark (``/proc/self/clear_refs``) and running ``--steps``
optimiser steps (for Alice with betas (0.5, 0.999) and quick_steps 1: two warm-up sample steps,
then quick and sample steps with the update). Reported: (peak RSS - RSS with weights and
gradients) / parameters, in bytes. Linux only (/proc). Figures:
docs/performance.md#what-limits-the-rest.

    python benchmarks/memory_torch.py --params 50000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CONFIGS = ("adam", "alice-fused", "alice-generic")


def _kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(config: str, n: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    k = 4
    params = [torch.nn.Parameter(torch.randn(n // k, generator=torch.Generator().manual_seed(i)))
              for i in range(k)]
    sum((p * p).sum() for p in params).backward()  # the gradients exist once: the baseline
    if config == "adam":
        opt = torch.optim.Adam(params, lr=1e-3, foreach=True)
    else:
        from alice_torch import Alice
        opt = Alice(params, lr=1e-3, betas=(0.5, 0.999), quick_steps=1,
                    fused=None if config == "alice-fused" else False,
                    generator=torch.Generator().manual_seed(0))

    def closure():
        opt.zero_grad()
        loss = sum((p * p).sum() for p in params) * 0.5
        loss.backward()
        return loss
    base = _kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    for _ in range(steps):
        if config == "adam":
            closure()
            opt.step()
        else:
            opt.step(closure)
    peak = _kib("VmHWM")
    if config != "adam":
        assert opt.t == steps
    return {"config": config, "params": n // k * k, "bytes_per_param":
            (peak - base) * 1024 / (n // k * k), "peak_gib": peak / 2 ** 20}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=int, default=50_000_000)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.params, a.steps)))
        return
    for c in a.configs:
        out = subprocess.run([sys.executable, __file__, "--child", c, "--params", str(a.params),
                              "--steps", str(a.steps)], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['config']:14s} {r['params']:>11,d} params  "
              f"{r['bytes_per_param']:6.1f} B/param above weights+grads  "
              f"(peak RSS {r['peak_gib']:.2f} GiB)", flush=True)


if __name__ == "__main__":
    main()
