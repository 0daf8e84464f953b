#!/usr/bin/env bash
# Idempotent environment set-up for mmcluster (used by `make demo` / `make test` / `.ci/run`).
#
# Creates .venv if missing and installs the pinned OpenMMLab stack. Every step is skipped when its
# result is already present, so re-running costs a few seconds. The slow step is mmcv 2.1.0: PyPI has
# only its sdist, so its CPU ops (mmcv._ext) are compiled here (~20 min on 2 cores, once per machine;
# pip caches the built wheel so a new .venv reuses it).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
PIP="$PY -m pip install --quiet"
STAMP=$VENV/.mmcluster-setup-v1

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ ! -x "$PY" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi

# Fast path: everything was installed by this exact version of the requirements.
want=$(cat requirements/*.txt tools/setup/setup_env.sh setup.py | sha1sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

have() { "$PY" - "$@" <<'PYEOF'
import sys
from importlib import metadata
name, version = sys.argv[1], sys.argv[2]
try:
    ok = metadata.version(name) == version
except metadata.PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PYEOF
}

log "build tools (setuptools window >=77,<82: torch needs >=77, mmcv/mmengine need pkg_resources)"
$PIP --upgrade 'pip>=24' 'setuptools>=77,<82' wheel ninja

if ! have torch 2.14.1 || ! have torchvision 0.29.1; then
  log "torch 2.14.1 + torchvision 0.29.1 (from local disk, ~5.5 GB)"
  $PIP torch==2.14.1 torchvision==0.29.1
fi

log "pinned pure-python requirements (runtime, tests, deployment: ONNX export + onnxruntime)"
$PIP -r requirements/runtime.txt -r requirements/tests.txt -r requirements/deploy.txt

if ! "$PY" -c "import mmcv, mmcv._ext" 2>/dev/null || ! have mmcv 2.1.0; then
  log "mmcv 2.1.0 with CPU ops: compiled from the sdist (~20 min on 2 cores the first time)"
  # torch 2.14 headers need C++20 while mmcv's setup.py passes -std=c++17; the last -std wins.
  WRAP=$VENV/cxx-wrapper
  mkdir -p "$WRAP"
  for cc in c++ g++; do
    printf '#!/bin/sh\nexec /usr/bin/%s "$@" -std=gnu++20\n' "$cc" > "$WRAP/$cc"
    chmod +x "$WRAP/$cc"
  done
  PATH="$WRAP:$PATH" CXX="$WRAP/c++" MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
    $PIP --no-build-isolation mmcv==2.1.0
fi

log "OpenMMLab toolkits"
$PIP --no-deps -r requirements/openmmlab.txt
# panopticapi-lite pins numpy<2 and openmim drags in openxlab (pins setuptools~=60.2): no deps.
$PIP --no-deps panopticapi-lite==0.2.0 openmim==0.3.9

log "mmcluster (editable)"
$PIP --no-deps --no-build-isolation -e .

"$PY" -c "import mmcv._ext, mmdet.models, mmseg.models, mmpretrain.models, mmcluster" \
  || { log "import check failed"; exit 1; }
echo "$want" > "$STAMP"
log "done"
