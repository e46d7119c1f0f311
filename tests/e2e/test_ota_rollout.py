"""Signed OTA updates end to end (issue 17): every part real, each in its own process.

The county office: ``xl-provision ca init``, ``release keys init``, five
``device add`` in two villages, ``broker-config``; three releases of this
repository built as wheels (tests/support/release_kit.py) and signed with
``xl-provision release build --platform x86_64``:

- A (the base, installed on every device before the test),
- B (good: a one-line change, so the agent wheel comes as a bsdiff4 delta),
- C (broken: ``xl-agent run`` exits at every start, so it crash-loops).

The hub: a real Mosquitto with the generated TLS/dynsec config and ``xl-hub
run`` with ``updates.enabled`` (its mTLS repository server, online signing)
and ``rollout.enabled`` (``tick_s`` 1 s). Rollouts are made and read with
the real ``xl-hub rollout create/status`` CLI.

Each device has its own ``update.root`` (releases/, current, guard.py) and
``update.state_dir`` (state.json, the trusted TUF root from its bundle), and
is run by tests/support/unit_runner.py as systemd runs
firmware_config/xueliang-agent.service: the guard as ExecStartPre, then
``current/venv/bin/xl-agent run``, restarted whenever it exits. So the switch
to a new release and the rollback are real process restarts.

Venvs, for speed: every release's venv is made by agent.update.install's own
``install_release`` (A here, B and C by the devices' ``xl-agent update apply``
children), but from this test's interpreter, with the agent wheel alone
(``pip install --no-index --no-deps``) over .venv's packages through a .pth
file (``InstallOptions(no_deps=True, extra_paths=…)``), which the update child
uses when ``XL_UPDATE_DEV_SITE`` is set. A device makes its venv from the
system python and every wheel of the release instead. The update itself is
the device's: every file of the release is verified against the TUF metadata,
and downloaded, patched from a bsdiff4 delta or copied from the running
release's files/ (dependency wheels and the model are kept there, as on a
device), so the bytes the hub counts are a device's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, select

from agent.update.apply_cli import DEV_SITE_ENV
from agent.update.fetch import HttpsFetcher, TlsIdentity
from agent.update.guard import State, switch_link, write_state
from agent.update.install import InstallOptions, install_release
from agent.update.layout import Layout
from agent.update.switch import install_guard
from agent.update.tuf_client import LocalFiles, ReleaseClient
from hub.db.schema import devices
from hub.updates.tables import update_downloads
from sim.ports import free_port, wait_port
from tests.support.broker import MOSQUITTO, run_broker
from tests.support.hub_db import not_armed_now
from tests.support.release_kit import MODEL, build_agent_wheel, dependency_wheels
from tests.support.unit_runner import Unit
from tests.support.wait import wait_for
from xlrelease.store import Repository

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
A, B, C = "1.0.0", "1.1.0", "1.2.0"
SITE = sysconfig.get_paths()["purelib"]  # .venv's packages, seen by every release venv (see above)
MAX_ATTEMPTS = 2
# (household, village, group): three in 和平村, two in 红星村 (泉山镇)
HOUSEHOLDS = (
    ("HH01", "和平村", "g-heping"),
    ("HH02", "和平村", "g-heping"),
    ("HH03", "和平村", "g-heping"),
    ("HH04", "红星村", "g-hongxing"),
    ("HH05", "红星村", "g-hongxing"),
)


def run(*argv: str | Path, timeout: float = 120) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


@dataclass
class Device:
    device_id: str
    household: str
    village: str
    layout: Layout
    unit: Unit

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.layout.state_file.read_text()))
        except (OSError, ValueError):
            return {}


@dataclass
class County:
    work: Path
    state: Path
    hub_config: Path
    hub_log: Path
    devices: list[Device]
    repo: Repository
    after_b: dict[str, int] = field(default_factory=dict)  # device -> bytes the hub served it, A -> B

    def hub(self, *args: str) -> str:
        return run(BIN / "xl-hub", *args, "--config", self.hub_config)

    def rollout(self, rid: int) -> dict[str, Any]:
        return dict(json.loads(self.hub("rollout", "status", str(rid), "--json")))

    def seen(self) -> dict[str, dict[str, Any]]:
        """What the hub stored per device: ``ver`` and the latest heartbeat's update keys."""
        engine = create_engine(f"sqlite:///{self.state / 'hub.sqlite3'}")
        try:
            with engine.connect() as conn:
                rows = conn.execute(select(devices.c.id, devices.c.agent_version, devices.c.online)).all()
                dl = {r.device_id: int(r.bytes) for r in conn.execute(select(update_downloads))}
        finally:
            engine.dispose()
        return {r.id: {"ver": r.agent_version, "online": bool(r.online), "bytes": dl.get(r.id, 0)} for r in rows}

    def diagnosis(self) -> str:
        parts = [f"--- hub log\n{self.hub_log.read_text(errors='replace')[-3000:]}"]
        for d in self.devices:
            text = d.unit.log.read_text(errors="replace") if d.unit.log.exists() else ""
            parts.append(f"--- {d.household} {d.device_id} state {d.state()}\n{text[-2500:]}")
        return "\n".join(parts)


