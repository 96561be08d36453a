"""DSNs are RFC 3464 reports; none for a null sender or a bounce."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

from postline.dsn import (
    FailedRecipient,
    build_dsn,
    dsn_envelope,
    original_headers,
    status_of,
    wants_dsn,
)
from postline.models import Envelope, Peer
from postline.reply import SmtpReply

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ORIGINAL = Envelope(message_id="Q1", mail_from="alice@example.org", rcpt_to=("a@x.test",))
BODY = b"Subject: hi\r\nFrom: alice@example.org\r\n\r\nbody text\r\n"


def build(*failed: FailedRecipient, body: bytes = BODY) -> bytes:
    return build_dsn(
        ORIGINAL, body, failed, reporting_mta="relay.test", dsn_message_id="D1", now=NOW
    )


def test_report_has_the_three_parts_and_per_recipient_fields() -> None:
    data = build(
        FailedRecipient(
            "a@x.test", SmtpReply(code=550, enhanced="5.1.1", text="No"), Peer(name="mx", ip="1")
        ),
        FailedRecipient("b@y.test", SmtpReply(code=451, text="later"), None, expired=True),
    )
    report = email.message_from_bytes(data, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = list(report.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    text = data.decode()
    assert "Reporting-MTA: dns; relay.test" in text
    assert "Final-Recipient: rfc822; a@x.test\r\nAction: failed\r\nStatus: 5.1.1" in text
    assert "Remote-MTA: dns; mx\r\n" in text
    assert "Status: 4.0.0" in text  # expired: the last temporary status
    assert "delivery time expired" in text
    assert "Subject: hi" in parts[2].as_string()
    assert b"body text" not in data
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only


def test_status_falls_back_to_the_reply_class() -> None:
    assert status_of(SmtpReply(code=554, enhanced="5.7.1")) == "5.7.1"
    assert status_of(SmtpReply(code=550)) == "5.0.0"


def test_status_of_a_failure_never_carries_a_success_class() -> None:
    assert status_of(SmtpReply(code=550, enhanced="2.0.0")) == "5.0.0"
    assert status_of(SmtpReply(code=451, enhanced="2.1.5")) == "4.0.0"
    assert status_of(SmtpReply(code=250, enhanced="2.0.0")) == "4.0.0"
    assert status_of(SmtpReply(code=354)) == "4.0.0"


def test_dsn_for_a_reply_with_a_success_enhanced_code_says_5_0_0() -> None:
    data = build(FailedRecipient("a@x.test", SmtpReply(code=550, enhanced="2.0.0"), None))
    assert "Status: 5.0.0" in data.decode()
    assert "Status: 2." not in data.decode()


def test_non_ascii_recipient_uses_the_international_forms() -> None:
    data = build(FailedRecipient("jörg@x.test", SmtpReply(code=550), None))
    assert b"message/global-delivery-status" in data
    assert "Final-Recipient: utf-8; jörg@x.test" in data.decode()


def test_headers_part_stops_at_the_empty_line() -> None:
    assert original_headers(b"A: 1\nB: 2\n\nbody") == b"A: 1\nB: 2"
    assert original_headers(BODY) == b"Subject: hi\r\nFrom: alice@example.org"


def test_no_dsn_for_a_null_sender_or_a_bounce() -> None:
    assert wants_dsn(ORIGINAL)
    assert not wants_dsn(ORIGINAL.model_copy(update={"mail_from": ""}))
    assert not wants_dsn(ORIGINAL.model_copy(update={"is_bounce": True}))


def test_dsn_envelope_is_a_bounce_from_the_null_sender_to_the_sender() -> None:
    envelope = dsn_envelope(ORIGINAL, NOW)
    assert (envelope.mail_from, envelope.rcpt_to, envelope.is_bounce) == (
        "",
        ("alice@example.org",),
        True,
    )
    assert envelope.message_id != ORIGINAL.message_id


def test_remote_mta_is_the_mx_name_given_as_data_and_people_read_name_address_port() -> None:
    mx = Peer(name="mx6.x.test", ip="2001:db8::25", port=2525)
    data = build(FailedRecipient("a@x.test", SmtpReply(code=550, text="No"), mx)).decode()
    assert "Remote-MTA: dns; mx6.x.test\r\n" in data
    assert "<a@x.test>: rejected by mx6.x.test[2001:db8::25]:2525: 550 No" in data


def test_no_remote_mta_when_no_host_was_reached() -> None:
    data = build(FailedRecipient("a@x.test", SmtpReply(code=550, enhanced="5.1.2"), None))
    assert "Remote-MTA" not in data.decode()
