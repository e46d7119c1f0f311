"""Clip upload over a 1 Mbit/s link (issue 18): how long a 10 s clip takes to reach the hub.

The real path: the device's uploader (agent/clips/upload.py) with its own
certificate, through a proxy that paces both directions at 125,000 bytes/s
(tests/support/cutting_proxy.py), to the hub's update server with the clips
route (real mTLS, SQLite). Upload time depends on bytes only, and H.264 does
not compress further, so the clip is that many random bytes; the default size
is bench/clips.py's 10 s at the defaults (walkthrough scene, 160 KB; 421 KB
before bench/clip_quality.py's encoder settings).

- ``clip_upload_s_default_cap``: at the device's default cap (64 KiB/s, below the link).
- ``clip_upload_s_link``: cap above the link (1 MiB/s): the link's own limit.
- ``clip_upload_s_cut``: link-limited, with the link cut 8 times (about every 40 KB).
- ``clip_upload_link_bytes_*``: bytes the link carried up (TLS, HTTP headers, retries).

    python bench/clip_upload.py [--bytes 160000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import merge_results, print_table

from agent.clips.upload import ClipUploader, UploadSettings
from tests.support.clip_hub import GOOD, ClipHub, ClipIndex, start_clip_hub
from tests.support.cutting_proxy import CuttingProxy

LINK = 125_000  # 1 Mbit/s in bytes/s


def run(hub: ClipHub, tmp: Path, data: bytes, event: int, cap: int, cuts: int) -> tuple[float, int]:
    proxy = CuttingProxy(hub.server.port, cuts=cuts, mean_gap=40_000, upload=True, rate_bytes_per_s=LINK)
    try:
        index = ClipIndex(tmp / f"dev-{event}")
        settings = UploadSettings(
            f"https://127.0.0.1:{proxy.port}/clips/", GOOD, hub.identity(), bytes_per_s=cap, backoff_cap_s=0.5
        )
        up = ClipUploader(settings, index, tmp / f"dev-{event}", lambda: False)
        clip = index.add(event, data)
        t0 = time.monotonic()
        while True:
            try:
                up.upload(clip)
                break
            except Exception:  # a cut: the thread would back off and resume; here at once
                up._close()
        return time.monotonic() - t0, proxy.up_bytes
    finally:
        proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=160_000)
    args = parser.parse_args()
    data = os.urandom(args.bytes)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        hub = start_clip_hub(f"sqlite:///{tmp / 'hub.sqlite3'}", tmp)
        try:
            default_s, default_b = run(hub, tmp, data, 1, 65_536, 0)
            link_s, link_b = run(hub, tmp, data, 2, 1 << 20, 0)
            cut_s, cut_b = run(hub, tmp, data, 3, 1 << 20, 8)
        finally:
            hub.stop()
    figures = {
        "clip_upload_clip_bytes": args.bytes,
        "clip_upload_s_default_cap": round(default_s, 2),
        "clip_upload_s_link": round(link_s, 2),
        "clip_upload_s_cut": round(cut_s, 2),
        "clip_upload_link_bytes_default_cap": default_b,
        "clip_upload_link_bytes_link": link_b,
        "clip_upload_link_bytes_cut": cut_b,
    }
    merge_results(figures)
    print_table(
        f"clip upload of {args.bytes:,} bytes over 1 Mbit/s",
        [
            ("default cap 64 KiB/s", f"{default_s:.2f}", f"s, {default_b:,} link bytes"),
            ("link-limited", f"{link_s:.2f}", f"s, {link_b:,} link bytes"),
            ("link-limited, 8 cuts", f"{cut_s:.2f}", f"s, {cut_b:,} link bytes"),
        ],
    )


if __name__ == "__main__":
    main()