def build_releases(work: Path, state: Path) -> None:
    wheels = work / "wheels"
    wheels.mkdir()
    specs: dict[str, dict[str, str]] = {
        A: {},
        B: {"change": "release B: a one-line fix"},
        C: {"code": 'raise SystemExit("xl-agent: release C is broken on purpose")'},
    }
    with ThreadPoolExecutor(2) as pool:
        built = dict(zip(specs, pool.map(lambda v: build_agent_wheel(wheels / v, v, **specs[v]), specs), strict=True))
    house = dependency_wheels()
    run(BIN / "xl-provision", "release", "keys", "init", "--state", state)
    for version, wheel in built.items():
        run(BIN / "xl-provision", "release", "build", "--state", state, "--version", version, "--wheel", wheel,
            "--wheelhouse", house, "--model", MODEL, "--min-from", A, "--platform", "x86_64", timeout=300)  # fmt: skip


def install_base(repo: Repository, layout: Layout) -> None:
    """Release A as first boot leaves it: releases/A/ through install_release, current -> A,
    state.json with A good, the release's guard.py."""
    targets = repo.targets().signed.targets
    manifest_path = f"agent/{A}/manifest.json"
    manifest = json.loads(repo.target_file(manifest_path, targets[manifest_path].hashes["sha256"]).read_bytes())
    paths = [manifest_path, manifest["agent"], manifest["model"], *manifest["platforms"]["x86_64"]]
    files = {p: repo.target_file(p, targets[p].hashes["sha256"]) for p in paths}
    opts = InstallOptions(python=sys.executable, no_deps=True, extra_paths=(Path(SITE),))
    install_release(layout, files[manifest_path], files, opts)
    write_state(layout, State(current=A, good=[A]))
    switch_link(layout, A)
    install_guard(layout, layout.releases / A / "venv" / "lib" / "python3.11" / "site-packages" / "agent" / "update"
                  / "guard.py")  # fmt: skip


