"""``xl-provision broker-config``: Mosquitto 2.0 TLS + dynamic-security configuration.

Output folder::

    mosquitto.conf  dynamic-security.json  broker.json  ca.crt  server.crt  server.key (0600)  crl.pem
    data/  mosquitto.pid (at run time)

Who may publish, receive and subscribe to what is the dynamic-security
plugin's (``provisioning/dynsec.py`` says why not the ACL file: that one never
checks a SUBSCRIBE). Its config file is the plugin's own once the broker
runs: the plugin rewrites it after every change. So :func:`sync`, which
every registry change calls, writes the file only while the broker is
stopped; while it runs, it sends the difference over the plugin's control
topic as ``xl-admin``, and the plugin applies it at once (a deleted client's
live connection is closed).

Reload: on SIGHUP Mosquitto 2.0.11 re-reads the listener's TLS material
including ``crlfile`` (tests/provisioning: after revoke + SIGHUP the revoked
certificate fails the handshake). ``--restart-broker`` (stop and start
again) is for brokers that do not reload TLS on SIGHUP.

Listener options: ``use_identity_as_username`` and ``use_username_as_clientid``
belong after the ``listener`` line; above it Mosquitto 2.0 silently opens an
extra default listener on 1883.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import Engine

from hub.registry import Registry
from protocol.limits import MAX_ANY_PAYLOAD
from provisioning import dynsec
from provisioning.broker_control import Endpoint, control, end_session
from provisioning.pki import write_private, write_public
from provisioning.state import ROLE_ADMIN, State, ensure_admin
from provisioning.templates import render

HEADROOM = 4096  # topic, MQTT 5 properties and fixed header around the largest payload
# Per-client queue while a client's persistent session is offline: what
# devices send while the *hub* is down or restarting. It is not the only copy
# (a device keeps each message until the hub's receipt, protocol/receipts.py),
# so a message dropped here is only re-sent; but each drop costs the device a
# re-send on a metered link. A device has at most 50 messages out without a
# receipt, so the county needs about 166,000 (older agents, which send no
# outbox number, still rely on this queue alone); 2,000,000 is headroom that
# costs nothing until used, and max_queued_bytes caps the memory.
MAX_QUEUED = 2_000_000
MAX_QUEUED_BYTES = 1024 * 1024 * 1024
MAX_INFLIGHT = 20
# The longest any session outlives its connection, whatever the client asks
# for (Mosquitto's persistent_client_expiration caps MQTT 5 session expiry
# too). A device's session holds only what the hub sends it: commands and
# group alerts. A week keeps them across the outages a farmhouse sees (4G
# down for days, a Pi unplugged over a holiday; the device's own events wait
# in its outbox whatever happens here), and it is the longest a session of an
# identity that was removed without `revoke` can linger.
SESSION_EXPIRY_MAX = "7d"
DYNSEC_FILE = "dynamic-security.json"
LISTENER_FILE = "broker.json"
PLUGIN_GLOBS = (
    "/usr/lib/*/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto/mosquitto_dynamic_security.so",
)


class BrokerError(RuntimeError):
    pass


def find_plugin() -> Path:
    for pattern in PLUGIN_GLOBS:
        for hit in sorted(glob.glob(pattern)):
            return Path(hit)
    raise BrokerError(
        "Mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) is not installed; "
        "it comes with Debian's mosquitto package (2.0 or later), or pass --dynsec-plugin PATH"
    )


def model(state: State, registry: Registry) -> dynsec.Model:
    try:
        return dynsec.desired(state.load_settings().clients, registry.acl_rows())
    except ValueError as exc:
        raise BrokerError(str(exc)) from None


def _owner_ids(owner: str | None) -> tuple[int, int] | None:
    if owner is None or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _give(path: Path, ids: tuple[int, int] | None) -> None:
    if ids is not None:
        os.chown(path, *ids)


def write_dynsec(out: Path, wanted: dynsec.Model, owner: str | None) -> Path:
    """The plugin's config file, for a broker that is not running."""
    path = out / DYNSEC_FILE
    # 0600: the plugin warns about (and later versions refuse) a file others can read.
    write_private(path, (json.dumps(dynsec.config_document(wanted), indent=1) + "\n").encode())
    _give(path, _owner_ids(owner))
    return path


