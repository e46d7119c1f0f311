#!/usr/bin/env bash
# Real video clips we did not make, for `xl-agent replay` tests and tuning.
# They come from Debian's opencv-doc package (OpenCV's sample data, Apache-2.0
# AND BSD-3-Clause per its copyright file); nothing is committed here.
#   vtest.avi     768x576, 10 fps, 79.5 s: pedestrians crossing a plaza
#   Megamind.avi  a cartoon clip (no people in the camera sense)
set -euo pipefail
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/var/clips}"
mkdir -p "$dest"
if [ -s "$dest/vtest.avi" ]; then exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download opencv-doc >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get download opencv-doc >/dev/null
fi
dpkg-deb --fsys-tarfile opencv-doc_*.deb | tar -x \
  ./usr/share/doc/opencv-doc/examples/data/vtest.avi \
  ./usr/share/doc/opencv-doc/examples/data/Megamind.avi \
  ./usr/share/doc/opencv-doc/copyright
cp usr/share/doc/opencv-doc/examples/data/vtest.avi usr/share/doc/opencv-doc/examples/data/Megamind.avi "$dest/"
cp usr/share/doc/opencv-doc/copyright "$dest/COPYRIGHT.opencv-doc"
echo "fetch-test-clips: $(ls "$dest" | tr '\n' ' ')in $dest"
