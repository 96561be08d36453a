"""Operator actions: which one counts for a message, and what delivery does with it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from postline.control import ControlState, DoneMarker, OperatorAction
from postline.delivery.gate import ControlGate, ControlUnavailable
from postline.delivery.operator import (
    HELD_EXPIRED,
    Verdict,
    announces,
    bounced_reply,
    effective,
    epoch_ms,
    flush_request,
    lifetime_end,
    operator_event,
    verdict,
)
from postline.dsn import status_of
from postline.models import Envelope, EventKind, stable_event_id

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86400.0
ENVELOPE = Envelope(
    message_id="M1", mail_from="s@x.test", rcpt_to=("a@x.test", "b@x.test"), received_at=RECEIVED
)


def action(
    name: str, at: datetime = RECEIVED + timedelta(hours=1), keep: bool = False, rid: str = "R1"
) -> OperatorAction:
    return OperatorAction(rid, name, ("M1",), "wrong list", "alice", keep, at)  # type: ignore[arg-type]


def test_an_action_issued_before_the_message_was_received_is_not_about_it() -> None:
    assert effective(action("delete", at=RECEIVED - timedelta(seconds=1)), ENVELOPE) is None
    assert effective(action("delete", at=RECEIVED), ENVELOPE) is None
    later = action("delete")
    assert effective(later, ENVELOPE) is later
    assert effective(None, ENVELOPE) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("retry", Verdict.ATTEMPT),
        ("release", Verdict.ATTEMPT),
        ("delete", Verdict.DELETE),
        ("bounce", Verdict.BOUNCE),
        ("hold", Verdict.HOLD),
    ],
)
def test_each_action_has_its_verdict_within_the_lifetime(name: str, expected: Verdict) -> None:
    assert verdict(action(name), ENVELOPE, 5 * DAY, RECEIVED + timedelta(days=1)) is expected


def test_no_action_means_the_normal_attempt() -> None:
    assert verdict(None, ENVELOPE, DAY, RECEIVED) is Verdict.ATTEMPT


def test_held_mail_past_its_lifetime_expires_unless_kept() -> None:
    late = RECEIVED + timedelta(days=5)
    assert verdict(action("hold"), ENVELOPE, 5 * DAY, late) is Verdict.EXPIRE
    assert verdict(action("hold", keep=True), ENVELOPE, 5 * DAY, late) is Verdict.HOLD
    assert verdict(action("hold"), ENVELOPE, 5 * DAY, late - timedelta(seconds=1)) is Verdict.HOLD


def test_the_lifetime_counts_from_the_first_attempt_else_from_receipt() -> None:
    assert lifetime_end(ENVELOPE, DAY) == RECEIVED + timedelta(days=1)
    tried = ENVELOPE.model_copy(update={"first_attempt_at": RECEIVED + timedelta(hours=2)})
    assert lifetime_end(tried, DAY) == RECEIVED + timedelta(days=1, hours=2)


def test_only_a_copy_flushed_for_the_actions_own_request_announces_it() -> None:
    retry = action("retry", rid="R7")
    assert announces(retry, "R7")
    assert not announces(retry, "R8")
    assert not announces(retry, None)
    assert not announces(None, "R7")


def test_the_flush_header_is_read_as_text() -> None:
    assert flush_request({"postline-flush": "R1"}) == "R1"
    assert flush_request({"postline-flush": b"R2"}) == "R2"
    assert flush_request({"postline-flush": ""}) is None
    assert flush_request({}) is None


def test_operator_events_say_what_who_why_and_which_recipients_wait() -> None:
    now = RECEIVED + timedelta(hours=3)
    event = operator_event(ENVELOPE, action("delete"), now)
    assert event.kind is EventKind.OPERATOR
    assert (event.action, event.actor, event.reason) == ("delete", "alice", "wrong list")
    assert event.rcpt_to == ("a@x.test", "b@x.test")
    assert event.service == "delivery"
    assert event.event_id == stable_event_id("M1", "operator", "R1")
    assert operator_event(ENVELOPE, action("delete"), now + timedelta(1)).event_id == event.event_id


def test_an_operator_bounce_reads_550_5_0_0_with_the_reason() -> None:
    reply = bounced_reply("wrong list")
    assert (reply.code, reply.enhanced, reply.text) == (
        550,
        "5.0.0",
        "bounced by operator: wrong list",
    )
    assert bounced_reply(None).text == "bounced by operator"
    assert status_of(HELD_EXPIRED) == "4.4.7"


def test_epoch_milliseconds() -> None:
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)) == 1500


class FakeState(ControlState):
    """A control state fed by hand; ``wait_synced`` applies what is pending."""

    def __init__(self) -> None:
        super().__init__("ns.control")
        self.pending: list[OperatorAction | DoneMarker] = []
        self.syncs = 0

    async def wait_synced(self, timeout: float) -> bool:
        self.syncs += 1
        for record in self.pending:
            self.apply(record)
        self.pending.clear()
        return True


async def test_no_message_is_decided_before_the_stream_was_read() -> None:
    gate = ControlGate(FakeState(), sync_timeout=0.05)
    with pytest.raises(ControlUnavailable):
        await gate.lookup(ENVELOPE, None)


async def test_a_lookup_waits_for_the_first_read_of_the_stream() -> None:
    state = FakeState()
    gate = ControlGate(state, sync_timeout=5)
    lookup = asyncio.ensure_future(gate.lookup(ENVELOPE, None))
    await asyncio.sleep(0)
    assert not lookup.done()
    state.apply(action("hold"))
    state.synced.set()
    assert (await lookup).action == action("hold")


async def test_a_flushed_copy_waits_for_its_requests_record_to_arrive() -> None:
    state = FakeState()
    state.synced.set()
    gate = ControlGate(state)
    state.pending.append(action("delete", rid="R9"))
    found = await gate.lookup(ENVELOPE, "R9")
    assert found.action is not None and found.action.action == "delete"
    assert state.syncs == 1
    await gate.lookup(ENVELOPE, "R9")  # known now: no second round trip
    assert state.syncs == 1


async def test_a_done_marker_makes_that_very_copy_a_duplicate_only() -> None:
    state = FakeState()
    state.synced.set()
    state.apply(DoneMarker("M1", 0, "R1", "C1"))
    gate = ControlGate(state)
    assert (await gate.lookup(ENVELOPE, None, "C1")).duplicate
    later = ENVELOPE.model_copy(update={"attempt": 1})
    assert not (await gate.lookup(later, None, "C1")).duplicate
    assert not (await gate.lookup(ENVELOPE, None, "C2")).duplicate, "held again: a new copy"
    assert not (await gate.lookup(ENVELOPE, None, None)).duplicate


async def test_a_message_without_a_copy_id_is_never_dropped() -> None:
    state = FakeState()
    state.synced.set()
    state.apply(DoneMarker("M1", 0, "R1", None))  # e.g. a parked copy released to submit
    found = await ControlGate(state).lookup(ENVELOPE, None, None)  # filter's fresh publish
    assert not found.duplicate


async def test_the_gate_ignores_actions_older_than_the_message() -> None:
    state = FakeState()
    state.synced.set()
    state.apply(action("delete", at=RECEIVED - timedelta(days=1)))
    found = await ControlGate(state).lookup(ENVELOPE, None)
    assert found.action is None and not found.duplicate