def endpoint(state: State, out: Path) -> Endpoint:
    """Where ``xl-provision`` reaches the broker of ``out``: the broker host
    runs the tool (it also signals the broker's pid), so loopback unless the
    listener is bound elsewhere."""
    try:
        listener = json.loads((out / LISTENER_FILE).read_text())
    except FileNotFoundError:
        raise BrokerError(f"{out} has no {LISTENER_FILE}; run `xl-provision broker-config --out {out}` again") from None
    bind = listener.get("bind")
    host = bind if bind and bind not in ("0.0.0.0", "::") else "127.0.0.1"
    return Endpoint(host, int(listener["port"]), state.ca_cert)


def apply(state: State, out: Path, wanted: dynsec.Model) -> int:
    """Bring a running broker's dynamic-security model to ``wanted``; returns
    the number of control commands it took."""
    admin = next(cn for cn, role in state.load_settings().clients.items() if role == ROLE_ADMIN)
    with control(endpoint(state, out), state.client_cert(admin), state.client_key(admin), admin) as ctl:
        commands = dynsec.commands(ctl.model(), wanted)
        ctl.run(commands)
    return len(commands)


def generate(
    state: State,
    engine: Engine,
    out: Path,
    *,
    port: int | None = None,
    bind: str | None = None,
    owner: str | None = "mosquitto",
    plugin: Path | None = None,
) -> Path:
    """Write the whole broker folder; returns the path of mosquitto.conf."""
    ensure_admin(state)
    settings = state.load_settings()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    ids = _owner_ids(owner)
    shutil.copyfile(state.ca_cert, out / "ca.crt")
    shutil.copyfile(state.server_cert, out / "server.crt")
    write_private(out / "server.key", state.server_key.read_bytes())
    port = port if port is not None else settings.broker_port
    write_public(out / LISTENER_FILE, (json.dumps({"port": port, "bind": bind}) + "\n").encode())
    # A running broker of this folder keeps its state and is brought in step instead.
    sync(state, engine, out, owner)
    for path in (out / "server.key", out / "crl.pem", out / "data", out):
        _give(path, ids)
    message_limit = MAX_ANY_PAYLOAD + HEADROOM
    conf = render(
        "mosquitto.conf",
        {
            "dynsec_plugin": plugin or find_plugin(),
            "dynsec_file": out / DYNSEC_FILE,
            "data_dir": out / "data",
            "pid_file": out / "mosquitto.pid",
            "max_payload": MAX_ANY_PAYLOAD,
            "message_size_limit": message_limit,
            "max_packet_size": message_limit + HEADROOM,
            "max_queued_messages": MAX_QUEUED,
            "max_queued_bytes": MAX_QUEUED_BYTES,
            "max_inflight_messages": MAX_INFLIGHT,
            "session_expiry_max": SESSION_EXPIRY_MAX,
            "port": port,
            "bind": f" {bind}" if bind else "",
            "cafile": out / "ca.crt",
            "certfile": out / "server.crt",
            "keyfile": out / "server.key",
            "crlfile": out / "crl.pem",
        },
    )
    path = out / "mosquitto.conf"
    write_public(path, conf.encode())
    settings = state.load_settings()
    settings.broker_dir = str(out)
    state.save_settings(settings)
    return path


def _publish_crl(state: State, out: Path, owner: str | None) -> None:
    state.write_crl()
    write_public(out / "crl.pem", state.crl_path.read_bytes())
    _give(out / "crl.pem", _owner_ids(owner))


