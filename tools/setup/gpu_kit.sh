#!/usr/bin/env bash
# Builds, on this CPU machine, the wheels that the lent GPU machine lacks, so that a GPU session spends its
# device minutes measuring instead of compiling (docs/performance.md, section GPU; issue 14 item 4).
#
# The GPU machine's image (as recorded in docs/performance.md, section GPU) has Python 3.12, torch 2.11.0+cu130,
# numpy 2, opencv-python-headless, scipy, pandas, pyyaml, pytest..., but none of the OpenMMLab stack, and nothing
# can be fetched there. mmcv 2.1.0 has only an sdist on PyPI and its ops take ~20 min to compile on 2 cores, so they are built
# here against the same Python and torch version (CPU ops: our models' GPU paths need no mmcv CUDA kernel;
# `import mmcluster` needs mmcv.ops to import), debug symbols stripped (82 MB -> 2 MB), and carried with the
# pure-Python wheels in $KIT (git-ignored; ~30 MB, under the device tool's 64 MiB carry limit).
#
#   bash tools/setup/gpu_kit.sh          # once per workspace (~20 min: downloads + the mmcv compile)
#   then on the GPU machine: bash tools/benchmark/gpu_issue14.sh  (device `run` with carry=[".gpu_kit"])
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
KIT=${KIT:-$ROOT/.gpu_kit}
BUILD=${BUILD:-/tmp/mmcluster-gpu-kit-venv}
PYTHON=${PYTHON:-python3.12}
if ! "$PYTHON" --version >/dev/null 2>&1; then  # a pyenv shim without 3.12 selected: use its 3.12 directly
  PYTHON=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)
  [ -n "$PYTHON" ] || { echo "gpu_kit.sh: needs Python 3.12 (the GPU image's); set PYTHON=..." >&2; exit 1; }
fi
TORCH=${TORCH:-2.11.0}  # the GPU image's torch; the extension must match its version

log() { printf '[gpu-kit %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
mkdir -p "$KIT"
if [ ! -x "$BUILD/bin/python" ]; then
  log "build venv $BUILD ($($PYTHON --version))"
  "$PYTHON" -m venv "$BUILD"
fi
PIP="$BUILD/bin/python -m pip"
log "torch $TORCH and its CUDA libraries (~4 GB, build venv only: PyPI's Linux torch imports only with them)"
$PIP install --quiet --upgrade 'pip>=24' 'setuptools>=77,<82' wheel ninja
$PIP install --quiet "torch==$TORCH" 'numpy>=1.23.5,<2'

if ! ls "$KIT"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  log "mmcv 2.1.0 with CPU ops (~20 min on 2 cores)"
  WRAP=$BUILD/cxx-wrapper
  mkdir -p "$WRAP"
  for cc in c++ g++; do  # as tools/setup/setup_env.sh: newer torch headers need C++20, mmcv passes c++17
    printf '#!/bin/sh\nexec /usr/bin/%s "$@" -std=gnu++20\n' "$cc" > "$WRAP/$cc"
    chmod +x "$WRAP/$cc"
  done
  TMPW=$(mktemp -d)
  PATH="$WRAP:$PATH" CXX="$WRAP/c++" MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
    $PIP wheel --quiet --no-deps --no-build-isolation -w "$TMPW" mmcv==2.1.0
  log "stripping the ops' debug symbols"
  (cd "$TMPW" && "$BUILD/bin/python" -m wheel unpack mmcv-2.1.0-*.whl && rm mmcv-2.1.0-*.whl \
    && strip --strip-debug mmcv-2.1.0/mmcv/_ext*.so && "$BUILD/bin/python" -m wheel pack mmcv-2.1.0 -d "$KIT")
  rm -rf "$TMPW"
fi

log "pure-Python wheels the image lacks (pinned as requirements/; numpy stays the image's 2.x)"
find "$KIT" -name '*.whl' ! -name 'mmcv-*' -delete  # a rerun must not leave two versions of a package
$PIP wheel --quiet --no-deps -w "$KIT" mmengine==0.10.7 mmdet==3.3.0 mmsegmentation==1.2.2 \
  mmpretrain==1.2.0 panopticapi-lite==0.2.0 pycocotools shapely terminaltables prettytable ftfy wcwidth mat4py \
  modelindex model-index ordered-set addict yapf termcolor platformdirs importlib-metadata lazy-importer zipp \
  pyflakes
log "import check in the build venv (CPU; with the packages the image has, not carried)"
$PIP install --quiet opencv-python-headless scipy matplotlib scikit-image pandas rich tqdm einops regex tabulate \
  requests pyyaml six pillow markdown pytest pytest-timeout hypothesis 'numpy>=2' torchvision==0.26.0
CHECK=$(mktemp -d)
$PIP install --quiet --no-deps --target "$CHECK" "$KIT"/*.whl
PYTHONPATH="$ROOT:$CHECK" "$BUILD/bin/python" -c "import mmcv._ext, mmdet.models, mmseg.models, mmpretrain.models, mmcluster; print('import ok')"
rm -rf "$CHECK"
du -sh "$KIT"
log "done: carry .gpu_kit to the GPU machine"