def agent_config(state: Path, device_id: str, home: Path, layout: Layout) -> Path:
    bundle = state / "bundles" / device_id
    doc = yaml.safe_load((bundle / "agent.yaml").read_text(encoding="utf-8"))
    tls = bundle / "tls"
    doc["broker"].update(ca=str(tls / "ca.crt"), cert=str(tls / "device.crt"), key=str(tls / "device.key"))
    doc["broker"]["backoff_cap_s"] = 2.0
    doc["state_dir"] = str(home / "state")
    doc["health"] = {"interval_s": 5}
    doc["camera"] = {"source": "synthetic:walkthrough", "fps": 4, "width": 640, "height": 360}
    doc["vision"] = {"detect": {"num_threads": 1, "detect_fps": 1.0}}
    doc["gpio"] = {"led": 17, "buzzer": 18, "button": 27, "pin_factory": "mock", "hold_s": 2.0}
    doc["update"].update(
        root=str(layout.root),
        state_dir=str(layout.state_dir),
        commit_within_s=60,
        max_attempts=MAX_ATTEMPTS,
        bandwidth_bytes_per_s=None,
        outside_armed_hours_only=False,
    )
    path = home / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def hub_yaml(state: Path, path: Path, broker_port: int, update_port: int) -> None:
    ca, clients = state / "ca", state / "ca" / "clients"
    doc = {
        "database": {"url": f"sqlite:///{state / 'hub.sqlite3'}"},
        "mqtt": {
            "host": "localhost",
            "port": broker_port,
            "client_id": "hub",
            "tls": {"ca": str(ca / "ca.crt"), "cert": str(clients / "hub.crt"), "key": str(clients / "hub.key")},
        },
        "ingest": {"batch_ms": 10},
        "health": {"check_interval_s": 0.5},
        "metrics": {"enabled": False},
        "updates": {
            "enabled": True,
            "host": "127.0.0.1",
            "port": update_port,
            "repo": str(state / "tuf" / "repo"),
            "keys_dir": str(state / "tuf" / "online"),
            "ca": str(ca / "ca.crt"),
            "cert": str(ca / "server.crt"),
            "key": str(ca / "server.key"),
        },
        "rollout": {"enabled": True, "tick_s": 1.0, "resend_after_s": 600},
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Iterator[County]:
    work = tmp_path_factory.mktemp("ota")
    state = work / "state"
    broker_port, update_port = free_port(), free_port()
    xp = BIN / "xl-provision"
    run(xp, "ca", "init", "--state", state, "--broker-host", "localhost", "--broker-port", str(broker_port),
        "--update-port", str(update_port))  # fmt: skip
    build_releases(work, state)  # keys first: the bundles carry the trusted root
    armed = not_armed_now()
    for household, village, group in HOUSEHOLDS:
        run(xp, "device", "add", "--state", state, "--township", "泉山镇", "--village", village,
            "--household", household, "--group", group, "--armed-from", armed["armed_from"],
            "--armed-to", armed["armed_to"])  # fmt: skip
    run(xp, "broker-config", "--state", state, "--out", state / "broker", "--port", str(broker_port),
        "--bind", "127.0.0.1")  # fmt: skip
    repo = Repository(state / "tuf" / "repo")

    by_household: dict[str, str] = {}
    for bundle in sorted((state / "bundles").iterdir()):
        doc = yaml.safe_load((bundle / "agent.yaml").read_text(encoding="utf-8"))
        by_household[str(doc["device"]["household"])] = bundle.name
    layouts = {
        h: Layout(root=work / "dev" / h / "opt", state_dir=work / "dev" / h / "update") for h, _, _ in HOUSEHOLDS
    }
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda lay: install_base(repo, lay), layouts.values()))
    devs = []
    for household, village, _ in HOUSEHOLDS:
        device_id, layout, home = by_household[household], layouts[household], work / "dev" / household
        layout.tuf_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(state / "bundles" / device_id / "tuf" / "root.json", layout.tuf_dir / "root.json")
        config = agent_config(state, device_id, home, layout)
        unit = Unit(layout.root, layout.state_dir, config, home / "state", home / "unit.log", env={DEV_SITE_ENV: SITE})
        devs.append(Device(device_id, household, village, layout, unit))

    hub_config, hub_log = work / "hub.yaml", work / "hub.log"
    hub_yaml(state, hub_config, broker_port, update_port)
    conf = (state / "broker" / "mosquitto.conf").read_text()
    (work / "broker").mkdir()
    with run_broker(conf, port=broker_port, workdir=work / "broker"):
        with open(hub_log, "wb") as log:
            hub = subprocess.Popen([BIN / "xl-hub", "run", "--config", hub_config], stdout=log,
                                   stderr=subprocess.STDOUT, cwd=work)  # fmt: skip
        c = County(work, state, hub_config, hub_log, devs, repo)
        try:
            wait_port(update_port, 60)
            for d in devs:
                d.unit.start()
            wait_for(
                lambda: all(s["online"] and s["ver"] == A for s in c.seen().values()),
                90,
                "every device online on release A",
                step=0.5,
            )
            yield c
        finally:
            for d in devs:
                d.unit.stop()
            hub.terminate()
            try:
                hub.wait(15)
            except subprocess.TimeoutExpired:
                hub.kill()
                hub.wait(5)


