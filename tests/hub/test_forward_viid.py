from __future__ import annotations

import base64
import copy
import dataclasses
from collections.abc import Iterator

import pytest

from hub.core.items import item_from_json, item_to_json
from hub.forward import ManualClock, SinkError, Snapshot, ViidClient, ViidConfig, ViidSink
from hub.forward.viid_objects import parse_response_statuses, person_object, viid_time
from hub.forward.webhook import webhook_body
from sim.mock_viid import MockViid, Reject, check_person
from tests.support.forward_items import CAMERA, GATEWAY, JPEG, PASSWORD, T0, person


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def viid(clock: ManualClock) -> Iterator[MockViid]:
    mock = MockViid(GATEWAY, PASSWORD, now_ms=clock.now_ms)
    mock.start()
    yield mock
    mock.stop()


def _config(mock: MockViid, password: str = PASSWORD) -> ViidConfig:
    return ViidConfig(base_url=f"http://127.0.0.1:{mock.port}", gateway_id=GATEWAY, password=password,
                      keepalive_s=45, timeout_s=3)  # fmt: skip


def test_register_answers_the_digest_challenge(viid: MockViid, clock: ManualClock) -> None:
    client = ViidClient(_config(viid), clock)
    client.register()
    register_calls = [status for method, path, status in viid.log if path == "/VIID/System/Register"]
    assert register_calls == [401, 200]
    assert client.registered and viid.sessions == {GATEWAY}
    assert client.clock_offset_s is not None and abs(client.clock_offset_s) <= 1.0  # same clock, 1 s grain
    assert PASSWORD not in repr(client.config)
    client.close()


def test_wrong_password_is_refused(viid: MockViid, clock: ManualClock) -> None:
    client = ViidClient(_config(viid, password="not-it"), clock)
    with pytest.raises(SinkError, match="credentials refused"):
        client.register()
    assert not client.registered and viid.sessions == set()
    client.close()


def test_keepalive_runs_on_schedule_and_reregisters_after_401(viid: MockViid, clock: ManualClock) -> None:
    sink = ViidSink(_config(viid), clock)
    sink.tick(clock.now_ms())  # registers
    assert viid.registrations == 1
    clock.advance(30)
    sink.tick(clock.now_ms())
    assert viid.keepalives == 0  # not due yet
    clock.advance(20)
    sink.tick(clock.now_ms())
    assert viid.keepalives == 1
    viid.drop_sessions()  # the platform restarted and forgot us
    clock.advance(46)
    sink.tick(clock.now_ms())
    assert viid.registrations == 2 and sink.client.registered
    assert ("POST", "/VIID/System/Keepalive", 401) in viid.log
    clock.advance(46)
    sink.tick(clock.now_ms())
    assert viid.keepalives == 2
    sink.close()


def test_person_upload_is_accepted_by_the_strict_mock(viid: MockViid, clock: ManualClock) -> None:
    sink = ViidSink(_config(viid), clock)
    item = person(7)
    sink.send(item)
    assert len(viid.persons) == 1 and viid.rejections == []
    got = viid.persons[0]
    source = f"{CAMERA}02{viid_time(item.time_ms)}"
    assert got["SourceID"].startswith(source) and len(got["SourceID"]) == 41
    assert got["PersonID"][:41] == got["SourceID"] and got["PersonID"][41:43] == "01"
    assert viid_time(T0) == "20260101080000"  # Asia/Shanghai, not UTC
    assert got["DeviceID"] == CAMERA  # the camera, not the gateway, is the provenance
    assert (got["LeftTopX"], got["LeftTopY"], got["RightBtmX"], got["RightBtmY"]) == (160, 48, 320, 432)
    image = got["SubImageList"]["SubImageInfoObject"][0]
    assert image["ImageID"] == got["SourceID"] and image["Type"] == "14"
    assert base64.b64decode(image["Data"]) == JPEG
    # every request after Register carried the session header, or the mock would have said 401
    assert [s for m, p, s in viid.log if p == "/VIID/Persons"] == [200]
    sink.close()


def test_strict_mock_rejects_a_malformed_person_id(viid: MockViid, clock: ManualClock) -> None:
    client = ViidClient(_config(viid), clock)
    bad = person_object(person(1), event_sort=4)
    bad["PersonID"] = bad["PersonID"][:47]  # 47 digits
    with pytest.raises(SinkError) as caught:
        client.post_persons([bad])
    assert caught.value.permanent  # retrying the same bytes cannot help
    assert "PersonID" in str(caught.value) and viid.persons == []
    client.close()


