#!/usr/bin/env bash
# Distributed evaluation with torchrun: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [...]
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROCS=$3
PORT=${PORT:-29500}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
"$PYTHON" -m torch.distributed.run --nproc_per_node="$NPROCS" --master_port="$PORT" \
    "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
