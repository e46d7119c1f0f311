from __future__ import annotations

from hub.db import make_engine, schema_problem, upgrade
from hub.registry import Registry


def test_upgrade_is_idempotent_and_registry_upserts(db_url: str) -> None:
    engine = make_engine(db_url)
    assert upgrade(engine)
    assert upgrade(engine) == []
    assert schema_problem(engine) is None
    reg = Registry(engine)
    for _ in range(2):  # a re-run must neither duplicate nor fail
        with engine.begin() as conn:
            reg.ensure_township(conn, "01", "泉山镇")
            vid = reg.ensure_village(conn, "01", "和平村")
            reg.ensure_group(conn, "g0101", vid, "和平一组")
            reg.ensure_household(conn, "HH0001", village_id=vid, group_id="g0101", name="张家")
            reg.ensure_household(conn, "HH0002", village_id=vid, group_id="g0101", name="李家")
            reg.add_device(conn, "62062101011198000001", "HH0001", cert_fingerprint="ab" * 32)
            reg.add_device(conn, "62062101011198000002", "HH0002")
            reg.set_group_leader(conn, "g0101", "HH0001")
    assert reg.device_ids() == {"62062101011198000001", "62062101011198000002"}
    assert reg.group_members("g0101") == [
        ("62062101011198000001", "HH0001"),
        ("62062101011198000002", "HH0002"),
    ]
    assert reg.revoke_device("62062101011198000002", "stolen")
    assert not reg.revoke_device("62062101011198000002")
    assert reg.active_device_ids() == {"62062101011198000001"}
    rec = reg.get_device("62062101011198000002")
    assert rec is not None and rec.status == "revoked" and rec.group_id == "g0101"
    assert reg.acl_rows() == [("62062101011198000001", "g0101")]
    engine.dispose()
