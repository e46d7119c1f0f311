"""``make demo``: the whole system on one machine, end to end.

1. Provisions a demo county with ``xl-provision``: 2 townships, 3 villages,
   30 households in 3 联防组, with a CA, certificates and SD-card bundles.
2. Starts Mosquitto on the generated TLS/ACL config.
3. Starts a mock 视图库 (GA/T 1400) platform and a webhook receiver.
4. Starts the hub (SQLite) with its console on http://127.0.0.1:8080 and
   prints the login.
5. Starts real agents (``xl-agent run``) on synthetic scenes in which real
   photos of people walk through, plus ``xl-sim`` for the other households.
   One household presses its panic button; its neighbours' buzzers sound and
   they acknowledge with their buttons.

Ctrl-C stops everything. ``DEMO_SECONDS=N`` runs for N seconds and exits 0
after a summary (events stored, alerts raised and acknowledged, items
forwarded, devices online), or 1 if the run did not show what it should.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from sim import ports
from sim.demo_report import Summary, progress_line, summarize
from sim.mock_viid import MockViid
from sim.mock_webhook import MockWebhook
from sim.ports import free_port, port_free

ROOT = Path(__file__).resolve().parents[1]

WORK = ROOT / "var" / "demo"
BIN = Path(sys.executable).parent
CONSOLE_PORT = int(os.environ.get("DEMO_CONSOLE_PORT", "8080"))
GATEWAY_ID = "62062100002000000001"  # the hub's identity at the platform (a county-level ID)
VILLAGES = [("泉山镇", "和平村", "g-heping"), ("泉山镇", "红光村", "g-hongguang"), ("大坝镇", "新河村", "g-xinhe")]
REAL_AGENTS = 5  # households of the first group that run the real agent; the rest are simulated
PANIC_AT_S = 25.0


def run(*cmd: str, quiet: bool = True) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"demo: {' '.join(cmd[:3])} failed:\n{out.stdout}{out.stderr}")
    return out.stdout


class Procs:
    """Child processes, each in its own process group, stopped in reverse order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        out = open(log, "wb")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        self.items.append((name, proc))
        return proc

    def check(self) -> list[str]:
        return [name for name, p in self.items if p.poll() is not None]

    def stop(self) -> None:
        # Devices first, then the hub, then the broker, each waited for: the hub
        # must flush and disconnect while its broker is still there.
        agents = [p for name, p in self.items if name.startswith(("agent", "xl-sim"))]
        for group in (agents, [p for p in (dict(self.items).get(n) for n in ("hub", "mosquitto")) if p]):
            for proc in group:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            for proc in group:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def provision(state: Path, broker_port: int) -> list[dict[str, str]]:
    rows = []
    for v, (town, village, group) in enumerate(VILLAGES):
        for i in range(10):
            rows.append(
                {
                    "township": town,
                    "village": village,
                    "household": f"HH{v + 1}{i:02d}",
                    "group": group,
                    "lat": f"{38.62 + v * 0.01 + i * 0.0004:.5f}",
                    "lon": f"{103.08 + v * 0.01 + i * 0.0004:.5f}",
                    "name": f"{'张王李赵刘陈杨黄周吴'[i]}家",
                    "leader": "1" if i == 0 else "",
                }
            )
    csv_path = WORK / "county.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    xp = str(BIN / "xl-provision")
    run(xp, "ca", "init", "--state", str(state), "--broker-host", "127.0.0.1", "--broker-port", str(broker_port))
    run(xp, "batch", str(csv_path), "--state", str(state), "--quiet")
    run(
        xp,
        "broker-config",
        "--state",
        str(state),
        "--out",
        str(state / "broker"),
        "--port",
        str(broker_port),
        "--bind",
        "127.0.0.1",
    )
    return rows


def device_of(state: Path, household: str) -> str:
    for bundle in sorted((state / "bundles").iterdir()):
        doc = yaml.safe_load((bundle / "agent.yaml").read_text(encoding="utf-8"))
        if doc["device"]["household"] == household:
            return str(doc["device"]["id"])
    raise SystemExit(f"demo: no bundle for household {household}")


