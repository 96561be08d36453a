"""Delay warnings: once per message, to real senders only, as NOTIFY asks, RFC 3464 delayed."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postline.delivery.delaywarn import DelayWarning, delay_warning, warning_due
from postline.delivery.outcome import Outcome
from postline.delivery.transaction import Where
from postline.models import Envelope, EventKind, Peer, RecipientParams
from postline.reply import SmtpReply

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = RECEIVED + timedelta(hours=4)
UNTIL = RECEIVED + timedelta(days=5)
FOUR_HOURS = 4 * 3600.0
BODY = b"Subject: hi\r\nFrom: s@example.org\r\n\r\nthe body\r\n"
REPLY = SmtpReply(code=451, enhanced="4.3.0", text="try later")
ENVELOPE = Envelope(
    message_id="M1",
    mail_from="s@example.org",
    rcpt_to=("a@x.test", "b@x.test"),
    received_at=RECEIVED,
    ret="FULL",
)


def deferred(recipient: str, reply: SmtpReply = REPLY) -> Outcome:
    return Outcome(
        recipient, EventKind.DEFERRED, reply, None, "remote replied to RCPT TO", NOW, True
    )


def warn(envelope: Envelope, *outcomes: Outcome) -> DelayWarning | None:
    return delay_warning(
        envelope, BODY, outcomes, reporting_mta="relay.test", attempt=3, now=NOW, retry_until=UNTIL
    )


def test_a_warning_is_due_once_the_message_waited_long_enough() -> None:
    assert warning_due(ENVELOPE, FOUR_HOURS, NOW)
    assert not warning_due(ENVELOPE, FOUR_HOURS, NOW - timedelta(seconds=1))


@pytest.mark.parametrize(
    "update",
    [{"delay_warned": True}, {"mail_from": ""}, {"is_bounce": True}],
    ids=["already-warned", "null-sender", "bounce"],
)
def test_no_warning_twice_nor_to_the_null_sender_nor_for_a_bounce(update: dict[str, Any]) -> None:
    assert not warning_due(ENVELOPE.model_copy(update=update), FOUR_HOURS, NOW)


def test_warnings_are_off_by_default() -> None:
    assert not warning_due(ENVELOPE, None, NOW + timedelta(days=30))


def test_the_warning_is_an_rfc3464_delayed_report_with_will_retry_until() -> None:
    warning = warn(ENVELOPE, deferred("a@x.test"))
    assert warning is not None
    text = warning.data.decode()
    assert "Final-Recipient: rfc822; a@x.test\r\nAction: delayed\r\nStatus: 4.3.0" in text
    assert "Will-Retry-Until: Tue, 06 Jan 2026 00:00:00 +0000" in text
    assert "Diagnostic-Code: smtp; 451 4.3.0 try later" in text
    assert "Subject: Delayed Mail (still being retried)" in text
    report = email.message_from_bytes(warning.data, policy=email.policy.default)
    parts = [p.get_content_type() for p in report.iter_parts()]
    assert parts[-1] == "text/rfc822-headers", "headers only, even with RET=FULL"
    assert "the body" not in text
    assert warning.envelope.mail_from == "" and warning.envelope.rcpt_to == ("s@example.org",)
    assert warning.envelope.message_id == "M1.D3"


def test_a_permanent_or_odd_last_reply_still_gives_a_4xx_status() -> None:
    odd = SmtpReply(code=421, enhanced="5.0.0", text="closing")
    warning = warn(ENVELOPE, deferred("a@x.test", odd))
    assert warning is not None
    assert "Status: 4.0.0" in warning.data.decode()


def test_one_delayed_event_per_warned_recipient_plus_the_dsn_sent_event() -> None:
    warning = warn(ENVELOPE, deferred("a@x.test"), deferred("b@x.test"))
    assert warning is not None
    delayed = [e for e in warning.events if e.kind is EventKind.DELAYED]
    assert [e.recipient for e in delayed] == ["a@x.test", "b@x.test"]
    assert all(e.reply == REPLY and e.attempt == 3 for e in delayed)
    [sent] = [e for e in warning.events if e.kind is EventKind.DSN_SENT]
    assert sent.rcpt_to == ("a@x.test", "b@x.test")
    assert len({e.event_id for e in warning.events}) == 3


def test_notify_decides_who_is_warned() -> None:
    params = {
        "a@x.test": RecipientParams(notify=("FAILURE",)),
        "b@x.test": RecipientParams(notify=("DELAY", "FAILURE")),
        "c@x.test": RecipientParams(notify=("NEVER",)),
    }
    envelope = ENVELOPE.model_copy(
        update={"rcpt_to": ("a@x.test", "b@x.test", "c@x.test", "d@x.test"), "rcpt_params": params}
    )
    outcomes = [deferred(r) for r in envelope.rcpt_to]
    warning = warn(envelope, *outcomes)
    assert warning is not None
    warned = [e.recipient for e in warning.events if e.kind is EventKind.DELAYED]
    assert warned == ["b@x.test", "d@x.test"]
    only_refusing = envelope.model_copy(update={"rcpt_to": ("a@x.test", "c@x.test")})
    assert warn(only_refusing, deferred("a@x.test"), deferred("c@x.test")) is None


def test_the_remote_host_is_named_when_one_was_reached() -> None:
    outcome = Outcome("a@x.test", EventKind.DEFERRED, REPLY, None, "x", NOW)
    reached = Outcome(
        "a@x.test",
        EventKind.DEFERRED,
        REPLY,
        Where(Peer(name="mx.x.test", ip="192.0.2.1", port=25), "S1", None),
        "x",
        NOW,
    )
    unreached, named = warn(ENVELOPE, outcome), warn(ENVELOPE, reached)
    assert unreached is not None and named is not None
    assert "Remote-MTA" not in unreached.data.decode()
    assert "Remote-MTA: dns; mx.x.test" in named.data.decode()
