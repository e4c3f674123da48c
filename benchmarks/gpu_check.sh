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
# 3. runs every test that needs a GPU: tests/test_fast_paths.py (alice_ref.engines.cuda, the
#    fused CuPy kernels, vs the core on CuPy arrays), tests/test_torch_cuda_path.py (the whole of
#    it: alice_torch's fused CUDA path through DLPack, bit-identical to the core on CuPy, close
#    to torch's generic path; its CPU tests run too), tests/test_torch_adapter.py (the CUDA
#    test), and the JAX tests on the GPU if jax sees one;
# 4. times the fused CuPy path against the generic CuPy path and a device triad, and torch CUDA:
#    Alice fused vs generic vs Adam(foreach) and Adam(fused) (benchmarks/gpu_bench.py);
# 5. times alice_jax against optax.adam on the GPU (benchmarks/bench.py --only jax), if jax sees
#    a GPU.
# Every step has a timeout (at most ~7 minutes in all, pip included); each step reports and
# continues on failure; the exit status is that of the equality tests.
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
  timeout 90 "$PY" -m pip install -q "$@"
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
timeout 150 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_torch_cuda_path.py \
  tests/test_fast_paths.py::test_cupy_fused_bit_identical_to_core_on_cupy \
  tests/test_fast_paths.py::test_cupy_probe_points_and_validation \
  tests/test_fast_paths.py::test_cupy_kernel_source_equals_core_on_cpu \
  tests/test_torch_adapter.py -k "cupy or cuda or Cuda" --junitxml="$OUT/gpu_tests.xml"
status=$?
say "gpu equality tests exit status: $status"

jax_gpu=0
if JAX_PLATFORMS= "$PY" -c "import jax, sys; sys.exit(0 if jax.devices('gpu') else 1)" \
    >/dev/null 2>&1; then
  jax_gpu=1
  say "JAX tests on the GPU"
  JAX_PLATFORMS=cuda timeout 90 "$PY" -m pytest -q -rs -p no:cacheprovider \
    tests/test_jax_adapter.py --junitxml="$OUT/jax_gpu_tests.xml" \
    || say "JAX GPU tests failed or timed out"
else
  say "jax sees no GPU: JAX GPU tests and timings skipped"
fi

say "timings: CuPy kernels, torch CUDA"
timeout 150 "$PY" benchmarks/gpu_bench.py --out "$OUT" ${GPU_BENCH_ARGS:-} \
  || say "gpu_bench.py failed or timed out"

if [ "$jax_gpu" = 1 ]; then
  say "timings: alice_jax vs optax.adam on the GPU"
  JAX_PLATFORMS=cuda timeout 90 "$PY" benchmarks/bench.py --only jax --quick \
    --out "$OUT/jax_gpu" || say "bench.py --only jax failed or timed out"
fi

say "done; results in $OUT (gpu_check.log, gpu_tests.xml, gpu_bench.json, gpu_bench.md,
jax_gpu/)"
exit $status
