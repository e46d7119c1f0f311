"""A neighbour's ack committed while the escalation pass is taking the next step (after
it read the chain, before it moved it) stops the chain there: the step is not taken,
nobody beyond the group is notified (attack review: the step's conditional UPDATE
did not look at the alert, so the 治安户长 was called out to an answered alert)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update

from hub.config_escalation import EscalationConfig
from hub.db import make_engine
from hub.db.schema_ops import alerts
from hub.escalation.channels import BuzzerChannel, ConsoleChannel
from hub.escalation.engine import Escalator
from hub.escalation.tables import ACKED, escalation_steps, escalations
from tests.support.hub_db import make_fleet

T0 = 1_800_000_000_000
CFG = EscalationConfig(enabled=True, panic_s=(10.0, 20.0, 30.0), person_s=(40.0, 50.0, 60.0))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=1, per_group=2)
    with engine.begin() as conn:
        conn.execute(
            alerts.insert().values(id="al1", kind="panic", origin_device=fleet["g000"][0], household_id="HH00000",
                                   group_id="g000", raised_ms=T0, published_ms=T0 + 5, status="open")
        )  # fmt: skip
    yield engine
    engine.dispose()


def test_a_neighbours_ack_landing_mid_step_stops_the_chain(engine: Engine) -> None:
    clock = [T0 / 1000]
    escalator = Escalator(engine, CFG, [BuzzerChannel(), ConsoleChannel()], clock=lambda: clock[0])
    escalator.start_chains(T0)
    fired: list[bool] = []

    def neighbour_acks_now(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if fired or not statement.lstrip().upper().startswith("UPDATE ESCALATIONS"):
            return
        fired.append(True)
        with engine.begin() as other:  # the ingest worker, committing the ack of a neighbour's press
            other.execute(
                update(alerts)
                .where(alerts.c.id == "al1")
                .values(status="closed", close_reason="ack", closed_ms=T0 + 10_000, first_ack_ms=T0 + 10_000)
            )

    event.listen(engine, "before_cursor_execute", neighbour_acks_now)
    clock[0] = (T0 + 10_000) / 1000
    try:
        escalator.run_once()
    finally:
        event.remove(engine, "before_cursor_execute", neighbour_acks_now)
    assert fired
    escalator.run_once()
    with engine.connect() as conn:
        steps = list(
            conn.execute(select(escalation_steps.c.step).where(escalation_steps.c.alert_id == "al1")).scalars()
        )
        chain = conn.execute(select(escalations).where(escalations.c.alert_id == "al1")).one()
    assert steps == [1]
    assert chain.status == ACKED and chain.step == 1 and chain.ack_channel == "device"


def test_two_hubs_starting_the_same_chain_start_it_once_and_both_go_on(engine: Engine) -> None:
    """Two ``xl-hub run`` on one PostgreSQL: both passes see the new alert without a chain.
    The second one's insert found the first's row and its whole pass failed (no due steps
    taken by it, an error in its log at every race)."""
    hub_a = Escalator(engine, CFG, [BuzzerChannel(), ConsoleChannel()], clock=lambda: T0 / 1000)
    hub_b = Escalator(engine, CFG, [BuzzerChannel(), ConsoleChannel()], clock=lambda: T0 / 1000)
    fired: list[bool] = []

    def a_wins(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not fired and statement.lstrip().upper().startswith("INSERT INTO ESCALATIONS"):
            fired.append(True)
            hub_a.start_chains(T0)  # the other hub's pass, committed first

    event.listen(engine, "before_cursor_execute", a_wins)
    try:
        hub_b.run_once()
    finally:
        event.remove(engine, "before_cursor_execute", a_wins)
    assert fired
    with engine.connect() as conn:
        steps = list(
            conn.execute(select(escalation_steps.c.step).where(escalation_steps.c.alert_id == "al1")).scalars()
        )
    assert steps == [1]


def test_two_hubs_send_a_console_take_overs_clear_once(engine: Engine) -> None:
    """Both hubs' passes see the acknowledged chain whose clear is owed: the group got two
    clears and the platform two clear items (one per hub) before the fix."""
    from hub.alerts.engine import Publication
    from hub.escalation.engine import ack

    published: dict[str, list[Publication]] = {"a": [], "b": []}
    hub_a = Escalator(engine, CFG, [BuzzerChannel(), ConsoleChannel()], publish=published["a"].extend)
    hub_b = Escalator(engine, CFG, [BuzzerChannel(), ConsoleChannel()], publish=published["b"].extend)
    hub_a.start_chains(T0)
    with engine.begin() as conn:
        assert ack(conn, "al1", "op1", "console", T0 + 5_000)
    fired: list[bool] = []

    def a_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not fired and statement.lstrip().upper().startswith("UPDATE ESCALATIONS SET CLEAR_SENT_MS"):
            fired.append(True)
            hub_a.send_clears()

    event.listen(engine, "before_cursor_execute", a_first)
    try:
        hub_b.send_clears()
    finally:
        event.remove(engine, "before_cursor_execute", a_first)
    assert fired
    assert len(published["a"]) + len(published["b"]) == 1


def test_a_chain_left_without_a_next_step_by_a_config_change_ends_exhausted(engine: Engine) -> None:
    """A group's chain shortened (steps 1, 2) while one of its chains waited for step 3: the
    chain stayed running and due for ever (read at every pass, an open chain in the console's
    live banner for a day) instead of ending unanswered."""
    from hub.config_escalation import GroupChain

    hub = Escalator(engine, CFG, [BuzzerChannel(), ConsoleChannel()], clock=lambda: (T0 + 10_000) / 1000)
    hub.start_chains(T0)
    hub.run_once()  # step 2; step 3 due 20 s later
    short = EscalationConfig(enabled=True, panic_s=CFG.panic_s, person_s=CFG.person_s,
                             groups={"g000": GroupChain(steps=(1, 2))})  # fmt: skip
    restarted = Escalator(engine, short, [BuzzerChannel(), ConsoleChannel()], clock=lambda: (T0 + 40_000) / 1000)
    restarted.run_once()
    with engine.connect() as conn:
        chain = conn.execute(select(escalations).where(escalations.c.alert_id == "al1")).one()
    assert (chain.step, chain.status, chain.next_ms) == (2, "exhausted", None)
    assert restarted.due(T0 + 50_000) == []
