#!/usr/bin/env bash
# Every wheel a 64-bit Raspberry Pi (Pi OS Bookworm, Python 3.11, aarch64) needs
# for `xueliang-edge[agent,pi]`, pinned by constraints.txt, into one folder.
#
#   tools/pi-wheels.sh OUT_DIR
#
# `xl-provision sd-card --wheels OUT_DIR` copies it onto the card, and
# first-boot.sh then installs from it with --no-index: no PyPI at the house,
# and xueliang-edge itself is not on PyPI. Runs on any machine (pip downloads
# for the Pi's platform; nothing is built here but our own pure-Python wheel).
set -euo pipefail
out="${1:?usage: tools/pi-wheels.sh OUT_DIR}"
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py=python3
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# Our wheel, built from a copy so the checkout gets no build/ folder; XL_PI_SRC
# names another source tree to build it from (tests/pi: a given commit).
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
tar -C "${XL_PI_SRC:-$root}" --exclude=.git --exclude='.venv*' --exclude=var --exclude=tests --exclude=bench \
  --exclude=docs --exclude=build --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$src" -xf -
rm -f "$out"/xueliang_edge-*.whl
"$py" -m pip wheel -q --no-deps --no-build-isolation -w "$out" "$src"

# manylinux tags up to Bookworm's glibc 2.36; the newest the pinned wheels use is 2_27.
plats=()
for tag in manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_24_aarch64 manylinux_2_27_aarch64 \
           manylinux_2_28_aarch64 manylinux_2_31_aarch64 manylinux_2_34_aarch64 manylinux_2_35_aarch64 \
           manylinux_2_36_aarch64; do
  plats+=(--platform "$tag")
done
"$py" -m pip download -q --only-binary=:all: "${plats[@]}" --python-version 3.11 --implementation cp \
  --abi cp311 --abi abi3 --abi none -c "$root/constraints.txt" --find-links "$out" -d "$out" \
  'xueliang-edge[agent,pi]'
ls "$out"
