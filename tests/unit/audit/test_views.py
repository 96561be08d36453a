"""A message's JSON: the ``trace --json`` shape, UTC times, events as their own JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from postline.audit.views import MessageRecord, RecipientRecord, iso, to_json
from postline.models import Event, EventKind, Peer, TlsInfo
from postline.reply import reply

AT = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
MID = "4Q8ZT1K2M7XHBN3C"


def delivered_record() -> MessageRecord:
    mx = Peer(name="mx.example.com", ip="192.0.2.9", port=25)
    ok = reply(250, "2.0.0", "Ok: queued as 4QX")
    events = [
        Event(kind=EventKind.RECEIVED, service="ingress", message_id=MID, at=AT,
              mail_from="mary@company.test", rcpt_to=("john@partner.test",), size=321,
              tls=TlsInfo(version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384")),
        Event(kind=EventKind.DELIVERED, service="delivery", message_id=MID,
              at=AT + timedelta(seconds=2), recipient="john@partner.test", attempt=1,
              mx=mx, reply=ok),
    ]  # fmt: skip
    return MessageRecord(
        message_id=MID,
        state="delivered",
        mail_from="mary@company.test",
        received_at=AT,
        size=321,
        subject="Quarterly report",
        header_message_id="<abc@company.test>",
        client_ip="10.1.2.3",
        helo="laptop.company.test",
        auth_user="mary",
        tls_version="TLSv1.3",
        recipients=[RecipientRecord("john@partner.test", "delivered", ok, 1, mx.label, None, AT)],
        events=events,
    )


def test_the_json_has_every_key_of_the_trace_json_shape():
    record = delivered_record()
    document = to_json(record)
    assert document == {
        "message_id": MID,
        "state": "delivered",
        "partly_delivered": False,
        "mail_from": "mary@company.test",
        "received_at": "2026-03-04T05:06:07.123456Z",
        "size": 321,
        "subject": "Quarterly report",
        "header_message_id": "<abc@company.test>",
        "submission": {
            "client_ip": "10.1.2.3",
            "helo": "laptop.company.test",
            "auth_user": "mary",
            "tls": "TLSv1.3",
        },
        "recipients": [
            {
                "address": "john@partner.test",
                "state": "delivered",
                "reply": {"code": 250, "enhanced": "2.0.0", "text": "Ok: queued as 4QX"},
                "attempts": 1,
                "mx": "mx.example.com[192.0.2.9]:25",
                "next_attempt_at": None,
            }
        ],
        "events": [e.model_dump(mode="json", exclude_none=True) for e in record.events],
        "diagnosis": "Diagnosis: delivered: accepted by mx.example.com (250 2.0.0 Ok: queued "
        "as 4QX); if the recipient cannot find it, the problem is on their side",
    }


def test_events_keep_their_time_order_and_leave_out_absent_fields():
    events = to_json(delivered_record())["events"]
    assert [e["kind"] for e in events] == ["received", "delivered"]
    assert events[0]["at"] == "2026-03-04T05:06:07.123456Z"
    assert "recipient" not in events[0] and "reply" not in events[0]
    assert events[1]["mx"] == {"name": "mx.example.com", "ip": "192.0.2.9", "port": 25}


def test_the_document_is_plain_json():
    text = json.dumps(to_json(delivered_record()))
    assert json.loads(text)["recipients"][0]["reply"]["code"] == 250


def test_times_are_utc_whatever_zone_or_none_they_came_with():
    plus_two = timezone(timedelta(hours=2))
    assert iso(datetime(2026, 3, 4, 7, 0, tzinfo=plus_two)) == "2026-03-04T05:00:00Z"
    assert iso(datetime(2026, 3, 4, 5, 0)) == "2026-03-04T05:00:00Z"
    assert iso(None) is None


def test_a_record_without_a_received_event_has_null_submission_fields():
    bare = MessageRecord(message_id=MID, state="queued")
    document = to_json(bare)
    assert document["received_at"] is None
    assert document["submission"] == {
        "client_ip": None,
        "helo": None,
        "auth_user": None,
        "tls": None,
    }
    assert document["recipients"] == [] and document["events"] == []
    assert document["diagnosis"].startswith("Diagnosis: ")
