"""Reading and writing contacts: one upsert for the CSV import and the console alike.

Never log a phone number: log lines name a contact by its id. ``mask`` is the
only form in which a phone leaves this module for display to viewers.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Row, and_, or_, select, update

from hub.contacts.tables import ROLES, contacts
from hub.db.dialect import upsert_insert
from hub.db.schema import townships, villages
from protocol.ids import is_device_id

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
# E.164 digits: what a gateway dials. Spaces and dashes are typing, not data.
_PHONE_RE = re.compile(r"\+?[0-9]{5,15}")
# Which scope each role needs: a 治安户长 or grid worker serves a village, a duty
# officer a township, the county desk everyone.
SCOPE = {"security_head": "village", "grid_worker": "village", "township_duty": "township", "county_desk": None}


class ContactError(ValueError):
    """A value a contact cannot have; ``column`` names the field."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"{column}: {message}")
        self.column = column


@dataclass(frozen=True, slots=True)
class ContactIn:
    id: str
    name: str
    role: str
    phone: str | None = None
    township: str | None = None  # code (2 digits) or name
    village: str | None = None  # name (in the township) or numeric id
    device_id: str | None = None
    active: bool = True


def normalise_phone(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    phone = re.sub(r"[\s-]", "", raw)
    if not _PHONE_RE.fullmatch(phone):
        # The message must not echo the value: it is someone's number, even when mistyped.
        raise ContactError("phone", "5 to 15 digits, optionally after a +")
    return phone


def echo(text: str) -> str:
    """``text`` for an error message, its digit runs of 5 or more put out: a value refused
    for the wrong column is often the phone that belonged in the next one, and the message
    travels in the console's redirect URL (the access log) and the import's output."""
    return repr(re.sub(r"[0-9]{5,}", "#", text))


def mask(phone: str | None) -> str:
    """138****5678: enough to tell two contacts apart, not enough to call them."""
    if not phone:
        return ""
    if len(phone) <= 6:
        return "*" * (len(phone) - 2) + phone[-2:]
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def _township_code(conn: Connection, text: str) -> str:
    row = conn.execute(select(townships.c.code).where(or_(townships.c.code == text, townships.c.name == text))).first()
    if row is None:
        raise ContactError("township", f"no township {echo(text)} in the registry")
    return str(row.code)


def _village(conn: Connection, township: str | None, text: str) -> tuple[int, str]:
    q = select(villages.c.id, villages.c.township_code)
    if text.isdigit():
        q = q.where(villages.c.id == int(text))
    else:
        q = q.where(villages.c.name == text)
        if township:
            q = q.where(villages.c.township_code == _township_code(conn, township))
    rows = conn.execute(q).all()
    if not rows:
        raise ContactError("village", f"no village {echo(text)} in the registry")
    if len(rows) > 1:
        raise ContactError("village", f"{echo(text)} is in several townships: give the township")
    return int(rows[0].id), str(rows[0].township_code)


def resolve(conn: Connection, c: ContactIn) -> dict[str, object]:
    """The row for ``c``, checked against the registry; ContactError names the column."""
    if not ID_RE.fullmatch(c.id or ""):
        raise ContactError("id", "1-32 letters, digits, _ . -")
    name = (c.name or "").strip()
    if not name or len(name) > 64:
        raise ContactError("name", "1-64 characters")
    if c.role not in ROLES:
        raise ContactError("role", f"one of {', '.join(ROLES)}")
    phone = normalise_phone(c.phone)
    device = (c.device_id or "").strip() or None
    if device is not None and not is_device_id(device):
        raise ContactError("device_id", "a 20-digit device ID")
    if device is not None and c.role != "security_head":
        raise ContactError("device_id", "only a security_head has a device of their own")
    if phone is None and device is None:
        raise ContactError("phone", "a phone or a device_id is needed to reach the contact")
    township = (c.township or "").strip() or None
    village = (c.village or "").strip() or None
    code: str | None = None
    vid: int | None = None
    if village is not None:
        vid, code = _village(conn, township, village)
    elif township is not None:
        code = _township_code(conn, township)
    need = SCOPE[c.role]
    if need == "village" and vid is None:
        raise ContactError("village", f"a {c.role} serves a village")
    if need == "township" and code is None:
        raise ContactError("township", f"a {c.role} serves a township")
    return {
        "id": c.id,
        "name": name,
        "role": c.role,
        "phone": phone,
        "township_code": code,
        "village_id": vid,
        "device_id": device,
        "active": c.active,
    }


def upsert(conn: Connection, c: ContactIn, by: str | None, now_ms: int | None = None) -> bool:
    """Insert or replace contact ``c.id``; True when anything changed (a re-import of the same file changes nothing)."""
    row = resolve(conn, c)
    old = conn.execute(select(contacts).where(contacts.c.id == c.id)).first()
    if old is not None and all(getattr(old, k) == v for k, v in row.items()):
        return False
    values = {**row, "updated_ms": now_ms or int(time.time() * 1000), "updated_by": by}
    ins = upsert_insert(conn, contacts)
    conn.execute(
        ins.on_conflict_do_update(index_elements=["id"], set_={k: v for k, v in values.items() if k != "id"}).values(
            **values
        )
    )
    return True


def set_active(conn: Connection, contact_id: str, active: bool, by: str | None) -> bool:
    done = conn.execute(
        update(contacts)
        .where(contacts.c.id == contact_id, contacts.c.active != active)
        .values(active=active, updated_ms=int(time.time() * 1000), updated_by=by)
    ).rowcount
    return bool(done)


def list_contacts(conn: Connection) -> list[Row[object]]:
    q = (
        select(contacts, villages.c.name.label("village_name"), townships.c.name.label("township_name"))
        .select_from(
            contacts.outerjoin(villages, villages.c.id == contacts.c.village_id).outerjoin(
                townships, townships.c.code == contacts.c.township_code
            )
        )
        .order_by(contacts.c.role, contacts.c.township_code, contacts.c.village_id, contacts.c.id)
    )
    return list(conn.execute(q).all())


def for_step(
    conn: Connection, roles: tuple[str, ...], village_id: int | None, township_code: str | None
) -> list[Row[object]]:
    """The active contacts of ``roles`` whose scope covers the alert's village and township."""
    scope = []
    for role in roles:
        need = SCOPE[role]
        if need == "village":
            if village_id is not None:
                scope.append(and_(contacts.c.role == role, contacts.c.village_id == village_id))
        elif need == "township":
            if township_code is not None:
                scope.append(and_(contacts.c.role == role, contacts.c.township_code == township_code))
        else:
            scope.append(contacts.c.role == role)
    if not scope:
        return []
    q = select(contacts).where(contacts.c.active.is_(True), or_(*scope)).order_by(contacts.c.role, contacts.c.id)
    return list(conn.execute(q).all())


def by_id(conn: Connection, contact_id: str) -> Row[object] | None:
    return conn.execute(select(contacts).where(contacts.c.id == contact_id)).first()


def by_device(conn: Connection, device_id: str) -> list[Row[object]]:
    """The active contacts reached on ``device_id``: one person may be several (one per village)."""
    q = select(contacts).where(contacts.c.device_id == device_id, contacts.c.active.is_(True))
    return list(conn.execute(q.order_by(contacts.c.id)).all())
