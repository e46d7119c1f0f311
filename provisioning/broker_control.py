"""Talk to a running broker: the dynamic-security control topic, and ending a
revoked device's session.

Both connect over the county's TLS listener with a certificate, like every
other client: the admin identity (``xl-admin``, issued by ``ca init`` or the
first ``broker-config``) for control commands, and a short-lived certificate
in the revoked device's own name to end its session.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from provisioning import dynsec
from provisioning.pki import CA, cert_pem, key_pem, new_key, serial_hex, write_private, write_public

# Bytes of commands per control message: well under the broker's
# message_size_limit (protocol.limits.MAX_ANY_PAYLOAD plus headroom), over
# which Mosquitto drops a message without a word.
CHUNK_BYTES = 12_000
TIMEOUT_S = 30.0


class ControlError(RuntimeError):
    pass


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    ca: Path


def _client(endpoint: Endpoint, cert: Path, key: Path, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(endpoint.ca))
    ctx.load_cert_chain(str(cert), str(key))
    client.tls_set_context(ctx)
    return client


def _connect(client: mqtt.Client, endpoint: Endpoint, clean_start: bool, expiry: int) -> None:
    """Connect and start the loop; ControlError unless the broker accepts us."""
    done = threading.Event()
    outcome: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        outcome.append("" if not reason.is_failure else str(reason))
        done.set()

    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry
    try:
        client.connect(endpoint.host, endpoint.port, keepalive=30, clean_start=clean_start, properties=props)
    except (OSError, ssl.SSLError) as exc:
        raise ControlError(f"cannot reach the broker at {endpoint.host}:{endpoint.port}: {exc}") from None
    client.loop_start()
    if not done.wait(TIMEOUT_S) or outcome[0]:
        client.loop_stop()
        why = outcome[0] if outcome else "no CONNACK"
        raise ControlError(f"broker at {endpoint.host}:{endpoint.port} refused {client._client_id!r}: {why}")


class Control:
    """A session on ``$CONTROL/dynamic-security/v1``."""

    def __init__(self, endpoint: Endpoint, cert: Path, key: Path, username: str) -> None:
        self._client = _client(endpoint, cert, key, username)
        self._responses: list[dict[str, Any]] = []
        self._arrived = threading.Condition()
        self._client.on_message = self._on_message
        _connect(self._client, endpoint, clean_start=True, expiry=0)
        subscribed = threading.Event()
        granted: list[int] = []

        def on_subscribe(_c: mqtt.Client, _u: object, _m: int, reasons: list[Any], _p: object) -> None:
            granted.extend(int(r.value) for r in reasons)
            subscribed.set()

        self._client.on_subscribe = on_subscribe
        self._client.subscribe(dynsec.RESPONSE_TOPIC, qos=1)
        if not subscribed.wait(TIMEOUT_S) or granted[0] >= 0x80:
            self.close()
            raise ControlError(
                f"{username!r} may not read {dynsec.RESPONSE_TOPIC} (SUBACK {granted}); "
                "is the broker running the dynamic-security config from `xl-provision broker-config`?"
            )

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(msg.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        with self._arrived:
            self._responses.extend(responses)
            self._arrived.notify_all()

    def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``commands`` in chunks and return their responses in order;
        ControlError names the first command the plugin refused."""
        out: list[dict[str, Any]] = []
        for chunk in _chunks(commands):
            tag = uuid.uuid4().hex
            tagged = [{**cmd, "correlationData": f"{tag}-{i}"} for i, cmd in enumerate(chunk)]
            self._client.publish(dynsec.CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
            out.extend(self._collect(tag, len(chunk)))
        for cmd, resp in zip(commands, out, strict=True):
            if resp.get("error"):
                raise ControlError(f"broker refused {cmd['command']} {_subject(cmd)}: {resp['error']}")
        return out

    def _collect(self, tag: str, n: int) -> list[dict[str, Any]]:
        def mine() -> list[dict[str, Any]]:
            return [r for r in self._responses if str(r.get("correlationData", "")).startswith(tag + "-")]

        with self._arrived:
            if not self._arrived.wait_for(lambda: len(mine()) >= n, TIMEOUT_S):
                raise ControlError(f"broker answered {len(mine())} of {n} control commands within {TIMEOUT_S:g}s")
            got = mine()
            self._responses = [r for r in self._responses if r not in got]
        return sorted(got, key=lambda r: int(str(r["correlationData"]).rsplit("-", 1)[1]))

    def model(self) -> dynsec.Model:
        clients, roles = self.run(
            [
                {"command": "listClients", "verbose": True, "count": -1},
                {"command": "listRoles", "verbose": True, "count": -1},
            ]
        )
        return dynsec.from_listing(clients["data"]["clients"], roles["data"]["roles"])

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _chunks(commands: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for cmd in commands:
        n = len(json.dumps(cmd)) + 60  # and its correlation data
        if chunk and size + n > CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(cmd)
        size += n
    if chunk:
        yield chunk


def _subject(cmd: dict[str, Any]) -> str:
    return str(cmd.get("username") or cmd.get("rolename") or "")


@contextmanager
def control(endpoint: Endpoint, cert: Path, key: Path, username: str) -> Iterator[Control]:
    session = Control(endpoint, cert, key, username)
    try:
        yield session
    finally:
        session.close()


def end_session(endpoint: Endpoint, ca: CA, cn: str, minutes: int = 10) -> str:
    """End the persistent session of client ``cn``, and with it its
    subscriptions and the messages queued for it; returns the serial (hex)
    of the throwaway certificate used, which the caller must revoke.

    Mosquitto has no command that deletes a session. Only a client with the
    same client id can end one, by connecting with clean start; since the
    broker forces client id = certificate name, that takes a certificate in
    ``cn``'s name. It is valid for minutes, its key never leaves a private
    temporary folder, and its serial goes into the CRL right after. The
    connection also takes over (closes) any live connection of ``cn``."""
    key = new_key()
    cert = ca.issue(key.public_key(), cn, unit="Session reaper", days=minutes / 1440)
    with tempfile.TemporaryDirectory(prefix="xl-reap-") as tmp:
        cert_path, key_path = Path(tmp) / "c.crt", Path(tmp) / "c.key"
        write_public(cert_path, cert_pem(cert))
        write_private(key_path, key_pem(key))
        client = _client(endpoint, cert_path, key_path, cn)
        _connect(client, endpoint, clean_start=True, expiry=0)
    client.disconnect()
    client.loop_stop()
    return serial_hex(cert)