def agent_config(state: Path, device: str, broker_port: int, scene: str, simulate: dict[str, float]) -> Path:
    bundle = state / "bundles" / device
    doc = yaml.safe_load((bundle / "agent.yaml").read_text(encoding="utf-8"))
    home = WORK / "agents" / device
    home.mkdir(parents=True, exist_ok=True)
    tls = bundle / "tls"
    doc["broker"].update(
        url=f"mqtts://127.0.0.1:{broker_port}",
        ca=str(tls / "ca.crt"),
        cert=str(tls / "device.crt"),
        key=str(tls / "device.key"),
    )
    doc["outbox"] = {"path": str(home / "outbox.sqlite3")}
    doc["state_dir"] = str(home)
    doc["health"] = {"interval_s": 10}  # brisk heartbeats so the console moves during a short demo
    doc["camera"] = {"source": scene, "fps": 10}
    doc["gpio"] = {"led": 17, "buzzer": 18, "button": 27, "pin_factory": "mock", "hold_s": 2.0}
    doc["simulate"] = simulate
    path = home / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def hub_config(
    state: Path, broker_port: int, viid_url: str, viid_password: str, hook_url: str, hook_secret: str
) -> Path:
    secrets_dir = WORK / "secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    (secrets_dir / "viid.password").write_text(viid_password)
    (secrets_dir / "webhook.secret").write_text(hook_secret)
    for f in secrets_dir.iterdir():
        f.chmod(0o600)
    clients = state / "ca" / "clients"
    doc = {
        "database": {"url": f"sqlite:///{state / 'hub.sqlite3'}"},
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "client_id": "hub",
            "tls": {
                "ca": str(state / "ca" / "ca.crt"),
                "cert": str(clients / "hub.crt"),
                "key": str(clients / "hub.key"),
            },
        },
        "health": {"check_interval_s": 2.0},
        "metrics": {"port": free_port()},
        "console": {"port": CONSOLE_PORT, "refresh_s": 3},
        "forward": {
            "retry_base_s": 1,
            "retry_cap_s": 10,
            "viid": {
                "base_url": viid_url,
                "gateway_id": GATEWAY_ID,
                "password_file": str(secrets_dir / "viid.password"),
                "keepalive_s": 30,
            },
            "webhook": {"url": hook_url, "secret_file": str(secrets_dir / "webhook.secret")},
        },
    }
    path = WORK / "hub.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def start_broker(state: Path, procs: Procs) -> None:
    conf = (state / "broker" / "mosquitto.conf").read_text()
    if os.geteuid() == 0 and "\nuser " not in "\n" + conf:
        conf = "user root\n" + conf  # the generated keys are 0600 root; don't drop to 'mosquitto'
    path = WORK / "mosquitto.conf"
    path.write_text(conf)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    procs.start("mosquitto", [mosquitto, "-c", str(path)], WORK / "logs" / "mosquitto.log")


def wait_port(port: int, what: str, timeout: float = 60.0) -> None:
    """``sim.ports.wait_port``, ending the demo with the services' logs if it times out."""
    try:
        ports.wait_port(port, timeout)
    except TimeoutError:
        logs = "\n".join(
            f"--- {name}\n{(WORK / 'logs' / name).read_text(errors='replace')[-1500:]}"
            for name in ("hub.log", "mosquitto.log")
            if (WORK / "logs" / name).exists()
        )
        raise SystemExit(
            f"demo: {what} did not start listening on port {port} within {timeout:.0f} s\n{logs}"
        ) from None