def _mutations() -> list[tuple[str, object]]:
    return [
        ("PersonID", lambda p: p.update(PersonID=p["SourceID"] + "02" + "00001")),
        ("SourceID", lambda p: p.update(SourceID=p["SourceID"][:20] + "01" + p["SourceID"][22:])),
        ("unknown", lambda p: p.update(LeftTopx=1)),
        ("lacks", lambda p: p.pop("IsVictim")),
        ("0 or 2", lambda p: p.update(IsDriver=1)),
        ("DeviceID", lambda p: p.update(DeviceID=CAMERA[:19])),
        ("ImageID", lambda p: p["SubImageList"]["SubImageInfoObject"][0].update(ImageID="1" * 40)),
        ("ShotTime", lambda p: p["SubImageList"]["SubImageInfoObject"][0].update(ShotTime="20261301080000")),
        ("base64", lambda p: p["SubImageList"]["SubImageInfoObject"][0].update(Data="@@not base64@@")),
        ("JPEG", lambda p: p["SubImageList"]["SubImageInfoObject"][0].update(Data="iVBORw0KGgo=")),
        ("outside", lambda p: p.update(RightBtmX=640)),
        (
            "SourceID image",
            lambda p: p["SubImageList"]["SubImageInfoObject"][0].update(
                ImageID=p["SourceID"][:-1] + ("2" if p["SourceID"][-1] == "1" else "1")
            ),
        ),
    ]


@pytest.mark.parametrize(("reason", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_strict_checks_catch_each_malformation(reason: str, mutate) -> None:  # type: ignore[no-untyped-def]
    good = person_object(person(2), event_sort=4)
    check_person(copy.deepcopy(good))  # the unmodified record passes
    bad = copy.deepcopy(good)
    mutate(bad)
    with pytest.raises(Reject, match=reason):
        check_person(bad)


@pytest.mark.parametrize(("list_form", "string_code"), [(False, False), (True, False), (False, True), (True, True)])
def test_both_response_forms_and_string_codes(clock: ManualClock, list_form: bool, string_code: bool) -> None:
    mock = MockViid(GATEWAY, PASSWORD, list_form=list_form, string_code=string_code, now_ms=clock.now_ms)
    mock.start()
    try:
        sink = ViidSink(_config(mock), clock)
        sink.send(person(3))
        assert len(mock.persons) == 1
        bad = person_object(person(4), event_sort=4)
        bad["InfoKind"] = 0
        with pytest.raises(SinkError, match="StatusCode 8"):
            sink.client.post_persons([bad])
        sink.close()
    finally:
        mock.stop()


def test_response_status_parsing() -> None:
    single = {"ResponseStatusObject": {"Id": "1", "StatusCode": "0", "StatusString": "OK"}}
    statuses = [{"Id": "1", "StatusCode": 0}, {"Id": "2", "StatusCode": " 6 ", "StatusString": "bad xml"}]
    listed = {"ResponseStatusListObject": {"ResponseStatusObject": statuses}}
    lone = {"ResponseStatusListObject": {"ResponseStatusObject": {"Id": "3", "StatusCode": 0}}}
    assert [s.ok for s in parse_response_statuses(single)] == [True]
    assert [(s.id, s.status_code) for s in parse_response_statuses(listed)] == [("1", 0), ("2", 6)]
    assert parse_response_statuses(lone)[0].id == "3"
    for broken in ({}, {"ResponseStatusObject": {"StatusCode": "x"}}, {"ResponseStatusObject": {}},
                   {"ResponseStatusListObject": {"ResponseStatusObject": []}}, []):  # fmt: skip
        with pytest.raises(ValueError):
            parse_response_statuses(broken)


def test_platform_down_is_a_retryable_error(viid: MockViid, clock: ManualClock) -> None:
    sink = ViidSink(_config(viid), clock)
    viid.go_down("refuse")
    with pytest.raises(SinkError) as caught:
        sink.send(person(5))
    assert not caught.value.permanent
    viid.come_up()
    viid.go_down("503")
    with pytest.raises(SinkError, match="503") as caught:
        sink.send(person(5))
    assert not caught.value.permanent
    viid.come_up()
    sink.send(person(5))
    assert len(viid.persons) == 1
    sink.close()


def test_a_crop_is_a_person_image_with_the_box_moved_into_it(viid: MockViid, clock: ManualClock) -> None:
    # The crop spans x 200..600 and y 100..900 permille of the frame and was sent as 400x800 pixels,
    # so the frame box (300, 300, 500, 800) is (100, 200, 300, 700) in the picture.
    item = dataclasses.replace(person(8), bbox=(300, 300, 500, 800),
                               snapshot=Snapshot(JPEG, 400, 800, crop=(200, 100, 600, 900)))  # fmt: skip
    sink = ViidSink(_config(viid), clock)
    sink.send(item)
    assert viid.rejections == []
    got = viid.persons[0]
    assert (got["LeftTopX"], got["LeftTopY"], got["RightBtmX"], got["RightBtmY"]) == (100, 200, 300, 700)
    (image,) = got["SubImageList"]["SubImageInfoObject"]
    assert image["Type"] == "10" and image["ImageID"] == got["SourceID"]
    sink.close()


def test_the_crop_survives_the_outbox_and_reaches_the_webhook() -> None:
    item = dataclasses.replace(person(9), snapshot=Snapshot(JPEG, 400, 800, crop=(200, 100, 600, 900)))
    again = item_from_json(item_to_json(item))
    assert again == item
    assert webhook_body(again, include_snapshot=True)["snapshot"]["crop"] == [200, 100, 600, 900]
    # An item queued before crops were kept has no "c" and reads as the whole frame it was treated as.
    old = item_to_json(item).replace(',"c":[200,100,600,900]', "")
    assert item_from_json(old).snapshot.crop is None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="crop"):
        Snapshot(JPEG, 400, 800, crop=(600, 100, 200, 900))
