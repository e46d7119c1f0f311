"""A broker restart at night: Mosquitto stopped with SIGTERM publishes every
connected device's will. Through the real hub (TLS, persistent session) and
real agent links, that must be one operator alarm about the broker — not one
``offline_armed`` per armed household — and a device that does not come back
must still get its own alarm, a grace after the broker's return.
"""

from __future__ import annotations

import time

from sqlalchemy import select, update

from agent.outbox import Outbox
from hub.db.schema import devices, households
from hub.db.schema_ops import alarms
from hub.health.offline import BROKER, BROKER_DISCONNECT, OFFLINE_ARMED
from tests.support.reliability_rig import Rig, link_for, running_hub
from tests.support.wait import wait_for

GRACE_S = 4.0  # the default is 30 s; short here so the test takes seconds (links reconnect in < 1 s)
HEALTH = {"offline_grace_s": GRACE_S, "broker_window_s": 2.0, "broker_min_devices": 3, "check_interval_s": 0.2}


def _alarms(rig: Rig) -> list[tuple[str, str, int, int | None]]:
    with rig.engine.connect() as conn:
        return [
            (r.device_id, r.kind, int(r.raised_ms), r.cleared_ms)
            for r in conn.execute(select(alarms).order_by(alarms.c.id))
        ]


def _online(rig: Rig) -> set[str]:
    with rig.engine.connect() as conn:
        return set(conn.execute(select(devices.c.id).where(devices.c.online.is_(True))).scalars())


def test_broker_restart_is_one_broker_alarm_and_only_the_device_that_stays_away_alarms(rig: Rig) -> None:
    with rig.engine.begin() as conn:  # every household armed all day, whenever the test runs
        conn.execute(update(households).values(armed_from="00:00", armed_to="00:00"))
    boxes = {d: Outbox(rig.tmp / f"ob-{d}.sqlite3") for d in rig.devices}
    links = {d: link_for(rig, d, box) for d, box in boxes.items()}
    stays_away = rig.devices[0]
    others = set(rig.devices[1:])
    with running_hub(rig, client_id="hub-restart-alarms", health=HEALTH):
        for link in links.values():
            link.start()
        try:
            wait_for(lambda: _online(rig) == set(rig.devices), 20, "every device online")
            assert _alarms(rig) == []
            t0 = time.time()
            rig.broker.stop()  # SIGTERM: every will goes out, queued for the hub's persistent session
            links[stays_away].stop()  # this one does not come back
            rig.broker.start_again()

            def broker_alarm() -> bool:
                return any(k == BROKER_DISCONNECT for _, k, _, _ in _alarms(rig))

            wait_for(broker_alarm, 20, "the broker alarm")
            t_raised = time.time()
            wait_for(lambda: _online(rig) == others, 20, "the other devices back")
            t_back = time.time()
            wait_for(
                lambda: any(k == OFFLINE_ARMED for _, k, _, _ in _alarms(rig)),
                GRACE_S + 15,
                "the alarm of the device that stayed away",
            )
            t_alarm = time.time()
            time.sleep(1.0)  # a few more watcher checks: nothing else may be raised
            rows = _alarms(rig)
        finally:
            for link in links.values():
                link.stop()
    broker = [r for r in rows if r[1] == BROKER_DISCONNECT]
    offline = [r for r in rows if r[1] == OFFLINE_ARMED]
    assert len(broker) == 1 and broker[0][0] == BROKER, rows
    assert broker[0][3] is not None, "the broker alarm clears once the devices are back"
    assert [(d, k) for d, k, _, _ in offline] == [(stays_away, OFFLINE_ARMED)], rows
    assert offline[0][2] - broker[0][3] >= GRACE_S * 1000, "the grace counts from the broker's return"
    assert len(rows) == 2, rows
    print(
        f"\nbroker SIGTERM → broker alarm {t_raised - t0:.1f} s, others back {t_back - t0:.1f} s, "
        f"broker alarm cleared after {(broker[0][3] - broker[0][2]) / 1000:.1f} s, "
        f"stayed-away alarm {t_alarm - t0:.1f} s (grace {GRACE_S:g} s)"
    )
    for box in boxes.values():
        box.close()