def sync(state: State, engine: Engine, out: Path, owner: str | None = "mosquitto", pid: int | None = None) -> str:
    """After a registry change: bring the broker in step and say what was done.

    With the broker stopped: the CRL and the plugin's file. With it running,
    in this order, so a revoked device has no way back at any point:
    1. the new CRL, and SIGHUP: a revoked certificate's next handshake fails;
    2. the model over the control topic: a deleted client is kicked off;
    3. each revoked identity's session is ended (:func:`end_session`), and
       the throwaway certificate that did it goes into the CRL too."""
    _publish_crl(state, out, owner)
    wanted = model(state, Registry(engine))
    running = broker_pid(out, pid)
    if running is None:
        write_dynsec(out, wanted, owner)
        pending = state.load_settings().pending_session_ends
        later = f"; {len(pending)} revoked session(s) end at the next sync with it running" if pending else ""
        return f"CRL and {DYNSEC_FILE} rewritten in {out}; no running broker{later}"
    os.kill(running, signal.SIGHUP)
    n = apply(state, out, wanted)
    ended = end_sessions(state, out)
    if ended:
        _publish_crl(state, out, owner)
        os.kill(running, signal.SIGHUP)
    done = f"CRL reloaded by broker pid {running}; {n} dynamic-security change{'s' * (n != 1)}"
    return done + (f"; session ended: {', '.join(ended)}" if ended else "")


def end_sessions(state: State, out: Path) -> list[str]:
    """End the broker sessions of every identity revoked since the last sync."""
    settings = state.load_settings()
    ended = []
    for cn in list(settings.pending_session_ends):
        serial = end_session(endpoint(state, out), state.load_ca(), cn)
        state.add_revoked([(serial, cn, "session reaper")])
        ended.append(cn)
    settings = state.load_settings()
    settings.pending_session_ends = [cn for cn in settings.pending_session_ends if cn not in ended]
    state.save_settings(settings)
    return ended


# -- talking to a running broker ---------------------------------------------


def broker_pid(out: Path, pid: int | None = None) -> int | None:
    """The pid of the running broker of ``out`` (or ``pid``), None if none runs."""
    if pid is None:
        try:
            pid = int((out / "mosquitto.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    # Never signal a pid that was recycled for some other program.
    if b"mosquitto" not in cmdline:
        raise BrokerError(f"pid {pid} is not a mosquitto process")
    return pid


def reload(out: Path, pid: int | None = None) -> int | None:
    """SIGHUP the broker so it re-reads the CRL; returns the pid signalled."""
    found = broker_pid(out, pid)
    if found is not None:
        os.kill(found, signal.SIGHUP)
    return found


def _alive(pid: int) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped by its parent) counts as stopped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def restart(out: Path, pid: int | None = None, timeout: float = 10.0) -> int:
    """Stop the running broker and start it again with the same command line
    (so a broker started with its own config, user or -d keeps them). Returns the new pid."""
    found = broker_pid(out, pid)
    if found is None:
        raise BrokerError(f"no running broker to restart (no live pid in {out / 'mosquitto.pid'}; try --broker-pid)")
    argv = [a.decode() for a in Path(f"/proc/{found}/cmdline").read_bytes().split(b"\0") if a]
    cwd = os.readlink(f"/proc/{found}/cwd")
    os.kill(found, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(found) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(found):
        raise BrokerError(f"broker pid {found} did not stop within {timeout:g}s")
    pid_file = out / "mosquitto.pid"
    pid_file.unlink(missing_ok=True)
    log = out / "restart.log"
    with log.open("ab") as fh:
        # A session of its own: the broker must outlive this command.
        proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = broker_pid(out)
        if new is not None and _alive(new):
            return new
        code = proc.poll()
        if code not in (None, 0):  # 0: the -d parent exiting after it forked the daemon
            tail = log.read_text(errors="replace")[-400:]
            raise BrokerError(f"broker failed to start again (exit {code}): {tail}")
        time.sleep(0.05)
    raise BrokerError(f"broker did not write {pid_file} within {timeout:g}s; see {log}")