def create(c: County, version: str, *cohorts: str, min_success: float, max_failure: float) -> int:
    args = [x for spec in cohorts for x in ("--cohort", spec)]
    out = c.hub("rollout", "create", "--version", version, *args, "--min-success", str(min_success),
                "--max-failure", str(max_failure), "--by", "test")  # fmt: skip
    first = out.splitlines()[0]
    assert first.startswith("rollout ") and first.endswith(" created"), out
    return int(first.split()[1])


def sends(detail: dict[str, Any]) -> dict[str, int]:
    """device -> when the hub sent it ``update`` (ms), from the audit log."""
    return {a["device_id"]: int(a["at_ms"]) for a in detail["audit"] if a["action"] == "send"}


def test_a_good_release_rolls_out_cohort_by_cohort(county: County) -> None:
    c = county
    installer = c.devices[0]
    rid = create(c, B, f"installers:{installer.device_id}", "village:和平村", "all", min_success=100, max_failure=0)
    try:
        wait_for(lambda: c.rollout(rid)["rollout"]["status"] == "done", 240, f"rollout {rid} of {B} done", step=1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{json.dumps(c.rollout(rid), ensure_ascii=False, default=str)[:3000]}\n"
                             f"{c.diagnosis()}") from None  # fmt: skip
    detail = c.rollout(rid)
    cohorts = detail["cohorts"]
    assert [x["spec"] for x in cohorts] == [f"installers:{installer.device_id}", "village:和平村", "all"]
    assert [x["total"] for x in cohorts] == [1, 2, 2]
    assert all(x["counts"] == {"committed": x["total"]} for x in cohorts), cohorts
    assert detail["failures"] == []

    # Cohort k+1 started only once every device of cohort k had committed (min-success 100 %).
    committed = {a["device_id"]: int(a["at_ms"]) for a in detail["audit"] if a["action"] == "committed"}
    members: dict[int, list[str]] = {}
    for a in detail["audit"]:
        if a["action"] == "send":
            members.setdefault(int(a["cohort"]), []).append(a["device_id"])
    assert sorted(len(v) for v in members.values()) == [1, 2, 2] and members[0] == [installer.device_id]
    starts = [int(x["started_ms"]) for x in cohorts]
    assert starts == sorted(starts)
    for k in (1, 2):
        assert starts[k] >= max(committed[d] for d in members[k - 1]), (k, starts, committed)
        assert min(sends(detail)[d] for d in members[k]) >= starts[k]

    # Each device: running B (health ver), committed in its own state, restarted into B by the unit.
    seen = c.seen()
    for d in c.devices:
        s = d.state()
        assert seen[d.device_id]["ver"] == B, (d.household, seen[d.device_id])
        assert s["good"][:2] == [B, A] and s["current"] == B and s["trial"] is None and s["us"] == "ok", s
        assert d.unit.release() == B
        assert [x.release for x in d.unit.starts][-1] == B and A in [x.release for x in d.unit.starts]
    wait_for(lambda: all(s["bytes"] > 0 for s in c.seen().values()), 15, "the hub's byte counters written")
    c.after_b.update({k: v["bytes"] for k, v in c.seen().items()})


