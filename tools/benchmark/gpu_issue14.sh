#!/usr/bin/env bash
# Issue 14 item 4 on a lent GPU machine, as one device call (docs/performance.md, section GPU):
# the CUDA tests, then tools/benchmark/performance.py at batch 128, 224^2, in fp32 / fp16 / bf16 (autocast).
#
# The GPU image has no OpenMMLab stack and no network: build the wheels here first (tools/setup/gpu_kit.sh,
# ~20 min once), then call the device tool's `run` with carry=[".gpu_kit"] and the command
#   bash tools/benchmark/gpu_issue14.sh
# (estimated 5-8 minutes, not yet run on a GPU; results under $OUT: gpu.txt, tests.txt, perf.txt, one JSON per
# precision).
# A CPU rehearsal of the same steps with the kit (minutes; tiny sizes, no GPU):
#   PYTHON=/tmp/mmcluster-gpu-kit-venv/bin/python DEVICE=cpu bash tools/benchmark/gpu_issue14.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-work_dirs/gpu_issue14}
SITE=${SITE:-/tmp/mmcluster-site}
ROUNDS=${ROUNDS:-7}
mkdir -p "$OUT"

"$PYTHON" -m pip install --quiet --no-index --no-deps --target "$SITE" .gpu_kit/*.whl || exit 1
export PYTHONPATH="$PWD:$SITE" PYTHONUNBUFFERED=1
{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  "$PYTHON" -c "import torch, mmcv._ext, mmcluster
print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else '')"; } 2>&1 | tee "$OUT/gpu.txt"

"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_tools/test_performance.py tests/test_tools/test_benchmark.py \
  tests/test_reliability/test_numerics.py -k "cuda or gpu" 2>&1 | tail -n 30 | tee "$OUT/tests.txt"

if [ "$DEVICE" = cuda ]; then size_args=(--batch 128 --rounds "$ROUNDS"); else size_args=(--quick --batch 2); fi
for precision in fp32 fp16 bf16; do
  [ "$DEVICE" = cpu ] && [ "$precision" = fp16 ] && continue  # CPU rehearsal: fp32 and bf16 suffice
  echo "=== performance.py --device $DEVICE --precision $precision ${size_args[*]}" | tee -a "$OUT/perf.txt"
  "$PYTHON" tools/benchmark/performance.py --device "$DEVICE" --precision "$precision" "${size_args[@]}" \
    --json "$OUT/perf_$precision.json" 2>&1 | grep -v '^\(USDT\|ERROR\):' | tee -a "$OUT/perf.txt"
done