def main() -> int:
    seconds = float(os.environ.get("DEMO_SECONDS", "0")) or None
    if not port_free(CONSOLE_PORT):
        raise SystemExit(f"demo: port {CONSOLE_PORT} is busy; set DEMO_CONSOLE_PORT to another port")
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "logs").mkdir(parents=True)
    state, broker_port = WORK / "state", free_port()
    print("demo: provisioning a demo county (2 townships, 3 villages, 30 households, 3 联防组) ...", flush=True)
    rows = provision(state, broker_port)
    procs = Procs()
    viid_password, hook_secret = secrets.token_urlsafe(12), secrets.token_urlsafe(24)
    viid, hook = MockViid(GATEWAY_ID, viid_password), MockWebhook(hook_secret.encode())
    viid_url, hook_url = viid.start(), hook.start()
    started = time.monotonic()
    real: list[str] = []
    db_url = f"sqlite:///{state / 'hub.sqlite3'}"
    summary: Summary | None = None
    try:
        start_broker(state, procs)
        wait_port(broker_port, "mosquitto")
        config = hub_config(state, broker_port, viid_url, viid_password, hook_url, hook_secret)
        run(str(BIN / "xl-hub"), "db", "upgrade", "--config", str(config))
        password = secrets.token_urlsafe(9)
        # "--password=…" in one word: one token in 64 starts with "-", which argparse
        # took for an option (the demo test's rare "console never answered").
        run(
            str(BIN / "xl-hub"),
            "user",
            "add",
            "admin",
            "--role",
            "admin",
            f"--password={password}",
            "--config",
            str(config),
        )
        procs.start("hub", [str(BIN / "xl-hub"), "run", "--config", str(config)], WORK / "logs" / "hub.log")
        wait_port(CONSOLE_PORT, "the hub console")

        group = [r for r in rows if r["group"] == VILLAGES[0][2]]
        real = [device_of(state, r["household"]) for r in group[:REAL_AGENTS]]
        scenes = ["synthetic:walkthrough", "synthetic:busy", "synthetic:dusk", "synthetic:cat", "synthetic:quiet"]
        for i, device in enumerate(real):
            simulate = {"panic_at_s": PANIC_AT_S} if i == 0 else {"ack_after_s": 2.0}
            cfg = agent_config(state, device, broker_port, scenes[i % len(scenes)], simulate)
            procs.start(
                f"agent {device}",
                [str(BIN / "xl-agent"), "run", "--config", str(cfg)],
                WORK / "logs" / f"agent-{device}.log",
            )
        simulated = WORK / "sim-state"
        simulated.mkdir()
        (simulated / "ca").mkdir()
        shutil.copy(state / "ca" / "ca.crt", simulated / "ca" / "ca.crt")
        (simulated / "bundles").mkdir()
        for bundle in (state / "bundles").iterdir():
            if bundle.name not in real:
                (simulated / "bundles" / bundle.name).symlink_to(bundle)
        procs.start(
            "xl-sim",
            [
                str(BIN / "xl-sim"),
                "--state",
                str(simulated),
                "--devices",
                "25",
                "--broker",
                f"127.0.0.1:{broker_port}",
                "--rate",
                "0.05",
                "--heartbeat",
                "10",
                "--panic-per-hour",
                "0",
                "--churn-per-min",
                "0",
                "--procs",
                "1",
                "--duration",
                str(seconds + 5 if seconds else 86400),
            ],
            WORK / "logs" / "xl-sim.log",
        )

        print(
            f"""
  雪亮 Xueliang edge demo is running.
    console   http://127.0.0.1:{CONSOLE_PORT}   user: admin   password: {password}
    broker    mqtts://127.0.0.1:{broker_port} (TLS, client certificates, ACL)
    platform  mock 视图库 {viid_url}  ·  webhook {hook_url}
    devices   {len(real)} real agents (group {VILLAGES[0][2]}) + 25 simulated households
    logs      {WORK / "logs"}
  Household {group[0]["name"]} ({real[0]}) holds its panic button at t={PANIC_AT_S:.0f}s;
  its neighbours' buzzers sound and they acknowledge with their buttons.
  {"Ctrl-C to stop." if seconds is None else f"Running for {seconds:.0f} s."}
""",
            flush=True,
        )
        next_report = 10.0
        while seconds is None or time.monotonic() - started < seconds:
            time.sleep(1)
            dead = procs.check()
            if dead:
                print(f"demo: {', '.join(dead)} stopped unexpectedly (see {WORK / 'logs'})", flush=True)
                break
            if time.monotonic() - started >= next_report:
                next_report += 10
                print(progress_line(db_url, viid, hook, time.monotonic() - started), flush=True)
        time.sleep(2)  # let the last acks and forwards land before counting
    except KeyboardInterrupt:
        print("\ndemo: stopping ...", flush=True)
    finally:
        # Counted while everything still runs, so "devices online" means something.
        if (state / "hub.sqlite3").exists():
            summary = summarize(db_url, viid, hook, real[0] if real else "")
        procs.stop()
        viid.stop()
        hook.stop()
    if summary is None:
        return 1
    print(summary.text())
    return 0 if summary.ok or seconds is None else 1


if __name__ == "__main__":
    sys.exit(main())
