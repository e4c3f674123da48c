#!/usr/bin/env bash
# GPU check of the fast paths (issue 7), prepared to run unattended on a machine with an NVIDIA
# GPU, from the repository root:
#
#     bash benchmarks/gpu_check.sh            # results in $OUT (if set) or benchmarks/results/gpu
#
# 1. reports the machine (nvidia-smi, python, numpy, cupy, torch);
# 2. makes cupy importable if it can: an installed cupy, else `pip install cupy-cuda12x` from
#    $WHEELS (a directory of wheels, offline) or, if the network is reachable, from the index
#    (bounded by a timeout); nothing else is installed unless missing and installable;
# 3. runs the equality tests that need a GPU (tests/test_fast_paths.py: fused CuPy kernels vs
#    the core on CuPy arrays; tests/test_torch_adapter.py: the CUDA test) and the whole
#    tests/test_fast_paths.py;
# 4. times the fused CuPy path against the generic CuPy path and torch CUDA
#    (benchmarks/gpu_bench.py).
# Each step reports and continues on failure; the exit status is that of the equality tests.
# GPU_CHECK_NO_INSTALL=1 installs nothing; GPU_BENCH_ARGS (e.g. "--quick") go to gpu_bench.py.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
LOG="$OUT/gpu_check.log"
export PYTHONPATH="$PWD:$PWD/adapters${PYTHONPATH:+:$PYTHONPATH}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
exec > >(tee -a "$LOG") 2>&1
say() { printf '\n[gpu_check %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

say "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv \
  || say "nvidia-smi not available"
nproc; grep -m1 "model name" /proc/cpuinfo || true
"$PY" -c "import sys; print('python', sys.version.split()[0])"

have() { "$PY" -c "import $1" >/dev/null 2>&1; }
pip_get() {  # pip_get PACKAGE...: offline from $WHEELS, else the index within 180 s
  [ -n "${GPU_CHECK_NO_INSTALL:-}" ] && return 1
  if [ -n "${WHEELS:-}" ] && [ -d "$WHEELS" ]; then
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" "$@" && return 0
  fi
  timeout 180 "$PY" -m pip install -q "$@"
}

say "python packages"
for m in numpy array_api_compat pytest hypothesis; do
  have "$m" || { say "$m missing: installing"; pip_get "${m//_/-}" || say "could not install $m"; }
done
if ! have cupy; then
  say "cupy missing: installing cupy-cuda12x"
  pip_get cupy-cuda12x || say "could not install cupy (the CuPy tests and timings will skip)"
fi
"$PY" - <<'EOF'
import importlib
for m in ("numpy", "cupy", "torch", "jax"):
    try:
        mod = importlib.import_module(m)
        extra = ""
        if m == "cupy":
            extra = f" devices={mod.cuda.runtime.getDeviceCount()}"
        if m == "torch":
            extra = f" cuda={mod.cuda.is_available()} ({mod.version.cuda})"
        print(f"{m} {mod.__version__}{extra}")
    except Exception as e:  # noqa: BLE001
        print(f"{m}: not usable ({type(e).__name__}: {e})")
EOF

say "equality tests that need a GPU"
"$PY" -m pytest -q -rs -p no:cacheprovider -k "cupy or cuda" tests/test_fast_paths.py \
  tests/test_torch_adapter.py --junitxml="$OUT/gpu_tests.xml"
status=$?
say "gpu equality tests exit status: $status"

say "all fast-path tests"
timeout 300 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_fast_paths.py \
  || say "tests/test_fast_paths.py failed (see above)"

say "timings"
timeout 420 "$PY" benchmarks/gpu_bench.py --out "$OUT" ${GPU_BENCH_ARGS:-} \
  || say "gpu_bench.py failed or timed out"

say "done; results in $OUT (gpu_check.log, gpu_tests.xml, gpu_bench.json, gpu_bench.md)"
exit $status
