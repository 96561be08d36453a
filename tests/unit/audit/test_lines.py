"""Trail lines: routing by kind, stable keys, escaping that no client string can break."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from postline.audit.lines import COMMON, KEYS, ROUTES, Trail, format_line, trail_for
from postline.models import Event, EventKind
from postline.reply import reply

AT = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def event(kind: EventKind, **fields: Any) -> Event:
    return Event(kind=kind, service="delivery", message_id="4Q8ZT1K2M7XHBN3C", at=AT, **fields)


def parsed(line: bytes) -> dict[str, Any]:
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    value = json.loads(line)
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize(
    ("kind", "trail"),
    [
        (EventKind.DELIVERED, Trail.SUCCESS),
        (EventKind.BOUNCED, Trail.FAILURE),
        (EventKind.EXPIRED, Trail.FAILURE),
        (EventKind.REJECTED, Trail.FAILURE),
        (EventKind.RECEIVED, Trail.QUEUE),
        (EventKind.FILTERED, Trail.QUEUE),
        (EventKind.DEFERRED, Trail.QUEUE),
        (EventKind.DSN_SENT, Trail.QUEUE),
        (EventKind.PARKED, Trail.QUEUE),
        (EventKind.CONVERSATION, Trail.CONVERSATION),
    ],
)
def test_each_kind_goes_to_its_trail_file(kind: EventKind, trail: Trail) -> None:
    assert trail_for(kind) is trail


def test_every_event_kind_has_a_route() -> None:
    assert set(ROUTES) == set(EventKind)


def test_trail_file_names_are_the_contract() -> None:
    assert [t.value for t in Trail] == [
        "OutboundAuditTrailSuccess.log",
        "OutboundAuditTrailFailure.log",
        "SmtpQueue.log",
        "SMTPOutboundConversation.log",
    ]


def test_delivered_line_has_the_success_trail_fields() -> None:
    line = format_line(
        event(
            EventKind.DELIVERED,
            event_id="e1",
            mail_from="mary@company.test",
            recipient="john@partner.test",
            mx_host="mx1.partner.test",
            reply=reply(250, "2.0.0", "Ok: queued as ABC"),
            attempt=3,
            queued_seconds=12.5,
        )
    )
    assert parsed(line) == {
        "at": "2026-03-04T05:06:07.123456+00:00",
        "kind": "delivered",
        "message_id": "4Q8ZT1K2M7XHBN3C",
        "event_id": "e1",
        "mail_from": "mary@company.test",
        "recipient": "john@partner.test",
        "mx_host": "mx1.partner.test",
        "reply": {"code": 250, "enhanced": "2.0.0", "text": "Ok: queued as ABC"},
        "attempts": 3,
        "queued_seconds": 12.5,
    }


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_line_of_a_trail_has_the_same_keys_in_the_same_order(kind: EventKind) -> None:
    bare = parsed(format_line(event(kind)))
    assert tuple(bare) == KEYS[trail_for(kind)]
    assert tuple(bare)[:4] == COMMON
    assert bare["kind"] == kind.value and bare["message_id"] == "4Q8ZT1K2M7XHBN3C"
    assert isinstance(bare["event_id"], str) and bare["event_id"]


def test_failure_line_carries_reason_and_remote_reply() -> None:
    line = parsed(
        format_line(
            event(
                EventKind.BOUNCED,
                recipient="nobody@partner.test",
                reason="remote refused the recipient",
                reply=reply(550, "5.1.1", "User unknown"),
            )
        )
    )
    assert line["reason"] == "remote refused the recipient"
    assert line["reply"] == {"code": 550, "enhanced": "5.1.1", "text": "User unknown"}


def test_deferred_line_has_reason_and_next_attempt() -> None:
    later = datetime(2026, 3, 4, 6, 0, 0, tzinfo=UTC)
    line = parsed(
        format_line(event(EventKind.DEFERRED, reason="451 try later", next_attempt_at=later))
    )
    assert line["reason"] == "451 try later"
    assert line["next_attempt_at"] == "2026-03-04T06:00:00+00:00"


def test_conversation_line_keeps_the_transcript_as_a_list() -> None:
    transcript = ["<- 220 mx ESMTP", "-> EHLO relay.test", "<- 250 ok"]
    line = parsed(
        format_line(event(EventKind.CONVERSATION, session_id="s1", transcript=transcript))
    )
    assert line["session_id"] == "s1" and line["transcript"] == transcript


@pytest.mark.parametrize(
    "hostile",
    [
        'x"}\n{"kind":"delivered","recipient":"forged@x.test"}',
        "cr\rlf\nnul\x00tab\t",
        "unicode line separators \u2028\u2029 and \x85",
        "non-ascii é ☃ \udcff",
    ],
)
def test_client_strings_cannot_forge_or_split_a_line(hostile: str) -> None:
    line = format_line(
        event(EventKind.RECEIVED, mail_from=hostile, reason=hostile, auth_user=hostile)
    )
    assert line.isascii()
    assert b"\n" not in line[:-1] and b"\r" not in line
    record = parsed(line)
    assert record["mail_from"] == hostile and record["kind"] == "received"


def test_times_are_written_in_utc() -> None:
    from datetime import timedelta, timezone

    local = datetime(2026, 3, 4, 7, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    line = parsed(
        format_line(Event(kind=EventKind.RECEIVED, service="s", message_id="m", at=local))
    )
    assert line["at"] == "2026-03-04T05:06:07+00:00"


def test_non_finite_numbers_become_null_instead_of_invalid_json() -> None:
    line = parsed(format_line(event(EventKind.DELIVERED, queued_seconds=float("nan"))))
    assert line["queued_seconds"] is None
