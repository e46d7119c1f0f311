"""``xl-sim``: thousands of simulated devices against a real broker."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import signal
import sys
from dataclasses import asdict, replace
from pathlib import Path

from sim.fleet import Fleet, Identity, Report, Traffic, UpdateBehaviour
from sim.update_download import RealDownload

ROLE = (
    "xl-sim simulates a fleet of household devices for load and soak tests. Each "
    "simulated device is a real MQTT 5 client with its own provisioned TLS "
    "certificate, speaking the same protocol package as the real agents: retained "
    "presence with a will, heartbeats, person and motion visits (start and end), "
    "a dusk burst, panic presses, and devices that silently drop offline and come "
    "back. One event loop per process drives all its devices, so 3,312 devices run "
    "on a 2-core machine. It reports messages sent and acknowledged by kind. With "
    "--update the devices also answer the hub's update command as real agents do "
    "(ack, then dl, inst, a restart, trial and ok in health, or fail/rb for a share "
    "of them), and with --real-download-url a sample really downloads the release "
    "from the hub's update server with its own certificate."
)


def load_identities(state: Path, limit: int | None) -> tuple[list[Identity], str]:
    """Device identities from a provisioning state folder: STATE/bundles/<id>/tls/."""
    bundles = state / "bundles"
    if not bundles.is_dir():
        raise SystemExit(f"xl-sim: {bundles} not found: provision devices first (xl-provision batch)")
    idents = []
    for d in sorted(p for p in bundles.iterdir() if p.is_dir()):
        cert, key = d / "tls" / "device.crt", d / "tls" / "device.key"
        if cert.exists() and key.exists():
            idents.append(Identity(d.name, str(cert), str(key)))
        if limit is not None and len(idents) >= limit:
            break
    ca = state / "ca" / "ca.crt"
    if not idents:
        raise SystemExit(f"xl-sim: no device bundles with device.crt/device.key under {bundles}")
    return idents, str(ca)


Job = tuple[list[Identity], str, int, str | None, Traffic, float, int, UpdateBehaviour | None]


def _worker(args: Job) -> Report:
    idents, host, port, ca, traffic, duration, seed, updates = args
    fleet = Fleet(idents, host, port, ca, traffic, seed=seed, updates=updates)
    # SIGTERM ends the run early with a full report: a bench stops the fleet when its figure is in.
    signal.signal(signal.SIGTERM, lambda _s, _f: fleet.stop())
    try:
        return fleet.run(duration)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the pool ends its idle workers with SIGTERM


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def run_fleet(
    idents: list[Identity],
    host: str,
    port: int,
    ca: str | None,
    traffic: Traffic,
    duration: float,
    procs: int,
    updates: UpdateBehaviour | None = None,
) -> Report:
    raise_fd_limit()
    chunks = [c for c in (idents[i::procs] for i in range(procs)) if c]
    # Traffic rates are fleet-wide: each process drives its share of them.
    share = replace(
        traffic, event_rate=traffic.event_rate / len(chunks), panic_per_hour=traffic.panic_per_hour / len(chunks)
    )
    jobs: list[Job] = [(c, host, port, ca, share, duration, i + 1, updates) for i, c in enumerate(chunks)]
    if len(jobs) == 1:
        return _worker(jobs[0])
    total = Report()
    # The workers stop on SIGTERM and report; this process waits for their reports.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with mp.get_context("spawn").Pool(len(jobs)) as pool:
        for rep in pool.map(_worker, jobs):
            total.merge(rep)
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="xl-sim", description=ROLE)
    p.add_argument("--devices", type=int, default=3312, help="how many devices (default 3312)")
    p.add_argument("--state", type=Path, required=True, help="provisioning state folder (certificates)")
    p.add_argument("--broker", default="127.0.0.1:8883", help="HOST:PORT of the TLS listener")
    p.add_argument("--rate", type=float, default=1.0, help="visits per second across the fleet")
    p.add_argument("--heartbeat", type=float, default=60.0, help="seconds between heartbeats per device")
    p.add_argument("--duration", type=float, default=120.0, help="seconds to run")
    p.add_argument("--dusk-at", type=float, default=None, help="start of the dusk burst, seconds into the run")
    p.add_argument("--panic-per-hour", type=float, default=2.0)
    p.add_argument("--churn-per-min", type=float, default=0.002, help="share of devices dropping per minute")
    p.add_argument("--procs", type=int, default=2, help="worker processes (one event loop each)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    u = p.add_argument_group("update protocol (off unless --update)")
    u.add_argument("--update", action="store_true", help="answer the update command like a real agent")
    u.add_argument("--update-from", default="0.9.0", help="the version every device runs first (0.9.0)")
    u.add_argument("--update-size", type=int, default=37_140, help="bytes per update (the measured delta update)")
    u.add_argument("--update-bandwidth", type=float, default=131_072.0, help="bytes/s per device (the agent's cap)")
    u.add_argument("--update-progress", type=float, default=10.0, help="seconds between health while downloading")
    u.add_argument("--install-s", type=float, default=2.0, help="seconds from downloaded to the restart")
    u.add_argument("--restart-s", type=float, default=20.0, help="seconds a restarting device is away")
    u.add_argument("--restart-jitter-s", type=float, default=5.0, help="± on --restart-s")
    u.add_argument("--commit-s", type=float, default=60.0, help="seconds of trial before ok (or rb)")
    u.add_argument("--fail-fraction", type=float, default=0.0, help="share of devices whose update fails")
    u.add_argument("--rollback-share", type=float, default=0.5, help="of the failures, the share that is rb")
    u.add_argument("--real-download-url", help="https://HOST:PORT/tuf/: a sample really downloads from there")
    u.add_argument("--real-root", help="the trusted root.json of the sample")
    u.add_argument("--real-installed", help="folder of the installed release's files (delta bases)")
    u.add_argument("--real-work", help="scratch folder of the sample's downloads")
    u.add_argument("--real-every", type=int, default=50, help="one device in about this many downloads for real")
    u.add_argument("--real-machine", default="aarch64", help="the manifest platform the sample fetches")
    a = p.parse_args(argv)
    host, _, port = a.broker.rpartition(":")
    idents, ca = load_identities(a.state, a.devices)
    if len(idents) < a.devices:
        print(f"xl-sim: only {len(idents)} provisioned devices in {a.state}; simulating those", file=sys.stderr)
    traffic = Traffic(
        heartbeat_s=a.heartbeat,
        event_rate=a.rate,
        dusk_at_s=a.dusk_at,
        panic_per_hour=a.panic_per_hour,
        churn_per_min=a.churn_per_min,
    )
    updates = None
    if a.update:
        real = None
        if a.real_download_url:
            if not (a.real_root and a.real_installed and a.real_work):
                p.error("--real-download-url needs --real-root, --real-installed and --real-work")
            real = RealDownload(
                a.real_download_url,
                a.real_root,
                a.real_installed,
                a.real_work,
                machine=a.real_machine,
                every=max(1, a.real_every),
                bandwidth_bytes_per_s=int(a.update_bandwidth),
            )
        updates = UpdateBehaviour(
            from_version=a.update_from,
            size_bytes=a.update_size,
            bandwidth_bytes_per_s=a.update_bandwidth,
            progress_s=a.update_progress,
            install_s=a.install_s,
            restart_s=a.restart_s,
            restart_jitter_s=a.restart_jitter_s,
            commit_s=a.commit_s,
            fail_fraction=a.fail_fraction,
            rollback_share=a.rollback_share,
            real=real,
        )
    rep = run_fleet(idents, host or "127.0.0.1", int(port), ca, traffic, a.duration, max(1, a.procs), updates)
    out = {
        "devices": len(idents),
        "connected": rep.connected,
        "connect_failures": rep.connect_failures,
        "dropped_offline": rep.dropped_offline,
        "sent": dict(rep.sent),
        "acked": dict(rep.acked),
    }
    if updates is not None:
        out["update"] = {
            "commands": dict(rep.commands),
            "outcomes": dict(rep.update_outcomes),
            "simulated_bytes": rep.update_bytes,
            "restarts": rep.restarts,
            "commanded_devices": rep.commanded,
            "real_downloads": [asdict(r) for r in rep.real_downloads],
        }
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"devices {out['devices']}  connected {rep.connected}  failures {rep.connect_failures}  "
            f"silent drops {rep.dropped_offline}"
        )
        print(f"{'kind':<14}{'sent':>10}{'acked':>10}")
        for kind in sorted(set(rep.sent) | set(rep.acked)):
            acked = rep.acked.get(kind, "-") if kind != "health" else "(QoS 0)"
            print(f"{kind:<14}{rep.sent.get(kind, 0):>10}{acked:>10}")
        if updates is not None:
            print(
                f"update: {rep.commanded} devices commanded, outcomes {dict(rep.update_outcomes)}, "
                f"{rep.restarts} restarts, {len(rep.real_downloads)} real downloads"
            )
    return 0 if rep.connect_failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
