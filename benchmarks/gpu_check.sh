#!/usr/bin/env bash
# One prepared GPU check (about 7 minutes on an H200, the first run of it in
# benchmarks/results/gpu_h200/): the device, the core test suite on
# the GPU backend, the throughput benchmark (PC vs lean vs backprop), scaling at widths
# 1024-8192 in float32 and bfloat16, and a short `pcastro oneshot`.
#
#   bash benchmarks/gpu_check.sh OUT_DIR
#
# It writes about ten files; to carry them off a remote machine as one archive:
#   bash benchmarks/gpu_check.sh /tmp/g; tar czf gpu_check.tgz -C /tmp g
#
# Runs from the repository root with the machine's own jax/equinox/optax; pcastro is used
# from the source tree (PYTHONPATH), so nothing needs installing. Missing pure-Python
# packages (beartype, mlxtend) may be provided as wheels in .whl/.
set -uo pipefail
out="${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR}"
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
log="$out/gpu_check.log"
{
  echo "== device"; date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  python3 -c "import jax, equinox, optax; print('jax', jax.__version__, jax.devices(), 'equinox', equinox.__version__, 'optax', optax.__version__)"
  echo "== core tests on the GPU backend (float32 matmuls at full precision)"
  # The whole pytest output goes to its own log: a tail of the combined stream can be all
  # traceback text from a test that expects an error, with no summary line in it.
  JAX_DEFAULT_MATMUL_PRECISION=highest timeout 240 python3 -m pytest -q -p no:cacheprovider \
    tests/test_network.py tests/test_inference.py tests/test_learning.py tests/test_episodes.py \
    tests/test_nonparametric.py >"$out/gpu_tests.log" 2>&1
  echo "pytest exit status $? (124: stopped by the time limit)"
  grep -E "passed|failed|error" "$out/gpu_tests.log" | tail -3
  echo "== throughput, 784-1024-1024-10, batch 256, T=20"
  timeout 60 python3 benchmarks/throughput.py --sizes 784,1024,1024,10 --batch 256 --steps 20 \
    --repeats 7 --inner 20 --json "$out/throughput_gpu.json"
  echo "== scaling, widths 1024-8192, float32"
  timeout 150 python3 benchmarks/scaling.py --preset gpu --sweeps width,networks --repeats 5 \
    --json "$out/scaling_gpu_float32.json"
  echo "== solver cost: Euler vs AdaptiveEuler (curvature probe) vs backtracking, T=3 and 20"
  timeout 90 python3 benchmarks/solver_cost.py --sizes 784,1024,1024,10 --batch 256 \
    --json "$out/solver_cost_gpu.json"
  echo "== scaling, widths 1024-8192, bfloat16"
  timeout 50 python3 benchmarks/scaling.py --preset gpu --sweeps width --repeats 5 \
    --dtype bfloat16 --json "$out/scaling_gpu_bfloat16.json"
  echo "== devices (data-parallel PC step, batch split over the GPUs)"
  ngpu=$(python3 -c "import jax; print(jax.device_count())")
  if [ "$ngpu" -gt 1 ]; then
    timeout 60 python3 benchmarks/scaling.py --preset gpu --sweeps devices --repeats 5 \
      --json "$out/scaling_gpu_devices.json"
  else
    echo "one GPU: the multi-device section needs more than one (skipped)"
  fi
  echo "== pcastro oneshot (digits, scratch, 20 episodes)"
  timeout 90 python3 -m pcastro.cli oneshot --no-progress --episodes 20 --out "$out/oneshot"
  echo "== done"; date -u
} 2>&1 | tee "$log"
