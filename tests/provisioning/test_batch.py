"""The county roll-out CSV on SQLite and PostgreSQL: good rows go in, bad rows
are reported by row number, re-runs are idempotent, --reissue reissues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import select

from hub.db import make_engine
from hub.db.schema import groups, households
from hub.registry import Registry
from provisioning import dynsec
from provisioning.cli import main
from provisioning.pki import fingerprint, load_cert
from provisioning.state import State

HEADER = "township,village,household,group,lat,lon,name,phone,leader,armed_from,armed_to,notes\n"
GOOD = [
    "泉山镇,和平村,HH0001,g0101,38.62,103.08,张家,13900000001,1,,,back door\n",
    "01,和平村,HH0002,g0101,38.63,103.09,李家,,,21:30,05:30,\n",
    "大坝,文一村,HH0003,g0201,,,王家,,,,,\n",
]
BAD = [
    "99,某村,HH0100,g9,38,103,,,,,,\n",  # unknown township code
    "01,和平村,HH0101,g/01,38,103,,,,,,\n",  # group id would break a topic
    "01,和平村,HH0102,g0101,95,103,,,,,,\n",  # latitude out of range
    "01,和平村,,g0101,38,103,,,,,,\n",  # no household
    "01,和平村,HH0001,g0101,38,103,,,,,,\n",  # duplicate household
    "01,和平村,HH0103,g0101,38,103,,,1,,,\n",  # second leader of g0101
    "01,和平村,HH0104,g0101,38,103,,,,25:00,06:00,\n",  # bad armed_from
]


def _init(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    assert main(["ca", "init", "--state", str(state), "--broker-host", "hub.minqin.local"]) == 0
    return state


def _fingerprints(state: Path) -> dict[str, str]:
    return {d.name: fingerprint(load_cert(d / "tls" / "device.crt")) for d in (state / "bundles").iterdir()}


def test_batch_reports_bad_rows_and_keeps_good_ones(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _init(tmp_path)
    csv_path = tmp_path / "county.csv"
    csv_path.write_text(HEADER + "".join(GOOD[:2]) + "".join(BAD) + GOOD[2], encoding="utf-8")
    rc = main(["batch", str(csv_path), "--state", str(state), "--db", db_url, "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "3 new" in out and "7 failed" in out
    expected = {
        4: "unknown township code '99'",
        5: "group 'g/01'",
        6: "lat must be within",
        7: "household is empty",
        8: "already appears in row 2",
        9: "already has its leader in row 2",
        10: "armed_from must be HH:MM",
    }
    for row, reason in expected.items():
        assert any(line.startswith(f"row {row}:") and reason in line for line in err.splitlines()), (row, err)
    assert "ignoring column(s): notes" in err

    engine = make_engine(db_url)
    reg = Registry(engine)
    ids = sorted(reg.device_ids())
    assert len(ids) == 3
    assert [i[6:8] for i in ids] == ["01", "01", "02"]  # township digits of the ID
    with engine.connect() as conn:
        assert conn.execute(select(groups.c.leader_household).where(groups.c.id == "g0101")).scalar() == "HH0001"
        hh2 = conn.execute(select(households).where(households.c.id == "HH0002")).one()
        assert (hh2.armed_from, hh2.armed_to, hh2.lat) == ("21:30", "05:30", 38.63)
    assert sorted(p.name for p in (state / "bundles").iterdir()) == ids
    key = state / "bundles" / ids[0] / "tls" / "device.key"
    assert key.stat().st_mode & 0o777 == 0o600
    cert = load_cert(state / "bundles" / ids[0] / "tls" / "device.crt")
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == ids[0]
    engine.dispose()


def test_rerun_is_idempotent_and_reissue_reissues(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _init(tmp_path)
    csv_path = tmp_path / "county.csv"
    csv_path.write_text(HEADER + "".join(GOOD), encoding="utf-8")
    args = ["batch", str(csv_path), "--state", str(state), "--db", db_url, "--quiet"]
    assert main(args) == 0
    first = _fingerprints(state)
    assert len(first) == 3

    assert main(args) == 0
    assert "0 new, 0 reissued, 3 unchanged, 0 failed" in capsys.readouterr().out
    assert _fingerprints(state) == first
    engine = make_engine(db_url)
    assert Registry(engine).device_ids() == set(first)

    assert main([*args, "--reissue"]) == 0
    assert "0 new, 3 reissued" in capsys.readouterr().out
    again = _fingerprints(state)
    assert set(again) == set(first)  # same device IDs
    assert all(again[d] != first[d] for d in first)  # new certificates
    for device_id, fp in again.items():
        record = Registry(engine).get_device(device_id)
        assert record is not None and record.cert_fingerprint == fp and record.status == "active"
    # The replaced certificates are revoked, so a copied old SD card stops working.
    crl = x509.load_pem_x509_crl((state / "ca" / "crl.pem").read_bytes())
    revoked = {r.serial_number for r in crl}
    old_serials = {s for s, *_ in State(state).revoked()}
    assert len(old_serials) == 3 and old_serials <= revoked
    engine.dispose()


def test_batch_rejects_a_file_without_the_required_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _init(tmp_path)
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("township,village,household\n01,和平村,HH1\n", encoding="utf-8")
    assert main(["batch", str(csv_path), "--state", str(state), "--quiet"]) == 2
    assert "header lacks column(s) group, lat, lon" in capsys.readouterr().err


def test_missing_bundle_is_reported_not_silently_reissued(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _init(tmp_path)
    csv_path = tmp_path / "county.csv"
    csv_path.write_text(HEADER + GOOD[0], encoding="utf-8")
    assert main(["batch", str(csv_path), "--state", str(state), "--quiet"]) == 0
    (bundle,) = (state / "bundles").iterdir()
    (bundle / "tls" / "device.crt").unlink()
    assert main(["batch", str(csv_path), "--state", str(state), "--quiet"]) == 1
    assert "row 2:" in (err := capsys.readouterr().err) and "--reissue" in err


def _broker_model(out: Path) -> dynsec.Model:
    return dynsec.from_document(json.loads((out / "dynamic-security.json").read_text()))


def test_batch_updates_the_broker_model_of_an_existing_broker_folder(tmp_path: Path) -> None:
    state = _init(tmp_path)
    out = tmp_path / "broker"
    assert main(["broker-config", "--state", str(state), "--out", str(out)]) == 0
    assert not any(name.isdigit() for name in _broker_model(out).clients)
    csv_path = tmp_path / "county.csv"
    csv_path.write_text(HEADER + GOOD[0], encoding="utf-8")
    assert main(["batch", str(csv_path), "--state", str(state), "--quiet"]) == 0
    (device_id,) = (p.name for p in (state / "bundles").iterdir())
    model = _broker_model(out)
    assert model.clients[device_id] == {dynsec.device_role(device_id)}
    assert model.roles[dynsec.device_role(device_id)] == dynsec.device_acls(device_id, "g0101")
    # The group moves: the broker follows on a re-run even though no certificate changes.
    csv_path.write_text(HEADER + GOOD[0].replace("g0101", "g0109"), encoding="utf-8")
    assert main(["batch", str(csv_path), "--state", str(state), "--quiet"]) == 0
    acls = _broker_model(out).roles[dynsec.device_role(device_id)]
    assert (dynsec.SUB_LITERAL, "xl/v1/grp/g0109/alert") in acls
    assert (dynsec.SUB_LITERAL, "xl/v1/grp/g0101/alert") not in acls


def test_bundles_of_a_replaced_ca_are_not_taken_as_done(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _init(tmp_path)
    csv_path = tmp_path / "county.csv"
    csv_path.write_text(HEADER + GOOD[0], encoding="utf-8")
    args = ["batch", str(csv_path), "--state", str(state), "--quiet"]
    assert main(args) == 0
    assert main(["ca", "init", "--state", str(state), "--broker-host", "hub.minqin.local", "--force"]) == 0
    capsys.readouterr()
    assert main(args) == 1
    assert "not from this CA" in capsys.readouterr().err
    assert main([*args, "--reissue"]) == 0
    (bundle,) = (state / "bundles").iterdir()
    load_cert(bundle / "tls" / "device.crt").verify_directly_issued_by(load_cert(state / "ca" / "ca.crt"))
