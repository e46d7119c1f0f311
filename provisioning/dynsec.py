"""What the broker lets each identity do, as Mosquitto dynamic-security roles.

Why the dynamic-security plugin rather than Mosquitto's ACL file: the ACL
file never checks a SUBSCRIBE (Mosquitto 2.0 grants every subscription and
filters at delivery). With shared subscriptions that is a hole: a device
that joins the hub's share group takes its turn in the round robin, and each
message whose turn it was is dropped at delivery while the publisher gets a
successful PUBACK. The plugin checks the subscription filter itself
(``subscribeLiteral``/``subscribePattern``) and answers a refused one with
reason code 0x87 in the SUBACK, so nothing is ever queued for it. It ships
with Mosquitto (Debian's package included), and its control topic lets
``xl-provision`` add and delete identities on a running broker, which kicks
a deleted client's live connection at once.

The model here is pure data: :func:`desired` derives it from the registry,
:func:`config_document` renders it as the plugin's config file for a broker
that is not running, and :func:`commands` turns the difference between what
a running broker has and what it should have into control commands.

Every grant is an explicit allow; the defaults deny publish, receive and
subscribe. Devices get literals only: a wildcard filter from a device is
never what our agent sends, so it is refused rather than interpreted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocol.topics import DOWNLINK, PREFIX, UPLINK, Channel, alert_topic, device_topic

SEND = "publishClientSend"
RECEIVE = "publishClientReceive"
SUB_LITERAL = "subscribeLiteral"
SUB_PATTERN = "subscribePattern"
ACL_TYPES = (SEND, RECEIVE, SUB_LITERAL, SUB_PATTERN)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"

ROLE_HUB = "xl-hub"
ROLE_MONITOR = "xl-monitor"
ROLE_ADMIN = "xl-admin"
DEVICE_ROLE_PREFIX = "xl-dev-"

DEFAULT_ACCESS = {SEND: False, RECEIVE: False, "subscribe": False, "unsubscribe": True}

Acl = tuple[str, str]  # (acltype, topic)


@dataclass
class Model:
    roles: dict[str, frozenset[Acl]] = field(default_factory=dict)
    clients: dict[str, frozenset[str]] = field(default_factory=dict)  # username -> role names


def device_role(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + device_id


def device_acls(device_id: str, group: str) -> frozenset[Acl]:
    reads = [device_topic(device_id, ch) for ch in sorted(DOWNLINK)] + [alert_topic(group)]
    acls = [(SEND, device_topic(device_id, ch)) for ch in sorted(UPLINK)]
    acls += [(SUB_LITERAL, t) for t in reads] + [(RECEIVE, t) for t in reads]
    return frozenset(acls)


def _uplink_reads(shared: bool) -> list[Acl]:
    acls: list[Acl] = []
    for ch in sorted(UPLINK):
        plain = f"{PREFIX}/+/{ch.value}"
        acls += [(SUB_PATTERN, plain), (RECEIVE, plain)]
        if shared:
            # Any share-group name: the hub's config chooses it, and only hub roles have this grant.
            acls.append((SUB_PATTERN, f"$share/+/{plain}"))
    return acls


def hub_acls() -> frozenset[Acl]:
    writes = [(SEND, f"{PREFIX}/+/{ch.value}") for ch in sorted(DOWNLINK)]
    writes.append((SEND, f"{PREFIX}/grp/+/{Channel.ALERT.value}"))
    return frozenset(_uplink_reads(shared=True) + writes)


def monitor_acls() -> frozenset[Acl]:
    return frozenset(_uplink_reads(shared=False))


def admin_acls() -> frozenset[Acl]:
    return frozenset({(SEND, CONTROL_TOPIC), (SUB_LITERAL, RESPONSE_TOPIC), (RECEIVE, RESPONSE_TOPIC)})


def desired(clients: dict[str, str], devices: Iterable[tuple[str, str]]) -> Model:
    """The model for hub-side ``clients`` (cn -> 'hub'/'monitor'/'admin') and
    active ``devices`` ((device id, group) rows)."""
    model = Model(roles={ROLE_HUB: hub_acls(), ROLE_MONITOR: monitor_acls(), ROLE_ADMIN: admin_acls()})
    role_of = {"hub": ROLE_HUB, "monitor": ROLE_MONITOR, "admin": ROLE_ADMIN}
    for cn, kind in clients.items():
        if kind not in role_of:
            raise ValueError(f"client {cn!r} has unknown role {kind!r}")
        model.clients[cn] = frozenset({role_of[kind]})
    for device_id, group in devices:
        role = device_role(device_id)
        model.roles[role] = device_acls(device_id, group)
        model.clients[device_id] = frozenset({role})
    return model


def _acl_json(acl: Acl) -> dict[str, Any]:
    return {"acltype": acl[0], "topic": acl[1], "priority": 0, "allow": True}


def config_document(model: Model) -> dict[str, Any]:
    """The plugin's config file (``plugin_opt_config_file``) for this model.
    Clients carry no password: the broker takes the username from the
    certificate and never asks the plugin to check a password."""
    return {
        "defaultACLAccess": DEFAULT_ACCESS,
        "clients": [
            {"username": name, "roles": [{"rolename": r} for r in sorted(roles)]}
            for name, roles in sorted(model.clients.items())
        ],
        "groups": [],
        "roles": [
            {"rolename": name, "acls": [_acl_json(a) for a in sorted(acls)]}
            for name, acls in sorted(model.roles.items())
        ],
    }


def from_listing(clients: list[dict[str, Any]], roles: list[dict[str, Any]]) -> Model:
    """A running broker's model, from verbose ``listClients`` and ``listRoles``."""
    model = Model()
    for role in roles:
        model.roles[role["rolename"]] = frozenset(
            (a["acltype"], a["topic"]) for a in role.get("acls", []) if a.get("allow", False)
        )
    for client in clients:
        model.clients[client["username"]] = frozenset(r["rolename"] for r in client.get("roles", []))
    return model


