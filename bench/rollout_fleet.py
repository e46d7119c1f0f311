"""A rollout to the whole county (issue 17): 3,312 simulated devices answering the update protocol.

The real parts, each its own process, set up as bench/fleet.py sets them up
(and from its code): the cached provisioning state (CA, 3,312 device
certificates, registry), Mosquitto with the provisioned TLS/ACL config, and
``xl-hub run`` with ``rollout.enabled`` (``tick_s`` 1 s) and
``updates.enabled`` serving a real TUF repository built by
``provisioning.release`` (releases 0.9.0 and 0.9.1 of this repository's wheel,
0.9.1 a one-line change, so it has a bsdiff4 delta). ``xl-sim --update`` runs
the fleet: every device answers ``update`` as docs/ota.md section 2 says (ack;
dl with ``ub`` at the agent's 128 KiB/s cap over the measured delta update
size; inst; restart: retained offline, away ``--restart-s`` ± jitter, back
with the new ``ver``; trial; ok after ``--commit-s``). About one device in
``--real-every`` really downloads metadata + manifest + delta from the hub's
HTTPS server with its own certificate, through the agent's own client
(agent.update.tuf_client), and its protocol timeline waits for that download.

The rollout is made with the real CLI::

    xl-hub rollout create --version 0.9.1 --cohort installers:<5 ids> --cohort village:<one village>
        --cohort percent:10 --cohort all --min-success 90 --max-failure 5

Figures (hub time, from the rollout's own tables and audit log):

* ``rollout_fleet_<n>_cohort<k>_start_s``: create → cohort k started;
* ``rollout_fleet_<n>_commit99_s``: create → 99 % of the fleet committed;
  ``_done_s``: → the rollout is done;
* the hub's CPU (process + its MQTT transport child) over the rollout and its RSS;
* bytes per device: simulated (``--update-size``), and for the real sample
  as the device counted them and as the hub's server counted them
  (``update_downloads``), median and range;
* a second run with ``--fail-fraction`` (10 %) of devices failing (half
  ``fail`` before the switch, half ``rb`` after it): where the rollout halts,
  and how many devices never got a command.

Time scaling: the commit delay (trial → ok) is ``--commit-s`` (30 s); a real
agent commits once it has connected, read frames, loaded the model and run
the pipeline, bounded by ``update.commit_within_s`` (600 s). The restart is
``--restart-s`` 20 ± 5 s. Both are printed with the figures.

    .venv/bin/python bench/rollout_fleet.py [--devices 3312] [--postgres] [--fail-fraction 0.1]
        [--commit-s 30] [--restart-s 20] [--real-every 50] [--no-fail-run] [--keep]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import drop_pg, merge_results, pg_schema, print_table  # also puts the project on sys.path
from fleet import (
    BIN,
    MOSQUITTO,
    PROBES,
    SIM_CONNECT_RATE,
    WORK,
    CpuSample,
    Procs,
    broker_config,
    bundle_ids,
    copy_registry,
    cpu_ticks,
    ensure_state,
    hub_yaml,
    log,
    pct,
    raise_nofile,
    rss_mb,
    run,
    sqlite_copy,
    wait_while_alive,
)
from sqlalchemy import func, select, update

from hub.db import make_engine
from hub.db.schema import devices, households, townships, villages
from hub.rollout.tables import rollout_audit, rollout_cohorts, rollout_devices, rollouts
from hub.updates.tables import update_downloads
from sim.ports import free_port, wait_port

OLD, NEW = "0.9.0", "0.9.1"
COHORTS = ("installers", "village", "percent:10", "all")


# --- the release ------------------------------------------------------------------


def ensure_release(work: Path) -> Path:
    """A TUF repository with OLD and NEW (a delta between them), and the files a device running
    OLD has installed (the delta's base). Built once, cached under ``work/rollout-release``."""
    base = work / "rollout-release"
    if (base / ".complete").exists():
        return base
    from provisioning.release.build import ReleaseInput, add_release
    from provisioning.release.repo import TufDir, init_repository
    from tests.support.release_kit import MODEL, build_agent_wheel, dependency_wheels
    from xlrelease.store import Repository

    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    log("building releases 0.9.0 and 0.9.1 into a TUF repository (cached for the next run)")
    old = build_agent_wheel(base / "wheels", OLD)
    new = build_agent_wheel(base / "wheels", NEW, change="a one-line fix")
    house = dependency_wheels()
    tuf = TufDir(base / "tuf")
    repo = init_repository(tuf, Repository(tuf.default_repo))
    add_release(repo, tuf, ReleaseInput(OLD, old, house, MODEL, "0.1.0", ("aarch64",)))
    add_release(repo, tuf, ReleaseInput(NEW, new, house, MODEL, OLD, ("aarch64",)))
    installed = base / "installed"
    installed.mkdir()
    for f in [old, MODEL, *house.glob("*.whl")]:
        shutil.copy(f, installed / f.name)
    (base / ".complete").touch()
    return base


# --- reading the hub ----------------------------------------------------------------


def village_spec(engine: Any, exclude: set[str]) -> tuple[str, int]:
    """One village (township code/name, unambiguous) with devices outside ``exclude``; and its size."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(villages.c.township_code, villages.c.name, func.count(devices.c.id))
            .join(households, households.c.village_id == villages.c.id)
            .join(devices, devices.c.household_id == households.c.id)
            .join(townships, townships.c.code == villages.c.township_code)
            .where(devices.c.id.not_in(exclude))
            .group_by(villages.c.township_code, villages.c.name)
            .order_by(villages.c.township_code, villages.c.name)
        ).all()
    code, name, count = rows[len(rows) // 2]
    return f"{code}/{name}", int(count)


def fleet_on(engine: Any, ids: list[str], version: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(devices)
                .where(devices.c.id.in_(ids), devices.c.online.is_(True), devices.c.agent_version == version)
            ).scalar_one()
        )


def progress(engine: Any, rid: int) -> dict[str, Any]:
    with engine.connect() as conn:
        r = conn.execute(select(rollouts).where(rollouts.c.id == rid)).mappings().one()
        cohorts = [
            dict(c)
            for c in conn.execute(
                select(rollout_cohorts).where(rollout_cohorts.c.rollout_id == rid).order_by(rollout_cohorts.c.position)
            ).mappings()
        ]
        counts: dict[str, int] = dict(
            conn.execute(  # type: ignore[arg-type]
                select(rollout_devices.c.state, func.count())
                .where(rollout_devices.c.rollout_id == rid)
                .group_by(rollout_devices.c.state)
            ).all()
        )
    return {"rollout": dict(r), "cohorts": cohorts, "counts": counts}


def audit_rows(engine: Any, rid: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(a)
            for a in conn.execute(
                select(rollout_audit).where(rollout_audit.c.rollout_id == rid).order_by(rollout_audit.c.id)
            ).mappings()
        ]


def device_rows(engine: Any, rid: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(d) for d in conn.execute(select(rollout_devices).where(rollout_devices.c.rollout_id == rid)).mappings()
        ]


def downloads(engine: Any) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {str(d["device_id"]): dict(d) for d in conn.execute(select(update_downloads)).mappings()}


def med_range(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):,.1f} (range {min(values):,.1f} – {max(values):,.1f}, n={len(values)})"


# --- one run -------------------------------------------------------------------------


def rollout_run(a: argparse.Namespace, fail_fraction: float, tag: str) -> dict[str, Any]:
    work: Path = a.work
    n = a.devices
    state, prov_s = ensure_state(work, n + PROBES, False)  # the fleet bench's cache: same state folder
    release = ensure_release(work)
    sim_ids = bundle_ids(state)[:n]  # xl-sim takes the first n bundles in sorted order
    rundir = work / f"rollout-{tag}-{os.getpid()}"
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    procs = Procs()
    pg: tuple[str, str] | None = None
    out: dict[str, Any] = {"provision_s": prov_s, "fail_fraction": fail_fraction}
    try:
        port = free_port()
        conf = broker_config(state, rundir / "broker", port)
        broker = procs.start(
            "mosquitto", [MOSQUITTO, "-c", str(conf)], rundir / "mosquitto.out", preexec_fn=raise_nofile
        )
        wait_port(port)
        if a.postgres:
            pg = pg_schema("xl_rollout_")
            db_url = pg[1]
            run([str(BIN / "xl-hub"), "db", "upgrade", "--db", db_url])
            copy_registry(f"sqlite:///{state / 'hub.sqlite3'}", db_url)
        else:
            sqlite_copy(state / "hub.sqlite3", rundir / "hub.sqlite3")
            db_url = f"sqlite:///{rundir / 'hub.sqlite3'}"
            run([str(BIN / "xl-hub"), "db", "upgrade", "--db", db_url])
        # The fleet bench's 3 probe identities are registered but never simulated here: out of the
        # registry (in this run's copy), or the "all" cohort would wait for them forever.
        probes = bundle_ids(state)[n:]
        reg = make_engine(db_url)
        with reg.begin() as conn:
            conn.execute(update(devices).where(devices.c.id.in_(probes)).values(status="revoked"))
        reg.dispose()
        # The hub re-signs timestamp.json in its repository: each run gets its own copy.
        repo = rundir / "tuf-repo"
        shutil.copytree(release / "tuf" / "repo", repo)
        up_port = free_port()
        cfg = rundir / "hub.yaml"
        hub_yaml(cfg, state, db_url, port)
        with cfg.open("a") as fh:
            fh.write(
                "updates:\n  enabled: true\n  host: 127.0.0.1\n"
                f"  port: {up_port}\n  repo: '{repo}'\n  keys_dir: '{release / 'tuf' / 'online'}'\n"
                f"  ca: '{state / 'ca' / 'ca.crt'}'\n  cert: '{state / 'ca' / 'server.crt'}'\n"
                f"  key: '{state / 'ca' / 'server.key'}'\n"
                f"rollout:\n  enabled: true\n  tick_s: {a.tick_s}\n"
            )
        hub = procs.start("xl-hub", [str(BIN / "xl-hub"), "run", "--config", str(cfg)], rundir / "hub.log")
        wait_port(up_port, timeout=60)
        engine = make_engine(db_url)

        real_work = rundir / "real"
        real_work.mkdir()
        sim_out = rundir / "sim.json"
        sim_argv = [
            str(BIN / "xl-sim"),
            "--devices", str(n), "--state", str(state), "--broker", f"127.0.0.1:{port}",
            "--rate", str(a.rate), "--heartbeat", "60", "--duration", "3600", "--churn-per-min", "0",
            "--panic-per-hour", "2", "--procs", str(a.procs), "--json",
            "--update", "--update-from", OLD, "--update-size", str(a.update_size),
            "--update-bandwidth", str(a.bandwidth), "--restart-s", str(a.restart_s),
            "--restart-jitter-s", str(a.restart_jitter_s), "--commit-s", str(a.commit_s),
            "--fail-fraction", str(fail_fraction),
        ]  # fmt: skip
        if a.real_every > 0:
            sim_argv += [
                "--real-download-url", f"https://127.0.0.1:{up_port}/tuf/",
                "--real-root", str(repo / "metadata" / "1.root.json"),
                "--real-installed", str(release / "installed"),
                "--real-work", str(real_work), "--real-every", str(a.real_every),
            ]  # fmt: skip
        log(f"{tag}: broker :{port}, hub pid {hub.pid} (updates :{up_port}); xl-sim with {n} devices")
        t_sim = time.time()
        sim = procs.start("xl-sim", sim_argv, rundir / "sim.log", stdout=open(sim_out, "wb"))  # noqa: SIM115
        wait_while_alive(
            lambda: fleet_on(engine, sim_ids, OLD) >= n,
            n / SIM_CONNECT_RATE + 120,
            f"hub shows all {n} online on {OLD}",
            [hub, broker, sim],
        )
        out["connect_s"] = round(time.time() - t_sim, 1)
        log(f"{tag}: all {n} devices online on {OLD} at the hub after {out['connect_s']} s")

        installers = sim_ids[:5]
        village, village_size = village_spec(engine, set(installers))
        argv = [
            str(BIN / "xl-hub"), "rollout", "create", "--config", str(cfg), "--version", NEW,
            "--cohort", "installers:" + ",".join(installers), "--cohort", f"village:{village}",
            "--cohort", "percent:10", "--cohort", "all", "--min-success", "90", "--max-failure", "5",
            "--by", "bench",
        ]  # fmt: skip
        time.sleep(2)  # a settled CPU baseline
        cpu0 = CpuSample(time.time(), cpu_ticks(hub.pid))
        created = subprocess.run(argv, capture_output=True, text=True, check=True)
        m = re.search(r"rollout (\d+) created", created.stdout)
        assert m, created.stdout + created.stderr
        rid = int(m.group(1))
        log(f"{tag}: {created.stdout.splitlines()[0]}; cohorts installers 5, village {village} ({village_size}), …")

        samples = [cpu0]
        deadline = time.time() + a.timeout
        halted_at: float | None = None
        last_log = 0.0
        while time.time() < deadline:
            alive = [p for p in (hub, broker, sim) if p.poll() is not None]
            if alive:
                raise RuntimeError(f"a process exited early: {alive[0].args[0]}")
            time.sleep(1.0)
            samples.append(CpuSample(time.time(), cpu_ticks(hub.pid)))
            p = progress(engine, rid)
            c, status = p["counts"], p["rollout"]["status"]
            if time.time() - last_log > 15:
                last_log = time.time()
                started = sum(1 for x in p["cohorts"] if x["started_ms"] is not None)
                log(f"{tag}: {status}, {started}/4 cohorts started, {c}")
            if status == "done":
                break
            if status == "halted":
                halted_at = halted_at or time.time()
                # Devices already updating carry on; wait for them to settle, then stop.
                if not (c.get("sent", 0) or c.get("working", 0)) or time.time() - halted_at > 2 * (
                    a.restart_s + a.commit_s + 30
                ):
                    break
        out["hub_cpu_pct"] = round(pct(samples[0], samples[-1]), 1)
        five = samples[::5]
        out["hub_cpu_peak_pct"] = round(max((pct(x, y) for x, y in itertools.pairwise(five)), default=0.0), 1)
        out["hub_rss_mb"], out["hub_hwm_mb"] = rss_mb(hub.pid)
        out["window_s"] = round(samples[-1].t - samples[0].t, 1)

        time.sleep(6)  # the update server flushes its byte counts every 5 s
        p = progress(engine, rid)
        audit = audit_rows(engine, rid)
        rows = device_rows(engine, rid)
        served = downloads(engine)
        created_ms = int(p["rollout"]["created_ms"])
        out["status"] = p["rollout"]["status"]
        out["reason"] = p["rollout"]["reason"]
        out["counts"] = p["counts"]
        out["cohorts"] = [
            {
                "spec": c["spec"],
                "size": c["size"],
                "start_s": None if c["started_ms"] is None else round((c["started_ms"] - created_ms) / 1000, 1),
            }
            for c in p["cohorts"]
        ]
        commits = sorted(x["at_ms"] for x in audit if x["action"] == "committed")
        need = -(-99 * n // 100)
        out["commit99_s"] = round((commits[need - 1] - created_ms) / 1000, 1) if len(commits) >= need else None
        done = [x["at_ms"] for x in audit if x["action"] == "done"]
        out["done_s"] = round((done[0] - created_ms) / 1000, 1) if done else None
        # Per cohort: its start → 90 % of it committed (what lets the next start).
        by_cohort: dict[int, list[int]] = {}
        for x in audit:
            if x["action"] == "committed" and x["cohort"] is not None:
                by_cohort.setdefault(int(x["cohort"]), []).append(int(x["at_ms"]))
        for pos, c in enumerate(p["cohorts"]):
            times = sorted(by_cohort.get(pos, []))
            k = -(-90 * int(c["size"]) // 100)
            if c["started_ms"] is not None and len(times) >= k:
                out["cohorts"][pos]["to90_s"] = round((times[k - 1] - c["started_ms"]) / 1000, 1)
        # A committed device the engine later moved back (a flapping judge) would show here.
        last: dict[str, str] = {}
        flaps = 0
        for x in audit:
            d = x["device_id"]
            if d is None or x["action"] not in ("committed", "working", "failed", "sent"):
                continue
            if last.get(d) == "committed" and x["action"] != "committed":
                flaps += 1
            last[d] = x["action"]
        out["commit_flaps"] = flaps
        out["sends"] = sum(int(r["sends"]) for r in rows)
        out["resent_devices"] = sum(1 for r in rows if int(r["sends"]) > 1)
        out["never_sent"] = sum(1 for r in rows if int(r["sends"]) == 0)
        out["served"] = {d: int(v["bytes"]) for d, v in served.items()}
        out["served_requests"] = {d: int(v["requests"]) for d, v in served.items()}
        out["served_refused"] = sum(int(v["refused"]) for v in served.values())

        os.killpg(sim.pid, signal.SIGTERM)  # xl-sim stops its workers' loops and prints its report
        sim.wait(120)
        rep = json.loads(sim_out.read_text())
        out["sim"] = rep
        engine.dispose()
        return out
    finally:
        procs.stop_all()
        if pg is not None:
            drop_pg(pg[0])
        if not a.keep:
            shutil.rmtree(rundir, ignore_errors=True)


# --- report --------------------------------------------------------------------------


def figures_of(r: dict[str, Any], key: str, a: argparse.Namespace) -> tuple[dict[str, Any], list[tuple[str, Any, str]]]:
    figs: dict[str, Any] = {}
    rows: list[tuple[str, Any, str]] = []
    upd = r["sim"]["update"]
    real = [d for d in upd["real_downloads"] if d["error"] is None]
    real_err = [d for d in upd["real_downloads"] if d["error"] is not None]
    served = [r["served"][d["device_id"]] for d in real if d["device_id"] in r["served"]]
    for pos, c in enumerate(r["cohorts"], 1):
        k = f"{key}_cohort{pos}_start_s"
        figs[k] = c["start_s"]
        to90 = c.get("to90_s")
        if to90 is not None:
            figs[f"{key}_cohort{pos}_to90_s"] = to90
        note = (
            f"{c['spec'][:40]} ({c['size']} devices); its start → 90 % committed {to90 if to90 is not None else '-'} s"
        )
        rows.append((k, c["start_s"] if c["start_s"] is not None else "never", note))
    base: list[tuple[str, Any, str]] = [
        ("commit99_s", r["commit99_s"], "create → 99 % of the fleet committed (hub time, audit log)"),
        ("done_s", r["done_s"], f"create → rollout done; status {r['status']}"),
        ("hub_cpu_pct", r["hub_cpu_pct"], f"% of one core over {r['window_s']:.0f} s of rollout (hub + transport)"),
        ("hub_cpu_peak_pct", r["hub_cpu_peak_pct"], "busiest 5 s"),
        ("hub_rss_mb", r["hub_rss_mb"], f"peak {r['hub_hwm_mb']} MB"),
        ("commands_sent", r["sends"], f"update commands; {r['resent_devices']} devices got more than one"),
        ("commit_flaps", r["commit_flaps"], "devices the engine moved back from committed"),
        ("sim_bytes_per_device", a.update_size, "simulated download (metadata + manifest + delta, measured)"),
    ]
    if real:
        figs[f"{key}_real_bytes_per_device"] = statistics.median(d["body_bytes"] for d in real)
        figs[f"{key}_real_seconds_per_device"] = round(statistics.median(d["seconds"] for d in real), 2)
        figs[f"{key}_real_sample"] = len(real)
        base += [
            ("real_bytes_per_device", figs[f"{key}_real_bytes_per_device"],
             f"device-counted body bytes: {med_range([d['body_bytes'] for d in real])}; "
             f"deltas used {sum(d['deltas'] for d in real)}, errors {len(real_err)}"),
            ("real_seconds_per_device", figs[f"{key}_real_seconds_per_device"],
             f"s, TUF refresh + manifest + delta at {a.bandwidth:,.0f} B/s: {med_range([d['seconds'] for d in real])}"),
        ]  # fmt: skip
    if served:
        figs[f"{key}_server_bytes_per_device"] = statistics.median(served)
        base.append(
            (
                "server_bytes_per_device",
                figs[f"{key}_server_bytes_per_device"],
                f"the hub's update_downloads for the sample: {med_range([float(s) for s in served])}; "
                f"non-file answers {r['served_refused']} (the 404 on the next root version that ends "
                "TUF's root chain counts as refused)",
            )
        )
    for name, value, note in base:
        if value is not None and name != "sim_bytes_per_device":
            figs[f"{key}_{name}"] = value
        rows.append((f"{key}_{name}", value if value is not None else "-", note))
    figs[f"{key}_sim_bytes_per_device"] = a.update_size
    return figs, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=3312)
    ap.add_argument("--postgres", action="store_true", help="hub on a fresh PostgreSQL schema instead of SQLite")
    ap.add_argument("--tick-s", type=float, default=1.0, help="rollout.tick_s of the hub")
    ap.add_argument("--restart-s", type=float, default=20.0)
    ap.add_argument("--restart-jitter-s", type=float, default=5.0)
    ap.add_argument("--commit-s", type=float, default=30.0, help="trial → ok (scaled: a real gate allows 600 s)")
    ap.add_argument("--update-size", type=int, default=None, help="default: bench/results.json update bytes")
    ap.add_argument("--bandwidth", type=float, default=131_072.0, help="bytes/s per device (the agent's cap)")
    ap.add_argument("--real-every", type=int, default=50, help="1 in N devices downloads for real (0: none)")
    ap.add_argument("--fail-fraction", type=float, default=0.10, help="the second run's failing share")
    ap.add_argument("--no-fail-run", action="store_true")
    ap.add_argument("--no-ok-run", action="store_true")
    ap.add_argument("--rate", type=float, default=1.0, help="visits/s across the county beside the rollout")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds a rollout may take")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-results", action="store_true")
    ap.add_argument("--work", type=Path, default=WORK)
    a = ap.parse_args(argv)
    if a.update_size is None:
        results = json.loads((Path(__file__).parent / "results.json").read_text())
        a.update_size = int(results.get("update_agent_only_delta_bytes", 37_140))

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    n = a.devices
    sfx = "_postgres" if a.postgres else ""
    db = "PostgreSQL" if a.postgres else "SQLite"
    scaling = (
        f"restart {a.restart_s:g} ± {a.restart_jitter_s:g} s, commit {a.commit_s:g} s after the restart "
        f"(scaled; the agent's gate allows 600 s), {a.update_size:,} B at {a.bandwidth:,.0f} B/s, tick {a.tick_s:g} s"
    )
    figures: dict[str, Any] = {}
    try:
        if not a.no_ok_run:
            t0 = time.monotonic()
            r = rollout_run(a, 0.0, "ok")
            key = f"rollout_fleet_{n}"
            figs, rows = figures_of(r, key, a)
            figs = {k + sfx: v for k, v in figs.items()}
            figures.update(figs)
            print_table(
                f"rollout of {NEW} to {n} simulated devices ({db}); {scaling}; run took {time.monotonic() - t0:.0f} s",
                [(k + sfx, v, note) for k, v, note in rows],
            )
            print(f"  device states at the end: {r['counts']}; sim outcomes {r['sim']['update']['outcomes']}")
        if not a.no_fail_run:
            t0 = time.monotonic()
            r = rollout_run(a, a.fail_fraction, "fail")
            key = f"rollout_fleet_{n}_fail{round(a.fail_fraction * 100)}"
            commanded = r["sim"]["update"]["commanded_devices"]
            halted_cohort = max((i for i, c in enumerate(r["cohorts"], 1) if c["start_s"] is not None), default=0)
            figs = {
                f"{key}_status": r["status"],
                f"{key}_halted_in_cohort": halted_cohort,
                f"{key}_failed": r["counts"].get("failed", 0),
                f"{key}_committed": r["counts"].get("committed", 0),
                f"{key}_never_sent": r["never_sent"],
                f"{key}_sim_never_commanded": n - commanded,
            }
            halt = [c["start_s"] for c in r["cohorts"] if c["start_s"] is not None]
            figs = {k + sfx: v for k, v in figs.items()}
            figures.update(figs)
            print_table(
                f"the same with {a.fail_fraction:.0%} of devices failing (half fail, half rb) ({db}); "
                f"run took {time.monotonic() - t0:.0f} s",
                [
                    (f"{key}_status{sfx}", r["status"], r["reason"] or ""),
                    (f"{key}_halted_in_cohort{sfx}", halted_cohort, f"cohorts started at {halt} s after create"),
                    (f"{key}_failed{sfx}", r["counts"].get("failed", 0), f"device states {r['counts']}"),
                    (f"{key}_committed{sfx}", r["counts"].get("committed", 0), ""),
                    (f"{key}_never_sent{sfx}", r["never_sent"], "rollout devices the hub never sent a command"),
                    (f"{key}_sim_never_commanded{sfx}", n - commanded, "devices that never received one (xl-sim)"),
                ],
            )
    except KeyboardInterrupt:
        print("interrupted: processes stopped", file=sys.stderr)
        return 130
    if not a.no_results and figures:
        merge_results(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
