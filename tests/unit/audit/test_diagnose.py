"""The diagnosis line: every case in the issue's own words, from events as services send them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postline.audit.diagnose import diagnose
from postline.audit.views import MessageRecord, RecipientRecord
from postline.models import Event, EventKind, Peer
from postline.reply import SmtpReply, reply

AT = datetime(2026, 3, 4, 13, 0, tzinfo=UTC)
MID = "4Q8ZT1K2M7XHBN3C"
JOHN = "john@businesspartner.com"
MX1 = Peer(name="mx1.example.net", ip="192.0.2.7", port=25)


def event(kind: EventKind, minutes: float = 0, **fields: Any) -> Event:
    ingress = kind in (EventKind.RECEIVED, EventKind.REFUSED)
    return Event(
        kind=kind,
        service=fields.pop("service", "ingress" if ingress else "delivery"),
        message_id=fields.pop("message_id", MID),
        at=AT + timedelta(minutes=minutes),
        **fields,
    )


def received(**fields: Any) -> Event:
    return event(
        EventKind.RECEIVED,
        mail_from="mary@company.test",
        rcpt_to=(JOHN,),
        client_ip="10.1.2.3",
        size=1234,
        **fields,
    )


def record(status: str, *events: Event, **recipient: Any) -> MessageRecord:
    """One recipient (``JOHN``) in ``status`` (the message too), folded as the index does."""
    last = max(
        (e for e in events if e.recipient == JOHN and e.kind is not EventKind.CONVERSATION),
        key=lambda e: e.at,
        default=None,
    )
    fields: dict[str, Any] = {
        "address": JOHN,
        "state": status,
        "reply": last.reply if last else None,
        "attempts": last.attempt if last else 0,
        "mx": last.mx.label if last and last.mx else None,
        "next_attempt_at": last.next_attempt_at if last else None,
    }
    fields.update(recipient)
    return MessageRecord(
        message_id=MID,
        state=status,
        mail_from="mary@company.test",
        received_at=AT,
        recipients=[RecipientRecord(**fields)],
        events=sorted(events, key=lambda e: e.at),
    )


def outcome(kind: EventKind, minutes: float, the_reply: SmtpReply, **fields: Any) -> Event:
    return event(
        kind, minutes, recipient=JOHN, mail_from="mary@company.test", reply=the_reply, **fields
    )


def test_nxdomain_says_the_domain_has_no_mail_servers_and_to_check_the_address():
    nxdomain = reply(550, "5.1.2", "Host or domain name not found: businesspartner.com")
    bounced = outcome(EventKind.BOUNCED, 1, nxdomain, attempt=1, reason="DNS lookup failed")
    assert diagnose(record("bounced", received(), bounced)) == (
        "Diagnosis: MX record for businesspartner.com not found (NXDOMAIN): the domain does "
        "not exist or has no mail servers; check the address"
    )


def test_an_mx_host_that_does_not_exist_is_named_apart_from_the_domain():
    nxdomain = reply(550, "5.1.2", "Host or domain name not found: mx.gone.example")
    bounced = outcome(EventKind.BOUNCED, 1, nxdomain, attempt=1, reason="DNS lookup failed")
    text = diagnose(record("bounced", received(), bounced))
    assert text.startswith(
        "Diagnosis: mail server mx.gone.example of businesspartner.com not found (NXDOMAIN)"
    )


def test_timeouts_name_the_mx_the_attempts_and_the_next_attempt_in_utc():
    timeout = reply(451, "4.4.1", "Connection timed out: timed out (mx1.example.net)")
    deferrals = [
        outcome(
            EventKind.DEFERRED,
            5 * n,
            timeout,
            attempt=n,
            mx=MX1,
            reason="could not connect; retry via tier 1",
            next_attempt_at=AT + timedelta(minutes=5 * n + 50),
        )
        for n in (1, 2, 3)
    ]
    assert diagnose(record("deferred", received(), *deferrals)) == (
        "Diagnosis: destination not responding: connection to mx1.example.net[192.0.2.7]:25 "
        "timed out on 3 attempts; next attempt 14:05 UTC"
    )


def test_a_refused_connection_reads_was_refused_and_the_date_shows_when_it_is_another_day():
    refused = reply(451, "4.4.1", "Connection failed: Connection refused (mx1.example.net)")
    deferred = outcome(
        EventKind.DEFERRED,
        1,
        refused,
        attempt=1,
        mx=MX1,
        reason="could not connect; retry via tier 1",
        next_attempt_at=AT + timedelta(days=1),
    )
    assert diagnose(record("deferred", received(), deferred)) == (
        "Diagnosis: destination not responding: connection to mx1.example.net[192.0.2.7]:25 "
        "was refused on 1 attempt; next attempt 2026-03-05 13:00 UTC"
    )


def test_a_remote_4xx_is_the_destination_deferring_it_with_its_words():
    greylisted = reply(451, "4.7.1", "Greylisted, try again later")
    deferred = outcome(
        EventKind.DEFERRED,
        1,
        greylisted,
        attempt=1,
        mx=MX1,
        reason="remote replied to RCPT TO; retry via tier 1",
        next_attempt_at=AT + timedelta(minutes=11),
    )
    assert diagnose(record("deferred", received(), deferred)) == (
        "Diagnosis: destination deferred it: 451 4.7.1 Greylisted, try again later "
        "on 1 attempt; next attempt 13:11 UTC"
    )


def test_a_temporary_dns_failure_names_the_domain():
    servfail = reply(451, "4.4.3", "Temporary DNS failure: SERVFAIL looking up businesspartner.com")
    deferred = outcome(EventKind.DEFERRED, 1, servfail, attempt=1, reason="DNS lookup failed")
    text = diagnose(record("deferred", received(), deferred))
    assert text.startswith("Diagnosis: DNS lookup for businesspartner.com failed temporarily")


def test_a_remote_refusal_is_the_destination_refused_with_its_reply():
    unknown = reply(550, "5.1.1", "user unknown")
    bounced = outcome(
        EventKind.BOUNCED, 1, unknown, attempt=1, mx=MX1, reason="remote replied to RCPT TO"
    )
    assert diagnose(record("bounced", received(), bounced)) == (
        "Diagnosis: destination refused: 550 5.1.1 user unknown"
    )


def test_a_bounce_names_the_dsn_sent_to_the_sender():
    unknown = reply(550, "5.1.1", "user unknown")
    bounced = outcome(EventKind.BOUNCED, 1, unknown, attempt=1, reason="remote replied to RCPT TO")
    dsn = event(EventKind.DSN_SENT, 2, mail_from="mary@company.test", rcpt_to=(JOHN,))
    assert diagnose(record("bounced", received(), bounced, dsn)) == (
        "Diagnosis: destination refused: 550 5.1.1 user unknown; a DSN went to <mary@company.test>"
    )


def test_refused_for_relay_names_the_client_and_relay_networks():
    refused = event(
        EventKind.REFUSED,
        message_id="refused-0f1e",
        command="RCPT",
        reason="relay_denied",
        reply=reply(554, "5.7.1", "Relay access denied"),
        client_ip="10.1.2.3",
        mail_from="mary@company.test",
        recipient=JOHN,
    )
    assert diagnose(
        MessageRecord(message_id="refused-0f1e", state="refused", events=[refused])
    ) == (
        "Diagnosis: refused at submission: client 10.1.2.3 is not in relay_networks and did "
        "not authenticate"
    )


def test_a_refusal_is_recognised_by_its_reply_when_the_reason_is_free_text():
    refused = event(
        EventKind.REFUSED,
        command="AUTH",
        reason="AUTH failed",
        reply=reply(535, "5.7.8", "Authentication credentials invalid"),
        client_ip="10.1.2.3",
        auth_user="mary",
        count=2000,
        sampled=True,
    )
    assert diagnose(MessageRecord(message_id="refused-1", state="refused", events=[refused])) == (
        "Diagnosis: refused at submission: client 10.1.2.3 failed to authenticate as mary: "
        "wrong user name or password (2000 refusals like it, sampled)"
    )


def test_an_unknown_refusal_shows_its_reason_and_reply():
    refused = event(
        EventKind.REFUSED,
        command="MAIL",
        reason="something new",
        reply=reply(550, "5.7.0", "No"),
        client_ip="10.1.2.3",
    )
    assert diagnose(MessageRecord(message_id="refused-2", state="refused", events=[refused])) == (
        "Diagnosis: refused at submission: something new (550 5.7.0 No)"
    )


def test_delivered_names_the_mx_the_reply_and_whose_problem_it_is_then():
    ok = reply(250, "2.0.0", "Ok: queued as 4QX")
    mx = Peer(name="mx.example.com", ip="192.0.2.9", port=25)
    delivered = outcome(EventKind.DELIVERED, 1, ok, attempt=1, mx=mx)
    assert diagnose(record("delivered", received(), delivered)) == (
        "Diagnosis: delivered: accepted by mx.example.com (250 2.0.0 Ok: queued as 4QX); "
        "if the recipient cannot find it, the problem is on their side"
    )


def test_a_filter_rejection_names_the_filter_and_its_reply():
    no = reply(550, "5.7.1", "Message rejected")
    rejected = event(
        EventKind.REJECTED,
        1,
        recipient=JOHN,
        service="filter",
        reply=no,
        reason="rejected by filter reject-all: policy says no",
    )
    assert diagnose(record("rejected", received(), rejected)) == (
        "Diagnosis: rejected by filter reject-all: policy says no (550 5.7.1 Message rejected); "
        "it was not sent"
    )


def test_expired_says_within_how_long_after_how_many_attempts_and_the_last_trouble():
    refused = reply(451, "4.4.1", "Connection failed: Connection refused (mx1.example.net)")
    deferred = outcome(
        EventKind.DEFERRED,
        1,
        refused,
        attempt=1,
        mx=MX1,
        reason="could not connect; retry via tier 1",
    )
    why = "expired: not delivered within 5d; last: could not connect"
    expired = outcome(EventKind.EXPIRED, 9, refused, attempt=4, mx=MX1, reason=why)
    assert diagnose(record("expired", received(), deferred, expired)) == (
        "Diagnosis: expired: not delivered within 5d after 4 attempts; last: destination not "
        "responding: connection to mx1.example.net[192.0.2.7]:25 was refused"
    )


def test_parked_says_why_and_where_it_waits():
    parked = event(EventKind.PARKED, 1, reason="envelope header is not valid", stage="deliver")
    text = diagnose(record("parked", received(), parked, state="queued"))
    assert text == (
        "Diagnosis: parked from deliver (envelope header is not valid): it could not be "
        "processed; it waits in the parked queue"
    )


def test_queued_before_and_after_the_filters():
    assert diagnose(record("queued", received())) == (
        "Diagnosis: queued: received, waiting for the filters and its first delivery attempt"
    )
    filtered = event(EventKind.FILTERED, 1, rcpt_to=(JOHN,), reason="filters: headers")
    assert diagnose(record("queued", received(), filtered)) == (
        "Diagnosis: queued: passed the filters, waiting for its first delivery attempt"
    )


def test_recipients_that_fared_differently_get_one_clause_each():
    ok = outcome(EventKind.DELIVERED, 1, reply(250, "2.0.0", "Ok"), attempt=1, mx=MX1)
    other = "ann@other.example"
    no = reply(550, "5.1.1", "user unknown")
    unknown = event(
        EventKind.BOUNCED,
        1,
        recipient=other,
        attempt=1,
        reply=no,
        reason="remote replied to RCPT TO",
    )
    message = record("bounced", received(), ok, unknown)
    message.recipients = [
        RecipientRecord(JOHN, "delivered", ok.reply, 1, MX1.label),
        RecipientRecord(other, "bounced", unknown.reply, 1),
    ]
    message.partly_delivered = True
    assert diagnose(message) == (
        "Diagnosis: partly delivered: john@businesspartner.com: delivered: accepted by "
        "mx1.example.net (250 2.0.0 Ok); if the recipient cannot find it, the problem is on "
        "their side  |  ann@other.example: destination refused: 550 5.1.1 user unknown"
    )


def test_a_reply_with_line_breaks_stays_one_line():
    evil = SmtpReply(code=550, enhanced="5.1.1", text="no\r\nDiagnosis: forged")
    bounced = outcome(EventKind.BOUNCED, 1, evil, attempt=1, reason="remote replied to RCPT TO")
    text = diagnose(record("bounced", received(), bounced))
    assert "\n" not in text and "\r" not in text
    assert text == "Diagnosis: destination refused: 550 5.1.1 no\\r\\nDiagnosis: forged"


def test_a_message_with_no_events_yet_says_so():
    assert diagnose(MessageRecord(message_id=MID, state="queued")) == (
        "Diagnosis: nothing is recorded for this message yet"
    )


@pytest.mark.parametrize(
    ("reason", "command", "why"),
    [
        ("sender_not_owned", "MAIL", "user mary may not send as <boss@company.test>"),
        ("rate_user", "MAIL", "user mary sent more than max_messages_per_user"),
        ("rate_ip", "MAIL", "client 10.1.2.3 sent more than max_messages_per_ip"),
        ("too_many_recipients", "RCPT", "more recipients than max_recipients in one message"),
        ("size_declared", "MAIL", "the message is larger than max_message_size"),
        ("header_too_big", "DATA", "the message is larger than max_message_size"),
        ("bare_line_ending", "DATA", "its content was refused: Bad"),
        ("broker_unavailable", "DATA", "Postline could not queue it (the broker is unavailable)"),
        ("queueing_not_confirmed", "DATA", "the broker did not confirm it in time"),
        ("auth_failed", "AUTH", "client 10.1.2.3 failed to authenticate as mary"),
        ("auth_malformed", "AUTH", "client 10.1.2.3 sent a malformed authentication response"),
        ("auth_locked", "AUTH", "client 10.1.2.3 is locked out after too many failed"),
        ("auth_needs_tls", "AUTH", "client 10.1.2.3 tried to authenticate without TLS"),
        ("max_sessions", "CONNECT", "ingress had max_sessions connections open"),
        ("max_sessions_per_ip", "CONNECT", "client 10.1.2.3 opened too many connections"),
        ("draining", "CONNECT", "ingress was shutting down"),
    ],
)
def test_every_reason_ingress_gives_has_its_own_words(reason, command, why):
    refused = event(EventKind.REFUSED, command=command, reason=reason, client_ip="10.1.2.3",
                    auth_user="mary", mail_from="boss@company.test",
                    reply=reply(550, "5.0.0", "Bad"))  # fmt: skip
    text = diagnose(MessageRecord(message_id="refused-3", state="refused", events=[refused]))
    assert text.startswith(f"Diagnosis: refused at submission: {why}")