def from_document(doc: dict[str, Any]) -> Model:
    """The model in a plugin config file (what :func:`config_document` wrote, or the plugin saved)."""
    return from_listing(doc.get("clients", []), doc.get("roles", []))


def commands(current: Model, wanted: Model) -> list[dict[str, Any]]:
    """Control commands that turn ``current`` into ``wanted``.

    Order matters: a client is deleted (which kicks its connection) before
    its role goes, and a role exists before a client is given it. A role
    whose grants changed (a household moved group) is edited in place; the
    plugin then kicks the clients holding it, so the device reconnects and
    subscribes to its new group's alerts.

    The registry is the whole truth: a client or role on the broker that it
    does not name (a revoked device, one added by hand) is deleted."""
    out: list[dict[str, Any]] = []
    for name in sorted(set(current.clients) - set(wanted.clients)):
        out.append({"command": "deleteClient", "username": name})
    for name in sorted(set(wanted.roles) - set(current.roles)):
        acls = [_acl_json(a) for a in sorted(wanted.roles[name])]
        out.append({"command": "createRole", "rolename": name, "acls": acls})
    for name in sorted(set(wanted.roles) & set(current.roles)):
        have, want = current.roles[name], wanted.roles[name]
        for acl in sorted(want - have):
            out.append({"command": "addRoleACL", "rolename": name, **_acl_json(acl)})
        for acltype, topic in sorted(have - want):
            out.append({"command": "removeRoleACL", "rolename": name, "acltype": acltype, "topic": topic})
    for name in sorted(set(wanted.clients) - set(current.clients)):
        out.append(
            {
                "command": "createClient",
                "username": name,
                "roles": [{"rolename": r} for r in sorted(wanted.clients[name])],
            }
        )
    for name in sorted(set(wanted.clients) & set(current.clients)):
        for role in sorted(wanted.clients[name] - current.clients[name]):
            out.append({"command": "addClientRole", "username": name, "rolename": role})
        for role in sorted(current.clients[name] - wanted.clients[name]):
            out.append({"command": "removeClientRole", "username": name, "rolename": role})
    for name in sorted(set(current.roles) - set(wanted.roles)):
        out.append({"command": "deleteRole", "rolename": name})
    return out
