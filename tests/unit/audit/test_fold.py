"""The state rules of the index (postline.audit.fold) and the records built from them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from postline.audit.fold import fold, message_state, partly_delivered, recipient_state
from postline.audit.index.records import build_record
from postline.models import Event, EventKind, Peer
from postline.reply import reply

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def event(kind: EventKind, seconds: float = 0, **fields: object) -> Event:
    return Event(
        kind=kind, service="test", message_id="M1", at=T0 + timedelta(seconds=seconds), **fields
    )


def deferred(seconds: float, attempt: int = 1, **fields: object) -> Event:
    return event(EventKind.DEFERRED, seconds, recipient="john@partner.test", attempt=attempt,
                 **fields)  # fmt: skip


def outcome(kind: EventKind, seconds: float, **fields: object) -> Event:
    return event(kind, seconds, recipient="john@partner.test", **fields)


RECEIVED = event(EventKind.RECEIVED, 0, rcpt_to=("john@partner.test",))


@pytest.mark.parametrize(
    ("events", "state"),
    [
        ([RECEIVED], "queued"),
        ([RECEIVED, deferred(5)], "deferred"),
        ([RECEIVED, deferred(5), event(EventKind.PARKED, 6)], "parked"),
        ([RECEIVED, deferred(5), outcome(EventKind.DELIVERED, 9)], "delivered"),
        ([RECEIVED, event(EventKind.PARKED, 3), outcome(EventKind.BOUNCED, 2)], "bounced"),
        ([RECEIVED, outcome(EventKind.EXPIRED, 20), deferred(30)], "expired"),
        ([RECEIVED, outcome(EventKind.DISCARDED, 1)], "rejected"),
    ],
)
def test_recipient_state_is_the_same_in_every_arrival_order(
    events: list[Event], state: str
) -> None:
    for order in itertools.permutations(events):
        assert recipient_state(order) == state, [e.kind.value for e in order]


def test_among_terminal_states_the_latest_by_time_wins_whatever_the_arrival_order() -> None:
    early_bounce, late_delivery = outcome(EventKind.BOUNCED, 5), outcome(EventKind.DELIVERED, 9)
    assert recipient_state([late_delivery, early_bounce]) == "delivered"
    assert recipient_state([early_bounce, late_delivery]) == "delivered"
    tie = [outcome(EventKind.BOUNCED, 5), outcome(EventKind.DELIVERED, 5)]
    assert recipient_state(tie) == recipient_state(reversed(tie))


def test_events_at_the_same_time_are_in_the_order_of_a_message_life_whatever_arrived_first() -> (
    None
):
    same = [
        event(EventKind.DSN_SENT, 2, rcpt_to=("john@partner.test",)),
        outcome(EventKind.BOUNCED, 2),
        event(EventKind.CONVERSATION, 2, rcpt_to=("john@partner.test",)),
        event(EventKind.FILTERED, 2),
        event(EventKind.RECEIVED, 2, rcpt_to=("john@partner.test",)),
    ]
    expected = ["received", "filtered", "conversation", "bounced", "dsn_sent"]
    for order in itertools.permutations(same):
        assert [e.kind.value for e in fold(order).events] == expected


def test_a_hold_lasts_until_a_later_release() -> None:
    hold = event(EventKind.OPERATOR, 10, action="hold")
    release = event(EventKind.OPERATOR, 20, action="release")
    assert recipient_state([RECEIVED, deferred(5), hold]) == "held"
    assert recipient_state([release, hold, deferred(5), RECEIVED]) == "deferred"
    assert recipient_state([RECEIVED, event(EventKind.OPERATOR, 9, action="delete")]) == "deleted"


@pytest.mark.parametrize(
    ("states", "state"),
    [
        (["delivered", "deferred", "queued"], "deferred"),
        (["delivered", "queued", "parked"], "queued"),
        (["bounced", "parked"], "parked"),
        (["delivered", "delivered"], "delivered"),
        (["delivered", "expired"], "expired"),
        (["expired", "bounced"], "bounced"),
        (["bounced", "rejected"], "rejected"),
        (["rejected", "refused", "delivered"], "refused"),
    ],
)
def test_message_state_follows_its_worst_or_pending_recipient(
    states: list[str], state: str
) -> None:
    assert message_state(states) == state


def test_partly_delivered_means_some_delivered_and_some_not() -> None:
    assert partly_delivered(["delivered", "bounced"])
    assert not partly_delivered(["delivered", "delivered"])
    assert not partly_delivered(["bounced", "expired"])


def test_fold_groups_recipients_case_insensitively_and_applies_message_level_events() -> None:
    events = [
        event(EventKind.RECEIVED, 0, rcpt_to=("John@Partner.test", "ann@other.test")),
        outcome(EventKind.DELIVERED, 3),  # john@partner.test, another spelling
        event(EventKind.PARKED, 4, reason="poison"),  # no recipient: applies to every one
    ]
    folded = fold(events)
    assert folded.states == {"John@Partner.test": "delivered", "ann@other.test": "parked"}
    assert (folded.state, folded.partly_delivered) == ("parked", True)


def test_a_refusal_without_recipients_is_a_refused_message() -> None:
    refused = event(EventKind.REFUSED, 0, command="AUTH", reply=reply(535, "5.7.8", "no"))
    record = build_record("refused-1", [refused])
    assert (record.state, record.recipients, record.received_at) == ("refused", [], None)


def test_a_record_counts_attempts_and_keeps_the_last_mx_reply_and_next_attempt() -> None:
    mx1, mx2 = Peer(name="mx1.partner.test", ip="192.0.2.1", port=25), Peer(name="mx2.partner.test")
    later = T0 + timedelta(minutes=10)
    events = [
        deferred(60, 2, mx=mx2, reply=reply(421, "4.4.2", "timeout"), next_attempt_at=later),
        event(EventKind.CONVERSATION, 59, rcpt_to=("john@partner.test",), transcript=["x"]),
        deferred(1, attempt=1, mx=mx1, reply=reply(451, "4.7.1", "greylisted")),
        event(EventKind.RECEIVED, 0, rcpt_to=("john@partner.test",), mail_from="mary@co.test",
              size=42, helo="laptop", subject="hi", header_message_id="<a@co.test>"),
    ]  # fmt: skip
    record = build_record("M1", events)
    [john] = record.recipients
    assert (john.state, john.attempts, john.mx) == ("deferred", 2, "mx2.partner.test")
    assert john.reply == reply(421, "4.4.2", "timeout") and john.next_attempt_at == later
    assert [e.kind for e in record.events] == [
        EventKind.RECEIVED, EventKind.DEFERRED, EventKind.CONVERSATION, EventKind.DEFERRED,
    ]  # fmt: skip
    assert (record.mail_from, record.size, record.helo, record.received_at) == (
        "mary@co.test", 42, "laptop", T0,
    )  # fmt: skip
