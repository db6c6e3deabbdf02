#!/usr/bin/env bash
# The GPU check on a machine without network (docs/gpu.md): install what its image lacks from the wheels that
# `make gpu-wheels` put in .gpu-wheels (carried with the working tree), then run `detseg benchmark --gpu-check`
# (arguments pass through: --output-dir DIR, --budget-minutes M, --dry-run, ...).
# PYTHON (default python3), GPU_WHEELS (default .gpu-wheels) and GPU_SITE (default /tmp/detseg-gpu-site) override.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${GPU_WHEELS:-.gpu-wheels}
# A folder of its own, first on PYTHONPATH: the image's environment, its torch, numpy and OpenCV, stays untouched
SITE=${GPU_SITE:-/tmp/detseg-gpu-site}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INDEX=1

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  # --no-index: never the network; --no-deps: these files and nothing else (the image has their other needs)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu_check: installed $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE"
else
  echo "gpu_check: no wheels in $WHEELS (run 'make gpu-wheels' where pip reaches a registry and carry the folder);" \
       "using what is installed" >&2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # detseg from this working tree: nothing to build or install
if ! "$PYTHON" -c "import pycocotools, albumentations, detseg" 2>/dev/null; then
  "$PYTHON" -c "import pycocotools, albumentations, detseg" 2>&1 | tail -1 >&2
  echo "gpu_check: detseg's dependencies do not import with $PYTHON; see docs/gpu.md" >&2
  exit 2
fi
exec "$PYTHON" tools/benchmark.py --gpu-check "$@"