def test_a_broken_release_rolls_back_and_halts_the_rollout(county: County) -> None:
    c = county
    wait_for(lambda: all(s["ver"] == B for s in c.seen().values()), 30, f"every device on {B} (the first test)")
    installer = c.devices[3]  # one of 红星村 this time
    before = {d.device_id: len(d.unit.starts) for d in c.devices}
    rid = create(c, C, f"installers:{installer.device_id}", "village:和平村", "all", min_success=100, max_failure=0)

    def halted() -> bool:
        return bool(c.rollout(rid)["rollout"]["status"] == "halted")

    try:
        wait_for(halted, 180, f"rollout {rid} of {C} halted", step=1)
        wait_for(lambda: c.seen()[installer.device_id]["ver"] == B, 60, "the installer's device back on B")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{json.dumps(c.rollout(rid), ensure_ascii=False, default=str)[:3000]}\n"
                             f"{c.diagnosis()}") from None  # fmt: skip
    time.sleep(3)  # a few more ticks: a halted rollout must send nothing more
    detail = c.rollout(rid)
    assert detail["rollout"]["reason"].startswith("cohort 1 (installers:"), detail["rollout"]
    assert [x["started_ms"] is not None for x in detail["cohorts"]] == [True, False, False]
    (failure,) = detail["failures"]
    assert failure["device_id"] == installer.device_id
    assert failure["reason"].startswith("crash loop:"), failure  # the guard's reason, through health ue
    assert list(sends(detail)) == [installer.device_id]  # the others never got an update command

    # The device went to C, crashed MAX_ATTEMPTS times, and the guard put it back on B by itself.
    s = installer.state()
    assert s["current"] == B and s["good"][0] == B and s["trial"] is None, s
    assert s["us"] == "rb" and s["uv"] == C and s["failed"][C].startswith("crash loop"), s
    tried = [x for x in installer.unit.starts[before[installer.device_id] :]]
    on_c = [x for x in tried if x.release == C]
    assert len(on_c) == MAX_ATTEMPTS and all(x.exit_code not in (0, None) for x in on_c), tried
    assert tried[-1].release == B and "rolled back" in tried[-1].guard
    assert C not in s["good"]  # its folder stays until the next commit prunes (agent.update.switch.prune)
    for d in c.devices:
        if d is installer:
            continue
        assert d.unit.release() == B and d.state()["us"] == "ok" and len(d.unit.starts) == before[d.device_id]
        assert not (d.layout.releases / C).exists()
    assert all(v["ver"] == B for v in c.seen().values())


def test_bytes_per_device_of_a_delta_update_and_of_a_full_download(county: County, tmp_path: Path) -> None:
    """What the hub's server counted per device (update_downloads) for A -> B, against a real
    full download of B (nothing installed to copy or patch from) with one device's certificate."""
    c = county
    assert len(c.after_b) == len(c.devices), "the first test records the bytes of the update to B"
    targets = c.repo.targets().signed.targets
    manifest_path = f"agent/{B}/manifest.json"
    manifest = json.loads(c.repo.target_file(manifest_path, targets[manifest_path].hashes["sha256"]).read_bytes())
    release = [manifest_path, manifest["agent"], manifest["model"], *manifest["platforms"]["x86_64"]]
    full_targets = sum(targets[p].length for p in release)
    base_sha = targets[f"agent/{A}/xueliang_edge-{A}-py3-none-any.whl"].hashes["sha256"]
    delta = targets[f"deltas/{base_sha}/{manifest['agent']}.bsdiff4"].length

    d = c.devices[-1]
    bundle = c.state / "bundles" / d.device_id
    before = c.seen()[d.device_id]["bytes"]
    tuf = tmp_path / "tuf"
    tuf.mkdir()
    shutil.copy(bundle / "tuf" / "root.json", tuf / "root.json")
    tls = bundle / "tls"
    https = HttpsFetcher(TlsIdentity(ca=tls / "ca.crt", cert=tls / "device.crt", key=tls / "device.key"))
    url = yaml.safe_load((bundle / "agent.yaml").read_text(encoding="utf-8"))["update"]["url"]
    try:
        client = ReleaseClient(https, url, tuf, tmp_path / "dl")
        fetched = client.fetch_release(client.get_release(B, "x86_64"), LocalFiles())
    finally:
        https.close()
    assert sorted(fetched) == sorted(release[1:])
    assert client.stats.downloaded == full_targets  # every byte of every file, the manifest too

    def served() -> int:
        return int(c.seen()[d.device_id]["bytes"]) - before

    wait_for(lambda: served() >= full_targets, 15, "the hub's counter of the full download")
    time.sleep(3)  # one more flush of the counters: nothing further may come
    full = served()
    print(f"\nB for one device: full download {full:,} B (targets {full_targets:,} B); "
          f"delta update as the hub served it {sorted(c.after_b.values())} B (bsdiff4 delta {delta:,} B)")  # fmt: skip
    metadata = full - full_targets  # root chain, timestamp, snapshot, targets: the same for both
    assert 0 < metadata < 64_000, metadata
    for device, got in c.after_b.items():
        # metadata + manifest + delta; the model and the dependency wheels were copied from A's files/.
        assert got <= metadata + targets[manifest_path].length + delta + 16_000, (device, got)
        assert got < full / 20, (device, got, full)
