"""DSNs are RFC 3464 reports; none for a null sender or a bounce."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from postline.dsn import (
    FULL_RETURN_LIMIT,
    FailedRecipient,
    bounce,
    build_dsn,
    dsn_envelope,
    failure_notices,
    original_headers,
    status_of,
    wants_dsn,
    wants_success_notice,
    xtext_decode,
    xtext_encode,
)
from postline.models import Envelope, Peer, RecipientParams
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


def test_xtext_round_trips_and_refuses_what_is_not_xtext() -> None:
    assert xtext_encode("a+b=c d\u00e9") == "a+2Bb+3Dc+20d+C3+A9"
    assert xtext_decode("a+2Bb+3Dc+20d+C3+A9") == "a+b=c d\u00e9"
    for bad in ("a=b", "a+2", "a+zz", "a b"):
        with pytest.raises(ValueError):
            xtext_decode(bad)


def with_params(**fields: object) -> Envelope:
    return ORIGINAL.model_copy(update=fields)


def test_notify_decides_which_failures_are_reported() -> None:
    params = {
        "never@x.test": RecipientParams(notify=("NEVER",)),
        "delay@x.test": RecipientParams(notify=("DELAY",)),
        "failure@x.test": RecipientParams(notify=("SUCCESS", "FAILURE")),
    }
    envelope = with_params(rcpt_to=(*params, "plain@x.test"), rcpt_params=params)
    failed = [FailedRecipient(r, SmtpReply(code=550)) for r in envelope.rcpt_to]
    kept = [f.recipient for f in failure_notices(envelope, failed)]
    assert kept == ["failure@x.test", "plain@x.test"]
    assert wants_success_notice(envelope, "failure@x.test")
    assert not wants_success_notice(envelope, "plain@x.test")


def test_no_dsn_when_every_recipient_said_never() -> None:
    never = {"a@x.test": RecipientParams(notify=("NEVER",))}
    assert not wants_dsn(with_params(rcpt_params=never))
    failed = [FailedRecipient("a@x.test", SmtpReply(code=550))]
    with pytest.raises(ValueError):
        bounce(
            with_params(rcpt_params=never), BODY, failed,
            reporting_mta="relay.test", service="delivery", attempt=1, now=NOW,
        )  # fmt: skip


def test_ret_full_returns_the_message_and_ret_hdrs_the_headers() -> None:
    failed = FailedRecipient("a@x.test", SmtpReply(code=550))
    full = build_dsn(
        with_params(ret="FULL"), BODY, [failed], reporting_mta="r.test", dsn_message_id="D", now=NOW
    )
    headers = build_dsn(
        with_params(ret="HDRS"), BODY, [failed], reporting_mta="r.test", dsn_message_id="D", now=NOW
    )
    assert b"Content-Type: message/rfc822" in full and b"body text" in full
    assert b"Content-Type: text/rfc822-headers" in headers and b"body text" not in headers
    big = build_dsn(
        with_params(ret="FULL"), BODY + b"x" * FULL_RETURN_LIMIT, [failed],
        reporting_mta="r.test", dsn_message_id="D", now=NOW,
    )  # fmt: skip
    assert b"body text" not in big and b"only its headers follow" in big


def test_envid_and_orcpt_are_reported() -> None:
    params = {"a@x.test": RecipientParams(orcpt="rfc822;old@x.test")}
    envelope = with_params(envid="ENV 1", rcpt_params=params)
    text = build(FailedRecipient("a@x.test", SmtpReply(code=550))).decode()
    assert "Original-Envelope-Id" not in text
    data = build_dsn(
        envelope, BODY, [FailedRecipient("a@x.test", SmtpReply(code=550))],
        reporting_mta="relay.test", dsn_message_id="D1", now=NOW,
    ).decode()  # fmt: skip
    assert "Original-Envelope-Id: ENV 1\r\n" in data
    assert "Original-Recipient: rfc822; old@x.test\r\nFinal-Recipient: rfc822; a@x.test" in data


def test_a_relayed_notice_says_relayed_with_a_success_status() -> None:
    data, envelope, event = bounce(
        ORIGINAL, BODY, [FailedRecipient("a@x.test", SmtpReply(code=250, enhanced="2.0.0"))],
        reporting_mta="relay.test", service="delivery", attempt=1, now=NOW, action="relayed",
    )  # fmt: skip
    text = data.decode()
    assert "Action: relayed\r\nStatus: 2.0.0" in text
    assert "Subject: Successful Mail Delivery Report" in text
    assert envelope.message_id == "Q1.S1" and envelope.is_bounce
    failure = bounce(
        ORIGINAL, BODY, [FailedRecipient("a@x.test", SmtpReply(code=550))],
        reporting_mta="relay.test", service="delivery", attempt=1, now=NOW,
    )  # fmt: skip
    assert event.event_id != failure[2].event_id
