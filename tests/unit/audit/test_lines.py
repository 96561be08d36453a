"""Trail lines: routing by kind, stable keys, escaping that no client string can break."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from postline.audit.lines import COMMON, KEYS, ROUTES, Trail, format_line, trail_for
from postline.models import Event, EventKind, Peer, TlsInfo
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
            mx=Peer(name="mx1.partner.test", ip="192.0.2.1", port=25),
            reply=reply(250, "2.0.0", "Ok: queued as ABC"),
            attempt=3,
            queued_seconds=12.5,
            session_id="S1",
            tls=TlsInfo(version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384", verified=False),
        )
    )
    assert parsed(line) == {
        "at": "2026-03-04T05:06:07.123456+00:00",
        "kind": "delivered",
        "message_id": "4Q8ZT1K2M7XHBN3C",
        "event_id": "e1",
        "mail_from": "mary@company.test",
        "recipient": "john@partner.test",
        "mx_host": "mx1.partner.test[192.0.2.1]:25",
        "reply": {"code": 250, "enhanced": "2.0.0", "text": "Ok: queued as ABC"},
        "attempts": 3,
        "queued_seconds": 12.5,
        "session_id": "S1",
        "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "verified": False},
    }


VERSION_1 = {  # what a delivery service before event version 2 published
    "version": 1,
    "event_id": "e0",
    "kind": "delivered",
    "at": "2026-03-04T05:06:07.123456+00:00",
    "service": "delivery",
    "message_id": "4Q8ZT1K2M7XHBN3C",
    "recipient": "john@partner.test",
    "attempt": 1,
    "mx_host": "mx1.partner.test[192.0.2.1]:25",
}


@pytest.mark.parametrize("kind", ["delivered", "bounced", "deferred", "conversation"])
def test_a_version_1_event_with_only_mx_host_still_writes_it_as_sent(kind: str) -> None:
    old = Event.from_json(json.dumps({**VERSION_1, "kind": kind}).encode())
    line = parsed(format_line(old))
    assert line["mx_host"] == "mx1.partner.test[192.0.2.1]:25"
    assert tuple(line) == KEYS[trail_for(old.kind)]


def test_a_host_reached_by_name_only_is_written_by_name() -> None:
    line = parsed(format_line(event(EventKind.DEFERRED, mx=Peer(name="mx.partner.test"))))
    assert line["mx_host"] == "mx.partner.test"


def test_an_ipv6_host_is_written_postfix_style() -> None:
    mx = Peer(name="mx6.partner.test", ip="2001:db8::1", port=25)
    line = parsed(format_line(event(EventKind.BOUNCED, mx=mx)))
    assert line["mx_host"] == "mx6.partner.test[2001:db8::1]:25"


def test_the_received_line_carries_the_clients_session_and_tls() -> None:
    tls = TlsInfo(version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256")
    line = parsed(format_line(event(EventKind.RECEIVED, session_id="c1", tls=tls)))
    assert line["session_id"] == "c1"
    assert line["tls"] == {
        "version": "TLSv1.3",
        "cipher": "TLS_AES_128_GCM_SHA256",
        "verified": None,  # ingress does not ask clients for certificates
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


def test_docs_list_the_keys_each_trail_writes_in_order() -> None:
    """docs/audit.md is the operators' reference: its key list per file is what is written."""
    docs = (Path(__file__).parents[3] / "docs" / "audit.md").read_text()
    for trail in Trail:
        section = docs.split(f"### `{trail.value}`", 1)[1]
        listed = re.search(r"^`(at, kind, [^`]+)`$", section, re.M)
        assert listed is not None, trail
        assert tuple(listed.group(1).split(", ")) == KEYS[trail], trail
